//! The fixtures' config file: a bad file names the file, the line and the key; any server it
//! names (any language, over streamable HTTP too) is spawned on a port the harness picks or
//! found where it prints its address.

use std::path::Path;

use mcp_harness_fixtures::{Config, ConfigError};

use crate::support::{python_fixture, require_everything_server, require_python_sdk};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/work/mcp-harness.toml"))
}

#[test]
fn valid_config_points_clients_at_servers() {
    let cfg = parse(
        r#"
[servers.py]
command = ["python3", "-m", "server"]
env = { LOG_LEVEL = "debug" }

[servers.remote]
url = "http://127.0.0.1:9000/mcp"

[clients.alice]
server = "py"
token = "t0k3n"
headers = { "x-tenant-id" = "acme" }

[clients.bob]
server = "remote"
"#,
    )
    .unwrap();
    assert_eq!(cfg.servers["py"].transport, mcp_harness::Transport::Stdio);
    assert_eq!(
        cfg.servers["remote"].transport,
        mcp_harness::Transport::StreamableHttp
    );
    let alice = cfg.client("alice").unwrap();
    assert_eq!(alice.token.as_ref().unwrap().expose(), "t0k3n");
    // Debug output never shows the token.
    assert!(!format!("{cfg:?}").contains("t0k3n"));
}

fn invalid(text: &str) -> (usize, String, String) {
    match parse(text).expect_err("must be rejected") {
        ConfigError::Invalid {
            line,
            key,
            message,
            path,
        } => {
            assert_eq!(path, Path::new("/work/mcp-harness.toml"));
            (line, key, message)
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let (line, key, message) = invalid("[clients.alice]\nserver = \"fast-test\"\ntokn = \"x\"\n");
    assert_eq!(line, 3);
    assert_eq!(key, "clients.alice.tokn");
    assert!(message.contains("tokn"), "{message}");
}

#[test]
fn unknown_transport_names_file_line_and_key() {
    let (line, key, message) =
        invalid("[servers.x]\ncommand = [\"srv\"]\n\ntransport = \"carrier-pigeon\"\n");
    assert_eq!(line, 4);
    assert_eq!(key, "servers.x.transport");
    assert!(message.contains("carrier-pigeon"), "{message}");
}

#[test]
fn client_of_unknown_server_names_file_line_and_key() {
    let (line, key, message) = invalid("\n[clients.bob]\nserver = \"nope\"\n");
    assert_eq!(line, 3);
    assert_eq!(key, "clients.bob.server");
    assert!(message.contains("nope"), "{message}");
}

#[test]
fn server_without_command_or_url_is_rejected() {
    let (line, key, _) = invalid("[servers.empty]\nenv = { A = \"b\" }\n");
    assert_eq!(line, 1);
    assert_eq!(key, "servers.empty");
}

#[test]
fn syntax_error_names_the_line() {
    let (line, _, _) = invalid("[clients.alice]\nserver = \n");
    assert_eq!(line, 2);
}

#[test]
fn error_message_is_actionable() {
    let err = parse("[clients.alice]\nserver = \"nope\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/work/mcp-harness.toml:2:"), "{err}");
}

#[test]
fn oauth_clients_parse_dynamic_and_pre_registered_settings() {
    let cfg = parse(
        r#"
[clients.dynamic]
server = "fast-test-oauth"
oauth = true

[clients.registered]
server = "fast-test-oauth"
oauth = { client_id = "ci-client", auth_method = "client_secret_post", scope = "mcp:tools" }
"#,
    )
    .unwrap();
    assert!(cfg.client("dynamic").unwrap().oauth.is_some());
    let reg = cfg.client("registered").unwrap().oauth.clone().unwrap();
    assert_eq!(reg.client_id.as_deref(), Some("ci-client"));
    assert_eq!(
        reg.auth_method,
        Some(mcp_harness::TokenEndpointAuth::ClientSecretPost)
    );
    assert_eq!(reg.scope.as_deref(), Some("mcp:tools"));
}

#[test]
fn machine_clients_parse_the_client_credentials_grant_with_a_secret_or_a_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bot.pem"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let cfg = Config::parse(
        r#"
[clients.secret-bot]
oauth = { client_id = "bot", client_secret_env = "PATH", grant = "client_credentials" }

[clients.key-bot]
oauth = { client_id = "signer", private_key_file = "bot.pem", signing_alg = "rs256" }

[clients.cimd]
oauth = { client_metadata_url = "https://ci.example.com/client.json" }
"#,
        &dir.path().join("mcp-harness.toml"),
    )
    .unwrap();
    let secret = cfg.client("secret-bot").unwrap().oauth.clone().unwrap();
    assert!(secret.client_credentials && secret.client_secret.is_some());
    let key = cfg.client("key-bot").unwrap().oauth.clone().unwrap();
    assert!(
        key.client_credentials,
        "a private key means the client credentials grant"
    );
    assert_eq!(key.signing_alg, Some(mcp_harness::JwtSigningAlg::Rs256));
    assert!(key.private_key.is_some());
    let cimd = cfg.client("cimd").unwrap().oauth.clone().unwrap();
    assert_eq!(
        cimd.client_metadata_url.as_deref(),
        Some("https://ci.example.com/client.json")
    );
    // The key never shows in Debug output.
    assert!(!format!("{key:?}").contains("BEGIN"), "{key:?}");
}

