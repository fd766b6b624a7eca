//! The harness's own cost, measured against raw rmcp on the same servers (see BENCHMARKS.md).
//!
//! * `round_trip`: an `echo` tool call through a [`Session`] and through a raw rmcp client
//!   (`rmcp::serve_client`), over stdio and streamable HTTP, one call at a time (latency) and
//!   100 at a time (throughput). Over HTTP both clients talk to the same server process; over
//!   stdio each has its own child running the same bundled server.
//! * `cold_start`: spawn + initialize of a stdio session (shutdown is not timed).
//!
//! After divan's tables, a paired pass runs raw and Session blocks alternately (so that load
//! from other processes hits both alike) and prints the Session/raw ratios; set
//! `MCP_BENCH_PAIRED=0` to skip it, or `MCP_BENCH_PAIRED=only` to run only it.
//!
//! Every client call is driven from the bench thread by a current-thread runtime; the clients'
//! own tasks (the Session's owner task, the raw client's service loop) run on the harness's
//! shared runtime, so both sides cross the same threads.
//!
//! This binary also serves the bundled servers: the harness's loader hook turns a re-executed
//! copy started with `MCP_HARNESS_SERVE` into `fast-test` before `main` runs.

use std::future::Future;
use std::hint::black_box;
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use divan::Bencher;
use divan::counter::ItemsCount;
use futures::future::join_all;
use mcp_harness::rmcp;
use mcp_harness::{Bundled, Server, ServerSpec, Session, Target, Transport, tool_text};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};

/// The text echoed by every call.
const TEXT: &str = "hello";
/// How many calls are in flight at once in the throughput benchmarks.
const CONCURRENCY: usize = 100;
/// What the bundled server reads from `MCP_HARNESS_SERVE` (same as `ServerSpec::bundled`).
const SERVE_STDIO: &str = r#"{"server":"fast-test","transport":"stdio"}"#;

type Raw = RunningService<RoleClient, ClientConfig>;

fn main() {
    let paired = std::env::var("MCP_BENCH_PAIRED").unwrap_or_default();
    let listing = std::env::args().any(|a| a == "--test" || a == "--list" || a == "--help");
    if paired != "only" {
        divan::main();
    }
    if !listing && paired != "0" {
        paired::run();
    }
}

// ---------------------------------------------------------------------------------------------
// Clients and servers

thread_local! {
    /// Drives the calls of the bench thread.
    static DRIVER: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
}

fn block_on<F: Future>(f: F) -> F::Output {
    DRIVER.with(|rt| rt.block_on(f))
}

fn client_config(name: &str) -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(name, env!("CARGO_PKG_VERSION")),
    )
}

fn stdio_spec() -> ServerSpec {
    ServerSpec::bundled(Bundled::FastTest, Transport::Stdio)
}

/// A raw rmcp client on a child of its own: this binary re-executed as `fast-test` over stdio,
/// spawned the plain way (no process group, no log files, no spawner thread).
async fn raw_stdio() -> (Raw, tokio::process::Child) {
    let exe = std::env::current_exe().expect("the path of this binary");
    let mut child = tokio::process::Command::new(exe)
        .env("MCP_HARNESS_SERVE", SERVE_STDIO)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the raw stdio server");
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let raw = rmcp::serve_client(client_config("raw"), (stdout, stdin))
        .await
        .expect("raw stdio initialize");
    (raw, child)
}

/// A raw rmcp client over streamable HTTP with rmcp's own default reqwest client, the in-flight
/// limit raised to 1024 like the harness does.
async fn raw_http(url: &str) -> Raw {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).max_concurrent_requests(1024);
    let transport = StreamableHttpClientTransport::from_config(config);
    rmcp::serve_client(client_config("raw"), transport)
        .await
        .expect("raw http initialize")
}

