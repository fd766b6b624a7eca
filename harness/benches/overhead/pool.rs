//! The session pool (issue 4), over streamable HTTP against one bundled `fast-test` server:
//!
//! * `pool_hit`: acquire + release of an idle session (no I/O), anonymous and with an
//!   `authorization` header (the identity is hashed on every acquire).
//! * `pool_miss`: acquire under a fresh identity (a new `authorization` value), which creates a
//!   session (connect + initialize); the session is closed after the sample is timed.
//! * `pool_round_trip_*`: `pool.call_tool(req, "echo", ...)` at concurrency 1, 100 and 1000,
//!   against raw rmcp clients (see [`E2e`]).
//! * `pool_close_all`: `close_all` of a pool holding [`CLOSE_SESSIONS`] idle sessions.
//!
//! Then, like the Session's paired pass, [`run`] measures the sides of each comparison in
//! alternating blocks and prints Markdown, and also measures the memory per idle pooled session.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures::FutureExt as _;
use mcp_harness::SessionPool;
use mcp_harness::pool::{AcquireRequest, PooledSession};
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};

use super::paired::{Block, Paired, median, ms, process_cpu, quantile, time_each, us};
use super::*;

/// Concurrency levels of the end-to-end benchmarks.
const LEVELS: [usize; 3] = [1, 100, 1000];
/// `max_sessions_per_key` of the end-to-end pool (the pool's default, like the reference's),
/// and the number of raw clients the raw sides share: both sides get the same number of
/// upstream sessions.
const MAX_PER_KEY: usize = 10;
/// `max_sessions_per_key` of a second pool, sized for the concurrency of 100.
const WIDE_PER_KEY: usize = 100;
/// Idle pooled sessions created to measure the memory per session.
const MEMORY_SESSIONS: usize = 200;
/// Idle sessions closed by one `close_all`.
const CLOSE_SESSIONS: usize = 500;
/// The identity of the hit and end-to-end requests.
const BEARER: &str = "Bearer bench-token";

/// A pool pinned to the handshake era, as the raw clients and Sessions it is compared with
/// are (an unpinned pool would discover the stateless era of `fast-test`).
fn handshake_pool() -> mcp_harness::pool::PoolBuilder {
    SessionPool::builder().protocol(protocol(Era::Handshake))
}

/// What a pooled session connects with; the Session and raw connects of the miss comparison
/// are given the same.
fn bearer(n: u64) -> String {
    format!("Bearer bench-{n}")
}

/// The pools, the raw clients and their server, all open for the whole run.
struct Bench {
    server: Server,
    /// One idle session for each of `anonymous` and `bearer`.
    hits: SessionPool,
    anonymous: AcquireRequest,
    bearer: AcquireRequest,
    /// A fresh identity per acquire.
    misses: SessionPool,
    /// The same, pinned to the stateless era (2026-07-28).
    misses_stateless: SessionPool,
    fresh: AtomicU64,
    /// End to end: one key (`bearer`), at most [`MAX_PER_KEY`] sessions.
    e2e: SessionPool,
    /// The same with at most [`WIDE_PER_KEY`] sessions.
    e2e_wide: SessionPool,
    /// [`MAX_PER_KEY`] harness Sessions set up like the pool's, for [`E2e::SessionExclusive`].
    sessions: Vec<Session>,
    /// [`MAX_PER_KEY`] raw rmcp clients set up like the harness (one shared pooled reqwest
    /// client with `TCP_NODELAY`, 1024 requests in flight per client).
    raws: Vec<Raw>,
    /// [`WIDE_PER_KEY`] more, for [`E2e::RawWide`].
    raws_wide: Vec<Raw>,
    /// One lock per raw client, for [`E2e::RawExclusive`].
    locks: Vec<tokio::sync::Mutex<()>>,
    next_raw: AtomicUsize,
    http: reqwest::Client,
    /// Failed calls, per [`E2e`] side.
    failures: [AtomicUsize; 6],
}

