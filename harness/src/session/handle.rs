//! The handle tests hold: [`Session`], `Clone + Send + Sync`, usable from any runtime.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, CustomNotification,
    CustomRequest, GetPromptRequest, GetPromptRequestParams, GetPromptResult, Implementation,
    PingRequest, Prompt, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResult,
    Resource, ServerResult, Tool,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient};
use tokio::sync::broadcast;

use super::builder::{SessionBuilder, connect_with_retries};
use super::connection::{Connection, ProcessRef};
use super::era::Era;
use super::notifications::{LogLevel, Notifications};
use super::rounds;
use super::target::Target;
use crate::errors::{Error, Result};
use crate::runtime;
use crate::transport::Transport;

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
    pub(super) inner: Arc<SessionInner>,
    /// This handle's request timeout, when it differs from the builder's.
    pub(super) request_timeout: Option<Duration>,
    /// This handle's log level for its requests (stateless era), when it differs from the
    /// session's.
    pub(super) log_level: Option<LogLevel>,
}

pub(super) struct SessionInner {
    pub(super) cfg: Arc<SessionBuilder>,
    pub(super) conn: RwLock<Arc<Connection>>,
    pub(super) seq: u64,
    /// The log level every request carries (stateless era), set by `set_log_level`.
    pub(super) log_level: RwLock<Option<LogLevel>>,
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
            log_level: self.log_level,
        }
    }

    /// The log level this handle's requests carry, if any.
    pub(super) fn log_level(&self) -> Option<LogLevel> {
        self.log_level.or(*self
            .inner
            .log_level
            .read()
            .unwrap_or_else(|p| p.into_inner()))
    }

    fn request_timeout(&self) -> Duration {
        self.request_timeout
            .unwrap_or(self.inner.cfg.request_timeout)
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.inner.cfg.target.transport()
    }

    pub(super) fn conn(&self) -> Arc<Connection> {
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

    /// What the server advertised it can do (from its `initialize` or `server/discover`
    /// result): a test, or `check`, asks only for what is there.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// # let session: mcp_harness::Session = unimplemented!();
    /// if session.server_capabilities().resources.is_some() {
    ///     session.list_resources().await?;
    /// }
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn server_capabilities(&self) -> rmcp::model::ServerCapabilities {
        self.conn().capabilities.clone()
    }

    /// What the server asked this session's client side so far (elicitation, sampling, roots),
    /// in order, each as `{"method": .., "params": ..}`, answered or not.
    pub fn asked(&self) -> Vec<serde_json::Value> {
        self.conn()
            .shared
            .asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The protocol version negotiated with the server (`2025-11-25`, `2026-07-28`, ...).
    pub fn protocol_version(&self) -> String {
        self.conn().protocol_version.clone()
    }

    /// The protocol era this session speaks.
    pub fn era(&self) -> Era {
        Era::of(&self.conn().protocol_version)
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
            missed: 0,
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

    /// JSON-RPC error -32022 (the server does not support the request's protocol version),
    /// as the typed error that names both sides.
    fn version_error(&self, e: Error, conn: &Connection) -> Error {
        match e {
            Error::Mcp {
                code: -32022,
                message,
                data,
                ..
            } => Error::UnsupportedVersion {
                session: self.name().to_owned(),
                target: self.inner.cfg.target.describe(),
                offered: vec![conn.protocol_version.clone()],
                supported: data
                    .as_ref()
                    .and_then(|d| d.get("supported"))
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                hint: format!(
                    "the server refused a request with error -32022 ({message}); pin one of \
                     its versions with the session's protocol setting"
                ),
            },
            other => other,
        }
    }

    /// Checks that the server answers: `ping` in the handshake era; in the stateless era,
    /// which has no `ping`, a `server/discover` round trip stands in.
    pub async fn ping(&self) -> Result<()> {
        match self.era() {
            Era::Handshake => self
                .send("ping", ClientRequest::PingRequest(PingRequest::default()))
                .await
                .map(|_| ()),
            Era::Stateless => self
                .send(
                    "server/discover",
                    ClientRequest::DiscoverRequest(rmcp::model::DiscoverRequest::new(
                        rmcp::model::DiscoverRequestParams {},
                    )),
                )
                .await
                .map(|_| ()),
        }
    }

    /// Lists the server's tools (all pages).
    pub async fn list_tools(&self) -> Result<Vec<Tool>> {
        Ok(self.tools_listing().await?.items)
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
        Ok(self.resources_listing().await?.items)
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
        Ok(self.prompts_listing().await?.items)
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

    /// Sends any JSON-RPC request and returns its `result` as JSON, as the server sent it.
    ///
    /// In the stateless era the request carries the `_meta` every request must (protocol
    /// version, client info and capabilities, and the log level if one is set). No
    /// `input_required` round is answered here: a test that drives the rounds itself gets the
    /// `input_required` result and sends `inputResponses` and `requestState` back.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// # let session: mcp_harness::Session = unimplemented!();
    /// let result = session.request("tools/call", serde_json::json!({"name": "echo", "arguments": {"text": "hi"}})).await?;
    /// assert_eq!(result["content"][0]["text"], "hi");
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub async fn request(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let params = (!params.is_null()).then_some(params);
        let req = ClientRequest::CustomRequest(CustomRequest::new(method.to_owned(), params));
        let timeout = self.request_timeout();
        let result = self.send_once(method, req, timeout, timeout).await?;
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

    pub(super) fn unexpected(&self, method: &str, got: &ServerResult) -> Error {
        Error::Protocol {
            session: self.name().to_owned(),
            method: method.to_owned(),
            detail: format!("expected a `{method}` result, got {}", short_json(got)),
        }
    }

    /// Sends one request and, in the stateless era, answers its `input_required` rounds from
    /// the session's scripted answers until a final result (bounded by `max_input_rounds`; the
    /// request timeout bounds all rounds together).
    pub(super) async fn send(&self, method: &str, request: ClientRequest) -> Result<ServerResult> {
        let timeout = self.request_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let cfg = &self.inner.cfg;
        let mut request = request;
        let mut rounds = 0usize;
        let mut state_only = 0u32;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let result = self
                .send_once(method, request.clone(), left, timeout)
                .await?;
            let ServerResult::InputRequiredResult(asked) = result else {
                return Ok(result);
            };
            if self.era() == Era::Handshake {
                return Err(Error::Protocol {
                    session: self.name().to_owned(),
                    method: method.to_owned(),
                    detail: "an `input_required` result on a handshake-era session (only \
                             2026-07-28 and later have them; this server must send requests \
                             such as elicitation/create instead)"
                        .into(),
                });
            }
            let answered = rounds::answer(
                self.name(),
                method,
                &cfg.answers,
                &self.conn().shared.asked,
                request,
                asked,
                &mut state_only,
            )?;
            rounds += 1;
            if rounds >= cfg.max_input_rounds {
                return Err(Error::InputRounds {
                    session: self.name().to_owned(),
                    method: method.to_owned(),
                    rounds,
                    last_asked: answered.asked,
                });
            }
            tracing::debug!(method, round = rounds, asked = ?answered.asked, "input_required answered");
            if !answered.pause.is_zero() {
                runtime::sleep(answered.pause.min(left)).await;
            }
            request = answered.retry;
        }
    }

    /// Sends one request through the owner's peer and waits up to `left` for its answer.
    /// Dropping the returned future (or hitting the bound) sends `notifications/cancelled` for
    /// this request only. `timeout` is the whole bound, for the error.
    async fn send_once(
        &self,
        method: &str,
        request: ClientRequest,
        left: Duration,
        timeout: Duration,
    ) -> Result<ServerResult> {
        let conn = self.conn();
        let name = self.name();
        let peer = conn.peer(name, method)?;
        let mut options = PeerRequestOptions::no_options();
        if let Some(level) = self.log_level() {
            if Era::of(&conn.protocol_version) == Era::Handshake {
                return Err(Error::Invalid {
                    what: format!("log level for `{method}` on session `{name}`"),
                    reason: "per-request log levels exist only in the stateless era \
                             (2026-07-28); this session speaks the handshake era: use \
                             set_log_level"
                        .into(),
                });
            }
            let mut meta = rmcp::model::RequestMetaObject::new();
            meta.0.insert(
                "io.modelcontextprotocol/logLevel".into(),
                serde_json::Value::String(level.as_str().into()),
            );
            options.meta = Some(meta);
        }
        let handle = match peer.send_request_with_option(request, options).await {
            Ok(handle) => handle,
            Err(e) => return Err(conn.settled(conn.map_error(name, method, e, timeout)).await),
        };
        let mut guard = CancelOnDrop {
            pending: conn.shared.pending_cancels.clone(),
            peer: Some(peer),
            id: Some(handle.id.clone()),
            reason: "the caller stopped waiting (future dropped)",
        };
        let outcome = runtime::timeout(left, handle.await_response()).await;
        match outcome {
            Ok(Ok(result)) => {
                guard.disarm();
                Ok(result)
            }
            Ok(Err(e)) => {
                guard.disarm();
                let e = self.version_error(conn.map_error(name, method, e, timeout), &conn);
                Err(conn.settled(e).await)
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

struct CancelOnDrop {
    pending: Arc<super::connection::PendingCancels>,
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
            // Counted before the task starts: the owner flushes pending cancellations before
            // it closes the transport (see `PendingCancels`).
            let pending = self.pending.clone();
            pending.start();
            runtime::spawn(async move {
                let n = rmcp::model::CancelledNotification::new(
                    rmcp::model::CancelledNotificationParam::new(Some(id), Some(reason.to_owned())),
                );
                let _ = peer.send_notification(n.into()).await;
                pending.finish();
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
