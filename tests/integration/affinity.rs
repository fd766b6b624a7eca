//! Session affinity and ownership across workers, against real servers and a real
//! `redis-server` (`harness/docs/pool.md`, "Affinity and ownership across workers"). Ownership
//! concerns handshake-era upstreams, so those tests pin that era; the last ones show that a
//! stateless upstream is served by any worker.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use mcp_harness::pool::PoolBuilder;
use mcp_harness::pool::{AcquireRequest, MemoryStore, OwnershipStore, RedisStore, WorkerConfig};
use mcp_harness::{
    Bundled, BundledAuth, BundledServer, Era, Error, Protocol, Server, SessionPool, Transport,
};
use serde_json::{Value, json};

use crate::support::{
    capture_logs, captured_logs, eventually, fast_test_http as server, redis_server,
};

/// A pool whose upstreams speak the handshake era: ownership and forwarding concern protocol
/// sessions, which only that era has (stateless upstreams are tested apart, at the end).
fn handshake_pool() -> PoolBuilder {
    SessionPool::builder().protocol(Protocol::Handshake("2025-11-25".into()))
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn with_session(req: AcquireRequest, session: &str) -> AcquireRequest {
    req.header("x-mcp-session-id", session)
}

fn text_of(v: &Value) -> String {
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn whoami_via(pool: &SessionPool, req: AcquireRequest) -> Value {
    let r = pool
        .execute(
            req,
            "tools/call",
            json!({"name": "whoami", "arguments": {}}),
        )
        .await
        .unwrap();
    serde_json::from_str(&text_of(&r)).unwrap()
}

/// A worker whose liveness survives scheduler stalls: each heartbeat keeps it alive for
/// 3 × 2 s (and its claims last 30 s), so on a loaded machine, where timers fire late, no other
/// worker ever takes it for dead. Tests about death or a down store shorten it for themselves.
fn worker(id: &str, store: Arc<dyn OwnershipStore>) -> WorkerConfig {
    WorkerConfig::new(id, store)
        .heartbeat_interval(Duration::from_secs(2))
        .ownership_ttl(Duration::from_secs(30))
        .forward_timeout(Duration::from_secs(10))
}

// ---- affinity ---------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_session_ids_are_refused_clearly() {
    let pool = handshake_pool().affinity(true).build();
    let base = AcquireRequest::http("http://127.0.0.1:9/mcp");
    for bad in ["", "has space", "semi;colon", "ünïcode", &"x".repeat(129)] {
        let err = pool
            .register_session_mapping(bad, &base)
            .await
            .expect_err(bad);
        assert!(err.to_string().contains("^[A-Za-z0-9_-]{1,128}$"), "{err}");
    }
    let err = pool
        .acquire(with_session(base, "bad/id"))
        .await
        .expect_err("invalid id");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    pool.register_session_mapping(
        &"a".repeat(128),
        &AcquireRequest::http("http://127.0.0.1:9/mcp"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn one_downstream_session_with_rotating_jwts_keeps_one_upstream_session() {
    let spec = BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
        .auth(BundledAuth::Jwt(mcp_harness_fixtures::jwt_secret().clone()))
        .spec();
    let server = Server::start(spec).await.unwrap();
    let pool = handshake_pool().affinity(true).build();
    let session = unique("rot");
    let mut counts = Vec::new();
    for _ in 0..3 {
        let token = mcp_harness_fixtures::token_for("alice");
        let req = with_session(AcquireRequest::http(server.url()), &session)
            .header("authorization", &format!("Bearer {}", token.expose()));
        let r = pool.call_tool(req, "counter", json!({})).await.unwrap();
        counts.push(mcp_harness::tool_text(&r));
    }
    assert_eq!(
        counts,
        ["1", "2", "3"],
        "the server-side counter proves one upstream session"
    );
}

#[tokio::test]
async fn registered_mappings_are_found_locally_and_dropped_with_evicted_keys() {
    let server = server().await;
    let pool = handshake_pool()
        .affinity(true)
        .idle_pool_eviction(Duration::from_millis(100))
        .reaper_interval(Duration::from_millis(20))
        .build();
    let session = unique("map");
    let req = AcquireRequest::http(server.url()).gateway("gw-1");
    pool.register_session_mapping(&session, &req).await.unwrap();
    drop(
        pool.acquire(with_session(AcquireRequest::http(server.url()), &session))
            .await
            .unwrap(),
    );
    assert_eq!(pool.metrics().session_affinity.local_hits, 1);
    eventually("the key to be evicted", Duration::from_secs(5), || async {
        (pool.metrics().pool_keys_evicted == 1).then_some(())
    })
    .await;
    drop(
        pool.acquire(with_session(AcquireRequest::http(server.url()), &session))
            .await
            .unwrap(),
    );
    let a = pool.metrics().session_affinity;
    assert_eq!(
        (a.local_hits, a.misses),
        (1, 1),
        "the mapping went with its key"
    );
}

#[tokio::test]
async fn exclusive_mode_never_shares_an_upstream_session() {
    let server = server().await;
    let pool = handshake_pool()
        .exclusive(true)
        .max_sessions_per_key(10)
        .acquire_timeout(Duration::from_millis(200))
        .build();
    let (s1, s2) = (unique("ex"), unique("ex"));
    let r1 = with_session(AcquireRequest::http(server.url()), &s1);
    let r2 = with_session(AcquireRequest::http(server.url()), &s2);
    let held = pool.acquire(r1.clone()).await.unwrap();
    let err = pool
        .acquire(r1.clone())
        .await
        .expect_err("one upstream session per downstream session");
    assert!(
        matches!(err, Error::AcquireTimeout { max: 1, .. }),
        "{err:?}"
    );
    let other = pool.acquire(r2).await.unwrap();
    assert_eq!(
        mcp_harness::tool_text(&other.call_tool("counter", json!({})).await.unwrap()),
        "1"
    );
    assert_eq!(
        mcp_harness::tool_text(&held.call_tool("counter", json!({})).await.unwrap()),
        "1"
    );
    drop(held);
    let again = pool.acquire(r1).await.unwrap();
    assert_eq!(
        mcp_harness::tool_text(&again.call_tool("counter", json!({})).await.unwrap()),
        "2"
    );
}

// ---- ownership store --------------------------------------------------------------------------

async fn race_for_dead_owner(store: Arc<dyn OwnershipStore>) {
    let session = unique("race");
    assert_eq!(
        store
            .claim(&session, "dead-worker", Duration::from_secs(30))
            .await
            .unwrap(),
        mcp_harness::pool::Claim::Mine
    );
    assert!(!store.is_alive("dead-worker").await.unwrap());
    let racers = ["w1", "w2", "w3"].map(|w| {
        let store = store.clone();
        let session = session.clone();
        tokio::spawn(async move {
            store
                .take_over(&session, "dead-worker", w, Duration::from_secs(30))
                .await
                .unwrap()
        })
    });
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.unwrap());
    }
    assert_eq!(wins, 1, "exactly one racing worker takes over");
    let owner = store.owner(&session).await.unwrap().unwrap();
    assert!(["w1", "w2", "w3"].contains(&owner.as_str()));
    // A live owner is never stolen.
    assert!(
        !store
            .take_over(&session, "dead-worker", "w4", Duration::from_secs(30))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_racing_for_a_dead_owner_exactly_one_wins_in_memory() {
    race_for_dead_owner(Arc::new(MemoryStore::default())).await;
}

#[test]
fn three_threads_racing_for_a_dead_owner_in_memory_exactly_one_wins_every_round() {
    // Real parallelism: three OS threads released together by a barrier, 200 rounds.
    let store: Arc<dyn OwnershipStore> = Arc::new(MemoryStore::default());
    for round in 0..200 {
        let session = format!("{}-{round}", unique("threads"));
        futures::executor::block_on(store.claim(&session, "dead-worker", Duration::from_secs(30)))
            .unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let racers: Vec<_> = ["w1", "w2", "w3"]
            .into_iter()
            .map(|w| {
                let (store, session, barrier) = (store.clone(), session.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    futures::executor::block_on(store.take_over(
                        &session,
                        "dead-worker",
                        w,
                        Duration::from_secs(30),
                    ))
                    .unwrap()
                })
            })
            .collect();
        let wins: usize = racers
            .into_iter()
            .map(|r| usize::from(r.join().unwrap()))
            .sum();
        assert_eq!(
            wins, 1,
            "round {round}: exactly one racing worker takes over"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_racing_for_a_dead_owner_exactly_one_wins_in_redis() {
    let (_redis, url) = redis_server().await;
    race_for_dead_owner(Arc::new(RedisStore::connect(&url).await.unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pools_route_a_dead_owners_session_to_exactly_one_of_them() {
    let (_redis, url) = redis_server().await;
    let server = server().await;
    let store: Arc<dyn OwnershipStore> = Arc::new(RedisStore::connect(&url).await.unwrap());
    let session = unique("dead");
    store
        .claim(&session, "gone", Duration::from_secs(30))
        .await
        .unwrap();
    let pools: Vec<SessionPool> = ["p1", "p2", "p3"]
        .iter()
        .map(|id| handshake_pool().worker(worker(id, store.clone())).build())
        .collect();
    for p in &pools {
        assert!(p.worker_ready(Duration::from_secs(10)).await);
    }
    let calls = pools.iter().map(|p| {
        whoami_via(
            p,
            with_session(AcquireRequest::http(server.url()), &session),
        )
    });
    let results = futures::future::join_all(calls).await;
    let owner = store.owner(&session).await.unwrap().unwrap();
    assert!(["p1", "p2", "p3"].contains(&owner.as_str()));
    assert!(
        results.iter().all(|w| w["transport"] == "http"),
        "{results:?}"
    );
    // Every call ran at the winner: only its pool opened upstream sessions.
    for (p, id) in pools.iter().zip(["p1", "p2", "p3"]) {
        let opened = p.metrics().misses;
        if id == owner {
            assert!(opened >= 1, "the winner opened the upstream session(s)");
        } else {
            assert_eq!(
                opened, 0,
                "{id} lost the race and must not open an upstream session"
            );
        }
    }
    let forwarded: u64 = pools
        .iter()
        .map(|p| p.metrics().session_affinity.forwarded_requests)
        .sum();
    assert_eq!(forwarded, 2, "the two losers forwarded to the winner");
}

// ---- forwarding -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_for_a_session_owned_by_another_worker_is_forwarded_to_it() {
    capture_logs();
    let (_redis, url) = redis_server().await;
    let server = server().await;
    let store: Arc<dyn OwnershipStore> = Arc::new(RedisStore::connect(&url).await.unwrap());
    let a = handshake_pool()
        .worker(worker("fwd-a", store.clone()))
        .build();
    let b = handshake_pool()
        .worker(worker("fwd-b", store.clone()))
        .build();
    assert!(
        a.worker_ready(Duration::from_secs(10)).await
            && b.worker_ready(Duration::from_secs(10)).await
    );
    assert!(
        store.is_alive("fwd-a").await.unwrap(),
        "a ready worker's heartbeat is in the store"
    );
    let session = unique("fwd");
    let req = AcquireRequest::http(server.url()).gateway("gw");
    a.register_session_mapping(&session, &req).await.unwrap();
    let on_a = whoami_via(&a, with_session(req.clone(), &session)).await;
    let via_b = whoami_via(&b, with_session(req.clone(), &session)).await;
    assert_eq!(
        on_a["session_id"], via_b["session_id"],
        "B returned A's result, from A's upstream session"
    );
    let bm = b.metrics();
    assert_eq!(
        (bm.session_affinity.forwarded_requests, bm.misses),
        (1, 0),
        "B opened no upstream session"
    );
    assert_eq!(
        bm.session_affinity.redis_hits + bm.session_affinity.local_hits,
        0
    );
    let logs = captured_logs();
    let prefix = &session[..8];
    let decisions = |worker: &str| -> Vec<String> {
        logs.lines()
            .filter(|l| {
                l.contains("routing decision")
                    && l.contains(&format!("worker={worker}"))
                    && l.contains(&format!("session={prefix}"))
            })
            .filter_map(|l| {
                l.split("decision=").nth(1).map(|d| {
                    d.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_owned()
                })
            })
            .collect()
    };
    assert_eq!(decisions("fwd-b"), ["forwarding", "published"]);
    assert_eq!(
        decisions("fwd-a"),
        ["owned-local", "received-forward", "forward-completed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresponsive_owner_gives_a_typed_timeout_and_nothing_is_forwarded_twice() {
    let (_redis, url) = redis_server().await;
    let server = server().await;
    let store: Arc<dyn OwnershipStore> = Arc::new(RedisStore::connect(&url).await.unwrap());
    // The owner is alive (its heartbeat is current) but never answers: it only counts.
    let session = unique("hung");
    store
        .heartbeat("hung-owner", Duration::from_secs(30))
        .await
        .unwrap();
    store
        .claim(&session, "hung-owner", Duration::from_secs(30))
        .await
        .unwrap();
    let mut inbox = store.subscribe("hung-owner").await.unwrap();
    let b = handshake_pool()
        .worker(worker("asker", store.clone()).forward_timeout(Duration::from_millis(300)))
        .build();
    let started = std::time::Instant::now();
    let err = b
        .execute(
            with_session(AcquireRequest::http(server.url()), &session),
            "ping",
            json!({}),
        )
        .await
        .expect_err("no reply");
    assert!(matches!(err, Error::ForwardTimeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let first = tokio::time::timeout(Duration::from_secs(2), inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert!(first.contains("\"forward\""), "{first}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), inbox.next())
            .await
            .is_err(),
        "forwarded twice"
    );
    assert_eq!(b.metrics().session_affinity.forwarded_timeouts, 1);
}

/// A forward message as a worker publishes it (the owner's inbox format).
fn forward_message(id: u64, from: &str, session: &str, url: &str, params: Value) -> String {
    json!({
        "type": "forward",
        "id": id,
        "from": from,
        "session": session,
        "method": "tools/call",
        "params": params,
        "url": url,
        "transport": Transport::StreamableHttp.to_string(),
        "gateway_id": "",
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_is_never_forwarded_again_by_the_worker_that_receives_it() {
    // The store says worker `b` owns the session (alive, heartbeat current), but a forward for
    // it reaches worker `a` (a caller with a stale view). `a` runs it itself and answers; `b`'s
    // inbox receives nothing.
    let (_redis, url) = redis_server().await;
    let server = server().await;
    let store: Arc<dyn OwnershipStore> = Arc::new(RedisStore::connect(&url).await.unwrap());
    let session = unique("stale");
    let (a_id, b_id, asker) = (unique("a"), unique("b"), unique("asker"));
    store
        .heartbeat(&b_id, Duration::from_secs(30))
        .await
        .unwrap();
    store
        .claim(&session, &b_id, Duration::from_secs(30))
        .await
        .unwrap();
    let mut b_inbox = store.subscribe(&b_id).await.unwrap();
    let mut replies = store.subscribe(&asker).await.unwrap();
    let a = handshake_pool()
        .worker(worker(&a_id, store.clone()))
        .build();
    assert!(a.worker_ready(Duration::from_secs(10)).await);
    store
        .publish(
            &a_id,
            forward_message(
                7,
                &asker,
                &session,
                server.url(),
                json!({"name": "echo", "arguments": {"text": "here"}}),
            ),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_str(
        &tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("a reply")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["id"], 7);
    assert_eq!(text_of(&reply["ok"]), "here", "{reply}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b_inbox.next())
            .await
            .is_err(),
        "the receiving worker forwarded the request again"
    );
    let m = a.metrics().session_affinity;
    assert_eq!(m.forwarded_requests, 0, "{m:?}");
    a.close_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_runs_forwarded_requests_concurrently() {
    // Two forwarded calls that each sleep are both running on the server at once.
    let (_redis, url) = redis_server().await;
    let server = server().await;
    let store: Arc<dyn OwnershipStore> = Arc::new(RedisStore::connect(&url).await.unwrap());
    let (owner_id, asker) = (unique("owner"), unique("asker"));
    let mut replies = store.subscribe(&asker).await.unwrap();
    let owner = handshake_pool()
        .worker(worker(&owner_id, store.clone()))
        .build();
    assert!(owner.worker_ready(Duration::from_secs(10)).await);
    for (id, session) in [(1, unique("slow")), (2, unique("slow"))] {
        store
            .publish(
                &owner_id,
                forward_message(
                    id,
                    &asker,
                    &session,
                    server.url(),
                    json!({"name": "sleep", "arguments": {"ms": 1_000}}),
                ),
            )
            .await
            .unwrap();
    }
    let probe = mcp_harness::Session::builder(&server)
        .protocol(Protocol::Handshake("2025-11-25".into()))
        .connect()
        .await
        .unwrap();
    eventually(
        "both forwarded calls running at once",
        Duration::from_secs(5),
        || async {
            let stats: Value = serde_json::from_str(&mcp_harness::tool_text(
                &probe.call_tool("stats", json!({})).await.unwrap(),
            ))
            .unwrap();
            (stats["sleeping"].as_i64() == Some(2)).then_some(())
        },
    )
    .await;
    for _ in 0..2 {
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("a reply")
            .unwrap();
        assert!(reply.contains("slept 1000 ms"), "{reply}");
    }
    owner.close_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_degrades_to_local_with_one_warning_and_resumes() {
    capture_logs();
    let (redis, url) = redis_server().await;
    let server = server().await;
    let store: Arc<dyn OwnershipStore> = Arc::new(RedisStore::connect(&url).await.unwrap());
    let id = unique("degr");
    // One worker, so no liveness is at stake; a short heartbeat because after a store failure
    // the store is retried one heartbeat interval later, which is when ownership resumes.
    let pool = handshake_pool()
        .worker(worker(&id, store.clone()).heartbeat_interval(Duration::from_millis(100)))
        .build();
    let call = |s: String| {
        let pool = pool.clone();
        let url = server.url().to_owned();
        async move {
            pool.execute(
                with_session(AcquireRequest::http(url), &s),
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "hi"}}),
            )
            .await
        }
    };
    call(unique("s")).await.unwrap();
    redis.stop().await.unwrap();
    for _ in 0..10 {
        let r = call(unique("s"))
            .await
            .expect("no call is lost while Redis is down");
        assert_eq!(text_of(&r), "hi");
    }
    let warnings = captured_logs()
        .lines()
        .filter(|l| l.contains(&id) && l.contains("affinity degrades to local execution"))
        .count();
    assert_eq!(warnings, 1, "one clear warning, not one per call");
    redis.restart().await.unwrap();
    let resumed = unique("back");
    eventually("ownership to resume", Duration::from_secs(10), || async {
        call(resumed.clone()).await.unwrap();
        (store.owner(&resumed).await.ok().flatten().as_deref() == Some(id.as_str())).then_some(())
    })
    .await;
}

// ---- two OS processes -------------------------------------------------------------------------

const WORKER_ENV: &str = "MCP_HARNESS_TEST_WORKER";

/// The body of worker processes started by the tests below: a pool worker that owns one
/// session, then serves forwarded requests until it is killed.
#[test]
#[ignore = "entry point of the worker processes started by the affinity tests"]
fn worker_process() {
    let spec: Value =
        serde_json::from_str(&std::env::var(WORKER_ENV).expect("run by the affinity tests only"))
            .unwrap();
    let heartbeat = Duration::from_millis(spec["heartbeat_ms"].as_u64().unwrap());
    let get = move |k: &str| spec[k].as_str().unwrap().to_owned();
    mcp_harness::run(async move {
        let store: Arc<dyn OwnershipStore> =
            Arc::new(RedisStore::connect(&get("redis")).await.unwrap());
        let pool = handshake_pool()
            .worker(worker(&get("id"), store).heartbeat_interval(heartbeat))
            .build();
        assert!(pool.worker_ready(Duration::from_secs(10)).await);
        pool.register_session_mapping(&get("session"), &AcquireRequest::http(get("url")))
            .await
            .unwrap();
        let who = whoami_via(
            &pool,
            with_session(AcquireRequest::http(get("url")), &get("session")),
        )
        .await;
        println!("\nWORKER_READY {}", who["session_id"]);
        std::mem::forget(pool);
    });
    loop {
        std::thread::park();
    }
}

/// A worker process, killed (and reaped) when dropped, so a failing test leaves none behind.
struct WorkerProcess(std::process::Child);

impl WorkerProcess {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_worker(
    id: &str,
    heartbeat: Duration,
    redis: &str,
    url: &str,
    session: &str,
) -> (WorkerProcess, String) {
    let spec = json!({
        "id": id,
        "heartbeat_ms": u64::try_from(heartbeat.as_millis()).unwrap(),
        "redis": redis,
        "url": url,
        "session": session,
    })
    .to_string();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "affinity::worker_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(WORKER_ENV, spec)
        .env_remove("NEXTEST_ENV")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = WorkerProcess(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the worker process ended before it was ready"
        );
        if let Some(id) = line.trim().strip_prefix("WORKER_READY ") {
            return (child, id.to_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_os_processes_forward_to_the_owner_and_reclaim_when_it_is_killed() {
    let (_redis, url) = redis_server().await;
    let server = server().await;
    let session = unique("proc");
    // A beats in its own process, so stalls of this one never make it look dead; each beat keeps
    // it alive for 3 s, the longest this test waits for it to count as dead once it is killed.
    let (mut a, a_session_id) = {
        let (redis, srv, s) = (url.clone(), server.url().to_owned(), session.clone());
        tokio::task::spawn_blocking(move || {
            spawn_worker("proc-a", Duration::from_secs(1), &redis, &srv, &s)
        })
        .await
        .unwrap()
    };
    let store: Arc<dyn OwnershipStore> = Arc::new(RedisStore::connect(&url).await.unwrap());
    let b = handshake_pool()
        .worker(worker("proc-b", store.clone()))
        .build();
    assert!(b.worker_ready(Duration::from_secs(10)).await);
    let req = with_session(AcquireRequest::http(server.url()), &session);
    let via_b = whoami_via(&b, req.clone()).await;
    assert_eq!(
        via_b["session_id"].to_string(),
        a_session_id,
        "B got A's result"
    );
    let bm = b.metrics();
    assert_eq!(
        (bm.session_affinity.forwarded_requests, bm.misses),
        (1, 0),
        "B forwarded to A and opened no upstream session"
    );

    // A is killed: once its heartbeat has expired, B's next call reclaims the session.
    a.kill();
    eventually(
        "the killed worker's heartbeat to expire",
        Duration::from_secs(15),
        || async { (!store.is_alive("proc-a").await.unwrap()).then_some(()) },
    )
    .await;
    assert_eq!(
        store.owner(&session).await.unwrap().as_deref(),
        Some("proc-a"),
        "the dead worker's claim outlives its heartbeat: only a take-over ends it"
    );
    let reclaimed = whoami_via(&b, req).await;
    assert_eq!(
        store.owner(&session).await.unwrap().as_deref(),
        Some("proc-b"),
        "B took the session over"
    );
    assert_ne!(
        reclaimed["session_id"].to_string(),
        a_session_id,
        "B runs it on its own upstream session now"
    );
    let bm = b.metrics();
    assert_eq!(
        (
            bm.session_affinity.forwarded_requests,
            bm.session_affinity.forwarded_timeouts,
            bm.misses
        ),
        (1, 0, 1),
        "B ran the call itself, without forwarding it to the dead owner"
    );
}

// ---- stateless upstreams ----------------------------------------------------------------------

/// The routing decisions `worker` logged for sessions starting with `prefix`, in order.
fn decisions_of(logs: &str, worker: &str, prefix: &str) -> Vec<String> {
    logs.lines()
        .filter(|l| {
            l.contains("routing decision")
                && l.contains(&format!("worker={worker} "))
                && l.contains(&format!("session={prefix}"))
        })
        .filter_map(|l| {
            l.split("decision=").nth(1).map(|d| {
                d.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_owned()
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_upstream_is_served_by_any_worker_without_ownership() {
    capture_logs();
    let (_redis, url) = redis_server().await;
    let server = server().await;
    let store: Arc<dyn OwnershipStore> = Arc::new(RedisStore::connect(&url).await.unwrap());
    // Both workers discover the upstream's era (whatever MCP_HARNESS_PROTOCOL says).
    let a = SessionPool::builder()
        .protocol(Protocol::Auto)
        .worker(worker("sl-a", store.clone()))
        .build();
    let b = SessionPool::builder()
        .protocol(Protocol::Auto)
        .worker(worker("sl-b", store.clone()))
        .build();
    assert!(
        a.worker_ready(Duration::from_secs(10)).await
            && b.worker_ready(Duration::from_secs(10)).await
    );
    let req = AcquireRequest::http(server.url()).gateway("gw");
    assert_eq!(a.upstream_era(&req), None);

    // Before anyone knows the era, a mapped session is owned and forwarded like any other.
    let first = unique("sla");
    a.register_session_mapping(&first, &req).await.unwrap();
    let on_a = whoami_via(&a, with_session(req.clone(), &first)).await;
    assert_eq!(on_a["era"], "stateless");
    assert_eq!(a.upstream_era(&req), Some(Era::Stateless), "discovered");
    let via_b = whoami_via(&b, with_session(req.clone(), &first)).await;
    assert_eq!(via_b["era"], "stateless");
    // A's reply taught B the era: from now on B serves the session itself.
    assert_eq!(b.upstream_era(&req), Some(Era::Stateless), "learnt from A");
    let again = whoami_via(&b, with_session(req.clone(), &first)).await;
    assert_eq!(again["era"], "stateless");
    whoami_via(&a, with_session(req.clone(), &first)).await;
    let bm = b.metrics();
    assert_eq!(
        (bm.session_affinity.forwarded_requests, bm.misses),
        (1, 1),
        "one forward before B knew the era, then its own entry"
    );
    assert_eq!(bm.eras["stateless"].keys, 1);

    // A session mapped once the era is known is owned by nobody and served wherever it lands.
    let second = unique("slb");
    a.register_session_mapping(&second, &req).await.unwrap();
    assert_eq!(store.owner(&second).await.unwrap(), None, "not claimed");
    whoami_via(&b, with_session(req.clone(), &second)).await;
    whoami_via(&a, with_session(req.clone(), &second)).await;
    assert_eq!(b.metrics().session_affinity.forwarded_requests, 1);

    let logs = captured_logs();
    assert_eq!(
        decisions_of(&logs, "sl-b", &first[..8]),
        ["forwarding", "published", "stateless-local"]
    );
    assert_eq!(
        decisions_of(&logs, "sl-a", &first[..8]),
        [
            "owned-local",
            "received-forward",
            "forward-completed",
            "stateless-local"
        ]
    );
    assert_eq!(
        decisions_of(&logs, "sl-b", &second[..8]),
        ["stateless-local"]
    );
    assert_eq!(
        decisions_of(&logs, "sl-a", &second[..8]),
        ["stateless-local"]
    );
}
