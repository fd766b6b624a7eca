//! [`OAuthTokens`]: the tokens of an authorized client, refreshed and stepped up on demand.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::OAuth;
use super::callback::CallbackServer;
use super::discovery::{Discovery, discover};
use super::grant::{authorization_code_grant, client_credentials_grant, token_request};
use super::http::oauth_error;
use super::registration::{ClientCredentials, register};
use crate::errors::{OAuthStep, Result};
use crate::secret::Secret;

pub(super) struct TokenState {
    pub(super) access: Secret,
    pub(super) refresh: Option<Secret>,
    pub(super) expires_at: Option<Instant>,
    pub(super) scope: Option<String>,
    pub(super) refreshes: u64,
    /// Whether the current access token came from a refresh: if the server refuses it too,
    /// refreshing again cannot help (the grant is dead, or the resource moved) and the flow
    /// runs again.
    pub(super) from_refresh: bool,
    /// Re-authorizations for a wider scope after a 403 `insufficient_scope` (step-up).
    pub(super) step_ups: u32,
    /// Whole flows run again after a 401 that no refresh could answer.
    pub(super) reauthorizations: u32,
    /// Where the tokens come from now.
    pub(super) grant: Arc<Grant>,
    /// Every client registered so far, by the issuer it was registered with: credentials
    /// belong to one authorization server and are never shown to another (SEP-2352).
    pub(super) clients: Vec<(String, Arc<ClientCredentials>)>,
}

/// At most this many step-up authorizations per set of tokens: a server that keeps asking
/// for more scope gets its 403, not an endless loop of authorizations.
const MAX_STEP_UPS: u32 = 2;

/// At most this many whole flows after 401s per set of tokens: a server that refuses every
/// fresh token gets its 401, not an endless loop of authorizations.
const MAX_REAUTHORIZATIONS: u32 = 4;

/// The authorization server the tokens come from, the client registered with it and the
/// redirect URI used; replaced when the resource names another authorization server.
pub(super) struct Grant {
    pub(super) discovery: Discovery,
    pub(super) client: Arc<ClientCredentials>,
    pub(super) redirect_uri: String,
}

/// What running the flow again needs from the first one.
pub(super) struct Reauthorize {
    /// The MCP endpoint, how to probe it and the headers sent with the probe.
    pub(super) resource_url: String,
    pub(super) sse: bool,
    pub(super) headers: Vec<(String, Secret)>,
    pub(super) oauth: OAuth,
    /// The scope the first authorization asked for.
    pub(super) requested: Option<String>,
}

/// The tokens of an authorized OAuth client, refreshed on demand. Never shows a token in
/// `Debug`.
pub struct OAuthTokens {
    pub(super) state: tokio::sync::Mutex<TokenState>,
    /// The current grant, readable without waiting for the state (set with it).
    pub(super) current: std::sync::Mutex<Arc<Grant>>,
    pub(super) refresh_skew: Duration,
    pub(super) reauthorize: Reauthorize,
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grant = self.grant();
        f.debug_struct("OAuthTokens")
            .field("client_id", &grant.client.id)
            .field("issuer", &grant.discovery.issuer)
            .field("token_endpoint", &grant.discovery.token_endpoint)
            .field("resource", &grant.discovery.resource)
            .finish_non_exhaustive()
    }
}

impl OAuthTokens {
    fn grant(&self) -> Arc<Grant> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The client id (registered or pre-registered) at the current authorization server.
    pub fn client_id(&self) -> String {
        self.grant().client.id.clone()
    }

    /// The issuer of the current authorization server.
    pub fn issuer(&self) -> String {
        self.grant().discovery.issuer.clone()
    }

    /// The redirect URI that was used (the loopback callback; it is closed by now).
    pub fn redirect_uri(&self) -> String {
        self.grant().redirect_uri.clone()
    }

