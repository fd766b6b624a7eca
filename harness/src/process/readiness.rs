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

/// `host:port` of a url, ready for a TCP connect (IPv6 literals keep their brackets; a port
/// left implicit is the scheme's default).
pub(crate) fn host_port(url: &str) -> std::result::Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a url: {e}"))?;
    let host = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(h) => h.to_string(),
        None => return Err(format!("`{url}` names no host")),
    };
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("`{url}` names no port and its scheme has no default"))?;
    Ok(format!("{host}:{port}"))
}

pub(super) async fn tcp_probe(url: &str) -> std::result::Result<(), String> {
    let hostport = host_port(url)?;
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

#[cfg(test)]
mod tests {
    use super::super::server::port_of;
    use super::host_port;

    #[test]
    fn a_url_without_a_port_uses_its_schemes_default() {
        assert_eq!(port_of("http://example.test/mcp"), Some(80));
        assert_eq!(port_of("https://example.test/mcp"), Some(443));
        assert_eq!(host_port("https://example.test/mcp").unwrap(), "example.test:443");
    }

    #[test]
    fn ipv6_literals_keep_their_brackets_and_port() {
        assert_eq!(port_of("http://[::1]:8080/mcp"), Some(8080));
        assert_eq!(port_of("http://[::1]/mcp"), Some(80));
        assert_eq!(host_port("http://[::1]:8080/mcp").unwrap(), "[::1]:8080");
        assert_eq!(host_port("http://[::1]/mcp").unwrap(), "[::1]:80");
    }

    #[test]
    fn an_explicit_port_wins_and_non_urls_are_refused() {
        assert_eq!(port_of("http://127.0.0.1:4000/mcp?x=1:2"), Some(4000));
        assert_eq!(port_of("127.0.0.1:4000"), None);
        assert!(host_port("not a url").unwrap_err().contains("not a url"));
    }
}
