//! The `conformance` server: the tools, resources, prompts and completions that the
//! official MCP conformance suite (`@modelcontextprotocol/conformance`) calls in its
//! server scenarios, with the contents and behaviour those scenarios check.
//!
//! Tools that need the client (`test_sampling`, the elicitation tools) send it
//! `sampling/createMessage` or `elicitation/create` during the call and report its
//! answer; when the client did not declare the capability the call fails with
//! `isError: true` instead of sending a request the client cannot answer.

// Logging and sampling are deprecated by SEP-2577 but part of the versions the suite tests.
#![allow(deprecated)]

use std::{sync::Arc, time::Duration};

use base64::{Engine as _, prelude::BASE64_STANDARD};
use rmcp::{
    ErrorData, RoleServer,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CallToolResult, CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock,
        CreateMessageRequestParams, ElicitRequestParams, GetPromptRequestParams, GetPromptResult,
        ListResourceTemplatesResult, LoggingLevel, LoggingMessageNotificationParam,
        ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ReadResourceResult,
        Reference, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities,
    },
    schemars,
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    handler::{BundledServer, Handler},
    options::Bundled,
};

/// The server's `instructions`.
pub(crate) const INSTRUCTIONS: &str = "A spec-complete MCP server for testing clients and \
     gateways: the tools, resources, prompts and completions of the official MCP conformance \
     suite's server scenarios (test_simple_text, test_sampling, test_elicitation, \
     test://static-text, test_simple_prompt, ...).";

/// What the server declares: everything the suite's server scenarios use.
pub(crate) fn capabilities() -> ServerCapabilities {
    ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .enable_resources()
        .enable_resources_subscribe()
        .enable_resources_list_changed()
        .enable_prompts()
        .enable_prompts_list_changed()
        .enable_logging()
        .enable_completions()
        .build()
}

/// The conformance server: everything below, plugged into the handler.
pub(crate) struct Conformance;

impl BundledServer for Conformance {
    fn kind(&self) -> Bundled {
        Bundled::Conformance
    }

    fn tools(&self) -> ToolRouter<Handler> {
        Handler::conformance_tools()
    }

    fn capabilities(&self) -> ServerCapabilities {
        capabilities()
    }

    fn instructions(&self) -> &'static str {
        INSTRUCTIONS
    }

    fn list_resources(&self) -> Result<Vec<Resource>, ErrorData> {
        Ok(resources())
    }

    fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        read_resource(uri)
    }

    fn list_resource_templates(&self) -> ListResourceTemplatesResult {
        ListResourceTemplatesResult::with_all_items(resource_templates())
    }

    fn resource_subscriptions(&self) -> bool {
        true
    }

    fn list_prompts(&self) -> Result<Vec<Prompt>, ErrorData> {
        Ok(prompts())
    }

    fn get_prompt(&self, request: &GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
        get_prompt(request)
    }

    fn complete(&self, request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
        complete(request)
    }
}

/// A 1x1 red PNG.
const RED_PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A short silent WAV (8 kHz, mono, 8-bit PCM, 10 ms), base64-encoded.
fn silent_wav() -> String {
    const RATE: u32 = 8000;
    const SAMPLES: u32 = RATE / 100;
    let mut wav = Vec::with_capacity(44 + SAMPLES as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + SAMPLES).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&RATE.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&1u16.to_le_bytes()); // block align
    wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&SAMPLES.to_le_bytes());
    wav.resize(44 + SAMPLES as usize, 0x80); // 8-bit PCM silence
    BASE64_STANDARD.encode(wav)
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

fn tool_error(s: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(s)])
}

// ---------------------------------------------------------------------------------------
// Tools

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

/// The input schema of `json_schema_2020_12_tool`: JSON Schema 2020-12 keywords
/// (`$schema`, `$defs`, `$ref`, `additionalProperties`) that must reach the client intact.
fn json_schema_2020_12_input() -> Arc<Map<String, Value>> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" }
                }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" }
        },
        "additionalProperties": false
    });
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

/// Sends a logging/message at `level` unless `logging/setLevel` filters it out.
async fn log(
    handler: &Handler,
    ctx: &RequestContext<RoleServer>,
    level: LoggingLevel,
    message: &str,
) -> Result<(), ErrorData> {
    if !handler.log_enabled(level) {
        return Ok(());
    }
    ctx.peer
        .notify_logging_message(
            LoggingMessageNotificationParam::new(level, Value::from(message))
                .with_logger("conformance"),
        )
        .await
        .map_err(|e| ErrorData::internal_error(format!("sending a log message: {e}"), None))
}

