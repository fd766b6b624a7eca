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
mod errors;
pub mod pool;
mod process;
mod run;
mod runtime;
mod secret;
mod session;
#[cfg(feature = "test-ca")]
mod test_ca;
mod tls;
mod transport;

pub use auth::{
    ClientMetadataServer, JwtSigningAlg, OAuth, OAuthEvent, OAuthTokens, TokenEndpointAuth,
    authorize, live_callback_servers,
};
#[cfg(feature = "bundled-servers")]
pub use bundled::{
    Bundled, BundledAuth, BundledServer, IssMisbehaviour, OAuthClient, OAuthMisbehaviour,
    OAuthServerConfig,
};
pub use errors::{Error, OAuthStep, Result};
pub use pool::{PooledSession, SessionPool};
pub use process::{AddressSource, READY_PREFIX, Readiness, Server, ServerSpec};
pub use run::{__private, keep_logs, run};

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
pub use session::{
    ClientAnswers, ElicitationAnswer, Era, Listing, LogLevel, Notifications, PROTOCOL_ENV,
    Protocol, Session, SessionBuilder, Target, close_all_sessions, tool_text,
};
#[cfg(feature = "test-ca")]
pub use test_ca::{ServerCert, TestCa};
pub use tls::trust_ca_file;
pub use transport::Transport;

/// The `rmcp` crate this harness is built on (model types such as `CallToolResult`).
pub use rmcp;

/// Closes every open session (last opened first) and stops every server process this process
/// started, within `within` overall. Runs automatically at process exit.
pub fn shutdown_all(within: std::time::Duration) {
    runtime::run_exit_steps(within);
}

/// The layering rule, checked on the sources: each layer names only the layers below it.
#[cfg(test)]
mod layering {
    use std::path::Path;

    /// Each top-level module (a file or a folder under `src/`) and the modules it may name.
    const ALLOWED: &[(&str, &[&str])] = &[
        ("runtime", &["tls"]),
        ("errors", &[]),
        ("secret", &[]),
        ("transport", &["errors"]),
        ("tls", &["errors"]),
        ("test_ca", &["runtime", "errors"]),
        ("process", &["runtime", "transport", "errors"]),
        ("auth", &["runtime", "transport", "errors", "secret", "tls"]),
        ("bundled", &["process", "transport", "secret"]),
        (
            "session",
            &[
                "auth",
                "process",
                "runtime",
                "transport",
                "errors",
                "secret",
                "tls",
            ],
        ),
        (
            "pool",
            &[
                "session",
                "process",
                "runtime",
                "transport",
                "errors",
                "secret",
            ],
        ),
        ("run", &["runtime", "process"]),
    ];

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable source folder") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn each_layer_imports_only_the_layers_below_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut broken = Vec::new();
        for (layer, allowed) in ALLOWED {
            let mut files = Vec::new();
            let folder = src.join(layer);
            if folder.is_dir() {
                sources(&folder, &mut files);
            } else {
                files.push(src.join(format!("{layer}.rs")));
            }
            assert!(
                files.iter().all(|f| f.exists()),
                "layer `{layer}` has no sources"
            );
            for file in files {
                let text = std::fs::read_to_string(&file).expect("readable source");
                let mut names = Vec::new();
                for (n, line) in text.lines().enumerate() {
                    // Doc links name types for readers; only code creates a dependency.
                    if line.trim_start().starts_with("//") {
                        continue;
                    }
                    for (at, _) in line.match_indices("crate::") {
                        let rest = &line[at + 7..];
                        // `crate::{a, b::C}` names each of `a` and `b`.
                        let group = rest.strip_prefix('{').map(|g| g.split('}').next());
                        let paths: Vec<&str> = match group {
                            Some(Some(inner)) => inner.split(',').collect(),
                            _ => vec![rest],
                        };
                        for path in paths {
                            let named: String = path
                                .trim_start()
                                .chars()
                                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                                .collect();
                            names.push((n, named));
                        }
                    }
                    for (n, named) in names.drain(..) {
                        let known = ALLOWED.iter().any(|(m, _)| *m == named);
                        if known && named != *layer && !allowed.contains(&named.as_str()) {
                            broken.push(format!(
                                "{}:{}: `{layer}` names `crate::{named}`",
                                file.strip_prefix(&src).unwrap_or(&file).display(),
                                n + 1
                            ));
                        }
                    }
                }
            }
        }
        assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
    }
}