    /// How many times the whole flow ran again because the server refused a token that no
    /// refresh could replace (a revoked grant, or an authorization server that moved).
    pub async fn reauthorizations(&self) -> u32 {
        self.state.lock().await.reauthorizations
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
        } else if stale && self.reauthorize.oauth.client_credentials {
            // Machine to machine: no refresh token is issued; the grant is simply run again.
            let grant = state.grant.clone();
            let scope = state
                .scope
                .clone()
                .or_else(|| self.reauthorize.requested.clone());
            self.client_credentials_locked(&mut state, &grant.discovery, &grant.client, scope)
                .await?;
        }
        Ok(state.access.clone())
    }

    /// Refreshes the access token now (with the refresh token).
    pub async fn refresh(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.refresh_locked(&mut state).await
    }

    /// After the server refused `rejected` (401): refreshes unless another caller already did;
    /// when there is no refresh token or the refresh fails, runs the whole flow again (see
    /// [`reauthorizations`](Self::reauthorizations)). True when a different token is now
    /// available.
    pub(crate) async fn refresh_after_rejection(&self, rejected: &Secret) -> bool {
        let mut state = self.state.lock().await;
        if state.access != *rejected {
            return true;
        }
        if state.refresh.is_some() {
            match self.refresh_locked(&mut state).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::debug!(error = %e, "refreshing the access token after a 401 failed");
                }
            }
        }
        self.reauthorize_locked(&mut state).await
    }

    /// After the server refused `rejected`, a token fresh from a refresh, on the retry of a
    /// request refused a moment before: refreshing again cannot help (the grant is dead at
    /// the resource, or the resource moved to another authorization server), so the whole
    /// flow runs again. True when a different token is now available.
    pub(crate) async fn reauthorize_after_refused_refresh(&self, rejected: &Secret) -> bool {
        let mut state = self.state.lock().await;
        if state.access != *rejected {
            return true;
        }
        if !state.from_refresh {
            return false;
        }
        tracing::debug!("a refreshed token was refused at once: authorizing again");
        self.reauthorize_locked(&mut state).await
    }

    /// Runs the whole flow again: discovery first (the resource may name another
    /// authorization server now), then registration with that server unless a client is
    /// already registered there, then the grant. True when it produced a token.
    async fn reauthorize_locked(&self, state: &mut TokenState) -> bool {
        if state.reauthorizations >= MAX_REAUTHORIZATIONS {
            tracing::debug!("a 401 after {MAX_REAUTHORIZATIONS} re-authorizations: giving up");
            return false;
        }
        match self.run_flow_again(state).await {
            Ok(()) => {
                state.reauthorizations += 1;
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "authorizing again after a 401 failed");
                false
            }
        }
    }

    async fn run_flow_again(&self, state: &mut TokenState) -> Result<()> {
        let r = &self.reauthorize;
        r.oauth.emit(OAuthStep::Discovery, None);
        let d = discover(&r.resource_url, r.sse, &r.headers, &r.oauth).await?;
        let scope = r.oauth.scope.clone().or_else(|| d.scope.clone());
        let previous = state.grant.clone();
        if r.oauth.client_credentials {
            let known = state
                .clients
                .iter()
                .find(|(issuer, _)| *issuer == d.issuer)
                .map(|(_, c)| c.clone());
            let client = match known {
                Some(c) => c,
                None => {
                    r.oauth.emit(OAuthStep::Registration, None);
                    let c = Arc::new(register(&d, "", scope.as_deref(), &r.oauth).await?);
                    state.clients.push((d.issuer.clone(), c.clone()));
                    c
                }
            };
            state.refresh = None;
            state.scope = None;
            self.client_credentials_locked(state, &d, &client, scope)
                .await?;
            state.step_ups = 0;
            state.grant = Arc::new(Grant {
                discovery: d,
                client,
                redirect_uri: String::new(),
            });
            *self.current.lock().unwrap_or_else(|p| p.into_inner()) = state.grant.clone();
            return Ok(());
        }
        let callback = callback_near(&previous.redirect_uri).await.map_err(|e| {
            oauth_error(
                &r.resource_url,
                OAuthStep::Authorization,
                format!("cannot start the loopback callback server: {e}"),
            )
        })?;
        let redirect_uri = callback.redirect_uri();
        let known = state
            .clients
            .iter()
            .find(|(issuer, _)| *issuer == d.issuer)
            .map(|(_, c)| c.clone());
        let client = match known {
            Some(c) => c,
            None => {
                tracing::debug!(
                    from = %previous.discovery.issuer,
                    to = %d.issuer,
                    "the resource names another authorization server: registering there"
                );
                r.oauth.emit(OAuthStep::Registration, Some(callback.addr));
                let c = Arc::new(register(&d, &redirect_uri, scope.as_deref(), &r.oauth).await?);
                state.clients.push((d.issuer.clone(), c.clone()));
                c
            }
        };
        let body =
            authorization_code_grant(&d, &client, callback, scope.as_deref(), &r.oauth).await?;
        // Nothing of the old grant carries over: its refresh token and scope were the old
        // grant's.
        state.refresh = None;
        state.expires_at = None;
        state.scope = None;
        apply_token_response(state, body, &d.token_endpoint, OAuthStep::Token)?;
        if state.scope.is_none() {
            state.scope = scope;
        }
        state.step_ups = 0;
        state.grant = Arc::new(Grant {
            discovery: d,
            client,
            redirect_uri,
        });
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = state.grant.clone();
        Ok(())
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
        let grant = state.grant.clone();
        if r.oauth.client_credentials {
            return match self
                .client_credentials_locked(&mut state, &grant.discovery, &grant.client, wanted)
                .await
            {
                Ok(()) => {
                    state.step_ups += 1;
                    true
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the step-up client credentials grant failed");
                    false
                }
            };
        }
        let callback = match callback_near(&grant.redirect_uri).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "no callback server for the step-up");
                return false;
            }
        };
        tracing::debug!(
            scope = wanted.as_deref().unwrap_or(""),
            "OAuth step-up: authorizing again for more scope"
        );
        match authorization_code_grant(
            &grant.discovery,
            &grant.client,
            callback,
            wanted.as_deref(),
            &r.oauth,
        )
        .await
        .and_then(|body| {
            apply_token_response(
                &mut state,
                body,
                &grant.discovery.token_endpoint,
                OAuthStep::Token,
            )
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

    /// Runs the client credentials grant for `scope` and takes its tokens.
    async fn client_credentials_locked(
        &self,
        state: &mut TokenState,
        d: &Discovery,
        client: &ClientCredentials,
        scope: Option<String>,
    ) -> Result<()> {
        let body =
            client_credentials_grant(d, client, scope.as_deref(), &self.reauthorize.oauth).await?;
        state.expires_at = None;
        apply_token_response(state, body, &d.token_endpoint, OAuthStep::Token)?;
        if state.scope.is_none() {
            state.scope = scope;
        }
        tracing::debug!("access token fetched again with the client credentials grant");
        Ok(())
    }

    async fn refresh_locked(&self, state: &mut TokenState) -> Result<()> {
        let grant = state.grant.clone();
        let token_endpoint = grant.discovery.token_endpoint.as_str();
        let Some(refresh) = state.refresh.clone() else {
            return Err(oauth_error(
                token_endpoint,
                OAuthStep::Refresh,
                "the authorization server issued no refresh token; authorize again",
            ));
        };
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.expose().to_owned()),
            ("resource", grant.discovery.resource.clone()),
        ];
        let response = token_request(
            token_endpoint,
            &grant.discovery.issuer,
            &grant.client,
            &mut form,
            OAuthStep::Refresh,
            Duration::from_secs(10),
        )
        .await?;
        apply_token_response(state, response, token_endpoint, OAuthStep::Refresh)?;
        state.refreshes += 1;
        state.from_refresh = true;
        tracing::debug!("access token refreshed");
        Ok(())
    }
}

/// A callback server on the port of `redirect_uri` if it is free, else on any port (loopback
/// redirects may vary in port).
async fn callback_near(redirect_uri: &str) -> std::io::Result<CallbackServer> {
    let port = reqwest::Url::parse(redirect_uri)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(0);
    match CallbackServer::start(port).await {
        Ok(c) => Ok(c),
        Err(_) => CallbackServer::start(0).await,
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
    state.from_refresh = false;
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
