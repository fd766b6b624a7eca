//! The authorization rules of MCP 2026-07-28, on both sides: the built-in authorization server
//! misbehaves on purpose (a wrong, missing or normalized `iss`, metadata naming another issuer,
//! protected resource metadata for another resource) and the harness's OAuth client must stop at
//! the step the rule belongs to, before any code or token goes where it should not, with no
//! callback server left behind; and the server asks registrations for their `application_type`.

use mcp_harness::{
    Bundled, BundledAuth, BundledServer, Error, IssMisbehaviour, OAuth, OAuthMisbehaviour,
    OAuthServerConfig, OAuthStep, Server, Transport,
};
use rstest::rstest;
use serde_json::{Value, json};

/// A bundled fast-test over streamable HTTP with OAuth set up as `config` says, and the file its
/// events go to.
async fn oauth_server(config: OAuthServerConfig) -> (Server, tempfile::NamedTempFile) {
    let events = tempfile::NamedTempFile::new().expect("an event log");
    let server = Server::start(
        BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
            .auth(BundledAuth::OAuth(Box::new(config)))
            .event_log(events.path())
            .spec(),
    )
    .await
    .expect("fast-test with OAuth starts");
    (server, events)
}

/// The names of the events the server recorded so far.
fn events(log: &tempfile::NamedTempFile) -> Vec<String> {
    std::fs::read_to_string(log.path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect()
}

fn misbehaving(misbehave: OAuthMisbehaviour) -> OAuthServerConfig {
    OAuthServerConfig {
        misbehave,
        ..OAuthServerConfig::default()
    }
}

#[rstest]
#[case::wrong_iss(
    OAuthMisbehaviour { iss: Some(IssMisbehaviour::Wrong), ..Default::default() },
    OAuthStep::Authorization,
    "names issuer \"https://another-issuer.example\"",
    "oauth_authorize",
    "oauth_token"
)]
#[case::missing_iss(
    OAuthMisbehaviour { iss: Some(IssMisbehaviour::Missing), ..Default::default() },
    OAuthStep::Authorization,
    "has no iss although",
    "oauth_authorize",
    "oauth_token"
)]
#[case::normalized_iss(
    OAuthMisbehaviour { iss: Some(IssMisbehaviour::Normalized), ..Default::default() },
    OAuthStep::Authorization,
    "/\", expected",
    "oauth_authorize",
    "oauth_token"
)]
#[case::metadata_issuer(
    OAuthMisbehaviour {
        metadata_issuer: Some("https://impostor.example".into()),
        ..Default::default()
    },
    OAuthStep::Discovery,
    "metadata names issuer \"https://impostor.example\"",
    "refused",
    "oauth_registration"
)]
#[case::resource(
    OAuthMisbehaviour {
        prm_resource: Some("https://elsewhere.example/mcp".into()),
        ..Default::default()
    },
    OAuthStep::Discovery,
    "is for \"https://elsewhere.example/mcp\", not for this server",
    "refused",
    "oauth_registration"
)]
#[mcp_harness::test]
async fn the_client_refuses_each_misbehaviour_at_its_step(
    #[case] misbehave: OAuthMisbehaviour,
    #[case] step: OAuthStep,
    #[case] says: &str,
    #[case] reached: &str,
    #[case] never: &str,
) {
    let (server, log) = oauth_server(misbehaving(misbehave)).await;
    let (oauth, callbacks) = crate::support::noting_callbacks(OAuth::new());
    let err = mcp_harness::authorize(server.url(), Transport::StreamableHttp, &oauth)
        .await
        .expect_err("the flow must stop");
    let Error::OAuth {
        step: failed,
        reason,
        ..
    } = &err
    else {
        panic!("expected an OAuth error, got {err}");
    };
    assert_eq!(*failed, step, "{err}");
    assert!(reason.contains(says), "{reason}");
    let seen = events(&log);
    // The flow got as far as the rule's step, and no further: nothing was handed over past it
    // (no code exchanged for a token, no registration with an untrusted server).
    assert!(seen.iter().any(|e| e == reached), "{seen:?}");
    assert!(!seen.iter().any(|e| e == never), "{seen:?}");
    assert!(
        !seen.iter().any(|e| e == "oauth_token"),
        "a code was exchanged: {seen:?}"
    );
    crate::support::assert_callbacks_stopped(&callbacks);
}

