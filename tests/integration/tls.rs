//! https: bundled servers serve it with a certificate from a throwaway CA made in the test;
//! sessions, the CLI and config files trust that CA; a refused certificate says which one and
//! why.
//!
//! Trust is process-wide, so the refusals use a second authority nobody trusts.

use std::sync::LazyLock;

use mcp_harness::{Bundled, BundledServer, Server, Session, Target, TestCa, Transport, tool_text};
use serde_json::json;

/// The authority every test of the process trusts.
static TRUSTED: LazyLock<TestCa> = LazyLock::new(|| {
    let ca = TestCa::new().expect("a test CA");
    mcp_harness::trust_ca_file(ca.ca_file()).expect("the CA file is trusted");
    ca
});

/// An authority nobody trusts.
static STRANGER: LazyLock<TestCa> = LazyLock::new(|| TestCa::new().expect("a test CA"));

async fn https_server(ca: &TestCa, names: &[&str], transport: Transport) -> Server {
    let cert = ca.server_cert(names).unwrap();
    Server::start(
        BundledServer::new(Bundled::FastTest, transport)
            .tls(&cert.cert, &cert.key)
            .spec(),
    )
    .await
    .expect("the https server starts")
}

#[mcp_harness::test]
async fn a_session_reaches_a_bundled_https_server_over_streamable_http_and_sse() {
    for transport in [Transport::StreamableHttp, Transport::Sse] {
        let server = https_server(&TRUSTED, &["127.0.0.1", "localhost"], transport).await;
        assert!(
            server.url().starts_with("https://127.0.0.1:"),
            "{}",
            server.url()
        );
        let s = Session::connect(&server).await.expect("https connects");
        let out = s
            .call_tool("echo", json!({"text": "over tls"}))
            .await
            .unwrap();
        assert_eq!(tool_text(&out), "over tls");
        s.shutdown().await.unwrap();
    }
}

/// Connects to `url` once, without retries, and returns the error's text.
async fn refusal(url: &str) -> String {
    let e = Session::builder(Target::Http(url.to_owned()))
        .name("tls-refusal")
        .connect_attempts(1)
        .connect()
        .await
        .expect_err("the certificate must be refused");
    e.to_string()
}

fn assert_names_the_certificate(e: &str) {
    assert!(
        e.contains("the certificate 127.0.0.1 presented (SHA-256 "),
        "{e}"
    );
    let fp = e.split("SHA-256 ").nth(1).unwrap();
    let fp: String = fp.chars().take(95).collect();
    assert!(
        fp.split(':').count() == 32 && fp.split(':').all(|b| b.len() == 2),
        "a SHA-256 fingerprint: {fp}"
    );
    assert!(e.contains("trust_ca_file") && e.contains("--cacert"), "{e}");
    assert!(
        !e.contains("rustls::") && !e.contains("reqwest::"),
        "no type paths: {e}"
    );
}

#[mcp_harness::test]
async fn a_certificate_from_an_untrusted_authority_is_refused_saying_which_and_why() {
    let _ = &*TRUSTED;
    let server = https_server(&STRANGER, &["127.0.0.1"], Transport::StreamableHttp).await;
    let e = refusal(server.url()).await;
    assert_names_the_certificate(&e);
    assert!(
        e.contains("signed by an authority that is not trusted"),
        "{e}"
    );
}

#[mcp_harness::test]
async fn an_expired_or_misnamed_certificate_is_refused_saying_why() {
    let expired = TRUSTED.expired_server_cert(&["127.0.0.1"]).unwrap();
    let server = Server::start(
        BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
            .tls(&expired.cert, &expired.key)
            .spec(),
    )
    .await
    .unwrap();
    let e = refusal(server.url()).await;
    assert_names_the_certificate(&e);
    assert!(e.contains("it has expired"), "{e}");

    // Valid, trusted, but for another name than the one in the url.
    let server = https_server(&TRUSTED, &["localhost"], Transport::StreamableHttp).await;
    let e = refusal(server.url()).await;
    assert_names_the_certificate(&e);
    assert!(
        e.contains("it is not valid for the name `127.0.0.1`"),
        "{e}"
    );
}

#[test]
fn check_trusts_a_ca_given_with_cacert_and_names_the_certificate_without_it() {
    let ca = TestCa::new().unwrap();
    let cert = ca.server_cert(&["127.0.0.1"]).unwrap();
    let mut server = std::process::Command::new(crate::cli::CLI)
        .args(["serve", "fast-test", "--transport", "http", "--tls-cert"])
        .arg(&cert.cert)
        .arg("--tls-key")
        .arg(&cert.key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let ready: serde_json::Value =
        serde_json::from_str(line.strip_prefix("MCP_HARNESS_READY ").expect(&line)).unwrap();
    let url = ready["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://"), "{url}");

    let check = |extra: &[&std::ffi::OsStr]| {
        std::process::Command::new(crate::cli::CLI)
            .args([
                "check",
                &url,
                "--call",
                "echo",
                "--args",
                r#"{"text":"tls"}"#,
            ])
            .args(extra)
            .env_remove("SSL_CERT_FILE")
            .output()
            .unwrap()
    };
    let ok = check(&["--cacert".as_ref(), ca.ca_file().as_os_str()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = check(&[]);
    assert_eq!(refused.status.code(), Some(3), "unreachable");
    let text = String::from_utf8_lossy(&refused.stdout).into_owned()
        + &String::from_utf8_lossy(&refused.stderr);
    assert_names_the_certificate(&text);

    // SSL_CERT_FILE is trusted too (beside the system's roots).
    let via_env = std::process::Command::new(crate::cli::CLI)
        .args(["check", &url])
        .env("SSL_CERT_FILE", ca.ca_file())
        .output()
        .unwrap();
    assert!(
        via_env.status.success(),
        "{}",
        String::from_utf8_lossy(&via_env.stderr)
    );

    // A --cacert that is not a CA file is bad usage, said plainly.
    let bad = check(&["--cacert".as_ref(), cert.key.as_os_str()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("holds no `-----BEGIN CERTIFICATE-----` block"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let _ = server.kill();
    let _ = server.wait();
}