/// Created on the shared runtime, so that the raw clients' service loops live there too.
static BENCH: LazyLock<Bench> = LazyLock::new(|| {
    mcp_harness::run(async {
        let server = Server::start(ServerSpec::bundled(
            Bundled::FastTest,
            Transport::StreamableHttp,
        ))
        .await
        .expect("http server");
        let url = server.url().to_owned();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a reqwest client");
        let (mut raws, mut sessions) = (Vec::new(), Vec::new());
        for _ in 0..MAX_PER_KEY {
            raws.push(raw_alike(&http, &url, BEARER).await);
            sessions.push(session_alike(&url, BEARER).await);
        }
        let raws_wide = join_all((0..WIDE_PER_KEY).map(|_| raw_alike(&http, &url, BEARER))).await;
        let bench = Bench {
            hits: handshake_pool().build(),
            anonymous: AcquireRequest::http(&url),
            bearer: AcquireRequest::http(&url).header("authorization", BEARER),
            misses: handshake_pool().build(),
            misses_stateless: SessionPool::builder()
                .protocol(protocol(Era::Stateless))
                .build(),
            fresh: AtomicU64::new(0),
            e2e: handshake_pool().max_sessions_per_key(MAX_PER_KEY).build(),
            e2e_wide: handshake_pool().max_sessions_per_key(WIDE_PER_KEY).build(),
            sessions,
            raws,
            raws_wide,
            locks: (0..MAX_PER_KEY)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            next_raw: AtomicUsize::new(0),
            http,
            failures: Default::default(),
            server,
        };
        // The hit pool's two sessions, acquired once and released.
        for req in [&bench.anonymous, &bench.bearer] {
            let ps = bench
                .hits
                .acquire(req.clone())
                .await
                .expect("a first acquire");
            assert_eq!(
                tool_text(&ps.call_tool("echo", echo_args()).await.unwrap()),
                TEXT
            );
        }
        bench
    })
});

fn echo_args() -> serde_json::Value {
    serde_json::json!({ "text": TEXT })
}

/// A raw rmcp client over streamable HTTP set up like a pooled session: the given (shared)
/// reqwest client, the `authorization` header as a custom header, 1024 requests in flight, no
/// re-initialize on an expired session.
async fn raw_alike(http: &reqwest::Client, url: &str, bearer: &str) -> Raw {
    let headers: HashMap<HeaderName, HeaderValue> = [(
        AUTHORIZATION,
        HeaderValue::from_str(bearer).expect("a valid header value"),
    )]
    .into();
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .custom_headers(headers)
        .max_concurrent_requests(1024)
        .reinit_on_expired_session(false);
    let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
    rmcp::serve_client(client_config("raw-alike"), transport)
        .await
        .expect("raw http initialize")
}

/// A harness Session set up the way the pool sets up its sessions (`pool::session_builder`).
async fn session_alike(url: &str, bearer: &str) -> Session {
    Session::builder(Target::Http(url.to_owned()))
        .name("pool:bench")
        .header("authorization", bearer)
        .connect_attempts(1)
        .init_timeout(Duration::from_secs(31))
        .request_timeout(Duration::from_secs(30))
        .close_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("an http session")
}

impl Bench {
    /// Acquire + release of an idle session; it never waits, so it is polled once.
    fn hit(&self, req: AcquireRequest) {
        let ps = self
            .hits
            .acquire(req)
            .now_or_never()
            .expect("a hit completes without waiting")
            .expect("a hit");
        drop(black_box(ps));
    }

    fn fresh_request(&self) -> (AcquireRequest, String) {
        let token = bearer(self.fresh.fetch_add(1, Ordering::Relaxed));
        let req = AcquireRequest::http(self.server.url()).header("authorization", &token);
        (req, token)
    }

