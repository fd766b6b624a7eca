//! Handler plumbing: the MCP handler every bundled server runs on (each server's own
//! tools, resources and prompts are in `crate::bundled`).
//!
//! One [`Shared`] per running server holds what never changes (tool router, server
//! config) and the process-wide statistics; one [`Handler`] per MCP session (stdio: the
//! process; HTTP stateful: each `Mcp-Session-Id`; HTTP stateless: each request) holds
//! the per-session state. Creating a handler costs one allocation.
//!
//! A bundled server plugs in through [`BundledServer`]; `service` answers the MCP
//! requests, `common_tools` holds the tools fast-test and fast-time share, `diagnostics`
//! the `server-stateless` diagnostic tools fast-test and conformance share. `era` tells a
//! request's protocol era, `ask` asks the client questions in either era, `listen` serves
//! change notifications in either era.
//!
//! Must not import `crate::bundled` (the servers import this module, never the reverse),
//! `crate::transport` or `crate::auth`.

// Logging is deprecated by SEP-2577 but still part of the protocol versions we serve.
#![allow(deprecated)]

pub(crate) mod ask;
mod common_tools;
mod diagnostics;
pub(crate) mod era;
pub(crate) mod listen;
mod service;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering},
    },
};

use futures::future::BoxFuture;
use rmcp::{
    ErrorData, RoleServer,
    handler::server::router::tool::ToolRouter,
    model::{
        CacheScope, CallToolResult, CompleteRequestParams, CompleteResult, ContentBlock,
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation,
        ListResourceTemplatesResult, LoggingLevel, Prompt, ReadResourceResult, Resource,
        ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    task_manager::TaskManager,
};
use serde_json::{Value, json};

use crate::{env::SUBJECT_ENV, events, options::Bundled};
use era::Era;
use listen::Listeners;

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
    /// `server/discover` requests (stateless era).
    discovers: AtomicU64,
    by_client: Mutex<HashMap<String, u64>>,
    cancellations: AtomicU64,
    active_sessions: AtomicI64,
    /// `sleep` calls running now (tests wait on it to kill a server under a call).
    sleeping: AtomicI64,
}

/// What every handler of one running server shares.
pub(crate) struct Shared {
    kind: Bundled,
    /// What the bundled server answers besides its tools.
    server: &'static dyn BundledServer,
    mode: Mode,
    tools: ToolRouter<Handler>,
    config: ServerConfig,
    stats: Stats,
    /// stdio: the subject from `SUBJECT_ENV`.
    stdio_subject: Option<String>,
    /// The open `subscriptions/listen` streams (stateless era).
    listeners: Listeners,
    /// The tasks (SEP-2663) of the process: a task outlives the request (and, in the
    /// stateless era, the handler) that created it. Only servers that advertise the
    /// tasks extension create any; rmcp answers `tasks/*` with -32601 for the others.
    tasks: TaskManager,
}

