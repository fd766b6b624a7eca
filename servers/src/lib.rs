//! Real MCP servers written for testing, built on the official Rust SDK (`rmcp`).
//!
//! * **fast-test** — `echo`, `add`, `sleep` (honours cancellation), `fail` (a tool error),
//!   `error` (a JSON-RPC error), `big`, `counter` (per session), `routed_echo` (an
//!   `x-mcp-header` argument), `whoami`, `notify`
//!   (list_changed), `touch` (a resource update), `progress`, `log`, `ask_user`
//!   (elicitation), `ask_llm` (sampling), `ask_forever`, `stats`; the `fast-test://readme`
//!   resource; the `greeting` prompt.
//! * **fast-time** — `get_system_time` and `convert_time`, answering like the reference
//!   Python `mcp-server-time`; plus `whoami` and `stats`.
//! * **conformance** — the tools, resources, prompts and completions of the official MCP
//!   conformance suite's server scenarios, of both protocol eras.
//!
//! Every server serves both protocol eras: the handshake era (`initialize`, up to
//! 2025-11-25) and the stateless era (`server/discover`, 2026-07-28), chosen by each
//! request. Questions to the client are server-to-client requests in the first and
//! `input_required` results in the second; change notifications go to the session in the
//! first and to `subscriptions/listen` streams in the second.
//!
//! Both run over stdio, streamable HTTP (stateful or stateless) or the legacy HTTP+SSE
//! transport, with no auth, static bearer tokens, HS256/RS256 JWTs, or OAuth 2.1 through
//! a built-in authorization server that approves a test user without a browser. Any binary linking this crate can become one of these
//! servers: set [`SERVE_ENV`] to [`ServeOptions`] as JSON and have the binary call
//! [`serve_from_env_if_requested`] early (the `mcp-harness` crate does it from a
//! constructor, so every test binary can re-execute itself as a server).
//!
//! Over HTTP the server prints one line, [`READY_PREFIX`] followed by JSON
//! `{"url":..,"port":..,"pid":..,"transport":"http"}`, once it is listening.
//!
//! ```no_run
//! use mcp_harness_servers::{Bundled, ServeOptions, Transport, serve};
//! // Blocks until SIGTERM/SIGINT (or stdin EOF on stdio, or the watched pid exits).
//! serve(ServeOptions::new(Bundled::FastTime, Transport::Http)).unwrap();
//! ```
#![warn(missing_docs)]
// `unsafe` is used only for `libc::kill(pid, 0)` (see `lifecycle.rs`).
#![deny(unsafe_op_in_unsafe_fn)]

// The modules, top to bottom; each imports only from the ones below it, never from
// this file:
//   bundled/   the servers (fast-test, fast-time, conformance) over the handler;
//   transport/ stdio, streamable HTTP and legacy SSE (they get the server as an argument);
//   auth/      the credential check and the built-in OAuth server;
//   handler/   the MCP handler every bundled server runs on;
//   options, env, events, lifecycle: leaves.
// `bundled` and `transport` never import each other: this file joins them.
mod auth;
mod bundled;
mod env;
mod events;
mod handler;
mod lifecycle;
mod options;
mod transport;

use std::{io::Write, time::Duration};

use auth::gate;
pub use auth::oauth::{IssMisbehaviour, OAuthClient, OAuthMisbehaviour, OAuthServerConfig};
pub use env::{
    BEARER_TOKENS_ENV, EVENT_LOG_ENV, JWT_PUBLIC_KEY_ENV, JWT_SECRET_ENV, OAUTH_CONFIG_ENV,
    SERVE_ENV, SUBJECT_ENV,
};
pub use lifecycle::pid_alive;
pub use options::{
    AuthMode, Bundled, ParseNameError, ServeError, ServeOptions, TlsFiles, Transport,
};
use tokio_util::sync::CancellationToken;
use transport::{http, sse, stdio};

/// Start of the one line an HTTP server prints on stdout once it is listening; the rest
/// of the line is JSON: `{"url":"http://127.0.0.1:PORT/mcp","port":PORT,"pid":PID,"transport":"http"}`.
///
/// ```
/// use mcp_harness_servers::READY_PREFIX;
/// let line = r#"MCP_HARNESS_READY {"url":"http://127.0.0.1:4000/mcp","port":4000,"pid":7,"transport":"http"}"#;
/// let json: serde_json::Value =
///     serde_json::from_str(line.strip_prefix(READY_PREFIX).unwrap()).unwrap();
/// assert_eq!(json["port"], 4000);
/// ```
pub const READY_PREFIX: &str = "MCP_HARNESS_READY ";

