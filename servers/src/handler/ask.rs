//! Asking the client a question (elicitation, sampling, roots) in either era.
//!
//! * **Handshake era**: the question is a server-to-client request sent during the call
//!   (`elicitation/create`, `sampling/createMessage`, `roots/list`), answered at once.
//! * **Stateless era** (SEP-2322): the call ends with an `input_required` result that
//!   names the questions still open (`inputRequests`) and carries a sealed
//!   `requestState`; the client retries the same request with `inputResponses` keyed
//!   like the questions and the `requestState` echoed.
//!
//! A tool writes the same code for both: a [`Conversation`] asks question after
//! question; in the stateless era an answer comes from the retry's `inputResponses` or
//! from the answers of earlier rounds, which travel in the `requestState`. That state
//! is sealed with an HMAC under a per-process key and bound to the request it was
//! issued for (`tools/call` of one tool, `prompts/get` of one prompt): a state that was
//! tampered with, or issued for another request, is refused with `-32602`.

// Sampling and roots are deprecated by SEP-2577 but part of the versions we serve.
#![allow(deprecated)]

use std::{collections::BTreeMap, sync::LazyLock};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rmcp::{
    ErrorData, Peer, RoleServer,
    model::{
        ClientCapabilities, CreateMessageRequestParams, ElicitRequestParams, ErrorCode,
        InputRequest, InputRequests, InputRequiredResult, InputResponses,
    },
    service::RequestContext,
};
use serde_json::{Map, Value, json};

use super::era::Era;

// ---------------------------------------------------------------------------------------
// Sealed request state

/// The per-process key that seals `requestState` (random at start: a state outlives
/// neither the process nor a restart, which is what tests want).
static STATE_KEY: LazyLock<ring::hmac::Key> = LazyLock::new(|| {
    let rng = ring::rand::SystemRandom::new();
    ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
        .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"mcp-harness"))
});

/// Seals `payload` for the request named `bound_to`: `base64url(json).base64url(tag)`.
fn seal(bound_to: &str, payload: &Map<String, Value>) -> String {
    let body = Value::Object(payload.clone()).to_string();
    let tag = ring::hmac::sign(&STATE_KEY, &signed_bytes(bound_to, body.as_bytes()));
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(body),
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    )
}

/// Opens a state [`seal`] made for `bound_to`.
fn open(bound_to: &str, sealed: &str) -> Result<Map<String, Value>, ErrorData> {
    let refused = |why: &str| {
        ErrorData::invalid_params(
            format!(
                "requestState refused: {why}; echo the requestState of this server's last \
                 input_required answer to {bound_to} unchanged"
            ),
            None,
        )
    };
    let (body, tag) = sealed
        .split_once('.')
        .ok_or_else(|| refused("it is not a state this server issued"))?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| refused("it is not a state this server issued"))?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| refused("its integrity tag is malformed"))?;
    ring::hmac::verify(&STATE_KEY, &signed_bytes(bound_to, &body), &tag).map_err(|_| {
        refused("it fails its integrity check (tampered, or issued for another request)")
    })?;
    match serde_json::from_slice(&body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(refused("its content is not an object")),
    }
}

