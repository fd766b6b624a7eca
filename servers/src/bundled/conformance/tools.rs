//! The suite's tools of the handshake-era scenarios (they serve the stateless era too:
//! the ones that ask the client return `input_required` there).

// Logging and sampling are deprecated by SEP-2577 but part of the versions the suite tests.
#![allow(deprecated)]

use std::{sync::Arc, time::Duration};

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{
        tool::{InputResponses, RequestState},
        wrapper::Parameters,
    },
    model::{
        CallToolResponse, CallToolResult, ContentBlock, LoggingLevel, ProgressNotificationParam,
        ResourceContents,
    },
    schemars,
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{RED_PIXEL_PNG, silent_wav, text, tool_error};
use crate::handler::{
    Handler,
    ask::{Answer, Conversation, Question, elicited, sampled_text},
};

#[derive(Deserialize, schemars::JsonSchema)]
struct SamplingArgs {
    /// The prompt to send to the client's LLM.
    prompt: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ElicitationArgs {
    /// The message to show the user.
    message: String,
}

/// The input schema of `json_schema_2020_12_tool`: JSON Schema 2020-12 keywords that must
/// reach the client intact: `$schema`, `$defs`, `$ref`, `additionalProperties` (SEP-1613),
/// `$anchor`, `allOf`/`anyOf` and `if`/`then`/`else` (SEP-2106).
fn json_schema_2020_12_input() -> Arc<Map<String, Value>> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" }
                }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"]
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    });
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

/// Asks the elicitation `question` (key `elicitation`) and reports the answer as
/// "Elicitation completed: action=..., content=...".
async fn elicit(
    tool: &str,
    ctx: &RequestContext<RoleServer>,
    responses: Option<rmcp::model::InputResponses>,
    state: Option<String>,
    question: Question,
) -> Result<CallToolResponse, ErrorData> {
    let mut conv = Conversation::new(
        ctx,
        format!("tools/call {tool}"),
        responses,
        state.as_deref(),
    )?;
    if let Some(refusal) = conv.handshake_refusal(&question) {
        return Ok(tool_error(refusal).into());
    }
    Ok(match conv.ask("elicitation", question).await? {
        Answer::Given(answer) => {
            let (action, content) = elicited(&answer);
            text(format!(
                "Elicitation completed: action={action}, content={content}"
            ))
            .into()
        }
        Answer::Pending => conv.input_required().into(),
        Answer::Failed(failure) => tool_error(failure).into(),
    })
}

#[tool_router(router = conformance_tools, vis = "pub(crate)")]
impl Handler {
    /// Returns the text "This is a simple text response for testing."
    #[tool]
    fn test_simple_text(&self) -> CallToolResult {
        text("This is a simple text response for testing.")
    }

