//! Streamable HTTP (MCP 2025-03-26 and later), through rmcp's client transport on the shared
//! HTTP client; OAuth sessions send through the token-injecting client instead.

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};

use super::{HTTP_CLIENT, header_map};
use crate::auth::OAuthHttpClient;
use crate::errors::Error;
use crate::session::builder::SessionBuilder;
use crate::session::connection::Failure;
use crate::session::era::handshake::{self, ClientHandler, Started};
use crate::session::target::Target;

/// Connects the session to its streamable HTTP url and initializes within the init bound.
pub(in crate::session) async fn connect(
    cfg: &SessionBuilder,
    handler: ClientHandler,
) -> std::result::Result<Started, Failure> {
    let url = match &cfg.target {
        Target::Server(s) => s.url().to_owned(),
        other => other.describe(),
    };
    let config = http_config(cfg, &url).map_err(Failure::Fatal)?;
    Ok(match &cfg.oauth_tokens {
        Some(tokens) => {
            let client = OAuthHttpClient {
                inner: HTTP_CLIENT.get(),
                tokens: tokens.clone(),
            };
            let transport = StreamableHttpClientTransport::with_client(client, config);
            handshake::initialize(handler, transport, cfg.init_timeout, &cfg.protocol).await
        }
        None => {
            let transport = StreamableHttpClientTransport::with_client(HTTP_CLIENT.get(), config);
            handshake::initialize(handler, transport, cfg.init_timeout, &cfg.protocol).await
        }
    })
}

/// A bare transport to `url` with no credentials (readiness probes).
pub(in crate::session) fn anonymous(url: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .reinit_on_expired_session(false);
    StreamableHttpClientTransport::with_client(HTTP_CLIENT.get(), config)
}

fn http_config(
    cfg: &SessionBuilder,
    url: &str,
) -> std::result::Result<StreamableHttpClientTransportConfig, Error> {
    let headers = header_map(cfg)?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .custom_headers(headers)
        .max_concurrent_requests(cfg.max_in_flight)
        .reinit_on_expired_session(false);
    // rmcp's default retries a broken response stream forever: a killed server would leave
    // in-flight calls hanging until their timeout instead of failing with `Closed`.
    config.retry_config = Arc::new(BoundedSseRetry);
    if let (Some(token), None) = (&cfg.bearer, &cfg.oauth_tokens) {
        config = config.auth_header(token.expose().to_owned());
    }
    Ok(config)
}

/// Resumes a broken SSE response stream at most twice, 50 ms apart.
#[derive(Debug)]
struct BoundedSseRetry;

impl rmcp::transport::common::client_side_sse::SseRetryPolicy for BoundedSseRetry {
    fn retry(&self, current_times: usize) -> Option<Duration> {
        (current_times < 2).then_some(Duration::from_millis(50))
    }
}