fn init_tracing() {
    // rmcp logs every JSON-RPC error response at WARN; the `error` tool makes those
    // routine, so they are hidden unless RUST_LOG asks for them.
    // RUST_LOG in its target=level form (`warn,rmcp=debug`); no regular expressions.
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            "warn,rmcp::service=error"
                .parse()
                .expect("a valid target filter")
        });
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Another subscriber may already be installed (in-process use): keep it.
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}

fn check_options(opts: &ServeOptions) -> Result<(), ServeError> {
    if let Some(pid) = opts.watch_pid {
        lifecycle::check_pid(pid)?;
    }
    if opts.transport == Transport::Http {
        http::validate_path(&opts.path)?;
    }
    Ok(())
}

/// Runs a bundled server until SIGTERM/SIGINT, stdin EOF (stdio), or the exit of
/// `opts.watch_pid`; all of these return `Ok(())`.
///
/// Blocking: builds its own multi-thread tokio runtime, so call it from a plain thread,
/// not from inside a runtime. Over HTTP it binds `opts.host:opts.port`, writes
/// `opts.port_file` if set, then prints the [`READY_PREFIX`] line on stdout. Over stdio
/// stdout carries only the protocol. Logs go to stderr (`RUST_LOG`, default `warn`).
///
/// # Errors
///
/// [`ServeError`] if the options are invalid or unsupported, a secret the auth mode
/// needs is missing, the port cannot be bound, or the stdio session cannot start.
pub fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    init_tracing();
    check_options(&opts)?;
    events::init();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("mcp-harness-server")
        .enable_all()
        .build()
        .map_err(ServeError::io("building the tokio runtime"))?;
    let result = runtime.block_on(async move {
        match opts.transport {
            Transport::Stdio => {
                let server = bundled::server(opts.server)?;
                stdio::serve(opts, server).await
            }
            Transport::Http | Transport::Sse => serve_http(opts).await,
        }
    });
    // A blocked stdin read must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// If [`SERVE_ENV`] is set, serves the [`ServeOptions`] it holds and exits the process:
/// status 0 after a normal stop, 2 (with a message on stderr) if the JSON is invalid or
/// [`serve`] fails. Returns immediately when the variable is absent.
///
/// Safe to call before `main` (e.g. from a `#[ctor]`): it relies on nothing `main`
/// sets up. [`SERVE_ENV`] is removed from the environment first, so the server's own
/// children do not become servers too.
///
/// ```
/// // In a binary's `main` (or a constructor), before anything else:
/// mcp_harness_servers::serve_from_env_if_requested();
/// ```
pub fn serve_from_env_if_requested() {
    let Some(raw) = std::env::var_os(SERVE_ENV) else {
        return;
    };
    // SAFETY: `remove_var` is unsafe only because another thread could read the
    // environment at the same time. This runs before the server starts any thread,
    // typically before `main`, when the process has a single thread.
    unsafe { std::env::remove_var(SERVE_ENV) };
    let opts = match raw
        .to_str()
        .ok_or_else(|| "it is not valid UTF-8".to_owned())
        .and_then(|s| {
            serde_json::from_str::<ServeOptions>(s).map_err(|source| {
                ServeError::BadOptions {
                    var: SERVE_ENV,
                    source,
                }
                .to_string()
            })
        }) {
        Ok(opts) => opts,
        Err(message) => {
            eprintln!("mcp-harness-servers: cannot start a bundled server: {message}");
            std::process::exit(2);
        }
    };
    let what = format!("{} on {}", opts.server, opts.transport);
    match serve(opts) {
        Ok(()) => {
            let _ = std::io::stdout().flush();
            std::process::exit(0)
        }
        Err(error) => {
            eprintln!("mcp-harness-servers: bundled server {what} failed: {error}");
            std::process::exit(2);
        }
    }
}

