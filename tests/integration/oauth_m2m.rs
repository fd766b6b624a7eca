//! Machine to machine: the OAuth client credentials grant (the MCP client credentials
//! extension) between the harness's OAuth client and the built-in authorization server, with a
//! client secret and with a JWT assertion signed by the client's private key (RFC 7523). No
//! browser, no registration, no callback server.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mcp_harness::{
    Bundled, BundledAuth, BundledServer, Error, JwtSigningAlg, OAuth, OAuthClient,
    OAuthServerConfig, OAuthStep, Secret, Server, Session, TokenEndpointAuth, Transport,
};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::call_json;

const SECRET: &str = "m2m-secret-7c1";

/// A fresh P-256 key pair: the private key as PKCS #8 PEM and the public key as a JWK Set.
fn es256_key(kid: &str) -> (Secret, Value) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // The uncompressed point: 0x04, x, y.
    let point = pair.public_key().as_ref();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    let b64 = STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    (Secret::new(pem), jwks)
}

/// The suite's RSA test key (PKCS #1 PEM) and its public key as a JWK Set.
fn rs256_key(kid: &str) -> (Secret, Value) {
    let pem = crate::transports::RSA_PRIVATE_PEM;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = STANDARD.decode(body).unwrap();
    let pair = ring::signature::RsaKeyPair::from_der(&der).unwrap();
    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    let jwks = json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    }]});
    (Secret::new(pem), jwks)
}

fn client(id: &str, method: &str, secret: Option<&str>, jwks: Option<Value>) -> OAuthClient {
    OAuthClient {
        client_id: id.into(),
        client_secret: secret.map(str::to_owned),
        token_endpoint_auth_method: method.into(),
        redirect_uris: Vec::new(),
        jwks,
    }
}

