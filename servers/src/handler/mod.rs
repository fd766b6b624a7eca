//! The MCP handler shared by the bundled servers (the `conformance` server's tools,
//! resources and prompts are in [`crate::bundled::conformance`]).
//!
//! One [`Shared`] per running server holds what never changes (tool router, server
//! config) and the process-wide statistics; one [`Handler`] per MCP session (stdio: the
//! process; HTTP stateful: each `Mcp-Session-Id`; HTTP stateless: each request) holds
//! the per-session state. Creating a handler costs one allocation.

// Logging is deprecated by SEP-2577 but still part of the protocol versions we serve.
#![allow(deprecated)]

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::ToolCallContext, wrapper::Parameters},
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams,
        CompleteResult, ContentBlock, ErrorCode, GetPromptRequestParams, GetPromptResponse,
        GetPromptResult, Implementation, InitializeRequestParams, InitializeResult,
        ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
        LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
        ProgressNotificationParam, Prompt, PromptArgument, PromptMessage,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
        ResourceContents, Role, ServerCapabilities, ServerConfig, SetLevelRequestParams,
        SubscribeRequestParams, Tool, UnsubscribeRequestParams,
    },
    schemars,
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    Bundled,
    bundled::{conformance, fast_time as time},
    events,
};

/// Set by the HTTP auth layer in the request extensions: who the request is from.
#[derive(Clone, Debug)]
pub(crate) struct AuthSubject(pub Option<Arc<str>>);

/// Set by the session manager wrapper in the `initialize` request extensions.
#[derive(Clone, Debug)]
pub(crate) struct InitSessionId(pub Arc<str>);

/// How the handler is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Stdio,
    HttpStateful,
    HttpStateless,
    /// Legacy HTTP+SSE: one handler per event stream.
    Sse,
}

#[derive(Default)]
struct Stats {
    initializations: AtomicU64,
    by_client: Mutex<HashMap<String, u64>>,
    cancellations: AtomicU64,
    active_sessions: AtomicI64,
    /// `sleep` calls running now (tests wait on it to kill a server under a call).
    sleeping: AtomicI64,
}

/// What every handler of one running server shares.
pub(crate) struct Shared {
    kind: Bundled,
    mode: Mode,
    tools: ToolRouter<Handler>,
    config: ServerConfig,
    stats: Stats,
    /// stdio: the subject from `SUBJECT_ENV`.
    stdio_subject: Option<String>,
}

impl Shared {
    pub(crate) fn new(kind: Bundled, mode: Mode) -> Arc<Self> {
        let (tools, capabilities, instructions) = match kind {
            Bundled::FastTest => (
                Handler::test_tools() + Handler::common_tools(),
                ServerCapabilities::builder()
                    .enable_tools()
                    .enable_tool_list_changed()
                    .enable_resources()
                    .enable_resources_list_changed()
                    .enable_prompts()
                    .enable_prompts_list_changed()
                    .enable_logging()
                    .build(),
                "A fast MCP server for tests: echo, add, sleep, fail, error, big, counter, \
                 whoami, notify, progress, log and stats tools; the fast-test://readme \
                 resource; the greeting prompt.",
            ),
            Bundled::FastTime => (
                Handler::time_tools() + Handler::common_tools(),
                ServerCapabilities::builder()
                    .enable_tools()
                    .enable_tool_list_changed()
                    .build(),
                "Time and time-zone conversion (IANA names): get_system_time, convert_time; \
                 plus whoami and stats.",
            ),
            Bundled::Conformance => (
                Handler::conformance_tools(),
                conformance::capabilities(),
                conformance::INSTRUCTIONS,
            ),
        };
        let config = ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                kind.as_str(),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(instructions);
        let stdio_subject = match mode {
            Mode::Stdio => std::env::var(crate::SUBJECT_ENV)
                .ok()
                .filter(|s| !s.is_empty()),
            _ => None,
        };
        Arc::new(Self {
            kind,
            mode,
            tools,
            config,
            stats: Stats::default(),
            stdio_subject,
        })
    }
}

/// Per-session state.
struct Session {
    shared: Arc<Shared>,
    counter: AtomicU64,
    /// Minimum level `log` sends (index into [`LEVELS`]), set by `logging/setLevel`.
    min_level: AtomicU8,
    /// Set by `initialize`.
    opened: OnceLock<Opened>,
    /// Resource URIs this session subscribed to (`resources/subscribe`).
    subscriptions: Mutex<HashSet<String>>,
}