    /// One `echo` through `side`; a failure is counted, not fatal.
    async fn echo(&self, side: E2e) {
        let ok = match side {
            E2e::Pool | E2e::PoolWide => {
                let pool = if side == E2e::Pool {
                    &self.e2e
                } else {
                    &self.e2e_wide
                };
                pool.call_tool(self.bearer.clone(), "echo", echo_args())
                    .await
                    .is_ok_and(|r| r.is_error != Some(true))
            }
            E2e::SessionExclusive => {
                let k = self.next_raw.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
                let _one_at_a_time = self.locks[k].lock().await;
                self.sessions[k]
                    .call_tool("echo", echo_args())
                    .await
                    .is_ok_and(|r| r.is_error != Some(true))
            }
            E2e::Raw => {
                let k = self.next_raw.fetch_add(1, Ordering::Relaxed) % self.raws.len();
                raw_call(&self.raws[k]).await
            }
            E2e::RawWide => {
                let k = self.next_raw.fetch_add(1, Ordering::Relaxed) % self.raws_wide.len();
                raw_call(&self.raws_wide[k]).await
            }
            E2e::RawExclusive => {
                let k = self.next_raw.fetch_add(1, Ordering::Relaxed) % self.raws.len();
                let _one_at_a_time = self.locks[k].lock().await;
                raw_call(&self.raws[k]).await
            }
        };
        if !ok {
            self.failures[side as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `n` concurrent `echo` calls through `side`.
    async fn batch(&self, side: E2e, n: usize) {
        join_all((0..n).map(|_| self.echo(side))).await;
    }
}

async fn raw_call(raw: &Raw) -> bool {
    // Built from the same `json!` value the pool is given, so both pay for it.
    let serde_json::Value::Object(args) = echo_args() else {
        unreachable!("json! of an object is an object")
    };
    raw.call_tool(CallToolRequestParams::new("echo").with_arguments(args))
        .await
        .is_ok_and(|r| r.is_error != Some(true))
}

/// Which client an end-to-end `echo` goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum E2e {
    /// [`MAX_PER_KEY`] raw rmcp clients shared by all callers: every call is in flight at once
    /// (rmcp multiplexes requests on one client). What a test without a pool would do.
    Raw = 0,
    /// The same raw clients, each used by one call at a time (a FIFO lock per client): as many
    /// calls in flight as the pool allows, without the pool's bookkeeping.
    RawExclusive = 1,
    /// [`MAX_PER_KEY`] harness Sessions set up like the pool's, each used by one call at a time
    /// (sharing the raw clients' locks: the two sides never run at the same time).
    SessionExclusive = 2,
    /// `pool.call_tool` (a session is used by one caller at a time, at most [`MAX_PER_KEY`]).
    Pool = 3,
    /// The same with at most [`WIDE_PER_KEY`] sessions.
    PoolWide = 4,
    /// [`WIDE_PER_KEY`] raw rmcp clients shared by all callers (the raw counterpart of
    /// [`E2e::PoolWide`]).
    RawWide = 5,
}

const E2E_SIDES: [E2e; 6] = [
    E2e::Raw,
    E2e::RawExclusive,
    E2e::SessionExclusive,
    E2e::Pool,
    E2e::RawWide,
    E2e::PoolWide,
];

/// Closes a pooled session of the miss benchmark once divan drops it (after the sample was
/// timed): discarded from the pool, and its close awaited.
struct MissCloser(Option<PooledSession>);

impl Drop for MissCloser {
    fn drop(&mut self) {
        if let Some(ps) = self.0.take() {
            close_pooled(ps);
        }
    }
}

fn close_pooled(ps: PooledSession) {
    let session: Session = (*ps).clone();
    ps.discard();
    block_on(session.shutdown()).expect("shutdown");
}

/// A pool with `n` idle sessions of one key (created concurrently, then released).
async fn filled_pool(url: &str, n: usize) -> SessionPool {
    let pool = handshake_pool().max_sessions_per_key(n).build();
    let req = AcquireRequest::http(url).header("authorization", BEARER);
    let held: Vec<PooledSession> = join_all((0..n).map(|_| pool.acquire(req.clone())))
        .await
        .into_iter()
        .map(|r| r.expect("a pooled session"))
        .collect();
    drop(held);
    assert_eq!(pool.metrics().total_active_sessions, n);
    pool
}

// ---------------------------------------------------------------------------------------------
// divan benchmarks (sequential, for reference: see the pool's pass for the ratios)

/// Acquire + release of an idle session (the request is cloned outside the timing).
#[divan::bench_group(sample_count = 1000)]
mod pool_hit {
    use super::*;

    #[divan::bench]
    fn anonymous(b: Bencher) {
        let bench = &*BENCH;
        b.with_inputs(|| bench.anonymous.clone())
            .bench_local_values(|req| bench.hit(req));
    }

    #[divan::bench]
    fn authorization(b: Bencher) {
        let bench = &*BENCH;
        b.with_inputs(|| bench.bearer.clone())
            .bench_local_values(|req| bench.hit(req));
    }
}

/// Acquire under a fresh identity: a new session (its close is not timed).
#[divan::bench_group(sample_count = 100, sample_size = 1)]
mod pool_miss {
    use super::*;

    #[divan::bench]
    fn http(b: Bencher) {
        let bench = &*BENCH;
        b.with_inputs(|| bench.fresh_request().0)
            .bench_local_values(|req| {
                MissCloser(Some(block_on(bench.misses.acquire(req)).expect("a miss")))
            });
    }
}

/// One `echo` at a time: the time per call.
#[divan::bench_group(sample_count = 1000)]
mod pool_round_trip_c1 {
    use super::*;

    #[divan::bench]
    fn raw(b: Bencher) {
        b.bench_local(|| block_on(BENCH.echo(E2e::Raw)));
    }

    #[divan::bench]
    fn pool(b: Bencher) {
        b.bench_local(|| block_on(BENCH.echo(E2e::Pool)));
    }
}

/// 100 `echo` calls at once: the time per batch (and calls/s).
#[divan::bench_group(sample_count = 100, sample_size = 1)]
mod pool_round_trip_c100 {
    use super::*;

    fn batches(b: Bencher, side: E2e) {
        b.counter(ItemsCount::new(100usize))
            .bench_local(|| block_on(BENCH.batch(side, 100)));
    }

    #[divan::bench]
    fn raw(b: Bencher) {
        batches(b, E2e::Raw);
    }

    #[divan::bench]
    fn raw_exclusive(b: Bencher) {
        batches(b, E2e::RawExclusive);
    }

    #[divan::bench]
    fn pool(b: Bencher) {
        batches(b, E2e::Pool);
    }

    #[divan::bench]
    fn pool_max_100(b: Bencher) {
        batches(b, E2e::PoolWide);
    }

    #[divan::bench]
    fn raw_100_clients(b: Bencher) {
        batches(b, E2e::RawWide);
    }
}

/// 1000 `echo` calls at once: the time per batch (and calls/s).
#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod pool_round_trip_c1000 {
    use super::*;

    fn batches(b: Bencher, side: E2e) {
        b.counter(ItemsCount::new(1000usize))
            .bench_local(|| block_on(BENCH.batch(side, 1000)));
    }

    #[divan::bench]
    fn raw(b: Bencher) {
        batches(b, E2e::Raw);
    }

    #[divan::bench]
    fn raw_exclusive(b: Bencher) {
        batches(b, E2e::RawExclusive);
    }

    #[divan::bench]
    fn pool(b: Bencher) {
        batches(b, E2e::Pool);
    }

    #[divan::bench]
    fn pool_max_100(b: Bencher) {
        batches(b, E2e::PoolWide);
    }

    #[divan::bench]
    fn raw_100_clients(b: Bencher) {
        batches(b, E2e::RawWide);
    }
}

/// `close_all` of [`CLOSE_SESSIONS`] idle sessions (created before the sample).
#[divan::bench_group(sample_count = 3, sample_size = 1)]
mod pool_close_all {
    use super::*;

