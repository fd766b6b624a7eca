//! Named clients are distinct identities with distinct sessions, over stdio and streamable HTTP.

use mcp_harness::Session;
use mcp_harness_fixtures::{ServerRef, alice, bob, fast_test, oauth, token_for};
use rstest::rstest;
use serde_json::json;

use crate::support::{call_json, call_text, stdio_session};

#[tokio::test]
async fn stdio_alice_and_bob_have_different_identities_and_counters() {
    let alice = stdio_session("alice").await;
    let bob = stdio_session("bob").await;
    assert_eq!(
        call_json(&alice, "whoami", json!({})).await["subject"],
        "alice"
    );
    assert_eq!(call_json(&bob, "whoami", json!({})).await["subject"], "bob");
    assert_eq!(call_text(&alice, "counter", json!({})).await, "1");
    assert_eq!(call_text(&alice, "counter", json!({})).await, "2");
    assert_eq!(call_text(&bob, "counter", json!({})).await, "1");
    assert_ne!(alice.server_pid(), bob.server_pid());
}

#[rstest]
fn http_named_clients_alice_and_bob_have_different_identities(alice: Session, bob: Session) {
    mcp_harness::run(async move {
        let a = call_json(&alice, "whoami", json!({})).await;
        let b = call_json(&bob, "whoami", json!({})).await;
        assert_eq!(a["subject"], "alice");
        assert_eq!(b["subject"], "bob");
        assert_eq!(a["transport"], "http");
        assert_ne!(a["session_id"], b["session_id"]);
        // whoami never echoes a secret.
        let raw = a.to_string();
        assert!(!raw.contains("eyJ"), "a JWT leaked into whoami: {raw}");
    });
}

#[rstest]
fn http_sessions_of_alice_and_bob_have_separate_counters(fast_test: ServerRef) {
    mcp_harness::run(async move {
        let connect = |name: &'static str| {
            Session::builder(fast_test.target())
                .name(name)
                .bearer_token(token_for(name))
                .connect()
        };
        let alice = connect("alice").await.unwrap();
        let bob = connect("bob").await.unwrap();
        assert_eq!(call_text(&alice, "counter", json!({})).await, "1");
        assert_eq!(call_text(&alice, "counter", json!({})).await, "2");
        assert_eq!(call_text(&bob, "counter", json!({})).await, "1");
    });
}

#[rstest]
fn missing_token_is_a_typed_unauthorized_error(fast_test: ServerRef) {
    let err = mcp_harness::run(async move {
        Session::builder(fast_test.target())
            .name("nobody")
            .connect()
            .await
    })
    .expect_err("the fixture server requires a JWT");
    assert!(
        matches!(err, mcp_harness::Error::Unauthorized { .. }),
        "{err:?}"
    );
}

#[rstest]
fn oauth_named_client_runs_the_whole_flow_headless(oauth: Session) {
    mcp_harness::run(async move {
        let who = call_json(&oauth, "whoami", json!({})).await;
        assert_eq!(
            who["subject"], "oauth-user",
            "the bundled authorization server's test user"
        );
        assert_eq!(
            call_text(&oauth, "echo", json!({"text": "authorized"})).await,
            "authorized"
        );
    });
}
