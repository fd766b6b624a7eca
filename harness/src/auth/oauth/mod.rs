//! The headless OAuth 2.1 client: its settings ([`OAuth`]); the flow is in the submodules.
//!
//! The submodules import one way, top to bottom: `authorize` (the whole flow) → `tokens`
//! (refresh, step-up) → `grant` (code grant, token requests) → `callback` and `registration`
//! → `discovery` → `http`; `streamable` (the token-sending rmcp client) sits on `tokens`.
//! All of them read the settings defined here.

mod authorize;
mod callback;
mod discovery;
mod grant;
mod http;
mod registration;
mod streamable;
mod tokens;

pub use authorize::authorize;
pub(crate) use authorize::authorize_with_headers;
pub use callback::live_callback_servers;
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
