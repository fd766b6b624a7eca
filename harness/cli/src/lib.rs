//! The `mcp-harness` command line: `serve` a bundled server, `check` any MCP server, `soak` a
//! server with many concurrent clients.
//!
//! The binary is a one-line `main` over [`main`]; the logic lives here so that any binary that
//! links the harness (a test crate's helper binary, for instance) can offer the same commands.
//!
//! Exit codes (see [`exit`]): 0 ok; 1 the soak saw unexpected failures; 2 bad usage; 3 the server
//! is unreachable or could not start; 4 the credentials were refused; 5 a protocol error (a
//! JSON-RPC error, an unexpected answer, a timeout, the server went away); 6 a tool answered
//! with `isError: true`.

mod check;
mod serve;
mod soak;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use mcp_harness::Error;

/// The documented exit codes of the `mcp-harness` command line.
pub mod exit {
    /// Everything worked.
    pub const OK: u8 = 0;
    /// `soak` saw at least one failure that chaos does not explain.
    pub const FAILURES: u8 = 1;
    /// Bad usage: an unknown flag or transport, malformed JSON arguments, a bad header.
    pub const USAGE: u8 = 2;
    /// The server could not be reached or started (connection refused, command not found,
    /// exited early, not ready in time).
    pub const UNREACHABLE: u8 = 3;
    /// The server refused the credentials (HTTP 401/403, OAuth failure).
    pub const AUTH: u8 = 4;
    /// The server answered with a JSON-RPC error or something unexpected, stopped answering or
    /// went away mid-session.
    pub const PROTOCOL: u8 = 5;
    /// The tool call returned a result with `isError: true`.
    pub const TOOL_ERROR: u8 = 6;
}

const AFTER_HELP: &str = "\
Examples:
  mcp-harness serve fast-test --transport http --port 4000
  mcp-harness check http://127.0.0.1:4000/mcp --call echo --args '{\"text\":\"hi\"}'
  mcp-harness check --json -- npx -y @modelcontextprotocol/server-everything
  mcp-harness soak                                  # 607,000 echo calls, 1000 clients, bundled server
  mcp-harness soak --clients 50 --duration 30s --chaos kill --every 5s

Exit codes: 0 ok, 1 soak failures, 2 bad usage, 3 unreachable or could not start,
4 credentials refused, 5 protocol error, 6 tool error (isError).";

#[derive(Parser)]
#[command(
    name = "mcp-harness",
    version,
    about = "Test harness for MCP servers, clients and gateways",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a bundled test server until Ctrl-C or SIGTERM.
    ///
    /// Over HTTP and SSE it prints one machine-readable line on stdout once it accepts
    /// connections, `MCP_HARNESS_READY {"url":...,"port":...,"pid":...,"transport":...}`, and the
    /// address for humans on stderr. Secrets come from the environment: MCP_HARNESS_JWT_SECRET
    /// (--auth jwt), MCP_HARNESS_BEARER_TOKENS="token=subject,..." (--auth bearer).
    #[command(
        after_help = "Examples:\n  mcp-harness serve fast-test                                  # stdio, for an MCP client\n  mcp-harness serve fast-test --transport http --port 4000\n  mcp-harness serve fast-test --transport sse\n  mcp-harness serve fast-time --transport stdio\n  mcp-harness serve conformance --transport http --port 4000\n  MCP_HARNESS_JWT_SECRET=s3cret mcp-harness serve fast-test --auth jwt\n\nExit codes: 0 stopped cleanly, 2 bad usage, 3 the server could not start."
    )]
    Serve(serve::ServeArgs),
    /// Connect to any MCP server, ask for what it advertises (ping, tools, resources, prompts)
    /// and optionally call tools.
    ///
    /// The target is a url (streamable HTTP, or legacy SSE with --transport sse) or, after `--`,
    /// a command that speaks MCP on stdin/stdout. A list the server's capabilities do not name,
    /// and ping in the stateless era, are reported as skipped with the reason.
    #[command(
        after_help = "Examples:\n  mcp-harness check http://127.0.0.1:4000/mcp\n  mcp-harness check http://127.0.0.1:4000/sse --transport sse --token s3cret\n  mcp-harness check http://127.0.0.1:4000/mcp --oauth --call whoami\n  mcp-harness check http://127.0.0.1:4000/mcp --call 'add:{\"a\":1,\"b\":2}' --call whoami\n  mcp-harness check --call echo --args '{\"text\":\"hi\"}' -- npx -y @modelcontextprotocol/server-everything\n  mcp-harness check --json -- python3 server.py\n\nExit codes: 0 ok, 2 bad usage, 3 unreachable, 4 credentials refused, 5 protocol error,\n6 a tool call returned isError (the first failed call decides)."
    )]
    Check(check::CheckArgs),
    /// Drive many concurrent clients calling a tool through the session pool against a real
    /// server, with live progress and a final report.
    ///
    /// With no flags: spawn the bundled fast-test server over streamable HTTP and make 607,000
    /// `echo` calls from 1000 concurrent clients (the reference gateway's validation run).
    #[command(
        after_help = "Examples:\n  mcp-harness soak\n  mcp-harness soak --clients 100 --duration 1m --json\n  mcp-harness soak --server http://127.0.0.1:4000/mcp --tool add --args '{\"a\":1,\"b\":2}'\n  mcp-harness soak --clients 20 --calls 2000 --transport stdio -- python3 server.py\n  mcp-harness soak --duration 30s --chaos kill --every 5s\n\nExit codes: 0 no unexpected failure, 1 unexpected failures, 2 bad usage, 3 the server\ncould not be started or reached."
    )]
    Soak(soak::SoakArgs),
}

