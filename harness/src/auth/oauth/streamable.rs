//! [`OAuthHttpClient`]: rmcp's streamable HTTP client, sending and renewing the OAuth token.

use std::sync::Arc;

use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};

use super::tokens::OAuthTokens;
use crate::secret::Secret;

/// A streamable HTTP client that sends the current OAuth access token and, after a 401,
/// refreshes it and retries once.
#[derive(Clone)]
pub(crate) struct OAuthHttpClient {
    pub(crate) inner: reqwest::Client,
    pub(crate) tokens: Arc<OAuthTokens>,
}

type HttpHeaders = std::collections::HashMap<http::HeaderName, http::HeaderValue>;
/// The largest SSE event accepted when rmcp calls the variants without an explicit limit.
const MAX_SSE_EVENT_SIZE: usize = 8 * 1024 * 1024;
type StreamResult<T> = std::result::Result<T, StreamableHttpError<reqwest::Error>>;
type SseEvents =
    futures::stream::BoxStream<'static, std::result::Result<sse_stream::Sse, sse_stream::Error>>;

/// Why the server refused a request's token.
enum Refusal {
    /// 401: the token is missing, expired or revoked.
    Unauthorized,
    /// 403 `insufficient_scope`, with the scope the challenge asked for.
    InsufficientScope(Option<String>),
}

impl OAuthHttpClient {
    async fn token(&self) -> Option<Secret> {
        match self.tokens.access_token().await {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::debug!(error = %e, "no fresh access token; sending the last one");
                Some(self.tokens.state.lock().await.access.clone())
            }
        }
    }

    /// Sends with the current access token; after a 401, once more with a refreshed one (and
    /// if that one is refused too, once more after the whole flow); after a 403
    /// `insufficient_scope`, once more after a step-up authorization.
    async fn with_token_retry<T, F, Fut>(&self, send: F) -> StreamResult<T>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = StreamResult<T>>,
    {
        let sent = self.token().await;
        let first = send(sent.as_ref().map(|s| s.expose().to_owned())).await;
        let refusal = match &first {
            Err(StreamableHttpError::AuthRequired(_)) => Some(Refusal::Unauthorized),
            Err(StreamableHttpError::InsufficientScope(e)) => {
                Some(Refusal::InsufficientScope(e.required_scope.clone()))
            }
            _ => None,
        };
        if !self.retry_after(refusal, &sent).await {
            return first;
        }
        let token = self.token().await;
        let second = send(token.as_ref().map(|s| s.expose().to_owned())).await;
        // A token fresh from a refresh refused at once: the grant behind it is dead here (the
        // resource may have moved to another authorization server). One more try after the
        // whole flow.
        if let (Err(StreamableHttpError::AuthRequired(_)), Some(refused)) = (&second, &token)
            && self.tokens.reauthorize_after_refused_refresh(refused).await
        {
            let token = self.token().await;
            return send(token.as_ref().map(|s| s.expose().to_owned())).await;
        }
        second
    }

    /// After a refusal: true when a new token (refreshed after a 401, or with more scope
    /// after a 403 `insufficient_scope`) is available for one retry.
    async fn retry_after(&self, refusal: Option<Refusal>, sent: &Option<Secret>) -> bool {
        match (refusal, sent) {
            (Some(Refusal::Unauthorized), Some(sent)) => {
                self.tokens.refresh_after_rejection(sent).await
            }
            (Some(Refusal::InsufficientScope(required)), Some(sent)) => {
                self.tokens
                    .step_up_after_rejection(sent, required.as_deref())
                    .await
            }
            _ => false,
        }
    }
}

impl StreamableHttpClient for OAuthHttpClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HttpHeaders,
    ) -> StreamResult<StreamableHttpPostResponse> {
        self.post_message_with_max_sse_event_size(
            uri,
            message,
            session_id,
            None,
            custom_headers,
            MAX_SSE_EVENT_SIZE,
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HttpHeaders,
        max: usize,
    ) -> StreamResult<StreamableHttpPostResponse> {
        self.with_token_retry(|token| {
            self.inner.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                max,
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HttpHeaders,
    ) -> StreamResult<()> {
        let token = self.token().await;
        self.inner
            .delete_session(
                uri,
                session_id,
                token.as_ref().map(|s| s.expose().to_owned()),
                custom_headers,
            )
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HttpHeaders,
    ) -> StreamResult<SseEvents> {
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            None,
            custom_headers,
            MAX_SSE_EVENT_SIZE,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HttpHeaders,
        max: usize,
    ) -> StreamResult<SseEvents> {
        self.with_token_retry(|token| {
            self.inner.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
                max,
            )
        })
        .await
    }
}