    #[divan::bench]
    fn http(b: Bencher) {
        let url = BENCH.server.url();
        b.with_inputs(|| block_on(filled_pool(url, CLOSE_SESSIONS)))
            .bench_local_values(|pool| block_on(pool.close_all()));
    }
}

// ---------------------------------------------------------------------------------------------
// The pool's pass: alternating blocks, Markdown tables

/// Rounds of blocks, one block per side each round (the order rotating every round).
const ROUNDS: usize = 24;
/// Hits per block (each timed on its own).
const HITS_PER_BLOCK: usize = 2000;
/// Misses (and Session / raw connects) per block.
const MISSES_PER_BLOCK: usize = 8;
/// Calls at concurrency 1 per block.
const CALLS_PER_BLOCK: usize = 200;
/// Rounds of the memory and `close_all` measurements.
const SLOW_ROUNDS: usize = 5;

/// Which identity a hit is acquired under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hit {
    Anonymous,
    Authorization,
}

fn hits() -> Paired<Hit> {
    let bench = &*BENCH;
    let block = |side: Hit| {
        let req = match side {
            Hit::Anonymous => &bench.anonymous,
            Hit::Authorization => &bench.bearer,
        };
        // The requests are cloned before the block: `acquire` takes one by value.
        let reqs = RefCell::new(vec![req.clone(); HITS_PER_BLOCK]);
        time_each(HITS_PER_BLOCK, 1, || {
            let req = reqs.borrow_mut().pop().expect("one request per hit");
            async move { drop(bench.hits.acquire(req).await.expect("a hit")) }
        })
    };
    let sides = vec![Hit::Anonymous, Hit::Authorization];
    for &side in &sides {
        block(side);
    }
    Paired::measure(sides, ROUNDS, |side, _| block(side))
}

