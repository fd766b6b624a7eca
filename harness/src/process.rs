//! Real server processes: spawn, readiness, logs, signals, restart and reliable teardown.
//!
//! Every child is spawned from one thread that lives as long as the test process, with
//! `PR_SET_PDEATHSIG(SIGKILL)` (which fires when the *spawning thread* dies) and in a process
//! group of its own, so a killed test process never leaves a server behind. PDEATHSIG reaches
//! the child only; for servers started through a wrapper (`npx`, `uv run`, `sh -c`), a
//! watchdog process kills the whole process group when the test process dies (see
//! `watchdog`). Children never inherit the test's stdout/stderr: their output goes to log
//! files.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::errors::{Error, Result};
use crate::runtime;

/// How a client talks to a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Transport {
    /// JSON-RPC over the child's stdin/stdout; one process per session.
    #[default]
    Stdio,
    /// Streamable HTTP (the 2025-03-26 transport and later).
    StreamableHttp,
    /// Legacy HTTP+SSE (the 2024-11-05 transport).
    Sse,
}

impl Transport {
    /// The lower-case name used in keys, metrics and logs: `stdio`, `streamable_http`, `sse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::StreamableHttp => "streamable_http",
            Transport::Sse => "sse",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Transport {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "stdio" => Ok(Transport::Stdio),
            "http" | "streamable_http" | "streamable-http" => Ok(Transport::StreamableHttp),
            "sse" => Ok(Transport::Sse),
            other => Err(Error::Invalid {
                what: format!("transport `{other}`"),
                reason: "expected one of: stdio, http (streamable_http), sse".into(),
            }),
        }
    }
}

/// Finds a server's url in one line of its stdout.
pub type UrlMatcher = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where the harness learns a network server's address.
#[derive(Clone)]
#[non_exhaustive]
pub enum AddressSource {
    /// The server prints `MCP_HARNESS_READY {"url": ...}` on stdout (the bundled servers do).
    ReadyLine,
    /// A function over each stdout line returns the url once it sees it.
    StdoutMatch(UrlMatcher),
    /// The server writes its port to a file; the url is `template` with `{port}` replaced.
    PortFile {
        /// The file the server writes the port to.
        path: PathBuf,
        /// For example `http://127.0.0.1:{port}/mcp`.
        url_template: String,
    },
    /// The address is known in advance.
    Fixed(String),
}

impl fmt::Debug for AddressSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressSource::ReadyLine => f.write_str("ReadyLine"),
            AddressSource::StdoutMatch(_) => f.write_str("StdoutMatch(..)"),
            AddressSource::PortFile { path, url_template } => f
                .debug_struct("PortFile")
                .field("path", path)
                .field("url_template", url_template)
                .finish(),
            AddressSource::Fixed(u) => f.debug_tuple("Fixed").field(u).finish(),
        }
    }
}

/// When a network server counts as ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// As soon as its address is known.
    AddressKnown,
    /// When a TCP connection to its address succeeds.
    TcpConnect,
    /// When an MCP `initialize` round trip succeeds (the default for servers not written here).
    McpInitialize,
}

/// How to start a server: any program, in any language.
///
/// `{port}` in arguments and environment values is replaced by the port to use: `0` on the first
/// start (the server picks one and reports it), the port it reported on a restart (so a restart
/// keeps the address).
///
/// ```
/// use mcp_harness::{ServerSpec, Transport};
/// let spec = ServerSpec::new("my-python-server", "python3")
///     .args(["-m", "my_server", "--port", "{port}"])
///     .transport(Transport::StreamableHttp)
///     .url_from_stdout(|line| line.strip_prefix("listening on ").map(str::to_owned));
/// assert_eq!(spec.name(), "my-python-server");
/// ```
#[derive(Clone)]
pub struct ServerSpec {
    pub(crate) name: String,
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) env_remove: Vec<OsString>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) transport: Transport,
    pub(crate) address: AddressSource,
    pub(crate) readiness: Readiness,
    pub(crate) startup_timeout: Duration,
    pub(crate) stop_grace: Duration,
}

/// Environment values are never shown: they carry secrets (JWT keys, bearer tokens, OAuth
/// client secrets).
impl fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSpec")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("args", &self.args)
            .field(
                "env",
                &self
                    .env
                    .iter()
                    .map(|(k, _)| (k, "<redacted>"))
                    .collect::<Vec<_>>(),
            )
            .field("env_remove", &self.env_remove)
            .field("cwd", &self.cwd)
            .field("transport", &self.transport)
            .field("address", &self.address)
            .field("readiness", &self.readiness)
            .field("startup_timeout", &self.startup_timeout)
            .field("stop_grace", &self.stop_grace)
            .finish()
    }
}

