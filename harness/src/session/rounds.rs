//! `input_required` rounds of the stateless era (SEP-2322, "multi round-trip requests").
//!
//! A 2026-07-28 server that needs something from the client while it answers `tools/call`,
//! `prompts/get` or `resources/read` does not send it a request: it answers with an
//! `input_required` result naming its questions (elicitation, sampling, roots) and an opaque
//! `requestState`. The client answers every question from the session's [`ClientAnswers`]
//! (the same script that answers server-to-client requests in the handshake era), then sends
//! the same request again with `inputResponses` and the `requestState` echoed unchanged.

use std::time::Duration;

use rmcp::model::{ClientRequest, InputRequiredResult, InputResponses};
use serde_json::{Value, json};

use super::answers::{Asked, ClientAnswers};
use crate::errors::{Error, Result};

/// The round bound a session starts with (the official SDKs use the same).
pub(super) const DEFAULT_MAX_ROUNDS: usize = 10;

/// The questions of one `input_required` result, answered.
pub(super) struct Answered {
    /// The request to send next: the original with `inputResponses` and `requestState`.
    pub(super) retry: ClientRequest,
    /// How long to wait before sending it: zero when the server asked something; a short,
    /// growing pause when it only handed back a `requestState` (it is busy, "come back").
    pub(super) pause: Duration,
    /// The methods the server asked for, for messages.
    pub(super) asked: Vec<String>,
}

/// Answers `result` for `request` (sent as `method` on `session`).
///
/// `state_only` counts consecutive rounds that asked nothing (for the pause).
pub(super) fn answer(
    session: &str,
    method: &str,
    answers: &ClientAnswers,
    asked: &Asked,
    request: ClientRequest,
    result: InputRequiredResult,
    state_only: &mut u32,
) -> Result<Answered> {
    let mut responses = InputResponses::new();
    let mut methods = Vec::new();
    for (key, question) in result.input_requests.unwrap_or_default() {
        let question = serde_json::to_value(&question).unwrap_or(Value::Null);
        let asked_method = question["method"].as_str().unwrap_or("").to_owned();
        let params = question.get("params").cloned().unwrap_or(Value::Null);
        asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(json!({"method": asked_method, "params": params}));
        let answer =
            answers
                .answer(&asked_method, &params)
                .map_err(|reason| Error::Unanswered {
                    session: session.to_owned(),
                    method: method.to_owned(),
                    asked: asked_method.clone(),
                    reason,
                })?;
        responses.insert(key, answer);
        methods.push(asked_method);
    }
    let pause = if methods.is_empty() {
        let pause = Duration::from_millis(10 * 2u64.pow((*state_only).min(6)));
        *state_only += 1;
        pause
    } else {
        *state_only = 0;
        Duration::ZERO
    };
    let responses = (!responses.is_empty()).then_some(responses);
    let state = result.request_state;
    let retry = match request {
        ClientRequest::CallToolRequest(mut r) => {
            r.params.input_responses = responses;
            r.params.request_state = state;
            ClientRequest::CallToolRequest(r)
        }
        ClientRequest::GetPromptRequest(mut r) => {
            r.params.input_responses = responses;
            r.params.request_state = state;
            ClientRequest::GetPromptRequest(r)
        }
        ClientRequest::ReadResourceRequest(mut r) => {
            r.params.input_responses = responses;
            r.params.request_state = state;
            ClientRequest::ReadResourceRequest(r)
        }
        _ => {
            return Err(Error::Protocol {
                session: session.to_owned(),
                method: method.to_owned(),
                detail: "an `input_required` result, which only tools/call, prompts/get and \
                         resources/read may return"
                    .into(),
            });
        }
    };
    Ok(Answered {
        retry,
        pause,
        asked: methods,
    })
}
