//! fast-test: `echo`, `add`, `sleep` (honours cancellation), `fail`, `error`, `big`,
//! `counter` (per session), `routed_echo` (an `x-mcp-header` argument), `notify`,
//! `touch`, `progress`, `log`, `ask_user`, `ask_llm` and `ask_forever` (in `asking`; plus the shared `whoami` and `stats`, and the conformance suite's
//! `server-stateless` diagnostics `test_missing_capability`, `test_streaming_elicitation`,
//! `test_logging_tool`, `test_trigger_tool_change`, `test_trigger_prompt_change`); the
//! `fast-test://readme` resource; the `greeting` prompt.
//!
//! It serves both protocol eras. The asking tools ask through server-to-client requests
//! in the handshake era and with `input_required` results in the stateless era; `notify`
//! and `touch` reach the session (handshake era) or every `subscriptions/listen` stream
//! (stateless era); its list results carry cache hints in the stateless era.

// Logging is deprecated by SEP-2577 but still part of the protocol versions we serve.
#![allow(deprecated)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CacheScope, CallToolResult, ContentBlock, ErrorCode, GetPromptRequestParams,
        GetPromptResult, LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam,
        Prompt, PromptArgument, PromptMessage, ReadResourceResult, Resource, ResourceContents,
        Role, ServerCapabilities,
    },
    schemars,
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Value, json};

mod asking;

use crate::{
    handler::{BundledServer, Handler, era::Era, listen, no_prompt, no_resource, text},
    options::Bundled,
};

fn internal(what: &str, e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("{what}: {e}"), None)
}

/// The largest payload `big` produces.
const MAX_BIG_BYTES: u64 = 256 * 1024 * 1024;

const README_URI: &str = "fast-test://readme";
const README: &str = "fast-test is a bundled MCP server of mcp-harness.\n\
It answers quickly and deterministically so that tests measure the harness, not the server.\n\
Tools: echo, routed_echo, add, sleep, fail, error, big, counter, whoami, notify, touch, \
progress, log, ask_user, ask_llm, ask_forever, stats.\n";

/// The cache hints of its list results in the stateless era: the lists are the same for
/// every caller, and `notify` announces a change.
const CACHE_TTL_MS: u64 = 30_000;

// ---------------------------------------------------------------------------------------
// Tool arguments

#[derive(Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Deserialize)]
struct RoutedEchoArgs {
    region: String,
    text: String,
}