#[rstest::rstest]
#[case::unknown_grant(
    "oauth = { client_id = \"b\", client_secret_env = \"PATH\", grant = \"implicit\" }",
    "clients.x.oauth.grant",
    "expected authorization_code or client_credentials"
)]
#[case::grant_without_credentials(
    "oauth = { client_id = \"b\", grant = \"client_credentials\" }",
    "clients.x.oauth.grant",
    "needs a client_id and its secret"
)]
#[case::jwt_without_key(
    "oauth = { client_id = \"b\", auth_method = \"private_key_jwt\" }",
    "clients.x.oauth",
    "private_key_jwt needs a client_id and a private key"
)]
#[case::unknown_alg(
    "oauth = { client_id = \"b\", private_key_env = \"PATH\", signing_alg = \"HS256\" }",
    "clients.x.oauth.signing_alg",
    "expected ES256 or RS256"
)]
#[case::unreadable_key(
    "oauth = { client_id = \"b\", private_key_file = \"no-such.pem\" }",
    "clients.x.oauth.private_key_file",
    "cannot read"
)]
fn machine_client_mistakes_name_the_key(
    #[case] line: &str,
    #[case] expected_key: &str,
    #[case] says: &str,
) {
    let (at, key, message) = invalid(&format!("[clients.x]\n\n{line}\n"));
    assert_eq!(at, 3);
    assert_eq!(key, expected_key);
    assert!(message.contains(says), "{message}");
}

#[test]
fn unknown_oauth_auth_method_names_file_line_and_key() {
    let (line, key, message) = invalid("[clients.x]\n\noauth = { auth_method = \"carrier\" }\n");
    assert_eq!(line, 3);
    assert_eq!(key, "clients.x.oauth.auth_method");
    assert!(message.contains("carrier"), "{message}");
}

#[test]
fn servers_and_clients_choose_their_protocol_era() {
    let cfg = parse(
        "[servers.modern]\ncommand = [\"srv\"]\nprotocol = \"2026-07-28\"\n\n\
         [clients.alice]\nserver = \"modern\"\n\n\
         [clients.bob]\nserver = \"modern\"\nprotocol = \"auto\"\n",
    )
    .unwrap();
    assert_eq!(
        cfg.servers["modern"].protocol,
        Some(mcp_harness::Protocol::Stateless("2026-07-28".into()))
    );
    assert_eq!(cfg.client("alice").unwrap().protocol, None);
    assert_eq!(
        cfg.client("bob").unwrap().protocol,
        Some(mcp_harness::Protocol::Auto)
    );
}

