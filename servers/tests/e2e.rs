//! End-to-end checks of the bundled servers with raw JSON-RPC: this binary re-executes
//! itself as a server (through `serve_from_env_if_requested`, before anything else runs), like
//! the harness does. `harness = false`: the checks run as separate tests through libtest-mimic
//! (the libtest command line and output, which cargo-nextest and cargo test speak), so one
//! failure does not hide the others.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use libtest_mimic::{Arguments, Trial};
use mcp_harness_servers::{
    AuthMode, BEARER_TOKENS_ENV, Bundled, EVENT_LOG_ENV, JWT_SECRET_ENV, READY_PREFIX, SERVE_ENV,
    SUBJECT_ENV, ServeOptions, Transport, serve_http_on,
};
use serde_json::{Value, json};

fn main() {
    mcp_harness_servers::serve_from_env_if_requested();
    // reqwest is built with rustls but no provider of its own in this workspace.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let args = Arguments::from_args();
    let in_dir = |name: &'static str, check: fn(&Path)| {
        Trial::test(name, move || {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            check(dir.path());
            Ok(())
        })
    };
    let on_runtime = |name: &'static str,
                      check: fn(&Path) -> futures::future::BoxFuture<'_, ()>| {
        in_dir_async(name, check)
    };
    let trials = vec![
        in_dir(
            "stdio_serves_tools_notifications_resources_prompts_and_cancellation",
            stdio,
        ),
        on_runtime("http_in_process_serves_sessions", |_| {
            Box::pin(http_in_process())
        }),
        on_runtime(
            "http_child_checks_bearer_tokens_and_stops_on_sigterm",
            |d| Box::pin(http_child_bearer(d)),
        ),
        on_runtime("http_child_checks_jwts_statelessly", |d| {
            Box::pin(http_child_jwt_stateless(d))
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// A trial whose check runs on a tokio runtime of its own, in a fresh folder.
fn in_dir_async(
    name: &'static str,
    check: fn(&Path) -> futures::future::BoxFuture<'_, ()>,
) -> Trial {
    Trial::test(name, move || {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(check(dir.path()));
        Ok(())
    })
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"e2e-client","version":"1.0"}}})
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

fn text_of(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {response}"))
}

// ---------------------------------------------------------------------------------------
// stdio

struct StdioClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    notifications: Vec<Value>,
}

impl StdioClient {
    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    fn response(&mut self, id: u64) -> Value {
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "server closed stdout"
            );
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
            if message["id"] == json!(id) && message.get("method").is_none() {
                return message;
            }
            self.notifications.push(message);
        }
    }

    fn request(&mut self, message: Value) -> Value {
        let id = message["id"].as_u64().unwrap();
        self.send(&message);
        self.response(id)
    }
}