/// The `isError` result for a tool that needs a client capability (`what`) the client did not
/// declare at initialize; `None` when `declared` says it did.
fn undeclared(
    ctx: &RequestContext<RoleServer>,
    what: &str,
    declared: impl Fn(&rmcp::model::ClientCapabilities) -> bool,
) -> Option<CallToolResult> {
    let ok = ctx
        .peer
        .peer_info()
        .is_some_and(|info| declared(&info.capabilities));
    (!ok).then(|| tool_error(format!("the client did not declare the {what} capability")))
}

/// Sends `elicitation/create` with `requested_schema` and reports the answer.
async fn elicit(
    ctx: &RequestContext<RoleServer>,
    message: &str,
    requested_schema: Value,
) -> Result<CallToolResult, ErrorData> {
    if let Some(refusal) = undeclared(ctx, "elicitation", |c| c.elicitation.is_some()) {
        return Ok(refusal);
    }
    let params: ElicitRequestParams = serde_json::from_value(json!({
        "mode": "form",
        "message": message,
        "requestedSchema": requested_schema,
    }))
    .map_err(|e| ErrorData::internal_error(format!("building the elicitation: {e}"), None))?;
    match ctx.peer.create_elicitation(params).await {
        Ok(answer) => {
            let action = serde_json::to_value(&answer.action).unwrap_or(Value::Null);
            let action = action.as_str().unwrap_or("unknown");
            let content = answer.content.unwrap_or(Value::Null);
            Ok(text(format!(
                "Elicitation completed: action={action}, content={content}"
            )))
        }
        Err(e) => Ok(tool_error(format!("elicitation failed: {e}"))),
    }
}

/// The text of a sampling answer (`content` is one block or, since 2025-11-25, a list).
fn sampled_text(answer: &Value) -> String {
    let content = &answer["content"];
    let block = match content {
        Value::Array(blocks) => blocks.iter().find(|b| b["type"] == "text"),
        other => Some(other),
    };
    match block.and_then(|b| b["text"].as_str()) {
        Some(s) => s.to_owned(),
        None => content.to_string(),
    }
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
        log(self, &ctx, LoggingLevel::Info, "Tool execution started").await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        log(self, &ctx, LoggingLevel::Info, "Tool processing data").await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        log(self, &ctx, LoggingLevel::Info, "Tool execution completed").await?;
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(refusal) = undeclared(&ctx, "sampling", |c| c.sampling.is_some()) {
            return Ok(refusal);
        }
        let params: CreateMessageRequestParams = serde_json::from_value(json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": 100,
        }))
        .map_err(|e| ErrorData::internal_error(format!("building the request: {e}"), None))?;
        match ctx.peer.create_message(params).await {
            Ok(answer) => {
                let answer = serde_json::to_value(&answer).unwrap_or(Value::Null);
                Ok(text(format!("LLM response: {}", sampled_text(&answer))))
            }
            Err(e) => Ok(tool_error(format!("sampling failed: {e}"))),
        }
    }

    /// Asks the user (elicitation/create) for a username and an email, with `message`.
    #[tool]
    async fn test_elicitation(
        &self,
        Parameters(ElicitationArgs { message }): Parameters<ElicitationArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = json!({
            "type": "object",
            "properties": {
                "username": { "type": "string", "description": "User's response" },
                "email": { "type": "string", "description": "User's email address" }
            },
            "required": ["username", "email"]
        });
        elicit(&ctx, &message, schema).await
    }

    /// Elicitation whose schema has a default for every primitive type (SEP-1034).
    #[tool]
    async fn test_elicitation_sep1034_defaults(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
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
        elicit(
            &ctx,
            "Please review and update the form fields with defaults",
            schema,
        )
        .await
    }

    /// Elicitation whose schema has all five enum forms of SEP-1330.
    #[tool]
    async fn test_elicitation_sep1330_enums(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
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
        elicit(&ctx, "Please select options from the enum fields", schema).await
    }

    /// Tool with JSON Schema 2020-12 features ($schema, $defs, $ref, additionalProperties).
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

// ---------------------------------------------------------------------------------------
// Resources

const STATIC_TEXT_URI: &str = "test://static-text";
const STATIC_BINARY_URI: &str = "test://static-binary";
const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";

/// `resources/list`.
pub(crate) fn resources() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT_URI, "static-text")
            .with_description("A static text resource")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY_URI, "static-binary")
            .with_description("A static binary resource (a 1x1 PNG)")
            .with_mime_type("image/png"),
        Resource::new(WATCHED_URI, "watched-resource")
            .with_description("A resource to subscribe to")
            .with_mime_type("text/plain"),
    ]
}

