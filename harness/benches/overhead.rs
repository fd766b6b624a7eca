//! The harness's own cost, measured against raw rmcp on the same servers (see BENCHMARKS.md).
//!
//! * `round_trip_c1` / `round_trip_c100`: an `echo` tool call through a [`Session`] and through
//!   a raw rmcp client (`rmcp::serve_client`), over stdio and streamable HTTP, one call at a time
//!   (latency) and 100 at a time (throughput). Over HTTP every client talks to the same server
//!   process; over stdio each client has its own child running the same bundled server.
//! * `cold_start`: spawn + initialize of a stdio session (shutdown is not timed).
//! * `pool_*` (in `overhead/pool.rs`): the session pool's hit, miss, end-to-end `echo` against
//!   raw rmcp clients, memory per pooled session and `close_all`.
//!
//! After divan's tables, a paired pass measures the clients in alternating blocks (so that load
//! from other processes hits them alike), also counts the CPU time this process spends per call,
//! and prints Markdown tables with the Session/raw ratios; then the pool's pass does the same for
//! the pool (see `pool::run`). `MCP_BENCH_PAIRED=0` skips both, `MCP_BENCH_PAIRED=only` runs only
//! them (no divan), `MCP_BENCH_PAIRED=pool` only the pool's pass.
//!
//! Every call is driven from the bench thread by a current-thread runtime; the clients' own
//! tasks (the Session's owner task, the raw client's service loop) run on the harness's shared
//! runtime, so both sides cross the same threads.
//!
//! This binary also serves the bundled servers: the harness's loader hook turns a copy
//! re-executed with `MCP_HARNESS_SERVE` into `fast-test` before `main` runs.

use std::future::Future;
use std::hint::black_box;
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use divan::Bencher;
use divan::counter::ItemsCount;
use futures::future::join_all;
use mcp_harness::rmcp;
use mcp_harness::{
    Bundled, Era, Protocol, Server, ServerSpec, Session, Target, Transport, tool_text,
};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{ClientLifecycleMode, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};

/// The text echoed by every call.
const TEXT: &str = "hello";
/// How many calls are in flight at once in the throughput benchmarks.
const CONCURRENCY: usize = 100;
/// Stdio clients of each kind (each with its own child), rotated through by the paired pass
/// so that one child being scheduled better or worse than another does not decide a ratio.
const STDIO_CLIENTS: usize = 3;
/// What the bundled server reads from `MCP_HARNESS_SERVE` (same as `ServerSpec::bundled`).
const SERVE_STDIO: &str = r#"{"server":"fast-test","transport":"stdio"}"#;

type Raw = RunningService<RoleClient, ClientConfig>;

#[path = "overhead/pool.rs"]
mod pool;

fn main() {
    let paired = std::env::var("MCP_BENCH_PAIRED").unwrap_or_default();
    // Like divan: without `--bench` (`cargo test --benches`) or with `--test`, only check that
    // each benchmark runs once.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let benchmarking = has("--bench") && !has("--test") && !has("--list") && !has("--help");
    if paired != "only" && paired != "pool" {
        divan::main();
    }
    if benchmarking && paired != "0" {
        if paired != "pool" {
            paired::run();
        }
        pool::run();
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

/// The raw clients advertise what a Session advertises (elicitation, sampling, roots): in the
/// stateless era every request carries the client's capabilities in its `_meta`, so a client
/// that advertises less sends (and its server parses) less on every call.
fn client_config(name: &str) -> ClientConfig {
    let capabilities: ClientCapabilities = serde_json::from_value(serde_json::json!({
        "elicitation": {"form": {}},
        "sampling": {},
        "roots": {"listChanged": false},
    }))
    .expect("client capabilities");
    ClientConfig::new(
        capabilities,
        Implementation::new(name, env!("CARGO_PKG_VERSION")),
    )
}

/// The protocol setting of a Session and the lifecycle of a raw client, for `era`.
fn protocol(era: Era) -> Protocol {
    match era {
        Era::Stateless => Protocol::Stateless("2026-07-28".into()),
        _ => Protocol::Handshake("2025-11-25".into()),
    }
}

fn lifecycle(era: Era) -> ClientLifecycleMode {
    match era {
        Era::Stateless => ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::LATEST],
        },
        _ => ClientLifecycleMode::Initialize,
    }
}