#[mcp_harness::test]
async fn the_client_registers_as_a_native_application_and_the_server_requires_the_type() {
    let (server, log) = oauth_server(OAuthServerConfig::default()).await;
    mcp_harness::authorize(server.url(), Transport::StreamableHttp, &OAuth::new())
        .await
        .expect("the flow succeeds");
    let registered: Vec<Value> = std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "oauth_registration")
        .collect();
    assert_eq!(registered.len(), 1, "{registered:?}");
    assert_eq!(registered[0]["application_type"], "native");

    // A registration without application_type is refused, saying why and what to do.
    let register = format!(
        "{}/register",
        server.url().trim_end_matches("/mcp").trim_end_matches('/')
    );
    let body = json!({
        "client_name": "old-client",
        "redirect_uris": ["http://127.0.0.1:9/callback"],
        "token_endpoint_auth_method": "none",
    });
    let http = reqwest::Client::new();
    let refused = http.post(&register).json(&body).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let doc: Value = refused.json().await.unwrap();
    assert_eq!(doc["error"], "invalid_client_metadata");
    let description = doc["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains("SEP-837") && description.contains("require_application_type"),
        "{description}"
    );
    // An unknown type is refused too.
    let mut odd = body.clone();
    odd["application_type"] = json!("desktop");
    let refused = http.post(&register).json(&odd).send().await.unwrap();
    assert_eq!(refused.status(), 400);

    // A server for clients of earlier revisions accepts them, as web applications.
    let (lenient, _log) = oauth_server(OAuthServerConfig {
        require_application_type: false,
        ..OAuthServerConfig::default()
    })
    .await;
    let register = format!(
        "{}/register",
        lenient.url().trim_end_matches("/mcp").trim_end_matches('/')
    );
    let accepted = http.post(&register).json(&body).send().await.unwrap();
    assert_eq!(accepted.status(), 201);
    let doc: Value = accepted.json().await.unwrap();
    assert_eq!(doc["application_type"], "web");
}

/// The resource moves to another authorization server mid-session (the built-in server's test
/// switch; the old server revokes every grant): the client's next request is refused, no
/// refresh can answer, so the client discovers the new server, registers with it (its old
/// credentials are not shown there) and authorizes again; the MCP session goes on, its state
/// intact.
///
/// With `revoke=false` the old server still refreshes tokens, which the resource refuses at
/// once: the client must not keep refreshing, it runs the whole flow.
#[rstest]
#[case::old_grants_revoked(true)]
#[case::old_server_still_refreshing(false)]
#[mcp_harness::test]
async fn a_moved_authorization_server_is_registered_with_and_the_session_goes_on(
    #[case] revoke: bool,
) {
    use crate::support::{call_text, pin};
    use mcp_harness::{Era, Session};
    use std::sync::Arc;

    let (server, log) = oauth_server(OAuthServerConfig::default()).await;
    let (oauth, callbacks) = crate::support::noting_callbacks(OAuth::new());
    let tokens = Arc::new(
        mcp_harness::authorize(server.url(), Transport::StreamableHttp, &oauth)
            .await
            .expect("the first flow succeeds"),
    );
    let first_issuer = tokens.issuer();
    let first_client = tokens.client_id();
    // Per-session state (the counter) lives in the handshake era's sessions.
    let session = Session::builder(&server)
        .protocol(pin(Era::Handshake))
        .oauth_tokens(tokens.clone())
        .connect()
        .await
        .unwrap();
    assert_eq!(call_text(&session, "counter", json!({})).await, "1");

    let base = server.url().trim_end_matches("/mcp").to_owned();
    let moved: Value = reqwest::Client::new()
        .post(format!(
            "{base}/oauth/test/move-authorization-server?revoke={revoke}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(moved["moved"], true, "{moved}");

    assert_eq!(
        call_text(&session, "counter", json!({})).await,
        "2",
        "the same session goes on"
    );
    assert_eq!(tokens.issuer(), format!("{first_issuer}/moved"));
    assert_eq!(tokens.reauthorizations().await, 1);
    assert_ne!(tokens.client_id(), first_client, "registered anew");
    let registered: Vec<String> = std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "oauth_registration")
        .filter_map(|e| e["client_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(registered, vec![first_client, tokens.client_id()]);
    crate::support::assert_callbacks_stopped(&callbacks);
    session.shutdown().await.unwrap();
}