/// `resources/templates/list`.
pub(crate) fn resource_templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE, "template-data")
            .with_description("JSON data for an id: test://template/{id}/data")
            .with_mime_type("application/json"),
    ]
}

/// The `{id}` of a `test://template/{id}/data` URI.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix("test://template/")?
        .strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// `resources/read`.
pub(crate) fn read_resource(uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let contents = match uri {
        STATIC_TEXT_URI => {
            ResourceContents::text("This is the content of the static text resource.", uri)
                .with_mime_type("text/plain")
        }
        STATIC_BINARY_URI => ResourceContents::blob(RED_PIXEL_PNG, uri).with_mime_type("image/png"),
        WATCHED_URI => {
            ResourceContents::text("Watched resource content", uri).with_mime_type("text/plain")
        }
        _ => match template_id(uri) {
            Some(id) => ResourceContents::text(
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                    .to_string(),
                uri,
            )
            .with_mime_type("application/json"),
            None => {
                return Err(ErrorData::resource_not_found(
                    format!(
                        "no resource {uri:?}; resources/list and resources/templates/list \
                         show the ones this server has"
                    ),
                    None,
                ));
            }
        },
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

// ---------------------------------------------------------------------------------------
// Prompts

/// `prompts/list`.
pub(crate) fn prompts() -> Vec<Prompt> {
    vec![
        Prompt::new(
            "test_simple_prompt",
            Some("A simple prompt without arguments"),
            None,
        ),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with two required arguments"),
            Some(vec![
                PromptArgument::new("arg1")
                    .with_description("First test argument")
                    .with_required(true),
                PromptArgument::new("arg2")
                    .with_description("Second test argument")
                    .with_required(true),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt that embeds a resource"),
            Some(vec![
                PromptArgument::new("resourceUri")
                    .with_description("URI of the resource to embed")
                    .with_required(true),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt with an image"),
            None,
        ),
    ]
}

/// The string argument `name` of a `prompts/get` request, or an invalid-params error.
fn prompt_arg<'a>(request: &'a GetPromptRequestParams, name: &str) -> Result<&'a str, ErrorData> {
    request
        .arguments
        .as_ref()
        .and_then(|args| args.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ErrorData::invalid_params(
                format!("prompt {} needs the string argument {name:?}", request.name),
                None,
            )
        })
}

/// `prompts/get`.
pub(crate) fn get_prompt(request: &GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
    let messages = match request.name.as_str() {
        "test_simple_prompt" => vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )],
        "test_prompt_with_arguments" => {
            let arg1 = prompt_arg(request, "arg1")?;
            let arg2 = prompt_arg(request, "arg2")?;
            vec![PromptMessage::new_text(
                Role::User,
                format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
            )]
        }
        "test_prompt_with_embedded_resource" => {
            let uri = prompt_arg(request, "resourceUri")?;
            vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::resource(
                        ResourceContents::text("Embedded resource content for testing.", uri)
                            .with_mime_type("text/plain"),
                    ),
                ),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ]
        }
        "test_prompt_with_image" => vec![
            PromptMessage::new(Role::User, ContentBlock::image(RED_PIXEL_PNG, "image/png")),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ],
        other => {
            return Err(ErrorData::invalid_params(
                format!("no prompt {other:?}; prompts/list shows the ones this server has"),
                None,
            ));
        }
    };
    Ok(GetPromptResult::new(messages))
}

// ---------------------------------------------------------------------------------------
// Completion

/// Suggestions for `test_prompt_with_arguments`'s arguments.
const SUGGESTIONS: [&str; 5] = ["paris", "park", "party", "test", "testing"];

/// `completion/complete`: the prompt's argument suggestions (and template ids) that start
/// with the typed value.
pub(crate) fn complete(request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
    let typed = request.argument.value.as_str();
    let values: Vec<String> = match &request.r#ref {
        Reference::Prompt(prompt) if prompt.name == "test_prompt_with_arguments" => SUGGESTIONS
            .iter()
            .filter(|s| s.starts_with(typed))
            .map(|s| (*s).to_owned())
            .collect(),
        Reference::Resource(template) if template.uri == TEMPLATE => ["1", "2", "3", "123"]
            .iter()
            .filter(|s| s.starts_with(typed))
            .map(|s| (*s).to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let total = u32::try_from(values.len()).unwrap_or(u32::MAX);
    let mut info = CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?;
    info.total = Some(total);
    info.has_more = Some(false);
    Ok(CompleteResult::new(info))
}
