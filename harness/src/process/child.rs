//! One spawned process: its state, signals, logs, and the list of every child still alive.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::logs::{CappedLog, drain, log_paths, tail_of};
use super::spawn::spawn_child;
use super::{ServerSpec, watchdog};
use crate::errors::{Error, Result};
use crate::runtime;

/// What a child process is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChildState {
    Running,
    Paused,
    Exited(String),
}

fn describe_status(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("signal {sig} ({})", signal_name(sig)),
            _ => s.to_string(),
        },
        Err(e) => format!("unknown status ({e})"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// One spawned process: its pid, state and log files. Kills its process group when dropped.
pub(crate) struct ChildProcess {
    pub(crate) name: String,
    pub(crate) pid: u32,
    stdout_log: Option<Arc<CappedLog>>,
    stderr_log: Arc<CappedLog>,
    state: watch::Receiver<ChildState>,
    paused: Mutex<bool>,
}

impl fmt::Debug for ChildProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildProcess")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("state", &self.state())
            .finish()
    }
}

/// A freshly spawned child and what the caller reads from it.
pub(crate) struct Spawned {
    pub(crate) proc: Arc<ChildProcess>,
    /// The protocol pipes, for stdio children.
    pub(crate) pipes: Option<StdioPipes>,
    /// Its stdout lines, for network servers (address discovery).
    pub(crate) lines: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

/// The pipes of a stdio child, handed to the session's transport.
pub(crate) struct StdioPipes {
    pub(crate) stdin: tokio::process::ChildStdin,
    pub(crate) stdout: tokio::process::ChildStdout,
}

static CHILDREN: LazyLock<Mutex<Vec<Weak<ChildProcess>>>> =
    LazyLock::new(|| Mutex::new(Vec::new()));

impl ChildProcess {
    /// Spawns `spec` with `port` substituted. With `stdio_pipes`, stdin/stdout are the protocol
    /// channel; otherwise stdin is null and stdout is drained to its log (lines also go to
    /// `stdout_lines` for address discovery).
    pub(crate) async fn spawn(spec: &ServerSpec, port: u16, stdio_pipes: bool) -> Result<Spawned> {
        let (stdout_path, stderr_path) = log_paths(&spec.name);
        let spawn_err = |source: std::io::Error| Error::Spawn {
            server: spec.name.clone(),
            command: spec.command_line(),
            source,
        };
        let cap = spec.log_cap.unwrap_or_else(super::logs::default_cap);
        let stderr_log = Arc::new(CappedLog::create(stderr_path, cap).map_err(spawn_err)?);
        let stdout_log = if stdio_pipes {
            None
        } else {
            Some(Arc::new(
                CappedLog::create(stdout_path, cap).map_err(spawn_err)?,
            ))
        };
        let mut cmd = spec.command(port);
        cmd.stderr(Stdio::piped());
        if stdio_pipes {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        }
        let mut child = spawn_child(cmd).await.map_err(spawn_err)?;
        let pid = child.id().unwrap_or(0);
        let (state_tx, state_rx) = watch::channel(ChildState::Running);
        let mut pipes = None;
        let mut lines_rx = None;
        let stdout = child.stdout.take();
        let mut drains = Vec::new();
        let stderr_lines = if stdio_pipes || !spec.reads_address_from_stderr() {
            None
        } else {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            lines_rx = Some(rx);
            Some(tx)
        };
        if let Some(stderr) = child.stderr.take() {
            drains.push(runtime::spawn(drain(
                stderr,
                stderr_log.clone(),
                stderr_lines.clone(),
            )));
        }
        if stdio_pipes {
            match (child.stdin.take(), stdout) {
                (Some(stdin), Some(stdout)) => pipes = Some(StdioPipes { stdin, stdout }),
                _ => {
                    return Err(spawn_err(std::io::Error::other(
                        "the child's stdio pipes are missing",
                    )));
                }
            }
        } else if let (Some(stdout), Some(log)) = (stdout, &stdout_log) {
            // Address discovery reads stdout (and stderr, for output patterns) lines.
            let tx = match stderr_lines {
                Some(tx) => tx,
                None => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    lines_rx = Some(rx);
                    tx
                }
            };
            drains.push(runtime::spawn(drain(stdout, log.clone(), Some(tx))));
        }
        let proc = Arc::new(ChildProcess {
            name: spec.name.clone(),
            pid,
            stdout_log,
            stderr_log,
            state: state_rx,
            paused: Mutex::new(false),
        });
        // The watcher owns the Child: it reaps it and publishes how it exited. What the
        // server left behind in its process group goes with it (the group id cannot be reused
        // while one of its members lives), then the watchdog forgets the group.
        runtime::spawn(async move {
            let status = child.wait().await;
            if pid != 0 {
                // SAFETY: plain syscall on the process group we created (process_group(0)).
                unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
                watchdog::forget(pid);
            }
            // Whoever learns of the exit reads the logs next: let the last output land first
            // (bounded: a process outside the group may still hold the pipes).
            let _ =
                runtime::timeout(Duration::from_secs(1), futures::future::join_all(drains)).await;
            let _ = state_tx.send(ChildState::Exited(describe_status(&status)));
        });
        runtime::at_exit(
            runtime::ExitStep::StopProcesses,
            |_| kill_all_children(),
            kill_all_children_now,
        );
        {
            let mut all = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&proc));
        }
        tracing::debug!(server = %spec.name, pid, "spawned");
        Ok(Spawned {
            proc,
            pipes,
            lines: lines_rx,
        })
    }

    pub(crate) fn state(&self) -> ChildState {
        let s = self.state.borrow().clone();
        if s == ChildState::Running && *self.paused.lock().unwrap_or_else(|p| p.into_inner()) {
            ChildState::Paused
        } else {
            s
        }
    }

    /// A short description for error messages: `server `x` (pid 1) exited: signal 9 (SIGKILL)`.
    pub(crate) fn describe(&self) -> String {
        match self.state() {
            ChildState::Running => format!("server `{}` (pid {}) is running", self.name, self.pid),
            ChildState::Paused => format!(
                "server `{}` (pid {}) is paused (SIGSTOP)",
                self.name, self.pid
            ),
            ChildState::Exited(how) => format!(
                "server `{}` (pid {}) exited with {how}",
                self.name, self.pid
            ),
        }
    }

    /// Where its stderr goes.
    pub(crate) fn stderr_path(&self) -> &Path {
        self.stderr_log.path()
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        self.stderr_log.flush();
        let mut out = tail_of(self.stderr_log.path(), lines);
        if let Some(log) = &self.stdout_log {
            log.flush();
            let t = tail_of(log.path(), lines);
            if !t.is_empty() {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&t);
            }
        }
        out
    }

    pub(crate) fn logs(&self) -> String {
        let read = |log: &CappedLog| {
            log.flush();
            std::fs::read(log.path())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let mut s = String::new();
        if let Some(log) = &self.stdout_log {
            s.push_str(&read(log));
        }
        s.push_str(&read(&self.stderr_log));
        s
    }

    fn has_exited(&self) -> bool {
        matches!(*self.state.borrow(), ChildState::Exited(_))
    }

    /// Sends `sig` to the whole process group, unless the process is already reaped.
    pub(crate) fn signal(&self, sig: i32) {
        if self.has_exited() || self.pid == 0 {
            return;
        }
        // SAFETY: plain syscall; the group id is the child's pid (process_group(0)).
        unsafe {
            libc::killpg(self.pid as libc::pid_t, sig);
        }
    }

    /// Waits until the process exited, up to `within`; true if it did.
    pub(crate) async fn wait_exit(&self, within: Duration) -> bool {
        let mut rx = self.state.clone();
        runtime::timeout(within, rx.wait_for(|s| matches!(s, ChildState::Exited(_))))
            .await
            .is_ok()
    }

    /// SIGTERM, a grace period, then SIGKILL; bounded.
    pub(crate) async fn stop(&self, grace: Duration) {
        if self.has_exited() {
            return;
        }
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        if !self.wait_exit(grace).await {
            self.signal(libc::SIGKILL);
            self.wait_exit(Duration::from_secs(5)).await;
        }
    }

    pub(crate) async fn kill(&self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(5)).await;
    }

    pub(crate) fn pause(&self) {
        self.signal(libc::SIGSTOP);
        *self.paused.lock().unwrap_or_else(|p| p.into_inner()) = true;
        // SIGSTOP is delivered asynchronously: a thread running on another core could still
        // answer one more request. Return only once every thread is stopped (bounded).
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.all_threads_stopped() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn all_threads_stopped(&self) -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return true;
        };
        tasks.filter_map(|t| t.ok()).all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .map(|stat| {
                    let state = stat
                        .rsplit(')')
                        .next()
                        .and_then(|s| s.split_whitespace().next());
                    matches!(state, Some("T" | "t" | "Z" | "X"))
                })
                .unwrap_or(true)
        })
    }

    pub(crate) fn resume(&self) {
        self.signal(libc::SIGCONT);
        *self.paused.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }

    /// A future that completes when the process exits, with how it exited.
    pub(crate) fn exited(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut rx = self.state.clone();
        async move {
            match rx.wait_for(|s| matches!(s, ChildState::Exited(_))).await {
                Ok(s) => match &*s {
                    ChildState::Exited(how) => how.clone(),
                    _ => unreachable!("wait_for returned a state it was not waiting for"),
                },
                Err(_) => "unknown status (watcher gone)".to_owned(),
            }
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGKILL);
    }
}

