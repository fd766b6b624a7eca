//! # mcp-harness
//!
//! A test harness for MCP (Model Context Protocol) servers, clients and gateways.
//!
//! The problem it solves: an MCP session's lifecycle is bound to the runtime that opened it.
//! `#[tokio::test]` builds a runtime per test, so a session shared across tests dies with the
//! first test's runtime ("Transport closed", "A Tokio 1.x context was found, but it is being
//! shutdown"). mcp-harness keeps **one long-lived runtime per test process** and **one owner
//! task per session**: the owner connects, initializes, serves and closes; tests hold cheap
//! [`Session`] handles that work from any runtime, thread or fixture scope.
//!
//! ```no_run
//! use mcp_harness::{Bundled, ServerSpec, Session, Target, Transport};
//!
//! #[mcp_harness::test]
//! async fn echo_round_trip() -> mcp_harness::Result<()> {
//!     let spec = ServerSpec::bundled(Bundled::FastTest, Transport::Stdio);
//!     let alice = Session::builder(Target::Stdio(spec)).name("alice").connect().await?;
//!     let out = alice.call_tool("echo", serde_json::json!({"text": "hi"})).await?;
//!     assert_eq!(mcp_harness::tool_text(&out), "hi");
//!     Ok(())
//! }
//! ```
//!
//! `#[mcp_harness::test]` is [`run`] in attribute form; `run` itself works from any `#[test]`,
//! thread or runtime.
//!
//! Servers are real processes ([`Server`], [`ServerSpec`]): spawned from a thread that lives as
//! long as the process, in their own process group, with `PR_SET_PDEATHSIG`, their output in
//! log files. Teardown has three layers: explicit [`Session::shutdown`], a process-exit hook that
//! closes every open session last-opened-first, and the kernel killing children of a killed
//! test process.

#![warn(missing_docs)]
#![deny(missing_debug_implementations)]

mod auth;
#[cfg(feature = "bundled-servers")]
mod bundled;
#[cfg(feature = "cli")]
pub mod cli;
mod errors;
pub mod pool;
mod process;
mod runtime;
mod secret;
mod session;
mod sse;

pub use auth::{
    OAuth, OAuthEvent, OAuthTokens, TokenEndpointAuth, authorize, live_callback_servers,
};
#[cfg(feature = "bundled-servers")]
pub use bundled::{Bundled, BundledAuth, BundledServer, OAuthClient, OAuthServerConfig};
pub use errors::{Error, OAuthStep, Result};
pub use pool::{PooledSession, SessionPool};
pub use process::{AddressSource, READY_PREFIX, Readiness, Server, ServerSpec, Transport};
pub use runtime::run;

/// Runs an `async fn` test on the shared runtime: a plain `#[test] fn` whose body is
/// [`run`]`(async move { ... })`, so what the test opens outlives it.
///
/// The function takes no arguments and may return a `Result`. With rstest, put `#[rstest]`
/// first: it resolves the fixtures and leaves an argument-free `async fn` to this attribute.
///
/// ```no_run
/// use mcp_harness::{Bundled, ServerSpec, Session, Target, Transport};
///
/// #[mcp_harness::test]
/// async fn echo_round_trip() -> mcp_harness::Result<()> {
///     let spec = ServerSpec::bundled(Bundled::FastTest, Transport::Stdio);
///     let alice = Session::builder(Target::Stdio(spec)).name("alice").connect().await?;
///     let out = alice.call_tool("echo", serde_json::json!({"text": "hi"})).await?;
///     assert_eq!(mcp_harness::tool_text(&out), "hi");
///     Ok(())
/// }
/// ```
pub use mcp_harness_macros::test;
pub use secret::Secret;
pub use session::{Notifications, Session, SessionBuilder, Target, close_all_sessions, tool_text};

/// The `rmcp` crate this harness is built on (model types such as `CallToolResult`).
pub use rmcp;

/// Closes every open session (last opened first) and stops every server process this process
/// started, within `within` overall. Runs automatically at process exit.
pub fn shutdown_all(within: std::time::Duration) {
    if runtime::existing_handle().is_none() {
        return;
    }
    close_all_sessions(within);
    process::kill_all_children();
}

/// Closes everything this process opened; runs at process exit (from `.fini_array`).
extern "C" fn close_everything_at_exit() {
    if runtime::existing_handle().is_none() {
        return;
    }
    let within = std::env::var("MCP_HARNESS_EXIT_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or(std::time::Duration::from_secs(10));
    // By now the exiting thread's thread-locals may be destroyed (glibc runs their destructors
    // before exit handlers), and async executors need them: do the work on a fresh thread.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("mcp-harness-exit".into())
        .spawn(move || {
            shutdown_all(within);
            let _ = done_tx.send(());
        });
    match worker {
        Ok(_) => {
            if done_rx
                .recv_timeout(within + std::time::Duration::from_secs(2))
                .is_err()
            {
                process::kill_all_children_now();
            }
        }
        Err(_) => process::kill_all_children_now(),
    }
}

/// Process start and exit hooks, registered with the loader directly: a `#[used]` static in a
/// library is only linked when its object file is, so the code that needs them calls
/// [`hooks::ensure_linked`].
mod hooks {
    #[cfg(feature = "bundled-servers")]
    #[used]
    #[unsafe(link_section = ".init_array")]
    static SERVE_BUNDLED_SERVER: extern "C" fn() =
        crate::bundled::serve_bundled_server_if_requested;

    #[used]
    #[unsafe(link_section = ".fini_array")]
    static CLOSE_AT_EXIT: extern "C" fn() = super::close_everything_at_exit;

    /// Keeps the hooks in the final binary.
    pub(crate) fn ensure_linked() {
        #[cfg(feature = "bundled-servers")]
        std::hint::black_box(&SERVE_BUNDLED_SERVER);
        std::hint::black_box(&CLOSE_AT_EXIT);
    }
}