/// A raw rmcp client over streamable HTTP with a pooled reqwest client built like the
/// harness's own (keep-alive connections, `TCP_NODELAY`), so that only the Session layer differs.
async fn raw_http_pooled(url: &str) -> Raw {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client");
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).max_concurrent_requests(1024);
    let transport = StreamableHttpClientTransport::with_client(client, config);
    rmcp::serve_client(client_config("raw-pooled"), transport)
        .await
        .expect("raw pooled http initialize")
}

/// A Session and raw clients on the same kind of server, all open for the whole run.
struct Pair {
    session: Session,
    raw: Raw,
    /// HTTP only: a raw client with a pooled HTTP client like the harness's.
    raw_pooled: Option<Raw>,
    _server: Option<Server>,
    _raw_child: Option<tokio::process::Child>,
}

/// Created on the shared runtime, so that the raw client's service loop lives there too.
static STDIO: LazyLock<Pair> = LazyLock::new(|| {
    mcp_harness::run(async {
        let session = Session::builder(Target::Stdio(stdio_spec()))
            .name("bench")
            .connect()
            .await
            .expect("stdio session");
        let (raw, child) = raw_stdio().await;
        Pair {
            session,
            raw,
            raw_pooled: None,
            _server: None,
            _raw_child: Some(child),
        }
    })
    .checked()
});

static HTTP: LazyLock<Pair> = LazyLock::new(|| {
    mcp_harness::run(async {
        let server = Server::start(ServerSpec::bundled(
            Bundled::FastTest,
            Transport::StreamableHttp,
        ))
        .await
        .expect("http server");
        let session = Session::builder(Target::Server(server.clone()))
            .name("bench")
            .connect()
            .await
            .expect("http session");
        let raw = raw_http(server.url()).await;
        let raw_pooled = raw_http_pooled(server.url()).await;
        Pair {
            session,
            raw,
            raw_pooled: Some(raw_pooled),
            _server: Some(server),
            _raw_child: None,
        }
    })
    .checked()
});

/// Which client a call goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Raw,
    RawPooled,
    Session,
}

impl Pair {
    /// Checks that every client gets the echo back before anything is measured.
    fn checked(self) -> Pair {
        for side in self.sides() {
            let out = block_on(self.echo(side));
            assert_eq!(tool_text(&out), TEXT, "{side:?}");
        }
        self
    }

    fn sides(&self) -> Vec<Side> {
        match self.raw_pooled {
            Some(_) => vec![Side::Raw, Side::RawPooled, Side::Session],
            None => vec![Side::Raw, Side::Session],
        }
    }

    fn pooled(&self) -> &Raw {
        self.raw_pooled
            .as_ref()
            .expect("a pooled raw client (HTTP only)")
    }

    async fn echo(&self, side: Side) -> CallToolResult {
        match side {
            Side::Raw => raw_echo(&self.raw).await,
            Side::RawPooled => raw_echo(self.pooled()).await,
            Side::Session => session_echo(&self.session).await,
        }
    }

    async fn batch(&self, side: Side) -> Vec<CallToolResult> {
        join_all((0..CONCURRENCY).map(|_| self.echo(side))).await
    }
}

async fn session_echo(session: &Session) -> CallToolResult {
    session
        .call_tool("echo", serde_json::json!({ "text": TEXT }))
        .await
        .expect("echo through the Session")
}

async fn raw_echo(raw: &Raw) -> CallToolResult {
    // Built from the same `json!` value the Session is given, so both pay for it.
    let serde_json::Value::Object(args) = serde_json::json!({ "text": TEXT }) else {
        unreachable!("json! of an object is an object")
    };
    raw.call_tool(CallToolRequestParams::new("echo").with_arguments(args))
        .await
        .expect("echo through raw rmcp")
}

async fn session_batch(session: &Session) -> Vec<CallToolResult> {
    join_all((0..CONCURRENCY).map(|_| session_echo(session))).await
}

async fn raw_batch(raw: &Raw) -> Vec<CallToolResult> {
    join_all((0..CONCURRENCY).map(|_| raw_echo(raw))).await
}