#[test]
fn unknown_protocol_names_file_line_and_key() {
    let (line, key, message) =
        invalid("[clients.alice]\nserver = \"fast-test\"\nprotocol = \"2026-7-28\"\n");
    assert_eq!(line, 3);
    assert_eq!(key, "clients.alice.protocol");
    assert!(
        message.contains("2026-7-28") && message.contains("auto, stateless, handshake"),
        "{message}"
    );
}

#[test]
fn a_url_beside_a_command_and_an_address_pattern_are_checked() {
    let ok = parse(
        r#"
[servers.ts]
command = ["sh", "-c", "PORT={port} exec mcp-server-everything streamableHttp"]
transport = "http"
url = "http://127.0.0.1:{port}/mcp"

[servers.py]
command = ["python3", "server.py"]
transport = "http"
address_from = "Uvicorn running on http://127.0.0.1:{port}"
"#,
    )
    .unwrap();
    assert_eq!(
        ok.servers["ts"].url.as_deref(),
        Some("http://127.0.0.1:{port}/mcp")
    );
    assert_eq!(
        ok.servers["py"].address_from.as_deref(),
        Some("Uvicorn running on http://127.0.0.1:{port}")
    );

    // A url beside a command means streamable HTTP, unless the file says stdio.
    let http =
        parse("[servers.s]\ncommand = [\"x\"]\nurl = \"http://127.0.0.1:{port}/mcp\"\n").unwrap();
    assert_eq!(
        http.servers["s"].transport,
        mcp_harness::Transport::StreamableHttp
    );
    let (_, key, msg) = invalid(
        "[servers.s]\ncommand = [\"x\"]\ntransport = \"stdio\"\nurl = \"http://127.0.0.1:1/mcp\"\n",
    );
    assert_eq!(key, "servers.s.url");
    assert!(msg.contains("stdio server has no url"), "{msg}");
    let (_, key, msg) = invalid(
        "[servers.s]\ncommand = [\"x\"]\ntransport = \"http\"\naddress_from = \"listening\"\n",
    );
    assert_eq!(key, "servers.s.address_from");
    assert!(msg.contains("exactly one `{url}` or `{port}`"), "{msg}");
    let (_, key, msg) =
        invalid("[servers.s]\nurl = \"http://h/mcp\"\naddress_from = \"on {url}\"\n");
    assert_eq!(key, "servers.s.address_from");
    assert!(msg.contains("add `command`"), "{msg}");
}

/// Set by the parent tests: the configured client the child run connects.
const CLIENT: &str = "MCP_HARNESS_TEST_CONFIG_CLIENT";

/// Not a test on its own: the child run of the tests below (it does nothing without
/// `MCP_HARNESS_TEST_CONFIG_CLIENT`). Connects the configured client, lists and calls `echo`,
/// restarts the server when asked and checks that it came back on the same address.
#[mcp_harness::test]
#[ignore = "run as a child process by the config:: tests"]
async fn child_run_with_a_configured_server() -> mcp_harness::Result<()> {
    let Ok(name) = std::env::var(CLIENT) else {
        return Ok(());
    };
    let session = mcp_harness_fixtures::try_client(&name).expect("the configured client connects");
    let server = mcp_harness_fixtures::try_server(&session_server_name()).expect("its server");
    let tools = session.list_tools().await?;
    assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
    let out = session
        .call_tool("echo", serde_json::json!({"message": "hi", "text": "hi"}))
        .await?;
    assert!(mcp_harness::tool_text(&out).contains("hi"), "{out:?}");
    let url = server.url().expect("an http server has a url").to_owned();
    if std::env::var_os("MCP_HARNESS_TEST_RESTART").is_some() {
        let process = server.process().expect("a spawned server");
        let old_pid = process.pid();
        process.restart().await?;
        assert_ne!(process.pid(), old_pid);
        assert_eq!(process.url(), url, "a restart keeps the address");
        session.reconnect().await?;
        session.list_tools().await?;
    }
    println!("CONFIG-CHILD-OK url={url}");
    Ok(())
}

fn session_server_name() -> String {
    std::env::var("MCP_HARNESS_TEST_CONFIG_SERVER").expect("the parent names the server")
}