impl Shared {
    pub(crate) fn new(server: &'static dyn BundledServer, mode: Mode) -> Arc<Self> {
        let kind = server.kind();
        let (tools, capabilities, instructions) =
            (server.tools(), server.capabilities(), server.instructions());
        let config = ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                kind.as_str(),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(instructions);
        let stdio_subject = match mode {
            Mode::Stdio => std::env::var(SUBJECT_ENV).ok().filter(|s| !s.is_empty()),
            _ => None,
        };
        Arc::new(Self {
            kind,
            server,
            mode,
            tools,
            config,
            stats: Stats::default(),
            stdio_subject,
            listeners: Listeners::default(),
            tasks: TaskManager::new(),
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
    /// The client name from the first `server/discover`'s `_meta` (stateless era: no
    /// `initialize`; stdio's `session_closed` names the client with it).
    discovered_by: OnceLock<String>,
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

/// The MCP handler of every bundled server.
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
                discovered_by: OnceLock::new(),
                subscriptions: Mutex::new(HashSet::new()),
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.session.shared
    }

    /// Whether a `logging/message` at `level` may be sent for the request `ctx`: in the
    /// handshake era unless the session's `logging/setLevel` filters it out; in the
    /// stateless era only if the request's `_meta` asked for logs at `level` or below.
    pub(crate) fn log_enabled(
        &self,
        ctx: &RequestContext<RoleServer>,
        level: LoggingLevel,
    ) -> bool {
        match Era::of(ctx) {
            Era::Handshake => level_index(level) >= self.session.min_level.load(Ordering::Relaxed),
            Era::Stateless => era::requested_log_level(ctx)
                .is_some_and(|min| level_index(level) >= level_index(min)),
        }
    }

    /// The resource subscriptions of this session (`resources/subscribe`).
    pub(crate) fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.session
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The client name given at `initialize`, or in the stateless era in the first
    /// `server/discover`'s `_meta` (stdio: used for `session_closed`).
    pub(crate) fn client_name(&self) -> Option<String> {
        self.session
            .opened
            .get()
            .map(|o| o.client.clone())
            .or_else(|| self.session.discovered_by.get().cloned())
    }

    /// Records the client that sent `server/discover` (its `_meta` client info).
    pub(crate) fn discovered_by(&self, client: &str) {
        let _ = self.session.discovered_by.set(client.to_owned());
    }

    /// The bundled server this handler serves.
    pub(crate) fn kind(&self) -> Bundled {
        self.shared().kind
    }

    /// This session's counter (fast-test's `counter` tool).
    pub(crate) fn session_counter(&self) -> &AtomicU64 {
        &self.session.counter
    }

    /// The tasks of this server process (SEP-2663 tasks extension).
    pub(crate) fn tasks(&self) -> &TaskManager {
        &self.shared().tasks
    }

    /// The number of `sleep` calls running now (`stats.sleeping`).
    pub(crate) fn sleeping(&self) -> &AtomicI64 {
        &self.shared().stats.sleeping
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

    pub(crate) fn record_cancelled(&self, tool: &str, ctx: &RequestContext<RoleServer>) {
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

/// A successful tool result with one text block.
pub(crate) fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
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

// ---------------------------------------------------------------------------------------
// What a bundled server plugs in

/// A bundled server as the handler sees it: its tools, what it declares at `initialize`,
/// and its answers to the requests other than tool calls. Each bundled server implements
/// it (see `crate::bundled`); the handler never names one.
pub(crate) trait BundledServer: Sync {
    /// Which server this is (its `serverInfo.name`, its log messages' logger).
    fn kind(&self) -> Bundled;

    /// Its tools.
    fn tools(&self) -> ToolRouter<Handler>;

    /// What it declares at `initialize`.
    fn capabilities(&self) -> ServerCapabilities;

    /// Its `instructions`.
    fn instructions(&self) -> &'static str;

    /// `resources/list`.
    fn list_resources(&self) -> Result<Vec<Resource>, ErrorData>;

    /// `resources/read`; by default there is no resource to read.
    fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        Err(no_resource(uri))
    }

    /// `resources/templates/list`; by default none.
    fn list_resource_templates(&self) -> ListResourceTemplatesResult {
        ListResourceTemplatesResult::default()
    }

    /// Whether `resources/subscribe` and `resources/unsubscribe` are served.
    fn resource_subscriptions(&self) -> bool {
        false
    }

    /// `prompts/list`.
    fn list_prompts(&self) -> Result<Vec<Prompt>, ErrorData>;

    /// `prompts/get`; by default there is no prompt to get.
    fn get_prompt(&self, request: &GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
        Err(no_prompt(&request.name))
    }

    /// `prompts/get` of a prompt that may ask the client first (an `input_required`
    /// result in the stateless era); by default [`Self::get_prompt`].
    fn get_prompt_asking<'a>(
        &'a self,
        request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> BoxFuture<'a, Result<GetPromptResponse, ErrorData>> {
        Box::pin(std::future::ready(
            self.get_prompt(&request).map(Into::into),
        ))
    }

    /// The cache hints (`ttlMs`, `cacheScope`) of its list results in the stateless era;
    /// `None` leaves rmcp's default (0 ms, private).
    fn cache_hints(&self) -> Option<(u64, CacheScope)> {
        None
    }

    /// `completion/complete`.
    fn complete(&self, _request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
        // rmcp's default: no suggestions.
        Ok(CompleteResult::default())
    }
}

/// The `resources/read` error for a URI the server has no resource for.
/// Its `data.uri` names the URI (SEP-2164).
pub(crate) fn no_resource(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("no resource {uri:?}; resources/list shows the ones this server has"),
        Some(json!({ "uri": uri })),
    )
}

/// The `prompts/get` error for a name the server has no prompt for.
pub(crate) fn no_prompt(name: &str) -> ErrorData {
    ErrorData::invalid_params(
        format!("no prompt {name:?}; prompts/list shows the ones this server has"),
        None,
    )
}
