//! A small OAuth 2.1 authorization server built into the bundled servers, as the MCP
//! authorization spec (2025-06-18, 2025-11-25) expects one: metadata (RFC 8414 and OIDC
//! discovery), dynamic client registration (RFC 7591) and pre-registered clients, the
//! authorization code grant with PKCE S256, the client credentials grant, token endpoint auth
//! `none`, `client_secret_basic`, `client_secret_post` and `private_key_jwt`, rotating refresh
//! tokens and scopes.
//!
//! There is no login page: `/authorize` approves the configured test user at once and
//! redirects to the client's callback, so a client can run the whole flow headless. A second
//! instance (the successor, issuer `<base>/moved`) is where the resource moves with a test
//! switch.
//!
//! Here: the routes. `provider` holds the [`Provider`] (configuration plus issued state),
//! `config` the public configuration; one module per endpoint (`metadata`,
//! `registration`, `authorize`, `token`), each importing only `provider` and `config`.
//! Must not import the gate: the gate uses this server, not the reverse.

mod authorize;
mod client_metadata;
mod config;
mod metadata;
mod provider;
mod registration;
mod token;

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post},
};

pub use self::config::{IssMisbehaviour, OAuthClient, OAuthMisbehaviour, OAuthServerConfig};
pub(crate) use self::provider::{MOVED_PATH, Provider};
use self::{
    authorize::authorize,
    metadata::metadata,
    registration::register,
    token::{expire_tokens, move_authorization_server, token},
};

/// The authorization server's routes, and its successor's under [`MOVED_PATH`] (where the
/// resource moves with the test switch `POST /oauth/test/move-authorization-server`).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(provider: Arc<Provider>) -> Router<S> {
    let mut router = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/oauth/test/expire-tokens", post(expire_tokens))
        .route(
            "/oauth/test/move-authorization-server",
            post(move_authorization_server),
        )
        .with_state(provider.clone());
    if let Some(next) = provider.successor.clone() {
        // RFC 8414 3.1: the well-known suffix goes between the host and the issuer's path.
        router = router.merge(
            Router::new()
                .route(
                    &format!("/.well-known/oauth-authorization-server{MOVED_PATH}"),
                    get(metadata),
                )
                .route(
                    &format!("/.well-known/openid-configuration{MOVED_PATH}"),
                    get(metadata),
                )
                .route(&format!("{MOVED_PATH}/register"), post(register))
                .route(&format!("{MOVED_PATH}/authorize"), get(authorize))
                .route(&format!("{MOVED_PATH}/token"), post(token))
                .with_state(next),
        );
    }
    router
}