fn signed_bytes(bound_to: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(bound_to.len() + 1 + body.len());
    bytes.extend_from_slice(bound_to.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(body);
    bytes
}

// ---------------------------------------------------------------------------------------
// Questions

/// One question for the client.
#[derive(Clone, Debug)]
pub(crate) enum Question {
    /// `elicitation/create` (form mode) with `message` and a `requestedSchema`.
    Elicit {
        /// What the user is asked.
        message: String,
        /// The form's JSON schema.
        schema: Value,
    },
    /// `sampling/createMessage` with one user message.
    Sample {
        /// The user message's text.
        prompt: String,
        /// `maxTokens`.
        max_tokens: u32,
    },
    /// `roots/list`.
    Roots,
}

impl Question {
    /// An elicitation.
    pub(crate) fn elicit(message: impl Into<String>, schema: Value) -> Self {
        Self::Elicit {
            message: message.into(),
            schema,
        }
    }

    /// A sampling request.
    pub(crate) fn sample(prompt: impl Into<String>, max_tokens: u32) -> Self {
        Self::Sample {
            prompt: prompt.into(),
            max_tokens,
        }
    }

    /// The client capability the question needs.
    pub(crate) fn capability(&self) -> &'static str {
        match self {
            Self::Elicit { .. } => "elicitation",
            Self::Sample { .. } => "sampling",
            Self::Roots => "roots",
        }
    }

    /// The request's method.
    fn method(&self) -> &'static str {
        match self {
            Self::Elicit { .. } => "elicitation/create",
            Self::Sample { .. } => "sampling/createMessage",
            Self::Roots => "roots/list",
        }
    }

    /// Whether `caps` declare the capability the question needs.
    pub(crate) fn declared_by(&self, caps: &ClientCapabilities) -> bool {
        match self {
            Self::Elicit { .. } => caps.elicitation.is_some(),
            Self::Sample { .. } => caps.sampling.is_some(),
            Self::Roots => caps.roots.is_some(),
        }
    }

    /// The request's `params`.
    fn params(&self) -> Value {
        match self {
            Self::Elicit { message, schema } => json!({
                "mode": "form",
                "message": message,
                "requestedSchema": schema,
            }),
            Self::Sample { prompt, max_tokens } => json!({
                "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
                "maxTokens": max_tokens,
            }),
            Self::Roots => json!({}),
        }
    }

    /// The question as an entry of `inputRequests`.
    pub(crate) fn input_request(&self) -> Result<InputRequest, ErrorData> {
        serde_json::from_value(json!({ "method": self.method(), "params": self.params() }))
            .map_err(|e| internal(format!("building the {} input request: {e}", self.method())))
    }

    /// Sends the question to the client now (handshake era) and returns its result.
    async fn send(&self, peer: &Peer<RoleServer>) -> Result<Value, String> {
        let failed = |e: &dyn std::fmt::Display| format!("{} failed: {e}", self.capability());
        let answer = match self {
            Self::Elicit { .. } => {
                let params: ElicitRequestParams =
                    serde_json::from_value(self.params()).map_err(|e| failed(&e))?;
                serde_json::to_value(
                    peer.create_elicitation(params)
                        .await
                        .map_err(|e| failed(&e))?,
                )
            }
            Self::Sample { .. } => {
                let params: CreateMessageRequestParams =
                    serde_json::from_value(self.params()).map_err(|e| failed(&e))?;
                serde_json::to_value(peer.create_message(params).await.map_err(|e| failed(&e))?)
            }
            Self::Roots => serde_json::to_value(peer.list_roots().await.map_err(|e| failed(&e))?),
        };
        answer.map_err(|e| failed(&e))
    }
}

fn internal(message: String) -> ErrorData {
    ErrorData::internal_error(message, None)
}

/// The `-32021` error for a question whose capability the client did not declare.
pub(crate) fn missing_capability(what: &str, question: &Question) -> ErrorData {
    let capability = question.capability();
    ErrorData::new(
        ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!(
            "{what} needs the client's {capability} capability: declare it in _meta \
             io.modelcontextprotocol/clientCapabilities"
        ),
        Some(json!({ "requiredCapabilities": { capability: {} } })),
    )
}

// ---------------------------------------------------------------------------------------
// Conversations

/// What asking one question gave.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The client's result (`ElicitResult`, `CreateMessageResult` or `ListRootsResult`).
    Given(Value),
    /// Stateless era: not answered yet; it is in [`Conversation::input_required`].
    Pending,
    /// Handshake era: the client answered the request with an error (the text says so).
    Failed(String),
}

/// The questions one request asks, in either era.
pub(crate) struct Conversation {
    era: Era,
    /// What the request is (`tools/call test_x`): the seal binds the state to it.
    bound_to: String,
    peer: Peer<RoleServer>,
    capabilities: ClientCapabilities,
    /// The retry's `inputResponses`.
    responses: InputResponses,
    /// Answers of earlier rounds (from the opened `requestState`).
    answered: Map<String, Value>,
    /// Whether the request carried a `requestState` that this server sealed.
    state_verified: bool,
    /// Questions still open, in the order asked.
    pending: InputRequests,
}

