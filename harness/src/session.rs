//! Sessions owned by a task: connect, initialize, serve and close all happen in one owner task
//! on the shared runtime; tests hold cheap [`Session`] handles that work from anywhere.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock, Weak};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientRequest,
    CustomNotification, CustomRequest, GetPromptRequest, GetPromptRequestParams, GetPromptResult,
    Implementation, InitializeRequestParams, ListPromptsRequest, ListResourcesRequest,
    ListToolsRequest, PaginatedRequestParams, PingRequest, Prompt, ReadResourceRequest,
    ReadResourceRequestParams, ReadResourceResult, Resource, ServerNotification, ServerResult,
    Tool,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, RoleClient, ServiceError,
};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument as _;

use crate::auth::{Credentials, OAuth, OAuthHttpClient, OAuthTokens};
use crate::errors::{Error, Result};
use crate::process::{ChildProcess, Server, ServerSpec, Transport};
use crate::runtime;
use crate::secret::Secret;

/// What a session connects to.
#[derive(Clone, Debug)]
// Built once per session; boxing the spec would only make every caller write `Box::new`.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Target {
    /// Spawn this command for the session and speak JSON-RPC over its stdin/stdout.
    Stdio(ServerSpec),
    /// A streamable HTTP endpoint (for example `http://127.0.0.1:4000/mcp`).
    Http(String),
    /// A legacy HTTP+SSE endpoint (2024-11-05), the url of its event stream (for example
    /// `http://127.0.0.1:4000/sse`).
    Sse(String),
    /// A server process started with [`Server::start`]; its state is named in errors.
    Server(Server),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Stdio(spec) => {
                format!("stdio server `{}` (`{}`)", spec.name, spec.command_line())
            }
            Target::Http(url) | Target::Sse(url) => url.clone(),
            Target::Server(s) => s.url().to_owned(),
        }
    }

    /// The transport used for this target.
    pub fn transport(&self) -> Transport {
        match self {
            Target::Stdio(_) => Transport::Stdio,
            Target::Http(_) => Transport::StreamableHttp,
            Target::Sse(_) => Transport::Sse,
            Target::Server(s) => s.transport(),
        }
    }
}

impl From<Server> for Target {
    fn from(s: Server) -> Self {
        Target::Server(s)
    }
}

impl From<&Server> for Target {
    fn from(s: &Server) -> Self {
        Target::Server(s.clone())
    }
}

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
    name: String,
    target: Target,
    bearer: Option<Secret>,
    headers: Vec<(String, Secret)>,
    oauth: Option<OAuth>,
    oauth_tokens: Option<Arc<OAuthTokens>>,
    connect_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    init_timeout: Duration,
    request_timeout: Duration,
    close_timeout: Duration,
    stdio_exit_grace: Duration,
    max_in_flight: usize,
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

    fn credentials(&self) -> Credentials {
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

    /// Connects and initializes, retrying retryable failures with exponential backoff.
    ///
    /// Each attempt runs in a fresh owner task on the shared runtime: a failed attempt cleans
    /// up after itself (a spawned stdio server is stopped) before the next one starts.
    pub async fn connect(self) -> Result<Session> {
        let cfg = Arc::new(self.authorized().await?);
        let conn = connect_with_retries(&cfg).await?;
        let inner = Arc::new(SessionInner {
            cfg,
            conn: RwLock::new(conn),
            seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed),
        });
        register(&inner);
        Ok(Session {
            inner,
            request_timeout: None,
        })
    }
}

async fn connect_with_retries(cfg: &Arc<SessionBuilder>) -> Result<Arc<Connection>> {
    let mut delay = cfg.initial_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match Connection::open(cfg.clone()).await {
            Ok(conn) => return Ok(conn),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retryable {
                reason,
                server_state,
                log_tail,
            }) => {
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
    }
}

// ---------------------------------------------------------------------------------------------
// The handle

/// A handle to an MCP client session owned by a task on the shared runtime.
///
/// `Clone + Send + Sync` and cheap to clone; works when awaited from any runtime or thread.
/// A caller that is cancelled (its future dropped, a timeout) cancels only its own request: the
/// server receives `notifications/cancelled`, the session and every other caller go on.
/// Dropping the last handle closes the session; [`shutdown`](Self::shutdown) does it now,
/// within a bound. Sessions still open at process exit are closed last-opened-first.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::{Bundled, ServerSpec, Session, Target, Transport};
/// let session = Session::builder(Target::Stdio(ServerSpec::bundled(Bundled::FastTest, Transport::Stdio)))
///     .name("alice")
///     .connect()
///     .await?;
/// let result = session.call_tool("echo", serde_json::json!({"text": "hi"})).await?;
/// assert_eq!(mcp_harness::tool_text(&result), "hi");
/// session.shutdown().await?;
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
    /// This handle's request timeout, when it differs from the builder's.
    request_timeout: Option<Duration>,
}

