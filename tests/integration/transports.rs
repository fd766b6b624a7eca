//! Every transport with every credential, against real bundled servers: stdio, streamable HTTP
//! and legacy HTTP+SSE; no auth, static bearer tokens, HS256/RS256 JWTs and headless OAuth 2.1
//! (dynamic and pre-registered clients, each token endpoint auth method, refresh). Refusals
//! are typed and say why; OAuth callback servers never outlive their flow; secrets never
//! reach the logs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_harness::{
    Bundled, BundledAuth, BundledServer, Error, OAuth, OAuthClient, OAuthServerConfig, OAuthStep,
    Secret, Server, Session, Target, TokenEndpointAuth, Transport,
};
use serde_json::json;

use crate::support::{call_json, call_text, eventually};

const HTTP_TRANSPORTS: [Transport; 2] = [Transport::StreamableHttp, Transport::Sse];
const HS256_SECRET: &str = "transports-hs256-test-secret";
const BASIC_SECRET: &str = "pre-basic-client-secret-0123456789";
const POST_SECRET: &str = "pre-post-client-secret-0123456789";
const ALICE_TOKEN: &str = "bearer-token-of-alice-0123456789";

/// A test-only RSA key pair (2048 bits) for RS256 JWTs; it protects nothing.
pub(crate) const RSA_PRIVATE_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEAs4vHiAjPOIi1CHux6SaLR8ysw3/Ibhf/kba1UGebfUbn63Tw
xWZRVcPlZ/g/HcY+Li4IEenGfRwM/WtGO65kr1ggDefvp/5x/nY3CtAOq9PtGB5B
ivixQzCNndZbrvL/7JwyhqTSYg5f5Cp1YsX3BEdcvhO8pVYlBCI0ZdEcfToFdxAI
bA8ZcST3MpZWArcMNc+dSu2KKiXaySiMGjL7IGLYV7eDDKIN0vXWVmWNmcjfIZJb
xKKRooy/aSjfufOzppKHEmmwczQPeV7cjNdzyCNpdS/QgKEgUCVQu5/h0BxUzza8
S5kevRE7tqEagS51UkbAFBG6hACpBOwTf8P20QIDAQABAoIBAAZhNC1iEEBoUaPv
9r7zx9lM1VLzRXs9eq8aGpRVQR/1AvjBqIxAFenl7n7osg/wF02nZLGjwJH5mx/O
VfIZENJu74Ek/ZXW34Sw3UTy5oGOI8eijBZIvs42EYMjLrHvSB8Xf/9bKA9URs2e
AVqpkXzXPw0xOPfYQTOV1k4rnW843zraKW/+oetHCVc1q/gIlKG5+MmWHLnscOJg
KLJ8ZaUYAVfwxa5cbHM9C4nxIiqi7kg2RmBeF3psw631b3fKCNTxRGJKTSgVOEcq
ilHoQeemNwFGvJrL2nsaeu5RK6Lq6pZG7uSIvKaQgCTAweoGU9J+aYZSW6ZLpaQJ
+B/sJcECgYEA5dsdjnjkdukCxLBgfSHAnEiS5SqCukRIPVCLkCck2yW+AlpMuiwR
QJ1AD5Ie/5l10wILRmdciqUOnSPQE0T8BaiaDFis0z5h9pm9YYqVm7ZjG9j32q8s
vKAVLvIC/XVVpyoCFodCc47Lph9rd6U/IVYOhJzRgGpSS15h6nUFH5ECgYEAx/fA
1lFYFoctMr/hqPPrsZW7lKHm7Tf5aHndprb1n3fcpAf/zKmBTRlnHcJ2n/IXUkW1
nd830lgZXJ0vQIIFlGvhEahQRs2Q2LSquSlC3+tQ/hvhIEh5xCpsRBTdXbYMlqJh
KJ5V5H+VysU7+u0Av6nvtzDE5hnzaS4RfZz0Q0ECgYBIaiLCqvWXPMuhecu8QHD1
C6wzxJPQ6Qg1QPXnIV3sKNTW2uoHUTDSQXhYL3nSnt9O7frtYEz4ZQ3YldrM51Pa
2IZH03wHRUUJst/GJioCF5Dbyhwz6jJW7rwdwSMOBPRKKOLlhBF8ZIVmPcnWtNnR
v9HtF5atNVHd6stAWUOW8QKBgGtTn42oNTZKMUkm0dBjsuIqsnZQ+2fg/h1EI2JC
msyPgb4MiQ/o/nxKIR1I7XBleHzw60yjrQtZu6sItn7SCnqh+DgI9aU62f5l4afl
7H3QiDUK86bnH2vZNSjJZhLRDiqfVrR9Xy54CAbAG7RPFnLIm9/f7h5uWUXfswWP
g07BAoGAEZ56r2MGoMjCRULrgbMQGSwTYJqXkUp5/MhopSkQ1umaOwUZwWesJR2r
qQs5D2IRHJcyDmLE/0D6oajGNP0FCttNQfijoXwMU0VhDFsOvYlA4aLlYe1CKLvq
thKZYIMxZZWa/egVupHQqic/dU7JXcar/t16AE8P5dKI96VAgPY=
-----END RSA PRIVATE KEY-----";
const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAs4vHiAjPOIi1CHux6SaL
R8ysw3/Ibhf/kba1UGebfUbn63TwxWZRVcPlZ/g/HcY+Li4IEenGfRwM/WtGO65k
r1ggDefvp/5x/nY3CtAOq9PtGB5BivixQzCNndZbrvL/7JwyhqTSYg5f5Cp1YsX3
BEdcvhO8pVYlBCI0ZdEcfToFdxAIbA8ZcST3MpZWArcMNc+dSu2KKiXaySiMGjL7
IGLYV7eDDKIN0vXWVmWNmcjfIZJbxKKRooy/aSjfufOzppKHEmmwczQPeV7cjNdz
yCNpdS/QgKEgUCVQu5/h0BxUzza8S5kevRE7tqEagS51UkbAFBG6hACpBOwTf8P2
0QIDAQAB
-----END PUBLIC KEY-----";

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Sse => "sse",
        Transport::Stdio => "stdio",
        _ => "http",
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// A JWT for `sub` that expires `exp_in` seconds from now (negative: already expired).
fn hs256(sub: &str, exp_in: i64, secret: &str) -> Secret {
    let claims = json!({"sub": sub, "iat": now(), "exp": now() + exp_in});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    Secret::new(jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap())
}

