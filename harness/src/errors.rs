//! The one error type of `mcp-harness`.
//!
//! Every variant says what happened, where (the session, url or command) and, where it helps,
//! what to do next. Messages never carry a secret: tokens and headers are redacted before they
//! get here.

use std::time::Duration;

/// The result type used throughout `mcp-harness`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the harness.
///
/// Match on the variant to tell causes apart (a dead server, a JSON-RPC error, a timeout);
/// print it to tell a human what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server command could not be started at all (not found, not executable, ...).
    #[error(
        "cannot start server `{server}` (`{command}`): {source}; check that the program exists and is executable"
    )]
    Spawn {
        /// The server's name.
        server: String,
        /// The command line, program first.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A server process exited before it became ready.
    #[error("server `{server}` (`{command}`) exited with {status} before it became ready{}", tail_suffix(.log_tail))]
    ExitedEarly {
        /// The server's name.
        server: String,
        /// The command line, program first.
        command: String,
        /// How it exited (`exit status 1`, `signal 9 (SIGKILL)`).
        status: String,
        /// The last lines of its stderr (and stdout when it is not the protocol channel).
        log_tail: String,
    },

    /// A server did not become ready within its startup deadline.
    #[error("server `{server}` (`{command}`) was not ready after {after:?}: {waiting_for}; raise the startup timeout or check its logs{}", tail_suffix(.log_tail))]
    NotReady {
        /// The server's name.
        server: String,
        /// The command line, program first.
        command: String,
        /// The deadline that passed.
        after: Duration,
        /// What readiness was waiting for.
        waiting_for: String,
        /// The last lines of its logs.
        log_tail: String,
    },

    /// Connecting (and initializing) failed, after all attempts.
    #[error("cannot connect to {target}: {reason} after {attempts} attempt(s){}{}", server_suffix(.server_state), tail_suffix(.log_tail))]
    Connect {
        /// The url, or the stdio command.
        target: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        reason: String,
        /// What the server process was doing, when the harness knows the process.
        server_state: Option<String>,
        /// The last lines of the server's logs, when known.
        log_tail: String,
    },

    /// The server refused the credentials (HTTP 401/403). Never retried.
    #[error(
        "{target} refused the credentials of session `{session}`: {reason}; check the token or the client's `token`/`headers` in the config"
    )]
    Unauthorized {
        /// The url.
        target: String,
        /// The named session.
        session: String,
        /// What the server said (never the token).
        reason: String,
    },

    /// The server answered a request with a JSON-RPC error.
    #[error("session `{session}`: `{method}` failed with JSON-RPC error {code}: {message}")]
    Mcp {
        /// The named session.
        session: String,
        /// The request's method.
        method: String,
        /// The JSON-RPC error code (`-32601` is "method not found").
        code: i32,
        /// The error message.
        message: String,
        /// The error's `data`, if any.
        data: Option<serde_json::Value>,
    },

    /// The session's transport is gone: the server died, closed the connection or the session
    /// was shut down.
    #[error("session `{session}`: `{method}` failed: {reason}{}; open a new session (or `reconnect()`)", server_suffix(.server_state))]
    Closed {
        /// The named session.
        session: String,
        /// The request's method (or `connect`).
        method: String,
        /// Why the transport is gone.
        reason: String,
        /// What the server process was doing, when the harness knows the process.
        server_state: Option<String>,
    },

    /// A request got no answer within its deadline. The server was sent `notifications/cancelled`.
    #[error("session `{session}`: `{method}` got no answer within {after:?}{}", server_suffix(.server_state))]
    Timeout {
        /// The named session.
        session: String,
        /// The request's method.
        method: String,
        /// The deadline.
        after: Duration,
        /// What the server process was doing (for example `paused (SIGSTOP)`), when known.
        server_state: Option<String>,
    },

    /// The server sent something the client could not understand.
    #[error("session `{session}`: `{method}`: unexpected answer from the server: {detail}")]
    Protocol {
        /// The named session.
        session: String,
        /// The request's method.
        method: String,
        /// What was wrong.
        detail: String,
    },

    /// The client and the server share no protocol version (JSON-RPC error -32022 from
    /// `server/discover`, or a server of the other era when the session is pinned to one).
    #[error("session `{session}` at {target}: no common protocol version: the client offered {}, the server supports {}; {hint}", .offered.join(", "), if .supported.is_empty() { "none it named".to_owned() } else { .supported.join(", ") })]
    UnsupportedVersion {
        /// The named session.
        session: String,
        /// What the session connects to.
        target: String,
        /// The versions the client offered.
        offered: Vec<String>,
        /// The versions the server said it supports (empty when it did not say).
        supported: Vec<String>,
        /// What to do about it.
        hint: String,
    },

    /// The server asked the client something during a request (an `input_required` round of
    /// the stateless era) that the session's scripted answers do not cover.
    #[error(
        "session `{session}`: `{method}`: the server asked for `{asked}` and the client has no answer: {reason}"
    )]
    Unanswered {
        /// The named session.
        session: String,
        /// The request that was being answered.
        method: String,
        /// What the server asked for (`sampling/createMessage`, ...).
        asked: String,
        /// Why there is no answer, and how to script one.
        reason: String,
    },

    /// The server kept answering a request with `input_required` past the session's round
    /// bound (see `SessionBuilder::max_input_rounds`).
    #[error("session `{session}`: `{method}`: still no result after {rounds} `input_required` round(s) (last asked: {}); the server keeps asking: fix it, or raise the session's max_input_rounds", if .last_asked.is_empty() { "nothing, only a requestState".to_owned() } else { .last_asked.join(", ") })]
    InputRounds {
        /// The named session.
        session: String,
        /// The request's method.
        method: String,
        /// How many rounds were answered.
        rounds: usize,
        /// What the last round asked for.
        last_asked: Vec<String>,
    },

    /// A process-control operation (signal, wait) failed.
    #[error("server `{server}`: cannot {action}: {reason}")]
    Process {
        /// The server's name.
        server: String,
        /// What was attempted (`pause`, `restart`, ...).
        action: String,
        /// Why it failed.
        reason: String,
    },

    /// The pool was closed with `close_all`; nothing can be acquired from it any more.
    #[error(
        "pool is closed: no session can be acquired after close_all(); build a new SessionPool"
    )]
    PoolClosed,

    /// The circuit breaker of this url is open after repeated session-creation failures.
    #[error(
        "circuit breaker for {url} is {state} after {failures} consecutive session-creation failures; acquire fails fast until {retry_in:?} from now (check that the server is up)"
    )]
    CircuitOpen {
        /// The upstream url.
        url: String,
        /// `open`, or `half-open` while the one trial creation runs.
        state: String,
        /// Consecutive creation failures counted.
        failures: u32,
        /// How long until a trial creation is allowed.
        retry_in: Duration,
    },

    /// No session of this key became available within the acquire timeout.
    #[error(
        "no session for pool key {key} within {after:?}: all {max} sessions stay busy; raise max_sessions_per_key or acquire_timeout, or release sessions sooner"
    )]
    AcquireTimeout {
        /// The pool key (hashes only, never a credential).
        key: String,
        /// The acquire timeout.
        after: Duration,
        /// The per-key limit.
        max: usize,
    },

    /// Creating an upstream session took longer than the create timeout (it was cleaned up).
    #[error(
        "creating a session to {url} took longer than {after:?}; the half-made session was closed and its slot freed"
    )]
    CreateTimeout {
        /// The upstream url.
        url: String,
        /// The create timeout.
        after: Duration,
    },

    /// A soft cap of the pool is reached.
    #[error("pool capacity reached: {what} is limited to {limit}")]
    Capacity {
        /// What is capped (`pool keys`, `sessions`).
        what: String,
        /// The cap.
        limit: usize,
    },

    /// A request forwarded to the worker that owns its session got no reply in time.
    #[error(
        "forwarding `{method}` for session {session}... to worker `{owner}` got no reply within {after:?}; the owner may be hung (it still holds the session until its heartbeat expires)"
    )]
    ForwardTimeout {
        /// The first characters of the downstream session id.
        session: String,
        /// The owning worker.
        owner: String,
        /// The request's method.
        method: String,
        /// The forward timeout.
        after: Duration,
    },

    /// The owning worker answered a forwarded request with an error.
    #[error("worker `{owner}` failed `{method}` for session {session}...: {reason}")]
    Forwarded {
        /// The first characters of the downstream session id.
        session: String,
        /// The owning worker.
        owner: String,
        /// The request's method.
        method: String,
        /// The owner's error message.
        reason: String,
    },

    /// An OAuth authorization failed at one step. Never retried.
    #[error(
        "OAuth {step} failed at {target}: {reason}; check the server's OAuth configuration and the client's OAuth settings"
    )]
    OAuth {
        /// The url involved (the MCP endpoint, a metadata document, the token endpoint...).
        target: String,
        /// The step that failed.
        step: OAuthStep,
        /// What went wrong (never a token, code or secret).
        reason: String,
    },

    /// Bad input from the user of the harness (an invalid header, a bad url, ...).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// Why, and what would be valid.
        reason: String,
    },
}