impl Conversation {
    /// Starts the conversation of the request `ctx` (named `bound_to`, e.g.
    /// `tools/call test_x`), with the retry's `inputResponses` and `requestState`.
    ///
    /// # Errors
    ///
    /// `-32602` when the `requestState` is not one this server sealed for `bound_to`.
    pub(crate) fn new(
        ctx: &RequestContext<RoleServer>,
        bound_to: impl Into<String>,
        responses: Option<InputResponses>,
        state: Option<&str>,
    ) -> Result<Self, ErrorData> {
        let bound_to = bound_to.into();
        let era = Era::of(ctx);
        let (answered, state_verified) = match (era, state) {
            (Era::Stateless, Some(state)) => (open(&bound_to, state)?, true),
            _ => (Map::new(), false),
        };
        Ok(Self {
            era,
            bound_to,
            peer: ctx.peer.clone(),
            capabilities: ctx.client_capabilities().unwrap_or_default(),
            responses: responses.unwrap_or_default(),
            answered,
            state_verified,
            pending: BTreeMap::new(),
        })
    }

    /// The era of the request.
    pub(crate) fn era(&self) -> Era {
        self.era
    }

    /// Whether the request carried a valid `requestState` of this server.
    pub(crate) fn state_verified(&self) -> bool {
        self.state_verified
    }

    /// Whether the client declared the capability `question` needs.
    pub(crate) fn can_ask(&self, question: &Question) -> bool {
        question.declared_by(&self.capabilities)
    }

    /// Handshake era: the text of the tool error for `question` when the client did not
    /// declare the capability it needs (the call answers `isError: true` instead of
    /// sending a request the client cannot answer). `None` otherwise: in the stateless era
    /// [`Self::ask`] answers `-32021` instead.
    pub(crate) fn handshake_refusal(&self, question: &Question) -> Option<String> {
        (self.era == Era::Handshake && !self.can_ask(question)).then(|| {
            format!(
                "the client did not declare the {} capability",
                question.capability()
            )
        })
    }

    /// How many questions earlier rounds answered (stateless era).
    pub(crate) fn rounds_answered(&self) -> usize {
        self.answered.len()
    }

    /// Asks `question` under `key`.
    ///
    /// # Errors
    ///
    /// `-32021` when the client did not declare the capability the question needs;
    /// `-32602` when the retry's answer under `key` is not a result object.
    pub(crate) async fn ask(&mut self, key: &str, question: Question) -> Result<Answer, ErrorData> {
        if !self.can_ask(&question) {
            return Err(missing_capability(&self.bound_to, &question));
        }
        if self.era == Era::Handshake {
            return Ok(match question.send(&self.peer).await {
                Ok(answer) => Answer::Given(answer),
                Err(failure) => Answer::Failed(failure),
            });
        }
        if let Some(answer) = self.answered.get(key) {
            return Ok(Answer::Given(answer.clone()));
        }
        if let Some(answer) = self.responses.get(key) {
            if !answer.is_object() {
                return Err(ErrorData::invalid_params(
                    format!(
                        "inputResponses.{key} must be the client's {} result (an object), \
                         got {answer}",
                        question.method()
                    ),
                    None,
                ));
            }
            self.answered.insert(key.to_owned(), answer.clone());
            return Ok(Answer::Given(answer.clone()));
        }
        self.pending
            .insert(key.to_owned(), question.input_request()?);
        Ok(Answer::Pending)
    }

    /// The `input_required` result that asks the open questions, with the answers so far
    /// sealed in its `requestState`.
    pub(crate) fn input_required(&self) -> InputRequiredResult {
        let requests = (!self.pending.is_empty()).then(|| self.pending.clone());
        InputRequiredResult::new(requests, Some(seal(&self.bound_to, &self.answered)))
    }
}

/// The text of a sampling answer (`content` is one block or, since 2025-11-25, a list).
pub(crate) fn sampled_text(answer: &Value) -> String {
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

/// `action=..., content=...` of an elicitation answer.
pub(crate) fn elicited(answer: &Value) -> (String, Value) {
    let action = answer["action"].as_str().unwrap_or("unknown").to_owned();
    let content = answer.get("content").cloned().unwrap_or(Value::Null);
    (action, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_state_opens_only_unchanged_and_for_its_request() {
        let mut payload = Map::new();
        payload.insert("step1".into(), json!({"action": "accept"}));
        let sealed = seal("tools/call a", &payload);
        assert_eq!(open("tools/call a", &sealed).unwrap(), payload);
        assert!(open("tools/call b", &sealed).is_err());
        assert!(open("tools/call a", &format!("{sealed}-TAMPERED")).is_err());
        assert!(open("tools/call a", "garbage").is_err());
    }
}
