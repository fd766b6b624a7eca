//! The one long-lived tokio runtime of a test process.
//!
//! Owner tasks, server watchers and background work live here, never on a test's own runtime,
//! so nothing dies with the `#[tokio::test]` that happened to create it.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
const WORKER_NAME: &str = "mcp-harness";

/// The shared runtime's handle, building the runtime on first use.
pub(crate) fn handle() -> &'static Handle {
    RUNTIME
        .get_or_init(|| {
            crate::hooks::ensure_linked();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(worker_threads())
                .thread_name(WORKER_NAME)
                .enable_all()
                .build()
                .unwrap_or_else(|e| {
                    panic!("mcp-harness: cannot build the shared tokio runtime: {e}")
                })
        })
        .handle()
}

/// The runtime's handle if it was ever built (used at process exit, where building it is wrong).
pub(crate) fn existing_handle() -> Option<&'static Handle> {
    RUNTIME.get().map(Runtime::handle)
}

fn worker_threads() -> usize {
    std::env::var("MCP_HARNESS_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2)
        })
}

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
    let task = handle().spawn(body);
    // On one of our own workers (a fixture called inside `run`), tell tokio we block.
    let on_shared_worker = std::thread::current().name() == Some(WORKER_NAME);
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
            crate::process::print_log_tails_for_failure();
            std::panic::resume_unwind(payload)
        }
        Err(e) => panic!("mcp-harness: the test body was cancelled: {e}"),
    }
}

/// Spawns a future on the shared runtime (used by owner tasks and watchers).
pub(crate) fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(fut)
}

/// A timer bound to the shared runtime, so that it can be awaited from any executor.
pub(crate) fn sleep(d: std::time::Duration) -> tokio::time::Sleep {
    let _enter = handle().enter();
    tokio::time::sleep(d)
}

/// `tokio::time::timeout` bound to the shared runtime, awaitable from any executor.
pub(crate) fn timeout<F: Future>(d: std::time::Duration, fut: F) -> tokio::time::Timeout<F> {
    let _enter = handle().enter();
    tokio::time::timeout(d, fut)
}
