//! Real server processes under faults: kill, pause, restart, early exit, never ready.

use std::time::{Duration, Instant};

use mcp_harness::{Error, Server, ServerSpec, Session, Target, Transport};
use serde_json::json;

use crate::support::{call_text, fast_test_http as http_server, pid_alive};

#[tokio::test]
async fn killed_server_gives_a_typed_error_naming_the_cause_and_restart_recovers() {
    let server = http_server().await;
    let url = server.url().to_owned();
    let s = Session::builder(&server)
        .name("victim")
        .connect()
        .await
        .unwrap();
    assert_eq!(
        call_text(&s, "echo", json!({"text": "before"})).await,
        "before"
    );

    let old_pid = server.pid();
    server.kill().await.unwrap();
    assert!(!pid_alive(old_pid));
    let err = s
        .call_tool("echo", json!({"text": "during"}))
        .await
        .expect_err("the server is dead");
    assert!(
        matches!(err, Error::Closed { .. }),
        "expected Closed, got {err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("SIGKILL") && msg.contains(&old_pid.to_string()),
        "the cause is named: {msg}"
    );

    server.restart().await.unwrap();
    assert_eq!(server.url(), url, "restart keeps the address");
    assert_ne!(server.pid(), old_pid);
    s.reconnect().await.unwrap();
    assert_eq!(
        call_text(&s, "echo", json!({"text": "after"})).await,
        "after"
    );
}

#[tokio::test]
async fn paused_server_times_out_with_a_typed_error_and_resume_recovers() {
    let server = http_server().await;
    let s = Session::builder(&server)
        .name("patient")
        .request_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    server.pause().unwrap();
    let err = s
        .call_tool("echo", json!({"text": "frozen"}))
        .await
        .expect_err("paused");
    assert!(
        matches!(err, Error::Timeout { .. }),
        "expected Timeout, got {err:?}"
    );
    assert!(err.to_string().contains("paused (SIGSTOP)"), "{err}");
    server.resume().unwrap();
    // The thawed server works through its backlog first: give this call room.
    let patient = s.with_request_timeout(Duration::from_secs(30));
    assert_eq!(
        call_text(&patient, "echo", json!({"text": "thawed"})).await,
        "thawed"
    );
}

#[tokio::test]
async fn server_that_exits_at_once_fails_fast_with_its_stderr_tail() {
    let deadline = Duration::from_secs(10);
    let spec = ServerSpec::new("crasher", "sh")
        .args(["-c", "echo 'fatal: cannot open database' >&2; exit 3"])
        .transport(Transport::StreamableHttp)
        .startup_timeout(deadline);
    let started = Instant::now();
    let err = Server::start(spec).await.expect_err("it exits");
    assert!(
        started.elapsed() < deadline,
        "must fail before the deadline"
    );
    match &err {
        Error::ExitedEarly {
            status, log_tail, ..
        } => {
            assert_eq!(status, "exit status 3");
            assert!(
                log_tail.contains("fatal: cannot open database"),
                "{log_tail}"
            );
        }
        other => panic!("expected ExitedEarly, got {other:?}"),
    }
    assert!(err.to_string().contains("fatal: cannot open database"));
}

#[tokio::test]
async fn stdio_server_that_exits_at_once_fails_with_its_stderr_tail() {
    let spec =
        ServerSpec::new("broken-stdio", "sh").args(["-c", "echo 'missing API key' >&2; exit 1"]);
    let err = Session::builder(Target::Stdio(spec))
        .connect()
        .await
        .expect_err("it exits");
    let msg = err.to_string();
    assert!(
        matches!(err, Error::ExitedEarly { .. } | Error::Connect { .. }),
        "{err:?}"
    );
    assert!(msg.contains("missing API key"), "{msg}");
}