/// Every child process still alive.
fn live_children() -> Vec<Arc<ChildProcess>> {
    CHILDREN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}

/// Prints the log tails of every live child to stderr (called when a test body panics).
pub(crate) fn print_log_tails_for_failure() {
    let children = live_children();
    for c in children {
        let tail = c.log_tail(20);
        eprintln!(
            "---- mcp-harness: {} (logs: {}) ----\n{}",
            c.describe(),
            c.stderr_path().display(),
            if tail.is_empty() {
                "(no output)"
            } else {
                &tail
            }
        );
    }
}

/// SIGKILLs every child still alive, without waiting (last resort at exit).
pub(crate) fn kill_all_children_now() {
    let children = live_children();
    for c in &children {
        c.signal(libc::SIGCONT);
        c.signal(libc::SIGKILL);
    }
}

/// Stops every child still alive: SIGTERM, a short grace, SIGKILL (process exit).
pub(crate) fn kill_all_children() {
    let children = live_children();
    for c in &children {
        c.signal(libc::SIGCONT);
        c.signal(libc::SIGTERM);
    }
    if runtime::existing_handle().is_some() {
        futures::executor::block_on(async {
            for c in &children {
                c.wait_exit(Duration::from_millis(500)).await;
            }
        });
    }
    for c in &children {
        c.signal(libc::SIGKILL);
    }
}
