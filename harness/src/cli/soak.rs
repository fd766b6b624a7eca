//! `mcp-harness soak`: many concurrent clients calling a tool through the session pool (or raw
//! sessions) against a real server, with live progress, optional cancellation and chaos, and a
//! final report.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{
    TransportArg, error_kind, exit, exit_code_for, ms, parse_duration, parse_header,
    parse_json_args,
};
use crate::errors::Error;
use crate::pool::{AcquireRequest, PoolMetrics};
use crate::{Bundled, Server, ServerSpec, Session, SessionPool, Target, Transport, runtime};

/// The reference gateway's validation run: this many calls...
const DEFAULT_CALLS: u64 = 607_000;
/// ...from this many concurrent clients.
const DEFAULT_CLIENTS: usize = 1000;
/// Sessions per pool key: the reference pool's default. Measured on 2 cores (1000 clients,
/// 100,000 echo calls): 4 to 100 sessions all run at 7,000-10,000 calls/s, 300 at 5,400 with
/// twice the memory; more sessions only add concurrent requests that share the same cores.
const DEFAULT_MAX_SESSIONS: usize = 10;
/// How long after a chaos event ends failures still count as caused by it.
const CHAOS_GRACE: Duration = Duration::from_secs(2);
/// Histogram shards, so that 1000 clients do not contend on one lock.
const SHARDS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Chaos {
    /// SIGKILL the server, then restart it on the same address.
    Kill,
    /// SIGSTOP the server, then SIGCONT it after --pause-for.
    Pause,
}

#[derive(clap::Args)]
pub(super) struct SoakArgs {
    /// `bundled` (spawn the bundled fast-test server) or the url of a running server. A command
    /// after `--` is spawned instead.
    #[arg(long, default_value = "bundled", value_name = "bundled|URL")]
    server: String,
    /// A server command to spawn, after `--` (stdio: one process per session; http/sse: it must
    /// print `MCP_HARNESS_READY {"url":...}` on stdout).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// Transport (default http; stdio for a command).
    #[arg(long, value_enum)]
    transport: Option<TransportArg>,
    /// Concurrent clients.
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    clients: usize,
    /// Total tool calls (default 607000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    calls: Option<u64>,
    /// Run for this long instead of a number of calls (30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// The tool to call.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// JSON object arguments (default for echo: {"text":"soak"}).
    #[arg(long, value_parser = parse_json_args, value_name = "JSON")]
    args: Option<Value>,
    /// Go through the session pool (the default).
    #[arg(long, overrides_with = "no_pool")]
    pool: bool,
    /// One raw session per client instead of the pool.
    #[arg(long, overrides_with = "pool")]
    no_pool: bool,
    /// The pool's max_sessions_per_key.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS)]
    max_sessions: usize,
    /// Fraction of calls (0..1) the client abandons after a random delay under 1 ms; the server
    /// is sent notifications/cancelled and the session must go on.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    cancel_rate: f64,
    /// Disturb the spawned server periodically (needs --every).
    #[arg(long, value_enum, requires = "every")]
    chaos: Option<Chaos>,
    /// Interval between chaos events.
    #[arg(long, value_parser = parse_duration, requires = "chaos")]
    every: Option<Duration>,
    /// With --chaos pause: how long the server stays stopped (default: half of --every, at
    /// most 1 s).
    #[arg(long, value_parser = parse_duration, requires = "chaos")]
    pause_for: Option<Duration>,
    /// An extra HTTP header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header, value_name = "K:V")]
    headers: Vec<(String, String)>,
    /// A bearer token.
    #[arg(long, env = "MCP_HARNESS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The bound on each request, acquire and session creation (default 30 s; 5 s with --chaos,
    /// so that a call lost with a killed server does not hold the end of the run).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// How often to print a progress line when stderr is not a terminal.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    progress_every: Duration,
    /// Print the final report as one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number between 0 and 1"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("`{s}` is not between 0 and 1"))
    }
}

/// Where the clients connect.
enum Upstream {
    /// A network server this command started (chaos applies).
    Spawned(Server),
    /// A running server.
    Url(String, Transport),
    /// A stdio command, one process per session.
    Stdio(Box<ServerSpec>),
}

impl Upstream {
    fn describe(&self) -> (String, Transport) {
        match self {
            Upstream::Spawned(s) => (s.url().to_owned(), s.transport()),
            Upstream::Url(u, t) => (u.clone(), *t),
            Upstream::Stdio(spec) => (spec.command_line(), Transport::Stdio),
        }
    }

