//! How a transport's error reads: the cause chain in one line, and refusals told apart.

/// An error and its sources in one line, each cause once, in plain words (see
/// [`plain_words`]).
pub(in crate::session) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    plain_words(&s)
}

/// rmcp's and reqwest's error text, rewritten for a person: no Rust type paths, and the usual
/// HTTP failures named for what they are.
pub(in crate::session) fn plain_words(chain: &str) -> String {
    let mut s = chain.to_owned();
    // "Send message error Transport [rmcp::transport::worker::WorkerTransport<...>] error: X"
    while let Some(start) = s.find("Transport [") {
        let Some(len) = s[start..].find("] error: ") else {
            break;
        };
        s.replace_range(start..start + len + "] error: ".len(), "");
    }
    for (from, to) in [
        ("Send message error ", ""),
        ("Client error: ", ""),
        (
            ", when send initialize request",
            " (while sending `initialize`)",
        ),
        (
            ", when send discover request",
            " (while sending `server/discover`)",
        ),
        (
            "connection closed before message completed",
            "the server closed the connection before answering",
        ),
    ] {
        s = s.replace(from, to);
    }
    if let Some(at) = s.find("Unexpected content type: ") {
        let head = at + "Unexpected content type: ".len();
        let rest = &s[head..];
        let (kind, len) = match rest.strip_prefix("Some(\"") {
            Some(quoted) => match quoted.find("\")") {
                Some(q) => (quoted[..q].to_owned(), "Some(\"".len() + q + 2),
                None => ("an unknown content type".to_owned(), 0),
            },
            None if rest.starts_with("None") => ("no content type".to_owned(), 4),
            None => ("an unknown content type".to_owned(), 0),
        };
        let plain = format!("the server answered with {kind}, not JSON or an event stream");
        s.replace_range(at..head + len, &plain);
    }
    if let Some(at) = s.find("error following redirect for url (") {
        let rest = &s[at..];
        let end = rest.find(')').map_or(rest.len(), |i| i + 1);
        let url = &rest["error following redirect for url (".len()..end.saturating_sub(1)];
        let plain =
            format!("the redirects from {url} do not end (a redirect loop, or more than 10)");
        s.replace_range(at..at + end, &plain);
    }
    if let Some(at) = s.find("HTTP ") {
        let code: String = s[at + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(status) = code.parse::<u16>()
            && let Ok(status) = http::StatusCode::from_u16(status)
        {
            let reason = status.canonical_reason().unwrap_or("");
            let plain = if status == http::StatusCode::TOO_MANY_REQUESTS {
                "rate limited by the server (HTTP 429 Too Many Requests)".to_owned()
            } else {
                format!("the server answered HTTP {} {reason}", status.as_u16())
            };
            s.replace_range(at..at + 5 + code.len(), plain.trim_end());
        }
    }
    // Whatever Rust path is left (`rmcp::...`, `reqwest::...`) says nothing to a person.
    s.split(' ')
        .filter(|word| !is_rust_path(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What an HTTP server answers a plain JSON-RPC POST ([`crate::auth::diagnostic_post`]), when
/// that is not MCP: the status and the start of the body, the content type, how long a rate
/// limit lasts. `None` when the answer looks like MCP (or nothing came back within 5 s).
pub(in crate::session) async fn diagnose_http(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, crate::secret::Secret)],
    credentials: &crate::auth::Credentials,
) -> Option<String> {
    let token = credentials.token().await.ok().flatten();
    let response = crate::auth::diagnostic_post(client, url, headers, token.as_ref()).await?;
    let status = response.status();
    let header = |name: http::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(http::header::CONTENT_TYPE).unwrap_or_default();
    let retry_after = header(http::header::RETRY_AFTER);
    let body = crate::runtime::timeout(std::time::Duration::from_secs(2), response.bytes())
        .await
        .ok()
        .and_then(|b| b.ok())
        .unwrap_or_default();
    let start = body_start(&body);
    let status_text = format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let status_text = status_text.trim_end();
    if status == http::StatusCode::TOO_MANY_REQUESTS {
        return Some(match retry_after {
            Some(after) if after.bytes().all(|b| b.is_ascii_digit()) => {
                format!(
                    "rate limited by the server ({status_text} from {url}), retry after {after} s"
                )
            }
            Some(after) => format!(
                "rate limited by the server ({status_text} from {url}), retry after {after}"
            ),
            None => format!("rate limited by the server ({status_text} from {url})"),
        });
    }
    if !status.is_success() {
        return Some(match start {
            Some(start) => format!("{status_text} from {url}; body starts: {start}"),
            None => format!("{status_text} from {url} (empty body)"),
        });
    }
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && mime != "text/event-stream" {
        let kind = if mime.is_empty() {
            "no content type".to_owned()
        } else {
            mime
        };
        return Some(format!(
            "the server answered with {kind}, not JSON or an event stream ({status_text} from \
             {url}){}",
            start
                .map(|s| format!("; body starts: {s}"))
                .unwrap_or_default()
        ));
    }
    None
}

/// The first 120 characters of a body, on one line; `None` for an empty one.
fn body_start(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return None;
    }
    Some(match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line,
    })
}