/// How a new upstream session is made in the miss comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Connect {
    /// `rmcp::serve_client` with a transport set up like the pool's (shared reqwest client).
    Raw,
    /// `Session::builder(Target::Http(url)).header("authorization", ..).connect()`, set up like
    /// the pool sets up its sessions ([`session_alike`]).
    Session,
    /// A pool miss: `pool.acquire(req)` under a fresh identity.
    Pool,
    /// A pool miss in the stateless era: `server/discover` (and the listen stream if the pool
    /// watched list_changed; it does not here) instead of `initialize`.
    PoolStateless,
}

/// `MISSES_PER_BLOCK` connects of `side`, each timed (wall and CPU) without its close.
fn connects(side: Connect) -> Block {
    let bench = &*BENCH;
    let mut block = Block::default();
    for _ in 0..MISSES_PER_BLOCK {
        let (req, token) = bench.fresh_request();
        let cpu = process_cpu();
        let start = Instant::now();
        let close: Box<dyn FnOnce()> = match side {
            Connect::Pool => {
                let ps = block_on(bench.misses.acquire(req)).expect("a miss");
                Box::new(move || close_pooled(ps))
            }
            Connect::PoolStateless => {
                let ps = block_on(bench.misses_stateless.acquire(req)).expect("a miss");
                Box::new(move || close_pooled(ps))
            }
            Connect::Session => {
                let session = block_on(session_alike(bench.server.url(), &token));
                Box::new(move || block_on(session.shutdown()).expect("shutdown"))
            }
            Connect::Raw => {
                let raw = block_on(raw_alike(&bench.http, bench.server.url(), &token));
                Box::new(move || drop(block_on(raw.cancel())))
            }
        };
        block.samples.push(start.elapsed());
        block.cpu += process_cpu() - cpu;
        block.calls += 1;
        close();
    }
    block
}

fn misses() -> Paired<Connect> {
    let sides = vec![
        Connect::Raw,
        Connect::Session,
        Connect::Pool,
        Connect::PoolStateless,
    ];
    for &side in &sides {
        connects(side);
    }
    Paired::measure(sides, ROUNDS, |side, _| connects(side))
}

