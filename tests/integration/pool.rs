//! The session pool against real bundled servers (`harness/docs/pool.md`), one test per behaviour
//! (`harness/docs/scenarios.md` lists them beside the reference pool's scenarios).
//! Each test starts its own server so that server-side counts belong to it alone.
//!
//! The reference scenarios run in both protocol eras (`case_1_handshake`, `case_2_stateless`),
//! each pinned in the pool so that `MCP_HARNESS_PROTOCOL` does not change what they test. Where
//! the eras differ the assertions say how: a stateless upstream keeps no protocol session, so
//! per-session counters and session ids do not apply (every request stands alone) and the pool's
//! entries are counted in `server/discover`s instead of `initialize`s.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_harness::pool::{
    AcquireRequest, HealthCheck, IdentityExtractor, JwtSubjectExtractor, PoolBuilder,
};
use mcp_harness::{
    Bundled, BundledAuth, BundledServer, Era, Error, Protocol, Server, ServerSpec, Session,
    SessionPool, Transport,
};
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::{call_json, call_text, eventually, fast_test_http as server, pin};

async fn jwt_server() -> Server {
    let spec = BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
        .auth(BundledAuth::Jwt(mcp_harness_fixtures::jwt_secret().clone()))
        .spec();
    Server::start(spec).await.expect("fast-test with JWT auth")
}

fn bearer(token: &mcp_harness::Secret) -> String {
    format!("Bearer {}", token.expose())
}

/// A pool whose upstreams speak `era`.
fn pool_in(era: Era) -> PoolBuilder {
    SessionPool::builder().protocol(pin(era))
}

/// A session that reads the server's stats. It speaks the handshake era, so that it adds no
/// `server/discover` to what it counts.
async fn stats_probe(server: &Server) -> Session {
    Session::builder(server)
        .name("stats-probe")
        .protocol(pin(Era::Handshake))
        .connect()
        .await
        .unwrap()
}

/// How the server saw the pool open its entries: `initialize`s from pooled sessions in the
/// handshake era; `server/discover`s in the stateless era (one per entry, plus one per
/// health check). Asserts that the other era's opening never happened.
async fn pooled_opens(server: &Server, era: Era) -> u64 {
    let stats = call_json(&stats_probe(server).await, "stats", json!({})).await;
    let initializations: u64 = stats["initializations_by_client"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("pool:"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    let discovers = stats["discovers"].as_u64().unwrap();
    match era {
        Era::Handshake => {
            assert_eq!(discovers, 0, "no server/discover in the handshake era");
            initializations
        }
        _ => {
            assert_eq!(initializations, 0, "no initialize in the stateless era");
            discovers
        }
    }
}

async fn pooled_json(pool: &SessionPool, req: AcquireRequest, tool: &str) -> Value {
    let r = pool
        .call_tool(req, tool, json!({}))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    serde_json::from_str(&mcp_harness::tool_text(&r)).unwrap()
}

async fn pooled_text(pool: &SessionPool, req: AcquireRequest, tool: &str, args: Value) -> String {
    let r = pool
        .call_tool(req, tool, args)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    mcp_harness::tool_text(&r)
}

// ---- 1. reuse -------------------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn sequential_calls_reuse_one_upstream_session(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).build();
    let req = AcquireRequest::http(server.url()).header("authorization", "Bearer one");
    assert_eq!(
        pooled_text(&pool, req.clone(), "echo", json!({"text": "a"})).await,
        "a"
    );
    assert_eq!(
        pooled_text(&pool, req, "echo", json!({"text": "b"})).await,
        "b"
    );
    let m = pool.metrics();
    assert_eq!((m.hits, m.misses), (1, 1));
    assert_eq!(m.hit_rate, 0.5);
    assert_eq!(
        pooled_opens(&server, era).await,
        1,
        "one upstream entry opened ({era})"
    );
}

// ---- 2. identity isolation --------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn different_credentials_tenants_users_and_gateways_get_separate_sessions(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).build();
    let base = AcquireRequest::http(server.url()).header("authorization", "Bearer alice");
    let variants = [
        ("base", base.clone()),
        (
            "other authorization",
            AcquireRequest::http(server.url()).header("authorization", "Bearer bob"),
        ),
        ("tenant", base.clone().header("x-tenant-id", "acme")),
        ("user", base.clone().user("carol@example.com")),
        ("gateway", base.clone().gateway("gw-2")),
    ];
    let mut session_ids = BTreeSet::new();
    for (what, req) in &variants {
        let who = pooled_json(&pool, req.clone(), "whoami").await;
        assert_eq!(who["era"], era.to_string(), "{who}");
        if era == Era::Handshake {
            assert!(
                session_ids.insert(who["session_id"].to_string()),
                "{what} shared a session"
            );
            assert_eq!(
                pooled_text(&pool, req.clone(), "counter", json!({})).await,
                "1",
                "{what}: fresh counter"
            );
        } else {
            // No protocol session: what isolates identities is which entry (and so which
            // credentials) serves the call; the upstream sees this key's own headers.
            assert_eq!(who["session_id"], Value::Null, "{who}");
            let tenant = (*what == "tenant").then_some("acme");
            assert_eq!(
                who["headers"].get("x-tenant-id").and_then(Value::as_str),
                tenant,
                "{what}: {who}"
            );
        }
    }
    let m = pool.metrics();
    assert_eq!(m.pool_key_count, variants.len());
    assert_eq!(m.misses, variants.len() as u64, "one entry per key");
    assert_eq!(m.eras[&era.to_string()].keys, variants.len());
    assert_eq!(pooled_opens(&server, era).await, variants.len() as u64);
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn header_name_case_is_ignored_and_values_are_not(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).build();
    let lower = AcquireRequest::http(server.url()).header("x-tenant-id", "acme");
    let upper = AcquireRequest::http(server.url()).header("X-Tenant-ID", "acme");
    let other_case_value = AcquireRequest::http(server.url()).header("x-tenant-id", "ACME");
    assert_eq!(pool.key_of(&lower), pool.key_of(&upper));
    assert_ne!(pool.key_of(&lower), pool.key_of(&other_case_value));
    assert_eq!(pooled_text(&pool, lower, "counter", json!({})).await, "1");
    // A stateless upstream counts per request: the pool's hit shows the entry was shared.
    let expected = if era == Era::Handshake { "2" } else { "1" };
    assert_eq!(
        pooled_text(&pool, upper, "counter", json!({})).await,
        expected,
        "same session"
    );
    let m = pool.metrics();
    assert_eq!((m.hits, m.misses), (1, 1), "same entry");
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn rotating_jwts_of_one_user_share_a_session_with_the_jwt_extractor(#[case] era: Era) {
    let server = jwt_server().await;
    let pool = pool_in(era).identity_extractor(JwtSubjectExtractor).build();
    let mut counts = Vec::new();
    for _ in 0..3 {
        let token = mcp_harness_fixtures::token_for("alice");
        let req = AcquireRequest::http(server.url()).header("authorization", &bearer(&token));
        counts.push(pooled_text(&pool, req, "counter", json!({})).await);
    }
    // A stateless upstream counts per request; the pool's one miss shows the shared entry.
    let expected = if era == Era::Handshake {
        ["1", "2", "3"]
    } else {
        ["1", "1", "1"]
    };
    assert_eq!(
        counts, expected,
        "one upstream session for three tokens of alice"
    );
    let m = pool.metrics();
    assert_eq!((m.hits, m.misses), (2, 1), "one entry for alice");
    let bob = AcquireRequest::http(server.url()).header(
        "authorization",
        &bearer(&mcp_harness_fixtures::token_for("bob")),
    );
    assert_eq!(
        pooled_json(&pool, bob.clone(), "whoami").await["subject"],
        "bob"
    );
    assert_eq!(
        pooled_text(&pool, bob, "counter", json!({})).await,
        "1",
        "bob never gets alice's session"
    );
    assert_eq!(pool.metrics().misses, 2, "bob has his own entry");
}

struct FailingExtractor;
impl IdentityExtractor for FailingExtractor {
    fn extract(
        &self,
        _: &http::HeaderMap,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
        Err("identity service unavailable".into())
    }
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn failing_extractor_falls_back_to_header_hashing(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).identity_extractor(FailingExtractor).build();
    let a = AcquireRequest::http(server.url()).header("authorization", "Bearer a");
    let b = AcquireRequest::http(server.url()).header("authorization", "Bearer b");
    assert_ne!(
        pool.key_of(&a),
        pool.key_of(&b),
        "headers still separate identities"
    );
    assert_eq!(
        pooled_text(&pool, a, "echo", json!({"text": "ok"})).await,
        "ok"
    );
    assert_eq!(
        pooled_text(&pool, b, "echo", json!({"text": "ok"})).await,
        "ok"
    );
}

// ---- 3. anonymous bucket, transport isolation ------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn requests_without_identity_share_the_anonymous_bucket_and_are_counted(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).build();
    let bare = AcquireRequest::http(server.url());
    let irrelevant = AcquireRequest::http(server.url()).header("x-request-id", "123");
    assert_eq!(pool.key_of(&bare).identity_hash, "anonymous");
    assert_eq!(pool.key_of(&irrelevant).identity_hash, "anonymous");
    assert_eq!(pooled_text(&pool, bare, "counter", json!({})).await, "1");
    // A stateless upstream counts per request; the pool's hit shows the shared entry.
    let expected = if era == Era::Handshake { "2" } else { "1" };
    assert_eq!(
        pooled_text(&pool, irrelevant, "counter", json!({})).await,
        expected
    );
    let m = pool.metrics();
    assert_eq!(m.anonymous_identity_count, 2);
    assert_eq!((m.hits, m.misses, m.pool_key_count), (1, 1, 1));
}