struct SessionInner {
    cfg: Arc<SessionBuilder>,
    conn: RwLock<Arc<Connection>>,
    seq: u64,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        let conn = self.conn.read().unwrap_or_else(|p| p.into_inner()).clone();
        conn.close_in_background();
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.inner.cfg.name)
            .field("target", &self.inner.cfg.target.describe())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Session {
    /// Starts building a session to `target`.
    pub fn builder(target: impl Into<Target>) -> SessionBuilder {
        SessionBuilder::new(target)
    }

    /// Connects to `target` with default settings.
    pub async fn connect(target: impl Into<Target>) -> Result<Session> {
        SessionBuilder::new(target).connect().await
    }

    /// The session's name.
    pub fn name(&self) -> &str {
        &self.inner.cfg.name
    }

    /// Another handle to the same session whose requests time out after `d` instead of the
    /// builder's [`request_timeout`](SessionBuilder::request_timeout). The session itself and
    /// its other handles are unchanged: one test can call a slow tool with a short bound and
    /// keep the default elsewhere.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// # use std::time::Duration;
    /// # let session: mcp_harness::Session = unimplemented!();
    /// let impatient = session.with_request_timeout(Duration::from_millis(200));
    /// let err = impatient.call_tool("sleep", serde_json::json!({"ms": 5000})).await.unwrap_err();
    /// assert!(matches!(err, mcp_harness::Error::Timeout { .. }));
    /// session.ping().await?; // the original handle keeps its own timeout
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn with_request_timeout(&self, d: Duration) -> Session {
        Session {
            inner: self.inner.clone(),
            request_timeout: Some(d),
        }
    }

    fn request_timeout(&self) -> Duration {
        self.request_timeout
            .unwrap_or(self.inner.cfg.request_timeout)
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.inner.cfg.target.transport()
    }

    fn conn(&self) -> Arc<Connection> {
        self.inner
            .conn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The server's `serverInfo` from the initialize result.
    pub fn server_info(&self) -> Option<Implementation> {
        self.conn().server_info.clone()
    }

    /// The server process behind a stdio session (its pid and state), if any.
    pub fn server_pid(&self) -> Option<u32> {
        match &self.conn().process {
            Some(ProcessRef::Child(c)) => Some(c.pid),
            Some(ProcessRef::Server(s)) => Some(s.pid()),
            None => None,
        }
    }

    /// The logs of the server process behind this session (stdio child or started server).
    pub fn server_logs(&self) -> String {
        match &self.conn().process {
            Some(ProcessRef::Child(c)) => c.logs(),
            Some(ProcessRef::Server(s)) => s.logs(),
            None => String::new(),
        }
    }

    /// True once the owner task ended, the transport closed or the session was shut down.
    pub fn is_closed(&self) -> bool {
        self.conn().is_closed()
    }

    /// Subscribes to the server's notifications on this session (list_changed, progress,
    /// logging, ...). Only notifications sent after the call are seen.
    pub fn notifications(&self) -> Notifications {
        Notifications {
            rx: match &*self
                .conn()
                .shared
                .notifications
                .lock()
                .unwrap_or_else(|p| p.into_inner())
            {
                Some(tx) => tx.subscribe(),
                // Closed: a receiver whose sender is already gone ends at once.
                None => broadcast::channel(1).1,
            },
        }
    }

    /// Aborts the owner task without a graceful close (a last resort past a cleanup bound).
    pub(crate) fn abort_owner(&self) {
        self.conn().owner.abort();
    }

    /// Closes the session (bounded by the close timeout). Idempotent.
    pub async fn shutdown(&self) -> Result<()> {
        let conn = self.conn();
        let bound =
            self.inner.cfg.close_timeout + self.inner.cfg.stdio_exit_grace + Duration::from_secs(1);
        let done = conn.request_close();
        match runtime::timeout(bound, done).await {
            Ok(_) => Ok(()),
            Err(_) => {
                conn.owner.abort();
                Err(Error::Timeout {
                    session: self.name().to_owned(),
                    method: "shutdown".into(),
                    after: bound,
                    server_state: conn.server_state(),
                })
            }
        }
    }

    /// Closes the current connection (if open) and opens a new one with the same settings;
    /// every clone of this handle uses the new connection.
    pub async fn reconnect(&self) -> Result<()> {
        let old = self.conn();
        let _ = runtime::timeout(self.inner.cfg.close_timeout, old.request_close()).await;
        let fresh = connect_with_retries(&self.inner.cfg).await?;
        *self.inner.conn.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Sends `ping`.
    pub async fn ping(&self) -> Result<()> {
        self.send("ping", ClientRequest::PingRequest(PingRequest::default()))
            .await
            .map(|_| ())
    }

    /// Lists the server's tools (all pages).
    pub async fn list_tools(&self) -> Result<Vec<Tool>> {
        self.list_all(
            "tools/list",
            |p| ClientRequest::ListToolsRequest(ListToolsRequest::with_param_opt(p)),
            |r| match r {
                ServerResult::ListToolsResult(r) => Ok((r.tools, r.next_cursor)),
                other => Err(Box::new(other)),
            },
        )
        .await
    }

    /// Calls a tool with JSON object arguments (`serde_json::json!({...})`, or `null` for none).
    ///
    /// A tool that fails returns `Ok` with `is_error: Some(true)`; a JSON-RPC error is
    /// [`Error::Mcp`].
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: serde_json::Value,
    ) -> Result<CallToolResult> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        match arguments {
            serde_json::Value::Null => {}
            serde_json::Value::Object(map) => params = params.with_arguments(map),
            other => {
                return Err(Error::Invalid {
                    what: format!("arguments for tool `{name}`"),
                    reason: format!("expected a JSON object or null, got {other}"),
                });
            }
        }
        match self
            .send(
                "tools/call",
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            )
            .await?
        {
            ServerResult::CallToolResult(r) => Ok(r),
            other => Err(self.unexpected("tools/call", &other)),
        }
    }

    /// Lists the server's resources (all pages).
    pub async fn list_resources(&self) -> Result<Vec<Resource>> {
        self.list_all(
            "resources/list",
            |p| ClientRequest::ListResourcesRequest(ListResourcesRequest::with_param_opt(p)),
            |r| match r {
                ServerResult::ListResourcesResult(r) => Ok((r.resources, r.next_cursor)),
                other => Err(Box::new(other)),
            },
        )
        .await
    }

    /// Reads a resource.
    pub async fn read_resource(&self, uri: &str) -> Result<ReadResourceResult> {
        let req = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(
            ReadResourceRequestParams::new(uri),
        ));
        match self.send("resources/read", req).await? {
            ServerResult::ReadResourceResult(r) => Ok(r),
            other => Err(self.unexpected("resources/read", &other)),
        }
    }

    /// Lists the server's prompts (all pages).
    pub async fn list_prompts(&self) -> Result<Vec<Prompt>> {
        self.list_all(
            "prompts/list",
            |p| ClientRequest::ListPromptsRequest(ListPromptsRequest::with_param_opt(p)),
            |r| match r {
                ServerResult::ListPromptsResult(r) => Ok((r.prompts, r.next_cursor)),
                other => Err(Box::new(other)),
            },
        )
        .await
    }

    /// Follows `nextCursor` until the last page of a `*/list` method.
    async fn list_all<T>(
        &self,
        method: &str,
        request: impl Fn(Option<PaginatedRequestParams>) -> ClientRequest,
        page: impl Fn(ServerResult) -> std::result::Result<(Vec<T>, Option<String>), Box<ServerResult>>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            match page(self.send(method, request(params)).await?) {
                Ok((items, next)) => {
                    out.extend(items);
                    match next {
                        Some(c) => cursor = Some(c),
                        None => return Ok(out),
                    }
                }
                Err(other) => return Err(self.unexpected(method, &other)),
            }
        }
    }

    /// Gets a prompt with string arguments (`serde_json::json!({"name": "alice"})` or `null`).
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: serde_json::Value,
    ) -> Result<GetPromptResult> {
        let mut params = GetPromptRequestParams::new(name);
        if let serde_json::Value::Object(map) = arguments {
            params = params.with_arguments(map);
        }
        match self
            .send(
                "prompts/get",
                ClientRequest::GetPromptRequest(GetPromptRequest::new(params)),
            )
            .await?
        {
            ServerResult::GetPromptResult(r) => Ok(r),
            other => Err(self.unexpected("prompts/get", &other)),
        }
    }

    /// Sends any JSON-RPC request and returns its `result` as JSON.
    pub async fn request(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let params = (!params.is_null()).then_some(params);
        let req = ClientRequest::CustomRequest(CustomRequest::new(method.to_owned(), params));
        let result = self.send(method, req).await?;
        serde_json::to_value(&result).map_err(|e| Error::Protocol {
            session: self.name().to_owned(),
            method: method.to_owned(),
            detail: e.to_string(),
        })
    }

    /// Sends any JSON-RPC notification.
    pub async fn notify(&self, method: &str, params: serde_json::Value) -> Result<()> {
        let params = (!params.is_null()).then_some(params);
        let conn = self.conn();
        let peer = conn.peer(self.name(), method)?;
        let n = rmcp::model::ClientNotification::CustomNotification(CustomNotification::new(
            method.to_owned(),
            params,
        ));
        peer.send_notification(n)
            .await
            .map_err(|e| conn.map_error(self.name(), method, e, self.request_timeout()))
    }

    fn unexpected(&self, method: &str, got: &ServerResult) -> Error {
        Error::Protocol {
            session: self.name().to_owned(),
            method: method.to_owned(),
            detail: format!("expected a `{method}` result, got {}", short_json(got)),
        }
    }

    /// Sends one request through the owner's peer. Dropping the returned future (or hitting the
    /// request timeout) sends `notifications/cancelled` for this request only.
    async fn send(&self, method: &str, request: ClientRequest) -> Result<ServerResult> {
        let conn = self.conn();
        let name = self.name();
        let peer = conn.peer(name, method)?;
        let timeout = self.request_timeout();
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| conn.map_error(name, method, e, timeout))?;
        let mut guard = CancelOnDrop {
            peer: Some(peer),
            id: Some(handle.id.clone()),
            reason: "the caller stopped waiting (future dropped)",
        };
        let outcome = runtime::timeout(timeout, handle.await_response()).await;
        match outcome {
            Ok(r) => {
                guard.disarm();
                r.map_err(|e| conn.map_error(name, method, e, timeout))
            }
            Err(_) => {
                guard.reason = "request timed out";
                drop(guard);
                Err(Error::Timeout {
                    session: name.to_owned(),
                    method: method.to_owned(),
                    after: timeout,
                    server_state: conn.server_state(),
                })
            }
        }
    }
}

