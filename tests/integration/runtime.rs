//! The shared runtime: a session outlives the runtime of the test that opened it, and one handle
//! works from `#[tokio::test]`, from a plain `#[test]` through `run`, and from many tasks.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_harness::Session;
use serde_json::json;

use crate::support::{call_text, stdio_session};

/// One session per test process, opened by whichever test gets here first, inside that test's
/// own runtime (which is dropped when that test ends).
fn shared_session() -> Session {
    static SHARED: OnceLock<Session> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            // Open it from a throwaway runtime on its own thread, dropped right away: the
            // session must not depend on it.
            std::thread::spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let s = rt.block_on(stdio_session("shared"));
                drop(rt);
                s
            })
            .join()
            .expect("opening the shared session")
        })
        .clone()
}

static USES: AtomicUsize = AtomicUsize::new(0);

/// Each of the three tests below uses the shared session from its own runtime; under
/// `cargo test` (one process) the session is opened by the first and used by the two later ones.
async fn use_shared_session() {
    // Under `cargo test` these tests run at once: reading the counter and counting the use
    // happen together, or a later reader could count first.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let s = shared_session();
    assert_eq!(
        call_text(&s, "echo", json!({"text": "still here"})).await,
        "still here"
    );
    let _turn = ONE_AT_A_TIME.lock().await;
    let count: u64 = call_text(&s, "counter", json!({})).await.parse().unwrap();
    let uses = USES.fetch_add(1, Ordering::SeqCst) + 1;
    // The server-side counter proves every use hit the same upstream session.
    assert!(
        count >= uses as u64,
        "counter {count} < uses {uses}: not the same session"
    );
}

#[tokio::test]
async fn shared_session_used_by_first_test() {
    use_shared_session().await;
}

#[tokio::test]
async fn shared_session_used_by_second_test() {
    use_shared_session().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_session_used_by_third_test() {
    use_shared_session().await;
}

#[test]
fn shared_session_works_from_plain_test_through_run() {
    let s = shared_session();
    let out = mcp_harness::run(async move { call_text(&s, "add", json!({"a": 2, "b": 3})).await });
    assert_eq!(out, "5");
}

#[tokio::test]
async fn shared_session_serves_100_concurrent_tasks() {
    let s = shared_session();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let text = format!("task-{i}");
                let r = s
                    .call_tool("echo", json!({"text": text}))
                    .await
                    .expect("echo");
                assert_eq!(mcp_harness::tool_text(&r), text);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task panicked");
    }
}

#[test]
fn run_works_inside_another_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v = rt.block_on(async { mcp_harness::run(async { 40 + 2 }) });
    assert_eq!(v, 42);
}

#[test]
fn run_propagates_the_original_panic_message() {
    let caught =
        std::panic::catch_unwind(|| mcp_harness::run(async { panic!("original message 7f3a") }));
    let payload = caught.expect_err("the panic must propagate");
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(msg.contains("original message 7f3a"), "got {msg:?}");
}

// `#[mcp_harness::test]`: the attribute form of `run`.

/// The body runs on the shared runtime's workers, not on a runtime of its own.
#[mcp_harness::test]
async fn the_test_attribute_runs_the_body_on_the_shared_runtime() {
    assert_eq!(std::thread::current().name(), Some("mcp-harness"));
    // And the shared session (maybe opened by another test, from another runtime) answers.
    use_shared_session().await;
}

/// `?` works in the body as written, with the declared error type.
#[mcp_harness::test]
async fn the_test_attribute_accepts_a_result_and_question_marks() -> mcp_harness::Result<()> {
    let s = shared_session();
    let out = s.call_tool("echo", json!({"text": "through ?"})).await?;
    assert_eq!(mcp_harness::tool_text(&out), "through ?");
    Ok(())
}

/// A panic in the body fails the test with the original message.
#[mcp_harness::test]
#[should_panic(expected = "original message 91c2")]
async fn the_test_attribute_keeps_the_original_panic_message() {
    panic!("original message 91c2");
}

/// With rstest first, fixtures are resolved and handed to the async body.
#[rstest::rstest]
#[mcp_harness::test]
async fn the_test_attribute_takes_rstest_fixtures(
    #[from(mcp_harness_fixtures::alice)] alice: Session,
) {
    let who = crate::support::call_json(&alice, "whoami", json!({})).await;
    assert_eq!(who["subject"], "alice");
}
