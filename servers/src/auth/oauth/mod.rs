//! A small OAuth 2.1 authorization server built into the bundled servers, as the MCP
//! authorization spec (2025-06-18, 2025-11-25) expects one: metadata (RFC 8414 and OIDC
//! discovery), dynamic client registration (RFC 7591) and pre-registered clients, the
//! authorization code grant with PKCE S256, token endpoint auth `none`,
//! `client_secret_basic` and `client_secret_post`, rotating refresh tokens and scopes.
//!
//! There is no login page: `/authorize` approves the configured test user at once and
//! redirects to the client's callback, so a client can run the whole flow headless.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Form, Json, Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{AuthMode, OAUTH_CONFIG_ENV, ServeError, auth::gate::Reject};

/// How long an authorization code stays valid.
const CODE_TTL: Duration = Duration::from_secs(60);

/// The configuration of the built-in authorization server, read as JSON from
/// [`OAUTH_CONFIG_ENV`](crate::OAUTH_CONFIG_ENV) (it holds client secrets, so it never
/// travels on the command line). Every field has a default; `{}` is valid.
///
/// ```
/// use mcp_harness_servers::{OAuthClient, OAuthServerConfig};
/// let mut config = OAuthServerConfig::default();
/// config.user = "carol".into();
/// config.clients.push(OAuthClient {
///     client_id: "ci-client".into(),
///     client_secret: Some("ci-secret".into()),
///     token_endpoint_auth_method: "client_secret_post".into(),
///     redirect_uris: vec!["http://127.0.0.1/callback".into()],
/// });
/// let json = serde_json::to_string(&config).unwrap();
/// let back: OAuthServerConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.clients[0].client_id, "ci-client");
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuthServerConfig {
    /// The subject every approved authorization is for (`whoami` reports it).
    pub user: String,
    /// The scopes the server knows (`scopes_supported` in both metadata documents).
    pub scopes_supported: Vec<String>,
    /// The scopes an access token needs for the MCP endpoint (403 `insufficient_scope`
    /// otherwise).
    pub required_scopes: Vec<String>,
    /// Whether the 401 challenge names the required scopes (`scope="..."`); without it,
    /// clients fall back to `scopes_supported`.
    pub challenge_scope: bool,
    /// Lifetime of access tokens, in milliseconds (`expires_in` is rounded up to seconds).
    pub access_token_ttl_ms: u64,
    /// Whether `/register` accepts dynamic client registrations.
    pub allow_registration: bool,
    /// Pre-registered clients.
    pub clients: Vec<OAuthClient>,
}

impl Default for OAuthServerConfig {
    fn default() -> Self {
        OAuthServerConfig {
            user: "oauth-user".into(),
            scopes_supported: vec!["mcp:tools".into(), "mcp:admin".into()],
            required_scopes: vec!["mcp:tools".into()],
            challenge_scope: true,
            access_token_ttl_ms: 3_600_000,
            allow_registration: true,
            clients: Vec::new(),
        }
    }
}

impl std::fmt::Debug for OAuthServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServerConfig")
            .field("user", &self.user)
            .field("scopes_supported", &self.scopes_supported)
            .field("required_scopes", &self.required_scopes)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// A pre-registered OAuth client.
#[derive(Clone, Serialize, Deserialize)]
pub struct OAuthClient {
    /// The client id.
    pub client_id: String,
    /// The client secret (absent for public clients, `token_endpoint_auth_method: none`).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// The allowed redirect URIs. A loopback URI (`http://127.0.0.1/...`,
    /// `http://localhost/...`) matches any port, as RFC 8252 asks for native apps.
    pub redirect_uris: Vec<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: Vec<String>,
    expires: Instant,
}

struct AccessToken {
    subject: Arc<str>,
    scope: Vec<String>,
    expires: Instant,
}

struct RefreshToken {
    client_id: String,
    subject: Arc<str>,
    scope: Vec<String>,
}

#[derive(Default)]
struct Store {
    clients: HashMap<String, OAuthClient>,
    codes: HashMap<String, Grant>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
}

/// The running authorization server: configuration plus issued state, in memory.
pub(crate) struct Provider {
    config: OAuthServerConfig,
    issuer: OnceLock<String>,
    resource: OnceLock<String>,
    store: Mutex<Store>,
    rng: ring::rand::SystemRandom,
}