#[test]
fn same_url_over_sse_and_streamable_http_gives_two_keys() {
    let pool = SessionPool::builder().build();
    let url = "http://127.0.0.1:9/mcp";
    let http = pool.key_of(&AcquireRequest::url(url, Transport::StreamableHttp));
    let sse = pool.key_of(&AcquireRequest::url(url, Transport::Sse));
    assert_ne!(http, sse);
    assert_eq!(http.transport.to_string(), "streamable_http");
    assert_eq!(sse.transport.to_string(), "sse");
}

// ---- 4. session id headers ------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn session_id_headers_never_reach_the_server_and_authorization_does(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).build();
    let req = AcquireRequest::http(server.url())
        .header("authorization", "Bearer tok")
        .header("x-mcp-session-id", "downstream-1")
        .header("mcp-session-id", "downstream-2")
        .header("x-tenant-id", "acme");
    let who = pooled_json(&pool, req, "whoami").await;
    let headers = who["headers"].as_object().unwrap();
    assert!(!headers.contains_key("x-mcp-session-id"), "{headers:?}");
    assert_ne!(
        who["session_id"], "downstream-2",
        "the upstream session id is the pool's own"
    );
    if era == Era::Stateless {
        assert!(!headers.contains_key("mcp-session-id"), "{headers:?}");
    }
    assert!(headers.contains_key("authorization"), "{headers:?}");
    assert_eq!(headers["x-tenant-id"], "acme");
}

// ---- 5./6. stale and killed servers ----------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn stale_session_after_server_restart_is_replaced_and_the_call_succeeds(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).health_check_interval(Duration::ZERO).build();
    let req = AcquireRequest::http(server.url());
    assert_eq!(
        pooled_text(&pool, req.clone(), "echo", json!({"text": "before"})).await,
        "before"
    );
    server.restart().await.unwrap();
    assert_eq!(
        pooled_text(&pool, req, "echo", json!({"text": "after"})).await,
        "after"
    );
    let m = pool.metrics();
    if era == Era::Handshake {
        assert_eq!(m.evictions, 1, "the stale session was discarded");
        assert_eq!(m.health_check_failures, 1);
        assert_eq!(m.misses, 2, "and recreated");
    } else {
        // A stateless entry has no protocol session to lose: the restarted server answers its
        // health check (`server/discover`) and the entry is reused.
        assert_eq!((m.evictions, m.health_check_failures), (0, 0), "{m:?}");
        assert_eq!((m.hits, m.misses), (1, 1));
    }
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn server_killed_mid_call_fails_only_that_call_then_recovers(#[case] era: Era) {
    let server = server().await;
    let req = AcquireRequest::http(server.url());
    killed_mid_call_fails_only_that_call(&server, req, era, pool_in(era).build()).await;
}

