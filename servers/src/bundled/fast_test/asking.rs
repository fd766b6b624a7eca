//! fast-test's tools that ask the client: `ask_user` (elicitation), `ask_llm` (sampling)
//! and `ask_forever` (asks again on every retry). Server-to-client requests in the
//! handshake era, `input_required` rounds in the stateless era.

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{
        tool::{InputResponses, RequestState},
        wrapper::Parameters,
    },
    model::{CallToolResponse, CallToolResult, ContentBlock},
    schemars,
    service::RequestContext,
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::json;

use crate::handler::{
    Handler,
    ask::{Answer, Conversation, Question, sampled_text},
    era::Era,
    text,
};

#[derive(Deserialize, schemars::JsonSchema)]
struct AskUserArgs {
    /// What to ask the user.
    message: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct AskLlmArgs {
    /// The user message for the client's LLM.
    prompt: String,
    /// maxTokens (default 100).
    #[serde(default)]
    max_tokens: Option<u32>,
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

/// The tool's result for one answered question: the client's result as JSON text (and
/// as structuredContent).
fn answered(answer: Answer, conv: &Conversation) -> CallToolResponse {
    match answer {
        Answer::Given(value) => {
            let mut result = text(value.to_string());
            result.structured_content = Some(value);
            result.into()
        }
        Answer::Pending => conv.input_required().into(),
        Answer::Failed(failure) => CallToolResult::error(vec![ContentBlock::text(failure)]).into(),
    }
}

#[tool_router(router = asking_tools, vis = "pub(crate)")]
impl Handler {
    /// Asks the user `message` (elicitation, a form with one string field `answer`;
    /// key `answer` in the stateless era) and returns the client's ElicitResult as JSON.
    #[tool]
    async fn ask_user(
        &self,
        Parameters(AskUserArgs { message }): Parameters<AskUserArgs>,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut conv = conversation("ask_user", &ctx, responses, state)?;
        let schema = json!({
            "type": "object",
            "properties": { "answer": { "type": "string", "description": "Your answer" } },
            "required": ["answer"]
        });
        let answer = conv
            .ask("answer", Question::elicit(message, schema))
            .await?;
        Ok(answered(answer, &conv))
    }

    /// Asks the client's LLM `prompt` (sampling; key `completion` in the stateless era)
    /// and returns the client's CreateMessageResult as JSON.
    #[tool]
    async fn ask_llm(
        &self,
        Parameters(AskLlmArgs { prompt, max_tokens }): Parameters<AskLlmArgs>,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut conv = conversation("ask_llm", &ctx, responses, state)?;
        let question = Question::sample(prompt, max_tokens.unwrap_or(100));
        let answer = conv.ask("completion", question).await?;
        if let Answer::Given(value) = &answer {
            tracing::debug!(text = %sampled_text(value), "ask_llm answered");
        }
        Ok(answered(answer, &conv))
    }

    /// Never finishes asking: every call and every retry asks the user again (key
    /// `round-N`, N counting the rounds answered), so a client's bound on rounds can be
    /// tested. In the handshake era it asks until the user does not accept.
    #[tool]
    async fn ask_forever(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut conv = conversation("ask_forever", &ctx, responses, state)?;
        let question = |round: usize| {
            Question::elicit(
                format!("Round {round}: once more?"),
                json!({ "type": "object", "properties": { "again": { "type": "boolean" } } }),
            )
        };
        if conv.era() == Era::Stateless {
            // Record this retry's answers (if any), then ask the next round.
            let mut round = conv.rounds_answered() + 1;
            while let Answer::Given(_) =
                conv.ask(&format!("round-{round}"), question(round)).await?
            {
                round += 1;
            }
            return Ok(conv.input_required().into());
        }
        let mut round = 1;
        loop {
            match conv.ask(&format!("round-{round}"), question(round)).await? {
                Answer::Given(answer) if answer["action"] == "accept" => round += 1,
                Answer::Given(answer) => {
                    return Ok(text(format!(
                        "stopped asking after {round} round(s): the user answered {}",
                        answer["action"].as_str().unwrap_or("?")
                    ))
                    .into());
                }
                other => return Ok(answered(other, &conv)),
            }
        }
    }
}
