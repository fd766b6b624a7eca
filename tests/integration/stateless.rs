//! Interop with the official Python SDK (`mcp` 2.3) in both directions and both eras: the
//! harness's client against a Python server (`tests/fixtures/python_server.py`), and the
//! Python client (`tests/fixtures/python_client.py`) against the bundled `fast-test`, over
//! stdio and streamable HTTP.
//!
//! The stateless era's surface, against a server nobody here wrote:
//! `input_required` rounds answered by the session's scripted answers (and the same script
//! answering the handshake era's `elicitation/create`), `subscriptions/listen`, per-request log
//! levels, cache hints and `_meta` on raw requests.

use std::time::Duration;

use mcp_harness::rmcp::model::ServerNotification;
use mcp_harness::{
    AddressSource, ClientAnswers, ElicitationAnswer, Era, LogLevel, Readiness, Server, ServerSpec,
    Session, Target, Transport,
};
use rstest::rstest;
use serde_json::json;

use crate::support::{call_text, pin, python_fixture, require_python_sdk};

const WITHIN: Duration = Duration::from_secs(10);

/// The Python fixture over `transport`: a stdio target, or a started HTTP server.
async fn python(transport: Transport) -> (Target, Option<Server>) {
    require_python_sdk();
    match transport {
        Transport::Stdio => (
            Target::Stdio(
                ServerSpec::new("python-sdk", "python3").args([python_fixture(), "stdio".into()]),
            ),
            None,
        ),
        _ => {
            let spec = ServerSpec::new("python-sdk", "python3")
                .args([python_fixture(), "streamable-http".into()])
                .transport(Transport::StreamableHttp)
                .address(AddressSource::ReadyLine)
                .readiness(Readiness::TcpConnect)
                .startup_timeout(Duration::from_secs(30));
            let server = Server::start(spec)
                .await
                .expect("the Python SDK server starts");
            (Target::Server(server.clone()), Some(server))
        }
    }
}