// ---------------------------------------------------------------------------------------------
// divan benchmarks

/// One `echo` call at a time: the time per call.
#[divan::bench_group(sample_count = 1000)]
mod round_trip_c1 {
    use super::*;

    #[divan::bench]
    fn stdio_raw(b: Bencher) {
        let pair = &*STDIO;
        b.bench_local(|| block_on(raw_echo(&pair.raw)));
    }

    #[divan::bench]
    fn stdio_session(b: Bencher) {
        let pair = &*STDIO;
        b.bench_local(|| block_on(session_echo(&pair.session)));
    }

    #[divan::bench]
    fn http_raw(b: Bencher) {
        let pair = &*HTTP;
        b.bench_local(|| block_on(raw_echo(&pair.raw)));
    }

    #[divan::bench]
    fn http_raw_pooled(b: Bencher) {
        let pair = &*HTTP;
        b.bench_local(|| block_on(raw_echo(pair.pooled())));
    }

    #[divan::bench]
    fn http_session(b: Bencher) {
        let pair = &*HTTP;
        b.bench_local(|| block_on(session_echo(&pair.session)));
    }
}

/// 100 `echo` calls in flight at once: the time per batch of 100 (and calls/s).
#[divan::bench_group(sample_count = 100, sample_size = 1)]
mod round_trip_c100 {
    use super::*;

    #[divan::bench]
    fn stdio_raw(b: Bencher) {
        let pair = &*STDIO;
        b.counter(ItemsCount::new(CONCURRENCY))
            .bench_local(|| block_on(raw_batch(&pair.raw)));
    }

    #[divan::bench]
    fn stdio_session(b: Bencher) {
        let pair = &*STDIO;
        b.counter(ItemsCount::new(CONCURRENCY))
            .bench_local(|| block_on(session_batch(&pair.session)));
    }

    #[divan::bench]
    fn http_raw(b: Bencher) {
        let pair = &*HTTP;
        b.counter(ItemsCount::new(CONCURRENCY))
            .bench_local(|| block_on(raw_batch(&pair.raw)));
    }

    #[divan::bench]
    fn http_raw_pooled(b: Bencher) {
        let pair = &*HTTP;
        b.counter(ItemsCount::new(CONCURRENCY))
            .bench_local(|| block_on(pair.batch(Side::RawPooled)));
    }

    #[divan::bench]
    fn http_session(b: Bencher) {
        let pair = &*HTTP;
        b.counter(ItemsCount::new(CONCURRENCY))
            .bench_local(|| block_on(session_batch(&pair.session)));
    }
}

/// Spawn + ready + initialize of a stdio server; its shutdown happens after the sample is timed.
#[divan::bench_group(sample_count = 30, sample_size = 1)]
mod cold_start {
    use super::*;

    #[divan::bench]
    fn stdio_raw(b: Bencher) {
        b.bench_local(|| {
            let (raw, child) = block_on(raw_stdio());
            RawCloser(Some((raw, child)))
        });
    }

    #[divan::bench]
    fn stdio_session(b: Bencher) {
        b.with_inputs(|| Session::builder(Target::Stdio(stdio_spec())).name("alice"))
            .bench_local_values(|builder| {
                SessionCloser(block_on(builder.connect()).expect("stdio session"))
            });
    }
}

/// Shuts a Session down when divan drops it (after the sample was timed).
struct SessionCloser(Session);

impl Drop for SessionCloser {
    fn drop(&mut self) {
        block_on(self.0.shutdown()).expect("shutdown");
    }
}

/// Closes a raw client and reaps its child when divan drops it.
struct RawCloser(Option<(Raw, tokio::process::Child)>);

impl Drop for RawCloser {
    fn drop(&mut self) {
        if let Some((raw, child)) = self.0.take() {
            block_on(close_raw(raw, child));
        }
    }
}