fn rs256(sub: &str, exp_in: i64) -> Secret {
    let claims = json!({"sub": sub, "iat": now(), "exp": now() + exp_in});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).unwrap();
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    Secret::new(jsonwebtoken::encode(&header, &claims, &key).unwrap())
}

fn oauth_config() -> OAuthServerConfig {
    let loopback = vec!["http://127.0.0.1/callback".to_owned()];
    OAuthServerConfig {
        user: "olivia".into(),
        clients: vec![
            OAuthClient {
                client_id: "pre-none".into(),
                client_secret: None,
                token_endpoint_auth_method: "none".into(),
                redirect_uris: loopback.clone(),
                jwks: None,
            },
            OAuthClient {
                client_id: "pre-basic".into(),
                client_secret: Some(BASIC_SECRET.into()),
                token_endpoint_auth_method: "client_secret_basic".into(),
                redirect_uris: loopback.clone(),
                jwks: None,
            },
            OAuthClient {
                client_id: "pre-post".into(),
                client_secret: Some(POST_SECRET.into()),
                token_endpoint_auth_method: "client_secret_post".into(),
                redirect_uris: loopback,
                jwks: None,
            },
        ],
        ..OAuthServerConfig::default()
    }
}

async fn start(transport: Transport, auth: BundledAuth) -> Server {
    start_spec(
        BundledServer::new(Bundled::FastTest, transport)
            .auth(auth)
            .spec(),
    )
    .await
}

async fn start_spec(spec: mcp_harness::ServerSpec) -> Server {
    Server::start(spec)
        .await
        .unwrap_or_else(|e| panic!("cannot start the server: {e}"))
}

fn jwt_auth() -> BundledAuth {
    // The JWT server of these tests accepts both algorithms.
    BundledAuth::Jwt(HS256_SECRET.into())
}

/// A server accepting HS256 and RS256 JWTs.
async fn start_jwt(transport: Transport) -> Server {
    let spec = BundledServer::new(Bundled::FastTest, transport)
        .auth(jwt_auth())
        .spec()
        .env("MCP_HARNESS_JWT_PUBLIC_KEY", RSA_PUBLIC_PEM);
    start_spec(spec).await
}

/// The server's `http://host:port`.
fn base_of(server: &Server) -> String {
    let url = server.url();
    let after = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after..].find('/') {
        Some(i) => url[..after + i].to_owned(),
        None => url.to_owned(),
    }
}

/// Connects, calls echo and whoami, checks the subject and the transport.
async fn check_round_trip(
    server: &Server,
    builder: mcp_harness::SessionBuilder,
    subject: Option<&str>,
) {
    let transport = server.transport();
    let session = builder
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{transport}: cannot connect: {e}"));
    assert_eq!(
        call_text(&session, "echo", json!({"text": "hi"})).await,
        "hi"
    );
    let who = call_json(&session, "whoami", json!({})).await;
    assert_eq!(who["subject"], json!(subject), "{transport}: {who}");
    assert_eq!(who["transport"], transport_name(transport), "{who}");
    // Custom headers go out on every request (over SSE: the GET and each POST).
    if let Some(tenant) = who["headers"].get("x-tenant-id") {
        assert_eq!(tenant, "acme");
    }
    session.shutdown().await.unwrap();
}

#[test]
fn stdio_without_credentials_reports_the_configured_subject() {
    mcp_harness::run(async {
        let spec = BundledServer::new(Bundled::FastTest, Transport::Stdio)
            .subject("stella")
            .spec();
        let session = Session::builder(Target::Stdio(spec.clone()))
            .name("stella")
            .connect()
            .await
            .unwrap();
        assert_eq!(
            call_text(&session, "echo", json!({"text": "hi"})).await,
            "hi"
        );
        let who = call_json(&session, "whoami", json!({})).await;
        assert_eq!(who["subject"], "stella");
        assert_eq!(who["transport"], "stdio");
        session.shutdown().await.unwrap();
        // OAuth does not apply to stdio: a typed error, not a hang.
        let err = Session::builder(Target::Stdio(spec))
            .oauth(OAuth::new())
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    });
}

#[test]
fn http_and_sse_without_auth_connect_call_and_report_no_subject() {
    mcp_harness::run(async {
        for t in HTTP_TRANSPORTS {
            let server = start(t, BundledAuth::None).await;
            check_round_trip(&server, Session::builder(&server).name("anon"), None).await;
            // The same server named by its url alone.
            let target = match t {
                Transport::Sse => Target::Sse(server.url().to_owned()),
                _ => Target::Http(server.url().to_owned()),
            };
            check_round_trip(&server, Session::builder(target).name("by-url"), None).await;
        }
    });
}

#[test]
fn http_and_sse_with_bearer_tokens_report_the_token_subject() {
    mcp_harness::run(async {
        for t in HTTP_TRANSPORTS {
            let server = start(
                t,
                BundledAuth::Bearer(vec![(ALICE_TOKEN.into(), "alice".into())]),
            )
            .await;
            let builder = Session::builder(&server)
                .name("alice")
                .bearer_token(ALICE_TOKEN)
                .header("x-tenant-id", "acme");
            let session = builder.clone().connect().await.unwrap();
            let who = call_json(&session, "whoami", json!({})).await;
            assert_eq!(who["headers"]["x-tenant-id"], "acme", "{t}: {who}");
            assert_eq!(who["headers"]["authorization"], "<redacted>", "{t}: {who}");
            session.shutdown().await.unwrap();
            check_round_trip(&server, builder, Some("alice")).await;
        }
    });
}

