//! The settings of a session ([`SessionBuilder`]) and connecting with retries.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::answers::ClientAnswers;
use super::connection::{Connection, Failure};
use super::era::{PROTOCOL_ENV, Protocol};
use super::handle::{Session, SessionInner};
use super::registry;
use super::target::Target;
use crate::auth::{Credentials, OAuth, OAuthTokens};
use crate::errors::{Error, Result};
use crate::runtime;
use crate::secret::Secret;
use crate::transport::Transport;

/// The settings of a session: where it connects, as whom, and its time bounds.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use std::time::Duration;
/// use mcp_harness::{Session, Target};
/// let alice = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
///     .name("alice")
///     .bearer_token("alice-token")
///     .header("x-tenant-id", "acme")
///     .connect_attempts(5)
///     .request_timeout(Duration::from_secs(10))
///     .connect()
///     .await?;
/// alice.ping().await?;
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Clone)]
pub struct SessionBuilder {
    pub(super) name: String,
    pub(super) target: Target,
    pub(super) bearer: Option<Secret>,
    pub(super) headers: Vec<(String, Secret)>,
    pub(super) oauth: Option<OAuth>,
    pub(super) oauth_tokens: Option<Arc<OAuthTokens>>,
    pub(super) connect_attempts: u32,
    pub(super) initial_backoff: Duration,
    pub(super) max_backoff: Duration,
    pub(super) init_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) close_timeout: Duration,
    pub(super) stdio_exit_grace: Duration,
    pub(super) max_in_flight: usize,
    /// Which era to speak; `None` until [`SessionBuilder::protocol`] or [`PROTOCOL_ENV`]
    /// decides it at connect.
    ///
    /// [`PROTOCOL_ENV`]: crate::PROTOCOL_ENV
    pub(super) chosen_protocol: Option<Protocol>,
    /// What the client side answers when the server asks.
    pub(super) answers: Arc<ClientAnswers>,
    /// The bound on `input_required` rounds per request (stateless era).
    pub(super) max_input_rounds: usize,
    /// Whether a stateless-era session opens `subscriptions/listen`.
    pub(super) listen: bool,
    /// How many notifications a `notifications()` receiver may fall behind.
    pub(super) notification_buffer: usize,
    /// Under `auto`: how long `server/discover` may go unanswered before `initialize`.
    pub(super) discover_timeout: Duration,
    /// The longest message a stdio server may write (one line).
    pub(super) max_message_size: usize,
    /// The era in use, resolved at connect.
    pub(super) protocol: Protocol,
}

