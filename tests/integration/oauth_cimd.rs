//! Client ID metadata documents (CIMD) between the harness's OAuth client and the built-in
//! authorization server: the client's id is the url of a JSON document describing it, which the
//! server fetches and checks instead of a registration. The document is served from the test
//! itself on a loopback port ([`ClientMetadataServer`]), which the server fetches only when told
//! to (`allow_http_client_metadata`).

use mcp_harness::{
    Bundled, BundledAuth, BundledServer, ClientMetadataServer, Error, OAuth, OAuthServerConfig,
    OAuthStep, Server, Session, Transport,
};
use serde_json::{Value, json};

use crate::support::call_json;

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

fn events(log: &tempfile::NamedTempFile) -> Vec<String> {
    std::fs::read_to_string(log.path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect()
}

fn accepting_loopback_documents() -> OAuthServerConfig {
    OAuthServerConfig {
        allow_http_client_metadata: true,
        ..OAuthServerConfig::default()
    }
}

#[mcp_harness::test]
async fn the_document_url_is_the_client_id_end_to_end_and_nothing_is_registered() {
    let doc = ClientMetadataServer::start(ClientMetadataServer::document_for("cimd tests"))
        .await
        .unwrap();
    let (server, log) = oauth_server(accepting_loopback_documents()).await;
    let (oauth, callbacks) =
        crate::support::noting_callbacks(OAuth::new().client_metadata_url(doc.url()));
    let session = Session::builder(&server)
        .oauth(oauth.clone())
        .connect()
        .await
        .expect("the flow succeeds with the metadata document");
    let who = call_json(&session, "whoami", json!({})).await;
    assert_eq!(who["subject"], "oauth-user", "{who}");
    session.shutdown().await.unwrap();
    let tokens = mcp_harness::authorize(server.url(), Transport::StreamableHttp, &oauth)
        .await
        .unwrap();
    assert_eq!(tokens.client_id(), doc.url());
    let seen = events(&log);
    assert!(
        seen.iter().any(|e| e == "oauth_client_metadata"),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|e| e == "oauth_registration"), "{seen:?}");
    assert!(seen.iter().any(|e| e == "oauth_token"), "{seen:?}");
    assert!(doc.fetches() >= 2, "fetched {} times", doc.fetches());
    crate::support::assert_callbacks_stopped(&callbacks);
}

#[mcp_harness::test]
async fn a_server_without_metadata_documents_gets_a_dynamic_registration() {
    let doc = ClientMetadataServer::start(ClientMetadataServer::document_for("cimd tests"))
        .await
        .unwrap();
    let (server, log) = oauth_server(OAuthServerConfig {
        client_id_metadata_documents: false,
        ..accepting_loopback_documents()
    })
    .await;
    let tokens = mcp_harness::authorize(
        server.url(),
        Transport::StreamableHttp,
        &OAuth::new().client_metadata_url(doc.url()),
    )
    .await
    .unwrap();
    assert_ne!(tokens.client_id(), doc.url());
    assert!(events(&log).iter().any(|e| e == "oauth_registration"));
    assert_eq!(doc.fetches(), 0);
}

#[rstest::rstest]
#[case::http_without_the_switch(None, false, "set allow_http_client_metadata")]
#[case::another_client_id(
    Some("https://impostor.example/client.json"),
    true,
    "names client_id \"https://impostor.example/client.json\", not its own url"
)]
#[mcp_harness::test]
async fn a_document_the_server_cannot_take_stops_the_flow_at_authorization(
    #[case] claimed: Option<&str>,
    #[case] switch: bool,
    #[case] says: &str,
) {
    let mut document = ClientMetadataServer::document_for("cimd tests");
    if let Some(id) = claimed {
        document["client_id"] = json!(id);
    }
    let doc = ClientMetadataServer::start(document).await.unwrap();
    let (server, log) = oauth_server(OAuthServerConfig {
        allow_http_client_metadata: switch,
        ..OAuthServerConfig::default()
    })
    .await;
    let (oauth, callbacks) =
        crate::support::noting_callbacks(OAuth::new().client_metadata_url(doc.url()));
    let err = mcp_harness::authorize(server.url(), Transport::StreamableHttp, &oauth)
        .await
        .expect_err("the server refuses the document");
    let Error::OAuth { step, reason, .. } = &err else {
        panic!("expected an OAuth error, got {err}");
    };
    assert_eq!(*step, OAuthStep::Authorization, "{err}");
    assert!(reason.contains(says), "{reason}");
    let seen = events(&log);
    assert!(
        !seen
            .iter()
            .any(|e| e == "oauth_token" || e == "oauth_registration"),
        "{seen:?}"
    );
    assert_eq!(callbacks.lock().unwrap().len(), 1);
    crate::support::assert_callbacks_stopped(&callbacks);
}

#[mcp_harness::test]
async fn the_client_refuses_a_document_url_that_breaks_the_rules_before_any_request() {
    let (server, log) = oauth_server(accepting_loopback_documents()).await;
    let err = mcp_harness::authorize(
        server.url(),
        Transport::StreamableHttp,
        &OAuth::new().client_metadata_url("http://ci.example.com/client.json"),
    )
    .await
    .expect_err("an http url off loopback is refused");
    let Error::OAuth { step, reason, .. } = &err else {
        panic!("expected an OAuth error, got {err}");
    };
    assert_eq!(*step, OAuthStep::Registration, "{err}");
    assert!(reason.contains("must be https"), "{reason}");
    assert!(!events(&log).iter().any(|e| e.starts_with("oauth_")));
}
