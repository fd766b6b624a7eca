//! The tools and the prompt of the suite's 2026-07-28 server scenarios:
//!
//! * SEP-2322 (`input-required-result-*`): `test_input_required_result_*` tools and the
//!   `test_input_required_result_prompt` prompt. In the stateless era they answer
//!   `input_required` until the retry carries every answer; in the handshake era they ask
//!   through server-to-client requests during the call, so the same tools serve both.
//! * SEP-2575 (`server-stateless`): its diagnostic tools are shared with fast-test (see
//!   `crate::handler` `diagnostic_tools`).
//! * SEP-2243 (`http-custom-header-server-validation`): `test_custom_header`, whose
//!   `region` argument also travels in the `Mcp-Param-Region` header.

// Sampling and roots are deprecated by SEP-2577 but part of the versions the suite tests.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{
        tool::{InputResponses, RequestState},
        wrapper::Parameters,
    },
    model::{
        CallToolResponse, CallToolResult, GetPromptRequestParams, GetPromptResponse,
        GetPromptResult, PromptMessage, Role,
    },
    schemars,
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{text, tool_error};
use crate::handler::{
    Handler,
    ask::{Answer, Conversation, Question, elicited, sampled_text},
    era::Era,
};

/// The prompt of `input-required-result-non-tool-request`.
pub(super) const INPUT_REQUIRED_PROMPT: &str = "test_input_required_result_prompt";

/// A one-string-field elicitation schema.
fn string_form(field: &str) -> Value {
    json!({
        "type": "object",
        "properties": { field: { "type": "string" } },
        "required": [field]
    })
}

fn name_question(message: &str) -> Question {
    Question::elicit(message, string_form("name"))
}

fn confirm_question() -> Question {
    Question::elicit(
        "Please confirm",
        json!({
            "type": "object",
            "properties": { "ok": { "type": "boolean" } },
            "required": ["ok"]
        }),
    )
}

/// The `content` of an elicitation answer (`Null` when declined).
fn content(answer: &Value) -> Value {
    elicited(answer).1
}

/// The URIs of a `roots/list` answer, comma-separated.
fn root_uris(answer: &Value) -> String {
    let uris: Vec<&str> = answer["roots"]
        .as_array()
        .map(|roots| roots.iter().filter_map(|r| r["uri"].as_str()).collect())
        .unwrap_or_default();
    uris.join(", ")
}

/// The conversation of a `tools/call` of `tool`.
fn conversation(
    tool: &str,
    ctx: &RequestContext<RoleServer>,
    responses: Option<rmcp::model::InputResponses>,
    state: Option<String>,
) -> Result<Conversation, ErrorData> {
    Conversation::new(
        ctx,
        format!("tools/call {tool}"),
        responses,
        state.as_deref(),
    )
}

/// Unwraps an [`Answer`]: the value, or the early return of the call (the
/// `input_required` result, or the tool error of a failed handshake-era request).
macro_rules! answer {
    ($conv:expr, $asked:expr) => {
        match $asked {
            Answer::Given(value) => value,
            Answer::Pending => return Ok($conv.input_required().into()),
            Answer::Failed(failure) => return Ok(tool_error(failure).into()),
        }
    };
}

/// An [`Answer`] as an option (to ask several questions in one round).
fn given(answer: Answer) -> Result<Option<Value>, String> {
    match answer {
        Answer::Given(value) => Ok(Some(value)),
        Answer::Pending => Ok(None),
        Answer::Failed(failure) => Err(failure),
    }
}

