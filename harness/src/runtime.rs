//! The one long-lived tokio runtime of a test process, and the work it does at process exit.
//!
//! Owner tasks, server watchers and background work live here, never on a test's own runtime,
//! so nothing dies with the `#[tokio::test]` that happened to create it.
//!
//! The bottom layer: it imports nothing of ours but `tls` (to give the process a TLS provider). The layers above register what must happen at
//! exit ([`at_exit`]): the session layer closes sessions, the process layer stops servers.

use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
const WORKER_NAME: &str = "mcp-harness";

/// The shared runtime's handle, building the runtime on first use.
pub(crate) fn handle() -> &'static Handle {
    RUNTIME
        .get_or_init(|| {
            // Whoever uses the runtime gets the exit hook linked into their binary.
            std::hint::black_box(&RUN_EXIT_STEPS);
            // Any reqwest client built from here on (in a test body, in rmcp) can do https.
            crate::tls::install_default_provider();
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

/// Whether the current thread is one of the shared runtime's workers.
pub(crate) fn is_shared_worker() -> bool {
    std::thread::current().name() == Some(WORKER_NAME)
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

// ---------------------------------------------------------------------------------------------
// Process exit

/// When a step registered with [`at_exit`] runs: steps run in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ExitStep {
    /// Close every open session, last opened first.
    CloseSessions,
    /// Stop every server process still alive.
    StopProcesses,
    /// Remove the run's server logs, unless something failed or they are to be kept.
    RemoveLogs,
    /// Remove the files of test certificate authorities never dropped (held in statics).
    #[cfg_attr(not(feature = "test-ca"), allow(dead_code))]
    RemoveTestFiles,
}

/// One step of the work done at process exit.
#[derive(Clone, Copy)]
struct ExitHook {
    step: ExitStep,
    /// Runs with the time left of the overall bound.
    graceful: fn(Duration),
    /// Runs when the graceful steps did not finish in time (no waiting allowed).
    forced: fn(),
}

static EXIT_HOOKS: Mutex<Vec<ExitHook>> = Mutex::new(Vec::new());

/// Registers a step to run at process exit (and in [`run_exit_steps`]); registering the same
/// step twice keeps the first.
pub(crate) fn at_exit(step: ExitStep, graceful: fn(Duration), forced: fn()) {
    let mut hooks = EXIT_HOOKS.lock().unwrap_or_else(|p| p.into_inner());
    if hooks.iter().all(|h| h.step != step) {
        hooks.push(ExitHook {
            step,
            graceful,
            forced,
        });
        hooks.sort_by_key(|h| h.step);
    }
}

fn exit_hooks() -> Vec<ExitHook> {
    EXIT_HOOKS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Runs every registered exit step in order, within `within` overall.
pub(crate) fn run_exit_steps(within: Duration) {
    if existing_handle().is_none() {
        return;
    }
    let deadline = std::time::Instant::now() + within;
    for hook in exit_hooks() {
        (hook.graceful)(deadline.saturating_duration_since(std::time::Instant::now()));
    }
}

/// Runs at process exit (from `.fini_array`): the registered steps, bounded; past the bound the
/// forced variants.
extern "C" fn run_exit_steps_at_exit() {
    if existing_handle().is_none() {
        return;
    }
    let within = std::env::var("MCP_HARNESS_EXIT_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(10));
    let force = || {
        for hook in exit_hooks() {
            (hook.forced)();
        }
    };
    // By now the exiting thread's thread-locals may be destroyed (glibc runs their destructors
    // before exit handlers), and async executors need them: do the work on a fresh thread.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("mcp-harness-exit".into())
        .spawn(move || {
            run_exit_steps(within);
            let _ = done_tx.send(());
        });
    match worker {
        Ok(_) => {
            if done_rx
                .recv_timeout(within + Duration::from_secs(2))
                .is_err()
            {
                force();
            }
        }
        Err(_) => force(),
    }
}

/// Registered with the loader directly; [`handle`] refers to it so that every binary using the
/// runtime links it (a `#[used]` static in a library is only linked when its object file is).
#[used]
#[unsafe(link_section = ".fini_array")]
static RUN_EXIT_STEPS: extern "C" fn() = run_exit_steps_at_exit;
