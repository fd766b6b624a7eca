//! [`OAuthTokens`]: the tokens of an authorized client, refreshed and stepped up on demand.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::OAuth;
use super::callback::CallbackServer;
use super::discovery::Discovery;
use super::grant::{authorization_code_grant, token_request};
use super::http::oauth_error;
use super::registration::ClientCredentials;
use crate::errors::{OAuthStep, Result};
use crate::secret::Secret;

pub(super) struct TokenState {
    pub(super) access: Secret,
    pub(super) refresh: Option<Secret>,
    pub(super) expires_at: Option<Instant>,
    pub(super) scope: Option<String>,
    pub(super) refreshes: u64,
    /// Re-authorizations for a wider scope after a 403 `insufficient_scope` (step-up).
    pub(super) step_ups: u32,
}

/// At most this many step-up authorizations per set of tokens: a server that keeps asking
/// for more scope gets its 403, not an endless loop of authorizations.
const MAX_STEP_UPS: u32 = 2;

/// What a step-up authorization needs from the first flow.
pub(super) struct Reauthorize {
    pub(super) discovery: Discovery,
    pub(super) oauth: OAuth,
    /// The scope the first authorization asked for.
    pub(super) requested: Option<String>,
}

/// The tokens of an authorized OAuth client, refreshed on demand. Never shows a token in
/// `Debug`.
pub struct OAuthTokens {
    pub(super) state: tokio::sync::Mutex<TokenState>,
    pub(super) client: ClientCredentials,
    pub(super) token_endpoint: String,
    pub(super) resource: String,
    pub(super) redirect_uri: String,
    pub(super) refresh_skew: Duration,
    pub(super) reauthorize: Reauthorize,
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("client_id", &self.client.id)
            .field("token_endpoint", &self.token_endpoint)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl OAuthTokens {
    /// The client id (registered or pre-registered).
    pub fn client_id(&self) -> &str {
        &self.client.id
    }

    /// The redirect URI that was used (the loopback callback; it is closed by now).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The granted scope, if the server said.
    pub async fn scope(&self) -> Option<String> {
        self.state.lock().await.scope.clone()
    }

    /// How many times the access token was refreshed.
    pub async fn refreshes(&self) -> u64 {
        self.state.lock().await.refreshes
    }

    /// The current access token, refreshed first if it expires within a few seconds.
    pub async fn access_token(&self) -> Result<Secret> {
        let mut state = self.state.lock().await;
        let stale = state
            .expires_at
            .is_some_and(|t| Instant::now() + self.refresh_skew >= t);
        if stale && state.refresh.is_some() {
            self.refresh_locked(&mut state).await?;
        }
        Ok(state.access.clone())
    }

    /// Refreshes the access token now (with the refresh token).
    pub async fn refresh(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.refresh_locked(&mut state).await
    }

    /// After the server refused `rejected`: refreshes unless another caller already did.
    /// True when a different token is now available.
    pub(crate) async fn refresh_after_rejection(&self, rejected: &Secret) -> bool {
        let mut state = self.state.lock().await;
        if state.access != *rejected {
            return true;
        }
        if state.refresh.is_none() {
            return false;
        }
        match self.refresh_locked(&mut state).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "refreshing the access token after a 401 failed");
                false
            }
        }
    }

    /// After a 403 `insufficient_scope` for `rejected`: authorizes again, headless, for the
    /// granted scope plus `required` (step-up authorization, MCP 2025-11-25), unless another
    /// caller already did. True when a token with more scope is now available; false when
    /// there is nothing new to ask for, the step-up budget is spent, or the flow failed.
    pub(crate) async fn step_up_after_rejection(
        &self,
        rejected: &Secret,
        required: Option<&str>,
    ) -> bool {
        let mut state = self.state.lock().await;
        if state.access != *rejected {
            return true;
        }
        let current = state
            .scope
            .clone()
            .or_else(|| self.reauthorize.requested.clone());
        let wanted = union_of_scopes(current.as_deref(), required);
        if state.step_ups >= MAX_STEP_UPS || wanted.is_none() || wanted == current {
            return false;
        }
        let r = &self.reauthorize;
        let port = reqwest::Url::parse(&self.redirect_uri)
            .ok()
            .and_then(|u| u.port())
            .unwrap_or(0);
        let callback = match CallbackServer::start(port).await {
            Ok(c) => c,
            // The first flow's port is taken: any port (loopback redirects may vary).
            Err(_) => match CallbackServer::start(0).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "no callback server for the step-up");
                    return false;
                }
            },
        };
        tracing::debug!(
            scope = wanted.as_deref().unwrap_or(""),
            "OAuth step-up: authorizing again for more scope"
        );
        match authorization_code_grant(
            &r.discovery,
            &self.client,
            callback,
            wanted.as_deref(),
            &r.oauth,
        )
        .await
        .and_then(|body| {
            apply_token_response(&mut state, body, &self.token_endpoint, OAuthStep::Token)
        }) {
            Ok(()) => {
                state.step_ups += 1;
                if state.scope.is_none() {
                    state.scope = wanted;
                }
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "the step-up authorization failed");
                false
            }
        }
    }

    async fn refresh_locked(&self, state: &mut TokenState) -> Result<()> {
        let Some(refresh) = state.refresh.clone() else {
            return Err(oauth_error(
                &self.token_endpoint,
                OAuthStep::Refresh,
                "the authorization server issued no refresh token; authorize again",
            ));
        };
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.expose().to_owned()),
            ("resource", self.resource.clone()),
        ];
        let response = token_request(
            &self.token_endpoint,
            &self.client,
            &mut form,
            OAuthStep::Refresh,
            Duration::from_secs(10),
        )
        .await?;
        apply_token_response(state, response, &self.token_endpoint, OAuthStep::Refresh)?;
        state.refreshes += 1;
        tracing::debug!("access token refreshed");
        Ok(())
    }
}

/// The space-separated union of two scopes, in order, without repeats (`None` when empty).
fn union_of_scopes(a: Option<&str>, b: Option<&str>) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for s in a.into_iter().chain(b).flat_map(str::split_whitespace) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    (!out.is_empty()).then(|| out.join(" "))
}

pub(super) fn apply_token_response(
    state: &mut TokenState,
    body: Value,
    endpoint: &str,
    step: OAuthStep,
) -> Result<()> {
    let access = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| oauth_error(endpoint, step, "the token response has no access_token"))?;
    if let Some(t) = body.get("token_type").and_then(Value::as_str)
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(oauth_error(
            endpoint,
            step,
            format!("token_type is {t:?}, expected Bearer"),
        ));
    }
    state.access = Secret::new(access);
    if let Some(r) = body.get("refresh_token").and_then(Value::as_str) {
        state.refresh = Some(Secret::new(r));
    }
    state.expires_at = body
        .get("expires_in")
        .and_then(Value::as_u64)
        .map(|s| Instant::now() + Duration::from_secs(s));
    if let Some(s) = body.get("scope").and_then(Value::as_str) {
        state.scope = Some(s.to_owned());
    }
    Ok(())
}