/// Serves `opts` over streamable HTTP on an already-bound listener, in the current
/// tokio runtime, until `shutdown` is cancelled (then waits at most about a second for
/// open connections). Prints no READY line and writes no port file; `opts.transport`,
/// `opts.port`, `opts.port_file` and `opts.watch_pid` are ignored.
///
/// ```no_run
/// # async fn demo() -> Result<(), mcp_harness_servers::ServeError> {
/// use mcp_harness_servers::{Bundled, ServeOptions, Transport, serve_http_on};
/// use tokio_util::sync::CancellationToken;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let url = format!("http://{}/mcp", listener.local_addr().unwrap());
/// let shutdown = CancellationToken::new();
/// let server = tokio::spawn(serve_http_on(
///     listener,
///     ServeOptions::new(Bundled::FastTest, Transport::Http),
///     shutdown.clone(),
/// ));
/// // ... talk to `url` ...
/// shutdown.cancel();
/// server.await.unwrap()?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`ServeError`] if the options are invalid or a secret the auth mode needs is missing.
pub async fn serve_http_on(
    listener: tokio::net::TcpListener,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    http::validate_path(&opts.path)?;
    let auth = gate::Auth::from_env(opts.auth)?;
    let addr = listener
        .local_addr()
        .map_err(ServeError::io("reading the listener's address"))?;
    let tls = opts
        .tls
        .as_ref()
        .map(transport::tls::acceptor)
        .transpose()?;
    let app = http::build_app(&opts, bundled::server(opts.server)?, auth, addr);
    http::run(listener, app, shutdown, tls).await
}

/// Serves `opts` over the legacy HTTP+SSE transport on an already-bound listener, in the
/// current tokio runtime, until `shutdown` is cancelled; like [`serve_http_on`] otherwise.
/// The event stream is at `/sse`, messages go to `/message?sessionId=...`.
///
/// ```no_run
/// # async fn demo() -> Result<(), mcp_harness_servers::ServeError> {
/// use mcp_harness_servers::{Bundled, ServeOptions, Transport, serve_sse_on};
/// use tokio_util::sync::CancellationToken;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let url = format!("http://{}/sse", listener.local_addr().unwrap());
/// let shutdown = CancellationToken::new();
/// let server = tokio::spawn(serve_sse_on(
///     listener,
///     ServeOptions::new(Bundled::FastTest, Transport::Sse),
///     shutdown.clone(),
/// ));
/// // ... talk to `url` ...
/// shutdown.cancel();
/// server.await.unwrap()?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`ServeError`] if a secret the auth mode needs is missing.
pub async fn serve_sse_on(
    listener: tokio::net::TcpListener,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let auth = gate::Auth::from_env(opts.auth)?;
    let addr = listener
        .local_addr()
        .map_err(ServeError::io("reading the listener's address"))?;
    let tls = opts
        .tls
        .as_ref()
        .map(transport::tls::acceptor)
        .transpose()?;
    let app = sse::build_app(&opts, bundled::server(opts.server)?, auth, addr);
    http::run(listener, app, shutdown, tls).await
}

/// Serves streamable HTTP or legacy SSE, as `opts.transport` says.
async fn serve_http(opts: ServeOptions) -> Result<(), ServeError> {
    let auth = gate::Auth::from_env(opts.auth)?;
    // A bad certificate or key fails before anything listens or a READY line is printed.
    let tls = opts
        .tls
        .as_ref()
        .map(transport::tls::acceptor)
        .transpose()?;
    let wanted = std::net::SocketAddr::new(opts.host, opts.port);
    let listener = tokio::net::TcpListener::bind(wanted)
        .await
        .map_err(|source| ServeError::Bind {
            addr: wanted,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(ServeError::io("reading the listener's address"))?;
    let server = bundled::server(opts.server)?;
    let (app, endpoint) = if opts.transport == Transport::Sse {
        (sse::build_app(&opts, server, auth, addr), sse::SSE_PATH)
    } else {
        (
            http::build_app(&opts, server, auth, addr),
            opts.path.as_str(),
        )
    };
    if let Some(path) = &opts.port_file {
        lifecycle::write_port_file(path, addr.port())?;
    }
    let url = format!("{}{}", http::base_url(addr, opts.tls.is_some()), endpoint);
    #[derive(serde::Serialize)]
    struct Ready<'a> {
        url: &'a str,
        port: u16,
        pid: u32,
        transport: &'static str,
    }
    let ready = serde_json::to_string(&Ready {
        url: &url,
        port: addr.port(),
        pid: std::process::id(),
        transport: opts.transport.as_str(),
    })
    .map_err(|e| ServeError::Io {
        what: "serializing the READY line",
        source: e.into(),
    })?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{READY_PREFIX}{ready}")
            .and_then(|()| stdout.flush())
            .map_err(ServeError::io("printing the READY line on stdout"))?;
    }
    tracing::info!(%url, "listening");
    let shutdown = CancellationToken::new();
    let stopper = {
        let shutdown = shutdown.clone();
        let stop = lifecycle::stop_requested(opts.watch_pid)?;
        tokio::spawn(async move {
            let reason = stop.await;
            tracing::info!(reason, "stopping");
            shutdown.cancel();
        })
    };
    let result = http::run(listener, app, shutdown, tls).await;
    stopper.abort();
    result
}
