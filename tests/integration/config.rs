//! The fixtures' config file: a bad file names the file, the line and the key.

use std::path::Path;

use mcp_harness_fixtures::{Config, ConfigError};

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