async fn serve_raw<T, E, A>(name: &str, transport: T, era: Era) -> Raw
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    rmcp::serve_client_with_lifecycle(client_config(name), transport, lifecycle(era))
        .await
        .unwrap_or_else(|e| panic!("raw {name} client connects ({era}): {e}"))
}

fn stdio_spec() -> ServerSpec {
    ServerSpec::bundled(Bundled::FastTest, Transport::Stdio)
}

/// A raw rmcp client on a child of its own: this binary re-executed as `fast-test` over stdio,
/// spawned the plain way (`posix_spawn`; no process group, log files or spawner thread).
async fn raw_stdio() -> (Raw, tokio::process::Child) {
    raw_stdio_with(server_command(), Era::Handshake).await
}

/// Like [`raw_stdio`], but the child is spawned the way the harness spawns its children: in a
/// process group of its own and with `PR_SET_PDEATHSIG`, which takes a `pre_exec` hook, so the
/// standard library forks instead of using `posix_spawn`.
async fn raw_stdio_alike() -> (Raw, tokio::process::Child) {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = server_command();
    cmd.process_group(0);
    // SAFETY: the hook runs between fork and exec and only makes an async-signal-safe syscall.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    raw_stdio_with(cmd, Era::Handshake).await
}

fn server_command() -> std::process::Command {
    let exe = std::env::current_exe().expect("the path of this binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.env("MCP_HARNESS_SERVE", SERVE_STDIO)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

async fn raw_stdio_with(cmd: std::process::Command, era: Era) -> (Raw, tokio::process::Child) {
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the raw stdio server");
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let raw = serve_raw("raw stdio", (stdout, stdin), era).await;
    (raw, child)
}

/// A raw rmcp client over streamable HTTP with rmcp's default reqwest client (which keeps no
/// idle connections), the in-flight limit raised to 1024 like the harness does.
async fn raw_http(url: &str, era: Era) -> Raw {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).max_concurrent_requests(1024);
    let transport = StreamableHttpClientTransport::from_config(config);
    serve_raw("raw http", transport, era).await
}

/// A raw rmcp client over streamable HTTP with a pooled reqwest client built like the
/// harness's own (keep-alive connections, `TCP_NODELAY`), so that only the Session layer differs.
async fn raw_http_pooled(url: &str, era: Era) -> Raw {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client");
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).max_concurrent_requests(1024);
    let transport = StreamableHttpClientTransport::with_client(client, config);
    serve_raw("raw-pooled http", transport, era).await
}

/// Sessions and raw clients on the same kind of server, all open for the whole run.
struct Pair {
    sessions: Vec<Session>,
    raws: Vec<Raw>,
    /// HTTP only: a raw client with a pooled HTTP client like the harness's.
    raw_alike: Option<Raw>,
    _server: Option<Server>,
    _raw_children: Vec<tokio::process::Child>,
}

/// Stdio sessions and raw clients speaking `era`, created on the shared runtime, so that the
/// raw clients' service loops live there too.
fn stdio_pair(era: Era) -> Pair {
    mcp_harness::run(async move {
        let (mut sessions, mut raws, mut children) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..STDIO_CLIENTS {
            let session = Session::builder(Target::Stdio(stdio_spec()))
                .name("bench")
                .protocol(protocol(era))
                .connect()
                .await
                .expect("stdio session");
            assert_eq!(session.era(), era);
            sessions.push(session);
            let (raw, child) = raw_stdio_with(server_command(), era).await;
            raws.push(raw);
            children.push(child);
        }
        Pair {
            sessions,
            raws,
            raw_alike: None,
            _server: None,
            _raw_children: children,
        }
    })
    .checked()
}

