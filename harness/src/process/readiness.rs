//! Readiness: learning a server's address and probing it until it answers, with a deadline.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::{AddressSource, ServerSpec};
use crate::runtime;
use crate::transport::Transport;

/// An MCP round trip to a server's url over its transport, handed in by the session layer: the
/// process layer speaks no MCP itself. `Ok` when the server answered.
pub(crate) type McpProbe =
    fn(String, Transport) -> BoxFuture<'static, std::result::Result<(), ProbeError>>;

/// Why a readiness probe failed.
#[derive(Debug)]
pub(crate) enum ProbeError {
    /// Not yet: the server may still be starting.
    Retry(String),
    /// Never: waiting longer changes nothing (a refused certificate).
    Stop(String),
}
pub(super) async fn discover_address(
    spec: &ServerSpec,
    port: u16,
    mut lines: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
) -> Option<String> {
    match &spec.address {
        AddressSource::Fixed(url) => Some(url.replace("{port}", &port.to_string())),
        AddressSource::ReadyLine
        | AddressSource::StdoutMatch(_)
        | AddressSource::OutputPattern { .. } => {
            let lines = lines.as_mut()?;
            while let Some(line) = lines.recv().await {
                let found = match &spec.address {
                    AddressSource::ReadyLine => parse_ready_line(&line),
                    AddressSource::StdoutMatch(f) => f(&line),
                    AddressSource::OutputPattern {
                        pattern,
                        url_template,
                    } => match_output(pattern, &line).map(|found| match found {
                        Found::Url(url) => url,
                        Found::Port(p) => url_template
                            .clone()
                            .unwrap_or_else(|| default_url_template(spec.transport))
                            .replace("{port}", &p.to_string()),
                    }),
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

/// What an output pattern found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Url(String),
    Port(u16),
}

fn default_url_template(transport: Transport) -> String {
    match transport {
        Transport::Sse => "http://127.0.0.1:{port}/sse".into(),
        _ => "http://127.0.0.1:{port}/mcp".into(),
    }
}

/// Matches one line against a pattern with one `{url}` or `{port}` placeholder.
pub(crate) fn match_output(pattern: &str, line: &str) -> Option<Found> {
    let (placeholder, at) = ["{url}", "{port}"]
        .into_iter()
        .find_map(|p| pattern.find(p).map(|at| (p, at)))?;
    let (before, after) = (&pattern[..at], &pattern[at + placeholder.len()..]);
    let start = line.find(before)? + before.len();
    let rest = &line[start..];
    let value = match placeholder {
        "{port}" => {
            let digits: &str = &rest[..rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len())];
            if !rest[digits.len()..].starts_with(after) {
                return None;
            }
            return digits
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .map(Found::Port);
        }
        _ => {
            let end = if after.is_empty() {
                rest.find(char::is_whitespace).unwrap_or(rest.len())
            } else {
                rest.find(after)?
            };
            &rest[..end]
        }
    };
    let value = value.trim_end_matches(['.', ',', ';', ')']);
    (value.contains("://")).then(|| Found::Url(value.to_owned()))
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
    Fut: std::future::Future<Output = std::result::Result<(), ProbeError>>,
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
            Ok(Err(ProbeError::Retry(e))) => last = e,
            Ok(Err(ProbeError::Stop(e))) => return Err(e),
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
        assert_eq!(
            host_port("https://example.test/mcp").unwrap(),
            "example.test:443"
        );
    }

    #[test]
    fn ipv6_literals_keep_their_brackets_and_port() {
        assert_eq!(port_of("http://[::1]:8080/mcp"), Some(8080));
        assert_eq!(port_of("http://[::1]/mcp"), Some(80));
        assert_eq!(host_port("http://[::1]:8080/mcp").unwrap(), "[::1]:8080");
        assert_eq!(host_port("http://[::1]/mcp").unwrap(), "[::1]:80");
    }

    #[test]
    fn output_patterns_find_a_url_or_a_port() {
        use super::{Found, match_output};
        let url = |s: &str| Some(Found::Url(s.into()));
        assert_eq!(
            match_output(
                "Uvicorn running on {url}",
                "INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"
            ),
            url("http://127.0.0.1:8000")
        );
        assert_eq!(
            match_output("listening on {url}.", "listening on http://[::1]:9/mcp."),
            url("http://[::1]:9/mcp")
        );
        assert_eq!(
            match_output(
                "listening on port {port}",
                "MCP server listening on port 3001"
            ),
            Some(Found::Port(3001))
        );
        // Port 0 is not an address, nor is a port with the wrong text after it.
        assert_eq!(
            match_output("listening on port {port}", "listening on port 0"),
            None
        );
        assert_eq!(match_output("port {port} ok", "port 3001 failed"), None);
        assert_eq!(match_output("running on {url}", "running on stdio"), None);
        assert_eq!(match_output("no placeholder", "no placeholder"), None);
    }

    #[test]
    fn an_explicit_port_wins_and_non_urls_are_refused() {
        assert_eq!(port_of("http://127.0.0.1:4000/mcp?x=1:2"), Some(4000));
        assert_eq!(port_of("127.0.0.1:4000"), None);
        assert!(host_port("not a url").unwrap_err().contains("not a url"));
    }
}
