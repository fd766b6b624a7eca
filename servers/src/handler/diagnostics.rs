//! The diagnostic tools of the conformance suite's `server-stateless` scenario (SEP-2575),
//! shared by `conformance` and `fast-test` so that both pass it:
//!
//! * `test_missing_capability` needs the client's sampling capability: `-32021` (missing
//!   required client capability) when the request did not declare it;
//! * `test_streaming_elicitation` asks the user something: in the stateless era the
//!   response stream carries only the `input_required` result, never a request;
//! * `test_logging_tool` logs only as the request allows (`_meta` logLevel in the
//!   stateless era, `logging/setLevel` in the handshake era);
//! * `test_trigger_tool_change` / `test_trigger_prompt_change` announce a list change to
//!   the open `subscriptions/listen` streams (to the session in the handshake era).

// Logging and sampling are deprecated by SEP-2577 but part of the versions we serve.
#![allow(deprecated)]

use rmcp::{
    ErrorData, RoleServer,
    handler::server::tool::{InputResponses, RequestState},
    model::{
        CallToolResponse, CallToolResult, ContentBlock, LoggingLevel,
        LoggingMessageNotificationParam,
    },
    service::RequestContext,
    tool, tool_router,
};
use serde_json::{Value, json};

use super::{
    Handler,
    ask::{Answer, Conversation, Question, elicited, sampled_text},
    listen::ListKind,
    text,
};

fn tool_error(s: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(s)])
}

/// The tool's result for an answer: `done` with the answer, the `input_required` result,
/// or the tool error of a failed handshake-era request.
fn finish(
    conv: &Conversation,
    answer: Answer,
    done: impl FnOnce(Value) -> String,
) -> CallToolResponse {
    match answer {
        Answer::Given(value) => text(done(value)).into(),
        Answer::Pending => conv.input_required().into(),
        Answer::Failed(failure) => tool_error(failure).into(),
    }
}

impl Handler {
    /// Sends a `notifications/message` at `level` (logger: the server's name) unless the
    /// request's era filters it out (see [`Handler::log_enabled`]).
    pub(crate) async fn send_log(
        &self,
        ctx: &RequestContext<RoleServer>,
        level: LoggingLevel,
        message: &str,
    ) -> Result<(), ErrorData> {
        if !self.log_enabled(ctx, level) {
            return Ok(());
        }
        ctx.peer
            .notify_logging_message(
                LoggingMessageNotificationParam::new(level, Value::from(message))
                    .with_logger(self.kind().as_str()),
            )
            .await
            .map_err(|e| ErrorData::internal_error(format!("sending a log message: {e}"), None))
    }
}

#[tool_router(router = diagnostic_tools, vis = "pub(crate)")]
impl Handler {
    /// Needs the client's sampling capability: -32021 (missing required client
    /// capability) when the request did not declare it; otherwise asks the LLM to say
    /// something and returns its answer.
    #[tool]
    async fn test_missing_capability(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let bound_to = "tools/call test_missing_capability";
        let mut conv = Conversation::new(&ctx, bound_to, responses, state.as_deref())?;
        let answer = conv
            .ask("sample", Question::sample("Say something", 20))
            .await?;
        Ok(finish(&conv, answer, |v| {
            format!("LLM response: {}", sampled_text(&v))
        }))
    }

    /// Asks the user for a note (elicitation): in the stateless era the response stream
    /// carries only the input_required result, never a server-to-client request.
    #[tool]
    async fn test_streaming_elicitation(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let bound_to = "tools/call test_streaming_elicitation";
        let mut conv = Conversation::new(&ctx, bound_to, responses, state.as_deref())?;
        let schema = json!({
            "type": "object",
            "properties": { "note": { "type": "string" } },
            "required": ["note"]
        });
        let question = Question::elicit("Anything to add?", schema);
        if let Some(refusal) = conv.handshake_refusal(&question) {
            return Ok(tool_error(refusal).into());
        }
        let answer = conv.ask("note", question).await?;
        Ok(finish(&conv, answer, |v| {
            let (action, content) = elicited(&v);
            format!("Elicitation completed: action={action}, content={content}")
        }))
    }

    /// Sends three info log messages, but only as the request allows: at the `_meta`
    /// logLevel in the stateless era (none without one), as logging/setLevel says in
    /// the handshake era.
    #[tool]
    async fn test_logging_tool(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let allowed = self.log_enabled(&ctx, LoggingLevel::Info);
        for message in [
            "Logging tool started",
            "Logging tool working",
            "Logging tool done",
        ] {
            self.send_log(&ctx, LoggingLevel::Info, message).await?;
        }
        Ok(text(if allowed {
            "sent 3 log messages"
        } else {
            "sent no log message: the request did not ask for info logs"
        }))
    }

    /// Announces that the tool list changed: notifications/tools/list_changed to every
    /// subscriptions/listen stream that asked for it (to the session in the handshake
    /// era).
    #[tool]
    async fn test_trigger_tool_change(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text(
            self.announce_list_changed(ListKind::Tools, &ctx).await?,
        ))
    }

    /// Announces that the prompt list changed (like test_trigger_tool_change).
    #[tool]
    async fn test_trigger_prompt_change(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text(
            self.announce_list_changed(ListKind::Prompts, &ctx).await?,
        ))
    }
}
