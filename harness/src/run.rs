//! Test bodies on the shared runtime: [`run`] (and `#[mcp_harness::test]`, its attribute form).
//!
//! Sits above the runtime and the process layer: a failing body gets the servers' log tails.

use std::future::Future;

use crate::{process, runtime};

/// Runs `body` on the shared runtime and waits for it, from any thread.
///
/// Works from a plain `#[test]` and from inside another runtime (a `#[tokio::test]`), without
/// "Cannot start a runtime from within a runtime". A panic in `body` fails the caller with the
/// original panic message; before it propagates, the tails of the logs of the servers this
/// process started are printed to stderr (the test harness shows them for failed tests).
///
/// ```
/// let sum = mcp_harness::run(async { 1 + 2 });
/// assert_eq!(sum, 3);
/// ```
pub fn run<F>(body: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = runtime::spawn(body);
    // On one of our own workers (a fixture called inside `run`), tell tokio we block.
    let on_shared_worker = runtime::is_shared_worker();
    let joined = if on_shared_worker {
        tokio::task::block_in_place(|| futures::executor::block_on(task))
    } else {
        futures::executor::block_on(task)
    };
    match joined {
        Ok(out) => out,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            // The panic hook printed the message on a runtime thread, where the test runner
            // does not capture it: repeat it here, on the test's own thread.
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".to_owned());
            eprintln!("mcp-harness: the test body panicked: {message}");
            process::keep_logs();
            process::print_log_tails_for_failure();
            std::panic::resume_unwind(payload)
        }
        Err(e) => panic!("mcp-harness: the test body was cancelled: {e}"),
    }
}

/// Keeps this run's server logs when the process exits.
///
/// By default the harness removes the folder holding the logs of the servers this process
/// started (`$TMPDIR/mcp-harness-logs/<pid>/`) at exit, unless something failed: a panic
/// anywhere (a failed assertion) or a `#[mcp_harness::test]` returning `Err` keeps it, and so
/// does `MCP_HARNESS_KEEP_LOGS=1`. Call this when your own code knows a run failed in another
/// way (a plain `#[test]` returning `Err`, a command-line tool exiting non-zero). Logs in a
/// folder you chose with `MCP_HARNESS_LOG_DIR` are never removed.
///
/// ```
/// mcp_harness::keep_logs();
/// ```
pub fn keep_logs() {
    process::keep_logs();
}

/// What `#[mcp_harness::test]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    /// A test body's output, for [`NoteResult`] and [`NoteOther`].
    #[derive(Debug)]
    pub struct Outcome<'a, T>(pub &'a T);

    /// A test that returned `Err` keeps the run's logs.
    pub trait NoteResult {
        /// Keeps the logs if this is an `Err`.
        fn note(&self);
    }
    impl<T, E> NoteResult for Outcome<'_, Result<T, E>> {
        fn note(&self) {
            if self.0.is_err() {
                super::keep_logs();
            }
        }
    }

    /// Any other output says nothing about failure (panics are seen by the panic hook).
    pub trait NoteOther {
        /// Does nothing.
        fn note(&self);
    }
    impl<T> NoteOther for &Outcome<'_, T> {
        fn note(&self) {}
    }
}
