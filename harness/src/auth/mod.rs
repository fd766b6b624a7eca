//! Credentials of HTTP sessions: static bearer tokens and JWTs, and a headless OAuth 2.1 flow
//! as the MCP authorization spec (2025-06-18, 2025-11-25) describes it.
//!
//! The OAuth flow runs without a browser: discovery from the server's 401 (protected
//! resource metadata, RFC 9728; authorization server metadata, RFC 8414 or OIDC discovery),
//! dynamic client registration (RFC 7591) or pre-registered credentials, the authorization
//! request with PKCE S256 fetched without following redirects, the code caught on a loopback
//! callback server that the flow starts and always stops, and the token exchange. Access
//! tokens are refreshed when they expire, before a request or after a 401.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

use crate::errors::{Error, OAuthStep, Result};
use crate::runtime;
use crate::secret::Secret;

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenEndpointAuth {
    /// A public client: no secret, `client_id` in the form (the default for dynamic
    /// registration).
    #[default]
    None,
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl TokenEndpointAuth {
    /// The RFC 7591 name (`none`, `client_secret_basic`, `client_secret_post`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuth::None => "none",
            TokenEndpointAuth::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuth::ClientSecretPost => "client_secret_post",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(TokenEndpointAuth::None),
            "client_secret_basic" => Some(TokenEndpointAuth::ClientSecretBasic),
            "client_secret_post" => Some(TokenEndpointAuth::ClientSecretPost),
            _ => None,
        }
    }
}

/// What the OAuth flow is doing; passed to an [`OAuth::observe`] callback as each step
/// starts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OAuthEvent {
    /// The step starting.
    pub step: OAuthStep,
    /// The loopback callback server's address, once it is listening.
    pub callback: Option<SocketAddr>,
}

type Observer = Arc<dyn Fn(&OAuthEvent) + Send + Sync>;

/// Settings of a headless OAuth 2.1 authorization (authorization code + PKCE S256).
///
/// By default the client registers itself dynamically as a public client
/// (`token_endpoint_auth_method: none`); use [`pre_registered`](Self::pre_registered) for a
/// client the authorization server already knows.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::{OAuth, Session, Target, TokenEndpointAuth};
/// let session = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
///     .name("oauth")
///     .oauth(OAuth::new().registration_auth(TokenEndpointAuth::ClientSecretBasic))
///     .connect()
///     .await?;
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Clone)]
pub struct OAuth {
    client_name: String,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    auth_method: TokenEndpointAuth,
    /// Whether the user chose the method (else the server's metadata may change it).
    auth_method_chosen: bool,
    scope: Option<String>,
    callback_port: u16,
    callback_timeout: Duration,
    step_timeout: Duration,
    refresh_skew: Duration,
    observer: Option<Observer>,
}

