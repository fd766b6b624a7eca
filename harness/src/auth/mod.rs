//! Credentials of HTTP sessions: static bearer tokens and JWTs, and a headless OAuth 2.1 flow
//! as the MCP authorization spec (2025-06-18, 2025-11-25) describes it.
//!
//! The OAuth flow runs without a browser: discovery from the server's 401 (protected
//! resource metadata, RFC 9728; authorization server metadata, RFC 8414 or OIDC discovery),
//! dynamic client registration (RFC 7591) or pre-registered credentials, the authorization
//! request with PKCE S256 fetched without following redirects, the code caught on a loopback
//! callback server that the flow starts and always stops, and the token exchange. Access
//! tokens are refreshed when they expire, before a request or after a 401.
//!
//! The files: `credentials.rs`, what a session authenticates with and the probe that asks an
//! endpoint why it refuses them; `refusal.rs`, reading a refusal's `WWW-Authenticate`
//! challenge and reason; `oauth/`, the OAuth 2.1 client (settings, discovery, registration,
//! the authorization code grant, the loopback callback server, tokens and their refresh and
//! step-up, and the streamable HTTP client that sends them).
//!
//! Layering: this module may import `crate::runtime`, `crate::errors`, `crate::secret` and
//! `crate::transport`, and nothing above them: never `crate::session`, `crate::process`,
//! `crate::pool` or the CLI. `credentials` sits on `oauth` and
//! `refusal`, `oauth` on `refusal`. This file only declares the submodules and re-exports what
//! the rest of the crate uses.

mod credentials;
mod oauth;
mod refusal;

pub(crate) use credentials::{Credentials, diagnose_refusal, diagnostic_post};
pub use oauth::{
    ClientMetadataServer, JwtSigningAlg, OAuth, OAuthEvent, OAuthTokens, TokenEndpointAuth,
    authorize, live_callback_servers,
};
pub(crate) use oauth::{OAuthHttpClient, authorize_with_headers};
pub(crate) use refusal::{rejection_reason, rejection_reason_from_chain};
