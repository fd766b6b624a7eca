//! A small OAuth 2.1 authorization server built into the bundled servers, as the MCP
//! authorization spec (2025-06-18, 2025-11-25) expects one: metadata (RFC 8414 and OIDC
//! discovery), dynamic client registration (RFC 7591) and pre-registered clients, the
//! authorization code grant with PKCE S256, token endpoint auth `none`,
//! `client_secret_basic` and `client_secret_post`, rotating refresh tokens and scopes.
//!
//! There is no login page: `/authorize` approves the configured test user at once and
//! redirects to the client's callback, so a client can run the whole flow headless.

mod authorize;
mod config;
mod registration;
mod token;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub use self::config::{OAuthClient, OAuthServerConfig};
use self::{
    authorize::authorize,
    registration::register,
    token::{expire_tokens, token},
};
use super::reject::Reject;
use crate::{AuthMode, OAUTH_CONFIG_ENV, ServeError};

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