struct Opened {
    client: String,
    session_id: Option<Arc<str>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(opened) = self.opened.get() else {
            return;
        };
        self.shared
            .stats
            .active_sessions
            .fetch_sub(1, Ordering::Relaxed);
        if matches!(self.shared.mode, Mode::HttpStateful | Mode::Sse) {
            events::record("session_closed", |o| {
                o.insert("client".into(), Value::from(opened.client.as_str()));
                o.insert(
                    "session_id".into(),
                    opened
                        .session_id
                        .as_deref()
                        .map_or(Value::Null, Value::from),
                );
                o.insert(
                    "transport".into(),
                    Value::from(if self.shared.mode == Mode::Sse {
                        "sse"
                    } else {
                        "http"
                    }),
                );
            });
        }
    }
}

/// The MCP handler of both bundled servers.
#[derive(Clone)]
pub(crate) struct Handler {
    session: Arc<Session>,
}

impl Handler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            session: Arc::new(Session {
                shared,
                counter: AtomicU64::new(0),
                min_level: AtomicU8::new(0),
                opened: OnceLock::new(),
                subscriptions: Mutex::new(HashSet::new()),
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.session.shared
    }

    /// Whether a `logging/message` at `level` passes this session's `logging/setLevel`.
    pub(crate) fn log_enabled(&self, level: LoggingLevel) -> bool {
        level_index(level) >= self.session.min_level.load(Ordering::Relaxed)
    }

    /// The resource subscriptions of this session (`resources/subscribe`).
    pub(crate) fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.session
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The client name given at `initialize` (stdio: used for `session_closed`).
    pub(crate) fn client_name(&self) -> Option<String> {
        self.session.opened.get().map(|o| o.client.clone())
    }

    fn record_initialize(&self, client: &str, session_id: Option<Arc<str>>) {
        let stats = &self.shared().stats;
        stats.initializations.fetch_add(1, Ordering::Relaxed);
        {
            let mut by_client = stats.by_client.lock().unwrap_or_else(|e| e.into_inner());
            match by_client.get_mut(client) {
                Some(n) => *n += 1,
                None => {
                    by_client.insert(client.to_owned(), 1);
                }
            }
        }
        let first = self
            .session
            .opened
            .set(Opened {
                client: client.to_owned(),
                session_id: session_id.clone(),
            })
            .is_ok();
        if first {
            stats.active_sessions.fetch_add(1, Ordering::Relaxed);
        }
        let transport = self.transport_name();
        events::record("initialized", |o| {
            o.insert("client".into(), Value::from(client));
            o.insert(
                "session_id".into(),
                session_id.as_deref().map_or(Value::Null, Value::from),
            );
            o.insert("transport".into(), Value::from(transport));
        });
    }

    fn transport_name(&self) -> &'static str {
        match self.shared().mode {
            Mode::Stdio => "stdio",
            Mode::HttpStateful | Mode::HttpStateless => "http",
            Mode::Sse => "sse",
        }
    }

    fn record_cancelled(&self, tool: &str, ctx: &RequestContext<RoleServer>) {
        self.shared()
            .stats
            .cancellations
            .fetch_add(1, Ordering::Relaxed);
        events::record("cancelled", |o| {
            o.insert("tool".into(), Value::from(tool));
            o.insert(
                "request_id".into(),
                serde_json::to_value(&ctx.id).unwrap_or(Value::Null),
            );
        });
    }
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

fn internal(what: &str, e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("{what}: {e}"), None)
}

/// Headers whose values `whoami` never reports.
fn is_secret_header(name: &str) -> bool {
    matches!(
        name,
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-api-key"
    ) || name.contains("token")
        || name.contains("secret")
}

/// The smallest allowed level index of each [`LoggingLevel`], lowest first.
const LEVELS: [LoggingLevel; 8] = [
    LoggingLevel::Debug,
    LoggingLevel::Info,
    LoggingLevel::Notice,
    LoggingLevel::Warning,
    LoggingLevel::Error,
    LoggingLevel::Critical,
    LoggingLevel::Alert,
    LoggingLevel::Emergency,
];

fn level_index(level: LoggingLevel) -> u8 {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0) as u8
}

/// The largest payload `big` produces.
const MAX_BIG_BYTES: u64 = 256 * 1024 * 1024;

const README_URI: &str = "fast-test://readme";
const README: &str = "fast-test is a bundled MCP server of mcp-harness.\n\
It answers quickly and deterministically so that tests measure the harness, not the server.\n\
Tools: echo, add, sleep, fail, error, big, counter, whoami, notify, progress, log, stats.\n";

