//! `mcp-harness serve`: run a bundled server in the foreground (or detached).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use mcp_harness_servers as servers;
use tokio_util::sync::CancellationToken;

use super::exit;

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum ServerArg {
    FastTest,
    FastTime,
    Conformance,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ServeTransport {
    Stdio,
    Http,
    Sse,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum AuthArg {
    None,
    Bearer,
    Jwt,
    #[value(name = "oauth")]
    OAuth,
}

#[derive(clap::Args)]
pub(super) struct ServeArgs {
    /// Which bundled server.
    server: ServerArg,
    /// Transport to serve. Without it: stdio (JSON-RPC on stdin/stdout, nothing else written
    /// there), as MCP servers started as commands do; with --detach: http.
    #[arg(long, value_enum)]
    transport: Option<ServeTransport>,
    /// Address to bind (HTTP, SSE).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to bind (HTTP, SSE); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Credential check (HTTP, SSE).
    #[arg(long, value_enum, default_value = "none")]
    auth: AuthArg,
    /// Serve streamable HTTP without sessions.
    #[arg(long)]
    stateless: bool,
    /// Serve https with this certificate (PEM; the server's first, then intermediates).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Exit when this process id is gone (servers shared by a test run watch the runner).
    #[arg(long)]
    watch_pid: Option<u32>,
    /// Write the bound port to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Start the server in the background, wait until it listens, print its url and exit.
    #[arg(long, requires = "watch_pid")]
    detach: bool,
    /// With --detach: append `VAR=url` to this file (for example "$NEXTEST_ENV").
    #[arg(long, requires = "detach")]
    env_file: Option<PathBuf>,
    /// With --env-file: the variable name to write.
    #[arg(long, requires = "env_file", default_value = "MCP_HARNESS_URL")]
    env_var: String,
    /// With --detach: where the server's output goes (default: a file in the temp dir).
    #[arg(long, requires = "detach")]
    log_file: Option<PathBuf>,
}

pub(super) fn run(mut args: ServeArgs) -> u8 {
    let transport = *args.transport.get_or_insert(if args.detach {
        ServeTransport::Http
    } else {
        ServeTransport::Stdio
    });
    if transport == ServeTransport::Stdio
        && let Some(flag) = network_only_flag(&args)
    {
        eprintln!(
            "mcp-harness serve: {flag} applies to a network server, and this one speaks stdio; \
                 add `--transport http` (or sse) to serve over the network"
        );
        return exit::USAGE;
    }
    if args.detach {
        return detach(args);
    }
    match transport {
        ServeTransport::Stdio => serve_stdio(args),
        ServeTransport::Http | ServeTransport::Sse => serve_network(args),
    }
}

/// The first flag given that only a network server uses.
fn network_only_flag(args: &ServeArgs) -> Option<&'static str> {
    [
        (args.port != 0, "--port"),
        (args.port_file.is_some(), "--port-file"),
        (!matches!(args.auth, AuthArg::None), "--auth"),
        (args.stateless, "--stateless"),
        (args.tls_cert.is_some(), "--tls-cert"),
        (args.detach, "--detach"),
        (
            args.host != std::net::IpAddr::from([127, 0, 0, 1]),
            "--host",
        ),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

fn options(args: &ServeArgs) -> servers::ServeOptions {
    let kind = match args.server {
        ServerArg::FastTest => servers::Bundled::FastTest,
        ServerArg::FastTime => servers::Bundled::FastTime,
        ServerArg::Conformance => servers::Bundled::Conformance,
    };
    let transport = match args.transport.unwrap_or(ServeTransport::Stdio) {
        ServeTransport::Stdio => servers::Transport::Stdio,
        ServeTransport::Http => servers::Transport::Http,
        ServeTransport::Sse => servers::Transport::Sse,
    };
    let mut opts = servers::ServeOptions::new(kind, transport);
    opts.host = args.host;
    opts.port = args.port;
    opts.stateless = args.stateless;
    opts.watch_pid = args.watch_pid;
    opts.port_file = args.port_file.clone();
    opts.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(servers::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    opts.auth = match args.auth {
        AuthArg::None => servers::AuthMode::None,
        AuthArg::Bearer => servers::AuthMode::Bearer,
        AuthArg::Jwt => servers::AuthMode::Jwt,
        AuthArg::OAuth => servers::AuthMode::OAuth,
    };
    opts
}

/// The endpoint path clients connect to.
fn endpoint(opts: &servers::ServeOptions) -> &str {
    match opts.transport {
        servers::Transport::Sse => "/sse",
        _ => opts.path.as_str(),
    }
}

fn url_for(opts: &servers::ServeOptions, addr: std::net::SocketAddr) -> String {
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{addr}{}", endpoint(opts))
}

fn serve_stdio(args: ServeArgs) -> u8 {
    let opts = options(&args);
    eprintln!(
        "mcp-harness serve: {} on stdio (JSON-RPC on stdin/stdout); stops at stdin EOF, Ctrl-C or SIGTERM",
        opts.server
    );
    match servers::serve(opts) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("mcp-harness serve: {e}");
            exit::UNREACHABLE
        }
    }
}

/// Serves HTTP or SSE in the foreground: binds, prints the READY line on stdout and the address
/// on stderr, serves until SIGINT, SIGTERM or the watched pid's exit.
fn serve_network(args: ServeArgs) -> u8 {
    let opts = options(&args);
    // Like the bundled servers: rmcp logs every JSON-RPC error response at WARN, and the
    // `error` tool makes those routine.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rmcp::service=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if let Some(pid) = opts.watch_pid
        && (pid == 0 || i32::try_from(pid).is_err())
    {
        eprintln!("mcp-harness serve: --watch-pid {pid} is not a process id");
        return exit::USAGE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(1, 4),
        )
        .thread_name("mcp-harness-server")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-harness serve: cannot build a tokio runtime: {e}");
            return exit::UNREACHABLE;
        }
    };
    let code = runtime.block_on(serve_network_async(opts));
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

async fn serve_on(
    listener: tokio::net::TcpListener,
    opts: servers::ServeOptions,
    shutdown: CancellationToken,
) -> Result<(), servers::ServeError> {
    if opts.transport == servers::Transport::Sse {
        servers::serve_sse_on(listener, opts, shutdown).await
    } else {
        servers::serve_http_on(listener, opts, shutdown).await
    }
}

async fn serve_network_async(opts: servers::ServeOptions) -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("mcp-harness serve: cannot install the SIGTERM/SIGINT handlers");
        return exit::UNREACHABLE;
    };
    // Check the options and the auth secrets before announcing anything: serving them on a
    // throwaway listener with shutdown already requested returns at once with any error.
    let probe = match tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mcp-harness serve: cannot bind a local port: {e}");
            return exit::UNREACHABLE;
        }
    };
    let stopped = CancellationToken::new();
    stopped.cancel();
    if let Err(e) = serve_on(probe, opts.clone(), stopped).await {
        eprintln!("mcp-harness serve: {e}");
        return exit::UNREACHABLE;
    }
    let wanted = std::net::SocketAddr::new(opts.host, opts.port);
    let listener = match tokio::net::TcpListener::bind(wanted).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mcp-harness serve: cannot listen on {wanted}: {e}");
            return exit::UNREACHABLE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mcp-harness serve: cannot read the bound address: {e}");
            return exit::UNREACHABLE;
        }
    };
    if let Some(path) = &opts.port_file
        && let Err(e) = write_port_file(path, addr.port())
    {
        eprintln!(
            "mcp-harness serve: cannot write the port file {}: {e}",
            path.display()
        );
        return exit::UNREACHABLE;
    }
    let url = url_for(&opts, addr);
    let ready = serde_json::json!({
        "url": url,
        "port": addr.port(),
        "pid": std::process::id(),
        "transport": opts.transport.as_str(),
    });
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}{ready}", servers::READY_PREFIX).and_then(|()| stdout.flush());
    }
    let transport = match opts.transport {
        servers::Transport::Sse => "legacy HTTP+SSE",
        _ if opts.stateless => "streamable HTTP, stateless",
        _ => "streamable HTTP",
    };
    eprintln!(
        "mcp-harness serve: {} listening on {url} ({transport}, auth {}); Ctrl-C to stop",
        opts.server, opts.auth
    );
    let shutdown = CancellationToken::new();
    let watch_pid = opts.watch_pid;
    let stopper = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let watch = async {
                match watch_pid {
                    Some(pid) => loop {
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        if !servers::pid_alive(pid) {
                            return;
                        }
                    },
                    None => std::future::pending().await,
                }
            };
            let reason = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                () = watch => "the watched process exited",
            };
            shutdown.cancel();
            reason
        })
    };
    let result = serve_on(listener, opts, shutdown.clone()).await;
    let reason = if shutdown.is_cancelled() {
        stopper.await.unwrap_or("stopped")
    } else {
        stopper.abort();
        "the server stopped"
    };
    match result {
        Ok(()) => {
            eprintln!("mcp-harness serve: stopped ({reason})");
            exit::OK
        }
        Err(e) => {
            eprintln!("mcp-harness serve: {e}");
            exit::UNREACHABLE
        }
    }
}