/// One HTTP server; a Session and two raw clients speaking `era` to it.
fn http_pair(era: Era) -> Pair {
    mcp_harness::run(async move {
        let server = Server::start(ServerSpec::bundled(
            Bundled::FastTest,
            Transport::StreamableHttp,
        ))
        .await
        .expect("http server");
        let session = Session::builder(Target::Server(server.clone()))
            .name("bench")
            .protocol(protocol(era))
            .connect()
            .await
            .expect("http session");
        assert_eq!(session.era(), era);
        let raw = raw_http(server.url(), era).await;
        let raw_alike = raw_http_pooled(server.url(), era).await;
        Pair {
            sessions: vec![session],
            raws: vec![raw],
            raw_alike: Some(raw_alike),
            _server: Some(server),
            _raw_children: Vec::new(),
        }
    })
    .checked()
}

/// The handshake era (MCP 2025-11-25), which divan measures too.
static STDIO: LazyLock<Pair> = LazyLock::new(|| stdio_pair(Era::Handshake));
static HTTP: LazyLock<Pair> = LazyLock::new(|| http_pair(Era::Handshake));
/// The stateless era (MCP 2026-07-28): the paired pass only.
static STDIO_STATELESS: LazyLock<Pair> = LazyLock::new(|| stdio_pair(Era::Stateless));
static HTTP_STATELESS: LazyLock<Pair> = LazyLock::new(|| http_pair(Era::Stateless));

/// Which client a call goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// A raw rmcp client set up the plain way.
    Raw,
    /// A raw rmcp client set up like the harness sets up its own: over HTTP a pooled reqwest
    /// client, for a stdio cold start a child spawned with fork + `PR_SET_PDEATHSIG`.
    RawAlike,
    /// A harness `Session`.
    Session,
}

impl Pair {
    /// Checks that every client gets the echo back before anything is measured.
    fn checked(self) -> Pair {
        for side in self.sides() {
            for k in 0..self.sessions.len() {
                let out = block_on(self.echo(side, k));
                assert_eq!(tool_text(&out), TEXT, "{side:?} #{k}");
            }
        }
        self
    }

    fn sides(&self) -> Vec<Side> {
        match self.raw_alike {
            Some(_) => vec![Side::Raw, Side::RawAlike, Side::Session],
            None => vec![Side::Raw, Side::Session],
        }
    }

    fn alike(&self) -> &Raw {
        self.raw_alike
            .as_ref()
            .expect("a pooled raw client (HTTP only)")
    }

    /// One `echo` through client `k` (modulo the number of clients) of `side`.
    async fn echo(&self, side: Side, k: usize) -> CallToolResult {
        match side {
            Side::Raw => raw_echo(&self.raws[k % self.raws.len()]).await,
            Side::RawAlike => raw_echo(self.alike()).await,
            Side::Session => session_echo(&self.sessions[k % self.sessions.len()]).await,
        }
    }

