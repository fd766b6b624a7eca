//! The `mcp-harness` command line: `serve`, `check` and `soak` run as a real binary, their
//! output and their documented exit codes; bad input gets a clear message and its own code;
//! `check` against servers nobody here wrote (the official TypeScript and Python SDKs) over
//! stdio, streamable HTTP and SSE.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use mcp_harness::{AddressSource, Readiness, Server, ServerSpec, Transport};
use serde_json::Value;

/// The CLI binary (built by this package: see `tests/Cargo.toml`).
pub(crate) const CLI: &str = env!("CARGO_BIN_EXE_mcp-harness-cli");

// The documented exit codes.
const OK: i32 = 0;
const FAILURES: i32 = 1;
const USAGE: i32 = 2;
const UNREACHABLE: i32 = 3;
const AUTH: i32 = 4;
const PROTOCOL: i32 = 5;
const TOOL_ERROR: i32 = 6;

fn cli() -> Command {
    let mut c = Command::new(CLI);
    c.timeout(Duration::from_secs(60));
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    run_with(cli().args(args))
}

fn run_with(c: &mut Command) -> Run {
    // A temp folder of the run's own: a run that fails on purpose keeps its server logs (as it
    // should), and they go with the folder.
    let tmp = tempfile::tempdir().expect("a temp folder");
    let out = c.env("TMPDIR", tmp.path()).output().expect("the CLI runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// `mcp-harness serve` in the foreground; killed (SIGTERM, then SIGKILL) when dropped.
struct Serve {
    child: Child,
    url: String,
    ready: Value,
}

impl Serve {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Serve {
        // A network server: http unless the test names its transport.
        let transport: &[&str] = if args.contains(&"--transport") {
            &[]
        } else {
            &["--transport", "http"]
        };
        let mut child = StdCommand::new(CLI)
            .arg("serve")
            .args(args)
            .args(transport)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("serve prints a line");
        let ready: Value = serde_json::from_str(
            line.strip_prefix("MCP_HARNESS_READY ")
                .unwrap_or_else(|| panic!("not a READY line: {line:?}")),
        )
        .expect("the READY line carries JSON");
        let url = ready["url"].as_str().expect("a url").to_owned();
        Serve { child, url, ready }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.terminate();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Usage

#[test]
fn help_lists_every_subcommand_with_examples_and_exit_codes() {
    let r = run(&["--help"]).expect(OK);
    for word in ["serve", "check", "soak", "Examples:", "Exit codes"] {
        assert!(
            r.stdout.contains(word),
            "`{word}` missing from:\n{}",
            r.stdout
        );
    }
    for sub in ["serve", "check", "soak"] {
        let r = run(&[sub, "--help"]).expect(OK);
        assert!(
            r.stdout.contains("Exit codes"),
            "{sub} --help:\n{}",
            r.stdout
        );
    }
}

#[test]
fn unknown_transport_is_bad_usage() {
    let r = run(&[
        "check",
        "http://127.0.0.1:1/mcp",
        "--transport",
        "carrier-pigeon",
    ])
    .expect(USAGE);
    assert!(
        r.stderr.contains("carrier-pigeon") && r.stderr.contains("http"),
        "{}",
        r.stderr
    );
    run(&["soak", "--transport", "smoke-signals"]).expect(USAGE);
    run(&["serve", "fast-test", "--transport", "telegraph"]).expect(USAGE);
}

#[test]
fn malformed_json_arguments_are_bad_usage() {
    let r = run(&[
        "check",
        "http://127.0.0.1:1/mcp",
        "--call",
        "echo",
        "--args",
        "{text:",
    ])
    .expect(USAGE);
    assert!(r.stderr.contains("malformed JSON"), "{}", r.stderr);
    let r = run(&[
        "check",
        "http://127.0.0.1:1/mcp",
        "--call",
        "echo",
        "--args",
        "[1,2]",
    ])
    .expect(USAGE);
    assert!(r.stderr.contains("JSON object"), "{}", r.stderr);
    let r = run(&["soak", "--args", "nope"]).expect(USAGE);
    assert!(r.stderr.contains("malformed JSON"), "{}", r.stderr);
}

#[test]
fn check_without_a_target_is_bad_usage() {
    let r = run(&["check"]).expect(USAGE);
    assert!(r.stderr.contains("nothing to check"), "{}", r.stderr);
    let r = run(&["check", "localhost:4000"]).expect(USAGE);
    assert!(r.stderr.contains("not an http(s) url"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// serve

#[test]
fn serve_prints_one_ready_line_serves_and_stops_on_sigterm() {
    let mut s = Serve::start(&["fast-test", "--transport", "http"], &[]);
    assert_eq!(s.ready["transport"], "http");
    assert_eq!(s.ready["pid"], s.child.id());
    assert!(s.url.ends_with("/mcp"), "{}", s.url);
    let r = run(&[
        "check",
        &s.url,
        "--call",
        "echo",
        "--args",
        r#"{"text":"hi"}"#,
    ])
    .expect(OK);
    assert!(r.stdout.contains("echo: hi"), "{}", r.stdout);
    let status = s.terminate();
    assert_eq!(status.code(), Some(0), "serve exits 0 on SIGTERM");
}

#[test]
fn serve_over_sse_is_checked_over_sse() {
    let s = Serve::start(&["fast-time", "--transport", "sse"], &[]);
    assert_eq!(s.ready["transport"], "sse");
    assert!(s.url.ends_with("/sse"), "{}", s.url);
    let r = run(&["check", &s.url, "--transport", "sse", "--json"]).expect(OK);
    let tools = r.json()["tools"].to_string();
    assert!(tools.contains("get_system_time"), "{tools}");
}

#[test]
fn check_pins_the_protocol_era_and_reports_what_was_negotiated() {
    let s = Serve::start(&["fast-test", "--transport", "http"], &[]);
    for (protocol, version, era) in [
        ("2026-07-28", "2026-07-28", "stateless"),
        ("2025-06-18", "2025-06-18", "handshake"),
        ("auto", "2026-07-28", "stateless"),
    ] {
        let r = run(&["check", &s.url, "--protocol", protocol, "--json"]).expect(OK);
        let j = r.json();
        assert_eq!(j["protocol_version"], version, "{protocol}: {j}");
        assert_eq!(j["era"], era, "{protocol}: {j}");
    }
    // The environment variable switches the default.
    let r = run_with(
        cli()
            .args(["check", &s.url, "--json"])
            .env("MCP_HARNESS_PROTOCOL", "stateless"),
    )
    .expect(OK);
    assert_eq!(r.json()["era"], "stateless");
    let bad = run(&["check", &s.url, "--protocol", "2026-7-28"]).expect(USAGE);
    assert!(
        bad.stderr.contains("expected auto, stateless, handshake"),
        "{}",
        bad.stderr
    );
}

#[test]
fn check_answers_elicitation_and_sampling_as_told() {
    let server = format!("{CLI} serve conformance --transport stdio");
    let server: Vec<&str> = server.split(' ').collect();
    let mut args = vec![
        "check",
        "--json",
        "--elicit",
        r#"{"username":"bob","email":"bob@example.com"}"#,
        "--call",
        "test_elicitation",
        "--args",
        r#"{"message":"who?"}"#,
        "--",
    ];
    args.extend(&server);
    let text = run(&args).expect(OK).json()["call"]["text"].to_string();
    assert!(
        text.contains("action=accept") && text.contains("bob@example.com"),
        "{text}"
    );

    let mut args = vec![
        "check",
        "--json",
        "--sample",
        "42",
        "--call",
        "test_sampling",
        "--args",
        r#"{"prompt":"answer?"}"#,
        "--",
    ];
    args.extend(&server);
    assert_eq!(
        run(&args).expect(OK).json()["call"]["text"],
        "LLM response: 42"
    );
}

#[test]
fn serve_conformance_serves_the_conformance_suites_tools() {
    let s = Serve::start(&["conformance", "--transport", "http"], &[]);
    let r = run(&["check", &s.url, "--call", "test_simple_text"]).expect(OK);
    assert!(
        r.stdout
            .contains("This is a simple text response for testing."),
        "{}",
        r.stdout
    );
}

#[test]
fn serve_without_a_transport_speaks_only_json_rpc_on_stdio() {
    let mut child = StdCommand::new(CLI)
        .args(["serve", "fast-test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // The very first line on stdout is the answer: no READY line, no banner.
    let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(
        answer["result"]["serverInfo"]["name"], "fast-test",
        "{answer}"
    );
    drop(stdin); // EOF stops a stdio server
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_refuses_network_flags_for_a_stdio_server() {
    for flags in [
        &["--port", "4000"][..],
        &["--auth", "jwt"],
        &["--transport", "stdio", "--stateless"],
    ] {
        let mut args = vec!["serve", "fast-test"];
        args.extend(flags);
        let r = run(&args).expect(USAGE);
        assert!(
            r.stderr.contains("--transport http"),
            "{flags:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn serve_without_its_secret_could_not_start() {
    let r = run_with(
        cli()
            .args(["serve", "fast-test", "--transport", "http", "--auth", "jwt"])
            .env_remove("MCP_HARNESS_JWT_SECRET")
            .env_remove("MCP_HARNESS_JWT_PUBLIC_KEY"),
    )
    .expect(UNREACHABLE);
    assert!(r.stderr.contains("MCP_HARNESS_JWT_SECRET"), "{}", r.stderr);
    assert!(!r.stdout.contains("MCP_HARNESS_READY"), "{}", r.stdout);
}

// ---------------------------------------------------------------------------------------------
// check

#[test]
fn check_a_stdio_command_as_json() {
    let r = run(&[
        "check",
        "--json",
        "--call",
        "add",
        "--args",
        r#"{"a":2,"b":3}"#,
        "--read",
        "fast-test://readme",
        "--prompt",
        r#"greeting:{"name":"ada"}"#,
        "--",
        CLI,
        "serve",
        "fast-test",
        "--transport",
        "stdio",
    ])
    .expect(OK);
    let j = r.json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["transport"], "stdio");
    assert_eq!(j["server"]["name"], "fast-test");
    assert_eq!(j["call"]["text"], "5");
    assert_eq!(j["call"]["is_error"], false);
    let tools: Vec<&str> = j["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"echo"), "{tools:?}");
    assert_eq!(j["resources"][0]["uri"], "fast-test://readme");
    assert_eq!(j["prompts"][0]["name"], "greeting");
    assert_eq!(j["reads"][0]["uri"], "fast-test://readme");
    let readme = j["reads"][0]["result"]["contents"][0]["text"].to_string();
    assert!(readme.contains("fast-test"), "{readme}");
    assert_eq!(
        j["prompts_got"][0]["result"]["messages"][0]["content"]["text"],
        "Say hello to ada."
    );
    // The steps follow the era the session speaks (MCP_HARNESS_PROTOCOL may switch it): the
    // handshake era opens with initialize and pings, the stateless era discovers and has no ping.
    let (open, ping) = match j["era"].as_str() {
        Some("handshake") => ("initialize", "ok"),
        Some("stateless") => ("server/discover", "skipped"),
        other => panic!("unknown era {other:?}: {j}"),
    };
    assert_eq!(
        steps(&j),
        [
            (open.to_owned(), "ok".to_owned()),
            ("ping".into(), ping.into()),
            ("tools/list".into(), "ok".into()),
            ("resources/list".into(), "ok".into()),
            ("prompts/list".into(), "ok".into()),
            ("resources/read".into(), "ok".into()),
            ("prompts/get".into(), "ok".into()),
            ("tools/call".into(), "ok".into()),
        ]
    );
}

/// `(step, status)` of every step of a `check --json` report.
fn steps(j: &Value) -> Vec<(String, String)> {
    j["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or("?").to_owned(),
                s["status"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

#[test]
fn check_asks_only_for_what_the_server_advertises() {
    // fast-time advertises tools only: resources/list and prompts/list are not asked.
    let r = run(&[
        "check",
        "--json",
        "--protocol",
        "2025-11-25",
        "--",
        CLI,
        "serve",
        "fast-time",
        "--transport",
        "stdio",
    ])
    .expect(OK);
    let j = r.json();
    assert_eq!(
        steps(&j),
        [
            ("initialize".to_owned(), "ok".to_owned()),
            ("ping".into(), "ok".into()),
            ("tools/list".into(), "ok".into()),
            ("resources/list".into(), "skipped".into()),
            ("prompts/list".into(), "skipped".into()),
        ],
        "{j}"
    );
    assert_eq!(
        j["skipped"],
        serde_json::json!([
            {"step": "resources/list", "reason": "the server does not advertise resources"},
            {"step": "prompts/list", "reason": "the server does not advertise prompts"},
        ])
    );
    assert!(j["resources"].is_null() && j["prompts"].is_null(), "{j}");
    // The table says so too.
    let table = run(&[
        "check",
        "--protocol",
        "2025-11-25",
        "--",
        CLI,
        "serve",
        "fast-time",
        "--transport",
        "stdio",
    ])
    .expect(OK)
    .stdout;
    assert!(
        table.contains("skipped") && table.contains("the server does not advertise prompts"),
        "{table}"
    );

    // A read or a prompt the server cannot have is not asked for: a failed step, exit 5.
    let j = run(&[
        "check",
        "--json",
        "--read",
        "x://y",
        "--prompt",
        "hello",
        "--",
        CLI,
        "serve",
        "fast-time",
        "--transport",
        "stdio",
    ])
    .expect(PROTOCOL)
    .json();
    assert_eq!(j["error"]["kind"], "not_advertised", "{j}");
    assert_eq!(
        j["error"]["message"],
        "the server does not advertise resources; `x://y` was not read"
    );
    let failed: Vec<(String, String)> = steps(&j).into_iter().skip(5).collect();
    assert_eq!(
        failed,
        [
            ("resources/read".to_owned(), "failed".to_owned()),
            ("prompts/get".into(), "failed".into()),
        ],
        "{j}"
    );

    // ping does not exist in the stateless era: not sent, reported as skipped.
    let s = Serve::start(&["fast-test", "--transport", "http"], &[]);
    let j = run(&["check", &s.url, "--protocol", "2026-07-28", "--json"])
        .expect(OK)
        .json();
    assert_eq!(steps(&j)[0], ("server/discover".into(), "ok".into()), "{j}");
    assert_eq!(steps(&j)[1], ("ping".into(), "skipped".into()), "{j}");
    assert_eq!(
        j["skipped"][0]["reason"], "no ping in 2026-07-28 (the stateless era)",
        "{j}"
    );
}

#[test]
fn check_makes_several_calls_in_order_and_a_failed_one_does_not_stop_the_next() {
    let s = Serve::start(&["fast-test", "--transport", "http"], &[]);
    let r = run(&[
        "check",
        &s.url,
        "--json",
        "--call",
        r#"add:{"a":2,"b":3}"#,
        "--call",
        r#"error:{"code":-32000}"#,
        "--call",
        r#"fail:{"message":"boom"}"#,
        "--call",
        r#"echo:{"text":"still here"}"#,
    ])
    .expect(PROTOCOL);
    let j = r.json();
    let calls = j["calls"].as_array().expect("calls");
    let tools: Vec<&str> = calls.iter().filter_map(|c| c["tool"].as_str()).collect();
    assert_eq!(tools, ["add", "error", "fail", "echo"], "{j}");
    assert_eq!(calls[0]["text"], "5");
    assert_eq!(calls[1]["error"]["kind"], "jsonrpc_error");
    assert_eq!(calls[2]["is_error"], true);
    assert_eq!(calls[3]["text"], "still here");
    assert!(j["reads"] == serde_json::json!([]) && j["prompts_got"] == serde_json::json!([]));
    // The first failure decides the exit code and the error; `call` is the first call.
    assert_eq!(j["error"]["kind"], "jsonrpc_error");
    assert_eq!(j["call"]["tool"], "add");

    // --args belongs to a single --call TOOL.
    let r = run(&[
        "check", &s.url, "--call", "add", "--call", "echo", "--args", "{}",
    ])
    .expect(USAGE);
    assert!(r.stderr.contains("--call 'TOOL:{...}'"), "{}", r.stderr);
    run(&["check", &s.url, "--call", ":{}"]).expect(USAGE);
    run(&["check", &s.url, "--call", "add:{oops"]).expect(USAGE);
}

#[test]
fn check_tells_tool_errors_and_jsonrpc_errors_apart() {
    let s = Serve::start(&["fast-test", "--transport", "http"], &[]);
    let r = run(&[
        "check",
        &s.url,
        "--call",
        "fail",
        "--args",
        r#"{"message":"boom"}"#,
    ])
    .expect(TOOL_ERROR);
    assert!(r.stderr.contains("boom"), "{}", r.stderr);
    let r = run(&[
        "check",
        &s.url,
        "--json",
        "--call",
        "error",
        "--args",
        r#"{"code":-32000}"#,
    ])
    .expect(PROTOCOL);
    assert_eq!(r.json()["error"]["kind"], "jsonrpc_error");
}

#[test]
fn check_an_unreachable_url_is_unreachable() {
    let refused = crate::support::refused_port();
    let url = refused.url("/mcp");
    let r = run(&["check", &url, "--timeout", "2s"]).expect(UNREACHABLE);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    let r = run(&["check", &url, "--json", "--timeout", "2s"]).expect(UNREACHABLE);
    assert_eq!(r.json()["error"]["kind"], "connect");
}

#[test]
fn check_a_server_that_crashes_is_unreachable_with_its_stderr() {
    let r = run(&[
        "check",
        "--",
        "sh",
        "-c",
        "echo 'fatal: config missing' >&2; exit 7",
    ])
    .expect(UNREACHABLE);
    assert!(r.stderr.contains("config missing"), "{}", r.stderr);
    let r = run(&["check", "--", "/nonexistent/mcp-server"]).expect(UNREACHABLE);
    assert!(r.stderr.contains("/nonexistent/mcp-server"), "{}", r.stderr);
}

#[test]
fn check_refused_credentials_is_auth() {
    let env = [("MCP_HARNESS_BEARER_TOKENS", "good-token=alice")];
    let s = Serve::start(&["fast-test", "--auth", "bearer"], &env);
    let r = run(&["check", &s.url, "--token", "wrong-token"]).expect(AUTH);
    assert!(
        !r.stderr.contains("wrong-token"),
        "the token leaked: {}",
        r.stderr
    );
    run(&["check", &s.url]).expect(AUTH);
    run(&["check", &s.url, "--token", "good-token"]).expect(OK);
    run(&["check", &s.url, "-H", "Authorization: Bearer good-token"]).expect(OK);
}

#[test]
fn check_with_oauth_runs_the_flow_headless_and_names_the_step_that_failed() {
    let config = r#"{"user": "check-user", "clients": [{"client_id": "ci-client",
        "client_secret": "ci-secret-5d1", "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": ["http://127.0.0.1/callback"]}]}"#;
    let s = Serve::start(
        &["fast-test", "--auth", "oauth"],
        &[("MCP_HARNESS_OAUTH_CONFIG", config)],
    );
    let subject = |r: &Run| -> Value {
        let j: Value = serde_json::from_str(&r.stdout).expect("--json prints JSON");
        let who: Value = serde_json::from_str(j["call"]["text"].as_str().expect("whoami text"))
            .expect("whoami answers JSON");
        who["subject"].clone()
    };
    // No credentials: refused.
    run(&["check", &s.url]).expect(AUTH);
    // Dynamic registration.
    let r = run(&["check", &s.url, "--oauth", "--call", "whoami", "--json"]).expect(OK);
    assert_eq!(subject(&r), "check-user");
    // A pre-registered confidential client, its secret from the environment.
    let r = run_with(
        cli()
            .args(["check", &s.url, "--oauth-client-id", "ci-client"])
            .args(["--call", "whoami", "--json"])
            .env("MCP_HARNESS_OAUTH_CLIENT_SECRET", "ci-secret-5d1"),
    )
    .expect(OK);
    assert_eq!(subject(&r), "check-user");
    // A wrong secret fails at the token step, and the secret is not printed.
    let r = run(&[
        "check",
        &s.url,
        "--oauth-client-id",
        "ci-client",
        "--oauth-client-secret",
        "wrong-secret-77",
    ])
    .expect(AUTH);
    assert!(r.stderr.contains("token"), "{}", r.stderr);
    assert!(!r.stderr.contains("wrong-secret-77"), "{}", r.stderr);
    assert!(!r.stdout.contains("wrong-secret-77"), "{}", r.stdout);
    // A client the server does not know fails at the authorization step.
    let r = run(&["check", &s.url, "--oauth-client-id", "nobody"]).expect(AUTH);
    assert!(r.stderr.contains("authorization"), "{}", r.stderr);
    // --oauth and --token are one or the other.
    run(&["check", &s.url, "--oauth", "--token", "t"]).expect(USAGE);
    // Machine to machine: the client credentials grant, no callback; the token is the
    // client's own.
    let r = run_with(
        cli()
            .args(["check", &s.url, "--oauth-client-id", "ci-client"])
            .args(["--oauth-client-credentials", "--call", "whoami", "--json"])
            .env("MCP_HARNESS_OAUTH_CLIENT_SECRET", "ci-secret-5d1"),
    )
    .expect(OK);
    assert_eq!(subject(&r), "ci-client");
    // Without a secret or a key it is a usage error that says what to give.
    let r = run(&[
        "check",
        &s.url,
        "--oauth-client-id",
        "ci-client",
        "--oauth-client-credentials",
    ])
    .expect(USAGE);
    assert!(
        r.stderr.contains("--oauth-private-key-file"),
        "{}",
        r.stderr
    );
    // A key file that cannot be read is named.
    let r = run(&[
        "check",
        &s.url,
        "--oauth-client-id",
        "ci-client",
        "--oauth-private-key-file",
        "/no/such/key.pem",
    ])
    .expect(USAGE);
    assert!(r.stderr.contains("/no/such/key.pem"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// soak

#[test]
fn soak_through_the_pool_reports_as_json() {
    let r = run(&[
        "soak",
        "--clients",
        "8",
        "--calls",
        "300",
        "--max-sessions",
        "4",
        "--json",
    ])
    .expect(OK);
    let j = r.json();
    assert_eq!(j["calls"], 300);
    assert_eq!(j["succeeded"], 300);
    assert_eq!(j["failures"]["unexpected"], 0);
    assert_eq!(j["target"]["transport"], "streamable_http");
    for q in ["p50", "p90", "p99", "max"] {
        assert!(
            j["latency_ms"][q].as_f64().is_some_and(|v| v > 0.0),
            "{q}: {j}"
        );
    }
    let m = &j["pool_metrics"];
    assert_eq!(
        m["hits"].as_u64().unwrap() + m["misses"].as_u64().unwrap(),
        301,
        "{m}"
    );
    assert!(m["misses"].as_u64().unwrap() <= 4, "{m}");
    assert!(j["peak_rss_kb"]["harness"].as_u64().unwrap() > 0);
    assert!(j["peak_rss_kb"]["server"].as_u64().unwrap() > 0);
    assert!(j["calls_per_s"].as_f64().unwrap() > 0.0);
    // Progress goes to stderr as plain lines when it is not a terminal.
    assert!(r.stderr.contains("calls/s"), "{}", r.stderr);
}

#[rstest::rstest]
#[case::stateless_pool("2026-07-28", "--pool", "stateless")]
#[case::stateless_raw("2026-07-28", "--no-pool", "stateless")]
#[case::handshake_pool("2025-11-25", "--pool", "handshake")]
#[case::handshake_raw("2025-11-25", "--no-pool", "handshake")]
fn soak_speaks_the_era_it_is_told_and_reports_it(
    #[case] protocol: &str,
    #[case] pool: &str,
    #[case] era: &str,
) {
    let r = run(&[
        "soak",
        "--protocol",
        protocol,
        pool,
        "--clients",
        "4",
        "--calls",
        "100",
        "--json",
    ])
    .expect(OK);
    let j = r.json();
    assert_eq!(j["protocol_version"], protocol, "{j}");
    assert_eq!(j["era"], era);
    assert_eq!(j["succeeded"], 100, "{j}");
    assert_eq!(j["failures"]["total"], 0, "{j}");
}

#[test]
fn the_default_soak_discovers_the_era_through_the_pool() {
    // No --protocol and no MCP_HARNESS_PROTOCOL: the pool discovers the upstream's era, and
    // the bundled fast-test answers server/discover; raw sessions keep the session default.
    for (mode, era, version) in [
        ("--pool", "stateless", "2026-07-28"),
        ("--no-pool", "handshake", "2025-11-25"),
    ] {
        let r = run_with(
            cli()
                .args(["soak", mode, "--clients", "4", "--calls", "50", "--json"])
                .env_remove("MCP_HARNESS_PROTOCOL"),
        )
        .expect(OK);
        let j = r.json();
        assert_eq!(
            (j["era"].as_str(), j["protocol_version"].as_str()),
            (Some(era), Some(version)),
            "{mode}: {j}"
        );
        assert_eq!(j["failures"]["total"], 0, "{j}");
        if mode == "--pool" {
            assert_eq!(j["pool_metrics"]["era_discoveries"], 1, "{j}");
            assert_eq!(j["pool_metrics"]["eras"]["stateless"]["keys"], 1, "{j}");
        }
    }
}

#[test]
fn soak_with_raw_sessions_and_cancellation_has_no_unexpected_failure() {
    let r = run(&[
        "soak",
        "--no-pool",
        "--clients",
        "4",
        "--calls",
        "200",
        "--cancel-rate",
        "0.5",
        "--json",
    ])
    .expect(OK);
    let j = r.json();
    assert_eq!(j["pool"], false);
    assert_eq!(j["calls"], 200);
    assert_eq!(j["failures"]["total"], 0, "{j}");
    assert_eq!(
        j["succeeded"].as_u64().unwrap() + j["cancelled"].as_u64().unwrap(),
        200
    );
}

#[test]
fn soak_table_and_sse_transport() {
    let r = run(&[
        "soak",
        "--transport",
        "sse",
        "--clients",
        "4",
        "--calls",
        "100",
    ])
    .expect(OK);
    for word in ["calls/s", "p99", "peak RSS", "pool", "result           ok"] {
        assert!(r.stdout.contains(word), "`{word}` missing:\n{}", r.stdout);
    }
    // The calls went over legacy SSE: the bundled server spawned with `--transport sse` (its
    // url is the /sse endpoint), in the handshake era (the only one SSE has).
    let first = r.stdout.lines().next().unwrap_or("");
    assert!(first.ends_with("/sse (sse, spawned)"), "{first}");
    assert!(
        r.stdout
            .contains("protocol         2025-11-25 (handshake era)"),
        "{}",
        r.stdout
    );
}

#[test]
fn soak_chaos_kill_failures_are_expected_and_reported_apart() {
    let r = run(&[
        "soak",
        "--clients",
        "4",
        "--duration",
        "2s",
        "--chaos",
        "kill",
        "--every",
        "700ms",
        "--timeout",
        "3s",
        "--json",
    ])
    .expect(OK);
    let j = r.json();
    assert!(j["chaos"]["events"].as_u64().unwrap() >= 1, "{j}");
    assert_eq!(j["failures"]["unexpected"], 0, "{j}");
    assert!(j["succeeded"].as_u64().unwrap() > 0, "{j}");
}

#[test]
fn soak_chaos_pause_slows_calls_without_unexpected_failures() {
    let r = run(&[
        "soak",
        "--clients",
        "4",
        "--duration",
        "2s",
        "--chaos",
        "pause",
        "--every",
        "700ms",
        "--pause-for",
        "200ms",
        "--json",
    ])
    .expect(OK);
    let j = r.json();
    assert!(j["chaos"]["events"].as_u64().unwrap() >= 1, "{j}");
    assert_eq!(j["failures"]["unexpected"], 0, "{j}");
    assert!(j["latency_ms"]["max"].as_f64().unwrap() >= 100.0, "{j}");
}

#[test]
fn soak_tool_errors_are_unexpected_failures() {
    let r = run(&[
        "soak",
        "--clients",
        "2",
        "--calls",
        "10",
        "--tool",
        "fail",
        "--args",
        r#"{"message":"nope"}"#,
        "--json",
    ])
    .expect(FAILURES);
    let j = r.json();
    assert_eq!(j["failures"]["by_kind"]["tool_error"], 10, "{j}");
    assert_eq!(j["ok"], false);
}

#[test]
fn soak_an_unreachable_server_is_unreachable() {
    let refused = crate::support::refused_port();
    let url = refused.url("/mcp");
    let r =
        run(&["soak", "--server", &url, "--calls", "10", "--timeout", "2s"]).expect(UNREACHABLE);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    let r = run(&["soak", "--server", "ftp://example/mcp"]).expect(USAGE);
    assert!(r.stderr.contains("neither"), "{}", r.stderr);
}

#[test]
fn soak_a_running_server_and_a_stdio_command() {
    let s = Serve::start(&["fast-test", "--transport", "http"], &[]);
    let r = run(&[
        "soak",
        "--server",
        &s.url,
        "--clients",
        "4",
        "--calls",
        "100",
        "--tool",
        "add",
        "--args",
        r#"{"a":1,"b":2}"#,
        "--json",
    ])
    .expect(OK);
    assert_eq!(r.json()["target"]["spawned"], false);
    let r = run(&[
        "soak",
        "--clients",
        "2",
        "--calls",
        "40",
        "--max-sessions",
        "2",
        "--json",
        "--",
        CLI,
        "serve",
        "fast-test",
        "--transport",
        "stdio",
    ])
    .expect(OK);
    assert_eq!(r.json()["target"]["transport"], "stdio");
    let r = run(&[
        "soak", "--chaos", "kill", "--every", "1s", "--server", &s.url,
    ])
    .expect(USAGE);
    assert!(r.stderr.contains("--chaos"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// Servers nobody here wrote: the official Python and TypeScript SDKs.

/// Whether an external toolchain is present: like the transports suite, a missing one fails
/// with the install step (scripts/setup.sh installs both SDKs) rather than skipping silently.
fn available(what: &str, probe: &mut StdCommand) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{what} is not installed: run scripts/setup.sh");
    ok
}

fn python_sdk() -> bool {
    available(
        "the MCP Python SDK (pip install 'mcp>=2.3,<3')",
        StdCommand::new("python3").args(["-c", "import mcp"]),
    )
}

fn typescript_sdk() -> bool {
    available(
        "mcp-server-everything (npm install -g @modelcontextprotocol/server-everything)",
        StdCommand::new("sh").args(["-c", "command -v mcp-server-everything"]),
    )
}

fn python_fixture() -> String {
    format!("{}/fixtures/python_server.py", env!("CARGO_MANIFEST_DIR"))
}

/// Starts an external HTTP/SSE server and returns it (stopped when the last handle drops).
fn start_external(spec: ServerSpec) -> Server {
    mcp_harness::run(async move { Server::start(spec).await }).expect("the external server starts")
}

fn check_all(url_or_cmd: &[&str], call: &[&str]) -> Value {
    let mut args = vec!["check", "--json", "--timeout", "60s"];
    args.extend_from_slice(call);
    args.extend_from_slice(url_or_cmd);
    run(&args).expect(OK).json()
}

#[test]
fn check_the_python_sdk_over_stdio_http_and_sse() {
    if !python_sdk() {
        return;
    }
    let fixture = python_fixture();
    let call = ["--call", "add", "--args", r#"{"a":2,"b":3}"#];
    let j = check_all(&["--", "python3", &fixture, "stdio"], &call);
    assert_eq!(j["call"]["text"], "5", "{j}");
    assert_eq!(j["server"]["name"], "python-fixture");

    for (mode, transport) in [
        ("streamable-http", Transport::StreamableHttp),
        ("sse", Transport::Sse),
    ] {
        let server = start_external(
            ServerSpec::new(format!("python-{mode}"), "python3")
                .args([fixture.as_str(), mode, "{port}"])
                .transport(transport)
                .startup_timeout(Duration::from_secs(60)),
        );
        let flag = if transport == Transport::Sse {
            "sse"
        } else {
            "http"
        };
        let j = check_all(&[server.url(), "--transport", flag], &call);
        assert_eq!(j["call"]["text"], "5", "{mode}: {j}");
        assert_eq!(j["resources"][0]["uri"], "fixture://readme", "{mode}: {j}");
        // A tool that raises is a tool error, exit 6.
        run(&[
            "check",
            server.url(),
            "--transport",
            flag,
            "--call",
            "fail",
            "--args",
            r#"{"message":"x"}"#,
        ])
        .expect(TOOL_ERROR);
    }
}

#[test]
fn check_the_typescript_sdk_everything_server_over_stdio_http_and_sse() {
    if !typescript_sdk() {
        return;
    }
    // The everything server speaks the handshake era only: pinned, so that the suite's run in
    // the stateless era (MCP_HARNESS_PROTOCOL) still checks it.
    let call = [
        "--protocol",
        "2025-11-25",
        "--call",
        "get-sum",
        "--args",
        r#"{"a":2,"b":3}"#,
    ];
    let j = check_all(&["--", "mcp-server-everything"], &call);
    assert!(
        j["call"]["text"].as_str().unwrap_or("").contains('5'),
        "{j}"
    );
    assert!(j["tools"].as_array().is_some_and(|t| t.len() > 5), "{j}");

    for (mode, transport, path) in [
        ("streamableHttp", Transport::StreamableHttp, "/mcp"),
        ("sse", Transport::Sse, "/sse"),
    ] {
        // `{port}`: a free port the harness picks (and picks again if it is lost).
        let server = start_external(
            ServerSpec::new(format!("everything-{mode}"), "mcp-server-everything")
                .args([mode])
                .env("PORT", "{port}")
                .transport(transport)
                .address(AddressSource::Fixed(format!(
                    "http://127.0.0.1:{{port}}{path}"
                )))
                .readiness(Readiness::McpInitialize)
                .startup_timeout(Duration::from_secs(60)),
        );
        let flag = if transport == Transport::Sse {
            "sse"
        } else {
            "http"
        };
        let j = check_all(&[server.url(), "--transport", flag], &call);
        assert!(
            j["call"]["text"].as_str().unwrap_or("").contains('5'),
            "{mode}: {j}"
        );
        assert!(
            j["prompts"].as_array().is_some_and(|p| !p.is_empty()),
            "{mode}: {j}"
        );
    }
}

/// A call that times out is cancelled on the server even though `check` exits right after:
/// the pending `notifications/cancelled` is delivered before the session closes.
#[test]
fn check_timeouts_are_cancelled_on_the_server_before_the_cli_exits() {
    let s = Serve::start(&["fast-test", "--transport", "http"], &[]);
    const RUNS: u64 = 6;
    for _ in 0..RUNS {
        run(&[
            "check",
            &s.url,
            "--timeout",
            "300ms",
            "--call",
            r#"sleep:{"ms":5000}"#,
        ])
        .expect(PROTOCOL);
    }
    let stats = run(&["check", &s.url, "--call", "stats", "--json"])
        .expect(OK)
        .json();
    let text = stats["call"]["text"].as_str().unwrap_or("{}");
    let stats: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        stats["cancellations"], RUNS,
        "every timed-out call cancelled: {stats}"
    );

    // Over stdio the server's stdin closes right after: the cancellation is written first.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    for _ in 0..RUNS {
        run_with(
            cli()
                .args([
                    "check",
                    "--timeout",
                    "300ms",
                    "--call",
                    r#"sleep:{"ms":5000}"#,
                ])
                .args(["--", CLI, "serve", "fast-test", "--transport", "stdio"])
                .env("MCP_HARNESS_EVENT_LOG", &log),
        )
        .expect(PROTOCOL);
    }
    let events = std::fs::read_to_string(&log).unwrap_or_default();
    let cancelled = events
        .lines()
        .filter(|l| l.contains(r#""event":"cancelled""#))
        .count();
    assert_eq!(cancelled as u64, RUNS, "{events}");
}