impl fmt::Debug for SessionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("name", &self.name)
            .field("target", &self.target.describe())
            .field("bearer", &self.bearer)
            .field("oauth", &self.oauth.is_some())
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("connect_attempts", &self.connect_attempts)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl SessionBuilder {
    /// A session to `target`, named `anonymous` until [`name`](Self::name) is called.
    pub fn new(target: impl Into<Target>) -> Self {
        SessionBuilder {
            name: "anonymous".into(),
            target: target.into(),
            bearer: None,
            headers: Vec::new(),
            oauth: None,
            oauth_tokens: None,
            connect_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            init_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            stdio_exit_grace: Duration::from_millis(500),
            max_in_flight: 1024,
            chosen_protocol: None,
            answers: Arc::default(),
            max_input_rounds: super::rounds::DEFAULT_MAX_ROUNDS,
            listen: true,
            notification_buffer: 64,
            discover_timeout: Duration::from_secs(3),
            max_message_size: 32 * 1024 * 1024,
            protocol: Protocol::default(),
        }
    }

    /// The session's name (alice, bob, ...): used in logs, errors and as the MCP client name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sends `Authorization: Bearer <token>` (HTTP transports). The token is never logged.
    pub fn bearer_token(mut self, token: impl Into<Secret>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// Authorizes with OAuth 2.1 before connecting (HTTP transports): the headless flow of
    /// [`authorize`](crate::authorize) runs once, then every connection of this session
    /// sends the access token and refreshes it when it expires. Flow failures are
    /// [`Error::OAuth`] and are not retried.
    pub fn oauth(mut self, oauth: OAuth) -> Self {
        self.oauth = Some(oauth);
        self
    }

    /// Uses tokens from an earlier [`authorize`](crate::authorize) (refreshed as needed)
    /// instead of running a flow.
    pub fn oauth_tokens(mut self, tokens: Arc<OAuthTokens>) -> Self {
        self.oauth_tokens = Some(tokens);
        self
    }

    pub(super) fn credentials(&self) -> Credentials {
        match (&self.oauth_tokens, &self.bearer) {
            (Some(t), _) => Credentials::OAuth(t.clone()),
            (None, Some(b)) => Credentials::Bearer(b.clone()),
            (None, None) => Credentials::None,
        }
    }

    /// Runs the OAuth flow, if one is configured and has not run yet.
    async fn authorized(mut self) -> Result<Self> {
        if let (Some(oauth), None) = (&self.oauth, &self.oauth_tokens) {
            let url = match &self.target {
                Target::Stdio(_) => {
                    return Err(Error::Invalid {
                        what: format!("OAuth of session `{}`", self.name),
                        reason:
                            "stdio has no HTTP to authorize; use OAuth with an HTTP or SSE target"
                                .into(),
                    });
                }
                other => other.describe(),
            };
            let sse = self.target.transport() == Transport::Sse;
            let tokens =
                crate::auth::authorize_with_headers(&url, sse, &self.headers, oauth).await?;
            self.oauth_tokens = Some(Arc::new(tokens));
        }
        Ok(self)
    }

    /// Sends an extra HTTP header with every request. Values are treated as secrets in logs.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How many times to try to connect (refused connections and timeouts are retried with
    /// exponential backoff; credential and protocol errors are not). Default 3.
    pub fn connect_attempts(mut self, attempts: u32) -> Self {
        self.connect_attempts = attempts.max(1);
        self
    }

    /// The first retry delay, doubled after each attempt up to `max` (default 50 ms .. 2 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The bound on one connect + initialize attempt (default 10 s).
    pub fn init_timeout(mut self, d: Duration) -> Self {
        self.init_timeout = d;
        self
    }

    /// The bound on each request; past it the server is sent `notifications/cancelled` and the
    /// call fails with [`Error::Timeout`] (default 30 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// The bound on closing the session (default 5 s).
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.close_timeout = d;
        self
    }

    /// How long a stdio server may take to exit after its stdin closes before it is signalled
    /// (default 500 ms).
    pub fn stdio_exit_grace(mut self, d: Duration) -> Self {
        self.stdio_exit_grace = d;
        self
    }

    /// How many HTTP requests may be in flight at once on this session (default 1024; rmcp's
    /// own default of 16 throttles concurrent callers).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Which protocol era to speak (default: the handshake era at `2025-11-25`, or what
    /// [`PROTOCOL_ENV`](crate::PROTOCOL_ENV) says). The connected session reports what was
    /// negotiated: [`Session::protocol_version`], [`Session::era`].
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use mcp_harness::{Era, Protocol, Session, Target};
    /// let s = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
    ///     .protocol(Protocol::Stateless("2026-07-28".into()))
    ///     .connect()
    ///     .await?;
    /// assert_eq!(s.era(), Era::Stateless);
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.chosen_protocol = Some(protocol);
        self
    }

    /// What the client side answers when the server asks for elicitation, sampling or roots
    /// (default: decline, refuse, none). [`Session::asked`] shows what was asked.
    pub fn answers(mut self, answers: ClientAnswers) -> Self {
        self.answers = Arc::new(answers);
        self
    }

    /// How many `input_required` rounds one request may take in the stateless era before it
    /// fails with [`Error::InputRounds`] (default 10, as in the official SDKs). Each round
    /// answers the server's questions from [`answers`](Self::answers) and sends the request
    /// again; the request timeout bounds all rounds together.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use mcp_harness::{Error, Protocol, Session, Target};
    /// let s = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
    ///     .protocol(Protocol::Stateless("2026-07-28".into()))
    ///     .max_input_rounds(3)
    ///     .connect()
    ///     .await?;
    /// let err = s.call_tool("ask_forever", serde_json::json!({})).await.unwrap_err();
    /// assert!(matches!(err, Error::InputRounds { rounds: 3, .. }));
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn max_input_rounds(mut self, rounds: usize) -> Self {
        self.max_input_rounds = rounds.max(1);
        self
    }

    /// Whether a stateless-era session listens for the server's list_changed notifications and
    /// resource updates (default: yes, when the server advertises any). The stream is opened
    /// with `subscriptions/listen` before `connect` returns, so [`Session::notifications`] sees
    /// everything sent after it. A session that needs no notifications can save the stream
    /// (a pool of many sessions, say). The handshake era is not affected.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use mcp_harness::{Protocol, Session, Target};
    /// let quiet = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
    ///     .protocol(Protocol::Stateless("2026-07-28".into()))
    ///     .listen(false)
    ///     .connect()
    ///     .await?;
    /// assert_eq!(quiet.listen_id(), None);
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn listen(mut self, on: bool) -> Self {
        self.listen = on;
        self
    }

    /// Under [`Protocol::Auto`]: how long `server/discover` may go unanswered before the session
    /// gives up on it and asks `initialize` on a new connection (a new process, over stdio).
    /// Default 3 s (bounded by the init timeout). A server that answers `server/discover` with
    /// an error falls back at once; this bound is for servers that ignore it. Raise it for a
    /// stateless-era server that is slow to start (the first `npx` run of a package, say).
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use std::time::Duration;
    /// use mcp_harness::{Protocol, ServerSpec, Session, Target};
    /// let s = Session::builder(Target::Stdio(ServerSpec::new("old", "python3").args(["old_server.py"])))
    ///     .protocol(Protocol::Auto)
    ///     .discover_timeout(Duration::from_millis(500))
    ///     .connect()
    ///     .await?;
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn discover_timeout(mut self, d: Duration) -> Self {
        self.discover_timeout = d;
        self
    }

    /// The longest message a server may send, in bytes: a stdio line, a streamable HTTP JSON
    /// body or SSE event (default 32 MiB, room for large tool results). Over stdio a longer
    /// one closes the session at once; over HTTP the request it answers fails. Memory stays
    /// bounded, and the callers' errors say why.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use mcp_harness::{ServerSpec, Session, Target};
    /// let s = Session::builder(Target::Stdio(ServerSpec::new("s", "python3").args(["server.py"])))
    ///     .max_message_size(1024 * 1024)
    ///     .connect()
    ///     .await?;
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1024);
        self
    }

    /// How many notifications a [`Session::notifications`] receiver may fall behind before it
    /// skips the oldest (default 64; [`Notifications::missed`](crate::Notifications::missed)
    /// counts what was skipped). Raise it for a test that reads a burst only after the call
    /// that caused it returns.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use mcp_harness::{Session, Target};
    /// let s = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
    ///     .notification_buffer(1024)
    ///     .connect()
    ///     .await?;
    /// let mut seen = s.notifications();
    /// s.call_tool("progress", serde_json::json!({"steps": 500})).await?;
    /// while seen.next_within(std::time::Duration::from_millis(100)).await.is_some() {}
    /// assert_eq!(seen.missed(), 0);
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn notification_buffer(mut self, n: usize) -> Self {
        self.notification_buffer = n.max(1);
        self
    }

    /// Connects and initializes, retrying retryable failures with exponential backoff.
    ///
    /// Each attempt runs in a fresh owner task on the shared runtime: a failed attempt cleans
    /// up after itself (a spawned stdio server is stopped) before the next one starts.
    pub async fn connect(self) -> Result<Session> {
        let mut cfg = self.authorized().await?;
        cfg.protocol = match cfg.chosen_protocol.clone() {
            Some(p) => p,
            // A suite switched to the stateless era by the environment still tests its legacy
            // HTTP+SSE sessions: that transport exists only in the handshake era, so they keep
            // the default (a stateless pin set on the session itself is refused instead).
            None => match Protocol::from_env()? {
                Protocol::Stateless(v) if cfg.target.transport() == Transport::Sse => {
                    tracing::info!(
                        "{PROTOCOL_ENV}={v} does not apply to legacy HTTP+SSE: speaking the \
                         handshake era"
                    );
                    Protocol::default()
                }
                p => p,
            },
        };
        let cfg = Arc::new(cfg);
        let conn = connect_with_retries(&cfg).await?;
        let inner = Arc::new(SessionInner {
            cfg,
            conn: RwLock::new(conn),
            seq: registry::next_seq(),
            log_level: RwLock::new(None),
        });
        registry::register(&inner);
        Ok(Session {
            inner,
            request_timeout: None,
            log_level: None,
        })
    }
}

