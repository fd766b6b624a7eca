//! The legacy HTTP+SSE client transport (MCP 2024-11-05), which rmcp no longer ships.
//!
//! `GET <url>` opens an event stream; its first `endpoint` event names the URL to POST
//! messages to (relative or absolute, as the TypeScript and Python SDK servers send it).
//! Messages are POSTed there (`202 Accepted`); everything the server sends arrives as
//! `message` events on the stream. The stream ending (server gone, restarted, connection
//! closed) ends the transport, so the session reports [`Error::Closed`].

use std::borrow::Cow;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use serde_json::Value;

use super::{HTTP_CLIENT, header_map};
use crate::auth::{Credentials, rejection_reason};
use crate::errors::Error;
use crate::runtime;
use crate::secret::Secret;
use crate::session::builder::SessionBuilder;
use crate::session::connection::Failure;
use crate::session::era::Protocol;
use crate::session::era::handshake::{self, ClientHandler, Started};
use crate::session::failure::error_chain;
use crate::session::target::Target;

/// Opens the event stream (within the init bound), then initializes (within a fresh one).
pub(in crate::session) async fn connect(
    cfg: &SessionBuilder,
    handler: ClientHandler,
) -> std::result::Result<Started, Failure> {
    let (url, server_state) = match &cfg.target {
        Target::Server(s) => (s.url().to_owned(), Some(s.describe())),
        other => (other.describe(), None),
    };
    if let Protocol::Stateless(v) = &cfg.protocol {
        return Err(Failure::Fatal(Error::UnsupportedVersion {
            session: cfg.name.clone(),
            target: cfg.target.describe(),
            offered: vec![v.clone()],
            supported: Vec::new(),
            hint: "legacy HTTP+SSE is a handshake-era transport; connect over streamable HTTP or \
                   stdio, or pin a handshake-era version"
                .into(),
        }));
    }
    // Legacy SSE is handshake-era by definition: `auto` means `initialize` here, and a pinned
    // handshake version is offered as pinned.
    let protocol = match &cfg.protocol {
        Protocol::Auto => Protocol::default(),
        pinned => pinned.clone(),
    };
    let headers = header_map(cfg).map_err(Failure::Fatal)?;
    let open = SseClientTransport::open(HTTP_CLIENT.get(), &url, headers, cfg.credentials());
    match runtime::timeout(cfg.init_timeout, open).await {
        // The open took part of the bound; initialize gets a fresh one.
        Ok(Ok(transport)) => {
            Ok(handshake::initialize(handler, transport, cfg.init_timeout, &protocol).await)
        }
        Ok(Err(OpenError::Unauthorized(reason))) => Err(Failure::Fatal(Error::Unauthorized {
            target: cfg.target.describe(),
            session: cfg.name.clone(),
            reason,
        })),
        Ok(Err(OpenError::Failed(reason))) => Err(Failure::Retryable {
            reason,
            server_state,
            log_tail: String::new(),
        }),
        Err(_) => Err(Failure::Retryable {
            reason: format!("no `endpoint` event within {:?}", cfg.init_timeout),
            server_state,
            log_tail: String::new(),
        }),
    }
}

/// A bare transport to `url` with no credentials (readiness probes).
pub(in crate::session) async fn anonymous(
    url: &str,
) -> std::result::Result<SseClientTransport, String> {
    SseClientTransport::open(
        HTTP_CLIENT.get(),
        url,
        http::HeaderMap::new(),
        Credentials::None,
    )
    .await
    .map_err(|e| format!("{e:?}"))
}

type Events = BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>;

/// Why a message could not be sent on the SSE transport. Never carries a credential.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SseTransportError {
    /// The server refused the credentials (401/403).
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// What the server said.
        reason: String,
    },
    /// The server answered the POST with an error status.
    #[error("POST {url} answered HTTP {status}: {detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    /// The POST did not go through.
    #[error("POST {url} failed: {detail}")]
    Network { url: String, detail: String },
    /// The message could not be serialized.
    #[error("cannot serialize the message: {0}")]
    Serialize(String),
}

/// Why the event stream could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// 401/403: never retried.
    Unauthorized(String),
    /// Anything else (refused connection, bad status, no endpoint event): may be retried.
    Failed(String),
}

/// One SSE connection: the event stream and where to POST.
pub(crate) struct SseClientTransport {
    events: Option<Events>,
    post_url: reqwest::Url,
    client: reqwest::Client,
    headers: http::HeaderMap,
    credentials: Credentials,
}

