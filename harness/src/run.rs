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
            process::print_log_tails_for_failure();
            std::panic::resume_unwind(payload)
        }
        Err(e) => panic!("mcp-harness: the test body was cancelled: {e}"),
    }
}