#[test]
fn http_and_sse_with_hs256_and_rs256_jwts_report_the_sub_claim() {
    mcp_harness::run(async {
        for t in HTTP_TRANSPORTS {
            let server = start_jwt(t).await;
            let hs = Session::builder(&server).name("hannah").bearer_token(hs256(
                "hannah",
                600,
                HS256_SECRET,
            ));
            check_round_trip(&server, hs, Some("hannah")).await;
            let rs = Session::builder(&server)
                .name("rosa")
                .bearer_token(rs256("rosa", 600));
            check_round_trip(&server, rs, Some("rosa")).await;
        }
    });
}

#[test]
fn http_and_sse_with_oauth_report_the_authorized_user() {
    mcp_harness::run(async {
        for t in HTTP_TRANSPORTS {
            let server = start(t, BundledAuth::OAuth(Box::new(oauth_config()))).await;
            let builder = Session::builder(&server).name("oauth").oauth(OAuth::new());
            check_round_trip(&server, builder, Some("olivia")).await;
        }
    });
}

fn expect_unauthorized(err: Error, kind: &str, secret: Option<&str>) {
    let text = err.to_string();
    match &err {
        Error::Unauthorized { reason, .. } => assert!(
            reason.starts_with(kind),
            "expected a `{kind}` refusal, got reason {reason:?}"
        ),
        other => panic!("expected Error::Unauthorized ({kind}), got {other:?}"),
    }
    if let Some(s) = secret {
        assert!(!text.contains(s), "the error shows the token: {text}");
        assert!(!format!("{err:?}").contains(s), "Debug shows the token");
    }
}

#[test]
fn missing_wrong_malformed_and_expired_tokens_are_typed_refusals_that_say_which() {
    mcp_harness::run(async {
        for t in HTTP_TRANSPORTS {
            let bearer = start(
                t,
                BundledAuth::Bearer(vec![(ALICE_TOKEN.into(), "alice".into())]),
            )
            .await;
            // Refusals are not retried: with 5 attempts the error is still Unauthorized, fast.
            let connect = |token: Option<Secret>, server: &Server| {
                let mut b = Session::builder(server).name("eve").connect_attempts(5);
                if let Some(token) = token {
                    b = b.bearer_token(token);
                }
                b.connect()
            };
            let err = connect(None, &bearer).await.unwrap_err();
            expect_unauthorized(err, "missing", None);
            let wrong = "a-wrong-token-0123456789";
            let err = connect(Some(wrong.into()), &bearer).await.unwrap_err();
            expect_unauthorized(err, "unknown", Some(wrong));

            let jwt = start_jwt(t).await;
            let expired = hs256("eve", -120, HS256_SECRET);
            let err = connect(Some(expired.clone()), &jwt).await.unwrap_err();
            expect_unauthorized(err, "expired", Some(expired.expose()));
            let expired_rs = rs256("eve", -120);
            let err = connect(Some(expired_rs.clone()), &jwt).await.unwrap_err();
            expect_unauthorized(err, "expired", Some(expired_rs.expose()));
            let forged = hs256("eve", 600, "not-the-server-secret");
            let err = connect(Some(forged.clone()), &jwt).await.unwrap_err();
            expect_unauthorized(err, "unknown", Some(forged.expose()));
            let err = connect(Some("not-a-jwt".into()), &jwt).await.unwrap_err();
            expect_unauthorized(err, "malformed", Some("not-a-jwt"));
            let err = connect(None, &jwt).await.unwrap_err();
            expect_unauthorized(err, "missing", None);
        }
    });
}

#[test]
fn oauth_with_dynamic_registration_and_each_token_endpoint_auth_method() {
    mcp_harness::run(async {
        for t in HTTP_TRANSPORTS {
            let server = start(t, BundledAuth::OAuth(Box::new(oauth_config()))).await;
            for method in [
                TokenEndpointAuth::None,
                TokenEndpointAuth::ClientSecretBasic,
                TokenEndpointAuth::ClientSecretPost,
            ] {
                let tokens = mcp_harness::authorize(
                    server.url(),
                    t,
                    &OAuth::new().registration_auth(method),
                )
                .await
                .unwrap_or_else(|e| panic!("{t} {method:?}: {e}"));
                assert!(
                    tokens.client_id().starts_with("client_"),
                    "dynamically registered"
                );
                // The scope came from the challenge (the server requires mcp:tools).
                assert_eq!(tokens.scope().await.as_deref(), Some("mcp:tools"));
                let builder = Session::builder(&server)
                    .name("dyn")
                    .oauth_tokens(Arc::new(tokens));
                check_round_trip(&server, builder, Some("olivia")).await;
            }
        }
    });
}

#[test]
fn oauth_with_a_pre_registered_client_and_each_token_endpoint_auth_method() {
    mcp_harness::run(async {
        for t in HTTP_TRANSPORTS {
            let server = start(t, BundledAuth::OAuth(Box::new(oauth_config()))).await;
            for (id, secret, method) in [
                ("pre-none", None, TokenEndpointAuth::None),
                (
                    "pre-basic",
                    Some(BASIC_SECRET),
                    TokenEndpointAuth::ClientSecretBasic,
                ),
                (
                    "pre-post",
                    Some(POST_SECRET),
                    TokenEndpointAuth::ClientSecretPost,
                ),
            ] {
                let oauth = OAuth::new().pre_registered(id, secret.map(Secret::new), method);
                let builder = Session::builder(&server).name(id).oauth(oauth);
                check_round_trip(&server, builder, Some("olivia")).await;
            }
        }
    });
}

#[test]
fn oauth_scope_falls_back_to_scopes_supported_without_a_challenge_scope() {
    mcp_harness::run(async {
        let mut config = oauth_config();
        config.challenge_scope = false;
        let server = start(
            Transport::StreamableHttp,
            BundledAuth::OAuth(Box::new(config)),
        )
        .await;
        let tokens = mcp_harness::authorize(server.url(), Transport::StreamableHttp, &OAuth::new())
            .await
            .unwrap();
        assert_eq!(tokens.scope().await.as_deref(), Some("mcp:tools mcp:admin"));
    });
}