    /// `CONCURRENCY` concurrent `echo` calls through client `k` of `side`.
    async fn batch(&self, side: Side, k: usize) -> Vec<CallToolResult> {
        join_all((0..CONCURRENCY).map(|_| self.echo(side, k))).await
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

// ---------------------------------------------------------------------------------------------
// divan benchmarks (run one after another: see the paired pass for the ratios)

/// One `echo` call at a time: the time per call.
#[divan::bench_group(sample_count = 1000)]
mod round_trip_c1 {
    use super::*;

    #[divan::bench]
    fn stdio_raw(b: Bencher) {
        let pair = &*STDIO;
        b.bench_local(|| block_on(pair.echo(Side::Raw, 0)));
    }

    #[divan::bench]
    fn stdio_session(b: Bencher) {
        let pair = &*STDIO;
        b.bench_local(|| block_on(pair.echo(Side::Session, 0)));
    }

    #[divan::bench]
    fn http_raw(b: Bencher) {
        let pair = &*HTTP;
        b.bench_local(|| block_on(pair.echo(Side::Raw, 0)));
    }

    #[divan::bench]
    fn http_raw_pooled(b: Bencher) {
        let pair = &*HTTP;
        b.bench_local(|| block_on(pair.echo(Side::RawAlike, 0)));
    }

    #[divan::bench]
    fn http_session(b: Bencher) {
        let pair = &*HTTP;
        b.bench_local(|| block_on(pair.echo(Side::Session, 0)));
    }
}

/// 100 `echo` calls in flight at once: the time per batch of 100 (and calls/s).
#[divan::bench_group(sample_count = 100, sample_size = 1)]
mod round_trip_c100 {
    use super::*;

    fn batches(b: Bencher, pair: &Pair, side: Side) {
        b.counter(ItemsCount::new(CONCURRENCY))
            .bench_local(|| block_on(pair.batch(side, 0)));
    }

    #[divan::bench]
    fn stdio_raw(b: Bencher) {
        batches(b, &STDIO, Side::Raw);
    }

    #[divan::bench]
    fn stdio_session(b: Bencher) {
        batches(b, &STDIO, Side::Session);
    }

    #[divan::bench]
    fn http_raw(b: Bencher) {
        batches(b, &HTTP, Side::Raw);
    }

    #[divan::bench]
    fn http_raw_pooled(b: Bencher) {
        batches(b, &HTTP, Side::RawAlike);
    }

    #[divan::bench]
    fn http_session(b: Bencher) {
        batches(b, &HTTP, Side::Session);
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
    fn stdio_raw_forked(b: Bencher) {
        b.bench_local(|| {
            let (raw, child) = block_on(raw_stdio_alike());
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

    /// Rounds of blocks, one block per client kind each round (the order rotates every round,
    /// and so does the stdio client used).
    const ROUNDS: usize = 24;
    /// Calls per block at concurrency 1 (each timed on its own).
    const CALLS_PER_BLOCK: usize = 200;
    /// Batches of 100 concurrent calls per block.
    const BATCHES_PER_BLOCK: usize = 8;
    /// Rounds of cold starts (one per client kind and round).
    const COLD_ROUNDS: usize = 30;

    /// The CPU time this whole process (bench thread, shared runtime, spawner) has used.
    pub(crate) fn process_cpu() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: plain syscall writing into a timespec we own.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// One block of one client: each item's wall time, the calls made, the CPU time used.
    #[derive(Clone, Default)]
    pub(crate) struct Block {
        pub(crate) samples: Vec<Duration>,
        pub(crate) calls: usize,
        pub(crate) cpu: Duration,
    }

    /// Times `n` items of `calls_per_item` calls each.
    pub(crate) fn time_each<F, Fut>(n: usize, calls_per_item: usize, item: F) -> Block
    where
        F: Fn() -> Fut,
        Fut: Future,
    {
        block_on(async {
            let mut samples = Vec::with_capacity(n);
            let cpu = process_cpu();
            for _ in 0..n {
                let start = Instant::now();
                black_box(item().await);
                samples.push(start.elapsed());
            }
            Block {
                samples,
                calls: n * calls_per_item,
                cpu: process_cpu() - cpu,
            }
        })
    }

    pub(crate) fn median(v: &[Duration]) -> Duration {
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

    pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    pub(crate) fn us(d: Duration) -> String {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }

    pub(crate) fn ms(d: Duration) -> String {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }

    /// Every block of every client kind, round by round.
    pub(crate) struct Paired<S = Side> {
        sides: Vec<S>,
        /// `rounds[r][i]`: the block of `sides[i]` in round `r`.
        rounds: Vec<Vec<Block>>,
    }

    impl<S: Copy + PartialEq + std::fmt::Debug> Paired<S> {
        /// Runs `rounds` rounds; in each, `block(side, round)` measures one block of every side,
        /// the first side rotating so that no client kind always runs first.
        pub(crate) fn measure(
            sides: Vec<S>,
            rounds: usize,
            mut block: impl FnMut(S, usize) -> Block,
        ) -> Paired<S> {
            let n = sides.len();
            let mut all = Vec::with_capacity(rounds);
            for round in 0..rounds {
                let mut this = vec![Block::default(); n];
                for k in 0..n {
                    let i = (round + k) % n;
                    this[i] = block(sides[i], round);
                }
                all.push(this);
            }
            Paired { sides, rounds: all }
        }

        fn index(&self, side: S) -> Option<usize> {
            self.sides.iter().position(|s| *s == side)
        }

        pub(crate) fn sorted(&self, side: S) -> Option<Vec<Duration>> {
            let i = self.index(side)?;
            let mut v: Vec<Duration> = self
                .rounds
                .iter()
                .flat_map(|r| r[i].samples.clone())
                .collect();
            v.sort();
            Some(v)
        }

        pub(crate) fn median(&self, side: S) -> Option<Duration> {
            self.sorted(side).map(|v| median(&v))
        }

        pub(crate) fn cpu_per_call(&self, side: S) -> Option<Duration> {
            let i = self.index(side)?;
            let cpu: Duration = self.rounds.iter().map(|r| r[i].cpu).sum();
            let calls: usize = self.rounds.iter().map(|r| r[i].calls).sum();
            Some(cpu / calls as u32)
        }

        /// `a/b` of the wall medians, as "all samples (median of the per-round ratios)".
        pub(crate) fn ratio(&self, a: S, b: S) -> String {
            let (Some(ia), Some(ib)) = (self.index(a), self.index(b)) else {
                return "—".into();
            };
            let overall =
                self.median(a).unwrap().as_secs_f64() / self.median(b).unwrap().as_secs_f64();
            let per_round = median_f64(
                self.rounds
                    .iter()
                    .map(|r| {
                        median(&r[ia].samples).as_secs_f64() / median(&r[ib].samples).as_secs_f64()
                    })
                    .collect(),
            );
            format!("{overall:.3} ({per_round:.3})")
        }

        pub(crate) fn cpu_ratio(&self, a: S, b: S) -> String {
            match (self.cpu_per_call(a), self.cpu_per_call(b)) {
                (Some(a), Some(b)) => format!("{:.3}", a.as_secs_f64() / b.as_secs_f64()),
                _ => "—".into(),
            }
        }

        pub(crate) fn tails(&self, what: &str, show: impl Fn(Duration) -> String) {
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

    impl Paired<Side> {
        fn row(&self, what: &str, show: impl Fn(Duration) -> String) {
            let cell = |side| self.median(side).map_or("—".into(), &show);
            println!(
                "| {what} | {} | {} | {} | {} | {} |",
                cell(Side::Raw),
                cell(Side::RawAlike),
                cell(Side::Session),
                self.ratio(Side::Session, Side::Raw),
                self.ratio(Side::Session, Side::RawAlike),
            );
        }

        fn cpu_row(&self, what: &str) {
            let cell = |side| self.cpu_per_call(side).map_or("—".into(), us);
            println!(
                "| {what} | {} | {} | {} | {} | {} |",
                cell(Side::Raw),
                cell(Side::RawAlike),
                cell(Side::Session),
                self.cpu_ratio(Side::Session, Side::Raw),
                self.cpu_ratio(Side::Session, Side::RawAlike),
            );
        }
    }

    fn latency(pair: &Pair) -> Paired {
        for side in pair.sides() {
            time_each(CALLS_PER_BLOCK, 1, || pair.echo(side, 0));
        }
        Paired::measure(pair.sides(), ROUNDS, |side, round| {
            time_each(CALLS_PER_BLOCK, 1, || pair.echo(side, round))
        })
    }

    fn throughput(pair: &Pair) -> Paired {
        for side in pair.sides() {
            time_each(BATCHES_PER_BLOCK, CONCURRENCY, || pair.batch(side, 0));
        }
        Paired::measure(pair.sides(), ROUNDS, |side, round| {
            time_each(BATCHES_PER_BLOCK, CONCURRENCY, || pair.batch(side, round))
        })
    }

    /// One cold start: (spawn + initialize, shutdown).
    fn cold(side: Side) -> (Block, Duration) {
        let cpu = process_cpu();
        let start = Instant::now();
        let close: Box<dyn FnOnce()> = match side {
            Side::Session => {
                let builder = Session::builder(Target::Stdio(stdio_spec())).name("alice");
                let session = block_on(builder.connect()).expect("stdio session");
                Box::new(move || block_on(session.shutdown()).expect("shutdown"))
            }
            Side::RawAlike => {
                let (raw, child) = block_on(raw_stdio_alike());
                Box::new(move || block_on(close_raw(raw, child)))
            }
            Side::Raw => {
                let (raw, child) = block_on(raw_stdio());
                Box::new(move || block_on(close_raw(raw, child)))
            }
        };
        let connect = Block {
            samples: vec![start.elapsed()],
            calls: 1,
            cpu: process_cpu() - cpu,
        };
        let start = Instant::now();
        close();
        (connect, start.elapsed())
    }

    fn cold_start() -> (Paired, Paired) {
        let sides = vec![Side::Raw, Side::RawAlike, Side::Session];
        for &side in &sides {
            cold(side);
        }
        let mut shutdowns = Vec::new();
        let connects = Paired::measure(sides.clone(), COLD_ROUNDS, |side, _| {
            let (connect, shutdown) = cold(side);
            shutdowns.push(shutdown);
            connect
        });
        // The shutdowns in the order they happened, grouped the same way.
        let mut replay = shutdowns.into_iter();
        let closes = Paired::measure(sides, COLD_ROUNDS, |_, _| Block {
            samples: vec![replay.next().expect("one shutdown per cold start")],
            calls: 1,
            cpu: Duration::ZERO,
        });
        (connects, closes)
    }

    pub(super) fn run() {
        let per_batch = |d: Duration| {
            format!(
                "{} ({:.0} calls/s)",
                ms(d),
                CONCURRENCY as f64 / d.as_secs_f64()
            )
        };
        let mut results = Vec::new();
        for (pair, transport) in [
            (&*STDIO, "stdio 2025-11-25"),
            (&*HTTP, "http 2025-11-25"),
            (&*STDIO_STATELESS, "stdio 2026-07-28"),
            (&*HTTP_STATELESS, "http 2026-07-28"),
        ] {
            results.push((transport, latency(pair), throughput(pair)));
        }
        let (connects, closes) = cold_start();

        println!();
        println!(
            "paired pass: {ROUNDS} rounds ({COLD_ROUNDS} for cold starts), one block per client \
             kind each round, order rotating; stdio rotates over {STDIO_CLIENTS} clients (and \
             children) of each kind"
        );
        println!();
        println!(
            "\"set up like the harness\": over HTTP, a pooled reqwest client with TCP_NODELAY \
             (rmcp's default client keeps no idle connection); for a stdio cold start, a child \
             forked with PR_SET_PDEATHSIG in its own process group (no posix_spawn)"
        );
        println!();
        println!(
            "Wall time, medians; ratios: of all samples' medians (median of per-round ratios)"
        );
        println!();
        println!(
            "| benchmark | raw rmcp | raw rmcp, set up like the harness | Session | Session/raw | Session/raw alike |"
        );
        println!("|---|---|---|---|---|---|");
        for (transport, lat, thr) in &results {
            lat.row(&format!("{transport} c=1: per call"), us);
            thr.row(
                &format!("{transport} c={CONCURRENCY}: per batch of {CONCURRENCY}"),
                per_batch,
            );
        }
        connects.row("stdio cold start (spawn + initialize)", ms);
        closes.row("stdio shutdown (not in the cold start)", ms);
        println!();
        println!("CPU time of this process (client side: caller, runtime, spawner) per call");
        println!();
        println!(
            "| benchmark | raw rmcp | raw rmcp, set up like the harness | Session | Session/raw | Session/raw alike |"
        );
        println!("|---|---|---|---|---|---|");
        for (transport, lat, thr) in &results {
            lat.cpu_row(&format!("{transport} c=1"));
            thr.cpu_row(&format!("{transport} c={CONCURRENCY}"));
        }
        connects.cpu_row("stdio cold start");
        println!();
        println!("Distributions (wall time)");
        println!();
        println!("| benchmark | client | p10 | p50 | p90 | p99 | max |");
        println!("|---|---|---|---|---|---|---|");
        for (transport, lat, _) in &results {
            lat.tails(&format!("{transport} c=1"), us);
        }
        connects.tails("stdio cold start", ms);
    }
}
