//! The bundled servers under hostile clients (they are what users point their clients and
//! gateways at): an oversized body, garbage, JSON that is not JSON-RPC, and clients that send
//! half a request and stall. Each gets an error answer or a closed connection, never a crash or
//! unbounded memory, and the server goes on serving the next client.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mcp_harness::{Server, Session};
use serde_json::json;

use crate::support::call_text;
use crate::support::fast_test_http as server;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends one raw HTTP POST to `url` and returns the status code and the start of the body.
fn raw_post(url: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let hostport = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut conn = TcpStream::connect(hostport).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: {content_type}\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    // The server may answer (and close) before the whole body is sent: that is fine.
    let _ = conn.write_all(body);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    (status, body)
}

async fn still_serves(server: &Server) {
    let s = Session::connect(server)
        .await
        .expect("the next client connects");
    assert_eq!(
        call_text(&s, "echo", json!({"text": "still here"})).await,
        "still here"
    );
    s.shutdown().await.unwrap();
}

#[mcp_harness::test]
async fn an_oversized_body_is_refused_with_413_and_memory_stays_bounded() {
    let server = server().await;
    let before = rss_kb(server.pid());
    let url = server.url().to_owned();
    // 64 MiB of JSON-RPC: sixteen times the servers' 4 MiB body limit.
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut big = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":""#.to_vec();
        big.extend(std::iter::repeat_n(b'a', 64 << 20));
        big.extend_from_slice(br#""}}"#);
        raw_post(&url, "application/json", &big)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("exceeds"), "the answer says why: {body}");
    let grown = rss_kb(server.pid()).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "the server grew by {grown} kB reading a refused body"
    );
    still_serves(&server).await;
}

#[mcp_harness::test]
async fn garbage_and_json_that_is_not_json_rpc_get_client_errors() {
    let server = server().await;
    let url = server.url().to_owned();
    let answers = tokio::task::spawn_blocking(move || {
        [
            ("application/json", b"garbage{{".to_vec()),
            ("application/json", br#"{"hello":"world"}"#.to_vec()),
            ("application/json", br#"[1,2,3]"#.to_vec()),
            (
                "text/plain",
                br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec(),
            ),
            ("application/json", vec![0xff, 0xfe, 0x00, 0x01]),
        ]
        .into_iter()
        .map(|(ct, body)| raw_post(&url, ct, &body))
        .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (status, body) in answers {
        assert!(
            (400..500).contains(&status),
            "a client error, not {status}: {body}"
        );
    }
    assert!(server.is_running());
    still_serves(&server).await;
}

#[mcp_harness::test]
async fn clients_that_send_half_a_request_and_stall_do_not_hold_up_others() {
    let server = server().await;
    let hostport = server
        .url()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    // Fifty connections, each with half a request head, then silence.
    let stalled: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = TcpStream::connect(&hostport).unwrap();
            c.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Len")
                .unwrap();
            c
        })
        .collect();
    // And five that promise a body and send a byte of it.
    let slow: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut c = TcpStream::connect(&hostport).unwrap();
            c.write_all(
                b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 1000\r\n\r\n{",
            )
            .unwrap();
            c
        })
        .collect();
    let started = Instant::now();
    still_serves(&server).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a normal client waited {:?} behind stalled ones",
        started.elapsed()
    );
    drop((stalled, slow));
    assert!(server.is_running());
}
