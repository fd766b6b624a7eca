//! Helpers shared by the scenario modules.

use std::future::Future;
use std::time::{Duration, Instant};

use mcp_harness::{Bundled, BundledServer, Session, Target, Transport};
use serde_json::Value;

/// Retries `check` until it returns `Some`, with a short backoff, failing at `deadline`.
/// For conditions that have no event to wait on (another process's state).
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Blocking twin of [`eventually`] for plain threads.
pub fn eventually_blocking<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// A stdio fast-test session whose server reports `subject` in whoami.
pub async fn stdio_session(name: &str) -> Session {
    let spec = BundledServer::new(Bundled::FastTest, Transport::Stdio)
        .subject(name)
        .spec();
    Session::builder(Target::Stdio(spec))
        .name(name)
        .connect()
        .await
        .expect("stdio fast-test session")
}

/// Calls a tool and parses its text as JSON.
pub async fn call_json(s: &Session, tool: &str, args: Value) -> Value {
    let r = s
        .call_tool(tool, args)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let text = mcp_harness::tool_text(&r);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool} returned non-JSON {text:?}: {e}"))
}

/// Calls a tool and returns its text.
pub async fn call_text(s: &Session, tool: &str, args: Value) -> String {
    let r = s
        .call_tool(tool, args)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    mcp_harness::tool_text(&r)
}

/// True while a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state is the first field after the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}