// ---------------------------------------------------------------------------------------
// Tool arguments

#[derive(Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// First addend.
    a: serde_json::Number,
    /// Second addend.
    b: serde_json::Number,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct SleepArgs {
    /// How long to sleep, in milliseconds.
    ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct FailArgs {
    /// The error text of the result.
    message: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ErrorArgs {
    /// The JSON-RPC error code, e.g. -32000.
    code: i32,
    /// The error message (default: "error requested by the error tool").
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct BigArgs {
    /// Exact size of the text payload, in bytes (at most 256 MiB).
    bytes: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ListKind {
    Tools,
    Resources,
    Prompts,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct NotifyArgs {
    /// Which list_changed notification to send: tools, resources or prompts.
    kind: ListKind,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ProgressArgs {
    /// How many progress notifications to send.
    steps: u32,
    /// Pause between notifications, in milliseconds (default 0).
    #[serde(default)]
    interval_ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct LogArgs {
    /// debug, info, notice, warning, error, critical, alert or emergency.
    level: LoggingLevel,
    /// The message (sent as the notification's `data`).
    message: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct TimeArgs {
    /// IANA time zone name, e.g. "Europe/Paris" or "UTC".
    timezone: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ConvertArgs {
    /// IANA time zone of the given time.
    source_timezone: String,
    /// Time of day to convert, 24-hour "HH:MM".
    time: String,
    /// IANA time zone to convert to.
    target_timezone: String,
}

// ---------------------------------------------------------------------------------------
// Tools shared by both servers

#[tool_router(router = common_tools, vis = "pub(crate)")]
impl Handler {
    /// Server-side statistics, as JSON: initializations (process-wide count of
    /// `initialize` requests), initializations_by_client, cancellations,
    /// active_sessions, sleeping (sleep calls running now), pid.
    #[tool]
    fn stats(&self) -> CallToolResult {
        let stats = &self.shared().stats;
        let by_client: Map<String, Value> = stats
            .by_client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        let body = json!({
            "initializations": stats.initializations.load(Ordering::Relaxed),
            "initializations_by_client": by_client,
            "cancellations": stats.cancellations.load(Ordering::Relaxed),
            "active_sessions": stats.active_sessions.load(Ordering::Relaxed).max(0),
            "sleeping": stats.sleeping.load(Ordering::Relaxed).max(0),
            "pid": std::process::id(),
        });
        text(body.to_string())
    }

    /// Who is calling, as JSON: subject (authenticated identity or null), session_id,
    /// client (clientInfo.name), transport, and the non-secret HTTP request headers.
    #[tool]
    fn whoami(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        let parts = ctx.extensions.get::<http::request::Parts>();
        let subject = match parts {
            Some(parts) => parts
                .extensions
                .get::<AuthSubject>()
                .and_then(|s| s.0.as_deref())
                .map(Value::from)
                .unwrap_or(Value::Null),
            None => self
                .shared()
                .stdio_subject
                .as_deref()
                .map_or(Value::Null, Value::from),
        };
        let session_id = parts
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(Value::from)
            .or_else(|| {
                // SSE: the session id is a query parameter; it was recorded at initialize.
                let opened = self.session.opened.get()?;
                opened.session_id.as_deref().map(Value::from)
            })
            .unwrap_or(Value::Null);
        let client = ctx
            .client_info()
            .filter(|info| *info != Implementation::default())
            .map_or(Value::Null, |info| Value::from(info.name));
        let mut body = Map::new();
        body.insert("subject".into(), subject);
        body.insert("session_id".into(), session_id);
        body.insert("client".into(), client);
        body.insert("transport".into(), Value::from(self.transport_name()));
        if let Some(parts) = parts {
            let mut headers = Map::new();
            for (name, value) in &parts.headers {
                let name = name.as_str();
                let value = if is_secret_header(name) {
                    Value::from("<redacted>")
                } else {
                    Value::from(String::from_utf8_lossy(value.as_bytes()))
                };
                // Repeated headers: keep them all, comma-joined as HTTP allows.
                match headers.get_mut(name) {
                    Some(Value::String(previous)) if value.as_str() != Some("<redacted>") => {
                        previous.push_str(", ");
                        previous.push_str(value.as_str().unwrap_or_default());
                    }
                    Some(_) => {}
                    None => {
                        headers.insert(name.to_owned(), value);
                    }
                }
            }
            body.insert("headers".into(), Value::Object(headers));
        } else {
            body.insert("headers".into(), Value::Object(Map::new()));
        }
        text(Value::Object(body).to_string())
    }
}

// ---------------------------------------------------------------------------------------
// fast-test

#[tool_router(router = test_tools, vis = "pub(crate)")]
impl Handler {
    /// Returns the text unchanged.
    #[tool]
    fn echo(&self, Parameters(EchoArgs { text: t }): Parameters<EchoArgs>) -> CallToolResult {
        text(t)
    }

    /// Adds two numbers; the sum as text (and as structuredContent {"sum": ...}).
    #[tool]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> CallToolResult {
        let sum = match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.checked_add(b).map(Value::from),
            _ => None,
        }
        .unwrap_or_else(|| {
            Value::from(a.as_f64().unwrap_or(f64::NAN) + b.as_f64().unwrap_or(f64::NAN))
        });
        let mut result = text(sum.to_string());
        result.structured_content = Some(json!({ "sum": sum }));
        result
    }

    /// Sleeps for `ms` milliseconds; returns early with "cancelled" when the request is
    /// cancelled (counted in stats and written to the event log).
    #[tool]
    async fn sleep(
        &self,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        /// Counts this call in `stats.sleeping` while it runs, however it ends.
        struct Sleeping<'a>(&'a AtomicI64);
        impl Drop for Sleeping<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let counter = &self.shared().stats.sleeping;
        counter.fetch_add(1, Ordering::Relaxed);
        let _sleeping = Sleeping(counter);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => text(format!("slept {ms} ms")),
            _ = ctx.ct.cancelled() => {
                self.record_cancelled("sleep", &ctx);
                text("cancelled")
            }
        }
    }

    /// Returns a tool result with isError: true and the given text.
    #[tool]
    fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(message)])
    }

    /// Answers with a JSON-RPC error with the given code and message.
    #[tool]
    fn error(
        &self,
        Parameters(ErrorArgs { code, message }): Parameters<ErrorArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Err(ErrorData::new(
            ErrorCode(code),
            message.unwrap_or_else(|| "error requested by the error tool".to_owned()),
            None,
        ))
    }

    /// Returns a text payload of exactly `bytes` bytes.
    #[tool]
    fn big(
        &self,
        Parameters(BigArgs { bytes }): Parameters<BigArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if bytes > MAX_BIG_BYTES {
            return Err(ErrorData::invalid_params(
                format!("big: bytes must be at most {MAX_BIG_BYTES}, got {bytes}"),
                None,
            ));
        }
        Ok(text("x".repeat(bytes as usize)))
    }

    /// Increments and returns this session's counter (starts at 1). Two clients get
    /// the same sequence only if they share a session.
    #[tool]
    fn counter(&self) -> CallToolResult {
        let n = self.session.counter.fetch_add(1, Ordering::Relaxed) + 1;
        text(n.to_string())
    }

    /// Sends notifications/{tools,resources,prompts}/list_changed to this session.
    #[tool]
    async fn notify(
        &self,
        Parameters(NotifyArgs { kind }): Parameters<NotifyArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (sent, name) = match kind {
            ListKind::Tools => (ctx.peer.notify_tool_list_changed().await, "tools"),
            ListKind::Resources => (ctx.peer.notify_resource_list_changed().await, "resources"),
            ListKind::Prompts => (ctx.peer.notify_prompt_list_changed().await, "prompts"),
        };
        sent.map_err(|e| internal("sending the notification", e))?;
        Ok(text(format!("notifications/{name}/list_changed sent")))
    }

    /// Sends `steps` progress notifications with the request's progress token (if
    /// any), then returns "done".
    #[tool]
    async fn progress(
        &self,
        Parameters(ProgressArgs { steps, interval_ms }): Parameters<ProgressArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(token) = ctx.meta.get_progress_token() {
            for step in 1..=steps {
                if interval_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(interval_ms)).await;
                }
                ctx.peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), f64::from(step))
                            .with_total(f64::from(steps)),
                    )
                    .await
                    .map_err(|e| internal("sending progress", e))?;
            }
        }
        Ok(text("done"))
    }

    /// Sends a logging/message notification at `level` (unless below the level set
    /// with logging/setLevel).
    #[tool]
    async fn log(
        &self,
        Parameters(LogArgs { level, message }): Parameters<LogArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if level_index(level) < self.session.min_level.load(Ordering::Relaxed) {
            return Ok(text("filtered by logging/setLevel"));
        }
        ctx.peer
            .notify_logging_message(
                LoggingMessageNotificationParam::new(level, Value::from(message))
                    .with_logger(self.shared().kind.as_str()),
            )
            .await
            .map_err(|e| internal("sending the log message", e))?;
        Ok(text("logged"))
    }
}

