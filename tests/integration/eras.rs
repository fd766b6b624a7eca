//! Both protocol eras, chosen by the session's protocol setting: the handshake era
//! (`initialize`, up to 2025-11-25) and the stateless era (`server/discover`, 2026-07-28).

use std::time::Duration;

use mcp_harness::{Bundled, Era, Error, Protocol, Server, ServerSpec, Session, Target, Transport};
use rstest::rstest;
use serde_json::json;

use crate::support::{bundled, call_text};

async fn fast_test(transport: Transport) -> (Target, Option<Server>) {
    bundled(Bundled::FastTest, transport).await
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::streamable_http(Transport::StreamableHttp)]
#[case::sse(Transport::Sse)]
#[mcp_harness::test]
async fn a_pinned_handshake_version_is_the_one_offered_and_reported(#[case] transport: Transport) {
    let (target, _server) = fast_test(transport).await;
    let s = Session::builder(target)
        .name("alice")
        .protocol(Protocol::Handshake("2025-06-18".into()))
        .connect()
        .await
        .expect("connects in the handshake era");
    assert_eq!(s.protocol_version(), "2025-06-18");
    assert_eq!(s.era(), Era::Handshake);
    assert_eq!(call_text(&s, "echo", json!({"text": "hi"})).await, "hi");
    s.shutdown().await.unwrap();
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::streamable_http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn a_session_pinned_to_2026_07_28_discovers_and_calls_without_initialize(
    #[case] transport: Transport,
) {
    let (target, _server) = fast_test(transport).await;
    let s = Session::builder(target)
        .name("bob")
        .protocol(Protocol::Stateless("2026-07-28".into()))
        .connect()
        .await
        .expect("connects in the stateless era");
    assert_eq!(s.protocol_version(), "2026-07-28");
    assert_eq!(s.era(), Era::Stateless);
    assert_eq!(call_text(&s, "echo", json!({"text": "hi"})).await, "hi");
    let tools = s.list_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
    s.shutdown().await.unwrap();
}

#[mcp_harness::test]
async fn auto_speaks_the_stateless_era_to_a_server_that_answers_discover() {
    let (target, _server) = fast_test(Transport::Stdio).await;
    let s = Session::builder(target)
        .protocol(Protocol::Auto)
        .connect()
        .await
        .unwrap();
    assert_eq!(s.era(), Era::Stateless);
    assert_eq!(s.protocol_version(), "2026-07-28");
}

#[mcp_harness::test]
async fn legacy_sse_refuses_a_stateless_pin_with_a_typed_error() {
    let (target, _server) = fast_test(Transport::Sse).await;
    let err = Session::builder(target)
        .protocol(Protocol::Stateless("2026-07-28".into()))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedVersion { offered, .. } if offered == &["2026-07-28"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("handshake-era transport"), "{err}");
}

#[test]
fn a_protocol_setting_that_is_not_one_says_what_is_expected() {
    let err = "2026-13".parse::<Protocol>().unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string().contains("auto, stateless, handshake"),
        "{err}"
    );
    assert_eq!(
        "stateless".parse::<Protocol>().unwrap(),
        Protocol::Stateless("2026-07-28".into())
    );
    assert_eq!(
        "handshake".parse::<Protocol>().unwrap(),
        Protocol::default()
    );
}

/// The TypeScript SDK's everything server over stdio (handshake era only, as of the version
/// `scripts/setup.sh` installs), for the fallback and mismatch cases.
fn everything() -> Target {
    Target::Stdio(ServerSpec::new(
        "server-everything",
        "mcp-server-everything",
    ))
}

#[mcp_harness::test]
async fn auto_falls_back_to_initialize_when_the_server_refuses_discover() {
    // rmcp waits 10 s for a silent server before it falls back; a bound of 9 s proves the
    // fallback came from the server's answer to `server/discover`, not from silence.
    let s = Session::builder(everything())
        .protocol(Protocol::Auto)
        .init_timeout(Duration::from_secs(9))
        .connect_attempts(1)
        .connect()
        .await
        .expect("auto connects to a handshake-era server (is server-everything installed? run scripts/setup.sh)");
    assert_eq!(s.era(), Era::Handshake);
    assert_eq!(s.protocol_version(), "2025-11-25");
    assert!(!s.list_tools().await.unwrap().is_empty());
}

