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
///     jwks: None,
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
    /// Whether dynamic registration requires `application_type` (`native` or `web`), as MCP
    /// 2026-07-28 asks of clients (SEP-837). Default true; false accepts the clients of earlier
    /// revisions, which do not send it (they count as `web`, the OpenID default).
    pub require_application_type: bool,
    /// Whether a client id that is an `https` url is taken as a client ID metadata document
    /// url (CIMD, advertised as `client_id_metadata_document_supported`): the document is
    /// fetched at `/authorize` and must name that url as its `client_id`. Default true.
    pub client_id_metadata_documents: bool,
    /// Whether a metadata document url may also be `http` on a loopback address, so that a
    /// test can serve the document itself (off by default: real documents are `https`).
    pub allow_http_client_metadata: bool,
    /// Misbehaviour on purpose, so that a client's refusals can be tested.
    pub misbehave: OAuthMisbehaviour,
}

/// What the authorization server gets wrong on purpose ([`OAuthServerConfig::misbehave`]).
/// The default gets nothing wrong.
///
/// ```
/// use mcp_harness_servers::{IssMisbehaviour, OAuthMisbehaviour, OAuthServerConfig};
/// let config = OAuthServerConfig {
///     misbehave: OAuthMisbehaviour {
///         iss: Some(IssMisbehaviour::Missing),
///         ..OAuthMisbehaviour::default()
///     },
///     ..OAuthServerConfig::default()
/// };
/// let json = serde_json::to_string(&config).unwrap();
/// assert!(json.contains(r#""iss":"missing""#));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuthMisbehaviour {
    /// The `iss` of the authorization response (RFC 9207), which the metadata advertises.
    pub iss: Option<IssMisbehaviour>,
    /// The `issuer` the metadata document names instead of the server's own (RFC 8414 section
    /// 3.3 asks clients to refuse such a document).
    pub metadata_issuer: Option<String>,
    /// The `resource` the protected resource metadata names instead of the MCP endpoint
    /// (RFC 9728 section 3.3 asks clients to refuse it).
    pub prm_resource: Option<String>,
}

/// How the authorization response's `iss` is wrong ([`OAuthMisbehaviour::iss`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum IssMisbehaviour {
    /// Another issuer's identifier (a mix-up).
    Wrong,
    /// No `iss` at all, although the metadata says it is sent.
    Missing,
    /// The issuer with a trailing slash (clients must not normalize before comparing).
    Normalized,
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
            require_application_type: true,
            client_id_metadata_documents: true,
            allow_http_client_metadata: false,
            misbehave: OAuthMisbehaviour::default(),
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
            .field("require_application_type", &self.require_application_type)
            .field(
                "client_id_metadata_documents",
                &self.client_id_metadata_documents,
            )
            .field(
                "allow_http_client_metadata",
                &self.allow_http_client_metadata,
            )
            .field("misbehave", &self.misbehave)
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
    /// `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`. Every
    /// method but `none` may also use the client credentials grant (machine to machine).
    pub token_endpoint_auth_method: String,
    /// The allowed redirect URIs. A loopback URI (`http://127.0.0.1/...`,
    /// `http://localhost/...`) matches any port, as RFC 8252 asks for native apps.
    pub redirect_uris: Vec<String>,
    /// The client's public keys as a JWK Set (`{"keys": [...]}`, EC P-256 or RSA), which
    /// verify its client assertions when it authenticates with `private_key_jwt` (RFC 7523).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
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
            .field("jwks", &self.jwks.is_some())
            .finish()
    }
}
