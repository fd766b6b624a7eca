//! Readiness: learning a server's address and probing it until it answers, with a deadline.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::{AddressSource, ServerSpec};
use crate::runtime;
use crate::transport::Transport;

/// An MCP round trip to a server's url over its transport, handed in by the session layer: the
/// process layer speaks no MCP itself. `Ok` when the server answered.
pub(crate) type McpProbe =
    fn(String, Transport) -> BoxFuture<'static, std::result::Result<(), String>>;
pub(super) async fn discover_address(
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

pub(super) async fn tcp_probe(url: &str) -> std::result::Result<(), String> {
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

pub(super) async fn probe_until<F, Fut>(
    within: Duration,
    mut probe: F,
) -> std::result::Result<(), String>
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
