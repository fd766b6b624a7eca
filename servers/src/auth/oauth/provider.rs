//! The running authorization server's state: configuration, registered clients, codes and
//! tokens, in memory; and the error answer the endpoints share.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::config::{OAuthClient, OAuthServerConfig};
use crate::{
    auth::reject::Reject,
    env::OAUTH_CONFIG_ENV,
    options::{AuthMode, ServeError},
};

pub(super) struct Grant {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) challenge: String,
    pub(super) scope: Vec<String>,
    pub(super) expires: Instant,
}

pub(super) struct AccessToken {
    pub(super) subject: Arc<str>,
    pub(super) scope: Vec<String>,
    pub(super) expires: Instant,
}

pub(super) struct RefreshToken {
    pub(super) client_id: String,
    pub(super) subject: Arc<str>,
    pub(super) scope: Vec<String>,
}

#[derive(Default)]
pub(super) struct Store {
    pub(super) clients: HashMap<String, OAuthClient>,
    pub(super) codes: HashMap<String, Grant>,
    pub(super) access: HashMap<String, AccessToken>,
    pub(super) refresh: HashMap<String, RefreshToken>,
}

/// The running authorization server: configuration plus issued state, in memory.
pub(crate) struct Provider {
    pub(super) config: OAuthServerConfig,
    issuer: OnceLock<String>,
    pub(super) resource: OnceLock<String>,
    store: Mutex<Store>,
    rng: ring::rand::SystemRandom,
    /// The authorization server the resource moves to (its issuer is this one's plus
    /// [`MOVED_PATH`]); none for the successor itself.
    pub(super) successor: Option<Arc<Provider>>,
    /// Whether the resource has moved to the successor (a test switch).
    moved: AtomicBool,
}

/// The path of the successor's issuer under this server's base url.
pub(crate) const MOVED_PATH: &str = "/moved";

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
        let mut provider = Self::alone(config.clone());
        provider.successor = Some(Arc::new(Self::alone(config)));
        provider
    }

    fn alone(config: OAuthServerConfig) -> Self {
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
            successor: None,
            moved: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_issuer(&self, base: &str, resource: &str) {
        let _ = self.issuer.set(base.to_owned());
        let _ = self.resource.set(resource.to_owned());
        if let Some(next) = &self.successor {
            next.set_issuer(&format!("{base}{MOVED_PATH}"), resource);
        }
    }

    /// The issuer the protected resource names now: this one, or the successor's after
    /// [`move_to_successor`](Self::move_to_successor).
    pub(crate) fn current_issuer(&self) -> &str {
        match (&self.successor, self.moved.load(Ordering::SeqCst)) {
            (Some(next), true) => next.issuer(),
            _ => self.issuer(),
        }
    }

    /// Test switch: the resource moves to the successor authorization server, whose tokens
    /// are the only ones it accepts from now on. With `revoke`, every grant of this server is
    /// revoked too (access and refresh tokens); without, this server still refreshes tokens the
    /// resource no longer takes (an old server left running). Either way a client can only go
    /// on by discovering the new server, registering there and authorizing again. Returns
    /// whether it moved now (false: it had moved already).
    pub(crate) fn move_to_successor(&self, revoke: bool) -> bool {
        if self.successor.is_none() || self.moved.swap(true, Ordering::SeqCst) {
            return false;
        }
        if revoke {
            let mut store = self.store();
            store.access.clear();
            store.refresh.clear();
        }
        true
    }

    pub(crate) fn issuer(&self) -> &str {
        self.issuer.get().map_or("", String::as_str)
    }

    pub(crate) fn scopes_supported(&self) -> &[String] {
        &self.config.scopes_supported
    }

    /// The `resource` the protected resource metadata names on purpose instead of the MCP
    /// endpoint, if the server is set to misbehave so.
    pub(crate) fn misbehaving_prm_resource(&self) -> Option<&str> {
        self.config.misbehave.prm_resource.as_deref()
    }

    pub(crate) fn challenge_scope(&self) -> Option<String> {
        (self.config.challenge_scope && !self.config.required_scopes.is_empty())
            .then(|| self.config.required_scopes.join(" "))
    }

    pub(super) fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn random_token(&self, prefix: &str) -> String {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&self.rng, &mut bytes).expect("the OS random source works");
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The subject of a valid access token (of the successor's, once moved).
    pub(crate) fn check_access_token(&self, token: &str) -> Result<Arc<str>, Reject> {
        if let (Some(next), true) = (&self.successor, self.moved.load(Ordering::SeqCst)) {
            return next.check_access_token(token);
        }
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

    pub(super) fn issue_tokens(
        &self,
        store: &mut Store,
        client_id: &str,
        subject: Arc<str>,
        scope: Vec<String>,
        with_refresh: bool,
    ) -> Value {
        let ttl = Duration::from_millis(self.config.access_token_ttl_ms.max(1));
        let access = self.random_token("at_");
        store.access.insert(
            access.clone(),
            AccessToken {
                subject: subject.clone(),
                scope: scope.clone(),
                expires: Instant::now() + ttl,
            },
        );
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl.as_millis().div_ceil(1000) as u64,
            "scope": scope.join(" "),
        });
        // RFC 6749 4.4.3: no refresh token for the client credentials grant.
        if with_refresh {
            let refresh = self.random_token("rt_");
            store.refresh.insert(
                refresh.clone(),
                RefreshToken {
                    client_id: client_id.to_owned(),
                    subject,
                    scope,
                },
            );
            body["refresh_token"] = json!(refresh);
        }
        body
    }
}

/// The JSON error answer (`error`, `error_description`) the endpoints send.
pub(super) fn oauth_error(
    status: StatusCode,
    error: &str,
    description: impl Into<String>,
) -> Response {
    let description = description.into();
    tracing::debug!(error, %description, "OAuth request refused");
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}