#[mcp_harness::test]
async fn a_stateless_pin_against_a_handshake_era_server_is_a_typed_error_naming_both_sides() {
    let err = Session::builder(everything())
        .protocol(Protocol::Stateless("2026-07-28".into()))
        .connect_attempts(1)
        .connect()
        .await
        .unwrap_err();
    match &err {
        Error::UnsupportedVersion { offered, hint, .. } => {
            assert_eq!(offered, &["2026-07-28"]);
            assert!(
                hint.contains("server/discover") && hint.contains("handshake era"),
                "{hint}"
            );
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        !text.contains("rmcp::"),
        "no Rust type paths in messages: {text}"
    );
}

#[rstest]
#[case::stdio_handshake(Transport::Stdio, Protocol::Handshake("2025-11-25".into()))]
#[case::stdio_stateless(Transport::Stdio, Protocol::Stateless("2026-07-28".into()))]
#[case::http_handshake(Transport::StreamableHttp, Protocol::Handshake("2025-11-25".into()))]
#[case::http_stateless(Transport::StreamableHttp, Protocol::Stateless("2026-07-28".into()))]
#[mcp_harness::test]
async fn notifications_arrive_in_the_order_the_server_sent_them(
    #[case] transport: Transport,
    #[case] protocol: Protocol,
) {
    use mcp_harness::rmcp::model::ServerNotification;
    let (target, _server) = fast_test(transport).await;
    let s = Session::builder(target)
        .protocol(protocol)
        .notification_buffer(256)
        .connect()
        .await
        .unwrap();
    let mut seen = s.notifications();
    // 200 progress notifications back to back, no pause between them, read after the call.
    s.call_tool("progress", json!({"steps": 200, "interval_ms": 0}))
        .await
        .unwrap();
    let mut steps = Vec::new();
    while steps.len() < 200 {
        match seen.next_within(Duration::from_secs(10)).await {
            Some(ServerNotification::ProgressNotification(p)) => steps.push(p.params.progress),
            Some(_) => {}
            None => break,
        }
    }
    let expected: Vec<f64> = (1..=200).map(f64::from).collect();
    assert_eq!(steps, expected, "in order, none lost");
    assert_eq!(seen.missed(), 0);

    // With a buffer smaller than the burst, a late reader sees the newest, in order, and is
    // told how many it missed.
    let small = Session::builder(fast_test(Transport::Stdio).await.0)
        .notification_buffer(16)
        .connect()
        .await
        .unwrap();
    let mut late = small.notifications();
    small
        .call_tool("progress", json!({"steps": 100, "interval_ms": 0}))
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(n) = late.next_within(Duration::from_millis(300)).await {
        if let ServerNotification::ProgressNotification(p) = n {
            got.push(p.params.progress);
        }
    }
    assert_eq!(late.missed(), 84, "{got:?}");
    assert_eq!(got, (85..=100).map(f64::from).collect::<Vec<_>>());
}

/// A handshake-era stdio server that ignores every method it does not know (no answer at all,
/// not even an error), `server/discover` included: older servers exist that do.
const SILENT_TO_DISCOVER: &str = r#"
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    method, id_ = msg.get("method"), msg.get("id")
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "silent-to-discover", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": []}
    else:
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}), flush=True)
"#;

#[mcp_harness::test]
async fn auto_falls_back_fast_when_the_server_ignores_discover() {
    let spec = ServerSpec::new("silent-to-discover", "python3").args(["-c", SILENT_TO_DISCOVER]);
    // rmcp's own fallback waits 10 s for a silent server: with a 9 s init bound only the
    // session's short discover bound can get this session connected.
    let s = Session::builder(Target::Stdio(spec))
        .protocol(Protocol::Auto)
        .discover_timeout(Duration::from_millis(300))
        .init_timeout(Duration::from_secs(9))
        .connect_attempts(1)
        .connect()
        .await
        .expect("auto falls back to initialize");
    assert_eq!(s.era(), Era::Handshake);
    assert_eq!(s.protocol_version(), "2025-11-25");
    assert!(s.list_tools().await.unwrap().is_empty());
}