#[rstest]
#[case::stdio_stateless(Transport::Stdio, Era::Stateless)]
#[case::http_stateless(Transport::StreamableHttp, Era::Stateless)]
#[case::stdio_handshake(Transport::Stdio, Era::Handshake)]
#[case::http_handshake(Transport::StreamableHttp, Era::Handshake)]
#[mcp_harness::test]
async fn one_scripted_elicitation_answer_serves_both_eras(
    #[case] transport: Transport,
    #[case] era: Era,
) {
    let (target, _server) = python(transport).await;
    let s = Session::builder(target)
        .name("alice")
        .protocol(pin(era))
        .answers(
            ClientAnswers::new().elicitation(ElicitationAnswer::Accept(json!({"name": "alice"}))),
        )
        .connect()
        .await
        .expect("connects to the Python SDK server");
    assert_eq!(s.era(), era);
    assert_eq!(call_text(&s, "echo", json!({"text": "hi"})).await, "hi");
    // Stateless: an `input_required` round answered and retried; handshake: an
    // `elicitation/create` request answered mid-call. The same script, the same result.
    assert_eq!(call_text(&s, "greet", json!({})).await, "hello alice");
    let asked = s.asked();
    assert_eq!(asked.len(), 1, "asked once: {asked:?}");
    assert_eq!(asked[0]["method"], "elicitation/create");
    assert_eq!(asked[0]["params"]["message"], "What is your name?");
    s.shutdown().await.unwrap();
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn an_unscripted_input_request_is_declined_and_recorded(#[case] transport: Transport) {
    let (target, _server) = python(transport).await;
    let s = Session::builder(target)
        .protocol(pin(Era::Stateless))
        .connect()
        .await
        .unwrap();
    assert_eq!(call_text(&s, "greet", json!({})).await, "no name (decline)");
    assert_eq!(s.asked().len(), 1);
}

#[mcp_harness::test]
async fn a_raw_request_carries_the_stateless_meta_and_returns_input_required_as_sent() {
    let (target, _server) = python(Transport::Stdio).await;
    let s = Session::builder(target)
        .protocol(pin(Era::Stateless))
        .connect()
        .await
        .unwrap();
    // The Python SDK refuses a 2026-07-28 request without `_meta`'s protocol version and
    // client capabilities: an answer at all proves `request()` filled them in.
    let first = s
        .request("tools/call", json!({"name": "greet", "arguments": {}}))
        .await
        .expect("the server accepts the request's _meta");
    assert_eq!(first["resultType"], "input_required", "{first}");
    let (key, question) = first["inputRequests"]
        .as_object()
        .and_then(|m| m.iter().next())
        .expect("one input request");
    assert_eq!(question["method"], "elicitation/create");
    // Driving the round by hand: the answer and the state, echoed.
    let done = s
        .request(
            "tools/call",
            json!({
                "name": "greet",
                "arguments": {},
                "inputResponses": {key: {"action": "accept", "content": {"name": "bob"}}},
                "requestState": first["requestState"],
            }),
        )
        .await
        .unwrap();
    assert_eq!(done["content"][0]["text"], "hello bob", "{done}");
    assert!(s.asked().is_empty(), "a raw request answers nothing itself");
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn listen_delivers_list_changed_and_resource_updates(#[case] transport: Transport) {
    let (target, _server) = python(transport).await;
    let s = Session::builder(target)
        .protocol(pin(Era::Stateless))
        .connect()
        .await
        .unwrap();
    let first_id = s
        .listen_id()
        .expect("listening: the server advertises listChanged");
    s.subscribe_resource("fixture://readme").await.unwrap();
    let id = s.listen_id().expect("still listening");
    assert_ne!(id, first_id, "a new filter is a new listen request");

    let mut seen = s.notifications();
    assert_eq!(call_text(&s, "change", json!({})).await, "announced");
    let listed = seen
        .wait_for(WITHIN, |n| {
            matches!(n, ServerNotification::ToolListChangedNotification(_))
        })
        .await
        .expect("tools list_changed arrives on the listen stream");
    let meta = serde_json::to_value(&listed).unwrap();
    assert_eq!(
        meta["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"].to_string(),
        id,
        "carries the subscription id: {meta}"
    );
    let updated = seen
        .wait_for(WITHIN, |n| {
            matches!(n, ServerNotification::ResourceUpdatedNotification(u) if u.params.uri == "fixture://readme")
        })
        .await;
    assert!(updated.is_some(), "the resource update arrives");

    // A test that stops listening (drops its receiver) leaves the session as it was; an
    // unsubscribed resource stops its updates, list_changed goes on.
    drop(seen);
    s.unsubscribe_resource("fixture://readme").await.unwrap();
    let mut seen = s.notifications();
    call_text(&s, "change", json!({"uri": "fixture://readme"})).await;
    let mut got = Vec::new();
    while let Some(n) = seen.next_within(Duration::from_millis(500)).await {
        got.push(n);
    }
    assert!(
        got.iter()
            .any(|n| matches!(n, ServerNotification::ToolListChangedNotification(_))),
        "{got:?}"
    );
    assert!(
        !got.iter()
            .any(|n| matches!(n, ServerNotification::ResourceUpdatedNotification(_))),
        "no update after unsubscribing: {got:?}"
    );
    assert_eq!(
        call_text(&s, "echo", json!({"text": "still here"})).await,
        "still here"
    );
}

#[mcp_harness::test]
async fn a_session_that_does_not_listen_opens_no_stream() {
    let (target, _server) = python(Transport::Stdio).await;
    let s = Session::builder(target)
        .protocol(pin(Era::Stateless))
        .listen(false)
        .connect()
        .await
        .unwrap();
    assert_eq!(s.listen_id(), None);
    let mut seen = s.notifications();
    call_text(&s, "change", json!({})).await;
    assert!(
        seen.next_within(Duration::from_millis(300)).await.is_none(),
        "nothing arrives without a listen stream"
    );
}

fn log_texts(got: &[ServerNotification]) -> Vec<String> {
    got.iter()
        .filter(|n| matches!(n, ServerNotification::LoggingMessageNotification(_)))
        .filter_map(|n| {
            let n = serde_json::to_value(n).ok()?;
            n["params"]["data"].as_str().map(str::to_owned)
        })
        .collect()
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn the_log_level_travels_with_each_request(#[case] transport: Transport) {
    let (target, _server) = python(transport).await;
    let s = Session::builder(target)
        .protocol(pin(Era::Stateless))
        .connect()
        .await
        .unwrap();
    // The tool logs at debug, then at warning. Log messages precede the result on the same
    // stream, so whatever was sent has arrived by the time the call returns plus a beat.
    let run = |s: Session, text: &'static str| async move {
        let mut seen = s.notifications();
        assert_eq!(call_text(&s, "say", json!({"text": text})).await, text);
        let mut got = Vec::new();
        while let Some(n) = seen.next_within(Duration::from_millis(300)).await {
            got.push(n);
        }
        log_texts(&got)
    };
    assert!(
        run(s.clone(), "a").await.is_empty(),
        "no level, no log messages (2026-07-28)"
    );
    assert_eq!(
        run(s.with_log_level(LogLevel::Warning), "b").await,
        ["warning: b"]
    );
    assert_eq!(
        run(s.with_log_level(LogLevel::Debug), "c").await,
        ["debug: c", "warning: c"]
    );
    s.set_log_level(LogLevel::Warning).await.unwrap();
    assert_eq!(run(s.clone(), "d").await, ["warning: d"]);
}

#[mcp_harness::test]
async fn list_results_show_the_servers_cache_hints_in_the_stateless_era_only() {
    let (target, _server) = python(Transport::Stdio).await;
    let stateless = Session::builder(target.clone())
        .protocol(pin(Era::Stateless))
        .connect()
        .await
        .unwrap();
    let tools = stateless.tools_listing().await.unwrap();
    assert!(tools.items.iter().any(|t| t.name == "greet"));
    assert!(
        tools.ttl_ms.is_some(),
        "2026-07-28 list results carry ttlMs"
    );
    assert!(tools.cache_scope.is_some(), "and cacheScope");
    let handshake = Session::builder(target)
        .protocol(pin(Era::Handshake))
        .connect()
        .await
        .unwrap();
    let tools = handshake.tools_listing().await.unwrap();
    assert_eq!((tools.ttl_ms, tools.cache_scope), (None, None));
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn a_server_that_keeps_asking_ends_in_a_typed_error_at_the_round_bound(
    #[case] transport: Transport,
) {
    let (target, _server) = python(transport).await;
    let s = Session::builder(target)
        .protocol(pin(Era::Stateless))
        .answers(ClientAnswers::new().elicitation(ElicitationAnswer::Accept(json!({}))))
        .max_input_rounds(3)
        .connect()
        .await
        .unwrap();
    let err = s.call_tool("ask_forever", json!({})).await.unwrap_err();
    match &err {
        mcp_harness::Error::InputRounds {
            rounds, last_asked, ..
        } => {
            assert_eq!(*rounds, 3);
            assert_eq!(last_asked, &["elicitation/create"]);
        }
        other => panic!("expected InputRounds, got {other:?}"),
    }
    assert_eq!(s.asked().len(), 3, "every round was answered");
    let text = err.to_string();
    assert!(
        text.contains("ask_forever") || text.contains("tools/call"),
        "{text}"
    );
    assert!(text.contains("max_input_rounds"), "says what to do: {text}");
    // The session is fine: the bound ended one request, not the session.
    assert_eq!(call_text(&s, "echo", json!({"text": "ok"})).await, "ok");
}

#[rstest]
#[case::stateless(Era::Stateless)]
#[case::handshake(Era::Handshake)]
#[mcp_harness::test]
async fn a_scripted_sampling_answer_serves_both_eras(#[case] era: Era) {
    let (target, _server) = python(Transport::Stdio).await;
    let s = Session::builder(target)
        .protocol(pin(era))
        .answers(ClientAnswers::new().sampling(|params| {
            format!(
                "{} = 4",
                params["messages"][0]["content"]["text"]
                    .as_str()
                    .unwrap_or("?")
            )
        }))
        .connect()
        .await
        .unwrap();
    assert_eq!(call_text(&s, "think", json!({})).await, "2+2? = 4");
    assert_eq!(s.asked()[0]["method"], "sampling/createMessage");
}

#[mcp_harness::test]
async fn an_unscripted_sampling_round_is_a_typed_error_that_says_how_to_script_one() {
    let (target, _server) = python(Transport::Stdio).await;
    let s = Session::builder(target)
        .protocol(pin(Era::Stateless))
        .connect()
        .await
        .unwrap();
    let err = s.call_tool("think", json!({})).await.unwrap_err();
    match &err {
        mcp_harness::Error::Unanswered { asked, reason, .. } => {
            assert_eq!(asked, "sampling/createMessage");
            assert!(reason.contains("ClientAnswers::sampling"), "{reason}");
        }
        other => panic!("expected Unanswered, got {other:?}"),
    }
    assert_eq!(s.asked().len(), 1, "recorded all the same");
}

/// The other direction: the official Python SDK's client (`tests/fixtures/python_client.py`)
/// against the bundled `fast-test`, in each era, over stdio and streamable HTTP; its
/// elicitation answer reaches the tool (an `input_required` round, or a request mid-call).
#[rstest]
#[case::stdio_handshake(Transport::Stdio, "legacy", "2025-11-25")]
#[case::stdio_stateless(Transport::Stdio, "2026-07-28", "2026-07-28")]
#[case::http_handshake(Transport::StreamableHttp, "legacy", "2025-11-25")]
#[case::http_stateless(Transport::StreamableHttp, "2026-07-28", "2026-07-28")]
#[mcp_harness::test]
async fn the_python_sdk_client_speaks_both_eras_to_the_bundled_server(
    #[case] transport: Transport,
    #[case] mode: &str,
    #[case] version: &str,
) {
    require_python_sdk();
    let client = format!("{}/fixtures/python_client.py", env!("CARGO_MANIFEST_DIR"));
    let cli = env!("CARGO_BIN_EXE_mcp-harness-cli");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(&client).arg(mode).kill_on_drop(true);
    let _server = match transport {
        Transport::Stdio => {
            cmd.args(["--stdio", cli, "serve", "fast-test", "--transport", "stdio"]);
            None
        }
        _ => {
            let server = Server::start(ServerSpec::bundled(
                mcp_harness::Bundled::FastTest,
                Transport::StreamableHttp,
            ))
            .await
            .unwrap();
            cmd.arg(server.url());
            Some(server)
        }
    };
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the Python client finishes within 60 s")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(seen["protocol_version"], version, "{seen}");
    assert_eq!(seen["echo"], "hi from python");
    assert_eq!(seen["ask_user_is_error"], false, "{seen}");
    assert_eq!(
        seen["ask_user"],
        json!({"action": "accept", "content": {"answer": "from python"}})
    );
}