    fn acquire_request(&self) -> AcquireRequest {
        match self {
            Upstream::Spawned(s) => AcquireRequest::url(s.url(), s.transport()),
            Upstream::Url(u, t) => AcquireRequest::url(u.clone(), *t),
            Upstream::Stdio(spec) => AcquireRequest::stdio((**spec).clone()),
        }
    }

    fn target(&self) -> Target {
        match self {
            Upstream::Spawned(s) => Target::Server(s.clone()),
            Upstream::Url(u, Transport::Sse) => Target::Sse(u.clone()),
            Upstream::Url(u, _) => Target::Http(u.clone()),
            Upstream::Stdio(spec) => Target::Stdio((**spec).clone()),
        }
    }
}

/// Everything the clients, the progress reporter and the chaos task share.
struct Tally {
    total: Option<u64>,
    deadline: Option<Instant>,
    issued: AtomicU64,
    ok: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    unexpected: AtomicU64,
    failures: Mutex<BTreeMap<(&'static str, bool), u64>>,
    first_unexpected: Mutex<Vec<String>>,
    shards: Vec<Mutex<Histogram<u64>>>,
    chaos_windows: Mutex<Vec<(Instant, Option<Instant>)>>,
    stop: AtomicBool,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Tally {
    fn next_call(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if let Some(deadline) = self.deadline
            && Instant::now() >= deadline
        {
            return false;
        }
        match self.total {
            Some(total) => self.issued.fetch_add(1, Ordering::Relaxed) < total,
            None => {
                self.issued.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    fn record_ok(&self, worker: usize, took: Duration) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut h = self.shards[worker % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        h.saturating_record(us);
    }

    /// Whether a call running from `t0` to `t1` overlapped a chaos event (plus its grace).
    fn during_chaos(&self, t0: Instant, t1: Instant) -> bool {
        let windows = self.chaos_windows.lock().unwrap_or_else(|p| p.into_inner());
        windows
            .iter()
            .any(|(start, end)| t1 >= *start && end.is_none_or(|e| t0 <= e))
    }

    fn record_failure(&self, kind: &'static str, message: String, t0: Instant, t1: Instant) {
        let expected = self.during_chaos(t0, t1);
        self.failed.fetch_add(1, Ordering::Relaxed);
        if !expected {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            let mut first = self
                .first_unexpected
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if first.len() < 5 {
                first.push(message);
            }
        }
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((kind, expected))
            .or_default() += 1;
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let h = shard.lock().unwrap_or_else(|p| p.into_inner());
            let _ = all.add(&*h);
        }
        all
    }

    fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.cancelled.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
    }
}

/// What one call came to.
enum CallOutcome {
    Ok,
    ToolError(String),
    Failed(Error),
    Cancelled,
}

/// The peak resident set size (`VmHWM`) of a process, in KiB.
fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(super) fn run(args: SoakArgs) -> u8 {
    if args.clients == 0 {
        eprintln!("mcp-harness soak: --clients must be at least 1");
        return exit::USAGE;
    }
    if args.max_sessions == 0 {
        eprintln!("mcp-harness soak: --max-sessions must be at least 1");
        return exit::USAGE;
    }
    if let Some(every) = args.every
        && every.is_zero()
    {
        eprintln!("mcp-harness soak: --every must be longer than 0");
        return exit::USAGE;
    }
    let bundled = args.server == "bundled";
    if !args.command.is_empty() && !bundled {
        eprintln!("mcp-harness soak: give either --server URL or a command after `--`, not both");
        return exit::USAGE;
    }
    if !bundled
        && args.command.is_empty()
        && !(args.server.starts_with("http://") || args.server.starts_with("https://"))
    {
        eprintln!(
            "mcp-harness soak: --server `{}` is neither `bundled` nor an http(s) url",
            args.server
        );
        return exit::USAGE;
    }
    crate::run(soak(args))
}

async fn start_upstream(args: &SoakArgs) -> Result<Upstream, (u8, String)> {
    let command = !args.command.is_empty();
    let transport = args
        .transport
        .unwrap_or(if command {
            TransportArg::Stdio
        } else {
            TransportArg::Http
        })
        .harness();
    let chaos_possible = transport != Transport::Stdio && (command || args.server == "bundled");
    if args.chaos.is_some() && !chaos_possible {
        return Err((
            exit::USAGE,
            "--chaos needs a network server this command spawns (the bundled one, or a command with --transport http|sse)".into(),
        ));
    }
    let spec = if command {
        let program = &args.command[0];
        let name = std::path::Path::new(program)
            .file_name()
            .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
        Some(
            ServerSpec::new(name, program)
                .args(&args.command[1..])
                .transport(transport),
        )
    } else if args.server == "bundled" {
        Some(ServerSpec::bundled(Bundled::FastTest, transport))
    } else {
        None
    };
    match spec {
        Some(spec) if transport == Transport::Stdio => Ok(Upstream::Stdio(Box::new(spec))),
        Some(spec) => Server::start(spec)
            .await
            .map(Upstream::Spawned)
            .map_err(|e| (exit_code_for(&e), e.to_string())),
        None => Ok(Upstream::Url(args.server.clone(), transport)),
    }
}

async fn soak(mut args: SoakArgs) -> u8 {
    let timeout = args.timeout.unwrap_or(if args.chaos.is_some() {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(30)
    });
    args.timeout = Some(timeout);
    let upstream = match start_upstream(&args).await {
        Ok(u) => Arc::new(u),
        Err((code, message)) => {
            eprintln!("mcp-harness soak: {message}");
            return code;
        }
    };
    let use_pool = !args.no_pool;
    let arguments = args.args.clone().unwrap_or_else(|| {
        if args.tool == "echo" {
            json!({"text": "soak"})
        } else {
            Value::Null
        }
    });
    let total = match (args.calls, args.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_CALLS),
    };
    let pool = SessionPool::builder()
        .max_sessions_per_key(args.max_sessions)
        .acquire_timeout(timeout)
        .create_timeout(timeout)
        .request_timeout(timeout)
        // Chaos makes creations fail for a moment: let the circuit retry soon.
        .circuit_breaker_reset(Duration::from_millis(500))
        .build();
    let mut request = upstream.acquire_request();
    if let Some(t) = &args.token {
        request = request.header("authorization", &format!("Bearer {t}"));
    }
    for (k, v) in &args.headers {
        request = request.header(k, v);
    }
    let session_builder = {
        let mut b = Session::builder(upstream.target())
            .name("soak")
            .init_timeout(timeout)
            .request_timeout(timeout);
        if let Some(t) = &args.token {
            b = b.bearer_token(t.clone());
        }
        for (k, v) in &args.headers {
            b = b.header(k.clone(), v.clone());
        }
        b
    };

    // One round trip first: an unreachable server or refused credentials is a setup failure
    // with its own exit code, not 607,000 failed calls.
    let preflight = if use_pool {
        match pool.acquire(request.clone()).await {
            Ok(s) => s.ping().await,
            Err(e) => Err(e),
        }
    } else {
        match session_builder.clone().connect().await {
            Ok(s) => {
                let r = s.ping().await;
                let _ = s.shutdown().await;
                r
            }
            Err(e) => Err(e),
        }
    };
    if let Err(e) = preflight
        && e.mcp_code() != Some(-32601)
    {
        eprintln!("mcp-harness soak: {e}");
        pool.close_all().await;
        stop_upstream(&upstream).await;
        return exit_code_for(&e);
    }

    let started = Instant::now();
    let tally = Arc::new(Tally {
        total,
        deadline: args.duration.map(|d| started + d),
        issued: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        cancelled: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        unexpected: AtomicU64::new(0),
        failures: Mutex::new(BTreeMap::new()),
        first_unexpected: Mutex::new(Vec::new()),
        shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
        chaos_windows: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let server_peaks: Arc<Mutex<HashMap<u32, u64>>> = Arc::default();
    let sample_server = {
        let upstream = upstream.clone();
        let peaks = server_peaks.clone();
        move || {
            if let Upstream::Spawned(s) = &*upstream {
                let pid = s.pid();
                if let Some(kib) = peak_rss_kib(Some(pid)) {
                    let mut p = peaks.lock().unwrap_or_else(|p| p.into_inner());
                    let e = p.entry(pid).or_default();
                    *e = (*e).max(kib);
                }
            }
        }
    };

    let (url, transport) = upstream.describe();
    if !args.json || std::io::stderr().is_terminal() {
        eprintln!(
            "mcp-harness soak: {} `{}` calls to {url} ({transport}) from {} clients, {}",
            match (total, args.duration) {
                (Some(n), _) => n.to_string(),
                (None, Some(d)) => format!("{d:?} of"),
                (None, None) => unreachable!("a total or a duration"),
            },
            args.tool,
            args.clients,
            if use_pool {
                format!("through the pool (max {} sessions)", args.max_sessions)
            } else {
                "one raw session per client".to_owned()
            },
        );
    }

    let progress = runtime::spawn(report_progress(
        tally.clone(),
        started,
        args.progress_every,
        sample_server.clone(),
    ));
    let chaos = match (args.chaos, args.every, &*upstream) {
        (Some(mode), Some(every), Upstream::Spawned(server)) => {
            let pause_for = args
                .pause_for
                .unwrap_or_else(|| (every / 2).min(Duration::from_secs(1)));
            Some(runtime::spawn(run_chaos(
                server.clone(),
                mode,
                every,
                pause_for,
                tally.clone(),
                sample_server.clone(),
            )))
        }
        _ => None,
    };

    let tool: Arc<str> = Arc::from(args.tool.as_str());
    let mut workers = Vec::with_capacity(args.clients);
    for worker in 0..args.clients {
        let tally = tally.clone();
        let tool = tool.clone();
        let arguments = arguments.clone();
        let cancel_rate = args.cancel_rate;
        if use_pool {
            let pool = pool.clone();
            let request = request.clone();
            workers.push(runtime::spawn(async move {
                while tally.next_call() {
                    let t0 = Instant::now();
                    // Boxed: the call's future is large, and it is moved into maybe_cancel.
                    let call = Box::pin(async {
                        match pool
                            .call_tool(request.clone(), &tool, arguments.clone())
                            .await
                        {
                            Ok(r) if r.is_error == Some(true) => {
                                CallOutcome::ToolError(crate::tool_text(&r))
                            }
                            Ok(_) => CallOutcome::Ok,
                            Err(e) => CallOutcome::Failed(e),
                        }
                    });
                    let outcome = maybe_cancel(cancel_rate, call).await;
                    let pause = backoff(&outcome);
                    account(&tally, worker, &tool, outcome, t0);
                    if let Some(d) = pause {
                        runtime::sleep(d).await;
                    }
                }
            }));
        } else {
            let builder = session_builder.clone().name(format!("soak-{worker}"));
            workers.push(runtime::spawn(async move {
                let mut session: Option<Session> = None;
                while tally.next_call() {
                    let t0 = Instant::now();
                    let s = match &session {
                        Some(s) => s.clone(),
                        None => match builder.clone().connect().await {
                            Ok(s) => {
                                session = Some(s.clone());
                                s
                            }
                            Err(e) => {
                                account(&tally, worker, &tool, CallOutcome::Failed(e), t0);
                                runtime::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        },
                    };
                    // Boxed: the call's future is large, and it is moved into maybe_cancel.
                    let call = Box::pin(async {
                        match s.call_tool(&tool, arguments.clone()).await {
                            Ok(r) if r.is_error == Some(true) => {
                                CallOutcome::ToolError(crate::tool_text(&r))
                            }
                            Ok(_) => CallOutcome::Ok,
                            Err(e) => CallOutcome::Failed(e),
                        }
                    });
                    let outcome = maybe_cancel(cancel_rate, call).await;
                    if let CallOutcome::Failed(e) = &outcome
                        && matches!(
                            e,
                            Error::Closed { .. }
                                | Error::Protocol { .. }
                                | Error::Unauthorized { .. }
                        )
                    {
                        // A broken session: open a fresh one for the next call.
                        if let Some(old) = session.take() {
                            let _ = old.shutdown().await;
                        }
                    }
                    let pause = backoff(&outcome);
                    account(&tally, worker, &tool, outcome, t0);
                    if let Some(d) = pause {
                        runtime::sleep(d).await;
                    }
                }
                if let Some(s) = session {
                    let _ = s.shutdown().await;
                }
            }));
        }
    }
    for w in workers {
        let _ = w.await;
    }
    let wall = started.elapsed();
    tally.stop.store(true, Ordering::Relaxed);
    if let Some(c) = chaos {
        let _ = c.await;
    }
    sample_server();
    let _ = progress.await;
    let pool_metrics = use_pool.then(|| pool.metrics());
    pool.close_all().await;
    stop_upstream(&upstream).await;

    let harness_rss = peak_rss_kib(None);
    let server_rss = server_peaks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .copied()
        .max();
    let report = Report {
        url,
        transport,
        spawned: matches!(&*upstream, Upstream::Spawned(_) | Upstream::Stdio(_)),
        tool: args.tool.clone(),
        clients: args.clients,
        pool: use_pool,
        max_sessions: args.max_sessions,
        cancel_rate: args.cancel_rate,
        chaos: args.chaos.map(|m| (m, args.every.unwrap_or_default())),
        chaos_events: tally
            .chaos_windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len(),
        wall,
        tally: &tally,
        pool_metrics,
        harness_rss,
        server_rss,
    };
    let code = if tally.unexpected.load(Ordering::Relaxed) > 0 {
        exit::FAILURES
    } else {
        exit::OK
    };
    if args.json {
        super::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.to_json(code)).expect("JSON values serialize")
        ));
    } else {
        report.print(code);
    }
    code
}

async fn stop_upstream(upstream: &Upstream) {
    if let Upstream::Spawned(s) = upstream {
        // A paused server ignores SIGTERM until it is resumed.
        let _ = s.resume();
        let _ = s.stop().await;
    }
}

/// Runs `call`, or with probability `rate` abandons it after a random delay under 1 ms.
async fn maybe_cancel(
    rate: f64,
    call: impl std::future::Future<Output = CallOutcome>,
) -> CallOutcome {
    if rate > 0.0 && fastrand::f64() < rate {
        let after = Duration::from_micros(fastrand::u64(0..1000));
        runtime::timeout(after, call)
            .await
            .unwrap_or(CallOutcome::Cancelled)
    } else {
        call.await
    }
}

/// How long a client waits after a failure before its next call, like a real client: an open
/// circuit or a refused connection fails in microseconds, and retrying at once would only spin.
fn backoff(outcome: &CallOutcome) -> Option<Duration> {
    match outcome {
        CallOutcome::Failed(Error::CircuitOpen { retry_in, .. }) => {
            Some((*retry_in).clamp(Duration::from_millis(10), Duration::from_millis(100)))
        }
        CallOutcome::Failed(_) => Some(Duration::from_millis(20)),
        _ => None,
    }
}

fn account(tally: &Tally, worker: usize, tool: &str, outcome: CallOutcome, t0: Instant) {
    let t1 = Instant::now();
    match outcome {
        CallOutcome::Ok => tally.record_ok(worker, t1 - t0),
        CallOutcome::Cancelled => {
            tally.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        CallOutcome::ToolError(text) => tally.record_failure(
            "tool_error",
            format!("tool `{tool}` returned isError: {text}"),
            t0,
            t1,
        ),
        CallOutcome::Failed(e) => tally.record_failure(error_kind(&e), e.to_string(), t0, t1),
    }
}

async fn run_chaos(
    server: Server,
    mode: Chaos,
    every: Duration,
    pause_for: Duration,
    tally: Arc<Tally>,
    sample_server: impl Fn(),
) {
    loop {
        // Wake often enough to notice the end of the run.
        let next = Instant::now() + every;
        while Instant::now() < next {
            if tally.stop.load(Ordering::Relaxed)
                || tally.deadline.is_some_and(|d| Instant::now() >= d)
            {
                return;
            }
            runtime::sleep((next - Instant::now()).min(Duration::from_millis(50))).await;
        }
        if tally.stop.load(Ordering::Relaxed) {
            return;
        }
        sample_server();
        let index = {
            let mut w = tally
                .chaos_windows
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            w.push((Instant::now(), None));
            w.len() - 1
        };
        let recovered = match mode {
            Chaos::Kill => {
                let _ = server.kill().await;
                let mut result = server.restart().await;
                for _ in 0..3 {
                    if result.is_ok() {
                        break;
                    }
                    runtime::sleep(Duration::from_millis(200)).await;
                    result = server.restart().await;
                }
                result
            }
            Chaos::Pause => {
                let paused = server.pause();
                runtime::sleep(pause_for).await;
                let resumed = server.resume();
                paused.and(resumed)
            }
        };
        tally
            .chaos_windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())[index]
            .1 = Some(Instant::now() + CHAOS_GRACE);
        if let Err(e) = recovered {
            eprintln!("mcp-harness soak: chaos could not bring the server back: {e}");
            let now = Instant::now();
            tally.record_failure("chaos_recovery", e.to_string(), now, now);
            tally.stop.store(true, Ordering::Relaxed);
            return;
        }
    }
}

/// Live progress: a bar on a terminal, a plain line every `every` otherwise (both on stderr).
async fn report_progress(
    tally: Arc<Tally>,
    started: Instant,
    every: Duration,
    sample_server: impl Fn(),
) {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = match (tally.total, tally.deadline) {
            (Some(n), _) => indicatif::ProgressBar::new(n),
            (None, Some(d)) => {
                indicatif::ProgressBar::new(d.saturating_duration_since(started).as_secs().max(1))
            }
            (None, None) => indicatif::ProgressBar::no_length(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} {pos}/{len} {msg} [{wide_bar}]",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let tick = if terminal {
        Duration::from_millis(250)
    } else {
        every.max(Duration::from_millis(100))
    };
    let mut last = (Instant::now(), 0u64);
    let mut rate_window: Vec<(Instant, u64)> = Vec::new();
    loop {
        let stop = tally.stop.load(Ordering::Relaxed);
        if !stop {
            // Sleep in short steps so that the end of the run is noticed at once.
            let until = Instant::now() + tick;
            while Instant::now() < until && !tally.stop.load(Ordering::Relaxed) {
                runtime::sleep((until - Instant::now()).min(Duration::from_millis(50))).await;
            }
        }
        sample_server();
        let now = Instant::now();
        let done = tally.done();
        rate_window.push((now, done));
        rate_window.retain(|(t, _)| now.duration_since(*t) <= Duration::from_secs(2));
        let (t_first, d_first) = rate_window[0];
        let rate = if now > t_first && done > d_first {
            (done - d_first) as f64 / now.duration_since(t_first).as_secs_f64()
        } else if now > last.0 {
            (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64()
        } else {
            0.0
        };
        last = (now, done);
        let p99 = tally.merged().value_at_quantile(0.99);
        let failed = tally.failed.load(Ordering::Relaxed);
        let unexpected = tally.unexpected.load(Ordering::Relaxed);
        let message = format!(
            "{rate:.0} calls/s, {failed} failures ({unexpected} unexpected), p99 {}",
            ms(Duration::from_micros(p99))
        );
        match &bar {
            Some(bar) => {
                match tally.total {
                    Some(_) => bar.set_position(done),
                    None => bar.set_position(started.elapsed().as_secs()),
                }
                bar.set_message(format!(
                    "{rate:.0}/s, {failed} failed ({unexpected} unexpected), p99 {}",
                    ms(Duration::from_micros(p99))
                ));
            }
            None if !stop => eprintln!(
                "soak: {:>6.1}s {done} calls, {message}",
                started.elapsed().as_secs_f64()
            ),
            None => {}
        }
        if stop {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return;
        }
    }
}

struct Report<'a> {
    url: String,
    transport: Transport,
    spawned: bool,
    tool: String,
    clients: usize,
    pool: bool,
    max_sessions: usize,
    cancel_rate: f64,
    chaos: Option<(Chaos, Duration)>,
    chaos_events: usize,
    wall: Duration,
    tally: &'a Tally,
    pool_metrics: Option<PoolMetrics>,
    harness_rss: Option<u64>,
    server_rss: Option<u64>,
}

impl Report<'_> {
    fn latency_ms(&self) -> (Histogram<u64>, [f64; 5]) {
        let h = self.tally.merged();
        let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let v = if h.is_empty() {
            [0.0; 5]
        } else {
            [
                q(0.5),
                q(0.9),
                q(0.99),
                h.max() as f64 / 1000.0,
                h.mean() / 1000.0,
            ]
        };
        (h, v)
    }

    fn failures_by_kind(&self, expected: bool) -> BTreeMap<&'static str, u64> {
        self.tally
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((_, e), _)| *e == expected)
            .map(|((k, _), n)| (*k, *n))
            .collect()
    }

    fn to_json(&self, code: u8) -> Value {
        let t = self.tally;
        let (_, [p50, p90, p99, max, mean]) = self.latency_ms();
        let calls = t.done();
        let failed = t.failed.load(Ordering::Relaxed);
        let unexpected = t.unexpected.load(Ordering::Relaxed);
        json!({
            "ok": code == exit::OK,
            "exit_code": code,
            "target": {"url": self.url, "transport": self.transport.as_str(), "spawned": self.spawned},
            "tool": self.tool,
            "clients": self.clients,
            "pool": self.pool,
            "max_sessions_per_key": self.pool.then_some(self.max_sessions),
            "cancel_rate": self.cancel_rate,
            "calls": calls,
            "succeeded": t.ok.load(Ordering::Relaxed),
            "cancelled": t.cancelled.load(Ordering::Relaxed),
            "failures": {
                "total": failed,
                "unexpected": unexpected,
                "expected": failed - unexpected,
                "by_kind": self.failures_by_kind(false),
                "expected_by_kind": self.failures_by_kind(true),
                "first_unexpected": *t.first_unexpected.lock().unwrap_or_else(|p| p.into_inner()),
            },
            "wall_time_s": self.wall.as_secs_f64(),
            "calls_per_s": calls as f64 / self.wall.as_secs_f64().max(1e-9),
            "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max, "mean": mean},
            "pool_metrics": self.pool_metrics.as_ref().map(|m| serde_json::to_value(m).unwrap_or(Value::Null)),
            "peak_rss_kb": {"harness": self.harness_rss, "server": self.server_rss},
            "chaos": self.chaos.map(|(mode, every)| json!({
                "mode": match mode { Chaos::Kill => "kill", Chaos::Pause => "pause" },
                "every_s": every.as_secs_f64(),
                "events": self.chaos_events,
            })),
        })
    }

    fn print(&self, code: u8) {
        let mut out = String::new();
        let t = self.tally;
        let (_, [p50, p90, p99, max, mean]) = self.latency_ms();
        let calls = t.done();
        let failed = t.failed.load(Ordering::Relaxed);
        let unexpected = t.unexpected.load(Ordering::Relaxed);
        let mb = |kib: Option<u64>| {
            kib.map_or("n/a".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0))
        };
        let _ = writeln!(
            out,
            "soak of `{}` on {} ({}{})",
            self.tool,
            self.url,
            self.transport,
            if self.spawned { ", spawned" } else { "" }
        );
        let _ = writeln!(
            out,
            "  clients          {} {}",
            self.clients,
            if self.pool {
                format!(
                    "through the pool (max {} sessions per key)",
                    self.max_sessions
                )
            } else {
                "with one raw session each".to_owned()
            }
        );
        let _ = writeln!(out, "  wall time        {:.1} s", self.wall.as_secs_f64());
        let _ = writeln!(
            out,
            "  calls            {calls} (succeeded {}, cancelled {})",
            t.ok.load(Ordering::Relaxed),
            t.cancelled.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "  calls/s          {:.0}",
            calls as f64 / self.wall.as_secs_f64().max(1e-9)
        );
        let _ = writeln!(
            out,
            "  failures         {unexpected} unexpected, {} expected (chaos)",
            failed - unexpected
        );
        for (expected, label) in [(false, "unexpected"), (true, "expected")] {
            for (kind, n) in self.failures_by_kind(expected) {
                let _ = writeln!(out, "    {label:<12} {kind:<18} {n}");
            }
        }
        let _ = writeln!(
            out,
            "  latency          p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms, mean {mean:.2} ms"
        );
        if let Some(m) = &self.pool_metrics {
            let _ = writeln!(
                out,
                "  pool             hits {}, misses {}, hit rate {:.2}%, evictions {}, live sessions {}, breaker trips {}, health-check failures {}",
                m.hits,
                m.misses,
                m.hit_rate * 100.0,
                m.evictions,
                m.total_active_sessions,
                m.circuit_breaker_trips,
                m.health_check_failures
            );
        }
        if let Some((mode, every)) = self.chaos {
            let _ = writeln!(
                out,
                "  chaos            {} every {every:?}: {} event(s)",
                match mode {
                    Chaos::Kill => "kill",
                    Chaos::Pause => "pause",
                },
                self.chaos_events
            );
        }
        let _ = writeln!(
            out,
            "  peak RSS         harness {}, server {}",
            mb(self.harness_rss),
            mb(self.server_rss)
        );
        let first = t.first_unexpected.lock().unwrap_or_else(|p| p.into_inner());
        for m in first.iter() {
            let _ = writeln!(out, "  first failures   {m}");
        }
        let _ = writeln!(
            out,
            "result           {}",
            if code == exit::OK {
                "ok"
            } else {
                "FAILED: unexpected failures"
            }
        );
        super::emit(&out);
    }
}