/// End to end at concurrency `n`: one block per side each round.
fn round_trips(n: usize) -> Paired<E2e> {
    let bench = &*BENCH;
    // At concurrency 1 each call is timed; above, each batch (16 batches of 100, 2 of 1000).
    let (items, per_item) = match n {
        1 => (CALLS_PER_BLOCK, 1),
        _ => ((1600 / n).max(2), n),
    };
    let block = |side: E2e| time_each(items, per_item, || bench.batch(side, per_item));
    let sides = E2E_SIDES.to_vec();
    for &side in &sides {
        block(side);
    }
    for f in &bench.failures {
        f.store(0, Ordering::Relaxed);
    }
    Paired::measure(sides, ROUNDS, |side, _| block(side))
}

/// This process's (or `pid`'s) resident set, in KiB.
fn rss_kib(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Bytes malloc has handed out and not yet taken back (every arena, and mmapped chunks).
fn heap_in_use() -> u64 {
    // SAFETY: plain glibc call returning a struct by value.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

/// Returns the free heap to the system, so that RSS deltas count live memory only.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: plain glibc call.
    unsafe { libc::malloc_trim(0) };
}

/// One memory round: (client RSS KiB, client heap bytes, server RSS KiB) per idle pooled session
/// and per raw rmcp client, from [`MEMORY_SESSIONS`] of each.
struct Memory {
    pool: [f64; 3],
    raw: [f64; 3],
}

fn memory_round() -> Memory {
    let bench = &*BENCH;
    let url = bench.server.url();
    let server = Some(bench.server.pid());
    let snapshot = || {
        settle();
        [
            rss_kib(None) as f64,
            heap_in_use() as f64,
            rss_kib(server) as f64,
        ]
    };
    let per = |before: [f64; 3], after: [f64; 3]| {
        [0, 1, 2].map(|i| (after[i] - before[i]) / MEMORY_SESSIONS as f64)
    };

    let before = snapshot();
    let pool = block_on(filled_pool(url, MEMORY_SESSIONS));
    let pool_per = per(before, snapshot());
    block_on(pool.close_all());
    drop(pool);

    let before = snapshot();
    let raws: Vec<Raw> = block_on(join_all(
        (0..MEMORY_SESSIONS).map(|_| raw_alike(&bench.http, url, BEARER)),
    ));
    let raw_per = per(before, snapshot());
    block_on(join_all(raws.into_iter().map(|r| r.cancel())));
    settle();
    Memory {
        pool: pool_per,
        raw: raw_per,
    }
}

/// How [`CLOSE_SESSIONS`] idle sessions are closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// `cancel()` on each of as many raw rmcp clients, all at once.
    Raw,
    /// `pool.close_all()`.
    Pool,
}

fn close_block(side: Close) -> Block {
    let bench = &*BENCH;
    let url = bench.server.url();
    let (took, cpu) = match side {
        Close::Pool => {
            let pool = block_on(filled_pool(url, CLOSE_SESSIONS));
            let cpu = process_cpu();
            let start = Instant::now();
            block_on(pool.close_all());
            let took = start.elapsed();
            assert_eq!(pool.metrics().total_active_sessions, 0);
            (took, process_cpu() - cpu)
        }
        Close::Raw => {
            let raws: Vec<Raw> = block_on(join_all(
                (0..CLOSE_SESSIONS).map(|_| raw_alike(&bench.http, url, BEARER)),
            ));
            let cpu = process_cpu();
            let start = Instant::now();
            block_on(join_all(raws.into_iter().map(|r| r.cancel())));
            (start.elapsed(), process_cpu() - cpu)
        }
    };
    Block {
        samples: vec![took],
        calls: CLOSE_SESSIONS,
        cpu,
    }
}

fn close_all() -> Paired<Close> {
    Paired::measure(vec![Close::Raw, Close::Pool], SLOW_ROUNDS, |side, _| {
        close_block(side)
    })
}