impl Provider {
    pub(crate) fn from_env() -> Result<Self, ServeError> {
        let config = match std::env::var(OAUTH_CONFIG_ENV) {
            Ok(raw) if !raw.trim().is_empty() => serde_json::from_str::<OAuthServerConfig>(&raw)
                .map_err(|e| ServeError::Secret {
                    mode: AuthMode::OAuth,
                    var: OAUTH_CONFIG_ENV,
                    problem: format!("it is not valid OAuthServerConfig JSON ({e})"),
                })?,
            _ => OAuthServerConfig::default(),
        };
        Ok(Self::new(config))
    }

    pub(crate) fn new(config: OAuthServerConfig) -> Self {
        let clients = config
            .clients
            .iter()
            .map(|c| (c.client_id.clone(), c.clone()))
            .collect();
        Provider {
            config,
            issuer: OnceLock::new(),
            resource: OnceLock::new(),
            store: Mutex::new(Store {
                clients,
                ..Store::default()
            }),
            rng: ring::rand::SystemRandom::new(),
        }
    }

    pub(crate) fn set_issuer(&self, base: &str, resource: &str) {
        let _ = self.issuer.set(base.to_owned());
        let _ = self.resource.set(resource.to_owned());
    }

    pub(crate) fn issuer(&self) -> &str {
        self.issuer.get().map_or("", String::as_str)
    }

    pub(crate) fn scopes_supported(&self) -> &[String] {
        &self.config.scopes_supported
    }

    pub(crate) fn challenge_scope(&self) -> Option<String> {
        (self.config.challenge_scope && !self.config.required_scopes.is_empty())
            .then(|| self.config.required_scopes.join(" "))
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn random_token(&self, prefix: &str) -> String {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&self.rng, &mut bytes).expect("the OS random source works");
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The subject of a valid access token.
    pub(crate) fn check_access_token(&self, token: &str) -> Result<Arc<str>, Reject> {
        let store = self.store();
        let t = store.access.get(token).ok_or(Reject::Unknown)?;
        if Instant::now() >= t.expires {
            return Err(Reject::Expired);
        }
        if !self
            .config
            .required_scopes
            .iter()
            .all(|s| t.scope.contains(s))
        {
            return Err(Reject::Scope);
        }
        Ok(t.subject.clone())
    }

    fn metadata(&self) -> Value {
        let issuer = self.issuer();
        let mut doc = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["none", "client_secret_basic", "client_secret_post"],
            "scopes_supported": self.config.scopes_supported,
            "authorization_response_iss_parameter_supported": true,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        if self.config.allow_registration {
            doc["registration_endpoint"] = json!(format!("{issuer}/register"));
        }
        doc
    }

    fn issue_tokens(
        &self,
        store: &mut Store,
        client_id: &str,
        subject: Arc<str>,
        scope: Vec<String>,
    ) -> Value {
        let ttl = Duration::from_millis(self.config.access_token_ttl_ms.max(1));
        let access = self.random_token("at_");
        let refresh = self.random_token("rt_");
        store.access.insert(
            access.clone(),
            AccessToken {
                subject: subject.clone(),
                scope: scope.clone(),
                expires: Instant::now() + ttl,
            },
        );
        store.refresh.insert(
            refresh.clone(),
            RefreshToken {
                client_id: client_id.to_owned(),
                subject,
                scope: scope.clone(),
            },
        );
        json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl.as_millis().div_ceil(1000) as u64,
            "refresh_token": refresh,
            "scope": scope.join(" "),
        })
    }
}

/// The authorization server's routes.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(provider: Arc<Provider>) -> Router<S> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/oauth/test/expire-tokens", post(expire_tokens))
        .with_state(provider)
}

async fn metadata(State(p): State<Arc<Provider>>) -> Response {
    Json(p.metadata()).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let description = description.into();
    tracing::debug!(error, %description, "OAuth request refused");
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1")
}

/// Splits `http://host:port/path?query` into (scheme, host, port, rest).
fn split_url(url: &str) -> Option<(&str, &str, Option<&str>, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let end = stripped.find(']')?;
        let host = &authority[..end + 2];
        let port = authority[end + 2..].strip_prefix(':');
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    Some((scheme, host, port, path))
}

