//! The headless OAuth 2.1 client: its settings ([`OAuth`]); the flow is in the submodules.
//!
//! The submodules import one way, top to bottom: `authorize` (the whole flow) → `tokens`
//! (refresh, step-up) → `grant` (code grant, token requests) → `callback` and `registration`
//! → `discovery` → `http`; `streamable` (the token-sending rmcp client) sits on `tokens`.
//! All of them read the settings defined here.

mod assertion;
mod authorize;
mod callback;
mod discovery;
mod grant;
mod http;
mod metadata_server;
mod registration;
mod streamable;
mod tokens;

pub use authorize::authorize;
pub(crate) use authorize::authorize_with_headers;
pub use callback::live_callback_servers;
pub use metadata_server::ClientMetadataServer;
pub(crate) use streamable::OAuthHttpClient;
pub use tokens::OAuthTokens;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::errors::OAuthStep;
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
    /// A JWT assertion signed with the client's private key (RFC 7523), no secret: see
    /// [`OAuth::client_credentials_jwt`].
    PrivateKeyJwt,
}

/// The algorithm a client assertion is signed with ([`OAuth::client_credentials_jwt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtSigningAlg {
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl JwtSigningAlg {
    /// `ES256` or `RS256`, as JOSE names them (any case is accepted).
    ///
    /// ```
    /// use mcp_harness::JwtSigningAlg;
    /// assert_eq!(JwtSigningAlg::parse("es256"), Some(JwtSigningAlg::Es256));
    /// assert_eq!(JwtSigningAlg::parse("HS256"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "ES256" => Some(JwtSigningAlg::Es256),
            "RS256" => Some(JwtSigningAlg::Rs256),
            _ => None,
        }
    }
}

impl TokenEndpointAuth {
    /// The RFC 7591 name (`none`, `client_secret_basic`, `client_secret_post`,
    /// `private_key_jwt`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuth::None => "none",
            TokenEndpointAuth::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuth::ClientSecretPost => "client_secret_post",
            TokenEndpointAuth::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// The method with this RFC 7591 name, if it is one of [`as_str`](Self::as_str)'s.
    ///
    /// ```
    /// use mcp_harness::TokenEndpointAuth;
    /// assert_eq!(TokenEndpointAuth::parse("private_key_jwt"), Some(TokenEndpointAuth::PrivateKeyJwt));
    /// assert_eq!(TokenEndpointAuth::parse("carrier pigeon"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(TokenEndpointAuth::None),
            "client_secret_basic" => Some(TokenEndpointAuth::ClientSecretBasic),
            "client_secret_post" => Some(TokenEndpointAuth::ClientSecretPost),
            "private_key_jwt" => Some(TokenEndpointAuth::PrivateKeyJwt),
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
    /// Machine to machine: the client credentials grant instead of the authorization code.
    client_credentials: bool,
    /// The private key (PEM) and algorithm of `private_key_jwt`.
    private_key: Option<(Secret, JwtSigningAlg)>,
    /// The url of the client's ID metadata document, used as its client id where the
    /// authorization server supports it.
    client_metadata_url: Option<String>,
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
            .field("client_credentials", &self.client_credentials)
            .field("client_metadata_url", &self.client_metadata_url)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|(_, alg)| alg),
            )
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
            client_credentials: false,
            private_key: None,
            client_metadata_url: None,
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

    /// Identifies the client by a client ID metadata document (CIMD, MCP 2025-11-25): where the
    /// authorization server advertises `client_id_metadata_document_supported`, `url` is the
    /// client id and nothing is registered; elsewhere the client registers dynamically as
    /// usual. The order is the one MCP 2026-07-28 gives: a pre-registered client first, then
    /// the metadata document, then dynamic registration.
    ///
    /// The document at `url` is JSON whose `client_id` is exactly `url`, with
    /// `redirect_uris` including `http://127.0.0.1/callback` (the loopback callback; any port
    /// matches it), `token_endpoint_auth_method` `none`, `grant_types`
    /// `["authorization_code", "refresh_token"]`, `response_types` `["code"]` and a
    /// `client_name`. It must be served over `https` from a url with a path; the bundled
    /// authorization server also accepts a loopback `http` url when told to
    /// (`allow_http_client_metadata`), and [`ClientMetadataServer`](crate::ClientMetadataServer)
    /// serves such a document from the test itself.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use mcp_harness::{OAuth, Session, Target};
    /// let oauth = OAuth::new().client_metadata_url("https://ci.example.com/mcp-client.json");
    /// let s = Session::builder(Target::Http("https://staging.example.com/mcp".into()))
    ///     .oauth(oauth)
    ///     .connect()
    ///     .await?;
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn client_metadata_url(mut self, url: impl Into<String>) -> Self {
        self.client_metadata_url = Some(url.into());
        self
    }

    /// Machine to machine, no browser and no callback server: the client credentials grant
    /// (the MCP OAuth client credentials extension) for a client the authorization server
    /// already knows, authenticated with its secret (`ClientSecretBasic` or
    /// `ClientSecretPost`). An expired token is fetched again the same way.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use mcp_harness::{OAuth, Secret, Session, Target, TokenEndpointAuth};
    /// let secret = Secret::new(std::env::var("CI_CLIENT_SECRET").unwrap_or_default());
    /// let oauth = OAuth::new().client_credentials("ci-bot", secret, TokenEndpointAuth::ClientSecretBasic);
    /// let s = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
    ///     .oauth(oauth)
    ///     .connect()
    ///     .await?;
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: Secret,
        auth_method: TokenEndpointAuth,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.client_secret = Some(secret);
        self.auth_method = auth_method;
        self.auth_method_chosen = true;
        self.client_credentials = true;
        self.private_key = None;
        self
    }

    /// The client credentials grant ([`client_credentials`](Self::client_credentials))
    /// authenticated with a JWT assertion (RFC 7523, `private_key_jwt`): `iss` and `sub` the
    /// client id, `aud` the authorization server's issuer, valid five minutes, signed with
    /// `private_key_pem` (PKCS #8 PEM; PKCS #1 also for RS256). The key is read when the flow
    /// runs; a key in the wrong shape fails the token step, saying how to convert it.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// use mcp_harness::{JwtSigningAlg, OAuth, Secret, Session, Target};
    /// let pem = Secret::new(std::fs::read_to_string("ci-bot.pem").unwrap_or_default());
    /// let oauth = OAuth::new().client_credentials_jwt("ci-bot", pem, JwtSigningAlg::Es256);
    /// let s = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
    ///     .oauth(oauth)
    ///     .connect()
    ///     .await?;
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn client_credentials_jwt(
        mut self,
        client_id: impl Into<String>,
        private_key_pem: Secret,
        alg: JwtSigningAlg,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.client_secret = None;
        self.auth_method = TokenEndpointAuth::PrivateKeyJwt;
        self.auth_method_chosen = true;
        self.client_credentials = true;
        self.private_key = Some((private_key_pem, alg));
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
