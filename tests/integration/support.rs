//! Helpers shared by the scenario modules.

use std::future::Future;
use std::time::{Duration, Instant};

use mcp_harness::{
    Bundled, BundledServer, Era, Protocol, Server, ServerSpec, Session, Target, Transport,
};
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

pub use mcp_harness_servers::pid_alive;

/// Everything logged (at trace level, every target) since the first call, in this process.
pub fn captured_logs() -> String {
    let buf = log_buffer();
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// Starts capturing logs (idempotent); call at the start of a test that inspects them.
pub fn capture_logs() {
    log_buffer();
}

fn log_buffer() -> &'static std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = buf.clone();
        let make_writer = move || LogWriter(writer_buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(make_writer)
            .try_init();
        buf
    })
}

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut b = self.0.lock().unwrap();
        // Bounded: a long cargo-test run must not grow it without limit.
        if b.len() < 64 << 20 {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A real `redis-server` on a free loopback port, started through the harness's process layer
/// (stopped when the returned handle is dropped). Fails with how to install it when missing.
pub async fn redis_server() -> (mcp_harness::Server, String) {
    use mcp_harness::{AddressSource, Readiness, Server, ServerSpec};
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join("redis-server").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "redis-server is not installed: install it with `apt-get install redis-server` (scripts/setup.sh does this)"
    );
    // `{port}`: a free port the harness picks (and picks again if the server loses it).
    let spec = ServerSpec::new("redis", "redis-server")
        .args([
            "--port",
            "{port}",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        // Not an MCP server: only its TCP port is probed.
        .transport(Transport::StreamableHttp)
        .address(AddressSource::Fixed("redis://127.0.0.1:{port}".into()))
        .readiness(Readiness::TcpConnect);
    let server = Server::start(spec).await.expect("redis-server");
    let url = server.url().to_owned();
    (server, url)
}

/// The pin of an era, at its current version: `2026-07-28` or `2025-11-25`.
pub fn pin(era: Era) -> Protocol {
    match era {
        Era::Handshake => Protocol::Handshake("2025-11-25".into()),
        _ => Protocol::Stateless("2026-07-28".into()),
    }
}

/// A bundled server over `transport`: a stdio target (the session spawns it), or a started
/// HTTP or SSE server, returned so that the caller keeps it running.
pub async fn bundled(kind: Bundled, transport: Transport) -> (Target, Option<Server>) {
    match transport {
        Transport::Stdio => (
            Target::Stdio(ServerSpec::bundled(kind, Transport::Stdio)),
            None,
        ),
        other => {
            let server = Server::start(ServerSpec::bundled(kind, other))
                .await
                .unwrap_or_else(|e| panic!("{kind} starts: {e}"));
            (Target::Server(server.clone()), Some(server))
        }
    }
}

/// The Python SDK test server (prints the harness's READY line, serves stdio, streamable HTTP
/// or SSE).
pub fn python_fixture() -> String {
    format!("{}/fixtures/python_server.py", env!("CARGO_MANIFEST_DIR"))
}

/// Fails, with how to install it, unless python3 has the `mcp` SDK at 2.3 or later (the
/// first to serve 2026-07-28).
pub fn require_python_sdk() {
    let ok = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, sys; v = tuple(int(x) for x in \
             m.version('mcp').split('.')[:2]); sys.exit(0 if (2, 3) <= v < (3, 0) else 1)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with the `mcp` SDK 2.3 or later (2.x) is needed: run scripts/setup.sh \
         (pip install 'mcp>=2.3,<3')"
    );
}

/// Fails, with how to install it, unless the TypeScript SDK's everything server is on PATH.
pub fn require_everything_server() {
    let ok = std::process::Command::new("sh")
        .args(["-c", "command -v mcp-server-everything"])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "mcp-server-everything is not installed: run scripts/setup.sh \
         (npm install -g @modelcontextprotocol/server-everything)"
    );
}

/// A loopback port held for the test and never listening: connections to it are refused, and
/// no other process can take it while this lives (a port bound and released at once could be).
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    /// The port.
    pub port: u16,
}