/// Helpers to build requests whose params are optional.
trait WithParamOpt<P> {
    fn with_param_opt(p: Option<P>) -> Self;
}

impl<M: Default, P> WithParamOpt<P> for rmcp::model::RequestOptionalParam<M, P> {
    fn with_param_opt(params: Option<P>) -> Self {
        rmcp::model::RequestOptionalParam {
            method: M::default(),
            params,
            extensions: Default::default(),
        }
    }
}

struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    id: Option<rmcp::model::RequestId>,
    reason: &'static str,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.peer = None;
        self.id = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let (Some(peer), Some(id)) = (self.peer.take(), self.id.take()) {
            let reason = self.reason;
            runtime::spawn(async move {
                let n = rmcp::model::CancelledNotification::new(
                    rmcp::model::CancelledNotificationParam::new(Some(id), Some(reason.to_owned())),
                );
                let _ = peer.send_notification(n.into()).await;
            });
        }
    }
}

fn short_json<T: serde::Serialize>(v: &T) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "<unserializable>".into());
    if s.len() > 200 {
        format!("{}...", &s[..s.floor_char_boundary(200)])
    } else {
        s
    }
}

/// The concatenated text content of a tool result.
///
/// ```
/// use mcp_harness::rmcp::model::{CallToolResult, ContentBlock};
/// let r = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
/// assert_eq!(mcp_harness::tool_text(&r), "ab");
/// ```
pub fn tool_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect()
}