fn stdio(dir: &Path) {
    let events = dir.join("stdio-events.jsonl");
    let opts = ServeOptions::new(Bundled::FastTest, Transport::Stdio);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SERVE_ENV, serde_json::to_string(&opts).unwrap())
        .env(SUBJECT_ENV, "alice")
        .env(EVENT_LOG_ENV, &events)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = StdioClient {
        stdin: child.stdin.take(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
        notifications: Vec::new(),
    };
    let init = client.request(initialize(1));
    assert_eq!(init["result"]["serverInfo"]["name"], "fast-test", "{init}");
    assert_eq!(
        init["result"]["capabilities"]["tools"]["listChanged"], true,
        "{init}"
    );
    client.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));

    let tools = client.request(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in [
        "echo", "add", "sleep", "fail", "error", "big", "counter", "whoami", "notify", "progress",
        "log", "stats",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(
        text_of(&client.request(call(3, "echo", json!({"text":"hi"})))),
        "hi"
    );
    let add = client.request(call(4, "add", json!({"a":2,"b":3.5})));
    assert_eq!(text_of(&add), "5.5");
    assert_eq!(add["result"]["structuredContent"]["sum"], 5.5);
    let fail = client.request(call(5, "fail", json!({"message":"nope"})));
    assert_eq!(fail["result"]["isError"], true);
    assert_eq!(text_of(&fail), "nope");
    let error = client.request(call(6, "error", json!({"code":-32042,"message":"boom"})));
    assert_eq!(error["error"]["code"], -32042, "{error}");
    assert_eq!(
        text_of(&client.request(call(7, "big", json!({"bytes":1000})))).len(),
        1000
    );
    assert_eq!(text_of(&client.request(call(8, "counter", json!({})))), "1");
    assert_eq!(text_of(&client.request(call(9, "counter", json!({})))), "2");
    let who: Value =
        serde_json::from_str(text_of(&client.request(call(10, "whoami", json!({}))))).unwrap();
    assert_eq!(who["subject"], "alice", "{who}");
    assert_eq!(who["client"], "e2e-client", "{who}");
    assert_eq!(who["transport"], "stdio", "{who}");

    // progress and notifications
    let progress = client.request(json!({"jsonrpc":"2.0","id":11,"method":"tools/call",
        "params":{"name":"progress","arguments":{"steps":3},"_meta":{"progressToken":"p1"}}}));
    assert_eq!(text_of(&progress), "done");
    client.request(call(12, "notify", json!({"kind":"prompts"})));
    client.request(call(
        13,
        "log",
        json!({"level":"warning","message":"careful"}),
    ));
    let methods: Vec<&str> = client
        .notifications
        .iter()
        .filter_map(|n| n["method"].as_str())
        .collect();
    assert_eq!(
        methods
            .iter()
            .filter(|m| **m == "notifications/progress")
            .count(),
        3,
        "{methods:?}"
    );
    assert!(
        methods.contains(&"notifications/prompts/list_changed"),
        "{methods:?}"
    );
    assert!(methods.contains(&"notifications/message"), "{methods:?}");

    // resources and prompts
    let read = client.request(json!({"jsonrpc":"2.0","id":14,"method":"resources/read",
        "params":{"uri":"fast-test://readme"}}));
    assert!(
        read["result"]["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("fast-test")
    );
    let prompt = client.request(json!({"jsonrpc":"2.0","id":15,"method":"prompts/get",
        "params":{"name":"greeting","arguments":{"name":"Bob"}}}));
    assert_eq!(
        prompt["result"]["messages"][0]["content"]["text"],
        "Say hello to Bob."
    );

    // cancellation
    client.send(&call(16, "sleep", json!({"ms":30000})));
    // Cancel only once the server runs the call (its `sleeping` count says so).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut id = 100;
    loop {
        id += 1;
        let stats: Value =
            serde_json::from_str(text_of(&client.request(call(id, "stats", json!({}))))).unwrap();
        if stats["sleeping"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sleep call never started: {stats}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    client.send(&json!({"jsonrpc":"2.0","method":"notifications/cancelled",
        "params":{"requestId":16,"reason":"test"}}));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats: Value =
            serde_json::from_str(text_of(&client.request(call(17, "stats", json!({}))))).unwrap();
        if stats["cancellations"] == 1 {
            assert_eq!(stats["initializations"], 1, "{stats}");
            assert_eq!(stats["initializations_by_client"]["e2e-client"], 1);
            assert_eq!(stats["active_sessions"], 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sleep was not cancelled: {stats}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let n = 500u64;
    let started = Instant::now();
    for i in 0..n {
        client.request(call(1000 + i, "echo", json!({"text":"x"})));
    }
    println!(
        "e2e: stdio echo round trip ~{:?}",
        started.elapsed() / n as u32
    );

    // stdin EOF ends the server
    drop(client.stdin.take());
    let status = wait_timeout(&mut client.child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&events).unwrap();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["initialized", "cancelled", "session_closed"],
        "{log}"
    );
    assert_eq!(events[1]["request_id"], 16);
    assert_eq!(events[2]["client"], "e2e-client");
    assert!(
        events
            .iter()
            .all(|e| e["pid"].is_u64() && e["t_us"].is_u64())
    );
    println!("e2e: stdio ok");
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

struct HttpClient {
    notifications: Vec<Value>,
    http: reqwest::Client,
    url: String,
    session: Option<String>,
    token: Option<String>,
}

impl HttpClient {
    fn new(url: String) -> Self {
        Self {
            notifications: Vec::new(),
            http: reqwest::Client::new(),
            url,
            session: None,
            token: None,
        }
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("x-visible", "yes")
            .header("x-refresh-token", "do-not-echo")
            .body(body.to_string());
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.send().await.unwrap()
    }

    /// The JSON-RPC response to `body` (from JSON or SSE).
    async fn request(&mut self, body: Value) -> Value {
        let response = self.post(&body).await;
        assert!(response.status().is_success(), "{}", response.status());
        if let Some(session) = response.headers().get("mcp-session-id") {
            self.session = Some(session.to_str().unwrap().to_owned());
        }
        let sse = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
        let text = response.text().await.unwrap();
        if !sse {
            return serde_json::from_str(&text).unwrap();
        }
        let mut response = None;
        for message in text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        {
            if message["id"] == body["id"] && message.get("method").is_none() {
                response = Some(message);
            } else {
                self.notifications.push(message);
            }
        }
        response.unwrap_or_else(|| panic!("no response in SSE body {text:?}"))
    }

    async fn open(&mut self) -> Value {
        let init = self.request(initialize(1)).await;
        let response = self
            .post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        assert_eq!(response.status().as_u16(), 202);
        init
    }
}

async fn http_in_process() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve_http_on(
        listener,
        ServeOptions::new(Bundled::FastTest, Transport::Http),
        shutdown.clone(),
    ));
    let mut a = HttpClient::new(url.clone());
    let mut b = HttpClient::new(url);
    a.open().await;
    b.open().await;
    assert_ne!(a.session, b.session);
    assert_eq!(
        text_of(&a.request(call(2, "counter", json!({}))).await),
        "1"
    );
    assert_eq!(
        text_of(&a.request(call(3, "counter", json!({}))).await),
        "2"
    );
    assert_eq!(
        text_of(&b.request(call(2, "counter", json!({}))).await),
        "1"
    );
    let who: Value =
        serde_json::from_str(text_of(&a.request(call(4, "whoami", json!({}))).await)).unwrap();
    assert_eq!(who["subject"], Value::Null, "{who}");
    assert_eq!(who["session_id"].as_str(), a.session.as_deref(), "{who}");
    assert_eq!(who["client"], "e2e-client", "{who}");
    assert_eq!(who["transport"], "http", "{who}");
    assert_eq!(who["headers"]["x-visible"], "yes", "{who}");
    assert_eq!(who["headers"]["x-refresh-token"], "<redacted>", "{who}");
    // Notifications not tied to a request travel on the standalone GET stream.
    let mut get = a
        .http
        .get(&a.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", a.session.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert!(get.status().is_success(), "{}", get.status());
    a.request(call(6, "notify", json!({"kind":"tools"}))).await;
    a.request(call(8, "log", json!({"level":"info","message":"hello"})))
        .await;
    let mut standalone = String::new();
    while !standalone.contains("notifications/message") {
        let chunk = tokio::time::timeout(Duration::from_secs(3), get.chunk())
            .await
            .expect("no notification on the GET stream")
            .unwrap()
            .expect("GET stream ended");
        standalone.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        standalone.contains("notifications/tools/list_changed"),
        "{standalone}"
    );
    drop(get);
    a.request(json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
        "params":{"name":"progress","arguments":{"steps":2},"_meta":{"progressToken":7}}}))
        .await;
    let methods: Vec<&str> = a
        .notifications
        .iter()
        .filter_map(|n| n["method"].as_str())
        .collect();
    assert_eq!(
        methods,
        ["notifications/progress", "notifications/progress"]
    );
    let stats: Value =
        serde_json::from_str(text_of(&a.request(call(5, "stats", json!({}))).await)).unwrap();
    assert_eq!(stats["initializations"], 2, "{stats}");
    assert_eq!(stats["active_sessions"], 2, "{stats}");

    // Round-trip cost, for information.
    let n = 200;
    let started = Instant::now();
    for i in 0..n {
        a.request(call(100 + i, "echo", json!({"text":"x"}))).await;
    }
    println!(
        "e2e: in-process stateful HTTP echo round trip ~{:?}",
        started.elapsed() / n as u32
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("serve_http_on did not return after shutdown")
        .unwrap()
        .unwrap();
    println!("e2e: in-process HTTP ok");
}

/// Spawns this binary as an HTTP server and reads its READY line.
/// A spawned server that is killed if the check panics before stopping it (no leaked process).
struct ServerChild(Child);

impl std::ops::Deref for ServerChild {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ServerChild {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn_http(opts: &ServeOptions, envs: &[(&str, &str)]) -> (ServerChild, Value) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(SERVE_ENV, serde_json::to_string(opts).unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(
        line.trim_end()
            .strip_prefix(READY_PREFIX)
            .unwrap_or_else(|| panic!("not a READY line: {line:?}")),
    )
    .unwrap();
    assert_eq!(ready["pid"], child.id());
    (ServerChild(child), ready)
}

fn sigterm(child: &mut Child) {
    let started = Instant::now();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = wait_timeout(child, Duration::from_secs(3));
    assert!(status.success(), "{status:?}");
    println!("e2e: exited {:?} after SIGTERM", started.elapsed());
}

async fn http_child_bearer(dir: &Path) {
    let port_file = dir.join("port");
    let events = dir.join("bearer-events.jsonl");
    let mut opts = ServeOptions::new(Bundled::FastTest, Transport::Http);
    opts.auth = AuthMode::Bearer;
    opts.port_file = Some(port_file.clone());
    let (mut child, ready) = spawn_http(
        &opts,
        &[
            (BEARER_TOKENS_ENV, "t-alice=alice,t-bob=bob"),
            (EVENT_LOG_ENV, events.to_str().unwrap()),
        ],
    );
    let port = ready["port"].as_u64().unwrap();
    assert_eq!(
        std::fs::read_to_string(&port_file).unwrap(),
        format!("{port}\n")
    );
    let url = ready["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{port}/mcp"));
    let mut client = HttpClient::new(url.clone());

    let refused = client.post(&initialize(1)).await;
    assert_eq!(refused.status().as_u16(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"http://127.0.0.1:{port}/.well-known/oauth-protected-resource\""
        )
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "missing", "{body}");
    client.token = Some("t-mallory".into());
    let body: Value = client.post(&initialize(1)).await.json().await.unwrap();
    assert_eq!(body["reason"], "unknown", "{body}");
    assert!(!body.to_string().contains("t-mallory"));

    let metadata: Value = reqwest::get(format!(
        "http://127.0.0.1:{port}/.well-known/oauth-protected-resource"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["resource"], url.as_str());

    client.token = Some("t-bob".into());
    client.open().await;
    let who: Value =
        serde_json::from_str(text_of(&client.request(call(2, "whoami", json!({}))).await)).unwrap();
    assert_eq!(who["subject"], "bob", "{who}");
    assert_eq!(who["headers"]["authorization"], "<redacted>", "{who}");
    let session = client.session.clone().unwrap();
    let deleted = client
        .http
        .delete(&client.url)
        .header("mcp-session-id", &session)
        .header("authorization", "Bearer t-bob")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let log = std::fs::read_to_string(&events).unwrap_or_default();
        if log.contains("session_closed") {
            let closed: Value = log
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|e| e["event"] == "session_closed")
                .unwrap();
            assert_eq!(closed["session_id"], session.as_str(), "{log}");
            // The first session event opens this session (refusals before it are logged too).
            let opened = log.lines().find(|l| !l.contains("\"refused\"")).unwrap();
            assert!(opened.contains(&session), "{log}");
            // The two refused requests of this test (no token, a wrong token), by reason.
            let refused: Vec<Value> = log
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|e| e["event"] == "refused")
                .collect();
            assert_eq!(
                refused
                    .iter()
                    .map(|e| e["reason"].as_str().unwrap())
                    .collect::<Vec<_>>(),
                ["missing", "unknown"],
                "{log}"
            );
            assert!(
                !log.contains("t-bob") && !log.contains("t-mallory"),
                "no token in the log"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no session_closed after DELETE: {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&mut child);
    println!("e2e: HTTP bearer ok");
}

async fn http_child_jwt_stateless(dir: &Path) {
    let events = dir.join("http-events.jsonl");
    let mut opts = ServeOptions::new(Bundled::FastTime, Transport::Http);
    opts.auth = AuthMode::Jwt;
    opts.stateless = true;
    let secret = "e2e-secret";
    let (mut child, ready) = spawn_http(
        &opts,
        &[
            (JWT_SECRET_ENV, secret),
            (EVENT_LOG_ENV, events.to_str().unwrap()),
        ],
    );
    let url = ready["url"].as_str().unwrap().to_owned();
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good =
        jsonwebtoken::encode(&header, &json!({"sub":"carol","exp":now + 600}), &key).unwrap();
    let expired =
        jsonwebtoken::encode(&header, &json!({"sub":"carol","exp":now - 5}), &key).unwrap();
    let mut client = HttpClient::new(url);
    for (token, reason) in [(expired.as_str(), "expired"), ("abc", "malformed")] {
        client.token = Some(token.to_owned());
        let refused = client.post(&initialize(1)).await;
        assert_eq!(refused.status().as_u16(), 401);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["reason"], reason, "{body}");
    }
    client.token = Some(good);
    let init = client.request(initialize(1)).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "fast-time", "{init}");
    assert!(client.session.is_none(), "stateless mode gave a session id");
    let who: Value =
        serde_json::from_str(text_of(&client.request(call(2, "whoami", json!({}))).await)).unwrap();
    assert_eq!(who["subject"], "carol", "{who}");
    let n = 200;
    let started = Instant::now();
    for i in 0..n {
        client.request(call(100 + i, "stats", json!({}))).await;
    }
    println!(
        "e2e: stateless JWT HTTP round trip ~{:?}",
        started.elapsed() / n as u32
    );
    let time = client
        .request(call(
            3,
            "convert_time",
            json!({"source_timezone":"UTC","time":"12:00","target_timezone":"Asia/Kathmandu"}),
        ))
        .await;
    let time: Value = serde_json::from_str(text_of(&time)).unwrap();
    assert_eq!(time["time_difference"], "+5.75h", "{time}");
    let bad = client
        .request(call(
            4,
            "get_system_time",
            json!({"timezone":"Nowhere/Special"}),
        ))
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Nowhere/Special")
    );
    sigterm(&mut child);
    let log = std::fs::read_to_string(&events).unwrap();
    assert!(log.contains("\"initialized\""), "{log}");
    println!("e2e: HTTP JWT stateless ok");
}