/// The input schema of `routed_echo`: `region` is mirrored in the `Mcp-Param-Region`
/// header (SEP-2243), so that gateways can route on it without reading the body.
fn routed_echo_input() -> Arc<serde_json::Map<String, Value>> {
    let schema = json!({
        "type": "object",
        "properties": {
            "region": {
                "type": "string",
                "description": "Where the call is routed; also sent as the Mcp-Param-Region header",
                "x-mcp-header": "Region"
            },
            "text": { "type": "string", "description": "The text to send back" }
        },
        "required": ["region", "text"]
    });
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
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

impl From<ListKind> for listen::ListKind {
    fn from(kind: ListKind) -> Self {
        match kind {
            ListKind::Tools => Self::Tools,
            ListKind::Resources => Self::Resources,
            ListKind::Prompts => Self::Prompts,
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct NotifyArgs {
    /// Which list_changed notification to send: tools, resources or prompts.
    kind: ListKind,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct TouchArgs {
    /// The resource that changed (default: fast-test://readme).
    #[serde(default)]
    uri: Option<String>,
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

// ---------------------------------------------------------------------------------------
// Tools

#[tool_router(router = test_tools, vis = "pub(crate)")]
impl Handler {
    /// Returns the text unchanged.
    #[tool]
    fn echo(&self, Parameters(EchoArgs { text: t }): Parameters<EchoArgs>) -> CallToolResult {
        text(t)
    }

    /// Returns "region: text". Its `region` argument travels in the Mcp-Param-Region
    /// header too (x-mcp-header); over streamable HTTP in the stateless era the server
    /// refuses a call whose header and body disagree.
    #[tool(input_schema = routed_echo_input())]
    fn routed_echo(
        &self,
        Parameters(RoutedEchoArgs { region, text: t }): Parameters<RoutedEchoArgs>,
    ) -> CallToolResult {
        text(format!("{region}: {t}"))
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
        let counter = self.sleeping();
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
        let n = self.session_counter().fetch_add(1, Ordering::Relaxed) + 1;
        text(n.to_string())
    }

    /// Sends notifications/{tools,resources,prompts}/list_changed: to this session
    /// (handshake era) or to every subscriptions/listen stream that asked for it
    /// (stateless era).
    #[tool]
    async fn notify(
        &self,
        Parameters(NotifyArgs { kind }): Parameters<NotifyArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text(self.announce_list_changed(kind.into(), &ctx).await?))
    }

    /// Announces that a resource changed (notifications/resources/updated, default uri
    /// fast-test://readme): to this session if it subscribed with resources/subscribe
    /// (handshake era), or to every subscriptions/listen stream listening to the uri
    /// (stateless era).
    #[tool]
    async fn touch(
        &self,
        Parameters(TouchArgs { uri }): Parameters<TouchArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let uri = uri.unwrap_or_else(|| README_URI.to_owned());
        Ok(text(self.announce_resource_updated(&uri, &ctx).await?))
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
    /// with logging/setLevel, or, in the stateless era, the request's _meta logLevel; no
    /// log at all without one).
    #[tool]
    async fn log(
        &self,
        Parameters(LogArgs { level, message }): Parameters<LogArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if !self.log_enabled(&ctx, level) {
            return Ok(text(match Era::of(&ctx) {
                Era::Handshake => "filtered by logging/setLevel",
                Era::Stateless => "filtered by the request's _meta logLevel",
            }));
        }
        ctx.peer
            .notify_logging_message(
                LoggingMessageNotificationParam::new(level, Value::from(message))
                    .with_logger(self.kind().as_str()),
            )
            .await
            .map_err(|e| internal("sending the log message", e))?;
        Ok(text("logged"))
    }
}

// ---------------------------------------------------------------------------------------
// The server

/// fast-test: its tools plus the shared `whoami` and `stats`, the readme resource and the
/// greeting prompt.
pub(crate) struct FastTest;

impl BundledServer for FastTest {
    fn kind(&self) -> Bundled {
        Bundled::FastTest
    }

    fn tools(&self) -> ToolRouter<Handler> {
        Handler::test_tools()
            + Handler::asking_tools()
            + Handler::diagnostic_tools()
            + Handler::common_tools()
    }

    fn capabilities(&self) -> ServerCapabilities {
        ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .build()
    }

    fn instructions(&self) -> &'static str {
        "A fast MCP server for tests: echo, routed_echo, add, sleep, fail, error, big, counter, \
         whoami, notify, touch, progress, log, ask_user, ask_llm, ask_forever and stats \
         tools; the fast-test://readme resource; the greeting prompt."
    }

    fn resource_subscriptions(&self) -> bool {
        true
    }

    fn cache_hints(&self) -> Option<(u64, CacheScope)> {
        Some((CACHE_TTL_MS, CacheScope::Public))
    }

    fn list_resources(&self) -> Result<Vec<Resource>, ErrorData> {
        Ok(vec![
            Resource::new(README_URI, "readme")
                .with_description("What fast-test is")
                .with_mime_type("text/plain")
                .with_size(README.len() as u64),
        ])
    }

    fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        if uri == README_URI {
            return Ok(ReadResourceResult::new(vec![
                ResourceContents::text(README, README_URI).with_mime_type("text/plain"),
            ]));
        }
        Err(no_resource(uri))
    }

    fn list_prompts(&self) -> Result<Vec<Prompt>, ErrorData> {
        Ok(vec![Prompt::new(
            "greeting",
            Some("A one-message prompt greeting someone"),
            Some(vec![
                PromptArgument::new("name")
                    .with_description("Who to greet")
                    .with_required(true),
            ]),
        )])
    }

    fn get_prompt(&self, request: &GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
        if request.name != "greeting" {
            return Err(no_prompt(&request.name));
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
        .with_description("Greets someone"))
    }
}