/// Transports on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    /// JSON-RPC over a child's stdin/stdout.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// Legacy HTTP+SSE (2024-11-05).
    Sse,
}

impl TransportArg {
    fn harness(self) -> mcp_harness::Transport {
        match self {
            TransportArg::Stdio => mcp_harness::Transport::Stdio,
            TransportArg::Http => mcp_harness::Transport::StreamableHttp,
            TransportArg::Sse => mcp_harness::Transport::Sse,
        }
    }
}

/// Runs the command line with the process's arguments and returns its exit code.
///
/// First serves a bundled server if this process was started as one (`serve --detach`
/// re-executes the binary that way).
pub fn main() -> ExitCode {
    mcp_harness_servers::serve_from_env_if_requested();
    run(std::env::args_os())
}

/// Runs the command line with `args` (the first is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let code = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Soak(args) => soak::run(args),
    };
    if code != exit::OK {
        // The servers' logs explain a failure: keep them (a clean run leaves nothing behind).
        mcp_harness::keep_logs();
    }
    ExitCode::from(code)
}

/// The exit code that tells what kind of failure `e` is.
fn exit_code_for(e: &Error) -> u8 {
    match e {
        Error::Spawn { .. }
        | Error::ExitedEarly { .. }
        | Error::NotReady { .. }
        | Error::Connect { .. }
        | Error::CircuitOpen { .. }
        | Error::CreateTimeout { .. }
        | Error::Process { .. } => exit::UNREACHABLE,
        Error::Unauthorized { .. } | Error::OAuth { .. } => exit::AUTH,
        Error::Invalid { .. } => exit::USAGE,
        _ => exit::PROTOCOL,
    }
}

/// Parses `250ms`, `30s`, `5m`, `1h` or a plain number of seconds (`1.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; use 250ms, 30s, 5m or 1h"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}`; use ms, s, m or h"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `Name: value` (or `Name=value`) into a header pair.
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .or_else(|| s.split_once('='))
        .ok_or_else(|| format!("`{s}` is not a header; use `Name: value`"))?;
    let (k, v) = (k.trim(), v.trim());
    http::HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| format!("`{k}` is not a valid header name"))?;
    http::HeaderValue::from_str(v)
        .map_err(|_| format!("the value of header `{k}` must be visible ASCII"))?;
    Ok((k.to_owned(), v.to_owned()))
}

/// Parses JSON tool arguments: an object, or `null` for none.
fn parse_json_args(s: &str) -> Result<serde_json::Value, String> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("malformed JSON `{s}`: {e}"))?;
    match v {
        serde_json::Value::Object(_) | serde_json::Value::Null => Ok(v),
        other => Err(format!(
            "tool arguments must be a JSON object (or null), got `{other}`"
        )),
    }
}

/// Writes a command's output on stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Formats a duration as milliseconds with a sensible precision.
fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 1000.0 {
        format!("{m:.1} ms")
    } else {
        format!("{:.2} s", m / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn headers_and_json_arguments_parse() {
        assert_eq!(
            parse_header("X-Tenant-Id: acme"),
            Ok(("X-Tenant-Id".into(), "acme".into()))
        );
        assert!(parse_header("no separator").is_err());
        assert!(parse_json_args(r#"{"text":"hi"}"#).is_ok());
        assert!(parse_json_args("[1]").is_err());
        assert!(parse_json_args("{oops").is_err());
    }
}
