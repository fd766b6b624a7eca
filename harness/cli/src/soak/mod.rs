//! `mcp-harness soak`: many concurrent clients calling a tool through the session pool (or raw
//! sessions) against a real server, with live progress, optional cancellation and chaos, and a
//! final report.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde_json::{Value, json};

mod chaos;
mod report;
mod tally;

use super::{TransportArg, exit, exit_code_for, parse_duration, parse_header, parse_json_args};
use mcp_harness::Error;
use mcp_harness::pool::AcquireRequest;
use mcp_harness::{Bundled, Server, ServerSpec, Session, SessionPool, Target, Transport};

use chaos::run_chaos;
use report::{Report, report_progress};
use tally::{CallOutcome, Tally, account, backoff, histogram, maybe_cancel, peak_rss_kib};

/// The reference gateway's validation run: this many calls...
const DEFAULT_CALLS: u64 = 607_000;
/// ...from this many concurrent clients.
const DEFAULT_CLIENTS: usize = 1000;
/// Sessions per pool key: the reference pool's default. Measured on 2 cores (1000 clients,
/// 100,000 echo calls): 4 to 100 sessions all run at 7,000-10,000 calls/s, 300 at 5,400 with
/// twice the memory; more sessions only add concurrent requests that share the same cores.
const DEFAULT_MAX_SESSIONS: usize = 10;
/// How long after a chaos event ends failures still count as caused by it.
pub(super) const CHAOS_GRACE: Duration = Duration::from_secs(2);
/// Histogram shards, so that 1000 clients do not contend on one lock.
pub(super) const SHARDS: usize = 16;

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
    /// Trust the CA certificates in this PEM file for https (beside the system's roots and
    /// SSL_CERT_FILE); repeatable.
    #[arg(long = "cacert", value_name = "FILE")]
    ca_files: Vec<std::path::PathBuf>,
    /// The bound on each request, acquire and session creation (default 30 s; 5 s with --chaos,
    /// so that a call lost with a killed server does not hold the end of the run).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// How often to print a progress line when stderr is not a terminal.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    progress_every: Duration,
    /// The protocol era of every session: auto, stateless, handshake, or a version such as
    /// 2026-07-28 or 2025-11-25 (default: handshake 2025-11-25, or MCP_HARNESS_PROTOCOL).
    #[arg(long, value_parser = crate::check::parse_protocol, value_name = "PROTOCOL")]
    protocol: Option<mcp_harness::Protocol>,
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

pub(super) fn run(args: SoakArgs) -> u8 {
    for file in &args.ca_files {
        if let Err(e) = mcp_harness::trust_ca_file(file) {
            eprintln!("mcp-harness soak: --cacert: {e}");
            return exit::USAGE;
        }
    }
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
    mcp_harness::run(soak(args))
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
    let mut pool = SessionPool::builder();
    if let Some(p) = &args.protocol {
        pool = pool.protocol(p.clone());
    }
    let pool = pool
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
        if let Some(p) = &args.protocol {
            b = b.protocol(p.clone());
        }
        b
    };

    // One round trip first: an unreachable server or refused credentials is a setup failure
    // with its own exit code, not 607,000 failed calls.
    // It also learns the protocol version the sessions speak, for the report.
    let mut protocol = None;
    let preflight = if use_pool {
        match pool.acquire(request.clone()).await {
            Ok(s) => {
                protocol = Some((s.protocol_version(), s.era()));
                s.ping().await
            }
            Err(e) => Err(e),
        }
    } else {
        match session_builder.clone().connect().await {
            Ok(s) => {
                protocol = Some((s.protocol_version(), s.era()));
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

    let progress = tokio::spawn(report_progress(
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
            Some(tokio::spawn(run_chaos(
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
            workers.push(tokio::spawn(async move {
                while tally.next_call() {
                    let t0 = Instant::now();
                    // Boxed: the call's future is large, and it is moved into maybe_cancel.
                    let call = Box::pin(async {
                        match pool
                            .call_tool(request.clone(), &tool, arguments.clone())
                            .await
                        {
                            Ok(r) if r.is_error == Some(true) => {
                                CallOutcome::ToolError(mcp_harness::tool_text(&r))
                            }
                            Ok(_) => CallOutcome::Ok,
                            Err(e) => CallOutcome::Failed(e),
                        }
                    });
                    let outcome = maybe_cancel(cancel_rate, call).await;
                    let pause = backoff(&outcome);
                    account(&tally, worker, &tool, outcome, t0);
                    if let Some(d) = pause {
                        tokio::time::sleep(d).await;
                    }
                }
            }));
        } else {
            let builder = session_builder.clone().name(format!("soak-{worker}"));
            workers.push(tokio::spawn(async move {
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
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        },
                    };
                    // Boxed: the call's future is large, and it is moved into maybe_cancel.
                    let call = Box::pin(async {
                        match s.call_tool(&tool, arguments.clone()).await {
                            Ok(r) if r.is_error == Some(true) => {
                                CallOutcome::ToolError(mcp_harness::tool_text(&r))
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
                        tokio::time::sleep(d).await;
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
        protocol,
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
