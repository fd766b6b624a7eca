//! The `mcp-harness` command line: run a bundled MCP server for CI pipelines and terminals.
//!
//! Exit codes: 0 success; 2 bad usage or configuration; 3 the server could not start.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "mcp-harness",
    version,
    about = "Test harness for MCP servers, clients and gateways",
    after_help = "Examples:\n  mcp-harness serve fast-test --transport http --port 4000\n  mcp-harness serve fast-time --transport stdio\n  MCP_HARNESS_JWT_SECRET=s3cret mcp-harness serve fast-test --auth jwt\n\nExit codes: 0 ok, 2 bad usage, 3 the server could not start."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a bundled test server until Ctrl-C or SIGTERM.
    ///
    /// Over HTTP it prints one machine-readable line on stdout once it accepts connections:
    /// `MCP_HARNESS_READY {"url":...,"port":...,"pid":...}`. Secrets come from the environment:
    /// MCP_HARNESS_JWT_SECRET (--auth jwt), MCP_HARNESS_BEARER_TOKENS="token=subject,..." (--auth bearer).
    Serve(ServeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ServerArg {
    FastTest,
    FastTime,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Stdio,
    Http,
    Sse,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthArg {
    None,
    Bearer,
    Jwt,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Which bundled server.
    server: ServerArg,
    /// Transport to serve.
    #[arg(long, value_enum, default_value = "http")]
    transport: TransportArg,
    /// Address to bind (HTTP).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to bind (HTTP); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Credential check (HTTP).
    #[arg(long, value_enum, default_value = "none")]
    auth: AuthArg,
    /// Serve streamable HTTP without sessions.
    #[arg(long)]
    stateless: bool,
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

fn main() -> ExitCode {
    // `serve --detach` re-executes this binary as the server it starts.
    mcp_harness_servers::serve_from_env_if_requested();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) if args.detach => detach(args),
        Command::Serve(args) => serve(args),
    }
}

fn options(args: &ServeArgs) -> mcp_harness_servers::ServeOptions {
    use mcp_harness_servers as s;
    let kind = match args.server {
        ServerArg::FastTest => s::Bundled::FastTest,
        ServerArg::FastTime => s::Bundled::FastTime,
    };
    let transport = match args.transport {
        TransportArg::Stdio => s::Transport::Stdio,
        TransportArg::Http => s::Transport::Http,
        TransportArg::Sse => s::Transport::Sse,
    };
    let mut opts = s::ServeOptions::new(kind, transport);
    opts.host = args.host;
    opts.port = args.port;
    opts.stateless = args.stateless;
    opts.watch_pid = args.watch_pid;
    opts.port_file = args.port_file.clone();
    opts.auth = match args.auth {
        AuthArg::None => s::AuthMode::None,
        AuthArg::Bearer => s::AuthMode::Bearer,
        AuthArg::Jwt => s::AuthMode::Jwt,
    };
    opts
}

fn serve(args: ServeArgs) -> ExitCode {
    match mcp_harness_servers::serve(options(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-harness serve: {e}");
            ExitCode::from(3)
        }
    }
}

/// Re-runs `serve` in the background in its own process group (so it survives this process and
/// the terminal), waits for its port file, reports the url and exits.
fn detach(args: ServeArgs) -> ExitCode {
    let dir = std::env::temp_dir().join("mcp-harness-serve");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("mcp-harness serve: cannot create {}: {e}", dir.display());
        return ExitCode::from(3);
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
            return ExitCode::from(3);
        }
    };
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("mcp-harness serve: cannot find my own executable");
        return ExitCode::from(3);
    };
    let mut opts = options(&args);
    opts.port_file = Some(port_file.clone());
    let json = serde_json::to_string(&opts).expect("ServeOptions always serializes");
    let mut cmd = std::process::Command::new(exe);
    use std::os::unix::process::CommandExt as _;
    cmd.env(mcp_harness_servers::SERVE_ENV, json)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("a file handle clones")))
        .stderr(Stdio::from(log))
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-harness serve: cannot start the server: {e}");
            return ExitCode::from(3);
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
            return ExitCode::from(3);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            eprintln!(
                "mcp-harness serve: the server did not listen within 30 s (log: {})",
                log_file.display()
            );
            return ExitCode::from(3);
        }
        // No portable change notification for a file written by another process: poll briefly.
        std::thread::sleep(Duration::from_millis(10));
    };
    let url = format!("http://{}:{port}/mcp", opts.host);
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
            return ExitCode::from(3);
        }
    }
    println!("{url}");
    eprintln!(
        "mcp-harness serve: pid {} serving {url} (log: {})",
        child.id(),
        log_file.display()
    );
    ExitCode::SUCCESS
}