impl ServerSpec {
    /// A server named `name` (used in logs and errors) started by running `program`.
    pub fn new(name: impl Into<String>, program: impl Into<OsString>) -> Self {
        ServerSpec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: None,
            transport: Transport::Stdio,
            address: AddressSource::ReadyLine,
            readiness: Readiness::McpInitialize,
            startup_timeout: Duration::from_secs(15),
            stop_grace: Duration::from_secs(2),
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server (the value may hold a secret: it is never
    /// logged).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env_remove.push(key.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the transport (default: stdio).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets where the address comes from (default: the `MCP_HARNESS_READY` line).
    pub fn address(mut self, source: AddressSource) -> Self {
        self.address = source;
        self
    }

    /// Learns the url from the first stdout line for which `f` returns `Some`.
    pub fn url_from_stdout(
        self,
        f: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.address(AddressSource::StdoutMatch(Arc::new(f)))
    }

    /// Sets the readiness check (default: an MCP initialize round trip).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Sets the startup deadline (default 15 s).
    pub fn startup_timeout(mut self, d: Duration) -> Self {
        self.startup_timeout = d;
        self
    }

    /// Sets how long a stop waits after SIGTERM before SIGKILL (default 2 s).
    pub fn stop_grace(mut self, d: Duration) -> Self {
        self.stop_grace = d;
        self
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The transport.
    pub fn transport_kind(&self) -> Transport {
        self.transport
    }

    /// The command line for messages: program and arguments, never environment values.
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self, port: u16) -> std::process::Command {
        let subst = |s: &OsString| -> OsString {
            match s.to_str() {
                Some(t) if t.contains("{port}") => t.replace("{port}", &port.to_string()).into(),
                _ => s.clone(),
            }
        };
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(self.args.iter().map(subst));
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, subst(v));
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }
}

// ---------------------------------------------------------------------------------------------
// The spawner thread

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
async fn spawn_child(mut cmd: std::process::Command) -> std::io::Result<tokio::process::Child> {
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

/// Kills the process groups of our servers when this process dies, however it dies.
///
/// `PR_SET_PDEATHSIG` kills a server's own process only: a server started through a wrapper
/// (`npx`, `uv run`, `sh -c`) really runs in a grandchild, which would outlive a SIGKILLed
/// test process. So one small `sh` per test process, started without PDEATHSIG and in a
/// process group of its own, keeps the list of our servers' process groups (`+ pgid` when one
/// is spawned, `- pgid` once it is reaped) on its stdin. When this process dies, the kernel
/// closes the write end, `read` sees EOF and the watchdog SIGKILLs every group still listed,
/// then exits. Its stdout and stderr are `/dev/null`: it never holds the test's output open.
pub(crate) mod watchdog {
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
    pub(super) fn start() {
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
}

// ---------------------------------------------------------------------------------------------
// Logs

static LOG_SEQ: AtomicU64 = AtomicU64::new(0);

fn log_dir() -> PathBuf {
    let dir = match std::env::var_os("MCP_HARNESS_LOG_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir()
            .join("mcp-harness-logs")
            .join(std::process::id().to_string()),
    };
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn log_paths(name: &str) -> (PathBuf, PathBuf) {
    let seq = LOG_SEQ.fetch_add(1, Ordering::Relaxed);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = log_dir();
    (
        dir.join(format!("{safe}-{seq}.stdout.log")),
        dir.join(format!("{safe}-{seq}.stderr.log")),
    )
}

/// The last `lines` lines of a file (empty when it cannot be read).
pub(crate) fn tail_of(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    let mut tail: VecDeque<&str> = VecDeque::new();
    for line in buf.lines() {
        if tail.len() == lines {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into_iter().collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------------------------
// A running child

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
    pub(crate) stdout_log: Option<PathBuf>,
    pub(crate) stderr_log: PathBuf,
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
        let stderr_file = std::fs::File::create(&stderr_path).map_err(spawn_err)?;
        let mut cmd = spec.command(port);
        cmd.stderr(Stdio::from(stderr_file));
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
        if stdio_pipes {
            match (child.stdin.take(), stdout) {
                (Some(stdin), Some(stdout)) => pipes = Some(StdioPipes { stdin, stdout }),
                _ => {
                    return Err(spawn_err(std::io::Error::other(
                        "the child's stdio pipes are missing",
                    )));
                }
            }
        } else if let Some(stdout) = stdout {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            lines_rx = Some(rx);
            let path = stdout_path.clone();
            runtime::spawn(async move {
                let Ok(mut file) = tokio::fs::File::create(&path).await else {
                    return;
                };
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = file.write_all(line.as_bytes()).await;
                    let _ = file.write_all(b"\n").await;
                    let _ = file.flush().await;
                    let _ = tx.send(line);
                }
            });
        }
        let proc = Arc::new(ChildProcess {
            name: spec.name.clone(),
            pid,
            stdout_log: (!stdio_pipes).then_some(stdout_path),
            stderr_log: stderr_path,
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
            let _ = state_tx.send(ChildState::Exited(describe_status(&status)));
        });
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

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let mut out = tail_of(&self.stderr_log, lines);
        if let Some(p) = &self.stdout_log {
            let t = tail_of(p, lines);
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
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut s = String::new();
        if let Some(p) = &self.stdout_log {
            s.push_str(&read(p));
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
            c.stderr_log.display(),
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

// ---------------------------------------------------------------------------------------------
// Network servers

/// A running network server process (streamable HTTP or SSE): a cheap, cloneable handle.
///
/// The process is killed when the last handle is dropped, at process exit, and (through
/// `PR_SET_PDEATHSIG`) when the test process is killed.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::{Bundled, Server, ServerSpec, Transport};
/// let server = Server::start(ServerSpec::bundled(Bundled::FastTest, Transport::StreamableHttp)).await?;
/// println!("listening at {}", server.url());
/// server.pause()?;      // SIGSTOP: calls now time out
/// server.resume()?;     // SIGCONT
/// server.restart().await?; // same address, new process
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    spec: ServerSpec,
    url: String,
    port: u16,
    current: Mutex<Arc<ChildProcess>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.inner.spec.name)
            .field("url", &self.inner.url)
            .field("pid", &self.pid())
            .finish()
    }
}

impl Server {
    /// Starts a network server and waits until it is ready (see [`Readiness`]), within the
    /// spec's startup deadline. A process that exits first fails at once with its log tail.
    pub async fn start(spec: ServerSpec) -> Result<Server> {
        Server::start_on_port(spec, 0).await
    }

    /// Starts a network server with `{port}` set to `port` (instead of 0) on its first start.
    pub async fn start_on_port(spec: ServerSpec, port: u16) -> Result<Server> {
        if spec.transport == Transport::Stdio {
            return Err(Error::Invalid {
                what: format!("server `{}`", spec.name),
                reason: "a stdio server is started by each session; connect with `Session::builder(Target::Stdio(spec))` instead of `Server::start`".into(),
            });
        }
        let (child, url) = start_child(&spec, port).await?;
        let port = port_of(&url);
        Ok(Server {
            inner: Arc::new(ServerInner {
                spec,
                url,
                port,
                current: Mutex::new(child),
            }),
        })
    }

    /// The url clients connect to (for example `http://127.0.0.1:40123/mcp`).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// The transport it speaks.
    pub fn transport(&self) -> Transport {
        self.inner.spec.transport
    }

    /// The pid of the current process.
    pub fn pid(&self) -> u32 {
        self.current().pid
    }

    pub(crate) fn current(&self) -> Arc<ChildProcess> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the current process is still running (paused counts as running).
    pub fn is_running(&self) -> bool {
        !matches!(self.current().state(), ChildState::Exited(_))
    }

    /// Everything the current process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.current().logs()
    }

    /// The last `lines` lines of the current process's logs.
    pub fn log_tail(&self, lines: usize) -> String {
        self.current().log_tail(lines)
    }

    /// A description of the process state, for messages.
    pub fn describe(&self) -> String {
        self.current().describe()
    }

    /// Kills the process group with SIGKILL and waits for the exit.
    pub async fn kill(&self) -> Result<()> {
        self.current().kill().await;
        Ok(())
    }

    /// Stops the process: SIGTERM, the spec's grace period, then SIGKILL.
    pub async fn stop(&self) -> Result<()> {
        self.current().stop(self.inner.spec.stop_grace).await;
        Ok(())
    }

    /// Freezes the process group (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) -> Result<()> {
        let c = self.current();
        if matches!(c.state(), ChildState::Exited(_)) {
            return Err(Error::Process {
                server: self.name().to_owned(),
                action: "pause".into(),
                reason: c.describe(),
            });
        }
        c.pause();
        Ok(())
    }

    /// Thaws a paused process group (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.current().resume();
        Ok(())
    }

    /// Stops the current process (if running) and starts a new one on the same address.
    pub async fn restart(&self) -> Result<()> {
        self.current().stop(self.inner.spec.stop_grace).await;
        let (child, url) = start_child(&self.inner.spec, self.inner.port).await?;
        if url != self.inner.url {
            child.stop(Duration::from_millis(200)).await;
            return Err(Error::Process {
                server: self.name().to_owned(),
                action: "restart on the same address".into(),
                reason: format!(
                    "it came back at {url} instead of {}; pass `{{port}}` to the server so it can reuse the port",
                    self.inner.url
                ),
            });
        }
        *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) = child;
        Ok(())
    }
}

fn port_of(url: &str) -> u16 {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|hostport| hostport.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

async fn start_child(spec: &ServerSpec, port: u16) -> Result<(Arc<ChildProcess>, String)> {
    let started = Instant::now();
    let Spawned {
        proc: child, lines, ..
    } = ChildProcess::spawn(spec, port, false).await?;
    let deadline = spec.startup_timeout;
    let not_ready = |child: &ChildProcess, waiting_for: &str| Error::NotReady {
        server: spec.name.clone(),
        command: spec.command_line(),
        after: deadline,
        waiting_for: waiting_for.to_owned(),
        log_tail: child.log_tail(20),
    };
    let exited_early = |child: &ChildProcess, status: String| Error::ExitedEarly {
        server: spec.name.clone(),
        command: spec.command_line(),
        status,
        log_tail: child.log_tail(20),
    };
    let address = async { discover_address(spec, lines).await };
    let url = tokio::select! {
        url = runtime::timeout(deadline, address) => match url {
            Ok(Some(url)) => url,
            Ok(None) => {
                // stdout closed without an address: the process is exiting.
                let status = runtime::timeout(Duration::from_secs(2), child.exited()).await
                    .unwrap_or_else(|_| "stdout closed without reporting an address".into());
                child.stop(Duration::from_millis(200)).await;
                return Err(exited_early(&child, status));
            }
            Err(_) => {
                child.stop(Duration::from_millis(200)).await;
                return Err(not_ready(&child, "its address"));
            }
        },
        status = child.exited() => {
            // Give the stdout drain a moment to flush the last lines into the log.
            return Err(exited_early(&child, status));
        }
    };
    let remaining = deadline.saturating_sub(started.elapsed());
    let ready = async {
        match spec.readiness {
            Readiness::AddressKnown => Ok(()),
            Readiness::TcpConnect => probe_until(remaining, || tcp_probe(&url)).await,
            Readiness::McpInitialize => {
                probe_until(remaining, || {
                    crate::session::probe_initialize(&url, spec.transport)
                })
                .await
            }
        }
    };
    tokio::select! {
        r = ready => match r {
            Ok(()) => Ok((child, url)),
            Err(last) => {
                child.stop(Duration::from_millis(200)).await;
                Err(not_ready(&child, &format!("a successful {:?} probe at {url} (last: {last})", spec.readiness)))
            }
        },
        status = child.exited() => Err(exited_early(&child, status)),
    }
}

async fn discover_address(
    spec: &ServerSpec,
    mut lines: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
) -> Option<String> {
    match &spec.address {
        AddressSource::Fixed(url) => Some(url.clone()),
        AddressSource::ReadyLine | AddressSource::StdoutMatch(_) => {
            let lines = lines.as_mut()?;
            while let Some(line) = lines.recv().await {
                let found = match &spec.address {
                    AddressSource::ReadyLine => parse_ready_line(&line),
                    AddressSource::StdoutMatch(f) => f(&line),
                    _ => None,
                };
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        AddressSource::PortFile { path, url_template } => loop {
            // A port file has no change notification we can rely on everywhere: poll it briefly.
            if let Ok(s) = tokio::fs::read_to_string(path).await
                && let Ok(port) = s.trim().parse::<u16>()
            {
                return Some(url_template.replace("{port}", &port.to_string()));
            }
            runtime::sleep(Duration::from_millis(10)).await;
        },
    }
}

/// The prefix of the line a bundled server prints when it is ready.
pub const READY_PREFIX: &str = "MCP_HARNESS_READY ";

fn parse_ready_line(line: &str) -> Option<String> {
    let json = line.strip_prefix(READY_PREFIX)?;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("url")?.as_str().map(str::to_owned)
}

async fn tcp_probe(url: &str) -> std::result::Result<(), String> {
    let hostport = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("cannot find host:port in {url}"))?
        .to_owned();
    tokio::net::TcpStream::connect(&hostport)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn probe_until<F, Fut>(within: Duration, mut probe: F) -> std::result::Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let deadline = Instant::now() + within;
    let mut delay = Duration::from_millis(5);
    let mut last = String::from("no attempt");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        match runtime::timeout(left, probe()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => return Err(format!("{last}; probe still running at the deadline")),
        }
        runtime::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}