async fn close_raw(raw: Raw, mut child: tokio::process::Child) {
    let _ = raw.cancel().await;
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The paired pass: the clients measured in alternating blocks, ratios printed as Markdown

mod paired {
    use super::*;

    /// Rounds of blocks, one block per client each round (the order rotates every round).
    const ROUNDS: usize = 20;
    /// Calls per block at concurrency 1 (each timed on its own).
    const CALLS_PER_BLOCK: usize = 200;
    /// Batches of 100 concurrent calls per block.
    const BATCHES_PER_BLOCK: usize = 8;
    /// Rounds of cold starts (one per client and round).
    const COLD_ROUNDS: usize = 25;

    fn quantile(sorted: &[Duration], q: f64) -> Duration {
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i]
    }

    fn median(v: &[Duration]) -> Duration {
        let mut v = v.to_vec();
        v.sort();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        }
    }

    fn median_f64(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    fn us(d: Duration) -> String {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }

    fn ms(d: Duration) -> String {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }

    /// Every sample of every client, and each round's samples per client.
    struct Paired {
        sides: Vec<Side>,
        /// `rounds[r][i]`: the samples of `sides[i]` in round `r`.
        rounds: Vec<Vec<Vec<Duration>>>,
    }

    impl Paired {
        /// Runs `rounds` rounds; in each, `block(side)` measures one block of every side, the
        /// first side rotating so that no client always runs first (or right after another).
        fn measure(
            sides: Vec<Side>,
            rounds: usize,
            mut block: impl FnMut(Side) -> Vec<Duration>,
        ) -> Paired {
            let n = sides.len();
            let mut all = Vec::with_capacity(rounds);
            for round in 0..rounds {
                let mut this = vec![Vec::new(); n];
                for k in 0..n {
                    let i = (round + k) % n;
                    this[i] = block(sides[i]);
                }
                all.push(this);
            }
            Paired { sides, rounds: all }
        }

        fn index(&self, side: Side) -> Option<usize> {
            self.sides.iter().position(|s| *s == side)
        }

        fn sorted(&self, side: Side) -> Option<Vec<Duration>> {
            let i = self.index(side)?;
            let mut v: Vec<Duration> = self.rounds.iter().flat_map(|r| r[i].clone()).collect();
            v.sort();
            Some(v)
        }

        fn median(&self, side: Side) -> Option<Duration> {
            self.sorted(side).map(|v| median(&v))
        }

        /// `a/b` as "ratio of the medians (median of the per-round ratios)".
        fn ratio(&self, a: Side, b: Side) -> String {
            let (Some(ia), Some(ib)) = (self.index(a), self.index(b)) else {
                return "—".into();
            };
            let (ma, mb) = (self.median(a).unwrap(), self.median(b).unwrap());
            let overall = ma.as_secs_f64() / mb.as_secs_f64();
            let per_round = median_f64(
                self.rounds
                    .iter()
                    .map(|r| median(&r[ia]).as_secs_f64() / median(&r[ib]).as_secs_f64())
                    .collect(),
            );
            format!("{overall:.3} ({per_round:.3})")
        }

        fn row(&self, what: &str, show: impl Fn(Duration) -> String) {
            let cell = |side| self.median(side).map_or("—".into(), &show);
            println!(
                "| {what} | {} | {} | {} | {} | {} |",
                cell(Side::Raw),
                cell(Side::RawPooled),
                cell(Side::Session),
                self.ratio(Side::Session, Side::Raw),
                self.ratio(Side::Session, Side::RawPooled),
            );
        }

        fn tails(&self, what: &str, show: impl Fn(Duration) -> String) {
            for &side in &self.sides {
                let v = self.sorted(side).expect("a measured side");
                println!(
                    "| {what} | {side:?} | {} | {} | {} | {} | {} |",
                    show(quantile(&v, 0.1)),
                    show(quantile(&v, 0.5)),
                    show(quantile(&v, 0.9)),
                    show(quantile(&v, 0.99)),
                    show(v[v.len() - 1]),
                );
            }
        }
    }

    fn time_each<F, Fut>(n: usize, call: F) -> Vec<Duration>
    where
        F: Fn() -> Fut,
        Fut: Future,
    {
        block_on(async {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Instant::now();
                black_box(call().await);
                out.push(start.elapsed());
            }
            out
        })
    }

    fn latency(pair: &Pair) -> Paired {
        for side in pair.sides() {
            time_each(CALLS_PER_BLOCK, || pair.echo(side));
        }
        Paired::measure(pair.sides(), ROUNDS, |side| {
            time_each(CALLS_PER_BLOCK, || pair.echo(side))
        })
    }

    fn throughput(pair: &Pair) -> Paired {
        for side in pair.sides() {
            time_each(BATCHES_PER_BLOCK, || pair.batch(side));
        }
        Paired::measure(pair.sides(), ROUNDS, |side| {
            time_each(BATCHES_PER_BLOCK, || pair.batch(side))
        })
    }

    /// One cold start: (spawn + initialize, shutdown).
    fn cold(side: Side) -> (Duration, Duration) {
        match side {
            Side::Session => {
                let builder = Session::builder(Target::Stdio(stdio_spec())).name("alice");
                let start = Instant::now();
                let session = block_on(builder.connect()).expect("stdio session");
                let connected = start.elapsed();
                let start = Instant::now();
                block_on(session.shutdown()).expect("shutdown");
                (connected, start.elapsed())
            }
            _ => {
                let start = Instant::now();
                let (raw, child) = block_on(raw_stdio());
                let connected = start.elapsed();
                let start = Instant::now();
                block_on(close_raw(raw, child));
                (connected, start.elapsed())
            }
        }
    }

    fn cold_start() -> (Paired, Paired) {
        let sides = vec![Side::Raw, Side::Session];
        for &side in &sides {
            cold(side);
        }
        let mut shutdowns: Vec<(Side, Duration)> = Vec::new();
        let connects = Paired::measure(sides.clone(), COLD_ROUNDS, |side| {
            let (connect, shutdown) = cold(side);
            shutdowns.push((side, shutdown));
            vec![connect]
        });
        // Replay the recorded shutdowns in the same order to group them the same way.
        let mut replay = shutdowns.into_iter();
        let closes = Paired::measure(sides, COLD_ROUNDS, |side| {
            let (s, d) = replay.next().expect("one shutdown per cold start");
            assert_eq!(s, side);
            vec![d]
        });
        (connects, closes)
    }

    pub(super) fn run() {
        let per_s = |d: Duration| {
            format!(
                "{} ({:.0} calls/s)",
                ms(d),
                CONCURRENCY as f64 / d.as_secs_f64()
            )
        };
        println!();
        println!(
            "paired pass: {ROUNDS} rounds, one block per client each round, order rotating; \
             ratios: of the medians (median of the per-round ratios)"
        );
        println!();
        println!(
            "| benchmark | raw rmcp | raw rmcp, pooled HTTP client | Session | Session/raw | Session/raw pooled |"
        );
        println!("|---|---|---|---|---|---|");
        let mut c1 = Vec::new();
        for (transport, pair) in [("stdio", &*STDIO), ("http", &*HTTP)] {
            let lat = latency(pair);
            lat.row(&format!("{transport} c=1: median per call"), us);
            throughput(pair).row(
                &format!("{transport} c={CONCURRENCY}: median per batch of {CONCURRENCY}"),
                per_s,
            );
            c1.push((transport, lat));
        }
        let (connects, closes) = cold_start();
        connects.row("stdio cold start (spawn + initialize)", ms);
        closes.row("stdio shutdown (not in the cold start)", ms);
        println!();
        println!("| benchmark | client | p10 | p50 | p90 | p99 | max |");
        println!("|---|---|---|---|---|---|---|");
        for (transport, lat) in &c1 {
            lat.tails(&format!("{transport} c=1"), us);
        }
        connects.tails("stdio cold start", ms);
    }
}
