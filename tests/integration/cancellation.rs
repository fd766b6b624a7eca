//! A caller that gives up cancels only its own request, in both protocol eras.

use std::time::Duration;

use mcp_harness::{Bundled, BundledServer, Protocol, Session, Target, Transport};
use rstest::rstest;
use serde_json::json;

use crate::support::{call_json, call_text, eventually};

async fn cancellations(s: &mcp_harness::Session) -> u64 {
    call_json(s, "stats", json!({})).await["cancellations"]
        .as_u64()
        .unwrap()
}

#[rstest]
#[case::handshake(Protocol::Handshake("2025-11-25".into()))]
#[case::stateless(Protocol::Stateless("2026-07-28".into()))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_caller_cancels_only_its_own_request(#[case] protocol: Protocol) {
    let spec = BundledServer::new(Bundled::FastTest, Transport::Stdio)
        .subject("canceller")
        .spec();
    let s = Session::builder(Target::Stdio(spec))
        .name("canceller")
        .protocol(protocol.clone())
        .connect()
        .await
        .expect("stdio fast-test session");
    assert_eq!(s.protocol_version(), protocol.to_string());
    let before = cancellations(&s).await;

    // Concurrent callers keep working the whole time.
    let others: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                for j in 0..20 {
                    let text = format!("{i}-{j}");
                    assert_eq!(call_text(&s, "echo", json!({"text": text})).await, text);
                }
            })
        })
        .collect();

    // The caller stops waiting 100 ms into a 2 s sleep: its future is dropped.
    let slow = s.call_tool("sleep", json!({"ms": 2000}));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), slow)
            .await
            .is_err()
    );

    // The server observes the cancellation (well before the 2 s sleep would end).
    let seen = eventually(
        "the server to count the cancellation",
        Duration::from_secs(5),
        || async {
            let n = cancellations(&s).await;
            (n > before).then_some(n)
        },
    )
    .await;
    assert_eq!(seen, before + 1);

    // The session answers the next call at once, and nobody else was hurt.
    assert_eq!(call_text(&s, "echo", json!({"text": "next"})).await, "next");
    for o in others {
        o.await.expect("a concurrent caller failed");
    }
    assert!(!s.is_closed());
}

#[tokio::test]
async fn request_timeout_cancels_on_the_server_and_keeps_the_session() {
    let spec = mcp_harness::BundledServer::new(
        mcp_harness::Bundled::FastTest,
        mcp_harness::Transport::Stdio,
    )
    .spec();
    let s = mcp_harness::Session::builder(mcp_harness::Target::Stdio(spec))
        .name("impatient")
        .request_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    // The bookkeeping calls get room: under load a round trip can take longer than 200 ms.
    let patient = s.with_request_timeout(Duration::from_secs(30));
    let before = cancellations(&patient).await;
    let err = s
        .call_tool("sleep", json!({"ms": 5000}))
        .await
        .expect_err("must time out");
    assert!(
        matches!(err, mcp_harness::Error::Timeout { .. }),
        "got {err}"
    );
    assert!(err.to_string().contains("tools/call"), "{err}");
    eventually(
        "the server to count the cancellation",
        Duration::from_secs(5),
        || async { (cancellations(&patient).await > before).then_some(()) },
    )
    .await;
    assert_eq!(
        call_text(&patient, "echo", json!({"text": "ok"})).await,
        "ok"
    );
    // The short bound is the builder's, on every handle but the one that asked otherwise.
    let err = s
        .clone()
        .call_tool("sleep", json!({"ms": 5000}))
        .await
        .expect_err("the builder's timeout still applies");
    assert!(matches!(err, mcp_harness::Error::Timeout { .. }), "{err}");
}