/// fast-test over streamable HTTP with OAuth, knowing `clients`, and its event log.
async fn server_with(clients: Vec<OAuthClient>) -> (Server, tempfile::NamedTempFile) {
    let events = tempfile::NamedTempFile::new().expect("an event log");
    let config = OAuthServerConfig {
        clients,
        allow_registration: false,
        ..OAuthServerConfig::default()
    };
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

fn events(log: &tempfile::NamedTempFile) -> Vec<Value> {
    std::fs::read_to_string(log.path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

async fn expire_all_tokens(server: &Server) {
    let url = server.url().trim_end_matches("/mcp").to_owned() + "/oauth/test/expire-tokens";
    let r = reqwest::Client::new().post(&url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

#[rstest]
#[case::client_secret_basic("secret-basic")]
#[case::client_secret_post("secret-post")]
#[case::private_key_jwt_es256("private-key-jwt")]
#[case::private_key_jwt_rs256("private-key-jwt-rs256")]
#[mcp_harness::test]
async fn the_client_credentials_grant_authorizes_a_machine_and_fetches_again_when_refused(
    #[case] how: &str,
) {
    let (pem, jwks) = es256_key("k1");
    let (registered, oauth) = match how {
        "secret-basic" => (
            client("ci-bot", "client_secret_basic", Some(SECRET), None),
            OAuth::new().client_credentials(
                "ci-bot",
                Secret::new(SECRET),
                TokenEndpointAuth::ClientSecretBasic,
            ),
        ),
        "secret-post" => (
            client("ci-bot", "client_secret_post", Some(SECRET), None),
            OAuth::new().client_credentials(
                "ci-bot",
                Secret::new(SECRET),
                TokenEndpointAuth::ClientSecretPost,
            ),
        ),
        "private-key-jwt" => (
            client("ci-bot", "private_key_jwt", None, Some(jwks)),
            OAuth::new().client_credentials_jwt("ci-bot", pem, JwtSigningAlg::Es256),
        ),
        _ => {
            let (pem, jwks) = rs256_key("r1");
            (
                client("ci-bot", "private_key_jwt", None, Some(jwks)),
                OAuth::new().client_credentials_jwt("ci-bot", pem, JwtSigningAlg::Rs256),
            )
        }
    };
    let (server, log) = server_with(vec![registered]).await;
    let (oauth, callbacks) = crate::support::noting_callbacks(oauth);
    let tokens = Arc::new(
        mcp_harness::authorize(server.url(), Transport::StreamableHttp, &oauth)
            .await
            .unwrap_or_else(|e| panic!("{how}: {e}")),
    );
    assert_eq!(tokens.client_id(), "ci-bot");
    assert_eq!(tokens.redirect_uri(), "", "no callback was involved");
    let session = Session::builder(&server)
        .oauth_tokens(tokens.clone())
        .connect()
        .await
        .unwrap();
    // The token is the machine's own: the subject is the client.
    let who = call_json(&session, "whoami", json!({})).await;
    assert_eq!(who["subject"], "ci-bot", "{who}");

    // No refresh token comes with this grant (RFC 6749 4.4.3): when the server refuses the
    // token, the grant runs again and the call goes through on the same session.
    expire_all_tokens(&server).await;
    let who = call_json(&session, "whoami", json!({})).await;
    assert_eq!(who["subject"], "ci-bot", "{who}");
    assert_eq!(tokens.refreshes().await, 0);
    assert_eq!(tokens.reauthorizations().await, 1);
    session.shutdown().await.unwrap();

    let seen = events(&log);
    let names: Vec<&str> = seen.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(
        !names.contains(&"oauth_authorize") && !names.contains(&"oauth_registration"),
        "{names:?}"
    );
    let grants: Vec<&Value> = seen
        .iter()
        .filter(|e| e["event"] == "oauth_token")
        .map(|e| &e["grant_type"])
        .collect();
    assert_eq!(
        grants,
        vec!["client_credentials", "client_credentials"],
        "{seen:?}"
    );
    assert!(
        callbacks.lock().unwrap().is_empty(),
        "no callback server is ever started"
    );
}

#[rstest]
#[case::wrong_secret("wrong-secret", "wrong client secret")]
#[case::another_key("another-key", "signature matches none of the client's keys")]
#[case::unknown_client("unknown-client", "unknown client_id")]
#[mcp_harness::test]
async fn a_refused_client_credentials_grant_names_the_token_step_and_why(
    #[case] how: &str,
    #[case] says: &str,
) {
    let (_, jwks) = es256_key("k1");
    let (other_pem, _) = es256_key("k1");
    let (server, log) = server_with(vec![
        client("ci-bot", "client_secret_basic", Some(SECRET), None),
        client("signer", "private_key_jwt", None, Some(jwks)),
    ])
    .await;
    let oauth = match how {
        "wrong-secret" => OAuth::new().client_credentials(
            "ci-bot",
            Secret::new("not-the-secret"),
            TokenEndpointAuth::ClientSecretBasic,
        ),
        "another-key" => {
            OAuth::new().client_credentials_jwt("signer", other_pem, JwtSigningAlg::Es256)
        }
        _ => OAuth::new().client_credentials(
            "nobody",
            Secret::new(SECRET),
            TokenEndpointAuth::ClientSecretPost,
        ),
    };
    let err = mcp_harness::authorize(server.url(), Transport::StreamableHttp, &oauth)
        .await
        .expect_err("the grant must be refused");
    let Error::OAuth { step, reason, .. } = &err else {
        panic!("expected an OAuth error, got {err}");
    };
    assert_eq!(*step, OAuthStep::Token, "{err}");
    assert!(reason.contains(says), "{how}: {reason}");
    let message = err.to_string();
    assert!(
        !message.contains(SECRET) && !message.contains("not-the-secret"),
        "a secret in the error: {message}"
    );
    // The server issued nothing.
    assert!(
        !events(&log).iter().any(|e| e["event"] == "oauth_token"),
        "a token was issued"
    );
}

#[mcp_harness::test]
async fn a_private_key_in_the_wrong_shape_is_refused_before_anything_is_sent() {
    let (server, log) = server_with(vec![client("signer", "private_key_jwt", None, None)]).await;
    let oauth = OAuth::new().client_credentials_jwt(
        "signer",
        Secret::new("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
        JwtSigningAlg::Es256,
    );
    let err = mcp_harness::authorize(server.url(), Transport::StreamableHttp, &oauth)
        .await
        .expect_err("a public key cannot sign");
    let Error::OAuth { step, reason, .. } = &err else {
        panic!("expected an OAuth error, got {err}");
    };
    assert_eq!(*step, OAuthStep::Registration, "{err}");
    assert!(reason.contains("client `signer`"), "{reason}");
    assert!(events(&log).iter().all(|e| e["event"] != "oauth_token"));
}

/// RFC 6749 4.4: the client credentials grant is for confidential clients only; a public client
/// (no secret, no key) asking for it is refused, and nothing is issued.
#[mcp_harness::test]
async fn the_server_refuses_the_grant_to_a_public_client() {
    let (server, log) = server_with(vec![client("public", "none", None, None)]).await;
    let token = server.url().trim_end_matches("/mcp").to_owned() + "/token";
    let r = reqwest::Client::new()
        .post(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=public")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["error"], "unauthorized_client", "{doc}");
    assert!(
        !events(&log).iter().any(|e| e["event"] == "oauth_token"),
        "a token was issued"
    );
}
