//! Kills the process groups of our servers when this process dies, however it dies.
//!
//! `PR_SET_PDEATHSIG` kills a server's own process only: a server started through a wrapper
//! (`npx`, `uv run`, `sh -c`) really runs in a grandchild, which would outlive a SIGKILLed
//! test process. So one small `sh` per test process, started without PDEATHSIG and in a
//! process group of its own, keeps the list of our servers' process groups (`+ pgid` when one
//! is spawned, `- pgid` once it is reaped) on its stdin. When this process dies, the kernel
//! closes the write end, `read` sees EOF and the watchdog SIGKILLs every group still listed,
//! then exits. Its stdout and stderr are `/dev/null`: it never holds the test's output open.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

const SCRIPT: &str = r#"trap '' HUP INT TERM
groups=' '
while read -r op group; do
  case "$op" in
    +) groups="$groups$group " ;;
    -) kept=' '; for g in $groups; do [ "$g" = "$group" ] || kept="$kept$g "; done; groups=$kept ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
"#;

static STDIN: Mutex<Option<ChildStdin>> = Mutex::new(None);

/// Starts the watchdog (once; called on the spawner thread). Without `sh`, a warning:
/// direct children are still covered by PDEATHSIG.
pub(crate) fn start() {
    let spawned = Command::new("sh")
        .args(["-c", SCRIPT, "mcp-harness-watchdog"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    match spawned {
        // The watchdog exits when this process does; it is never waited for.
        Ok(mut child) => *lock() = child.stdin.take(),
        Err(e) => tracing::warn!(
            error = %e,
            "mcp-harness: cannot start the watchdog (`sh`); processes that servers start \
             themselves may outlive a killed test process"
        ),
    }
}

/// Lists the process group `pgid` (a server just spawned).
pub(crate) fn watch(pgid: u32) {
    send(&format!("+ {pgid}\n"));
}

/// Unlists the process group `pgid` (its leader was reaped and the group killed).
pub(crate) fn forget(pgid: u32) {
    send(&format!("- {pgid}\n"));
}

fn lock() -> std::sync::MutexGuard<'static, Option<ChildStdin>> {
    STDIN.lock().unwrap_or_else(|p| p.into_inner())
}

fn send(line: &str) {
    let mut guard = lock();
    if let Some(stdin) = guard.as_mut()
        && stdin.write_all(line.as_bytes()).is_err()
    {
        *guard = None;
        tracing::warn!(
            "mcp-harness: the watchdog is gone; processes that servers start themselves may \
             outlive a killed test process"
        );
    }
}