pub(super) async fn connect_with_retries(cfg: &Arc<SessionBuilder>) -> Result<Arc<Connection>> {
    let mut delay = cfg.initial_backoff;
    let mut attempt = 0;
    // `auto` asks `server/discover` within the (short) discover bound first; a server that
    // stays silent is asked `initialize` on a fresh connection (rmcp's own fallback waits 10 s).
    let mut attempt_cfg = match cfg.protocol {
        Protocol::Auto => {
            let mut quick = (**cfg).clone();
            quick.init_timeout = cfg.init_timeout.min(cfg.discover_timeout);
            Arc::new(quick)
        }
        _ => cfg.clone(),
    };
    loop {
        attempt += 1;
        let (reason, server_state, log_tail) = match Connection::open(attempt_cfg.clone()).await {
            Ok(conn) => return Ok(conn),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Silent { reason, .. }) if attempt_cfg.protocol == Protocol::Auto => {
                tracing::info!(
                    session = %cfg.name,
                    "{reason}: the server ignores it; falling back to `initialize` on a new \
                     connection"
                );
                let mut handshake = (**cfg).clone();
                handshake.protocol = Protocol::default();
                attempt_cfg = Arc::new(handshake);
                attempt -= 1;
                continue;
            }
            Err(
                Failure::Retryable {
                    reason,
                    server_state,
                    log_tail,
                }
                | Failure::Silent {
                    reason,
                    server_state,
                    log_tail,
                },
            ) => (reason, server_state, log_tail),
        };
        if attempt >= cfg.connect_attempts {
            return Err(Error::Connect {
                target: cfg.target.describe(),
                attempts: attempt,
                reason,
                server_state,
                log_tail,
            });
        }
        tracing::debug!(session = %cfg.name, attempt, %reason, "connect failed, retrying");
        runtime::sleep(delay).await;
        delay = (delay * 2).min(cfg.max_backoff);
    }
}