impl RefusedPort {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// A port that refuses connections for as long as the returned guard lives.
pub fn refused_port() -> RefusedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("a loopback port");
    let port = socket.local_addr().expect("its address").port();
    RefusedPort {
        _socket: socket,
        port,
    }
}

/// A TCP front for an HTTP server: it holds its first `silent` connections open without a
/// word (each one's opening request is read and counted) and passes every later connection
/// through to `backend`. Shows that a request was really in flight, and how many attempts a
/// client made, from outside the client.
pub struct SilentFront {
    /// The url to give the client (the backend's path, the front's address).
    pub url: String,
    openings: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    accepts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentFront {
    /// Starts a front for `backend_url` (an `http://host:port/path` url).
    pub async fn start(backend_url: &str, silent: usize) -> SilentFront {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let rest = backend_url.trim_start_matches("http://");
        let (backend, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let backend = backend.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let openings = std::sync::Arc::new(AtomicUsize::new(0));
        let accepts = std::sync::Arc::new(AtomicUsize::new(0));
        let (seen, counted) = (openings.clone(), accepts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                if n <= silent {
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        if read_http_request(&mut conn).await.is_some_and(|r| {
                            r.contains("\"initialize\"") || r.contains("\"server/discover\"")
                        }) {
                            seen.fetch_add(1, Ordering::SeqCst);
                        }
                        // Silence: hold the connection open until the client gives up.
                        let mut rest = [0u8; 1024];
                        while tokio::io::AsyncReadExt::read(&mut conn, &mut rest)
                            .await
                            .is_ok_and(|n| n > 0)
                        {}
                    });
                } else {
                    let backend = backend.clone();
                    tokio::spawn(async move {
                        if let Ok(mut up) = tokio::net::TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                        }
                    });
                }
            }
        });
        SilentFront {
            url,
            openings,
            accepts,
            task,
        }
    }

    /// Opening requests (`initialize` or `server/discover`) received on silent connections.
    pub fn silent_openings(&self) -> usize {
        self.openings.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for SilentFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP request (head and `Content-Length` body) from `conn`; `None` at EOF.
pub async fn read_http_request(conn: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(text);
            }
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A bundled `fast-test` over streamable HTTP, of the calling test's own (so that server-side
/// counts belong to it alone).
pub async fn fast_test_http() -> Server {
    Server::start(ServerSpec::bundled(
        Bundled::FastTest,
        Transport::StreamableHttp,
    ))
    .await
    .expect("fast-test over http")
}

/// This test binary run again for one test only (`name`, which may be ignored), with its
/// output not captured: for behaviour that needs a process of its own (its exit, its
/// environment).
pub fn rerun_test_binary(name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([name, "--exact", "--ignored", "--nocapture"]);
    cmd
}

/// The callback servers one OAuth flow started, noted by an observer (see
/// [`noting_callbacks`]).
pub type NotedCallbacks = std::sync::Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>;

/// `oauth` with an observer that notes the address of every callback server its flows start
/// (the first flow's, and those of later re-authorizations), each once.
pub fn noting_callbacks(oauth: mcp_harness::OAuth) -> (mcp_harness::OAuth, NotedCallbacks) {
    let noted = NotedCallbacks::default();
    let sink = noted.clone();
    let oauth = oauth.observe(move |e| {
        if let Some(addr) = e.callback {
            let mut noted = sink.lock().unwrap();
            if !noted.contains(&addr) {
                noted.push(addr);
            }
        }
    });
    (oauth, noted)
}

/// None of the noted callback servers is alive: stopped and awaited before the flow returned,
/// with no waiting. (The process-wide list may hold other tests' flows under `cargo test`.)
pub fn assert_callbacks_stopped(noted: &NotedCallbacks) {
    let live = mcp_harness::live_callback_servers();
    for addr in noted.lock().unwrap().iter() {
        assert!(
            !live.contains(addr),
            "the callback server {addr} is still alive"
        );
    }
}