// ---------------------------------------------------------------------------------------
// fast-time

#[tool_router(router = time_tools, vis = "pub(crate)")]
impl Handler {
    /// Get the current time in a specific time zone.
    #[tool]
    fn get_system_time(
        &self,
        Parameters(TimeArgs { timezone }): Parameters<TimeArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text(time::system_time(&timezone)?))
    }

    /// Convert a time ("HH:MM", today) between time zones.
    #[tool]
    fn convert_time(
        &self,
        Parameters(ConvertArgs {
            source_timezone,
            time: at,
            target_timezone,
        }): Parameters<ConvertArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text(time::convert_time(
            &source_timezone,
            &at,
            &target_timezone,
        )?))
    }
}

// ---------------------------------------------------------------------------------------
// The ServerHandler

fn method_not_found(method: &str) -> ErrorData {
    ErrorData::new(
        rmcp::model::ErrorCode::METHOD_NOT_FOUND,
        format!("fast-time has no {method}: it is a tools-only server"),
        None,
    )
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        self.shared().config.clone()
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let result = self.negotiate_initialize(&request)?;
        let session_id = context
            .extensions
            .get::<InitSessionId>()
            .map(|s| s.0.clone());
        self.record_initialize(&request.client_info.name, session_id);
        context.peer.set_peer_info(request);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tcc = ToolCallContext::new(self, request, context);
        self.shared().tools.call(tcc).await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.shared().tools.list_all(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared().tools.get(name).cloned()
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session
            .min_level
            .store(level_index(request.level), Ordering::Relaxed);
        Ok(())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = match self.shared().kind {
            Bundled::FastTest => vec![
                Resource::new(README_URI, "readme")
                    .with_description("What fast-test is")
                    .with_mime_type("text/plain")
                    .with_size(README.len() as u64),
            ],
            // Like the reference mcp-server-time: a tools-only server answers -32601 here.
            Bundled::FastTime => return Err(method_not_found("resources/list")),
            Bundled::Conformance => conformance::resources(),
        };
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if self.shared().kind == Bundled::Conformance {
            return conformance::read_resource(&request.uri).map(Into::into);
        }
        if self.shared().kind == Bundled::FastTest && request.uri == README_URI {
            return Ok(ReadResourceResult::new(vec![
                ResourceContents::text(README, README_URI).with_mime_type("text/plain"),
            ])
            .into());
        }
        Err(ErrorData::resource_not_found(
            format!(
                "no resource {:?}; resources/list shows the ones this server has",
                request.uri
            ),
            None,
        ))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let prompts = match self.shared().kind {
            Bundled::FastTest => vec![Prompt::new(
                "greeting",
                Some("A one-message prompt greeting someone"),
                Some(vec![
                    PromptArgument::new("name")
                        .with_description("Who to greet")
                        .with_required(true),
                ]),
            )],
            Bundled::FastTime => return Err(method_not_found("prompts/list")),
            Bundled::Conformance => conformance::prompts(),
        };
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if self.shared().kind == Bundled::Conformance {
            return conformance::get_prompt(&request).map(Into::into);
        }
        if self.shared().kind != Bundled::FastTest || request.name != "greeting" {
            return Err(ErrorData::invalid_params(
                format!(
                    "no prompt {:?}; prompts/list shows the ones this server has",
                    request.name
                ),
                None,
            ));
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|args| args.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ErrorData::invalid_params("prompt greeting needs the argument \"name\"", None)
            })?;
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("Say hello to {name}."),
        )])
        .with_description("Greets someone")
        .into())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(match self.shared().kind {
            Bundled::Conformance => {
                ListResourceTemplatesResult::with_all_items(conformance::resource_templates())
            }
            Bundled::FastTest | Bundled::FastTime => ListResourceTemplatesResult::default(),
        })
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if self.shared().kind != Bundled::Conformance {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("{} has no resources/subscribe", self.shared().kind),
                None,
            ));
        }
        self.subscriptions().insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if self.shared().kind != Bundled::Conformance {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("{} has no resources/unsubscribe", self.shared().kind),
                None,
            ));
        }
        self.subscriptions().remove(&request.uri);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        match self.shared().kind {
            Bundled::Conformance => conformance::complete(&request),
            // rmcp's default: no suggestions.
            Bundled::FastTest | Bundled::FastTime => Ok(CompleteResult::default()),
        }
    }
}
