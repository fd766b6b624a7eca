//! fast-test: `echo`, `add`, `sleep` (honours cancellation), `fail`, `error`, `big`,
//! `counter` (per session), `notify`, `progress` and `log` (plus the shared `whoami` and
//! `stats`); the `fast-test://readme` resource; the `greeting` prompt.

// Logging is deprecated by SEP-2577 but still part of the protocol versions we serve.
#![allow(deprecated)]

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CallToolResult, ContentBlock, ErrorCode, GetPromptRequestParams, GetPromptResult,
        LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam, Prompt,
        PromptArgument, PromptMessage, ReadResourceResult, Resource, ResourceContents, Role,
        ServerCapabilities,
    },
    schemars,
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    handler::{BundledServer, Handler, no_prompt, no_resource, text},
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

// ---------------------------------------------------------------------------------------
// Tools

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
        if !self.log_enabled(level) {
            return Ok(text("filtered by logging/setLevel"));
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
        Handler::test_tools() + Handler::common_tools()
    }

    fn capabilities(&self) -> ServerCapabilities {
        ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .build()
    }

    fn instructions(&self) -> &'static str {
        "A fast MCP server for tests: echo, add, sleep, fail, error, big, counter, \
         whoami, notify, progress, log and stats tools; the fast-test://readme \
         resource; the greeting prompt."
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
