//! The whole headless flow, from the MCP endpoint's 401 to [`OAuthTokens`]: [`authorize`].

use super::OAuth;
use super::callback::CallbackServer;
use super::discovery::{Discovery, discover};
use super::grant::{authorization_code_grant, client_credentials_grant};
use super::http::oauth_error;
use super::registration::register;
use super::tokens::{Grant, OAuthTokens, Reauthorize, TokenState, apply_token_response};
use crate::errors::{OAuthStep, Result};
use crate::secret::Secret;
use crate::transport::Transport;

/// Runs the whole headless flow against the MCP endpoint at `resource_url` (`sse` tells
/// how to probe it) and returns the tokens.
pub(crate) async fn authorize_with_headers(
    resource_url: &str,
    sse: bool,
    headers: &[(String, Secret)],
    oauth: &OAuth,
) -> Result<OAuthTokens> {
    oauth.emit(OAuthStep::Discovery, None);
    let d = discover(resource_url, sse, headers, oauth).await?;
    let scope = oauth.scope.clone().or_else(|| d.scope.clone());
    if oauth.client_credentials {
        return machine_to_machine(d, scope, resource_url, sse, headers, oauth).await;
    }
    // The callback is listening before registration: the redirect URI names its port.
    let callback = CallbackServer::start(oauth.callback_port)
        .await
        .map_err(|e| {
            oauth_error(
                resource_url,
                OAuthStep::Authorization,
                format!("cannot start the loopback callback server: {e}"),
            )
        })?;
    let redirect_uri = callback.redirect_uri();
    oauth.emit(OAuthStep::Registration, Some(callback.addr));
    let client = register(&d, &redirect_uri, scope.as_deref(), oauth).await?;
    let body = authorization_code_grant(&d, &client, callback, scope.as_deref(), oauth).await?;
    let client = std::sync::Arc::new(client);
    let grant = std::sync::Arc::new(Grant {
        discovery: d.clone(),
        client: client.clone(),
        redirect_uri,
    });
    let mut state = TokenState {
        access: Secret::new(""),
        refresh: None,
        expires_at: None,
        scope: None,
        refreshes: 0,
        from_refresh: false,
        step_ups: 0,
        reauthorizations: 0,
        grant: grant.clone(),
        clients: vec![(d.issuer.clone(), client.clone())],
    };
    apply_token_response(&mut state, body, &d.token_endpoint, OAuthStep::Token)?;
    tracing::debug!(client_id = %client.id, "OAuth authorization complete");
    Ok(tokens(
        state,
        grant,
        resource_url,
        sse,
        headers,
        oauth,
        scope,
    ))
}

/// The client credentials grant: the client is known to the authorization server (no
/// registration, no callback server), one token request.
async fn machine_to_machine(
    d: Discovery,
    scope: Option<String>,
    resource_url: &str,
    sse: bool,
    headers: &[(String, Secret)],
    oauth: &OAuth,
) -> Result<OAuthTokens> {
    if oauth.client_id.is_none() {
        return Err(oauth_error(
            &d.issuer,
            OAuthStep::Registration,
            "the client credentials grant needs a client the authorization server already \
             knows: give its client id",
        ));
    }
    oauth.emit(OAuthStep::Registration, None);
    let client = std::sync::Arc::new(register(&d, "", scope.as_deref(), oauth).await?);
    let body = client_credentials_grant(&d, &client, scope.as_deref(), oauth).await?;
    let grant = std::sync::Arc::new(Grant {
        discovery: d.clone(),
        client: client.clone(),
        redirect_uri: String::new(),
    });
    let mut state = TokenState {
        access: Secret::new(""),
        refresh: None,
        expires_at: None,
        scope: None,
        refreshes: 0,
        from_refresh: false,
        step_ups: 0,
        reauthorizations: 0,
        grant: grant.clone(),
        clients: vec![(d.issuer.clone(), client.clone())],
    };
    apply_token_response(&mut state, body, &d.token_endpoint, OAuthStep::Token)?;
    tracing::debug!(client_id = %client.id, "OAuth client credentials grant complete");
    Ok(tokens(
        state,
        grant,
        resource_url,
        sse,
        headers,
        oauth,
        scope,
    ))
}

fn tokens(
    state: TokenState,
    grant: std::sync::Arc<Grant>,
    resource_url: &str,
    sse: bool,
    headers: &[(String, Secret)],
    oauth: &OAuth,
    scope: Option<String>,
) -> OAuthTokens {
    OAuthTokens {
        state: tokio::sync::Mutex::new(state),
        current: std::sync::Mutex::new(grant),
        refresh_skew: oauth.refresh_skew,
        reauthorize: Reauthorize {
            resource_url: resource_url.to_owned(),
            sse,
            headers: headers.to_vec(),
            oauth: oauth.clone(),
            requested: scope,
        },
    }
}

/// Runs a headless OAuth 2.1 authorization for the MCP endpoint at `resource_url`
/// (streamable HTTP, or `/sse` when `transport` is SSE) and returns the tokens; sessions do
/// this themselves when built with [`SessionBuilder::oauth`](crate::SessionBuilder::oauth).
///
/// The loopback callback server it starts is stopped before this returns, and also when
/// the future is dropped or panics. Failures are [`Error::OAuth`](crate::Error::OAuth)
/// naming the step; they are never retried.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::{OAuth, Transport};
/// let tokens = mcp_harness::authorize("http://127.0.0.1:4000/mcp", Transport::StreamableHttp, &OAuth::new()).await?;
/// println!("registered as {}", tokens.client_id());
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
pub async fn authorize(
    resource_url: &str,
    transport: Transport,
    oauth: &OAuth,
) -> Result<OAuthTokens> {
    authorize_with_headers(resource_url, transport == Transport::Sse, &[], oauth).await
}