async fn read_body_json(response: reqwest::Response) -> Option<Value> {
    let bytes = runtime::timeout(Duration::from_secs(2), response.bytes())
        .await
        .ok()?
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn refusal(response: reqwest::Response, sent: bool) -> String {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_body_json(response).await;
    rejection_reason(Some(status), challenge.as_deref(), body.as_ref(), sent)
}

fn with_auth(
    mut request: reqwest::RequestBuilder,
    headers: &http::HeaderMap,
    token: Option<&Secret>,
) -> reqwest::RequestBuilder {
    request = request.headers(headers.clone());
    if let Some(t) = token {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", t.expose()))
            .unwrap_or_else(|_| http::HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        request = request.header(http::header::AUTHORIZATION, value);
    }
    request
}

fn is_refusal(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN
}

impl SseClientTransport {
    /// Opens the event stream at `url` and waits for its `endpoint` event.
    pub(crate) async fn open(
        client: reqwest::Client,
        url: &str,
        headers: http::HeaderMap,
        credentials: Credentials,
    ) -> Result<SseClientTransport, OpenError> {
        let base = reqwest::Url::parse(url)
            .map_err(|e| OpenError::Failed(format!("`{url}` is not a url: {e}")))?;
        let get = |token: Option<Secret>| {
            with_auth(
                client
                    .get(base.clone())
                    .header(http::header::ACCEPT, "text/event-stream")
                    .header(http::header::CACHE_CONTROL, "no-cache"),
                &headers,
                token.as_ref(),
            )
            .send()
        };
        let token = credentials
            .token()
            .await
            .map_err(|e| OpenError::Unauthorized(e.to_string()))?;
        let mut response = get(token.clone())
            .await
            .map_err(|e| OpenError::Failed(format!("GET {url}: {}", error_chain(&e))))?;
        if is_refusal(response.status()) && credentials.renew(token.as_ref()).await {
            let token = credentials
                .token()
                .await
                .map_err(|e| OpenError::Unauthorized(e.to_string()))?;
            response = get(token)
                .await
                .map_err(|e| OpenError::Failed(format!("GET {url}: {}", error_chain(&e))))?;
        }
        let status = response.status();
        if is_refusal(status) {
            return Err(OpenError::Unauthorized(
                refusal(response, !credentials.is_none()).await,
            ));
        }
        if !status.is_success() {
            return Err(OpenError::Failed(format!(
                "GET {url} answered HTTP {status}; is this a legacy SSE endpoint (usually `/sse`)?"
            )));
        }
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !content_type.starts_with("text/event-stream") {
            return Err(OpenError::Failed(format!(
                "GET {url} answered `{content_type}`, not an event stream; for a streamable HTTP endpoint use Target::Http"
            )));
        }
        let mut events: Events =
            sse_stream::SseStream::from_bytes_stream(response.bytes_stream()).boxed();
        // The first event that matters names the POST url.
        let endpoint = loop {
            match events.next().await {
                Some(Ok(e)) if e.event.as_deref() == Some("endpoint") => {
                    break e.data.unwrap_or_default();
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Err(OpenError::Failed(format!(
                        "the event stream of {url} broke before its `endpoint` event: {e}"
                    )));
                }
                None => {
                    return Err(OpenError::Failed(format!(
                        "the event stream of {url} ended before its `endpoint` event"
                    )));
                }
            }
        };
        let post_url = resolve_endpoint(&base, &endpoint).map_err(OpenError::Failed)?;
        tracing::debug!(post_url = %post_url.path(), "SSE stream open");
        Ok(SseClientTransport {
            events: Some(events),
            post_url,
            client,
            headers,
            credentials,
        })
    }
}

/// The POST url named by an `endpoint` event: relative (as the TypeScript and Python SDKs
/// send it) or absolute; credentials never go to another origin (loopback spellings of the
/// same port count as one origin).
fn resolve_endpoint(base: &reqwest::Url, endpoint: &str) -> Result<reqwest::Url, String> {
    let url = base.as_str();
    let post_url = base
        .join(endpoint.trim())
        .map_err(|e| format!("the `endpoint` event of {url} is not a url ({e}): {endpoint:?}"))?;
    let loopback = |u: &reqwest::Url| {
        matches!(
            u.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
        )
    };
    let same_origin = post_url.origin() == base.origin()
        || (post_url.scheme() == base.scheme()
            && post_url.port_or_known_default() == base.port_or_known_default()
            && loopback(&post_url)
            && loopback(base));
    if !same_origin {
        // The 2024-11-05 spec does not forbid it, but a token must not leak elsewhere.
        return Err(format!(
            "the `endpoint` event of {url} points to another origin ({}); refusing to send credentials there",
            post_url.origin().ascii_serialization()
        ));
    }
    Ok(post_url)
}

impl rmcp::transport::Transport<RoleClient> for SseClientTransport {
    type Error = SseTransportError;

    fn name() -> Cow<'static, str> {
        "legacy-sse".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let client = self.client.clone();
        let url = self.post_url.clone();
        let headers = self.headers.clone();
        let credentials = self.credentials.clone();
        async move {
            let body = serde_json::to_vec(&item)
                .map_err(|e| SseTransportError::Serialize(e.to_string()))?;
            let post = |token: Option<Secret>| {
                with_auth(
                    client
                        .post(url.clone())
                        .header(http::header::CONTENT_TYPE, "application/json"),
                    &headers,
                    token.as_ref(),
                )
                .body(body.clone())
                .send()
            };
            let network = |e: reqwest::Error| SseTransportError::Network {
                url: url.path().to_owned(),
                detail: error_chain(&e),
            };
            let token = credentials
                .token()
                .await
                .map_err(|e| SseTransportError::Unauthorized {
                    reason: e.to_string(),
                })?;
            let mut response = post(token.clone()).await.map_err(network)?;
            if is_refusal(response.status()) && credentials.renew(token.as_ref()).await {
                let token =
                    credentials
                        .token()
                        .await
                        .map_err(|e| SseTransportError::Unauthorized {
                            reason: e.to_string(),
                        })?;
                response = post(token).await.map_err(network)?;
            }
            let status = response.status();
            if is_refusal(status) {
                return Err(SseTransportError::Unauthorized {
                    reason: refusal(response, !credentials.is_none()).await,
                });
            }
            if !status.is_success() {
                let detail = read_body_json(response)
                    .await
                    .map(|v| {
                        v.get("message")
                            .or_else(|| v.get("error"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .unwrap_or_default();
                return Err(SseTransportError::Status {
                    url: url.path().to_owned(),
                    status: status.as_u16(),
                    detail,
                });
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            let events = self.events.as_mut()?;
            match events.next().await {
                Some(Ok(event)) => {
                    let kind = event.event.as_deref().unwrap_or("message");
                    if kind != "message" {
                        continue;
                    }
                    let Some(data) = event.data else { continue };
                    match serde_json::from_str(&data) {
                        Ok(message) => return Some(message),
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring an SSE message that is not JSON-RPC");
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "the SSE stream broke");
                    self.events = None;
                    return None;
                }
                None => {
                    tracing::debug!("the SSE stream ended");
                    self.events = None;
                    return None;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // Dropping the response body closes the connection; the server ends the session.
        self.events = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_endpoint;

    #[test]
    fn endpoint_urls_resolve_like_the_sdks_send_them() {
        let base = reqwest::Url::parse("http://127.0.0.1:4000/sse").unwrap();
        let cases = [
            // TypeScript SDK
            (
                "/messages?sessionId=a-b",
                "http://127.0.0.1:4000/messages?sessionId=a-b",
            ),
            // Python SDK
            (
                "/messages/?session_id=abc",
                "http://127.0.0.1:4000/messages/?session_id=abc",
            ),
            // relative to the stream's path
            (
                "message?sessionId=1",
                "http://127.0.0.1:4000/message?sessionId=1",
            ),
            // absolute, same origin, and another spelling of loopback
            ("http://127.0.0.1:4000/m?s=1", "http://127.0.0.1:4000/m?s=1"),
            ("http://localhost:4000/m?s=1", "http://localhost:4000/m?s=1"),
            (
                " /message?sessionId=x\n",
                "http://127.0.0.1:4000/message?sessionId=x",
            ),
        ];
        for (endpoint, expected) in cases {
            assert_eq!(
                resolve_endpoint(&base, endpoint).unwrap().as_str(),
                expected
            );
        }
        for elsewhere in [
            "http://evil.example/m",
            "http://127.0.0.1:4001/m",
            "https://127.0.0.1:4000/m",
        ] {
            assert!(resolve_endpoint(&base, elsewhere).is_err(), "{elsewhere}");
        }
    }
}
