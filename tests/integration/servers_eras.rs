//! The bundled servers in both protocol eras: `fast-test`'s and `conformance`'s questions to
//! the client (server-to-client requests in the handshake era, `input_required` rounds in
//! the stateless era) answered by one script, an `input_required` round driven by hand,
//! change notifications through `subscriptions/listen`, cache hints, and what `whoami` and
//! `stats` say about a request's era and `_meta`. `alpha` runs the official conformance
//! suite's 2026-07-28 and 2025-11-25 server scenarios against them.

mod alpha;

use std::time::Duration;

use mcp_harness::rmcp::model::{CacheScope, ServerNotification};
use mcp_harness::{
    Bundled, ClientAnswers, ElicitationAnswer, Era, LogLevel, Server, ServerSpec, Session, Target,
    Transport,
};
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::{bundled, call_json, call_text, eventually, pin};

const WITHIN: Duration = Duration::from_secs(10);

async fn session(target: Target, era: Era, answers: ClientAnswers) -> Session {
    let s = Session::builder(target)
        .name("alice")
        .protocol(pin(era))
        .answers(answers)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connects in the {era:?} era: {e}"));
    assert_eq!(s.era(), era);
    s
}

#[rstest]
#[case::stdio_stateless(Transport::Stdio, Era::Stateless)]
#[case::http_stateless(Transport::StreamableHttp, Era::Stateless)]
#[case::stdio_handshake(Transport::Stdio, Era::Handshake)]
#[case::http_handshake(Transport::StreamableHttp, Era::Handshake)]
#[mcp_harness::test]
async fn fast_test_asks_the_user_and_the_llm_and_one_script_answers_both_eras(
    #[case] transport: Transport,
    #[case] era: Era,
) {
    let (target, _server) = bundled(Bundled::FastTest, transport).await;
    let answers = ClientAnswers::new()
        .elicitation(ElicitationAnswer::Accept(json!({"answer": "alice"})))
        .sampling(|params| {
            let prompt = params["messages"][0]["content"]["text"]
                .as_str()
                .unwrap_or("?");
            format!("{prompt} = 4")
        });
    let s = session(target, era, answers).await;

    let elicited = call_json(&s, "ask_user", json!({"message": "who are you?"})).await;
    assert_eq!(elicited["action"], "accept", "{elicited}");
    assert_eq!(elicited["content"]["answer"], "alice", "{elicited}");

    let sampled = call_json(&s, "ask_llm", json!({"prompt": "2+2?"})).await;
    // `content` is one block, or (since 2025-11-25) may be a list of them.
    let content = match &sampled["content"] {
        Value::Array(blocks) => blocks[0].clone(),
        block => block.clone(),
    };
    assert_eq!(content["text"], "2+2? = 4", "{sampled}");

    let asked = s.asked();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0]["method"], "elicitation/create");
    assert_eq!(asked[0]["params"]["message"], "who are you?");
    assert_eq!(asked[1]["method"], "sampling/createMessage");
    s.shutdown().await.unwrap();
}