    /// Returns an image: a 1x1 red PNG.
    #[tool]
    fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(RED_PIXEL_PNG, "image/png")])
    }

    /// Returns audio: a short silent WAV.
    #[tool]
    fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::audio(silent_wav(), "audio/wav")])
    }

    /// Returns an embedded text resource (test://embedded-resource).
    #[tool]
    fn test_embedded_resource(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::resource(
            ResourceContents::text(
                "This is an embedded resource content.",
                "test://embedded-resource",
            )
            .with_mime_type("text/plain"),
        )])
    }

    /// Returns text, an image and an embedded JSON resource in one result.
    #[tool]
    fn test_multiple_content_types(&self) -> CallToolResult {
        CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(RED_PIXEL_PNG, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(
                    json!({ "test": "data", "value": 123 }).to_string(),
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ])
    }

    /// Sends three info log messages, 50 ms apart, while it runs.
    #[tool]
    async fn test_tool_with_logging(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.send_log(&ctx, LoggingLevel::Info, "Tool execution started")
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.send_log(&ctx, LoggingLevel::Info, "Tool processing data")
            .await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.send_log(&ctx, LoggingLevel::Info, "Tool execution completed")
            .await?;
        Ok(text("Tool with logging executed successfully"))
    }

    /// Reports progress 0, 50 and 100 of 100 (50 ms apart) to the request's progress token.
    #[tool]
    async fn test_tool_with_progress(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let token = ctx.meta.get_progress_token();
        for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(token) = &token {
                ctx.peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), progress).with_total(100.0),
                    )
                    .await
                    .map_err(|e| {
                        ErrorData::internal_error(format!("sending progress: {e}"), None)
                    })?;
            }
        }
        Ok(text("Tool with progress executed successfully"))
    }

    /// Always fails: a result with isError: true.
    #[tool]
    fn test_error_handling(&self) -> CallToolResult {
        tool_error("This tool intentionally returns an error for testing")
    }

    /// Asks the client's LLM (sampling/createMessage, maxTokens 100) and returns its
    /// answer as "LLM response: ...".
    #[tool]
    async fn test_sampling(
        &self,
        Parameters(SamplingArgs { prompt }): Parameters<SamplingArgs>,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut conv = Conversation::new(
            &ctx,
            "tools/call test_sampling",
            responses,
            state.as_deref(),
        )?;
        let question = Question::sample(prompt, 100);
        if let Some(refusal) = conv.handshake_refusal(&question) {
            return Ok(tool_error(refusal).into());
        }
        Ok(match conv.ask("sampling", question).await? {
            Answer::Given(answer) => {
                text(format!("LLM response: {}", sampled_text(&answer))).into()
            }
            Answer::Pending => conv.input_required().into(),
            Answer::Failed(failure) => tool_error(failure).into(),
        })
    }

    /// Asks the user (elicitation/create) for a username and an email, with `message`.
    #[tool]
    async fn test_elicitation(
        &self,
        Parameters(ElicitationArgs { message }): Parameters<ElicitationArgs>,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let schema = json!({
            "type": "object",
            "properties": {
                "username": { "type": "string", "description": "User's response" },
                "email": { "type": "string", "description": "User's email address" }
            },
            "required": ["username", "email"]
        });
        elicit(
            "test_elicitation",
            &ctx,
            responses,
            state,
            Question::elicit(message, schema),
        )
        .await
    }

    /// Elicitation whose schema has a default for every primitive type (SEP-1034).
    #[tool]
    async fn test_elicitation_sep1034_defaults(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "User name", "default": "John Doe" },
                "age": { "type": "integer", "description": "User age", "default": 30 },
                "score": { "type": "number", "description": "User score", "default": 95.5 },
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active"
                },
                "verified": { "type": "boolean", "description": "Verified", "default": true }
            }
        });
        let message = "Please review and update the form fields with defaults";
        elicit(
            "test_elicitation_sep1034_defaults",
            &ctx,
            responses,
            state,
            Question::elicit(message, schema),
        )
        .await
    }

    /// Elicitation whose schema has all five enum forms of SEP-1330.
    #[tool]
    async fn test_elicitation_sep1330_enums(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let schema = json!({
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Untitled single-select",
                    "enum": ["option1", "option2", "option3"]
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Titled single-select",
                    "oneOf": [
                        { "const": "value1", "title": "First Option" },
                        { "const": "value2", "title": "Second Option" },
                        { "const": "value3", "title": "Third Option" }
                    ]
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Legacy titled enum",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Untitled multi-select",
                    "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Titled multi-select",
                    "items": {
                        "anyOf": [
                            { "const": "value1", "title": "First Choice" },
                            { "const": "value2", "title": "Second Choice" },
                            { "const": "value3", "title": "Third Choice" }
                        ]
                    }
                }
            }
        });
        let message = "Please select options from the enum fields";
        elicit(
            "test_elicitation_sep1330_enums",
            &ctx,
            responses,
            state,
            Question::elicit(message, schema),
        )
        .await
    }

    /// Tool with JSON Schema 2020-12 features ($schema, $defs, $ref, $anchor,
    /// additionalProperties, allOf/anyOf, if/then/else).
    #[tool(input_schema = json_schema_2020_12_input())]
    fn json_schema_2020_12_tool(&self) -> CallToolResult {
        text("JSON Schema 2020-12 tool called")
    }

    /// Answers after 100 ms. Over streamable HTTP its POST stream ends after the priming
    /// event (SEP-1699 polling): the answer arrives when the client resumes with
    /// `Last-Event-ID`.
    #[tool]
    async fn test_reconnection(&self) -> CallToolResult {
        tokio::time::sleep(Duration::from_millis(100)).await;
        text("Reconnection test completed")
    }
}