/// Counts the authorization requests an OAuth flow makes (the first one and any step-ups).
/// Counts how many times the flow starts `step`.
fn counting_steps(oauth: OAuth, step: OAuthStep) -> (OAuth, Arc<std::sync::atomic::AtomicUsize>) {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let oauth = oauth.observe(move |e| {
        if e.step == step {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (oauth, count)
}

fn counting_authorizations(oauth: OAuth) -> (OAuth, Arc<std::sync::atomic::AtomicUsize>) {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let oauth = oauth.observe(move |e| {
        if e.step == OAuthStep::Authorization {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (oauth, count)
}

/// MCP 2025-11-25 step-up authorization: a token without the scope the endpoint needs gets a
/// 403 `insufficient_scope`; the client authorizes again, headless, for the granted scope plus
/// the challenge's, and the request goes through on the same session.
#[test]
fn oauth_step_up_authorizes_again_for_the_scope_a_403_asks_for() {
    mcp_harness::run(async {
        // The endpoint needs mcp:tools; the client asks for mcp:admin only.
        let server = start(
            Transport::StreamableHttp,
            BundledAuth::OAuth(Box::new(oauth_config())),
        )
        .await;
        let (oauth, authorizations) = counting_authorizations(OAuth::new().scope("mcp:admin"));
        let s = Session::builder(&server)
            .name("step-up")
            .oauth(oauth)
            .connect()
            .await
            .expect("the step-up lets the session in");
        assert_eq!(
            call_json(&s, "whoami", json!({})).await["subject"],
            "olivia"
        );
        assert_eq!(
            authorizations.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "one authorization, then one step-up"
        );
        s.shutdown().await.unwrap();
    });
}

/// A scope the authorization server will not grant: the step-up fails and the caller gets the
/// server's refusal as a typed error, after a bounded number of authorizations.
#[test]
fn oauth_step_up_that_cannot_get_the_scope_ends_in_a_typed_refusal() {
    mcp_harness::run(async {
        let mut config = oauth_config();
        config.required_scopes = vec!["mcp:tools".into(), "mcp:never-granted".into()];
        let server = start(
            Transport::StreamableHttp,
            BundledAuth::OAuth(Box::new(config)),
        )
        .await;
        let (oauth, authorizations) = counting_authorizations(OAuth::new().scope("mcp:tools"));
        let err = Session::builder(&server)
            .name("step-up-refused")
            .oauth(oauth)
            .connect_attempts(1)
            .connect()
            .await
            .expect_err("the scope is never granted");
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        assert!(err.to_string().contains("insufficient_scope"), "{err}");
        let n = authorizations.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=3).contains(&n), "{n} authorizations");
    });
}

async fn expire_all_tokens(server: &Server) {
    let url = format!("{}/oauth/test/expire-tokens", base_of(server));
    let r = reqwest::Client::new().post(&url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

#[test]
fn oauth_token_expiring_mid_run_is_refreshed() {
    mcp_harness::run(async {
        for t in HTTP_TRANSPORTS {
            let server = start(t, BundledAuth::OAuth(Box::new(oauth_config()))).await;
            let tokens = Arc::new(
                mcp_harness::authorize(server.url(), t, &OAuth::new())
                    .await
                    .unwrap(),
            );
            let session = Session::builder(&server)
                .name("refresh")
                .oauth_tokens(tokens.clone())
                .connect()
                .await
                .unwrap();
            assert_eq!(call_text(&session, "counter", json!({})).await, "1");
            let before = tokens.access_token().await.unwrap();
            expire_all_tokens(&server).await;
            // The next call is refused, the token refreshed, the call retried: same session.
            assert_eq!(call_text(&session, "counter", json!({})).await, "2", "{t}");
            assert_eq!(tokens.refreshes().await, 1, "{t}");
            assert_ne!(tokens.access_token().await.unwrap(), before);
            let who = call_json(&session, "whoami", json!({})).await;
            assert_eq!(who["subject"], "olivia");
            session.shutdown().await.unwrap();
        }
        // A token about to expire (its 1 s lifetime is inside the client's 5 s margin) is
        // refreshed before it is sent: the server refuses nothing (its event log says so).
        let mut config = oauth_config();
        config.access_token_ttl_ms = 1000;
        let events = tempfile::NamedTempFile::new().unwrap();
        let server = start_spec(
            BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
                .auth(BundledAuth::OAuth(Box::new(config)))
                .event_log(events.path())
                .spec(),
        )
        .await;
        let tokens = Arc::new(
            mcp_harness::authorize(server.url(), Transport::StreamableHttp, &OAuth::new())
                .await
                .unwrap(),
        );
        let refreshed_before = tokens.refreshes().await;
        // Let the token granted above expire at the server (its lifetime is the event waited
        // for): sent as it is, it would now be refused.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let session = Session::builder(&server)
            .oauth_tokens(tokens.clone())
            .connect()
            .await
            .unwrap();
        call_text(&session, "echo", json!({"text": "x"})).await;
        assert!(tokens.refreshes().await > refreshed_before);
        let log = std::fs::read_to_string(events.path()).unwrap();
        let refused: Vec<&str> = log.lines().filter(|l| l.contains("\"refused\"")).collect();
        // The authorization flow's own unauthenticated probe is the one refusal allowed.
        assert!(
            refused.iter().all(|l| l.contains("missing")),
            "a token was sent after it expired: {refused:?}"
        );
    });
}

/// Ports this process listens on: LISTEN entries of /proc/self/net/tcp{,6} (which list the whole
/// network namespace, child servers included) whose socket inode is one of this process's fds.
fn listening_ports() -> HashSet<u16> {
    let own_sockets: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = HashSet::new();
    for file in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(table) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9
                && fields[3] == "0A"
                && own_sockets.contains(fields[9])
                && let Some(port) = fields[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// Waits until none of `addrs` is a live callback server or a listening port.
async fn assert_callbacks_gone(addrs: &[SocketAddr]) {
    for addr in addrs {
        eventually(
            &format!("callback server {addr} to stop"),
            Duration::from_secs(5),
            || async {
                (!mcp_harness::live_callback_servers().contains(addr)
                    && !listening_ports().contains(&addr.port()))
                .then_some(())
            },
        )
        .await;
    }
}

#[test]
fn twenty_oauth_flows_in_parallel_leave_no_listener_or_task() {
    mcp_harness::run(async {
        let server = start(
            Transport::StreamableHttp,
            BundledAuth::OAuth(Box::new(oauth_config())),
        )
        .await;
        let runtime = tokio::runtime::Handle::current();
        let tasks_before = runtime.metrics().num_alive_tasks();
        let callbacks = Arc::new(Mutex::new(Vec::new()));
        let flows = (0..20).map(|i| {
            let callbacks = callbacks.clone();
            let oauth = OAuth::new().observe(move |e| {
                if let (OAuthStep::Registration, Some(addr)) = (e.step, e.callback) {
                    callbacks.lock().unwrap().push(addr);
                }
            });
            let url = server.url().to_owned();
            async move {
                mcp_harness::authorize(&url, Transport::StreamableHttp, &oauth)
                    .await
                    .unwrap_or_else(|e| panic!("flow {i}: {e}"))
            }
        });
        let all_tokens = futures::future::join_all(flows).await;
        let callbacks = callbacks.lock().unwrap().clone();
        assert_eq!(callbacks.len(), 20);
        assert_eq!(
            callbacks.iter().collect::<HashSet<_>>().len(),
            20,
            "one callback server per flow"
        );
        // Stopped and awaited before each flow returned: no waiting needed.
        let live = mcp_harness::live_callback_servers();
        let listening = listening_ports();
        for addr in &callbacks {
            assert!(!live.contains(addr), "callback task {addr} still alive");
            assert!(
                !listening.contains(&addr.port()),
                "callback port {addr} still listening"
            );
        }
        // Under nextest this process runs this test alone: every task the flows started
        // (callback servers, HTTP connections) must be gone; under `cargo test` other tests
        // share the runtime, so the count says nothing there.
        if std::env::var_os("NEXTEST").is_some() {
            eventually(
                "the flows' tasks to end",
                Duration::from_secs(5),
                || async { (runtime.metrics().num_alive_tasks() <= tasks_before).then_some(()) },
            )
            .await;
        }
        // Twenty distinct clients, each authorized: twenty sessions in parallel.
        let ids: HashSet<String> = all_tokens
            .iter()
            .map(|t| t.client_id().to_owned())
            .collect();
        assert_eq!(ids.len(), 20);
        let sessions = all_tokens.into_iter().enumerate().map(|(i, tokens)| {
            let builder = Session::builder(&server)
                .name(format!("flow-{i}"))
                .oauth_tokens(Arc::new(tokens));
            async move {
                let session = builder.connect().await.unwrap();
                let who = call_json(&session, "whoami", json!({})).await;
                assert_eq!(who["subject"], "olivia");
                session.shutdown().await.unwrap();
            }
        });
        futures::future::join_all(sessions).await;
    });
}

#[test]
fn oauth_flow_cancelled_or_panicking_at_each_step_leaves_nothing_behind() {
    mcp_harness::run(async {
        let server = start(
            Transport::StreamableHttp,
            BundledAuth::OAuth(Box::new(oauth_config())),
        )
        .await;
        let runtime = tokio::runtime::Handle::current();
        let tasks_before = runtime.metrics().num_alive_tasks();
        for step in [
            OAuthStep::Discovery,
            OAuthStep::Registration,
            OAuthStep::Authorization,
            OAuthStep::Token,
        ] {
            for panic in [false, true] {
                let reached = Arc::new(tokio::sync::Notify::new());
                let callback = Arc::new(Mutex::new(None));
                let oauth = {
                    let reached = reached.clone();
                    let callback = callback.clone();
                    let server = server.clone();
                    OAuth::new().observe(move |e| {
                        if let Some(a) = e.callback {
                            *callback.lock().unwrap() = Some(a);
                        }
                        if e.step == step {
                            if panic {
                                panic!("observer panics at {step}");
                            }
                            // Every step starts with a request to the authorization server:
                            // freezing it keeps the flow inside this step until the test
                            // drops it, however the threads are scheduled.
                            server.pause().expect("pause the authorization server");
                            reached.notify_one();
                        }
                    })
                };
                let flow = mcp_harness::authorize(server.url(), Transport::StreamableHttp, &oauth);
                if panic {
                    let outcome =
                        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(flow)).await;
                    assert!(outcome.is_err(), "the flow should have panicked at {step}");
                } else {
                    tokio::select! {
                        biased;
                        _ = reached.notified() => {}
                        r = flow => panic!("the flow ended before it could be cancelled at {step}: {r:?}"),
                    }
                    // The flow future is dropped here, mid-step.
                    server.resume().expect("resume the authorization server");
                }
                let addrs: Vec<SocketAddr> = callback.lock().unwrap().iter().copied().collect();
                if step != OAuthStep::Discovery {
                    assert_eq!(
                        addrs.len(),
                        1,
                        "a callback server was started before {step}"
                    );
                }
                assert_callbacks_gone(&addrs).await;
            }
        }
        // Under nextest (this test alone in its process) no task of the flows is left either.
        if std::env::var_os("NEXTEST").is_some() {
            eventually(
                "the cancelled flows' tasks to end",
                Duration::from_secs(5),
                || async { (runtime.metrics().num_alive_tasks() <= tasks_before).then_some(()) },
            )
            .await;
        }
        // And the server is still fine for a complete flow.
        let tokens =
            mcp_harness::authorize(server.url(), Transport::StreamableHttp, &OAuth::new()).await;
        assert!(tokens.is_ok(), "{tokens:?}");
    });
}

fn expect_oauth_step(result: Result<impl std::fmt::Debug, Error>, step: OAuthStep) -> String {
    match result {
        Err(Error::OAuth {
            step: s, reason, ..
        }) if s == step => reason,
        other => panic!("expected an OAuth {step} error, got {other:?}"),
    }
}

#[test]
fn oauth_failures_name_the_failed_step_and_are_not_retried() {
    mcp_harness::run(async {
        let t = Transport::StreamableHttp;
        // Discovery: a server with bearer tokens has no authorization server.
        let bearer = start(
            t,
            BundledAuth::Bearer(vec![(ALICE_TOKEN.into(), "alice".into())]),
        )
        .await;
        let (oauth, discoveries) = counting_steps(OAuth::new(), OAuthStep::Discovery);
        let r = Session::builder(&bearer)
            .oauth(oauth)
            .connect_attempts(5)
            .connect()
            .await;
        expect_oauth_step(r, OAuthStep::Discovery);
        // Five attempts allowed, one made: a refusal is not retried.
        assert_eq!(discoveries.load(std::sync::atomic::Ordering::SeqCst), 1);

        let server = start(t, BundledAuth::OAuth(Box::new(oauth_config()))).await;
        // Scope: a scope the server does not know.
        let r = mcp_harness::authorize(server.url(), t, &OAuth::new().scope("no-such-scope")).await;
        expect_oauth_step(r, OAuthStep::Scope);
        // Authorization: a client the server does not know.
        let oauth = OAuth::new().pre_registered("nobody", None, TokenEndpointAuth::None);
        let r = mcp_harness::authorize(server.url(), t, &oauth).await;
        expect_oauth_step(r, OAuthStep::Authorization);
        // Token: the wrong client secret, through a session (never retried, never shown).
        let wrong = "the-wrong-client-secret-0123456789";
        let oauth = OAuth::new().pre_registered(
            "pre-basic",
            Some(wrong.into()),
            TokenEndpointAuth::ClientSecretBasic,
        );
        let (oauth, exchanges) = counting_steps(oauth, OAuthStep::Token);
        let r = Session::builder(&server)
            .oauth(oauth)
            .connect_attempts(5)
            .connect()
            .await;
        assert_eq!(
            exchanges.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one token exchange of five attempts allowed"
        );
        let err = r.unwrap_err();
        assert!(!err.to_string().contains(wrong) && !format!("{err:?}").contains(wrong));
        expect_oauth_step(Err::<(), _>(err), OAuthStep::Token);
        // Registration: dynamic registration switched off and no pre-registered client.
        let mut config = oauth_config();
        config.allow_registration = false;
        let closed = start(t, BundledAuth::OAuth(Box::new(config))).await;
        let r = mcp_harness::authorize(closed.url(), t, &OAuth::new()).await;
        expect_oauth_step(r, OAuthStep::Registration);
    });
}

#[test]
fn sse_sessions_are_separate_and_a_dead_server_gives_closed_then_a_new_session_connects() {
    mcp_harness::run(async {
        let server = start(Transport::Sse, BundledAuth::None).await;
        let a = Session::builder(&server).name("a").connect().await.unwrap();
        let b = Session::builder(&server).name("b").connect().await.unwrap();
        assert_eq!(call_text(&a, "counter", json!({})).await, "1");
        assert_eq!(call_text(&a, "counter", json!({})).await, "2");
        assert_eq!(call_text(&b, "counter", json!({})).await, "1");
        let wa = call_json(&a, "whoami", json!({})).await;
        let wb = call_json(&b, "whoami", json!({})).await;
        assert_ne!(wa["session_id"], wb["session_id"]);
        assert_eq!(wa["client"], "a");
        // Notifications come over the event stream too.
        let mut seen = a.notifications();
        a.call_tool("notify", json!({"kind": "tools"}))
            .await
            .unwrap();
        assert!(seen.next_within(Duration::from_secs(5)).await.is_some());

        server.restart().await.unwrap();
        let err = a.call_tool("counter", json!({})).await.unwrap_err();
        assert!(matches!(err, Error::Closed { .. }), "{err:?}");
        eventually("session a to notice", Duration::from_secs(5), || async {
            a.is_closed().then_some(())
        })
        .await;
        let c = Session::builder(&server).name("c").connect().await.unwrap();
        assert_eq!(call_text(&c, "counter", json!({})).await, "1");
        a.reconnect().await.unwrap();
        assert_eq!(call_text(&a, "counter", json!({})).await, "1");
    });
}

/// Tokens issued by the bundled authorization server: a known prefix and 43 base64url chars.
fn issued_secrets_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["at_", "rt_", "code_", "secret_"] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let tail = &rest[i + prefix.len()..];
            let n = tail
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                .count();
            if n >= 40 {
                found.push(format!("{prefix}{}", &tail[..n]));
            }
            rest = tail;
        }
    }
    found
}

#[test]
fn trace_logs_of_an_authenticated_run_contain_no_secret() {
    crate::support::capture_logs();
    mcp_harness::run(async {
        let mut secrets: Vec<String> = vec![ALICE_TOKEN.into(), BASIC_SECRET.into()];
        let mut server_logs = String::new();
        for t in HTTP_TRANSPORTS {
            let bearer = start_spec(
                BundledServer::new(Bundled::FastTest, t)
                    .auth(BundledAuth::Bearer(vec![(
                        ALICE_TOKEN.into(),
                        "alice".into(),
                    )]))
                    .spec()
                    .env("RUST_LOG", "trace"),
            )
            .await;
            let builder = Session::builder(&bearer)
                .name("alice")
                .bearer_token(ALICE_TOKEN)
                .header("x-api-key", "header-secret-0123456789");
            secrets.push("header-secret-0123456789".into());
            assert!(!format!("{builder:?}").contains(ALICE_TOKEN));
            let s = builder.connect().await.unwrap();
            call_json(&s, "whoami", json!({})).await;
            s.shutdown().await.unwrap();

            let jwt = start_jwt(t).await;
            let token = rs256("rosa", 600);
            secrets.push(token.expose().to_owned());
            let s = Session::builder(&jwt)
                .bearer_token(token)
                .connect()
                .await
                .unwrap();
            call_json(&s, "whoami", json!({})).await;
            s.shutdown().await.unwrap();

            let oauth_server = start_spec(
                BundledServer::new(Bundled::FastTest, t)
                    .auth(BundledAuth::OAuth(Box::new(oauth_config())))
                    .spec()
                    .env("RUST_LOG", "trace"),
            )
            .await;
            for oauth in [
                OAuth::new().pre_registered(
                    "pre-basic",
                    Some(BASIC_SECRET.into()),
                    TokenEndpointAuth::ClientSecretBasic,
                ),
                OAuth::new().registration_auth(TokenEndpointAuth::ClientSecretPost),
            ] {
                let tokens = Arc::new(
                    mcp_harness::authorize(oauth_server.url(), t, &oauth)
                        .await
                        .unwrap(),
                );
                assert!(!format!("{tokens:?} {oauth:?}").contains(BASIC_SECRET));
                secrets.push(tokens.access_token().await.unwrap().expose().to_owned());
                let s = Session::builder(&oauth_server)
                    .oauth_tokens(tokens.clone())
                    .connect()
                    .await
                    .unwrap();
                call_json(&s, "whoami", json!({})).await;
                expire_all_tokens(&oauth_server).await;
                call_json(&s, "whoami", json!({})).await;
                secrets.push(tokens.access_token().await.unwrap().expose().to_owned());
                s.shutdown().await.unwrap();
            }
            server_logs.push_str(&bearer.logs());
            server_logs.push_str(&oauth_server.logs());
        }
        // Specs carry the secrets in the server's environment; Debug never shows them.
        let spec = BundledServer::new(Bundled::FastTest, Transport::Sse)
            .auth(BundledAuth::OAuth(Box::new(oauth_config())))
            .spec();
        let shown = format!("{spec:?} {:?}", Target::Stdio(spec.clone()));
        assert!(
            !shown.contains(BASIC_SECRET),
            "a ServerSpec's Debug shows a secret"
        );
        let spec = BundledServer::new(Bundled::FastTest, Transport::Sse)
            .auth(BundledAuth::Bearer(vec![(
                ALICE_TOKEN.into(),
                "alice".into(),
            )]))
            .spec();
        assert!(!format!("{spec:?}").contains(ALICE_TOKEN));
        let logs = crate::support::captured_logs();
        assert!(
            logs.contains("OAuth step"),
            "the capture saw the flow (trace level is on)"
        );
        for s in &secrets {
            assert!(
                !logs.contains(s.as_str()),
                "a secret is in the harness logs"
            );
            assert!(
                !server_logs.contains(s.as_str()),
                "a secret is in the server logs"
            );
        }
        let leaked = issued_secrets_in(&logs);
        assert!(
            leaked.is_empty(),
            "issued codes/tokens/secrets in the harness logs: {} found",
            leaked.len()
        );
        let leaked = issued_secrets_in(&server_logs);
        assert!(
            leaked.is_empty(),
            "issued codes/tokens/secrets in the server logs: {} found",
            leaked.len()
        );
    });
}

const PYTHON_SSE_SERVER: &str = r#"
import os
from mcp.server.mcpserver import MCPServer
server = MCPServer("py-sse")
@server.tool()
def echo(text: str) -> str:
    return text
server.run(transport="sse", host="127.0.0.1", port=int(os.environ["PORT"]))
"#;

/// Fails, with how to install it, unless python3 can run `imports` from the `mcp` 2.x SDK.
fn require_python_sdk(imports: &str) {
    let available = std::process::Command::new("python3")
        .args(["-c", imports])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        available,
        "python3 with the `mcp` 2.x SDK is not installed: run scripts/setup.sh (pip install 'mcp>=2.3,<3')"
    );
}

/// The official Python SDK (`mcp` 2.x) serves legacy SSE with a relative `endpoint`
/// (`/messages/?session_id=...`). Skipped, loudly, where the SDK is not installed.
#[test]
fn sse_client_speaks_to_the_python_sdk_server() {
    require_python_sdk("import mcp.server.mcpserver");
    mcp_harness::run(async {
        // `{port}`: a free port the harness picks (and picks again if it is lost).
        let spec = mcp_harness::ServerSpec::new("py-sse", "python3")
            .args(["-c", PYTHON_SSE_SERVER])
            .env("PORT", "{port}")
            .transport(Transport::Sse)
            .address(mcp_harness::AddressSource::Fixed(
                "http://127.0.0.1:{port}/sse".into(),
            ))
            .readiness(mcp_harness::Readiness::McpInitialize)
            .startup_timeout(Duration::from_secs(30));
        let server = start_spec(spec).await;
        let session = Session::builder(&server)
            .name("py")
            .header("x-tenant-id", "acme")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.logs()));
        assert_eq!(
            call_text(&session, "echo", json!({"text": "hello python"})).await,
            "hello python"
        );
        let tools = session.list_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "echo"));
        session.shutdown().await.unwrap();
    });
}

