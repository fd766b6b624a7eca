//! The public configuration of the authorization server: [`OAuthServerConfig`] and its
//! pre-registered [`OAuthClient`]s.

use serde::{Deserialize, Serialize};

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