/// Kills `server` under a call through the pool: only that call fails (typed), only that
/// session is discarded, and calls after a restart succeed (no loop of failures). In the
/// stateless era an idle entry of another key, which had no call in flight, also serves the
/// next call as it is: there was no protocol session to lose.
async fn killed_mid_call_fails_only_that_call(
    server: &Server,
    req: AcquireRequest,
    era: Era,
    pool: SessionPool,
) {
    let bystander = req.clone().header("x-tenant-id", "bystander");
    assert_eq!(
        pooled_text(&pool, req.clone(), "echo", json!({"text": "warm"})).await,
        "warm"
    );
    if era == Era::Stateless {
        assert_eq!(
            pooled_text(&pool, bystander.clone(), "echo", json!({"text": "idle"})).await,
            "idle"
        );
    }
    // A second upstream of the same pool, with a call of its own in flight across the kill.
    let other = Server::start(ServerSpec::bundled(
        Bundled::FastTest,
        Transport::StreamableHttp,
    ))
    .await
    .unwrap();
    let sleeping = |server: Server| async move {
        let probe = stats_probe(&server).await;
        eventually(
            "the call to run on the server",
            Duration::from_secs(10),
            || async {
                let stats = call_json(&probe, "stats", json!({})).await;
                (stats["sleeping"].as_i64() >= Some(1)).then_some(())
            },
        )
        .await;
    };
    let in_flight = {
        let (pool, req) = (pool.clone(), req.clone());
        tokio::spawn(async move { pool.call_tool(req, "sleep", json!({"ms": 10_000})).await })
    };
    let other_in_flight = {
        let (pool, req) = (pool.clone(), AcquireRequest::http(other.url()));
        tokio::spawn(async move { pool.call_tool(req, "sleep", json!({"ms": 1_500})).await })
    };
    // Kill only once both calls run on their servers: then it is really mid-call.
    sleeping(server.clone()).await;
    sleeping(other.clone()).await;
    server.kill().await.unwrap();
    let err = in_flight
        .await
        .unwrap()
        .expect_err("the server died under the call");
    assert!(matches!(err, Error::Closed { .. }), "typed: {err:?}");
    let survived = other_in_flight
        .await
        .unwrap()
        .expect("a call in flight on another upstream is not touched by the kill");
    assert_eq!(mcp_harness::tool_text(&survived), "slept 1500 ms");
    server.restart().await.unwrap();
    for i in 0..3 {
        let text = format!("after-{i}");
        assert_eq!(
            pooled_text(&pool, req.clone(), "echo", json!({"text": text})).await,
            text
        );
    }
    let mut misses = 2;
    if era == Era::Stateless {
        assert_eq!(
            pooled_text(&pool, bystander, "echo", json!({"text": "next"})).await,
            "next",
            "the idle stateless entry serves the next call"
        );
        misses += 1;
    }
    let m = pool.metrics();
    assert_eq!(m.evictions, 1, "only the broken session was discarded");
    // The other upstream's entry was a miss too.
    assert_eq!(m.misses, misses + 1);
}