/// The input schema of `test_custom_header`: `region` mirrored in `Mcp-Param-Region`.
fn custom_header_input() -> Arc<Map<String, Value>> {
    let schema = json!({
        "type": "object",
        "properties": {
            "region": {
                "type": "string",
                "description": "Where to route the call; also sent as the Mcp-Param-Region header",
                "x-mcp-header": "Region"
            },
            "query": { "type": "string", "description": "Free text (not mirrored in a header)" }
        },
        "required": ["region"]
    });
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::default(),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
struct CustomHeaderArgs {
    region: String,
    #[serde(default)]
    query: Option<String>,
}

#[tool_router(router = conformance_stateless_tools, vis = "pub(crate)")]
impl Handler {
    /// Asks the user's name (elicitation, key `user_name`), then says hello.
    #[tool]
    async fn test_input_required_result_elicitation(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "test_input_required_result_elicitation";
        let mut conv = conversation(tool, &ctx, responses, state)?;
        let answer = answer!(
            conv,
            conv.ask("user_name", name_question("What is your name?"))
                .await?
        );
        let name = content(&answer)["name"]
            .as_str()
            .unwrap_or("stranger")
            .to_owned();
        Ok(text(format!("Hello, {name}!")).into())
    }

    /// Asks the client's LLM the capital of France (sampling, key `capital_question`) and
    /// returns its answer.
    #[tool]
    async fn test_input_required_result_sampling(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "test_input_required_result_sampling";
        let mut conv = conversation(tool, &ctx, responses, state)?;
        let question = Question::sample("What is the capital of France?", 100);
        let answer = answer!(conv, conv.ask("capital_question", question).await?);
        Ok(text(format!("LLM response: {}", sampled_text(&answer))).into())
    }

    /// Asks the client's roots (roots/list, key `client_roots`) and lists them.
    #[tool]
    async fn test_input_required_result_list_roots(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "test_input_required_result_list_roots";
        let mut conv = conversation(tool, &ctx, responses, state)?;
        let answer = answer!(conv, conv.ask("client_roots", Question::Roots).await?);
        Ok(text(format!("Client roots: {}", root_uris(&answer))).into())
    }

    /// Asks for a confirmation (key `confirm`) with a sealed requestState; completes only
    /// when the retry echoes that state ("state-ok").
    #[tool]
    async fn test_input_required_result_request_state(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "test_input_required_result_request_state";
        confirm_with_state(tool, &ctx, responses, state).await
    }

    /// Like `test_input_required_result_request_state`: its requestState is sealed, so a
    /// tampered one is refused with -32602.
    #[tool]
    async fn test_input_required_result_tampered_state(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "test_input_required_result_tampered_state";
        confirm_with_state(tool, &ctx, responses, state).await
    }

    /// Asks three questions in one round: the user's name (`user_name`), a greeting from
    /// the LLM (`greeting`) and the client's roots (`client_roots`).
    #[tool]
    async fn test_input_required_result_multiple_inputs(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "test_input_required_result_multiple_inputs";
        let mut conv = conversation(tool, &ctx, responses, state)?;
        let name = conv
            .ask("user_name", name_question("What is your name?"))
            .await?;
        let greeting = conv
            .ask("greeting", Question::sample("Generate a greeting", 50))
            .await?;
        let roots = conv.ask("client_roots", Question::Roots).await?;
        let (name, greeting, roots) = match (given(name), given(greeting), given(roots)) {
            (Ok(Some(n)), Ok(Some(g)), Ok(Some(r))) => (n, g, r),
            (Err(failure), _, _) | (_, Err(failure), _) | (_, _, Err(failure)) => {
                return Ok(tool_error(failure).into());
            }
            _ => return Ok(conv.input_required().into()),
        };
        Ok(text(format!(
            "name={}, greeting={}, roots={}",
            content(&name)["name"].as_str().unwrap_or("?"),
            sampled_text(&greeting),
            root_uris(&roots)
        ))
        .into())
    }

    /// Two rounds: the user's name (`step1`), then their favourite colour (`step2`); the
    /// requestState of round 2 carries the first answer.
    #[tool]
    async fn test_input_required_result_multi_round(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "test_input_required_result_multi_round";
        let mut conv = conversation(tool, &ctx, responses, state)?;
        let step1 = answer!(
            conv,
            conv.ask("step1", name_question("Step 1: What is your name?"))
                .await?
        );
        let colour = Question::elicit("Step 2: What is your favorite color?", string_form("color"));
        let step2 = answer!(conv, conv.ask("step2", colour).await?);
        Ok(text(format!(
            "{}'s favorite color is {}",
            content(&step1)["name"].as_str().unwrap_or("?"),
            content(&step2)["color"].as_str().unwrap_or("?")
        ))
        .into())
    }

    /// Asks only what the client declared it can answer (elicitation, sampling, roots, read
    /// from the request's client capabilities); with none declared there is nothing to ask.
    #[tool]
    async fn test_input_required_result_capabilities(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "test_input_required_result_capabilities";
        let mut conv = conversation(tool, &ctx, responses, state)?;
        let questions = [
            ("user_name", name_question("What is your name?")),
            ("greeting", Question::sample("Generate a greeting", 50)),
            ("client_roots", Question::Roots),
        ];
        let mut answered = Vec::new();
        let mut pending = false;
        for (key, question) in questions {
            if !conv.can_ask(&question) {
                continue;
            }
            match given(conv.ask(key, question).await?) {
                Ok(Some(_)) => answered.push(key),
                Ok(None) => pending = true,
                Err(failure) => return Ok(tool_error(failure).into()),
            }
        }
        if pending {
            return Ok(conv.input_required().into());
        }
        Ok(text(if answered.is_empty() {
            "the client declared none of elicitation, sampling and roots: nothing to ask".to_owned()
        } else {
            format!("answered: {}", answered.join(", "))
        })
        .into())
    }

    /// Echoes `region` (also sent in the Mcp-Param-Region header, which the server checks
    /// against the body) and `query`.
    #[tool(input_schema = custom_header_input())]
    fn test_custom_header(
        &self,
        Parameters(CustomHeaderArgs { region, query }): Parameters<CustomHeaderArgs>,
    ) -> CallToolResult {
        text(format!(
            "region={region}, query={}",
            query.unwrap_or_default()
        ))
    }
}

/// A confirmation whose completion needs the sealed requestState of round 1 (stateless
/// era); "state-ok" says the state was verified.
async fn confirm_with_state(
    tool: &str,
    ctx: &RequestContext<RoleServer>,
    responses: Option<rmcp::model::InputResponses>,
    state: Option<String>,
) -> Result<CallToolResponse, ErrorData> {
    let mut conv = conversation(tool, ctx, responses, state)?;
    if conv.era() == Era::Stateless && !conv.state_verified() {
        // Round 1, or a retry without the state: (re)issue the question with a state.
        let _ = conv.ask("confirm", confirm_question()).await?;
        return Ok(conv.input_required().into());
    }
    let answer = answer!(conv, conv.ask("confirm", confirm_question()).await?);
    let ok = content(&answer)["ok"].as_bool().unwrap_or(false);
    Ok(text(match conv.era() {
        Era::Stateless => format!("state-ok: confirmed={ok}"),
        Era::Handshake => format!("confirmed={ok} (handshake era: no requestState)"),
    })
    .into())
}

/// `prompts/get test_input_required_result_prompt`: asks the user the context
/// (elicitation, key `user_context`), then returns a prompt about it.
pub(super) async fn input_required_prompt(
    request: GetPromptRequestParams,
    ctx: RequestContext<RoleServer>,
) -> Result<GetPromptResponse, ErrorData> {
    let mut conv = Conversation::new(
        &ctx,
        format!("prompts/get {INPUT_REQUIRED_PROMPT}"),
        request.input_responses,
        request.request_state.as_deref(),
    )?;
    let question = Question::elicit(
        "What context should the prompt use?",
        string_form("context"),
    );
    let answer = match conv.ask("user_context", question).await? {
        Answer::Given(value) => value,
        Answer::Pending => return Ok(conv.input_required().into()),
        Answer::Failed(failure) => return Err(ErrorData::internal_error(failure, None)),
    };
    let context = content(&answer)["context"]
        .as_str()
        .unwrap_or("no context")
        .to_owned();
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        format!("Answer with this context in mind: {context}"),
    )])
    .with_description("A prompt built from what the user answered")
    .into())
}
