//! Streamable HTTP (MCP 2025-03-26 and later), through rmcp's client transport on the shared
//! HTTP client; OAuth sessions send through the token-injecting client instead.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
    StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
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
    oversized: Arc<std::sync::Mutex<Option<usize>>>,
) -> std::result::Result<Started, Failure> {
    let url = match &cfg.target {
        Target::Server(s) => s.url().to_owned(),
        other => other.describe(),
    };
    let config = http_config(cfg, &url).map_err(Failure::Fatal)?;
    let (opened, mut get_stream) = tokio::sync::watch::channel(false);
    let opened = Arc::new(opened);
    let started = match &cfg.oauth_tokens {
        Some(tokens) => {
            let client = WatchedGet {
                inner: OAuthHttpClient {
                    inner: HTTP_CLIENT.get(),
                    tokens: tokens.clone(),
                },
                opened,
                oversized,
            };
            let transport = StreamableHttpClientTransport::with_client(client, config);
            handshake::initialize(handler, transport, cfg.init_timeout, &cfg.protocol).await
        }
        None => {
            let client = WatchedGet {
                inner: HTTP_CLIENT.get(),
                opened,
                oversized,
            };
            let transport = StreamableHttpClientTransport::with_client(client, config);
            handshake::initialize(handler, transport, cfg.init_timeout, &cfg.protocol).await
        }
    };
    // The stateless era has no GET stream (its notifications come on `subscriptions/listen`).
    let handshake_era = match &started {
        Ok(Ok(running)) => running.peer().peer_info().is_some_and(|i| {
            crate::session::Era::of(&i.protocol_version.to_string())
                == crate::session::Era::Handshake
        }),
        _ => false,
    };
    if handshake_era {
        // rmcp opens the standalone GET stream in the background after `initialize`. A server
        // may send requests unrelated to any call there (an elicitation from a tool, for one),
        // and whatever it sends before the stream exists is lost: the session is ready once
        // the stream is open, or refused (a server without one), within a bound.
        let bound = cfg.init_timeout.min(GET_STREAM_WAIT);
        let _ = crate::runtime::timeout(bound, get_stream.wait_for(|opened| *opened)).await;
    }
    Ok(started)
}

/// How long `connect` waits for the standalone GET stream before it goes on without it.
const GET_STREAM_WAIT: Duration = Duration::from_secs(2);

type HttpHeaders = std::collections::HashMap<http::HeaderName, http::HeaderValue>;
type SseEvents = futures::stream::BoxStream<
    'static,
    std::result::Result<sse_stream::Sse, rmcp::transport::streamable_http_client::SseError>,
>;

/// A streamable HTTP client that says when its first GET stream was opened (or refused), or
/// that none will be (the server keeps no session, so rmcp opens no GET stream).
#[derive(Clone)]
struct WatchedGet<C> {
    inner: C,
    opened: Arc<tokio::sync::watch::Sender<bool>>,
    /// Set when an answer was refused for its size (the bound), for the caller's error.
    oversized: Arc<std::sync::Mutex<Option<usize>>>,
}

impl<C> WatchedGet<C> {
    /// A request sent without a session (the opening one) whose answer names none, or fails:
    /// no GET stream will follow.
    /// Awaits a POST and notes what its answer says (see [`Self::note_post`]).
    async fn noted<E: std::error::Error + Send + Sync + 'static>(
        &self,
        without_session: bool,
        sent: impl Future<
            Output = std::result::Result<StreamableHttpPostResponse, StreamableHttpError<E>>,
        >,
    ) -> std::result::Result<StreamableHttpPostResponse, StreamableHttpError<E>> {
        let answer = sent.await;
        self.note_post(without_session, &answer);
        answer
    }

    fn note_post<E: std::error::Error + Send + Sync + 'static>(
        &self,
        without_session: bool,
        answer: &std::result::Result<StreamableHttpPostResponse, StreamableHttpError<E>>,
    ) {
        if let Err(StreamableHttpError::ResponseBodyTooLarge { max_size }) = answer {
            *self.oversized.lock().unwrap_or_else(|p| p.into_inner()) = Some(*max_size);
        }
        let sessionless = match answer {
            Ok(
                StreamableHttpPostResponse::Json(_, id) | StreamableHttpPostResponse::Sse(_, id),
            ) => id.is_none(),
            Ok(_) => false,
            Err(_) => true,
        };
        if without_session && sessionless {
            self.opened.send_replace(true);
        }
    }
}

impl<C: StreamableHttpClient + Sync> StreamableHttpClient for WatchedGet<C> {
    type Error = C::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HttpHeaders,
    ) -> std::result::Result<StreamableHttpPostResponse, StreamableHttpError<C::Error>> {
        self.noted(
            session_id.is_none(),
            self.inner
                .post_message(uri, message, session_id, auth_header, custom_headers),
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HttpHeaders,
        max: usize,
    ) -> std::result::Result<StreamableHttpPostResponse, StreamableHttpError<C::Error>> {
        self.noted(
            session_id.is_none(),
            self.inner.post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max,
            ),
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HttpHeaders,
        limits: StreamableHttpResponseLimits,
    ) -> std::result::Result<StreamableHttpPostResponse, StreamableHttpError<C::Error>> {
        self.noted(
            session_id.is_none(),
            self.inner.post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            ),
        )
        .await
    }

    fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HttpHeaders,
    ) -> impl Future<Output = std::result::Result<(), StreamableHttpError<C::Error>>> + Send + '_
    {
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HttpHeaders,
    ) -> std::result::Result<SseEvents, StreamableHttpError<C::Error>> {
        let opened = self
            .inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await;
        self.opened.send_replace(true);
        opened
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HttpHeaders,
        max: usize,
    ) -> std::result::Result<SseEvents, StreamableHttpError<C::Error>> {
        let opened = self
            .inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max,
            )
            .await;
        self.opened.send_replace(true);
        opened
    }
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
        // One bound for every transport: a JSON body or an SSE event as long as a stdio line.
        .max_json_response_size(cfg.max_message_size)
        .max_sse_event_size(cfg.max_message_size)
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