/// `ident::...`: a Rust path (an IPv6 url such as `http://[::1]:80` is not one).
fn is_rust_path(word: &str) -> bool {
    let ident = word
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        .count();
    ident > 0 && word[ident..].starts_with("::")
}

/// Whether an error chain is a refusal of the credentials. Matches rmcp's and reqwest's
/// wording, never a bare `401`/`403`: those digits also occur in ports and urls
/// (`127.0.0.1:40123`), which used to turn a dead server into a refusal.
pub(super) fn is_auth_failure(chain: &str) -> bool {
    let c = chain.to_ascii_lowercase();
    c.contains("auth required")
        || c.contains("authorization required")
        || c.contains("insufficient scope")
        || c.contains("http 401")
        || c.contains("http 403")
        || c.contains("unauthorized")
        || c.contains("forbidden")
}

#[cfg(test)]
mod tests {
    use super::{is_auth_failure, plain_words};

    const PATH: &str = "Send message error Transport [rmcp::transport::worker::WorkerTransport<rmcp::transport::streamable_http_client::StreamableHttpClientWorker<reqwest::async_impl::client::Client>>] error: ";

    #[test]
    fn http_failures_read_without_type_paths() {
        for (raw, want) in [
            (
                "HTTP 500, when send initialize request",
                "the server answered HTTP 500 Internal Server Error (while sending `initialize`)",
            ),
            (
                "HTTP 429, when send initialize request",
                "rate limited by the server (HTTP 429 Too Many Requests) (while sending `initialize`)",
            ),
            (
                "Unexpected content type: Some(\"text/html\"), when send initialize request",
                "the server answered with text/html, not JSON or an event stream (while sending `initialize`)",
            ),
            (
                "Client error: error following redirect for url (http://127.0.0.1:4/mcp), when send initialize request",
                "the redirects from http://127.0.0.1:4/mcp do not end (a redirect loop, or more than 10) (while sending `initialize`)",
            ),
        ] {
            let got = plain_words(&format!("{PATH}{raw}"));
            assert_eq!(got, want);
            assert!(!got.contains("::"), "{got}");
        }
        let untouched = "error sending request for url (http://[::1]:8080/mcp): connection refused";
        assert_eq!(plain_words(untouched), untouched);
    }

    #[test]
    fn refusals_are_told_apart_from_ports_that_contain_401() {
        for refusal in [
            "Transport error: authorization required: Bearer resource_metadata=\"x\"",
            "Auth required",
            "insufficient scope: Bearer error=\"insufficient_scope\"",
            "HTTP status client error (401 Unauthorized) for url (http://h/mcp)",
            "HTTP 403",
            "legacy-sse: unauthorized: expired: the JWT has expired",
        ] {
            assert!(is_auth_failure(refusal), "{refusal}");
        }
        for other in [
            "error sending request for url (http://127.0.0.1:40123/mcp): connection refused",
            "error sending request for url (http://127.0.0.1:34031/mcp)",
            "the transport closed (http://127.0.0.1:14030/sse)",
        ] {
            assert!(!is_auth_failure(other), "{other}");
        }
    }
}