// ---- 7./8. cancellation ----------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_storm_leaves_no_failure_and_no_busy_slot(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).max_sessions_per_key(50).build();
    let req = AcquireRequest::http(server.url());
    let mut tasks = Vec::new();
    for i in 0..1000u64 {
        let (pool, req) = (pool.clone(), req.clone());
        // Every tenth caller gives up at a pseudo-random point (0-60 ms): before acquiring,
        // while waiting, or mid-call.
        let cancel_after = (i % 10 == 0).then(|| Duration::from_millis((i * 7919) % 60));
        tasks.push(tokio::spawn(async move {
            let call = pool.call_tool(req, "sleep", json!({"ms": 50}));
            match cancel_after {
                Some(d) => {
                    let _ = tokio::time::timeout(d, call).await;
                    None
                }
                None => Some(call.await),
            }
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        if let Some(Err(e)) = t.await.unwrap() {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    let m = eventually(
        "every session to be idle",
        Duration::from_secs(5),
        || async {
            let m = pool.metrics();
            m.pools.values().all(|k| k.active == 0).then_some(m)
        },
    )
    .await;
    let key = m.pools.values().next().unwrap();
    assert_eq!(
        key.available, m.total_active_sessions,
        "every live session is idle"
    );
    assert!(m.total_active_sessions <= 50);
    assert_eq!(m.eras[&era.to_string()].sessions, m.total_active_sessions);
    // Cancelled callers cost no session: nothing was evicted for them, and no more sessions
    // were ever created than the key may hold.
    assert_eq!(m.evictions, 0, "{m:?}");
    assert!(
        m.misses <= 50,
        "{} sessions created for 1000 calls",
        m.misses
    );
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn caller_side_timeout_frees_the_slot_and_the_next_call_succeeds(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era)
        .max_sessions_per_key(1)
        .acquire_timeout(Duration::from_secs(2))
        .build();
    let req = AcquireRequest::http(server.url());
    let slow = pool.call_tool(req.clone(), "sleep", json!({"ms": 5000}));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), slow)
            .await
            .is_err()
    );
    assert_eq!(
        pooled_text(&pool, req, "echo", json!({"text": "next"})).await,
        "next"
    );
    let m = pool.metrics();
    assert_eq!(m.misses, 1, "the one session was reused");
    assert!(m.pools.values().all(|k| k.active == 0));
}

// ---- 9. circuit breaker ----------------------------------------------------------------------

/// A url that refuses connections while the returned guard lives.
fn dead_url() -> (crate::support::RefusedPort, String) {
    let refused = crate::support::refused_port();
    let url = refused.url("/mcp");
    (refused, url)
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn circuit_opens_at_the_threshold_and_fails_fast_even_with_an_idle_session(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era)
        .circuit_breaker_threshold(3)
        .circuit_breaker_reset(Duration::from_secs(60))
        .build();
    let idle_key = AcquireRequest::http(server.url()).header("authorization", "Bearer idle");
    drop(pool.acquire(idle_key.clone()).await.unwrap());
    server.kill().await.unwrap();
    let other = AcquireRequest::http(server.url()).header("authorization", "Bearer other");
    for _ in 0..3 {
        let err = pool.acquire(other.clone()).await.expect_err("server down");
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    }
    let started = Instant::now();
    let err = pool.acquire(idle_key).await.expect_err("circuit open");
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "fails fast");
    let m = pool.metrics();
    assert_eq!(m.circuit_breaker_trips, 1);
    let cb = m.circuit_breakers.values().next().unwrap();
    assert_eq!((cb.state.as_str(), cb.failures), ("open", 3));
    assert!(cb.open_until.is_some());
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn half_open_after_reset_one_success_closes_one_failure_reopens(#[case] era: Era) {
    let (refused, url) = dead_url();
    // The reset is the margin between opening and the "still open" checks right after it:
    // long enough that no scheduling stall lets it lapse in between.
    let pool = pool_in(era)
        .circuit_breaker_threshold(2)
        .circuit_breaker_reset(Duration::from_secs(1))
        .build();
    let req = AcquireRequest::http(url.clone());
    for _ in 0..2 {
        assert!(matches!(
            pool.acquire(req.clone()).await,
            Err(Error::Connect { .. })
        ));
    }
    assert!(matches!(
        pool.acquire(req.clone()).await,
        Err(Error::CircuitOpen { .. })
    ));
    // After the reset period the trial creation runs (and fails): the circuit re-opens at once.
    let trial = eventually("the half-open trial", Duration::from_secs(5), || async {
        match pool.acquire(req.clone()).await {
            Err(Error::CircuitOpen { .. }) => None,
            other => Some(other),
        }
    })
    .await;
    assert!(matches!(trial, Err(Error::Connect { .. })), "{trial:?}");
    assert!(matches!(
        pool.acquire(req.clone()).await,
        Err(Error::CircuitOpen { .. })
    ));
    assert_eq!(pool.metrics().circuit_breaker_trips, 2);

    // A server comes up at that address: the next trial succeeds and closes the circuit.
    let port = refused.port;
    drop(refused);
    let spec = ServerSpec::bundled(Bundled::FastTest, Transport::StreamableHttp);
    let server = Server::start_on_port(spec, port)
        .await
        .expect("fast-test on the dead url's port");
    let ok = eventually("a successful trial", Duration::from_secs(5), || async {
        match pool.acquire(req.clone()).await {
            Ok(s) => Some(s),
            Err(Error::CircuitOpen { .. }) => None,
            Err(e) => panic!("the trial should succeed: {e}"),
        }
    })
    .await;
    drop(ok);
    let m = pool.metrics();
    let cb = m.circuit_breakers.values().next().unwrap();
    assert_eq!((cb.state.as_str(), cb.failures), ("closed", 0));
    drop(server);
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn cancelled_creations_never_count_as_failures_and_free_their_slot(#[case] era: Era) {
    // Three creations provably in flight (their opening request reached a silent front) are
    // cancelled by their callers; with one slot per key and a breaker that trips at one
    // failure, the fourth acquire still creates a session through the front to the server.
    let server = server().await;
    let front = crate::support::SilentFront::start(server.url(), 3).await;
    let pool = pool_in(era)
        .circuit_breaker_threshold(1)
        .max_sessions_per_key(1)
        .acquire_timeout(Duration::from_secs(5))
        .build();
    let req = AcquireRequest::http(front.url.clone());
    for i in 1..=3 {
        let acquire = {
            let (pool, req) = (pool.clone(), req.clone());
            tokio::spawn(async move { pool.acquire(req).await.map(|_| ()) })
        };
        eventually("the creation in flight", Duration::from_secs(5), || async {
            (front.silent_openings() >= i).then_some(())
        })
        .await;
        acquire.abort();
        assert!(acquire.await.unwrap_err().is_cancelled());
    }
    let m = pool.metrics();
    assert_eq!(m.circuit_breaker_trips, 0);
    assert!(
        m.circuit_breakers.values().all(|c| c.failures == 0),
        "{:?}",
        m.circuit_breakers
    );
    assert_eq!(m.total_active_sessions, 0, "no slot leaked: {m:?}");
    assert_eq!(
        pooled_text(&pool, req, "echo", json!({"text": "fine"})).await,
        "fine"
    );
    assert_eq!(front.silent_openings(), 3);
}

// ---- 10. create timeout ----------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn slow_initialize_beyond_create_timeout_is_typed_and_frees_the_slot(#[case] era: Era) {
    let server = server().await;
    server.pause().unwrap();
    let pool = pool_in(era)
        .max_sessions_per_key(1)
        .create_timeout(Duration::from_millis(200))
        .acquire_timeout(Duration::from_secs(2))
        .build();
    let req = AcquireRequest::http(server.url());
    let err = pool.acquire(req.clone()).await.expect_err("paused server");
    assert!(matches!(err, Error::CreateTimeout { .. }), "{err:?}");
    let m = pool.metrics();
    assert_eq!(m.total_active_sessions, 0, "nothing leaked");
    assert!(m.pools.values().all(|k| k.active == 0 && k.available == 0));
    server.resume().unwrap();
    // The only slot is free again: a creation runs (a leaked slot would make the acquire wait
    // and fail with AcquireTimeout). The thawed server may still be slow for 200 ms, so a
    // creation that times out again is retried.
    let session = eventually(
        "a session on the freed slot",
        Duration::from_secs(20),
        || async {
            match pool.acquire(req.clone()).await {
                Ok(s) => Some(s),
                Err(Error::CreateTimeout { .. }) => None,
                Err(e) => panic!("the slot should be free: {e:?}"),
            }
        },
    )
    .await;
    assert_eq!(
        call_text(&session, "echo", json!({"text": "ok"})).await,
        "ok"
    );
}

// ---- 11. capacity ----------------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_beyond_the_limit_are_served_in_fifo_order_as_sessions_come_back(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).max_sessions_per_key(2).build();
    let req = AcquireRequest::http(server.url());
    let first = pool.acquire(req.clone()).await.unwrap();
    let second = pool.acquire(req.clone()).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..4 {
        let (pool2, req2, order) = (pool.clone(), req.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let s = pool2.acquire(req2).await.unwrap();
            order.lock().unwrap().push(i);
            s.ping().await.unwrap();
            s
        }));
        // Register waiters one at a time so their arrival order is known.
        let expected = i + 1;
        eventually("the waiter to queue", Duration::from_secs(5), || async {
            (pool.waiting(&req) == expected).then_some(())
        })
        .await;
    }
    drop(first);
    let a = waiters.remove(0).await.unwrap();
    drop(second);
    let b = waiters.remove(0).await.unwrap();
    drop(a);
    let c = waiters.remove(0).await.unwrap();
    drop(b);
    let d = waiters.remove(0).await.unwrap();
    drop((c, d));
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    assert_eq!(
        pool.metrics().misses,
        2,
        "released sessions were handed over, not recreated"
    );
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn waiting_past_acquire_timeout_is_a_typed_timeout(#[case] era: Era) {
    let server = server().await;
    // A breaker that trips at the first failure: a timeout counted as one would trip it.
    let pool = pool_in(era)
        .max_sessions_per_key(1)
        .acquire_timeout(Duration::from_millis(200))
        .circuit_breaker_threshold(1)
        .build();
    let req = AcquireRequest::http(server.url());
    let held = pool.acquire(req.clone()).await.unwrap();
    let err = pool
        .acquire(req.clone())
        .await
        .expect_err("the only session is busy");
    assert!(
        matches!(err, Error::AcquireTimeout { max: 1, .. }),
        "{err:?}"
    );
    assert_eq!(pool.waiting(&req), 0, "the timed-out waiter left the queue");
    drop(held);
    assert_eq!(
        pooled_text(&pool, req, "echo", json!({"text": "ok"})).await,
        "ok"
    );
    assert_eq!(
        pool.metrics().circuit_breaker_trips,
        0,
        "timeouts are not circuit failures"
    );
}

