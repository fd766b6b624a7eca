//! The spawner thread: every child is forked from one thread that lives as long as the process.

use std::os::unix::process::CommandExt;
use std::sync::{LazyLock, Mutex};

use super::watchdog;
use crate::runtime;

struct SpawnRequest {
    cmd: std::process::Command,
    reply: tokio::sync::oneshot::Sender<std::io::Result<tokio::process::Child>>,
}

/// One thread, alive for the whole process, spawns every child: PDEATHSIG is tied to the
/// spawning thread, so a child spawned from a short-lived test thread would be killed when that
/// test ends.
static SPAWNER: LazyLock<Mutex<std::sync::mpsc::Sender<SpawnRequest>>> = LazyLock::new(|| {
    let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
    let handle = runtime::handle().clone();
    std::thread::Builder::new()
        .name("mcp-harness-spawner".into())
        .spawn(move || {
            let _enter = handle.enter();
            // Started from this thread too, before the first server (see `watchdog`).
            watchdog::start();
            for req in rx {
                let mut cmd = tokio::process::Command::from(req.cmd);
                cmd.kill_on_drop(true);
                let _ = req.reply.send(cmd.spawn());
            }
        })
        .expect("mcp-harness: cannot start the spawner thread");
    Mutex::new(tx)
});

/// Spawns through the spawner thread; awaiting (not blocking) keeps runtime workers free while
/// the fork runs.
pub(super) async fn spawn_child(
    mut cmd: std::process::Command,
) -> std::io::Result<tokio::process::Child> {
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    SPAWNER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(SpawnRequest { cmd, reply: tx })
        .map_err(|_| std::io::Error::other("the mcp-harness spawner thread is gone"))?;
    let child = rx
        .await
        .map_err(|_| std::io::Error::other("the mcp-harness spawner thread is gone"))??;
    if let Some(pid) = child.id() {
        watchdog::watch(pid);
    }
    Ok(child)
}