/// Runs the child with `config` as its config file; returns whether it passed, and its output.
fn child_run(config: &str, client: &str, server: &str, restart: bool) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp-harness.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = crate::support::rerun_test_binary("config::child_run_with_a_configured_server");
    // The child's temp folder is `dir`: a child failing on purpose keeps its server logs there.
    cmd.env("TMPDIR", dir.path())
        .env("MCP_HARNESS_CONFIG", &path)
        .env(CLIENT, client)
        .env("MCP_HARNESS_TEST_CONFIG_SERVER", server);
    if restart {
        cmd.env("MCP_HARNESS_TEST_RESTART", "1");
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (
        out.status.success() && text.contains("CONFIG-CHILD-OK"),
        text,
    )
}

fn child_passes(config: &str, client: &str, server: &str, restart: bool) -> String {
    let (passed, text) = child_run(config, client, server, restart);
    assert!(passed, "{text}");
    text
}

#[test]
fn a_configured_typescript_server_over_http_listens_on_a_port_the_harness_picks() {
    require_everything_server();
    // The server reads its port from PORT and prints nothing the harness could use: the url
    // beside the command says where it will listen.
    let out = child_passes(
        r#"
[servers.everything]
command = ["sh", "-c", "PORT={port} exec mcp-server-everything streamableHttp"]
transport = "http"
url = "http://127.0.0.1:{port}/mcp"
protocol = "2025-11-25"
startup_timeout_ms = 60000

[clients.tester]
server = "everything"
"#,
        "tester",
        "everything",
        true,
    );
    assert!(!out.contains("url=http://127.0.0.1:0/"), "{out}");
    assert!(!out.contains("url=http://127.0.0.1:{port}"), "{out}");
}

#[test]
fn a_configured_python_server_that_chooses_its_port_is_found_by_its_output() {
    require_python_sdk();
    // Port 0: the server chooses; uvicorn says where on stderr.
    child_passes(
        &format!(
            r#"
[servers.python]
command = ["python3", "{}", "streamable-http", "0"]
transport = "http"
address_from = "Uvicorn running on http://127.0.0.1:{{port}}"
startup_timeout_ms = 60000

[clients.tester]
server = "python"
"#,
            python_fixture()
        ),
        "tester",
        "python",
        false,
    );
}

#[test]
fn a_configured_http_server_that_prints_no_address_is_named_with_what_to_write() {
    require_everything_server();
    let (passed, text) = child_run(
        r#"
[servers.everything]
command = ["sh", "-c", "PORT={port} exec mcp-server-everything streamableHttp"]
transport = "http"
startup_timeout_ms = 3000

[clients.tester]
server = "everything"
"#,
        "tester",
        "everything",
        false,
    );
    assert!(!passed, "{text}");
    assert!(text.contains("`url = ...` beside `command`"), "{text}");
}

#[test]
fn a_configured_https_server_is_trusted_through_its_ca_file() {
    let ca = mcp_harness::TestCa::new().unwrap();
    let cert = ca.server_cert(&["127.0.0.1"]).unwrap();
    let config = |ca_file: &str| {
        format!(
            r#"
[servers.secure]
command = ["{cli}", "serve", "fast-test", "--transport", "http", "--tls-cert", "{cert}", "--tls-key", "{key}"]
transport = "http"
{ca_file}

[clients.tester]
server = "secure"
"#,
            cli = crate::cli::CLI,
            cert = cert.cert.display(),
            key = cert.key.display(),
        )
    };
    let out = child_passes(
        &config(&format!("ca_file = \"{}\"", ca.ca_file().display())),
        "tester",
        "secure",
        false,
    );
    assert!(out.contains("url=https://127.0.0.1:"), "{out}");
    // Without it, the refusal says which certificate and how to trust its CA.
    let (passed, text) = child_run(&config(""), "tester", "secure", false);
    assert!(!passed, "{text}");
    assert!(
        text.contains("the certificate 127.0.0.1 presented"),
        "{text}"
    );
}