const TYPESCRIPT_SSE_SERVER: &str = r#"
import express from "express";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { z } from "zod";
const transports = {};
const app = express();
app.get("/sse", async (req, res) => {
  const server = new McpServer({ name: "ts-sse", version: "1.0.0" });
  server.tool("echo", { text: z.string() }, async ({ text }) => ({ content: [{ type: "text", text }] }));
  const transport = new SSEServerTransport("/messages", res);
  transports[transport.sessionId] = transport;
  res.on("close", () => delete transports[transport.sessionId]);
  await server.connect(transport);
});
app.post("/messages", async (req, res) => {
  const t = transports[req.query.sessionId];
  if (!t) return res.status(404).send("no session");
  await t.handlePostMessage(req, res);
});
const port = Number(process.env.PORT);
app.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
"#;

/// The official TypeScript SDK serves legacy SSE with `SSEServerTransport` (endpoint
/// `/messages?sessionId=...`). Needs a directory with `@modelcontextprotocol/sdk` and
/// `express` installed (`npm install @modelcontextprotocol/sdk@1 express`), named by
/// `MCP_HARNESS_TS_SDK_DIR`, else the global install of `@modelcontextprotocol/server-everything`
/// that scripts/setup.sh makes (it ships the SDK, express and zod).
#[test]
fn sse_client_speaks_to_the_typescript_sdk_server() {
    let dir = std::env::var_os("MCP_HARNESS_TS_SDK_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let root = std::process::Command::new("npm")
                .args(["root", "-g"])
                .output()
                .ok()?;
            let root = String::from_utf8(root.stdout).ok()?;
            Some(std::path::Path::new(root.trim()).join("@modelcontextprotocol/server-everything"))
        })
        .filter(|d| {
            ["@modelcontextprotocol/sdk", "express", "zod"]
                .iter()
                .all(|m| d.join("node_modules").join(m).is_dir())
        });
    let dir = dir.unwrap_or_else(|| {
        panic!(
            "the TypeScript MCP SDK is not installed: run scripts/setup.sh (npm install -g @modelcontextprotocol/server-everything), or set MCP_HARNESS_TS_SDK_DIR to a directory with @modelcontextprotocol/sdk, express and zod installed"
        )
    });
    mcp_harness::run(async {
        // `{port}`: a free port the harness picks (and picks again if it is lost).
        let spec = mcp_harness::ServerSpec::new("ts-sse", "node")
            .args(["--input-type=module", "-e", TYPESCRIPT_SSE_SERVER])
            .cwd(dir)
            .env("PORT", "{port}")
            .transport(Transport::Sse)
            .address(mcp_harness::AddressSource::Fixed(
                "http://127.0.0.1:{port}/sse".into(),
            ))
            .readiness(mcp_harness::Readiness::McpInitialize)
            .startup_timeout(Duration::from_secs(30));
        let server = start_spec(spec).await;
        let session = Session::builder(&server)
            .name("ts")
            .bearer_token("ignored-by-this-server")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.logs()));
        assert_eq!(
            call_text(&session, "echo", json!({"text": "hello typescript"})).await,
            "hello typescript"
        );
        session.shutdown().await.unwrap();
    });
}

