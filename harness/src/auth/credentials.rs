//! What a session authenticates with ([`Credentials`]); asking an endpoint why it refuses them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::oauth::OAuthTokens;
use super::refusal::rejection_reason;
use crate::errors::Result;
use crate::runtime;
use crate::secret::Secret;

/// What a session authenticates with.
#[derive(Clone, Debug, Default)]
pub(crate) enum Credentials {
    #[default]
    None,
    Bearer(Secret),
    OAuth(Arc<OAuthTokens>),
}

impl Credentials {
    /// The token to send now.
    pub(crate) async fn token(&self) -> Result<Option<Secret>> {
        match self {
            Credentials::None => Ok(None),
            Credentials::Bearer(t) => Ok(Some(t.clone())),
            Credentials::OAuth(t) => t.access_token().await.map(Some),
        }
    }

    /// After a 401 for `sent`: true if retrying with a new token makes sense.
    pub(crate) async fn renew(&self, sent: Option<&Secret>) -> bool {
        match (self, sent) {
            (Credentials::OAuth(t), Some(sent)) => t.refresh_after_rejection(sent).await,
            _ => false,
        }
    }

    pub(crate) fn is_none(&self) -> bool {
        matches!(self, Credentials::None)
    }
}

/// One JSON-RPC `ping` POSTed to a streamable HTTP endpoint as a session would send it (its
/// headers, its bearer token), to see what the endpoint answers: `None` if nothing came back
/// within 5 s.
pub(crate) async fn diagnostic_post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, Secret)],
    token: Option<&Secret>,
) -> Option<reqwest::Response> {
    let mut request = client
        .post(url)
        .header(http::header::ACCEPT, "application/json, text/event-stream")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.expose());
    }
    if let Some(t) = token {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", t.expose())).ok()?;
        value.set_sensitive(true);
        request = request.header(http::header::AUTHORIZATION, value);
    }
    runtime::timeout(Duration::from_secs(5), request.send())
        .await
        .ok()?
        .ok()
}

/// Asks a streamable HTTP endpoint why it refuses these credentials: one unauthenticated-
/// as-configured POST whose 401/403 challenge and body carry the reason (rmcp's error does
/// not keep the body). `None` if the endpoint does not refuse it now.
pub(crate) async fn diagnose_refusal(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, Secret)],
    credentials: &Credentials,
) -> Option<String> {
    let token = credentials.token().await.ok().flatten();
    let response = diagnostic_post(client, url, headers, token.as_ref()).await?;
    let status = response.status();
    if status != reqwest::StatusCode::UNAUTHORIZED && status != reqwest::StatusCode::FORBIDDEN {
        return None;
    }
    let challenge = response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = runtime::timeout(Duration::from_secs(2), response.bytes())
        .await
        .ok()
        .and_then(|b| b.ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    Some(rejection_reason(
        Some(status.as_u16()),
        challenge.as_deref(),
        body.as_ref(),
        token.is_some(),
    ))
}