/// Exact match, or for loopback redirect URIs a match on everything but the port.
fn redirect_allowed(registered: &[String], given: &str) -> bool {
    registered.iter().any(|r| {
        if r == given {
            return true;
        }
        match (split_url(r), split_url(given)) {
            (Some((s1, h1, _, p1)), Some((s2, h2, _, p2))) => {
                s1 == "http" && s1 == s2 && is_loopback_host(h1) && h1 == h2 && p1 == p2
            }
            _ => false,
        }
    })
}

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

async fn register(State(p): State<Arc<Provider>>, body: axum::body::Bytes) -> Response {
    if !p.config.allow_registration {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "dynamic client registration is disabled on this server",
        );
    }
    let reg: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                format!("the registration request is not valid JSON client metadata: {e}"),
            );
        }
    };
    if reg.redirect_uris.is_empty()
        || reg
            .redirect_uris
            .iter()
            .any(|u| !(u.starts_with("http://") || u.starts_with("https://")))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uris must list at least one http(s) URI",
        );
    }
    let method = reg
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    if !matches!(
        method.as_str(),
        "none" | "client_secret_basic" | "client_secret_post"
    ) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            format!("token_endpoint_auth_method {method:?} is not supported"),
        );
    }
    let client_id = p.random_token("client_");
    let client_secret = (method != "none").then(|| p.random_token("secret_"));
    let client = OAuthClient {
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
        token_endpoint_auth_method: method.clone(),
        redirect_uris: reg.redirect_uris.clone(),
    };
    p.store().clients.insert(client_id.clone(), client);
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut doc = json!({
        "client_id": client_id,
        "client_id_issued_at": issued_at,
        "redirect_uris": reg.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": reg.grant_types.unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]),
        "response_types": ["code"],
    });
    if let Some(secret) = client_secret {
        doc["client_secret"] = json!(secret);
        doc["client_secret_expires_at"] = json!(0);
    }
    if let Some(name) = reg.client_name {
        doc["client_name"] = json!(name);
    }
    if let Some(scope) = reg.scope {
        doc["scope"] = json!(scope);
    }
    (StatusCode::CREATED, Json(doc)).into_response()
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut out = base.to_owned();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&form_urlencoded_value(v));
        sep = '&';
    }
    out
}