const PYTHON_OAUTH_SERVER: &str = r#"
import os, secrets, time
from mcp.server.mcpserver import MCPServer
from mcp.server.auth.provider import (AccessToken, AuthorizationCode, AuthorizationParams,
    RefreshToken, construct_redirect_uri)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
from mcp.shared.auth import OAuthToken

PORT = int(os.environ["PORT"])
BASE = f"http://127.0.0.1:{PORT}"

class AutoApprove:
    """An in-memory authorization server that approves user `pat` at once."""
    def __init__(self):
        self.clients, self.codes, self.access, self.refresh = {}, {}, {}, {}
    async def get_client(self, client_id):
        return self.clients.get(client_id)
    async def register_client(self, client_info):
        self.clients[client_info.client_id] = client_info
    async def authorize(self, client, params: AuthorizationParams):
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthorizationCode(code=code, scopes=params.scopes or ["mcp"],
            expires_at=time.time() + 60, client_id=client.client_id,
            code_challenge=params.code_challenge, redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource, subject="pat")
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)
    async def load_authorization_code(self, client, code):
        return self.codes.get(code)
    def _issue(self, client_id, scopes, resource):
        at, rt = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access[at] = AccessToken(token=at, client_id=client_id, scopes=scopes,
            expires_at=int(time.time()) + 3600, resource=resource, subject="pat")
        self.refresh[rt] = RefreshToken(token=rt, client_id=client_id, scopes=scopes,
            resource=resource, subject="pat")
        return OAuthToken(access_token=at, token_type="Bearer", expires_in=3600,
            refresh_token=rt, scope=" ".join(scopes))
    async def exchange_authorization_code(self, client, code):
        self.codes.pop(code.code, None)
        return self._issue(client.client_id, code.scopes, code.resource)
    async def load_refresh_token(self, client, token):
        return self.refresh.get(token)
    async def exchange_refresh_token(self, client, token, scopes):
        self.refresh.pop(token.token, None)
        return self._issue(client.client_id, scopes or token.scopes, token.resource)
    async def load_access_token(self, token):
        return self.access.get(token)
    async def revoke_token(self, token):
        pass