#[tokio::test]
async fn server_that_never_becomes_ready_fails_at_the_deadline() {
    let spec = ServerSpec::new("silent", "sh")
        .args(["-c", "echo 'warming up' >&2; exec sleep 60"])
        .transport(Transport::StreamableHttp)
        .startup_timeout(Duration::from_millis(1500));
    let started = Instant::now();
    let err = Server::start(spec).await.expect_err("never ready");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "failed before the deadline: {waited:?}"
    );
    match &err {
        Error::NotReady {
            after, log_tail, ..
        } => {
            assert_eq!(*after, Duration::from_millis(1500));
            assert!(log_tail.contains("warming up"), "{log_tail}");
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_program_gives_a_spawn_error() {
    let spec =
        ServerSpec::new("ghost", "/nonexistent/mcp-server").transport(Transport::StreamableHttp);
    let err = Server::start(spec).await.expect_err("no such program");
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/mcp-server"));
}

#[tokio::test]
async fn refused_connection_is_retried_then_reported_with_attempts() {
    // A port held and never listening: every connection is refused.
    let refused = crate::support::refused_port();
    let url = refused.url("/mcp");
    let err = Session::builder(Target::Http(url.clone()))
        .connect_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .connect()
        .await
        .expect_err("nobody listens");
    match &err {
        Error::Connect {
            target, attempts, ..
        } => {
            assert_eq!(target, &url);
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refusal_is_tried_once_of_five_attempts_counted_by_the_listener() {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let initializes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = initializes.clone();
    let server = tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let counted = counted.clone();
            tokio::spawn(async move {
                while let Some(request) = crate::support::read_http_request(&mut conn).await {
                    // The opening request of either era (not the diagnosis that follows).
                    if request.contains("\"initialize\"") || request.contains("\"server/discover\"")
                    {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\
                              Content-Length: 0\r\n\r\n",
                        )
                        .await;
                }
            });
        }
    });
    let err = Session::builder(Target::Http(url))
        .bearer_token("not-accepted-here")
        .connect_attempts(5)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .connect()
        .await
        .expect_err("every request is refused");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        initializes.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one opening request of five attempts allowed: a refusal is not retried"
    );
    server.abort();
}

#[tokio::test]
async fn a_silent_server_is_tried_again_timeout_timeout_success_counted_by_the_listener() {
    // The first two connections get their opening request, then silence; the third passes
    // through to a real server.
    let real = http_server().await;
    let front = crate::support::SilentFront::start(real.url(), 2).await;
    let s = Session::builder(Target::Http(front.url.clone()))
        .init_timeout(Duration::from_millis(300))
        .connect_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .connect()
        .await
        .expect("the third attempt reaches the real server");
    assert_eq!(
        call_text(&s, "echo", json!({"text": "third time"})).await,
        "third time"
    );
    assert_eq!(
        front.silent_openings(),
        2,
        "two attempts timed out on a silent connection before the third succeeded"
    );
    assert!(front.accepts() >= 3);
    s.shutdown().await.unwrap();
}

/// An HTTP endpoint that answers something other than MCP: the error says what it answered,
/// in plain words (the status and the start of the body, the content type, how long a rate
/// limit lasts, a redirect loop), with no Rust type path.
#[rstest::rstest]
#[case::server_error("500", &["HTTP 500 Internal Server Error", "body starts: Internal kaboom: the database is unavailable"])]
#[case::web_page("html", &["the server answered with text/html, not JSON or an event stream", "body starts: <html><body>Welcome to nginx!"])]
#[case::rate_limited("429", &["rate limited by the server", "HTTP 429 Too Many Requests", "retry after 30 s"])]
#[case::redirect_loop("redirect", &["redirect", "do not end"])]
#[mcp_harness::test]
async fn an_http_endpoint_that_is_not_mcp_is_named_for_what_it_answered(
    #[case] mode: &str,
    #[case] wanted: &[&str],
) {
    let fixture = format!("{}/fixtures/broken_http.py", env!("CARGO_MANIFEST_DIR"));
    let server = mcp_harness::Server::start(
        mcp_harness::ServerSpec::new(format!("broken-{mode}"), "python3")
            .args([fixture, mode.to_owned()])
            .transport(mcp_harness::Transport::StreamableHttp)
            .address(mcp_harness::AddressSource::ReadyLine)
            .readiness(mcp_harness::Readiness::TcpConnect),
    )
    .await
    .expect("the broken server starts");
    let err = mcp_harness::Session::builder(mcp_harness::Target::Http(server.url().to_owned()))
        .connect_attempts(1)
        .init_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .expect_err("not an MCP server");
    let text = err.to_string();
    for w in wanted {
        assert!(text.contains(w), "`{w}` missing from: {text}");
    }
    assert!(!text.contains("::"), "a Rust type path in: {text}");
    assert!(!text.contains("Send message error"), "{text}");
}

/// A stdio server that answers `initialize`, logs why it gives up and exits with status 3.
const EXITS_AFTER_INITIALIZE: &str = r#"
import json, sys
msg = json.loads(sys.stdin.readline())
print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {
    "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
    "serverInfo": {"name": "quitter", "version": "1"}}}), flush=True)