// ---- 12. TTL and health ----------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn sessions_past_their_ttl_are_replaced(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).session_ttl(Duration::from_millis(50)).build();
    let req = AcquireRequest::http(server.url());
    // Expired (evictions) and recreated (a second miss); without a TTL neither happens.
    eventually(
        "a session to expire and be recreated",
        Duration::from_secs(10),
        || async {
            assert_eq!(
                pooled_text(&pool, req.clone(), "echo", json!({"text": "x"})).await,
                "x"
            );
            let m = pool.metrics();
            (m.evictions >= 1 && m.misses >= 2).then_some(())
        },
    )
    .await;
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn method_not_found_moves_to_the_next_health_check(#[case] era: Era) {
    // fast-time has no prompts: prompts/list answers -32601, then tools/list succeeds.
    let server = Server::start(ServerSpec::bundled(
        Bundled::FastTime,
        Transport::StreamableHttp,
    ))
    .await
    .unwrap();
    let probe = Session::connect(&server).await.unwrap();
    let err = probe
        .list_prompts()
        .await
        .expect_err("fast-time has no prompts");
    assert_eq!(err.mcp_code(), Some(-32601), "{err}");
    let pool = pool_in(era)
        .health_check_interval(Duration::ZERO)
        .health_checks([HealthCheck::ListPrompts, HealthCheck::ListTools])
        .build();
    let req = AcquireRequest::http(server.url());
    drop(pool.acquire(req.clone()).await.unwrap());
    drop(pool.acquire(req.clone()).await.unwrap());
    let m = pool.metrics();
    assert_eq!((m.hits, m.health_check_failures), (1, 0));

    // A chain of only "method not found" answers is not a healthy verdict.
    let strict = pool_in(era)
        .health_check_interval(Duration::ZERO)
        .health_checks([HealthCheck::ListPrompts])
        .build();
    drop(strict.acquire(req.clone()).await.unwrap());
    drop(strict.acquire(req).await.unwrap());
    assert_eq!(strict.metrics().health_check_failures, 1);
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn hung_server_is_unhealthy_at_the_health_timeout(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era)
        .health_check_interval(Duration::ZERO)
        .health_check_timeout(Duration::from_millis(200))
        .create_timeout(Duration::from_secs(2))
        .build();
    let req = AcquireRequest::http(server.url());
    drop(pool.acquire(req.clone()).await.unwrap());
    server.pause().unwrap();
    let started = Instant::now();
    let err = pool.acquire(req).await.expect_err("hung");
    assert!(matches!(err, Error::CreateTimeout { .. }), "{err:?}");
    // Bounded by the health and create timeouts, not by the 30 s request timeout.
    assert!(started.elapsed() < Duration::from_secs(15));
    let m = pool.metrics();
    assert_eq!(
        m.health_check_failures, 1,
        "the timeout made the session unhealthy"
    );
    assert_eq!(m.evictions, 1);
    server.resume().unwrap();
}

// ---- 13. idle keys ---------------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn background_reaper_evicts_idle_keys_without_any_acquire(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era)
        .idle_pool_eviction(Duration::from_millis(100))
        .reaper_interval(Duration::from_millis(20))
        .build();
    drop(
        pool.acquire(AcquireRequest::http(server.url()))
            .await
            .unwrap(),
    );
    let m = eventually(
        "the reaper to evict the key",
        Duration::from_secs(5),
        || async {
            let m = pool.metrics();
            (m.pool_key_count == 0).then_some(m)
        },
    )
    .await;
    assert_eq!(
        (
            m.pool_keys_evicted,
            m.sessions_reaped,
            m.total_active_sessions
        ),
        (1, 1, 0)
    );
}

// ---- 14. lifecycle ---------------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn close_all_is_bounded_with_a_hung_server_and_then_refuses_acquires(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era)
        .cleanup_timeout(Duration::from_millis(300))
        .build();
    let req = AcquireRequest::http(server.url());
    let held: Vec<_> = futures::future::join_all((0..5).map(|_| pool.acquire(req.clone()))).await;
    drop(held);
    server.pause().unwrap();
    let started = Instant::now();
    pool.close_all().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "close_all took {took:?}"
    );
    let err = pool.acquire(req).await.expect_err("closed");
    assert!(matches!(err, Error::PoolClosed));
    assert!(err.to_string().contains("pool is closed"));
    server.resume().unwrap();
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn drain_closes_sessions_but_keeps_the_pool_usable(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).build();
    let req = AcquireRequest::http(server.url());
    assert_eq!(
        pooled_text(&pool, req.clone(), "counter", json!({})).await,
        "1"
    );
    pool.drain().await;
    assert_eq!(pool.metrics().total_active_sessions, 0);
    assert_eq!(
        pooled_text(&pool, req, "counter", json!({})).await,
        "1",
        "a new upstream session"
    );
    assert_eq!(pool.metrics().misses, 2);
    assert_eq!(pooled_opens(&server, era).await, 2, "opened again ({era})");
}