fn median_of(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(super) fn run() {
    let bench = &*BENCH;
    let hit = hits();
    let miss = misses();
    let mut e2e = Vec::new();
    for n in LEVELS {
        let paired = round_trips(n);
        let failed = bench
            .failures
            .each_ref()
            .map(|f| f.swap(0, Ordering::Relaxed));
        e2e.push((n, paired, failed));
    }
    let memory: Vec<Memory> = (0..SLOW_ROUNDS).map(|_| memory_round()).collect();
    let close = close_all();

    let per_s = |n: usize| {
        move |d: Duration| format!("{} ({:.0} calls/s)", ms(d), n as f64 / d.as_secs_f64())
    };
    println!();
    println!(
        "pool pass: {ROUNDS} rounds ({SLOW_ROUNDS} for memory and close_all), one block per side \
         each round, order rotating; streamable HTTP, one fast-test server"
    );
    println!();
    println!("Pool hit: acquire + release of an idle session ({HITS_PER_BLOCK} per block)");
    println!();
    println!("| identity | p10 | p50 | p90 | p99 | max | CPU per hit |");
    println!("|---|---|---|---|---|---|---|");
    let ns = |d: Duration| format!("{:.0} ns", d.as_secs_f64() * 1e9);
    for side in [Hit::Anonymous, Hit::Authorization] {
        let v = hit.sorted(side).expect("a measured side");
        println!(
            "| {side:?} | {} | {} | {} | {} | {} | {} |",
            ns(quantile(&v, 0.1)),
            ns(median(&v)),
            ns(quantile(&v, 0.9)),
            ns(quantile(&v, 0.99)),
            ns(v[v.len() - 1]),
            ns(hit.cpu_per_call(side).expect("a measured side")),
        );
    }
    println!();
    println!(
        "Miss: a new session under a fresh identity ({MISSES_PER_BLOCK} per block; the close is \
         not timed); ratios: of all samples' medians (median of per-round ratios)"
    );
    println!();
    println!(
        "| | raw rmcp, set up like the pool | Session | pool miss | pool/raw | pool/Session |"
    );
    println!("|---|---|---|---|---|---|");
    let cell = |d: Option<Duration>| d.map_or("—".into(), ms);
    println!(
        "| wall, median | {} | {} | {} | {} | {} |",
        cell(miss.median(Connect::Raw)),
        cell(miss.median(Connect::Session)),
        cell(miss.median(Connect::Pool)),
        miss.ratio(Connect::Pool, Connect::Raw),
        miss.ratio(Connect::Pool, Connect::Session),
    );
    println!(
        "| client CPU | {} | {} | {} | {} | {} |",
        cell(miss.cpu_per_call(Connect::Raw)),
        cell(miss.cpu_per_call(Connect::Session)),
        cell(miss.cpu_per_call(Connect::Pool)),
        miss.cpu_ratio(Connect::Pool, Connect::Raw),
        miss.cpu_ratio(Connect::Pool, Connect::Session),
    );
    println!();
    println!(
        "| pool miss by era | 2025-11-25 (initialize) | 2026-07-28 (server/discover) | stateless/handshake |"
    );
    println!("|---|---|---|---|");
    println!(
        "| wall, median | {} | {} | {} |",
        cell(miss.median(Connect::Pool)),
        cell(miss.median(Connect::PoolStateless)),
        miss.ratio(Connect::PoolStateless, Connect::Pool),
    );
    println!(
        "| client CPU | {} | {} | {} |",
        cell(miss.cpu_per_call(Connect::Pool)),
        cell(miss.cpu_per_call(Connect::PoolStateless)),
        miss.cpu_ratio(Connect::PoolStateless, Connect::Pool),
    );
    println!();
    println!("| benchmark | client | p10 | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    miss.tails("miss", ms);
    println!();
    println!(
        "End to end: `echo` at concurrency c, one key. Pool: max_sessions_per_key {MAX_PER_KEY} \
         (or {WIDE_PER_KEY}). Raw: {MAX_PER_KEY} (or {WIDE_PER_KEY}) raw rmcp clients set up \
         like the pool's, shared (all calls in flight at once) or exclusive (one call per \
         client at a time). Session: {MAX_PER_KEY} harness Sessions set up like the pool's, \
         exclusive. Ratios are throughput ratios (pool/raw = raw time / pool time), all \
         samples (median of per-round ratios)"
    );
    println!();
    let sides =
        "raw | raw, exclusive | Session, exclusive | pool | raw, 100 clients | pool, max 100";
    let ratios =
        "pool/raw | pool/raw exclusive | pool/Session exclusive | pool max 100/raw 100 clients";
    println!("| c | {sides} | {ratios} | failures (same order as the sides) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (n, p, failed) in &e2e {
        let show = |d: Duration| {
            if *n == 1 {
                format!("{} per call", us(d))
            } else {
                per_s(*n)(d)
            }
        };
        let cells = E2E_SIDES.map(|side| p.median(side).map_or("—".into(), show));
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} |",
            cells.join(" | "),
            p.ratio(E2e::Raw, E2e::Pool),
            p.ratio(E2e::RawExclusive, E2e::Pool),
            p.ratio(E2e::SessionExclusive, E2e::Pool),
            p.ratio(E2e::RawWide, E2e::PoolWide),
            E2E_SIDES
                .map(|side| failed[side as usize].to_string())
                .join(", "),
        );
    }
    println!();
    println!("Client CPU per call (ratios: pool / the other)");
    println!();
    println!("| c | {sides} | {ratios} |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (n, p, _) in &e2e {
        let cells = E2E_SIDES.map(|side| p.cpu_per_call(side).map_or("—".into(), us));
        println!(
            "| {n} | {} | {} | {} | {} | {} |",
            cells.join(" | "),
            p.cpu_ratio(E2e::Pool, E2e::Raw),
            p.cpu_ratio(E2e::Pool, E2e::RawExclusive),
            p.cpu_ratio(E2e::Pool, E2e::SessionExclusive),
            p.cpu_ratio(E2e::PoolWide, E2e::RawWide),
        );
    }
    println!();
    println!("| benchmark | client | p10 | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (n, p, _) in &e2e {
        if *n == 1 {
            p.tails("c=1, per call", us);
        } else {
            p.tails(&format!("c={n}, per batch"), ms);
        }
    }
    println!();
    println!(
        "Memory per idle session, {MEMORY_SESSIONS} at once (median of {SLOW_ROUNDS} rounds; \
         free heap trimmed before each reading)"
    );
    println!();
    println!("| | client RSS | client heap in use | server RSS |");
    println!("|---|---|---|---|");
    let kib = |v: f64| format!("{v:.1} KiB");
    let row = |what: &str, pick: &dyn Fn(&Memory) -> [f64; 3]| {
        let m = |i: usize| median_of(memory.iter().map(|r| pick(r)[i]));
        println!(
            "| {what} | {} | {} | {} |",
            kib(m(0)),
            kib(m(1) / 1024.0),
            kib(m(2))
        );
    };
    row("pooled session", &|r| r.pool);
    row("raw rmcp client", &|r| r.raw);
    println!(
        "| rounds (pooled, client RSS) | {} | | |",
        memory
            .iter()
            .map(|r| format!("{:.1}", r.pool[0]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!(
        "Closing {CLOSE_SESSIONS} idle sessions ({SLOW_ROUNDS} rounds; pool: close_all, raw: \
         cancel() on {CLOSE_SESSIONS} raw clients at once)"
    );
    println!();
    println!("| | raw | pool close_all | pool/raw | client CPU raw | client CPU pool |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| median | {} | {} | {} | {} | {} |",
        cell(close.median(Close::Raw)),
        cell(close.median(Close::Pool)),
        close.ratio(Close::Pool, Close::Raw),
        cell(
            close
                .cpu_per_call(Close::Raw)
                .map(|d| d * CLOSE_SESSIONS as u32)
        ),
        cell(
            close
                .cpu_per_call(Close::Pool)
                .map(|d| d * CLOSE_SESSIONS as u32)
        ),
    );
    println!();
    println!("| benchmark | client | p10 | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    close.tails(&format!("close {CLOSE_SESSIONS}"), ms);
}