sys.stdin.readline()  # notifications/initialized
print("fatal: the configuration file is missing", file=sys.stderr, flush=True)
sys.exit(3)
"#;

/// The server's exit races the error: the error still says it exited, with its status and
/// the end of its stderr, never "is running".
#[mcp_harness::test]
async fn a_stdio_server_that_exits_is_reported_as_exited_with_its_status_and_stderr() {
    let spec =
        mcp_harness::ServerSpec::new("quitter", "python3").args(["-c", EXITS_AFTER_INITIALIZE]);
    let s = mcp_harness::Session::builder(mcp_harness::Target::Stdio(spec))
        .protocol(mcp_harness::Protocol::Handshake("2025-11-25".into()))
        .connect()
        .await
        .expect("initialize is answered");
    let err = s.list_tools().await.expect_err("the server is gone");
    let text = err.to_string();
    assert!(matches!(err, mcp_harness::Error::Closed { .. }), "{err:?}");
    assert!(text.contains("exited with exit status 3"), "{text}");
    assert!(!text.contains("is running"), "{text}");
    assert!(text.contains("the configuration file is missing"), "{text}");
}

/// A stdio server that answers `initialize`, then answers `tools/list` with one line of
/// 256 MiB (written in 1 MiB pieces, so the server itself stays small).
const ONE_HUGE_LINE: &str = r#"
import json, sys
msg = json.loads(sys.stdin.readline())
print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {
    "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
    "serverInfo": {"name": "flood", "version": "1"}}}), flush=True)
sys.stdin.readline()  # notifications/initialized
req = json.loads(sys.stdin.readline())
out = sys.stdout
out.write('{"jsonrpc": "2.0", "id": %s, "result": {"tools": [], "padding": "' % json.dumps(req["id"]))
chunk = "x" * (1 << 20)
for _ in range(256):
    out.write(chunk)
out.write('"}}\n')
out.flush()
"#;

/// One oversized line closes the session at once with an error that says so, and the
/// harness never holds the whole line.
#[mcp_harness::test]
async fn an_oversized_stdio_message_closes_the_session_with_an_error_that_says_so() {
    let spec = mcp_harness::ServerSpec::new("flood", "python3").args(["-c", ONE_HUGE_LINE]);
    let s = mcp_harness::Session::builder(mcp_harness::Target::Stdio(spec))
        .protocol(mcp_harness::Protocol::Handshake("2025-11-25".into()))
        .max_message_size(4 * 1024 * 1024)
        .request_timeout(std::time::Duration::from_secs(60))
        .connect()
        .await
        .expect("initialize is answered");
    let rss_before = peak_rss_kib();
    let started = std::time::Instant::now();
    let err = s.list_tools().await.expect_err("the answer is too big");
    let text = err.to_string();
    assert!(
        text.contains("more than 4194304 bytes") && text.contains("max_message_size"),
        "{text}"
    );
    // Named as soon as the bound is crossed, long before the 60 s request timeout.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // The 256 MiB line never sat in memory: the peak grew by far less than it.
    let grown_mib = (peak_rss_kib().saturating_sub(rss_before)) / 1024;
    assert!(grown_mib < 64, "the peak RSS grew by {grown_mib} MiB");
    assert!(s.is_closed());
}

/// This process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Over streamable HTTP the same bound applies to a JSON body and to an SSE event: the call
/// fails at once with an error that says so, and the session serves the next call.
#[mcp_harness::test]
async fn an_oversized_http_answer_fails_that_call_at_once() {
    let server = http_server().await;
    let s = Session::builder(&server)
        .max_message_size(64 * 1024)
        .request_timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let err = s
        .call_tool("big", json!({"bytes": 256 * 1024}))
        .await
        .expect_err("an answer over the bound");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not a timeout: {err}"
    );
    let text = err.to_string();
    assert!(
        !text.contains("rmcp::") && !text.contains("reqwest::"),
        "{text}"
    );
    // The same answer under the default bound (32 MiB) goes through.
    let roomy = Session::connect(&server).await.unwrap();
    let big = roomy
        .call_tool("big", json!({"bytes": 256 * 1024}))
        .await
        .unwrap();
    assert_eq!(mcp_harness::tool_text(&big).len(), 256 * 1024);
    assert_eq!(call_text(&s, "echo", json!({"text": "next"})).await, "next");
}