impl fmt::Debug for OAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("client_name", &self.client_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("auth_method", &self.auth_method)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Default for OAuth {
    fn default() -> Self {
        Self::new()
    }
}

impl OAuth {
    /// Dynamic registration of a public client named `mcp-harness`.
    pub fn new() -> Self {
        OAuth {
            client_name: "mcp-harness".into(),
            client_id: None,
            client_secret: None,
            auth_method: TokenEndpointAuth::None,
            auth_method_chosen: false,
            scope: None,
            callback_port: 0,
            callback_timeout: Duration::from_secs(30),
            step_timeout: Duration::from_secs(10),
            refresh_skew: Duration::from_secs(5),
            observer: None,
        }
    }

    /// Uses a client the authorization server already knows instead of registering one.
    /// The secret is needed for `client_secret_basic` and `client_secret_post`.
    pub fn pre_registered(
        mut self,
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        auth_method: TokenEndpointAuth,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.client_secret = client_secret;
        self.auth_method = auth_method;
        self.auth_method_chosen = true;
        self
    }

    /// The token endpoint auth method asked for at dynamic registration. Default: `none`
    /// when the server's `token_endpoint_auth_methods_supported` allows it (or does not
    /// say), else `client_secret_basic`, else `client_secret_post`.
    pub fn registration_auth(mut self, method: TokenEndpointAuth) -> Self {
        self.auth_method = method;
        self.auth_method_chosen = true;
        self
    }

    /// The client name sent at dynamic registration.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// The scope to ask for (space separated). Default: the `scope` of the server's
    /// `WWW-Authenticate` challenge, else the resource's `scopes_supported`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The loopback port of the callback server (default 0: any free port).
    pub fn callback_port(mut self, port: u16) -> Self {
        self.callback_port = port;
        self
    }

    /// How long to wait for the authorization code on the callback (default 30 s).
    pub fn callback_timeout(mut self, d: Duration) -> Self {
        self.callback_timeout = d;
        self
    }

    /// The bound on each HTTP exchange of the flow (default 10 s).
    pub fn step_timeout(mut self, d: Duration) -> Self {
        self.step_timeout = d;
        self
    }

    /// Calls `f` as each step of the flow starts (for tests and progress reports).
    pub fn observe(mut self, f: impl Fn(&OAuthEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    fn emit(&self, step: OAuthStep, callback: Option<SocketAddr>) {
        tracing::debug!(%step, "OAuth step");
        if let Some(f) = &self.observer {
            f(&OAuthEvent { step, callback });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

struct TokenState {
    access: Secret,
    refresh: Option<Secret>,
    expires_at: Option<Instant>,
    scope: Option<String>,
    refreshes: u64,
    /// Re-authorizations for a wider scope after a 403 `insufficient_scope` (step-up).
    step_ups: u32,
}

/// At most this many step-up authorizations per set of tokens: a server that keeps asking
/// for more scope gets its 403, not an endless loop of authorizations.
const MAX_STEP_UPS: u32 = 2;

/// What a step-up authorization needs from the first flow.
struct Reauthorize {
    discovery: Discovery,
    oauth: OAuth,
    /// The scope the first authorization asked for.
    requested: Option<String>,
}

struct ClientCredentials {
    id: String,
    secret: Option<Secret>,
    method: TokenEndpointAuth,
}

/// The tokens of an authorized OAuth client, refreshed on demand. Never shows a token in
/// `Debug`.
pub struct OAuthTokens {
    state: tokio::sync::Mutex<TokenState>,
    client: ClientCredentials,
    token_endpoint: String,
    resource: String,
    redirect_uri: String,
    refresh_skew: Duration,
    reauthorize: Reauthorize,
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

fn apply_token_response(
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

// ---------------------------------------------------------------------------------------------
// Credentials of a session

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

/// The reason of a refusal, from a `WWW-Authenticate` challenge and/or a JSON body, as
/// `<kind>: <what the server said>` where kind is `missing`, `unknown`, `malformed`,
/// `expired`, `insufficient_scope`, an RFC 6750 error code, or `refused`. Never carries a
/// token: only the server's words (challenge parameters, `reason`/`message` fields).
pub(crate) fn rejection_reason(
    status: Option<u16>,
    challenge: Option<&str>,
    body: Option<&Value>,
    sent_credentials: bool,
) -> String {
    let param = |name: &str| challenge.and_then(|c| challenge_param(c, name));
    if let Some(reason) = body.and_then(|b| b.get("reason")).and_then(Value::as_str) {
        let message = body
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        return format!("{reason}: {message}");
    }
    if let Some(d) = param("error_description") {
        // The bundled servers start the description with the kind.
        return match param("error") {
            Some(e) if !d.starts_with(|c: char| c.is_ascii_lowercase()) => format!("{e}: {d}"),
            _ => d,
        };
    }
    if let Some(e) = param("error") {
        return format!("{e}: the server refused the token");
    }
    if !sent_credentials {
        return "missing: no credentials were sent and the server requires them (set a bearer token or OAuth)".into();
    }
    match status {
        Some(s) => format!("refused: HTTP {s}"),
        None => "refused: the server refused the credentials".into(),
    }
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
    let mut request = client
        .post(url)
        .header(http::header::ACCEPT, "application/json, text/event-stream")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.expose());
    }
    if let Some(t) = &token {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", t.expose())).ok()?;
        value.set_sensitive(true);
        request = request.header(http::header::AUTHORIZATION, value);
    }
    let response = runtime::timeout(Duration::from_secs(5), request.send())
        .await
        .ok()?
        .ok()?;
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

/// Extracts the reason from an rmcp error chain that quotes a `WWW-Authenticate` header.
pub(crate) fn rejection_reason_from_chain(chain: &str, sent_credentials: bool) -> String {
    // The SSE transport's own refusal already carries the reason.
    if let Some(i) = chain.rfind("unauthorized: ") {
        return chain[i + "unauthorized: ".len()..].to_owned();
    }
    let challenge = chain.find("Bearer").map(|i| &chain[i..]);
    let lower = chain.to_ascii_lowercase();
    let status = if lower.contains("insufficient scope") || lower.contains("http 403") {
        Some(403)
    } else {
        Some(401)
    };
    rejection_reason(status, challenge, None, sent_credentials)
}

/// One parameter of a `WWW-Authenticate: Bearer k="v", ...` challenge.
pub(crate) fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0
            || rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c == ' ' || c == ',');
        let after = &rest[i + name.len()..];
        let after_trim = after.trim_start();
        if before_ok && let Some(value) = after_trim.strip_prefix('=') {
            let value = value.trim_start();
            if let Some(quoted) = value.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => return Some(out),
                        c => out.push(c),
                    }
                }
                return Some(out);
            }
            let end = value.find([',', ' ']).unwrap_or(value.len());
            return Some(value[..end].to_owned());
        }
        rest = &rest[i + name.len()..];
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP with refreshing OAuth tokens

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

    /// Sends with the current access token; after a 401, once more with a refreshed one;
    /// after a 403 `insufficient_scope`, once more after a step-up authorization.
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
        send(token.as_ref().map(|s| s.expose().to_owned())).await
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

// ---------------------------------------------------------------------------------------------
// The flow

/// A client that never follows redirects: the authorization response is read, not followed.
static OAUTH_HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // No idle connections (and their driver tasks) outlive a flow.
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
});

fn oauth_error(target: &str, step: OAuthStep, reason: impl Into<String>) -> Error {
    Error::OAuth {
        target: target.to_owned(),
        step,
        reason: reason.into(),
    }
}

/// Sends one request of the flow within `bound`; network failures become `step` errors.
async fn send(
    request: reqwest::RequestBuilder,
    target: &str,
    step: OAuthStep,
    bound: Duration,
) -> Result<reqwest::Response> {
    match runtime::timeout(bound, request.send()).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(oauth_error(
            target,
            step,
            format!("request failed: {}", without_url_query(&e)),
        )),
        Err(_) => Err(oauth_error(
            target,
            step,
            format!("no answer within {bound:?}"),
        )),
    }
}

