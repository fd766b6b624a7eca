//! The life of a session the pool lends out, against real stdio upstreams (each pooled session
//! is its own server process, so a session can die alone): discard, a tool error, a session that
//! dies while lent or while idle, busy sessions at `drain` and `close_all`, and the upstream
//! processes after `close_all`. Both protocol eras (a stdio server serves the one it is asked).

use std::time::Duration;

use mcp_harness::pool::AcquireRequest;
use mcp_harness::{Bundled, Era, ServerSpec, SessionPool, Transport, tool_text};
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::{eventually, pid_alive, pin};

fn pool(era: Era) -> mcp_harness::pool::PoolBuilder {
    SessionPool::builder()
        .protocol(pin(era))
        .max_sessions_per_key(1)
        .acquire_timeout(Duration::from_secs(10))
}

fn stdio(user: &str) -> AcquireRequest {
    AcquireRequest::stdio(ServerSpec::bundled(Bundled::FastTest, Transport::Stdio)).user(user)
}

async fn pid_of(s: &mcp_harness::Session) -> u32 {
    let stats: Value =
        serde_json::from_str(&tool_text(&s.call_tool("stats", json!({})).await.unwrap())).unwrap();
    u32::try_from(stats["pid"].as_u64().unwrap()).unwrap()
}

fn kill(pid: u32) {
    // SAFETY: a plain syscall on a child process this test identified by its own report.
    unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL) };
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn a_tool_error_keeps_the_session_and_discard_drops_it(#[case] era: Era) {
    let pool = pool(era).build();
    let req = stdio("alice");
    let first = {
        let s = pool.acquire(req.clone()).await.unwrap();
        let out = s.call_tool("fail", json!({"message": "no"})).await.unwrap();
        assert_eq!(out.is_error, Some(true));
        pid_of(&s).await
    };
    {
        let s = pool.acquire(req.clone()).await.unwrap();
        assert_eq!(
            pid_of(&s).await,
            first,
            "the same session after an isError result"
        );
        s.discard();
    }
    eventually(
        "the discarded session's server to exit",
        Duration::from_secs(10),
        || async { (!pid_alive(first)).then_some(()) },
    )
    .await;
    let s = pool.acquire(req).await.unwrap();
    assert_ne!(pid_of(&s).await, first, "a new session after discard()");
    drop(s);
    let m = pool.metrics();
    assert_eq!((m.hits, m.misses), (1, 2), "{m:?}");
    pool.close_all().await;
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn a_session_that_dies_while_lent_is_evicted_at_release_without_discard(#[case] era: Era) {
    // The reference's dead-owner leak: the session's owner task ended under the caller, who
    // then releases it normally. With one slot per key, the next acquire must still create.
    let pool = pool(era).build();
    let req = stdio("bob");
    let s = pool.acquire(req.clone()).await.unwrap();
    let pid = pid_of(&s).await;
    kill(pid);
    let handle = (*s).clone();
    eventually(
        "the lent session to close",
        Duration::from_secs(10),
        || async { handle.is_closed().then_some(()) },
    )
    .await;
    drop(s); // released, not discarded
    let m = pool.metrics();
    assert_eq!(m.evictions, 1, "{m:?}");
    assert_eq!(m.total_active_sessions, 0, "the slot is free: {m:?}");
    let again = pool.acquire(req).await.expect("the freed slot creates");
    assert_ne!(pid_of(&again).await, pid);
    drop(again);
    pool.close_all().await;
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn a_closed_idle_session_is_discarded_at_acquire_with_health_checks_off(#[case] era: Era) {
    // No health check is due for an hour: only the closed check can catch the dead session.
    let pool = pool(era)
        .health_check_interval(Duration::from_secs(3600))
        .build();
    let req = stdio("carol");
    let (pid, handle) = {
        let s = pool.acquire(req.clone()).await.unwrap();
        (pid_of(&s).await, (*s).clone())
    };
    kill(pid);
    eventually(
        "the idle session to close",
        Duration::from_secs(10),
        || async { handle.is_closed().then_some(()) },
    )
    .await;
    let s = pool.acquire(req).await.expect("a new session");
    assert_ne!(pid_of(&s).await, pid);
    drop(s);
    let m = pool.metrics();
    assert_eq!(
        (m.hits, m.misses),
        (0, 2),
        "the dead session was not handed out: {m:?}"
    );
    assert_eq!(m.health_check_failures, 0, "no health check ran: {m:?}");
    pool.close_all().await;
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn busy_sessions_are_closed_when_released_after_drain_or_close_all(#[case] era: Era) {
    for close_all in [false, true] {
        let pool = pool(era).build();
        let s = pool.acquire(stdio("dave")).await.unwrap();
        let pid = pid_of(&s).await;
        let handle = (*s).clone();
        if close_all {
            pool.close_all().await;
        } else {
            pool.drain().await;
        }
        // Still lent: the caller's call goes on.
        assert_eq!(
            tool_text(
                &s.call_tool("echo", json!({"text": "still mine"}))
                    .await
                    .unwrap()
            ),
            "still mine"
        );
        drop(s);
        eventually(
            "the released session to close",
            Duration::from_secs(10),
            || async { handle.is_closed().then_some(()) },
        )
        .await;
        eventually("its server to exit", Duration::from_secs(10), || async {
            (!pid_alive(pid)).then_some(())
        })
        .await;
        assert_eq!(pool.metrics().total_active_sessions, 0);
    }
}

#[rstest]
#[case::handshake(Era::Handshake)]
#[case::stateless(Era::Stateless)]
#[tokio::test]
async fn stdio_upstream_processes_are_gone_after_close_all(#[case] era: Era) {
    let pool = pool(era).build();
    let mut pids = Vec::new();
    for user in ["erin", "frank", "grace"] {
        let s = pool.acquire(stdio(user)).await.unwrap();
        pids.push(pid_of(&s).await);
    }
    assert!(pids.iter().all(|p| pid_alive(*p)));
    pool.close_all().await;
    // close_all stops each server (SIGTERM, then SIGKILL after a grace): the exits follow.
    eventually(
        "every upstream process to exit",
        Duration::from_secs(10),
        || async { pids.iter().all(|p| !pid_alive(*p)).then_some(()) },
    )
    .await;
}