server = MCPServer("py-oauth", auth_server_provider=AutoApprove(), auth=AuthSettings(
    issuer_url=BASE, resource_server_url=f"{BASE}/mcp", required_scopes=["mcp"],
    client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=["mcp"],
        default_scopes=["mcp"])))

@server.tool()
def echo(text: str) -> str:
    return text

server.run(transport="streamable-http", host="127.0.0.1", port=PORT)
"#;

/// The OAuth client against another implementation: the Python SDK's authorization server
/// routes (RFC 8414 metadata, DCR, PKCE) and resource server, with an in-memory provider
/// that approves user `pat` at once. Its metadata does not offer `none`, so the client picks
/// a secret-based method. Skipped, loudly, where the SDK is not installed.
#[test]
fn oauth_against_the_python_sdk_authorization_server() {
    require_python_sdk("import mcp.server.mcpserver, mcp.server.auth.provider");
    mcp_harness::run(async {
        // `{port}`: a free port the harness picks (and picks again if it is lost).
        let spec = mcp_harness::ServerSpec::new("py-oauth", "python3")
            .args(["-c", PYTHON_OAUTH_SERVER])
            .env("PORT", "{port}")
            .transport(Transport::StreamableHttp)
            .address(mcp_harness::AddressSource::Fixed(
                "http://127.0.0.1:{port}/mcp".into(),
            ))
            .readiness(mcp_harness::Readiness::TcpConnect)
            .startup_timeout(Duration::from_secs(30));
        let server = start_spec(spec).await;
        let tokens = Arc::new(
            mcp_harness::authorize(server.url(), Transport::StreamableHttp, &OAuth::new())
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", server.logs())),
        );
        assert_eq!(tokens.scope().await.as_deref(), Some("mcp"));
        let session = Session::builder(&server)
            .name("pat")
            .oauth_tokens(tokens.clone())
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.logs()));
        assert_eq!(
            call_text(&session, "echo", json!({"text": "hi pat"})).await,
            "hi pat"
        );
        // Refresh against their token endpoint, then keep calling.
        tokens.refresh().await.unwrap();
        assert_eq!(
            call_text(&session, "echo", json!({"text": "again"})).await,
            "again"
        );
        session.shutdown().await.unwrap();
    });
}