fn form_urlencoded_value(v: &str) -> String {
    let mut s = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [
            (
                header::LOCATION,
                HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response()
}

async fn authorize(State(p): State<Arc<Provider>>, Query(q): Query<AuthorizeQuery>) -> Response {
    // Problems with the client or its redirect URI are shown here, never redirected.
    let Some(client_id) = q.client_id.as_deref() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id is missing",
        );
    };
    let Some(client) = p.store().clients.get(client_id).cloned() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client_id is not registered with this server",
        );
    };
    let redirect_uri = match q.redirect_uri.as_deref() {
        Some(r) if redirect_allowed(&client.redirect_uris, r) => r.to_owned(),
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "redirect_uri is not one registered for this client",
            );
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "redirect_uri is missing",
            );
        }
    };
    let state = q.state.clone().unwrap_or_default();
    let iss = p.issuer().to_owned();
    let fail = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            params.push(("state", state.as_str()));
        }
        params.push(("iss", iss.as_str()));
        redirect(&with_query(&redirect_uri, &params))
    };
    if q.response_type.as_deref() != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let Some(challenge) = q.code_challenge.clone().filter(|c| !c.is_empty()) else {
        return fail("invalid_request", "PKCE is required: send code_challenge");
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if let (Some(resource), Some(ours)) = (q.resource.as_deref(), p.resource.get())
        && resource.trim_end_matches('/') != ours.trim_end_matches('/')
    {
        return fail(
            "invalid_target",
            "resource is not this server's MCP endpoint",
        );
    }
    let scope: Vec<String> = match q.scope.as_deref() {
        Some(s) => s.split_whitespace().map(str::to_owned).collect(),
        None => p.config.required_scopes.clone(),
    };
    if let Some(unknown) = scope
        .iter()
        .find(|s| !p.config.scopes_supported.contains(s))
    {
        return fail("invalid_scope", &format!("unknown scope {unknown:?}"));
    }
    let code = p.random_token("code_");
    p.store().codes.insert(
        code.clone(),
        Grant {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.clone(),
            challenge,
            scope,
            expires: Instant::now() + CODE_TTL,
        },
    );
    tracing::debug!(client_id, "authorization approved for the test user");
    let mut params = vec![("code", code.as_str())];
    if !state.is_empty() {
        params.push(("state", state.as_str()));
    }
    params.push(("iss", iss.as_str()));
    redirect(&with_query(&redirect_uri, &params))
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares two secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (
        ring::digest::digest(&ring::digest::SHA256, a),
        ring::digest::digest(&ring::digest::SHA256, b),
    );
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Authenticates the client at the token endpoint with its registered method.
#[allow(clippy::result_large_err)]
fn authenticate_client(
    p: &Provider,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<OAuthClient, Response> {
    let invalid = |d: &str| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", d);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(id, secret)| (percent_decode(id), percent_decode(secret)))
        });
    let (client_id, secret, used) = match (&basic, &form.client_id, &form.client_secret) {
        (Some((id, secret)), _, _) => (id.clone(), Some(secret.clone()), "client_secret_basic"),
        (None, Some(id), Some(secret)) => (id.clone(), Some(secret.clone()), "client_secret_post"),
        (None, Some(id), None) => (id.clone(), None, "none"),
        (None, None, _) => return Err(invalid("no client authentication and no client_id")),
    };
    let Some(client) = p.store().clients.get(&client_id).cloned() else {
        return Err(invalid("unknown client_id"));
    };
    if client.token_endpoint_auth_method != used {
        return Err(invalid(&format!(
            "this client authenticates with {}, not {used}",
            client.token_endpoint_auth_method
        )));
    }
    if used != "none" {
        let expected = client.client_secret.as_deref().unwrap_or_default();
        let given = secret.unwrap_or_default();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(invalid("wrong client secret"));
        }
    }
    Ok(client)
}

async fn token(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let client = match authenticate_client(&p, &headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let grant_error = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let body = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let Some(code) = form.code.as_deref() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code is missing",
                );
            };
            let mut store = p.store();
            // Codes are single use, whatever happens next.
            let Some(grant) = store.codes.remove(code) else {
                return grant_error("the authorization code is unknown or already used");
            };
            if Instant::now() >= grant.expires {
                return grant_error("the authorization code has expired");
            }
            if grant.client_id != client.client_id {
                return grant_error("the authorization code was issued to another client");
            }
            if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
                return grant_error("redirect_uri does not match the authorization request");
            }
            let Some(verifier) = form.code_verifier.as_deref() else {
                return grant_error("code_verifier is missing (PKCE)");
            };
            let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
            if URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.challenge {
                return grant_error("code_verifier does not match code_challenge (PKCE)");
            }
            let subject: Arc<str> = Arc::from(p.config.user.as_str());
            p.issue_tokens(&mut store, &client.client_id, subject, grant.scope)
        }
        Some("refresh_token") => {
            let Some(refresh) = form.refresh_token.as_deref() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is missing",
                );
            };
            let mut store = p.store();
            // Rotation: a refresh token is used once (OAuth 2.1 for public clients).
            let Some(old) = store.refresh.remove(refresh) else {
                return grant_error("the refresh token is unknown or already used");
            };
            if old.client_id != client.client_id {
                return grant_error("the refresh token was issued to another client");
            }
            let scope = match form.scope.as_deref() {
                Some(s) => {
                    let wanted: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
                    if wanted.iter().any(|w| !old.scope.contains(w)) {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "a refresh cannot widen the scope",
                        );
                    }
                    wanted
                }
                None => old.scope.clone(),
            };
            p.issue_tokens(&mut store, &client.client_id, old.subject, scope)
        }
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported"),
            );
        }
    };
    (
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(body),
    )
        .into_response()
}

/// Test switch: every access token issued so far expires now (refresh tokens stay valid).
async fn expire_tokens(State(p): State<Arc<Provider>>) -> Response {
    let now = Instant::now();
    let mut store = p.store();
    let n = store.access.len();
    for t in store.access.values_mut() {
        t.expires = now;
    }
    Json(json!({"expired": n})).into_response()
}