#[rstest]
#[case::stdio_stateless(Transport::Stdio, Era::Stateless)]
#[case::http_stateless(Transport::StreamableHttp, Era::Stateless)]
#[case::stdio_handshake(Transport::Stdio, Era::Handshake)]
#[case::http_handshake(Transport::StreamableHttp, Era::Handshake)]
#[mcp_harness::test]
async fn the_conformance_servers_input_required_tools_are_answered_in_both_eras(
    #[case] transport: Transport,
    #[case] era: Era,
) {
    let (target, _server) = bundled(Bundled::Conformance, transport).await;
    let answers = ClientAnswers::new()
        .elicitation(ElicitationAnswer::Accept(
            json!({"name": "Alice", "color": "blue"}),
        ))
        .sampling_text("Hi!")
        .root("file:///work", "work");
    let s = session(target, era, answers).await;

    // Two rounds (stateless) or two requests during the call (handshake).
    assert_eq!(
        call_text(&s, "test_input_required_result_multi_round", json!({})).await,
        "Alice's favorite color is blue"
    );
    // Three questions in one round.
    assert_eq!(
        call_text(&s, "test_input_required_result_multiple_inputs", json!({})).await,
        "name=Alice, greeting=Hi!, roots=file:///work"
    );
    // Every question asked once (a round's questions come in no particular order).
    let mut methods: Vec<String> = s
        .asked()
        .iter()
        .map(|q| q["method"].as_str().unwrap_or("?").to_owned())
        .collect();
    methods.sort();
    assert_eq!(
        methods,
        [
            "elicitation/create",
            "elicitation/create",
            "elicitation/create",
            "roots/list",
            "sampling/createMessage",
        ]
    );
    // The prompt asks first too.
    let prompt = s
        .get_prompt("test_input_required_result_prompt", json!({}))
        .await
        .expect("the prompt, after its question");
    let prompt = serde_json::to_value(&prompt).unwrap();
    assert!(
        prompt["messages"][0]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Answer with this context in mind")),
        "{prompt}"
    );
    s.shutdown().await.unwrap();
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn an_input_required_round_of_fast_test_driven_by_hand(#[case] transport: Transport) {
    let (target, _server) = bundled(Bundled::FastTest, transport).await;
    let s = session(target, Era::Stateless, ClientAnswers::new()).await;
    let call = json!({"name": "ask_user", "arguments": {"message": "who?"}});
    let first = s.request("tools/call", call.clone()).await.unwrap();
    assert_eq!(first["resultType"], "input_required", "{first}");
    let question = &first["inputRequests"]["answer"];
    assert_eq!(question["method"], "elicitation/create", "{first}");
    assert_eq!(question["params"]["message"], "who?", "{first}");
    let state = first["requestState"]
        .as_str()
        .expect("a requestState")
        .to_owned();

    let retry = |responses: Value, state: &str| {
        let mut params = call.clone();
        params["inputResponses"] = responses;
        params["requestState"] = Value::from(state);
        params
    };
    let answer = json!({"answer": {"action": "accept", "content": {"answer": "bob"}}});

    // The answer and the state echoed: the result.
    let done = s
        .request("tools/call", retry(answer.clone(), &state))
        .await
        .unwrap();
    assert_ne!(done["resultType"], "input_required", "{done}");
    assert_eq!(
        done["structuredContent"]["content"]["answer"], "bob",
        "{done}"
    );

    // A retry without the answer is asked again.
    let again = s
        .request("tools/call", retry(json!({"other": {}}), &state))
        .await
        .unwrap();
    assert_eq!(again["resultType"], "input_required", "{again}");
    assert!(again["inputRequests"]["answer"].is_object(), "{again}");

    // A tampered state is refused with -32602, and says why.
    let err = s
        .request("tools/call", retry(answer, &format!("{state}x")))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("-32602") || text.contains("requestState"),
        "{text}"
    );
    assert!(text.contains("integrity"), "{text}");
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn ask_forever_ends_at_the_clients_round_bound(#[case] transport: Transport) {
    let (target, _server) = bundled(Bundled::FastTest, transport).await;
    let s = Session::builder(target)
        .protocol(pin(Era::Stateless))
        .answers(
            ClientAnswers::new().elicitation(ElicitationAnswer::Accept(json!({"again": true}))),
        )
        .max_input_rounds(4)
        .connect()
        .await
        .unwrap();
    let err = s.call_tool("ask_forever", json!({})).await.unwrap_err();
    match &err {
        mcp_harness::Error::InputRounds { rounds, .. } => assert_eq!(*rounds, 4),
        other => panic!("expected InputRounds, got {other:?}"),
    }
    let messages: Vec<String> = s
        .asked()
        .iter()
        .map(|q| q["params"]["message"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        messages,
        [
            "Round 1: once more?",
            "Round 2: once more?",
            "Round 3: once more?",
            "Round 4: once more?"
        ],
        "each round asks the next question"
    );
}

#[mcp_harness::test]
async fn ask_forever_in_the_handshake_era_stops_when_the_user_declines() {
    let (target, _server) = bundled(Bundled::FastTest, Transport::Stdio).await;
    let s = session(target, Era::Handshake, ClientAnswers::new()).await;
    assert_eq!(
        call_text(&s, "ask_forever", json!({})).await,
        "stopped asking after 1 round(s): the user answered decline"
    );
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn fast_test_delivers_list_changed_and_resource_updates_through_listen(
    #[case] transport: Transport,
) {
    let (target, _server) = bundled(Bundled::FastTest, transport).await;
    let s = session(target, Era::Stateless, ClientAnswers::new()).await;
    s.subscribe_resource("fast-test://readme").await.unwrap();
    let id = s
        .listen_id()
        .expect("listening: fast-test advertises listChanged");
    let mut seen = s.notifications();
    // The subscription above replaced the first listen stream; the new one is registered
    // after its acknowledgement.
    server_listeners(&s, 1).await;

    let sent = call_text(&s, "notify", json!({"kind": "tools"})).await;
    assert!(sent.contains("1 subscriptions/listen stream"), "{sent}");
    let listed = seen
        .wait_for(WITHIN, |n| {
            matches!(n, ServerNotification::ToolListChangedNotification(_))
        })
        .await
        .expect("tools list_changed arrives on the listen stream");
    let listed = serde_json::to_value(&listed).unwrap();
    assert_eq!(
        listed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"].to_string(),
        id,
        "tagged with the subscription: {listed}"
    );

    let sent = call_text(&s, "touch", json!({"uri": "fast-test://readme"})).await;
    assert!(sent.contains("1 subscriptions/listen stream"), "{sent}");
    let updated = seen
        .wait_for(WITHIN, |n| {
            matches!(n, ServerNotification::ResourceUpdatedNotification(u)
                if u.params.uri == "fast-test://readme")
        })
        .await;
    assert!(updated.is_some(), "the resource update arrives");

    // A uri nobody listens to reaches nobody.
    let sent = call_text(&s, "touch", json!({"uri": "fast-test://elsewhere"})).await;
    assert!(sent.contains("sent to 0"), "{sent}");
    let stats = call_json(&s, "stats", json!({})).await;
    assert_eq!(stats["listeners"], 1, "{stats}");
}

/// Waits until the server counts `n` open listen streams. rmcp acknowledges
/// `subscriptions/listen` before the handler registers the stream, so a change announced right
/// after the acknowledgement can find none yet: a client cannot know, the server's count can.
async fn server_listeners(s: &mcp_harness::Session, n: u64) {
    eventually(
        "the server to register the listen streams",
        WITHIN,
        || async { (call_json(s, "stats", json!({})).await["listeners"] == n).then_some(()) },
    )
    .await;
}

#[mcp_harness::test]
async fn over_http_a_change_reaches_every_listening_client() {
    let (target, _server) = bundled(Bundled::FastTest, Transport::StreamableHttp).await;
    let a = session(target.clone(), Era::Stateless, ClientAnswers::new()).await;
    let b = session(target, Era::Stateless, ClientAnswers::new()).await;
    assert!(a.listen_id().is_some() && b.listen_id().is_some());
    let (mut seen_a, mut seen_b) = (a.notifications(), b.notifications());
    server_listeners(&a, 2).await;
    // No session: a change is the server's, announced to every open listen stream.
    call_text(&a, "notify", json!({"kind": "prompts"})).await;
    for seen in [&mut seen_a, &mut seen_b] {
        seen.wait_for(WITHIN, |n| {
            matches!(n, ServerNotification::PromptListChangedNotification(_))
        })
        .await
        .expect("prompts list_changed reaches both clients");
    }
    // A client that goes away takes its listen stream with it.
    assert_eq!(call_json(&a, "stats", json!({})).await["listeners"], 2);
    b.shutdown().await.unwrap();
    eventually("the closed client's listen stream to end", WITHIN, || {
        let a = a.clone();
        async move { (call_json(&a, "stats", json!({})).await["listeners"] == 1).then_some(()) }
    })
    .await;
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn fast_test_delivers_resource_updates_to_subscribers_in_the_handshake_era(
    #[case] transport: Transport,
) {
    let (target, _server) = bundled(Bundled::FastTest, transport).await;
    let s = session(target, Era::Handshake, ClientAnswers::new()).await;
    let mut seen = s.notifications();
    let unsubscribed = call_text(&s, "touch", json!({})).await;
    assert!(unsubscribed.contains("did not subscribe"), "{unsubscribed}");
    s.subscribe_resource("fast-test://readme").await.unwrap();
    assert_eq!(
        call_text(&s, "touch", json!({})).await,
        "notifications/resources/updated for fast-test://readme sent"
    );
    let updated = seen
        .wait_for(WITHIN, |n| {
            matches!(n, ServerNotification::ResourceUpdatedNotification(u)
                if u.params.uri == "fast-test://readme")
        })
        .await;
    assert!(updated.is_some(), "the resource update arrives");
}

#[rstest]
#[case::stdio_stateless(Transport::Stdio, Era::Stateless)]
#[case::http_stateless(Transport::StreamableHttp, Era::Stateless)]
#[case::stdio_handshake(Transport::Stdio, Era::Handshake)]
#[case::http_handshake(Transport::StreamableHttp, Era::Handshake)]
#[mcp_harness::test]
async fn whoami_and_stats_report_the_era_and_the_meta_keys_of_the_request(
    #[case] transport: Transport,
    #[case] era: Era,
) {
    let (target, _server) = bundled(Bundled::FastTest, transport).await;
    let s = session(target, era, ClientAnswers::new()).await;
    let who = call_json(&s, "whoami", json!({})).await;
    let stats = call_json(&s, "stats", json!({})).await;
    for report in [&who, &stats] {
        let keys: Vec<&str> = report["meta_keys"]
            .as_array()
            .unwrap_or_else(|| panic!("meta_keys: {report}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        match era {
            Era::Stateless => {
                assert_eq!(report["era"], "stateless", "{report}");
                assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
                for key in [
                    "io.modelcontextprotocol/clientCapabilities",
                    "io.modelcontextprotocol/protocolVersion",
                ] {
                    assert!(keys.contains(&key), "{key} missing from {report}");
                }
            }
            _ => {
                assert_eq!(report["era"], "handshake", "{report}");
                assert_eq!(report["protocol_version"], "2025-11-25", "{report}");
                assert!(
                    !keys.contains(&"io.modelcontextprotocol/protocolVersion"),
                    "{report}"
                );
            }
        }
        // Keys only: no value of the _meta (the client's name, say) in the report.
        assert!(
            report["meta_keys"].to_string().find("alice").is_none(),
            "{report}"
        );
    }
    assert_eq!(who["client"], "alice", "{who}");
    if era == Era::Stateless {
        // A per-request log level travels as one more _meta key.
        let leveled = call_json(&s.with_log_level(LogLevel::Warning), "whoami", json!({})).await;
        assert!(
            leveled["meta_keys"]
                .as_array()
                .unwrap()
                .contains(&json!("io.modelcontextprotocol/logLevel")),
            "{leveled}"
        );
        if transport == Transport::StreamableHttp {
            assert!(
                stats["discovers"].as_u64().is_some_and(|n| n >= 1),
                "the session discovered the server: {stats}"
            );
        }
    } else {
        assert_eq!(stats["discovers"], 0, "{stats}");
    }
}

#[rstest]
#[case::stdio(Transport::Stdio)]
#[case::http(Transport::StreamableHttp)]
#[mcp_harness::test]
async fn fast_tests_list_results_carry_cache_hints_in_the_stateless_era_only(
    #[case] transport: Transport,
) {
    let (target, _server) = bundled(Bundled::FastTest, transport).await;
    let stateless = session(target.clone(), Era::Stateless, ClientAnswers::new()).await;
    let tools = stateless.tools_listing().await.unwrap();
    assert!(tools.items.iter().any(|t| t.name == "ask_forever"));
    assert_eq!(tools.ttl_ms, Some(30_000));
    assert_eq!(tools.cache_scope, Some(CacheScope::Public));
    let prompts = stateless.prompts_listing().await.unwrap();
    assert_eq!(prompts.ttl_ms, Some(30_000));
    let handshake = session(target, Era::Handshake, ClientAnswers::new()).await;
    let tools = handshake.tools_listing().await.unwrap();
    assert_eq!((tools.ttl_ms, tools.cache_scope), (None, None));
}

/// POSTs one 2026-07-28 `tools/call` of `tool` to `url` with exactly these client
/// capabilities and extra headers; returns the HTTP status and the JSON-RPC response (from a
/// JSON body or from the event stream).
async fn raw_call(
    url: &str,
    tool: &str,
    arguments: Value,
    capabilities: Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    });
    let response = request
        .json(&json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta},
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let message = body
        .lines()
        .filter_map(|line| line.strip_prefix("data:").map(str::trim))
        .chain(std::iter::once(body.as_str()))
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .find(|m| m["id"] == 7)
        .unwrap_or_else(|| panic!("no JSON-RPC response in {body:?}"));
    (status, message)
}

#[mcp_harness::test]
async fn a_question_the_client_cannot_answer_is_refused_in_the_era_s_own_words() {
    // Stateless: the request declares the client's capabilities; a tool that needs one it
    // lacks answers -32021 (HTTP 400) with the capability named. Raw JSON-RPC over HTTP, so
    // that the capabilities are exactly the ones given.
    let server = Server::start(ServerSpec::bundled(
        Bundled::FastTest,
        Transport::StreamableHttp,
    ))
    .await
    .unwrap();
    let (status, body) = raw_call(
        server.url(),
        "ask_llm",
        json!({"prompt": "hi"}),
        json!({}),
        &[],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], -32021, "{body}");
    assert_eq!(
        body["error"]["data"]["requiredCapabilities"],
        json!({"sampling": {}}),
        "{body}"
    );
    // Declared: the question, as an input_required result.
    let (status, body) = raw_call(
        server.url(),
        "ask_llm",
        json!({"prompt": "hi"}),
        json!({"sampling": {}}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["resultType"], "input_required", "{body}");
    assert_eq!(
        body["result"]["inputRequests"]["completion"]["method"], "sampling/createMessage",
        "{body}"
    );
}

#[mcp_harness::test]
async fn routed_echo_s_region_travels_in_an_mcp_param_header_that_must_match_the_body() {
    let server = Server::start(ServerSpec::bundled(
        Bundled::FastTest,
        Transport::StreamableHttp,
    ))
    .await
    .unwrap();
    let args = json!({"region": "eu-west", "text": "hi"});
    let (status, body) = raw_call(
        server.url(),
        "routed_echo",
        args.clone(),
        json!({}),
        &[("mcp-param-region", "eu-west")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["content"][0]["text"], "eu-west: hi",
        "{body}"
    );
    for header in [&[("mcp-param-region", "us-east")][..], &[]] {
        let (status, body) =
            raw_call(server.url(), "routed_echo", args.clone(), json!({}), header).await;
        assert_eq!(status, 400, "{header:?}: {body}");
        assert_eq!(body["error"]["code"], -32020, "{header:?}: {body}");
    }
}