/// Writes `port` to `path` atomically (a temporary file, then a rename).
fn write_port_file(path: &std::path::Path, port: u16) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{port}\n")).and_then(|()| std::fs::rename(&tmp, path))
}

/// Re-runs `serve` in the background in its own process group (so it survives this process and
/// the terminal), waits for its port file, reports the url and exits.
fn detach(args: ServeArgs) -> u8 {
    let dir = std::env::temp_dir().join("mcp-harness-serve");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("mcp-harness serve: cannot create {}: {e}", dir.display());
        return exit::UNREACHABLE;
    }
    let tag = format!("{}-{}", std::process::id(), args.port);
    let port_file = dir.join(format!("{tag}.port"));
    let log_file = args
        .log_file
        .clone()
        .unwrap_or_else(|| dir.join(format!("{tag}.log")));
    let _ = std::fs::remove_file(&port_file);
    let log = match std::fs::File::create(&log_file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "mcp-harness serve: cannot create log file {}: {e}",
                log_file.display()
            );
            return exit::UNREACHABLE;
        }
    };
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("mcp-harness serve: cannot find my own executable");
        return exit::UNREACHABLE;
    };
    let mut opts = options(&args);
    opts.port_file = Some(port_file.clone());
    let json = serde_json::to_string(&opts).expect("ServeOptions always serializes");
    let mut cmd = std::process::Command::new(exe);
    use std::os::unix::process::CommandExt as _;
    cmd.env(servers::SERVE_ENV, json)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("a file handle clones")))
        .stderr(Stdio::from(log))
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-harness serve: cannot start the server: {e}");
            return exit::UNREACHABLE;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Ok(s) = std::fs::read_to_string(&port_file)
            && let Ok(p) = s.trim().parse::<u16>()
        {
            break p;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            eprintln!(
                "mcp-harness serve: the server exited with {status} before listening:\n{log}"
            );
            return exit::UNREACHABLE;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            eprintln!(
                "mcp-harness serve: the server did not listen within 30 s (log: {})",
                log_file.display()
            );
            return exit::UNREACHABLE;
        }
        // No portable change notification for a file written by another process: poll briefly.
        std::thread::sleep(Duration::from_millis(10));
    };
    // The port file was only the handshake with the background server.
    let _ = std::fs::remove_file(&port_file);
    let url = url_for(&opts, std::net::SocketAddr::new(opts.host, port));
    if let Some(env_file) = &args.env_file {
        let line = format!("{}={url}\n", args.env_var);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(env_file)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "mcp-harness serve: cannot write {}: {e}",
                env_file.display()
            );
            return exit::UNREACHABLE;
        }
    }
    println!("{url}");
    eprintln!(
        "mcp-harness serve: pid {} serving {url} (log: {})",
        child.id(),
        log_file.display()
    );
    exit::OK
}