// ---- 15. metrics -----------------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn metrics_have_the_reference_shape_and_no_secret(#[case] era: Era) {
    crate::support::capture_logs();
    let secret = "s3cr3t-token-9f8e7d";
    let server = server().await;
    let pool = pool_in(era).build();
    let req = AcquireRequest::http(server.url())
        .header("authorization", &format!("Bearer {secret}"))
        .header("x-api-key", secret)
        .user("alice@example.com");
    drop(pool.acquire(req.clone()).await.unwrap());
    let json = serde_json::to_value(pool.metrics()).unwrap();
    for field in [
        "hits",
        "misses",
        "hit_rate",
        "evictions",
        "health_check_failures",
        "circuit_breaker_trips",
        "pool_keys_evicted",
        "sessions_reaped",
        "anonymous_identity_count",
        "pool_key_count",
        "total_active_sessions",
        "session_affinity",
        "pools",
        "eras",
        "circuit_breakers",
    ] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    for (name, keys) in [("handshake", 0), ("stateless", 0)] {
        let expected = if name == era.to_string() { 1 } else { keys };
        let e = &json["eras"][name];
        assert_eq!(e["keys"], expected, "eras.{name}: {e}");
        assert_eq!(e["sessions"], expected, "eras.{name}: {e}");
        assert_eq!(e["misses"], expected, "eras.{name}: {e}");
    }
    for field in [
        "local_hits",
        "redis_hits",
        "misses",
        "hit_rate",
        "forwarded_requests",
        "forwarded_failures",
        "forwarded_timeouts",
    ] {
        assert!(
            json["session_affinity"].get(field).is_some(),
            "missing session_affinity.{field}"
        );
    }
    let key = json["pools"].as_object().unwrap().values().next().unwrap();
    for field in ["available", "active", "max"] {
        assert!(key.get(field).is_some(), "missing pools.*.{field}");
    }
    assert_eq!(key["era"], era.to_string());
    let text = json.to_string();
    let shown_key = pool.key_of(&req).to_string();
    for place in [&text, &shown_key, &format!("{req:?}")] {
        assert!(!place.contains(secret), "a secret leaked: {place}");
        assert!(
            !place.contains("alice@example.com"),
            "a raw identity leaked: {place}"
        );
    }
    let logs = crate::support::captured_logs();
    assert!(!logs.contains(secret), "a secret reached the logs");
}

// ---- property: identities never share sessions ------------------------------------------------

mod properties {
    use mcp_harness::SessionPool;
    use mcp_harness::pool::AcquireRequest;
    use proptest::prelude::*;

    fn header_set() -> impl Strategy<Value = Vec<(String, String)>> {
        let names = prop::sample::select(vec![
            "authorization",
            "Authorization",
            "x-tenant-id",
            "X-User-Id",
            "x-api-key",
            "cookie",
            "x-request-id",
            "user-agent",
        ]);
        prop::collection::vec((names, "[a-c]{1,2}"), 0..4)
            .prop_map(|v| v.into_iter().map(|(n, v)| (n.to_owned(), v)).collect())
    }

    /// The identity as the contract defines it: identity header names (case-insensitive) and
    /// values (case-sensitive), sorted; the user; the gateway.
    fn oracle(
        headers: &[(String, String)],
        user: &Option<String>,
        gw: &Option<String>,
    ) -> (Vec<(String, String)>, Option<String>, Option<String>) {
        let identity = [
            "authorization",
            "x-tenant-id",
            "x-user-id",
            "x-api-key",
            "cookie",
            "x-mcp-session-id",
        ];
        let mut ids: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .filter(|(n, _)| identity.contains(&n.as_str()))
            .collect();
        ids.sort();
        (
            ids,
            user.clone().filter(|u| !u.is_empty()),
            gw.clone().filter(|g| !g.is_empty()),
        )
    }

    fn request(
        headers: &[(String, String)],
        user: &Option<String>,
        gw: &Option<String>,
    ) -> AcquireRequest {
        let mut r = AcquireRequest::http("http://127.0.0.1:1/mcp");
        for (n, v) in headers {
            r = r.header(n, v);
        }
        if let Some(u) = user {
            r = r.user(u.clone());
        }
        if let Some(g) = gw {
            r = r.gateway(g.clone());
        }
        r
    }