/// Server notifications seen by one session, in order.
///
/// ```no_run
/// # mcp_harness::run(async {
/// # let session: mcp_harness::Session = todo!();
/// use std::time::Duration;
/// let mut seen = session.notifications();
/// session.call_tool("notify", serde_json::json!({"kind": "tools"})).await?;
/// let n = seen.next_within(Duration::from_secs(5)).await.expect("a notification");
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Debug)]
pub struct Notifications {
    rx: broadcast::Receiver<ServerNotification>,
}

impl Notifications {
    /// The next notification, or `None` if the session closed.
    pub async fn next(&mut self) -> Option<ServerNotification> {
        loop {
            match self.rx.recv().await {
                Ok(n) => return Some(n),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next notification within `within`; `None` at the deadline or if the session closed.
    pub async fn next_within(&mut self, within: Duration) -> Option<ServerNotification> {
        runtime::timeout(within, self.next()).await.ok().flatten()
    }

    /// Waits until a notification matches `pred`, within `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        mut pred: impl FnMut(&ServerNotification) -> bool,
    ) -> Option<ServerNotification> {
        runtime::timeout(within, async {
            while let Some(n) = self.next().await {
                if pred(&n) {
                    return Some(n);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}

// ---------------------------------------------------------------------------------------------
// The owner task and its connection

enum ProcessRef {
    Child(Arc<ChildProcess>),
    Server(Server),
}

impl ProcessRef {
    fn describe(&self) -> String {
        match self {
            ProcessRef::Child(c) => c.describe(),
            ProcessRef::Server(s) => s.describe(),
        }
    }
}

/// State shared between the owner task and the handles of one connection.
struct Shared {
    peer: RwLock<Option<Peer<RoleClient>>>,
    closed: RwLock<Option<String>>,
    /// Taken (dropped) when the owner finishes, so that subscribers see the end.
    notifications: Mutex<Option<broadcast::Sender<ServerNotification>>>,
}

type CloseReply = Box<dyn FnOnce() + Send>;

enum Command {
    Close(CloseReply),
}

/// One connection: an owner task and what handles need to reach it.
struct Connection {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    owner: tokio::task::AbortHandle,
    server_info: Option<Implementation>,
    process: Option<ProcessRef>,
}

enum Failure {
    Retryable {
        reason: String,
        server_state: Option<String>,
        log_tail: String,
    },
    Fatal(Error),
}

impl Connection {
    async fn open(cfg: Arc<SessionBuilder>) -> std::result::Result<Arc<Connection>, Failure> {
        // Small: every pooled session carries one; slow subscribers see `Lagged` and skip ahead.
        let (notifications, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            peer: RwLock::new(None),
            closed: RwLock::new(None),
            notifications: Mutex::new(Some(notifications)),
        });
        let (commands, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let span = tracing::info_span!("mcp_session", session = %cfg.name, transport = %cfg.target.transport());
        let owner = runtime::spawn(
            owner_task(cfg.clone(), shared.clone(), cmd_rx, ready_tx).instrument(span),
        );
        match ready_rx.await {
            Ok(Ok((server_info, process))) => Ok(Arc::new(Connection {
                shared,
                commands,
                owner: owner.abort_handle(),
                server_info,
                process,
            })),
            Ok(Err(f)) => Err(f),
            Err(_) => Err(Failure::Fatal(Error::Closed {
                session: cfg.name.clone(),
                method: "connect".into(),
                reason: "the owner task ended before the session was ready".into(),
                server_state: None,
            })),
        }
    }

    fn peer(&self, session: &str, method: &str) -> Result<Peer<RoleClient>> {
        if let Some(reason) = self
            .shared
            .closed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(Error::Closed {
                session: session.to_owned(),
                method: method.to_owned(),
                reason,
                server_state: self.server_state(),
            });
        }
        self.shared
            .peer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::Closed {
                session: session.to_owned(),
                method: method.to_owned(),
                reason: "the session is not connected".into(),
                server_state: self.server_state(),
            })
    }

    fn is_closed(&self) -> bool {
        if self
            .shared
            .closed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return true;
        }
        match &*self.shared.peer.read().unwrap_or_else(|p| p.into_inner()) {
            Some(peer) => peer.is_transport_closed(),
            None => true,
        }
    }

    fn server_state(&self) -> Option<String> {
        self.process.as_ref().map(ProcessRef::describe)
    }

    fn map_error(&self, session: &str, method: &str, e: ServiceError, timeout: Duration) -> Error {
        match e {
            ServiceError::McpError(e) => Error::Mcp {
                session: session.to_owned(),
                method: method.to_owned(),
                code: e.code.0,
                message: e.message.into_owned(),
                data: e.data,
            },
            ServiceError::Timeout { timeout } => Error::Timeout {
                session: session.to_owned(),
                method: method.to_owned(),
                after: timeout,
                server_state: self.server_state(),
            },
            ServiceError::UnexpectedResponse => Error::Protocol {
                session: session.to_owned(),
                method: method.to_owned(),
                detail: "the response did not match the request".into(),
            },
            other => {
                let reason = error_chain(&other);
                if is_auth_failure(&reason) {
                    return Error::Unauthorized {
                        target: session.to_owned(),
                        session: session.to_owned(),
                        reason: crate::auth::rejection_reason_from_chain(&reason, true),
                    };
                }
                let _ = timeout;
                Error::Closed {
                    session: session.to_owned(),
                    method: method.to_owned(),
                    reason,
                    server_state: self.server_state(),
                }
            }
        }
    }

    /// Asks the owner to close; the future completes when it has.
    fn request_close(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, rx) = oneshot::channel::<()>();
        let sent = self
            .commands
            .send(Command::Close(Box::new(move || {
                let _ = tx.send(());
            })))
            .is_ok();
        async move {
            if sent {
                let _ = rx.await;
            }
        }
    }

    fn close_in_background(&self) {
        let _ = self.commands.send(Command::Close(Box::new(|| {})));
    }

    /// Closes and waits on a plain thread (process exit), with a bound.
    fn close_blocking(&self, within: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        if self
            .commands
            .send(Command::Close(Box::new(move || {
                let _ = tx.send(());
            })))
            .is_err()
        {
            return true;
        }
        rx.recv_timeout(within).is_ok()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

/// Whether an error chain is a refusal of the credentials. Matches rmcp's and reqwest's
/// wording, never a bare `401`/`403`: those digits also occur in ports and urls
/// (`127.0.0.1:40123`), which used to turn a dead server into a refusal.
fn is_auth_failure(chain: &str) -> bool {
    let c = chain.to_ascii_lowercase();
    c.contains("auth required")
        || c.contains("authorization required")
        || c.contains("insufficient scope")
        || c.contains("http 401")
        || c.contains("http 403")
        || c.contains("unauthorized")
        || c.contains("forbidden")
}

/// Answers the server's requests and forwards its notifications to subscribers.
struct ClientHandler {
    info: InitializeRequestParams,
    notifications: broadcast::Sender<ServerNotification>,
}

impl rmcp::Service<RoleClient> for ClientHandler {
    async fn handle_request(
        &self,
        request: rmcp::model::ServerRequest,
        _context: RequestContext<RoleClient>,
    ) -> std::result::Result<rmcp::model::ClientResult, rmcp::ErrorData> {
        match request {
            rmcp::model::ServerRequest::PingRequest(_) => Ok(rmcp::model::ClientResult::empty(())),
            _ => Err(rmcp::ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "mcp-harness test client does not handle this request",
                None,
            )),
        }
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        _context: NotificationContext<RoleClient>,
    ) -> std::result::Result<(), rmcp::ErrorData> {
        let _ = self.notifications.send(notification);
        Ok(())
    }

    fn get_info(&self) -> InitializeRequestParams {
        self.info.clone()
    }
}

static HTTP_CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
});

fn http_config(
    cfg: &SessionBuilder,
    url: &str,
) -> std::result::Result<StreamableHttpClientTransportConfig, Error> {
    let mut headers = HashMap::new();
    for (k, v) in &cfg.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| Error::Invalid {
            what: format!("header name `{k}` of session `{}`", cfg.name),
            reason: e.to_string(),
        })?;
        let mut value = http::HeaderValue::from_str(v.expose()).map_err(|_| Error::Invalid {
            what: format!("value of header `{k}` of session `{}`", cfg.name),
            reason: "header values must be visible ASCII".into(),
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .custom_headers(headers)
        .max_concurrent_requests(cfg.max_in_flight)
        .reinit_on_expired_session(false);
    // rmcp's default retries a broken response stream forever: a killed server would leave
    // in-flight calls hanging until their timeout instead of failing with `Closed`.
    config.retry_config = Arc::new(BoundedSseRetry);
    if let (Some(token), None) = (&cfg.bearer, &cfg.oauth_tokens) {
        config = config.auth_header(token.expose().to_owned());
    }
    Ok(config)
}

/// Resumes a broken SSE response stream at most twice, 50 ms apart.
#[derive(Debug)]
struct BoundedSseRetry;

impl rmcp::transport::common::client_side_sse::SseRetryPolicy for BoundedSseRetry {
    fn retry(&self, current_times: usize) -> Option<Duration> {
        (current_times < 2).then_some(Duration::from_millis(50))
    }
}

/// The session's custom headers for the SSE transport (values marked sensitive).
fn sse_headers(cfg: &SessionBuilder) -> std::result::Result<http::HeaderMap, Error> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| Error::Invalid {
            what: format!("header name `{k}` of session `{}`", cfg.name),
            reason: e.to_string(),
        })?;
        let mut value = http::HeaderValue::from_str(v.expose()).map_err(|_| Error::Invalid {
            what: format!("value of header `{k}` of session `{}`", cfg.name),
            reason: "header values must be visible ASCII".into(),
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

type Ready = std::result::Result<(Option<Implementation>, Option<ProcessRef>), Failure>;

async fn owner_task(
    cfg: Arc<SessionBuilder>,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: oneshot::Sender<Ready>,
) {
    let handler = ClientHandler {
        info: InitializeRequestParams::new(
            ClientCapabilities::default(),
            Implementation::new(cfg.name.clone(), env!("CARGO_PKG_VERSION")),
        ),
        notifications: shared
            .notifications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .expect("the owner is the only one that takes the sender, at its end"),
    };
    let target = cfg.target.describe();
    let mut child: Option<Arc<ChildProcess>> = None;
    let started = match &cfg.target {
        Target::Stdio(spec) => match ChildProcess::spawn(spec, 0, true).await {
            Ok(crate::process::Spawned {
                proc,
                pipes: Some(pipes),
                ..
            }) => {
                child = Some(proc.clone());
                let fut = rmcp::serve_client(handler, (pipes.stdout, pipes.stdin));
                tokio::select! {
                    r = runtime::timeout(cfg.init_timeout, fut) => r,
                    status = proc.exited() => {
                        let _ = ready.send(Err(Failure::Fatal(Error::ExitedEarly {
                            server: spec.name.clone(),
                            command: spec.command_line(),
                            status,
                            log_tail: proc.log_tail(20),
                        })));
                        return;
                    }
                }
            }
            Ok(_) => unreachable!("stdio spawn always returns pipes"),
            Err(e) => {
                let _ = ready.send(Err(Failure::Fatal(e)));
                return;
            }
        },
        Target::Http(_) | Target::Server(_) if cfg.target.transport() != Transport::Sse => {
            let url = match &cfg.target {
                Target::Server(s) => s.url().to_owned(),
                Target::Http(u) => u.clone(),
                Target::Stdio(_) | Target::Sse(_) => unreachable!("matched above"),
            };
            let config = match http_config(&cfg, &url) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready.send(Err(Failure::Fatal(e)));
                    return;
                }
            };
            match &cfg.oauth_tokens {
                Some(tokens) => {
                    let client = OAuthHttpClient {
                        inner: HTTP_CLIENT.clone(),
                        tokens: tokens.clone(),
                    };
                    let transport = StreamableHttpClientTransport::with_client(client, config);
                    runtime::timeout(cfg.init_timeout, rmcp::serve_client(handler, transport)).await
                }
                None => {
                    let transport =
                        StreamableHttpClientTransport::with_client(HTTP_CLIENT.clone(), config);
                    runtime::timeout(cfg.init_timeout, rmcp::serve_client(handler, transport)).await
                }
            }
        }
        // Legacy HTTP+SSE: `Target::Sse`, or a started server that speaks it.
        _ => {
            let (url, server_state) = match &cfg.target {
                Target::Server(s) => (s.url().to_owned(), Some(s.describe())),
                other => (other.describe(), None),
            };
            let headers = match sse_headers(&cfg) {
                Ok(h) => h,
                Err(e) => {
                    let _ = ready.send(Err(Failure::Fatal(e)));
                    return;
                }
            };
            let open = crate::sse::SseClientTransport::open(
                HTTP_CLIENT.clone(),
                &url,
                headers,
                cfg.credentials(),
            );
            let failure = match runtime::timeout(cfg.init_timeout, open).await {
                Ok(Ok(transport)) => {
                    // The open above took part of the bound; initialize gets a fresh one.
                    Ok(
                        runtime::timeout(cfg.init_timeout, rmcp::serve_client(handler, transport))
                            .await,
                    )
                }
                Ok(Err(crate::sse::OpenError::Unauthorized(reason))) => {
                    Err(Failure::Fatal(Error::Unauthorized {
                        target: target.clone(),
                        session: cfg.name.clone(),
                        reason,
                    }))
                }
                Ok(Err(crate::sse::OpenError::Failed(reason))) => Err(Failure::Retryable {
                    reason,
                    server_state,
                    log_tail: String::new(),
                }),
                Err(_) => Err(Failure::Retryable {
                    reason: format!("no `endpoint` event within {:?}", cfg.init_timeout),
                    server_state,
                    log_tail: String::new(),
                }),
            };
            match failure {
                Ok(started) => started,
                Err(f) => {
                    let _ = ready.send(Err(f));
                    return;
                }
            }
        }
    };
    let process = match (&child, &cfg.target) {
        (Some(c), _) => Some(ProcessRef::Child(c.clone())),
        (None, Target::Server(s)) => Some(ProcessRef::Server(s.clone())),
        _ => None,
    };
    let running = match started {
        Ok(Ok(running)) => running,
        Ok(Err(e)) => {
            let reason = error_chain(&e);
            if let Some(c) = &child {
                c.stop(Duration::from_millis(200)).await;
            }
            let failure = if is_auth_failure(&reason) {
                Failure::Fatal(Error::Unauthorized {
                    target,
                    session: cfg.name.clone(),
                    reason: match &cfg.target {
                        Target::Http(url) => {
                            crate::auth::diagnose_refusal(
                                &HTTP_CLIENT,
                                url,
                                &cfg.headers,
                                &cfg.credentials(),
                            )
                            .await
                        }
                        Target::Server(s) => {
                            crate::auth::diagnose_refusal(
                                &HTTP_CLIENT,
                                s.url(),
                                &cfg.headers,
                                &cfg.credentials(),
                            )
                            .await
                        }
                        _ => None,
                    }
                    .unwrap_or_else(|| {
                        crate::auth::rejection_reason_from_chain(
                            &reason,
                            !cfg.credentials().is_none(),
                        )
                    }),
                })
            } else {
                Failure::Retryable {
                    reason,
                    server_state: process.as_ref().map(ProcessRef::describe),
                    log_tail: child.as_ref().map(|c| c.log_tail(20)).unwrap_or_default(),
                }
            };
            let _ = ready.send(Err(failure));
            return;
        }
        Err(_) => {
            if let Some(c) = &child {
                c.stop(Duration::from_millis(200)).await;
            }
            let _ = ready.send(Err(Failure::Retryable {
                reason: format!("no initialize result within {:?}", cfg.init_timeout),
                server_state: process.as_ref().map(ProcessRef::describe),
                log_tail: child.as_ref().map(|c| c.log_tail(20)).unwrap_or_default(),
            }));
            return;
        }
    };
    let peer = running.peer().clone();
    let server_info = peer.peer_info().and_then(|i| i.server_info.clone());
    *shared.peer.write().unwrap_or_else(|p| p.into_inner()) = Some(peer);
    let cancel = running.cancellation_token();
    let mut waiting = Box::pin(running.waiting());
    if ready.send(Ok((server_info, process))).is_err() {
        // The caller gave up while we connected: close at once.
        cancel.cancel();
        let _ = runtime::timeout(cfg.close_timeout, &mut waiting).await;
        finish_child(&cfg, child.as_deref()).await;
        return;
    }
    tracing::debug!("session open");
    let mut replies: Vec<CloseReply> = Vec::new();
    let reason = tokio::select! {
        cmd = commands.recv() => {
            if let Some(Command::Close(reply)) = cmd {
                replies.push(reply);
            }
            cancel.cancel();
            if runtime::timeout(cfg.close_timeout, &mut waiting).await.is_err() {
                tracing::warn!("close did not finish within {:?}; abandoning the transport", cfg.close_timeout);
            }
            "the session was shut down".to_owned()
        }
        _ = &mut waiting => "the transport closed (the server went away or closed the connection)".to_owned(),
    };
    *shared.closed.write().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    shared
        .notifications
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    finish_child(&cfg, child.as_deref()).await;
    tracing::debug!("session closed");
    for reply in replies {
        reply();
    }
    // Late close requests are answered at once; the channel ends when every handle is gone.
    commands.close();
    while let Some(Command::Close(reply)) = commands.recv().await {
        reply();
    }
}

async fn finish_child(cfg: &SessionBuilder, child: Option<&ChildProcess>) {
    if let Some(c) = child
        && !c.wait_exit(cfg.stdio_exit_grace).await
    {
        c.stop(Duration::from_millis(500)).await;
    }
}

/// A one-shot MCP initialize round trip, used as a readiness probe.
pub(crate) async fn probe_initialize(
    url: &str,
    transport: Transport,
) -> std::result::Result<(), String> {
    let info = InitializeRequestParams::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-harness-readiness-probe", env!("CARGO_PKG_VERSION")),
    );
    if transport == Transport::Sse {
        let sse = crate::sse::SseClientTransport::open(
            HTTP_CLIENT.clone(),
            url,
            http::HeaderMap::new(),
            Credentials::None,
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        return match rmcp::serve_client(info, sse).await {
            Ok(mut running) => {
                let _ = running.close_with_timeout(Duration::from_secs(1)).await;
                Ok(())
            }
            Err(e) => Err(error_chain(&e)),
        };
    }
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .reinit_on_expired_session(false);
    let transport = StreamableHttpClientTransport::with_client(HTTP_CLIENT.clone(), config);
    match rmcp::serve_client(info, transport).await {
        Ok(mut running) => {
            let _ = running.close_with_timeout(Duration::from_secs(1)).await;
            Ok(())
        }
        Err(e) => Err(error_chain(&e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Teardown at process exit

static NEXT_SEQ: AtomicU64 = AtomicU64::new(0);
type OpenSessions = Mutex<Vec<(u64, Weak<SessionInner>)>>;
static OPEN: LazyLock<OpenSessions> = LazyLock::new(|| Mutex::new(Vec::new()));

fn register(inner: &Arc<SessionInner>) {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    open.retain(|(_, w)| w.strong_count() > 0);
    open.push((inner.seq, Arc::downgrade(inner)));
}

/// Closes every session still open, last opened first, within `within` overall; returns the
/// names in the order they were closed. Called at process exit; tests may call it too.
pub fn close_all_sessions(within: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + within;
    let mut open: Vec<Arc<SessionInner>> = OPEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
        .filter_map(|(_, w)| w.upgrade())
        .collect();
    open.sort_by_key(|s| std::cmp::Reverse(s.seq));
    let mut closed = Vec::new();
    for s in open {
        let conn = s.conn.read().unwrap_or_else(|p| p.into_inner()).clone();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // An owner that already recorded why it closed has nothing left to do.
        let owner_done = conn
            .shared
            .closed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !owner_done && (left.is_zero() || !conn.close_blocking(left)) {
            conn.owner.abort();
        }
        closed.push(s.cfg.name.clone());
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::is_auth_failure;

    #[test]
    fn refusals_are_told_apart_from_ports_that_contain_401() {
        for refusal in [
            "Transport error: authorization required: Bearer resource_metadata=\"x\"",
            "Auth required",
            "insufficient scope: Bearer error=\"insufficient_scope\"",
            "HTTP status client error (401 Unauthorized) for url (http://h/mcp)",
            "HTTP 403",
            "legacy-sse: unauthorized: expired: the JWT has expired",
        ] {
            assert!(is_auth_failure(refusal), "{refusal}");
        }
        for other in [
            "error sending request for url (http://127.0.0.1:40123/mcp): connection refused",
            "error sending request for url (http://127.0.0.1:34031/mcp)",
            "the transport closed (http://127.0.0.1:14030/sse)",
        ] {
            assert!(!is_auth_failure(other), "{other}");
        }
    }
}