/// A reqwest error's message without the url's query string (which may hold a code).
fn without_url_query(e: &reqwest::Error) -> String {
    let mut e2 = e.to_string();
    if let Some(url) = e.url()
        && let Some(q) = url.query()
    {
        e2 = e2.replace(q, "<query>");
    }
    e2
}

async fn json_body(
    response: reqwest::Response,
    target: &str,
    step: OAuthStep,
    bound: Duration,
) -> Result<Value> {
    let bytes = match runtime::timeout(bound, response.bytes()).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(oauth_error(
                target,
                step,
                format!("cannot read the body: {}", without_url_query(&e)),
            ));
        }
        Err(_) => return Err(oauth_error(target, step, "the body did not arrive in time")),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| oauth_error(target, step, format!("the answer is not JSON: {e}")))
}

/// The `error` and `error_description` of an OAuth error body, for messages.
fn describe_oauth_error(status: reqwest::StatusCode, body: &Value) -> String {
    let error = body.get("error").and_then(Value::as_str).unwrap_or("error");
    match body.get("error_description").and_then(Value::as_str) {
        Some(d) => format!("HTTP {status} {error}: {d}"),
        None => format!("HTTP {status} {error}"),
    }
}

#[derive(Clone)]
struct Discovery {
    resource: String,
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    registration_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported`, if the metadata says.
    auth_methods: Option<Vec<String>>,
    scope: Option<String>,
}

fn well_known(base: &reqwest::Url, name: &str, path_suffix: bool) -> Option<String> {
    let mut u = base.clone();
    let path = base.path().trim_end_matches('/').to_owned();
    u.set_query(None);
    u.set_fragment(None);
    if path_suffix && !path.is_empty() {
        u.set_path(&format!("/.well-known/{name}{path}"));
    } else {
        u.set_path(&format!("/.well-known/{name}"));
    }
    Some(u.to_string())
}

async fn fetch_json(url: &str, step: OAuthStep, bound: Duration) -> Result<Option<Value>> {
    let response = send(
        OAUTH_HTTP
            .get(url)
            .header(http::header::ACCEPT, "application/json"),
        url,
        step,
        bound,
    )
    .await?;
    if !response.status().is_success() {
        return Ok(None);
    }
    json_body(response, url, step, bound).await.map(Some)
}

async fn discover(
    resource_url: &str,
    sse: bool,
    headers: &[(String, Secret)],
    oauth: &OAuth,
) -> Result<Discovery> {
    let step = OAuthStep::Discovery;
    let bound = oauth.step_timeout;
    let url = reqwest::Url::parse(resource_url)
        .map_err(|e| oauth_error(resource_url, step, format!("not a url: {e}")))?;
    // 1. The unauthenticated request and its 401 challenge.
    let mut probe = if sse {
        OAUTH_HTTP
            .get(url.clone())
            .header(http::header::ACCEPT, "text/event-stream")
    } else {
        OAUTH_HTTP
            .post(url.clone())
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
    };
    for (k, v) in headers {
        probe = probe.header(k.as_str(), v.expose());
    }
    let response = send(probe, resource_url, step, bound).await?;
    let challenge = (response.status() == reqwest::StatusCode::UNAUTHORIZED)
        .then(|| {
            response
                .headers()
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .flatten();
    drop(response);
    let challenge_scope = challenge
        .as_deref()
        .and_then(|c| challenge_param(c, "scope"));
    // 2. Protected resource metadata: from the challenge, else the well-known urls.
    let mut candidates = Vec::new();
    if let Some(u) = challenge
        .as_deref()
        .and_then(|c| challenge_param(c, "resource_metadata"))
    {
        candidates.push(u);
    }
    candidates.extend(well_known(&url, "oauth-protected-resource", true));
    candidates.extend(well_known(&url, "oauth-protected-resource", false));
    candidates.dedup();
    let mut prm = None;
    for c in &candidates {
        if let Some(doc) = fetch_json(c, step, bound).await? {
            prm = Some(doc);
            break;
        }
    }
    let Some(prm) = prm else {
        if challenge.is_some() {
            // A 401 without protected resource metadata: an MCP 2025-03-26 server.
            return discover_at_origin(&url, resource_url, challenge_scope, bound).await;
        }
        return Err(oauth_error(
            resource_url,
            step,
            format!(
                "no protected resource metadata (RFC 9728) at {}; is OAuth enabled on this server?",
                candidates.join(", ")
            ),
        ));
    };
    let issuer = prm
        .get("authorization_servers")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| {
            oauth_error(
                resource_url,
                step,
                "the protected resource metadata lists no authorization_servers",
            )
        })?
        .to_owned();
    let resource = prm
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or(resource_url)
        .to_owned();
    let scope = challenge_scope.or_else(|| {
        prm.get("scopes_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|s| !s.is_empty())
    });
    // 3. Authorization server metadata: RFC 8414, then OIDC discovery.
    let issuer_url = reqwest::Url::parse(&issuer)
        .map_err(|e| oauth_error(&issuer, step, format!("the issuer is not a url: {e}")))?;
    let mut as_candidates = Vec::new();
    let has_path = !issuer_url.path().trim_matches('/').is_empty();
    as_candidates.extend(well_known(&issuer_url, "oauth-authorization-server", true));
    as_candidates.extend(well_known(&issuer_url, "openid-configuration", true));
    if has_path {
        as_candidates.push(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ));
    }
    let mut meta = None;
    for c in &as_candidates {
        if let Some(doc) = fetch_json(c, step, bound).await? {
            meta = Some(doc);
            break;
        }
    }
    let Some(meta) = meta else {
        return Err(oauth_error(
            &issuer,
            step,
            format!(
                "no authorization server metadata at {}",
                as_candidates.join(", ")
            ),
        ));
    };
    discovery_from_metadata(&meta, issuer, resource, scope)
}

/// MCP 2025-03-26 discovery, for a server that answers 401 but publishes no protected
/// resource metadata: the authorization server is the MCP server's origin, described by its
/// RFC 8414 metadata or, without any, by the default endpoints `/authorize`, `/token` and
/// `/register`.
async fn discover_at_origin(
    url: &reqwest::Url,
    resource_url: &str,
    scope: Option<String>,
    bound: Duration,
) -> Result<Discovery> {
    let origin = url.origin().ascii_serialization();
    let metadata = format!("{origin}/.well-known/oauth-authorization-server");
    tracing::debug!(%origin, "no protected resource metadata: MCP 2025-03-26 discovery");
    match fetch_json(&metadata, OAuthStep::Discovery, bound).await? {
        Some(meta) => discovery_from_metadata(&meta, origin, resource_url.to_owned(), scope),
        None => Ok(Discovery {
            resource: resource_url.to_owned(),
            authorization_endpoint: format!("{origin}/authorize"),
            token_endpoint: format!("{origin}/token"),
            registration_endpoint: Some(format!("{origin}/register")),
            auth_methods: None,
            issuer: origin,
            scope,
        }),
    }
}

/// The endpoints of an authorization server from its metadata (RFC 8414 or OIDC), refusing
/// one that does not support PKCE with S256.
fn discovery_from_metadata(
    meta: &Value,
    issuer: String,
    resource: String,
    scope: Option<String>,
) -> Result<Discovery> {
    let step = OAuthStep::Discovery;
    let field = |name: &str| meta.get(name).and_then(Value::as_str).map(str::to_owned);
    let s256 = meta
        .get("code_challenge_methods_supported")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|m| m.as_str() == Some("S256")));
    if !s256 {
        return Err(oauth_error(
            &issuer,
            step,
            "the authorization server does not list S256 in code_challenge_methods_supported; MCP clients must refuse it (PKCE is required)",
        ));
    }
    Ok(Discovery {
        resource,
        authorization_endpoint: field("authorization_endpoint").ok_or_else(|| {
            oauth_error(&issuer, step, "the metadata has no authorization_endpoint")
        })?,
        token_endpoint: field("token_endpoint")
            .ok_or_else(|| oauth_error(&issuer, step, "the metadata has no token_endpoint"))?,
        registration_endpoint: field("registration_endpoint"),
        auth_methods: meta
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            }),
        issuer,
        scope,
    })
}

async fn register(
    d: &Discovery,
    redirect_uri: &str,
    scope: Option<&str>,
    oauth: &OAuth,
) -> Result<ClientCredentials> {
    let step = OAuthStep::Registration;
    if let Some(id) = &oauth.client_id {
        if oauth.auth_method != TokenEndpointAuth::None && oauth.client_secret.is_none() {
            return Err(oauth_error(
                &d.issuer,
                step,
                format!(
                    "pre-registered client `{id}` uses {} but no client secret was given",
                    oauth.auth_method.as_str()
                ),
            ));
        }
        return Ok(ClientCredentials {
            id: id.clone(),
            secret: oauth.client_secret.clone(),
            method: oauth.auth_method,
        });
    }
    let Some(endpoint) = &d.registration_endpoint else {
        return Err(oauth_error(
            &d.issuer,
            step,
            "the authorization server offers no dynamic client registration; use OAuth::pre_registered",
        ));
    };
    let wanted = match (&d.auth_methods, oauth.auth_method_chosen) {
        (Some(supported), false) => [
            TokenEndpointAuth::None,
            TokenEndpointAuth::ClientSecretBasic,
            TokenEndpointAuth::ClientSecretPost,
        ]
        .into_iter()
        .find(|m| supported.iter().any(|s| s == m.as_str()))
        .unwrap_or(oauth.auth_method),
        _ => oauth.auth_method,
    };
    let mut body = serde_json::json!({
        "client_name": oauth.client_name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": wanted.as_str(),
    });
    if let Some(s) = scope {
        body["scope"] = Value::from(s);
    }
    let response = send(
        OAUTH_HTTP.post(endpoint).json(&body),
        endpoint,
        step,
        oauth.step_timeout,
    )
    .await?;
    let status = response.status();
    let doc = json_body(response, endpoint, step, oauth.step_timeout).await?;
    if !status.is_success() {
        return Err(oauth_error(
            endpoint,
            step,
            describe_oauth_error(status, &doc),
        ));
    }
    let id = doc
        .get("client_id")
        .and_then(Value::as_str)
        .ok_or_else(|| oauth_error(endpoint, step, "the registration response has no client_id"))?;
    let method = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .map(|m| {
            TokenEndpointAuth::parse(m).ok_or_else(|| {
                oauth_error(
                    endpoint,
                    step,
                    format!("the server registered the client with unsupported token_endpoint_auth_method {m:?}"),
                )
            })
        })
        .transpose()?
        .unwrap_or(wanted);
    let secret = doc
        .get("client_secret")
        .and_then(Value::as_str)
        .map(Secret::new);
    if method != TokenEndpointAuth::None && secret.is_none() {
        return Err(oauth_error(
            endpoint,
            step,
            "the registration response has no client_secret for a confidential client",
        ));
    }
    Ok(ClientCredentials {
        id: id.to_owned(),
        secret,
        method,
    })
}

/// POSTs a token request with the client's authentication; returns the JSON answer.
async fn token_request(
    endpoint: &str,
    client: &ClientCredentials,
    form: &mut Vec<(&'static str, String)>,
    step: OAuthStep,
    bound: Duration,
) -> Result<Value> {
    let mut request = OAUTH_HTTP
        .post(endpoint)
        .header(http::header::ACCEPT, "application/json");
    match client.method {
        TokenEndpointAuth::None => form.push(("client_id", client.id.clone())),
        TokenEndpointAuth::ClientSecretPost => {
            form.push(("client_id", client.id.clone()));
            form.push((
                "client_secret",
                client
                    .secret
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default(),
            ));
        }
        TokenEndpointAuth::ClientSecretBasic => {
            // Also in the body: RFC 6749 allows it, and some servers (the Python SDK's)
            // require it.
            form.push(("client_id", client.id.clone()));
            // RFC 6749 2.3.1: both parts form-urlencoded before Basic encoding.
            let id: String = url::form_urlencoded::byte_serialize(client.id.as_bytes()).collect();
            let secret: String = url::form_urlencoded::byte_serialize(
                client
                    .secret
                    .as_ref()
                    .map(|s| s.expose().as_bytes())
                    .unwrap_or_default(),
            )
            .collect();
            let mut value = http::HeaderValue::from_str(&format!(
                "Basic {}",
                base64_standard(format!("{id}:{secret}").as_bytes())
            ))
            .map_err(|_| oauth_error(endpoint, step, "the client credentials are not ASCII"))?;
            value.set_sensitive(true);
            request = request.header(http::header::AUTHORIZATION, value);
        }
    }
    let body = {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in form.iter() {
            body.append_pair(k, v);
        }
        body.finish()
    };
    let request = request
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body);
    let response = send(request, endpoint, step, bound).await?;
    let status = response.status();
    let doc = json_body(response, endpoint, step, bound).await?;
    if !status.is_success() {
        let step = if doc.get("error").and_then(Value::as_str) == Some("invalid_scope") {
            OAuthStep::Scope
        } else {
            step
        };
        return Err(oauth_error(
            endpoint,
            step,
            describe_oauth_error(status, &doc),
        ));
    }
    Ok(doc)
}

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
    let mut state = TokenState {
        access: Secret::new(""),
        refresh: None,
        expires_at: None,
        scope: None,
        refreshes: 0,
        step_ups: 0,
    };
    apply_token_response(&mut state, body, &d.token_endpoint, OAuthStep::Token)?;
    tracing::debug!(client_id = %client.id, "OAuth authorization complete");
    Ok(OAuthTokens {
        state: tokio::sync::Mutex::new(state),
        client,
        token_endpoint: d.token_endpoint.clone(),
        resource: d.resource.clone(),
        redirect_uri,
        refresh_skew: oauth.refresh_skew,
        reauthorize: Reauthorize {
            discovery: d,
            oauth: oauth.clone(),
            requested: scope,
        },
    })
}

/// The authorization code grant with PKCE: the authorization request fetched headless, the
/// code caught on `callback` (stopped before this returns), the token exchange. Returns the
/// token response.
async fn authorization_code_grant(
    d: &Discovery,
    client: &ClientCredentials,
    callback: CallbackServer,
    scope: Option<&str>,
    oauth: &OAuth,
) -> Result<Value> {
    let redirect_uri = callback.redirect_uri();
    oauth.emit(OAuthStep::Authorization, Some(callback.addr));
    let verifier = random_url_safe(32);
    let challenge =
        base64_url(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    let state = random_url_safe(16);
    let mut url = reqwest::Url::parse(&d.authorization_endpoint).map_err(|e| {
        oauth_error(
            &d.issuer,
            OAuthStep::Authorization,
            format!("the authorization_endpoint is not a url: {e}"),
        )
    })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", &d.resource);
        if let Some(s) = scope {
            q.append_pair("scope", s);
        }
    }
    let code = callback.run(url, d, &state, oauth).await?;
    oauth.emit(OAuthStep::Token, None);
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.expose().to_owned()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("resource", d.resource.clone()),
    ];
    token_request(
        &d.token_endpoint,
        client,
        &mut form,
        OAuthStep::Token,
        oauth.step_timeout,
    )
    .await
}

/// Runs a headless OAuth 2.1 authorization for the MCP endpoint at `resource_url`
/// (streamable HTTP, or `/sse` when `transport` is SSE) and returns the tokens; sessions do
/// this themselves when built with [`SessionBuilder::oauth`](crate::SessionBuilder::oauth).
///
/// The loopback callback server it starts is stopped before this returns, and also when
/// the future is dropped or panics. Failures are [`Error::OAuth`] naming the step; they are
/// never retried.
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
    transport: crate::Transport,
    oauth: &OAuth,
) -> Result<OAuthTokens> {
    authorize_with_headers(resource_url, transport == crate::Transport::Sse, &[], oauth).await
}

// ---------------------------------------------------------------------------------------------
// The loopback callback server

static LIVE_CALLBACKS: LazyLock<Mutex<HashSet<SocketAddr>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// The addresses of the OAuth callback servers alive in this process right now (their
/// listener open or their task not finished). Empty when no flow is running.
pub fn live_callback_servers() -> Vec<SocketAddr> {
    LIVE_CALLBACKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect()
}

/// Held inside the callback task: the address is listed while the task's future exists.
struct Registered(SocketAddr);

impl Drop for Registered {
    fn drop(&mut self) {
        LIVE_CALLBACKS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

type CallbackQuery = Vec<(String, String)>;

/// A loopback HTTP listener that takes one authorization response. Dropping it aborts its
/// task (which owns the listener), so it is stopped on every path out of the flow.
struct CallbackServer {
    addr: SocketAddr,
    received: Option<oneshot::Receiver<CallbackQuery>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl CallbackServer {
    async fn start(port: u16) -> std::io::Result<CallbackServer> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        // Listed before the task starts, delisted when its future is dropped.
        LIVE_CALLBACKS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr);
        let registered = Registered(addr);
        let task = runtime::spawn(async move {
            let _registered = registered;
            serve_callback(listener, tx).await;
        });
        Ok(CallbackServer {
            addr,
            received: Some(rx),
            task: Some(task),
        })
    }

    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.addr.port())
    }

    /// Plays the browser: fetches the authorization url without following redirects, walks
    /// redirects up to the callback, and returns the code the callback server received.
    /// The callback server is stopped (and awaited) before this returns.
    async fn run(
        mut self,
        authorize_url: reqwest::Url,
        d: &Discovery,
        state: &str,
        oauth: &OAuth,
    ) -> Result<Secret> {
        let step = OAuthStep::Authorization;
        let target = d.authorization_endpoint.as_str();
        let mut next = authorize_url;
        let mut delivered = false;
        for _hop in 0..10 {
            let is_callback = matches!(next.host_str(), Some("127.0.0.1" | "localhost"))
                && next.port() == Some(self.addr.port())
                && next.path() == "/callback";
            if is_callback {
                // The listener is on 127.0.0.1; `localhost` might resolve to ::1 first.
                let _ = next.set_host(Some("127.0.0.1"));
            }
            let response = send(
                OAUTH_HTTP.get(next.clone()),
                target,
                step,
                oauth.step_timeout,
            )
            .await?;
            if is_callback {
                delivered = true;
                break;
            }
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        oauth_error(target, step, format!("HTTP {status} without a Location"))
                    })?;
                next = next.join(location).map_err(|e| {
                    oauth_error(
                        target,
                        step,
                        format!("the redirect Location is not a url: {e}"),
                    )
                })?;
                continue;
            }
            let body = json_body(response, target, step, oauth.step_timeout)
                .await
                .unwrap_or(Value::Null);
            let error = if body.is_null() {
                format!(
                    "HTTP {status}: the authorization server answered with a page instead of redirecting to the callback (it wants a browser or user interaction)"
                )
            } else {
                describe_oauth_error(status, &body)
            };
            return Err(oauth_error(target, step, error));
        }
        if !delivered {
            return Err(oauth_error(
                target,
                step,
                "more than 10 redirects before the callback",
            ));
        }
        let received = self.received.take().expect("taken once");
        let query = match runtime::timeout(oauth.callback_timeout, received).await {
            Ok(Ok(q)) => q,
            Ok(Err(_)) => {
                return Err(oauth_error(
                    target,
                    step,
                    "the callback server stopped before receiving the code",
                ));
            }
            Err(_) => {
                return Err(oauth_error(
                    target,
                    step,
                    format!(
                        "no authorization response on the callback within {:?}",
                        oauth.callback_timeout
                    ),
                ));
            }
        };
        // The code is in hand: stop the listener and wait for its task to end.
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if let Some(error) = get("error") {
            let description = get("error_description").unwrap_or_default();
            let step = if error == "invalid_scope" {
                OAuthStep::Scope
            } else {
                step
            };
            return Err(oauth_error(target, step, format!("{error}: {description}")));
        }
        if get("state") != Some(state) {
            return Err(oauth_error(
                target,
                step,
                "the callback's state does not match the request (possible CSRF); refusing the code",
            ));
        }
        if let Some(iss) = get("iss")
            && iss.trim_end_matches('/') != d.issuer.trim_end_matches('/')
        {
            return Err(oauth_error(
                target,
                step,
                format!(
                    "the callback's iss {iss:?} is not the issuer {:?}",
                    d.issuer
                ),
            ));
        }
        get("code")
            .filter(|c| !c.is_empty())
            .map(Secret::new)
            .ok_or_else(|| oauth_error(target, step, "the callback carried no code"))
    }
}

/// Answers requests on the callback listener until one carries an authorization response.
async fn serve_callback(listener: tokio::net::TcpListener, tx: oneshot::Sender<CallbackQuery>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::with_capacity(2048);
        let read = runtime::timeout(Duration::from_secs(5), async {
            let mut chunk = [0u8; 2048];
            loop {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 16 * 1024 {
                    break;
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let pairs: CallbackQuery = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let is_response =
            path == "/callback" && pairs.iter().any(|(k, _)| k == "code" || k == "error");
        let body: &[u8] = if is_response {
            b"Authorization complete. You can close this window.\n"
        } else {
            b"Waiting for the authorization response.\n"
        };
        let status = if is_response {
            "200 OK"
        } else {
            "404 Not Found"
        };
        let _ = stream
            .write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        let _ = stream.write_all(body).await;
        let _ = stream.shutdown().await;
        if is_response {
            let _ = tx.send(pairs);
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small encoders

fn random_url_safe(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .expect("the OS random source works");
    base64_url(&buf)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_standard(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64url without padding (RFC 7636 for PKCE).
fn base64_url(data: &[u8]) -> String {
    base64_standard(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_standard(input.as_bytes()), expected);
        }
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge =
            base64_url(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn challenge_params_are_parsed() {
        let c = r#"Bearer error="invalid_token", error_description="expired: the \"JWT\" has expired", resource_metadata="http://h/.well-known/oauth-protected-resource/mcp", scope="a b""#;
        assert_eq!(
            challenge_param(c, "error").as_deref(),
            Some("invalid_token")
        );
        assert_eq!(
            challenge_param(c, "error_description").as_deref(),
            Some("expired: the \"JWT\" has expired")
        );
        assert_eq!(challenge_param(c, "scope").as_deref(), Some("a b"));
        assert_eq!(
            challenge_param(c, "resource_metadata").as_deref(),
            Some("http://h/.well-known/oauth-protected-resource/mcp")
        );
        assert!(rejection_reason(Some(401), Some(c), None, true).starts_with("expired:"));
        assert_eq!(
            rejection_reason_from_chain(
                "Transport [legacy-sse] error: unauthorized: expired: gone",
                true
            ),
            "expired: gone"
        );
        assert!(
            rejection_reason_from_chain(&format!("authorization required: {c}"), true)
                .starts_with("expired:")
        );
        assert!(
            rejection_reason(
                Some(401),
                Some("Bearer resource_metadata=\"x\""),
                None,
                false
            )
            .starts_with("missing:")
        );
    }
}
