//! Scripted client answers: what a session's client side says when the server asks for
//! elicitation or sampling during a call, and the record of what was asked.

use mcp_harness::{
    Bundled, ClientAnswers, ElicitationAnswer, ServerSpec, Session, Target, Transport, tool_text,
};
use serde_json::json;

async fn conformance(answers: ClientAnswers) -> Session {
    Session::builder(Target::Stdio(ServerSpec::bundled(
        Bundled::Conformance,
        Transport::Stdio,
    )))
    .name("alice")
    .answers(answers)
    .connect()
    .await
    .expect("the conformance server starts")
}

#[mcp_harness::test]
async fn a_scripted_elicitation_answer_reaches_the_server() {
    let s = conformance(ClientAnswers::new().elicitation(ElicitationAnswer::Accept(
        json!({"username": "alice", "email": "alice@example.com"}),
    )))
    .await;
    let out = s
        .call_tool("test_elicitation", json!({"message": "who are you?"}))
        .await
        .unwrap();
    let text = tool_text(&out);
    assert!(text.contains("action=accept"), "{text}");
    assert!(text.contains("alice@example.com"), "{text}");
    let asked = s.asked();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["method"], "elicitation/create");
    assert_eq!(asked[0]["params"]["message"], "who are you?");
}

#[mcp_harness::test]
async fn accepting_with_defaults_sends_every_default_of_the_schema() {
    let s = conformance(ClientAnswers::new().elicitation(ElicitationAnswer::AcceptDefaults)).await;
    let out = s
        .call_tool("test_elicitation_sep1034_defaults", json!({}))
        .await
        .unwrap();
    let text = tool_text(&out);
    for expected in [
        "action=accept",
        "\"name\":\"John Doe\"",
        "\"age\":30",
        "\"score\":95.5",
        "\"status\":\"active\"",
        "\"verified\":true",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
}

#[mcp_harness::test]
async fn an_unscripted_elicitation_is_declined_and_still_recorded() {
    let s = conformance(ClientAnswers::new()).await;
    let out = s
        .call_tool("test_elicitation", json!({"message": "anyone?"}))
        .await
        .unwrap();
    assert!(
        tool_text(&out).contains("action=decline"),
        "{}",
        tool_text(&out)
    );
    assert_eq!(s.asked().len(), 1);
}

#[mcp_harness::test]
async fn sampling_answers_are_canned_or_computed_and_refused_when_unscripted() {
    let s = conformance(ClientAnswers::new().sampling_text("4")).await;
    let out = s
        .call_tool("test_sampling", json!({"prompt": "2+2?"}))
        .await
        .unwrap();
    assert_eq!(tool_text(&out), "LLM response: 4");

    let s = conformance(ClientAnswers::new().sampling(|params| {
        format!(
            "echo: {}",
            params["messages"][0]["content"]["text"]
                .as_str()
                .unwrap_or("?")
        )
    }))
    .await;
    let out = s
        .call_tool("test_sampling", json!({"prompt": "ping"}))
        .await
        .unwrap();
    assert_eq!(tool_text(&out), "LLM response: echo: ping");

    // Unscripted: the handshake era refuses the server's request (the tool reports it); the
    // stateless era cannot send a refusal back in an `input_required` round, so the call
    // itself fails with a typed error that says how to script an answer.
    let s = conformance(ClientAnswers::new()).await;
    let out = s
        .call_tool("test_sampling", json!({"prompt": "2+2?"}))
        .await;
    match s.era() {
        mcp_harness::Era::Handshake => {
            let out = out.unwrap();
            assert_eq!(out.is_error, Some(true), "{out:?}");
            assert!(tool_text(&out).contains("rejected"), "{}", tool_text(&out));
        }
        _ => match out {
            Err(mcp_harness::Error::Unanswered { asked, reason, .. }) => {
                assert_eq!(asked, "sampling/createMessage");
                assert!(reason.contains("ClientAnswers::sampling"), "{reason}");
            }
            other => panic!("expected Unanswered, got {other:?}"),
        },
    }
    assert_eq!(s.asked()[0]["method"], "sampling/createMessage");
}