    proptest! {
        #[test]
        fn same_key_if_and_only_if_same_identity(
            h1 in header_set(), h2 in header_set(),
            u1 in prop::option::of("[xy]"), u2 in prop::option::of("[xy]"),
            g1 in prop::option::of("[gh]"), g2 in prop::option::of("[gh]"),
        ) {
            let pool = SessionPool::builder().build();
            let k1 = pool.key_of(&request(&h1, &u1, &g1));
            let k2 = pool.key_of(&request(&h2, &u2, &g2));
            prop_assert_eq!(k1 == k2, oracle(&h1, &u1, &g1) == oracle(&h2, &u2, &g2));
        }
    }
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_acquired_under_one_identity_is_never_handed_to_another(#[case] era: Era) {
    let server = server().await;
    let pool = pool_in(era).max_sessions_per_key(3).build();
    let mut tasks = Vec::new();
    for i in 0..120u32 {
        let (pool, url) = (pool.clone(), server.url().to_owned());
        tasks.push(tokio::spawn(async move {
            let user = format!("user-{}", (i * 7) % 5);
            let req = AcquireRequest::http(url).header("x-user-id", &user);
            let s = pool.acquire(req).await.unwrap();
            let who = call_json(&s, "whoami", json!({})).await;
            assert_eq!(
                who["headers"]["x-user-id"],
                user.as_str(),
                "a session crossed identities"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(pool.metrics().pool_key_count, 5);
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn soft_caps_on_keys_and_sessions_give_typed_capacity_errors(#[case] era: Era) {
    let server = server().await;
    let keys = pool_in(era).max_pool_keys(1).build();
    drop(
        keys.acquire(AcquireRequest::http(server.url()).header("x-tenant-id", "a"))
            .await
            .unwrap(),
    );
    let err = keys
        .acquire(AcquireRequest::http(server.url()).header("x-tenant-id", "b"))
        .await
        .expect_err("a second key is over the cap");
    assert!(matches!(err, Error::Capacity { limit: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("pool keys"), "{err}");

    let sessions = pool_in(era).max_total_sessions(2).build();
    let a = sessions
        .acquire(AcquireRequest::http(server.url()).header("x-tenant-id", "a"))
        .await
        .unwrap();
    let b = sessions
        .acquire(AcquireRequest::http(server.url()).header("x-tenant-id", "b"))
        .await
        .unwrap();
    let err = sessions
        .acquire(AcquireRequest::http(server.url()).header("x-tenant-id", "c"))
        .await
        .expect_err("a third live session is over the cap");
    assert!(matches!(err, Error::Capacity { limit: 2, .. }), "{err:?}");
    drop((a, b));
    // Idle sessions still count as live: reuse works, a new key still hits the cap.
    assert!(
        sessions
            .acquire(AcquireRequest::http(server.url()).header("x-tenant-id", "a"))
            .await
            .is_ok()
    );
}

// ---- the same scenarios over SSE and stdio ----------------------------------------------------

async fn sse_server() -> Server {
    Server::start(ServerSpec::bundled(Bundled::FastTest, Transport::Sse))
        .await
        .expect("fast-test over legacy SSE")
}

#[tokio::test]
async fn sequential_calls_reuse_one_upstream_session_over_sse() {
    let server = sse_server().await;
    let pool = SessionPool::builder().build();
    let req =
        AcquireRequest::url(server.url(), Transport::Sse).header("authorization", "Bearer one");
    assert_eq!(
        pooled_text(&pool, req.clone(), "counter", json!({})).await,
        "1"
    );
    assert_eq!(
        pooled_text(&pool, req.clone(), "counter", json!({})).await,
        "2",
        "same upstream session"
    );
    let who = pooled_json(&pool, req, "whoami").await;
    assert_eq!(who["transport"], "sse");
    let m = pool.metrics();
    assert_eq!((m.hits, m.misses), (2, 1));
}

#[tokio::test]
async fn identities_are_isolated_and_session_ids_stripped_over_sse() {
    let server = sse_server().await;
    let pool = SessionPool::builder().build();
    let a = AcquireRequest::url(server.url(), Transport::Sse)
        .header("x-tenant-id", "a")
        .header("mcp-session-id", "downstream")
        .header("x-mcp-session-id", "downstream-too");
    let b = AcquireRequest::url(server.url(), Transport::Sse).header("x-tenant-id", "b");
    assert_eq!(
        pooled_text(&pool, a.clone(), "counter", json!({})).await,
        "1"
    );
    assert_eq!(
        pooled_text(&pool, b, "counter", json!({})).await,
        "1",
        "another identity, another session"
    );
    let who = pooled_json(&pool, a, "whoami").await;
    let headers = who["headers"].as_object().unwrap();
    assert_eq!(headers["x-tenant-id"], "a");
    // Both session-id headers the caller sent are stripped: the pool owns the upstream session.
    for stripped in ["mcp-session-id", "x-mcp-session-id"] {
        assert!(
            !headers.contains_key(stripped),
            "{stripped} reached the upstream: {headers:?}"
        );
    }
}

#[tokio::test]
async fn sse_server_killed_mid_call_fails_only_that_call_then_recovers() {
    let server = sse_server().await;
    let req = AcquireRequest::url(server.url(), Transport::Sse);
    // Legacy SSE is handshake-era by definition: the pool's default does not discover.
    killed_mid_call_fails_only_that_call(
        &server,
        req,
        Era::Handshake,
        SessionPool::builder().build(),
    )
    .await;
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn stdio_upstreams_are_pooled_per_identity_and_reused(#[case] era: Era) {
    let spec = ServerSpec::bundled(Bundled::FastTest, Transport::Stdio);
    let pool = pool_in(era).build();
    let alice = AcquireRequest::stdio(spec.clone()).user("alice");
    let bob = AcquireRequest::stdio(spec).user("bob");
    assert_eq!(
        pooled_text(&pool, alice.clone(), "counter", json!({})).await,
        "1"
    );
    assert_eq!(
        pooled_text(&pool, alice.clone(), "counter", json!({})).await,
        "2",
        "reused"
    );
    assert_eq!(
        pooled_text(&pool, bob, "counter", json!({})).await,
        "1",
        "bob has his own process"
    );
    let m = pool.metrics();
    assert_eq!((m.hits, m.misses, m.pool_key_count), (1, 2, 2));
    assert_eq!(m.eras[&era.to_string()].keys, 2);
    assert_eq!(
        pooled_json(&pool, alice.clone(), "whoami").await["era"],
        era.to_string()
    );
    assert!(pool.key_of(&alice).to_string().contains("stdio"));
    pool.close_all().await;
    assert_eq!(pool.metrics().total_active_sessions, 0);
}

// ---- upstreams of both eras ------------------------------------------------------------------

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn the_default_health_chain_passes_a_healthy_server(#[case] era: Era) {
    let server = server().await;
    // Every reuse is health-checked with the default chain (ping, then skip): `ping` in the
    // handshake era, a `server/discover` round trip in the stateless era (which has no ping).
    let pool = pool_in(era).health_check_interval(Duration::ZERO).build();
    let req = AcquireRequest::http(server.url());
    for i in 0..4 {
        let text = format!("call-{i}");
        assert_eq!(
            pooled_text(&pool, req.clone(), "echo", json!({"text": text})).await,
            text
        );
    }
    let m = pool.metrics();
    assert_eq!((m.hits, m.misses, m.health_check_failures), (3, 1, 0));
    assert_eq!(m.evictions, 0);
    if era == Era::Stateless {
        // One discover opened the entry, one per health check since.
        assert_eq!(pooled_opens(&server, era).await, 4);
    }
}

/// The TypeScript SDK's everything server over stdio: handshake era only (it refuses
/// `server/discover`), installed by `scripts/setup.sh`.
fn everything() -> ServerSpec {
    ServerSpec::new("server-everything", "mcp-server-everything")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pool_serves_an_upstream_of_each_era() {
    let modern = server().await;
    let pinned = server().await;
    // Discovery, whatever MCP_HARNESS_PROTOCOL says; one url pinned to the handshake era.
    let pool = SessionPool::builder()
        .protocol(Protocol::Auto)
        .protocol_for(pinned.url(), pin(Era::Handshake))
        .max_sessions_per_key(2)
        .build();
    let modern_req = AcquireRequest::http(modern.url()).header("x-tenant-id", "t");
    let legacy_req = AcquireRequest::stdio(everything());
    let pinned_req = AcquireRequest::http(pinned.url());
    assert_eq!(pool.upstream_era(&modern_req), None, "to be discovered");
    assert_eq!(pool.upstream_era(&legacy_req), None, "to be discovered");
    assert_eq!(pool.upstream_era(&pinned_req), Some(Era::Handshake));

    // Two sessions of each upstream at once: the second of each connects in the era the
    // first discovered (or waits for its discovery), without discovering again.
    for _ in 0..2 {
        let (a1, a2, b1, b2, c1, c2) = tokio::join!(
            pool.acquire(modern_req.clone()),
            pool.acquire(modern_req.clone()),
            pool.acquire(legacy_req.clone()),
            pool.acquire(legacy_req.clone()),
            pool.acquire(pinned_req.clone()),
            pool.acquire(pinned_req.clone()),
        );
        let legacy = [
            b1.expect("everything server (run scripts/setup.sh)"),
            b2.unwrap(),
        ];
        for s in &legacy {
            assert_eq!(s.era(), Era::Handshake);
            let r = s.call_tool("echo", json!({"message": "hi"})).await.unwrap();
            assert!(mcp_harness::tool_text(&r).contains("hi"), "{r:?}");
        }
        for s in [a1.unwrap(), a2.unwrap()] {
            assert_eq!(s.era(), Era::Stateless);
            assert_eq!(call_json(&s, "whoami", json!({})).await["era"], "stateless");
        }
        for s in [c1.unwrap(), c2.unwrap()] {
            assert_eq!(s.era(), Era::Handshake);
            assert_eq!(call_json(&s, "whoami", json!({})).await["era"], "handshake");
        }
    }
    assert_eq!(pool.upstream_era(&modern_req), Some(Era::Stateless));
    assert_eq!(pool.upstream_era(&legacy_req), Some(Era::Handshake));

    let m = pool.metrics();
    assert_eq!(m.era_discoveries, 2, "once per discovered url");
    assert_eq!((m.misses, m.hits), (6, 6));
    let (hs, sl) = (&m.eras["handshake"], &m.eras["stateless"]);
    assert_eq!((hs.keys, hs.sessions, hs.misses), (2, 4, 4), "{m:?}");
    assert_eq!((sl.keys, sl.sessions, sl.misses), (1, 2, 2), "{m:?}");
    let key_eras: BTreeSet<_> = m.pools.values().map(|k| k.era.clone()).collect();
    assert_eq!(
        key_eras,
        BTreeSet::from([Some("handshake".to_owned()), Some("stateless".to_owned())])
    );
    assert_eq!(pooled_opens(&modern, Era::Stateless).await, 2);
    assert_eq!(pooled_opens(&pinned, Era::Handshake).await, 2);

    // Both health chains pass: every idle session is checked before its reuse.
    let checked = SessionPool::builder()
        .protocol(Protocol::Auto)
        .health_check_interval(Duration::ZERO)
        .build();
    for req in [&modern_req, &legacy_req] {
        for _ in 0..3 {
            drop(checked.acquire(req.clone()).await.unwrap());
        }
    }
    let m = checked.metrics();
    assert_eq!(
        (m.misses, m.hits, m.health_check_failures),
        (2, 4, 0),
        "{m:?}"
    );
    pool.close_all().await;
    checked.close_all().await;
}

#[tokio::test]
async fn an_upstream_replaced_by_one_of_the_other_era_is_discovered_again() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let modern = Server::start_on_port(
        ServerSpec::bundled(Bundled::FastTest, Transport::StreamableHttp),
        port,
    )
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    assert_eq!(modern.url(), url);
    let pool = SessionPool::builder()
        .protocol(Protocol::Auto)
        .health_check_interval(Duration::ZERO)
        .build();
    let req = AcquireRequest::http(url.clone());
    assert_eq!(
        pooled_text(&pool, req.clone(), "echo", json!({"text": "a"})).await,
        "a"
    );
    assert_eq!(pool.upstream_era(&req), Some(Era::Stateless));
    modern.stop().await.unwrap();

    // The same address now serves the TypeScript everything server: handshake era only.
    let _legacy = Server::start(
        ServerSpec::new("everything-http", "mcp-server-everything")
            .args(["streamableHttp"])
            .env("PORT", port.to_string())
            .transport(Transport::StreamableHttp)
            .address(mcp_harness::AddressSource::Fixed(url.clone()))
            .readiness(mcp_harness::Readiness::McpInitialize)
            .startup_timeout(Duration::from_secs(60)),
    )
    .await
    .expect("everything server over HTTP (run scripts/setup.sh)");
    // The idle stateless entry fails its health check (the server does not know
    // server/discover), the version learnt is refused, and the era is learnt again: the caller
    // sees none of it.
    let s = pool.acquire(req.clone()).await.unwrap();
    assert_eq!(s.era(), Era::Handshake);
    let r = s.call_tool("echo", json!({"message": "b"})).await.unwrap();
    assert!(mcp_harness::tool_text(&r).contains('b'), "{r:?}");
    drop(s);
    assert_eq!(pool.upstream_era(&req), Some(Era::Handshake));
    let m = pool.metrics();
    assert_eq!(
        (m.health_check_failures, m.evictions, m.era_discoveries),
        (1, 1, 2),
        "{m:?}"
    );
    assert_eq!(m.circuit_breaker_trips, 0);
    let key = m.pools.values().next().unwrap();
    assert_eq!(key.era.as_deref(), Some("handshake"));
    assert_eq!((m.eras["handshake"].keys, m.eras["stateless"].keys), (1, 0));
    pool.close_all().await;
}