/// The steps of an OAuth authorization, as named in [`Error::OAuth`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthStep {
    /// Finding the authorization server: the 401 challenge, protected resource metadata
    /// (RFC 9728), authorization server metadata (RFC 8414 / OIDC discovery).
    Discovery,
    /// Dynamic client registration (RFC 7591), or checking pre-registered credentials.
    Registration,
    /// The authorization request and the code on the loopback callback.
    Authorization,
    /// Exchanging the code for tokens.
    Token,
    /// The scope asked for was refused.
    Scope,
    /// Refreshing an access token.
    Refresh,
}

impl std::fmt::Display for OAuthStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OAuthStep::Discovery => "discovery",
            OAuthStep::Registration => "registration",
            OAuthStep::Authorization => "authorization",
            OAuthStep::Token => "token exchange",
            OAuthStep::Scope => "scope",
            OAuthStep::Refresh => "token refresh",
        })
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; last log lines:\n{}", tail.trim_end())
    }
}

fn server_suffix(state: &Option<String>) -> String {
    match state {
        Some(s) => format!(" ({s})"),
        None => String::new(),
    }
}

impl Error {
    /// True when retrying the same operation later may succeed (refused connections, timeouts,
    /// a server that is not up yet); false for credentials, protocol and JSON-RPC errors.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::Timeout { .. } | Error::Closed { .. }
        )
    }

    /// The JSON-RPC error code, for [`Error::Mcp`].
    pub fn mcp_code(&self) -> Option<i32> {
        match self {
            Error::Mcp { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The short, stable name of this error's kind (`timeout`, `closed`, `jsonrpc_error`, ...),
    /// for reports, metrics and JSON.
    ///
    /// ```
    /// let e = mcp_harness::Error::PoolClosed;
    /// assert_eq!(e.kind(), "pool_closed");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Spawn { .. } => "spawn",
            Error::ExitedEarly { .. } => "exited_early",
            Error::NotReady { .. } => "not_ready",
            Error::Connect { .. } => "connect",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Mcp { .. } => "jsonrpc_error",
            Error::Closed { .. } => "closed",
            Error::Timeout { .. } => "timeout",
            Error::Protocol { .. } => "protocol",
            Error::UnsupportedVersion { .. } => "unsupported_version",
            Error::Unanswered { .. } => "unanswered",
            Error::InputRounds { .. } => "input_rounds",
            Error::Process { .. } => "process",
            Error::PoolClosed => "pool_closed",
            Error::CircuitOpen { .. } => "circuit_open",
            Error::AcquireTimeout { .. } => "acquire_timeout",
            Error::CreateTimeout { .. } => "create_timeout",
            Error::Capacity { .. } => "capacity",
            Error::OAuth { .. } => "oauth",
            Error::ForwardTimeout { .. } => "forward_timeout",
            Error::Forwarded { .. } => "forwarded",
            Error::Invalid { .. } => "invalid",
        }
    }
}
