//! Streamable HTTP: axum in front of rmcp's `StreamableHttpService`, with the auth
//! modes and the protected-resource metadata document.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get},
    serve::ListenerExt,
};
use futures::Stream;
use jsonwebtoken::{DecodingKey, Validation, errors::ErrorKind};
use rmcp::{
    model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage},
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::{
            EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
            local::LocalSessionManager,
        },
    },
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    AuthMode, BEARER_TOKENS_ENV, JWT_SECRET_ENV, ServeError, ServeOptions,
    server::{AuthSubject, Handler, InitSessionId, Mode, Shared},
};

/// How long shutdown waits for open connections before returning anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// Auth

/// The verified auth configuration of a running server.
pub(crate) enum Auth {
    None,
    Bearer(HashMap<String, Arc<str>>),
    Jwt(Box<(DecodingKey, Validation)>),
}

/// Why a request was refused. Never carries the token.
#[derive(Clone, Copy, Debug)]
enum Reject {
    Missing,
    Unknown,
    Malformed,
    Expired,
}

impl Reject {
    fn reason(self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::Unknown => "unknown",
            Reject::Malformed => "malformed",
            Reject::Expired => "expired",
        }
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
}

impl Auth {
    /// Reads the secrets `mode` needs from the environment.
    pub(crate) fn from_env(mode: AuthMode) -> Result<Self, ServeError> {
        match mode {
            AuthMode::None => Ok(Auth::None),
            AuthMode::Bearer => {
                let secret = |problem: String| ServeError::Secret {
                    mode,
                    var: BEARER_TOKENS_ENV,
                    problem,
                };
                let raw = std::env::var(BEARER_TOKENS_ENV).map_err(|_| {
                    secret(
                        "it is not set (or not UTF-8); set it to \"token1=subject1,token2=subject2\""
                            .into(),
                    )
                })?;
                let mut tokens = HashMap::new();
                for (i, entry) in raw.split(',').map(str::trim).enumerate() {
                    if entry.is_empty() {
                        continue;
                    }
                    let Some((token, subject)) = entry.split_once('=') else {
                        return Err(secret(format!(
                            "entry {} has no '=': expected \"token=subject\"",
                            i + 1
                        )));
                    };
                    let (token, subject) = (token.trim(), subject.trim());
                    if token.is_empty() {
                        return Err(secret(format!("entry {} has an empty token", i + 1)));
                    }
                    tokens.insert(token.to_owned(), Arc::<str>::from(subject));
                }
                if tokens.is_empty() {
                    return Err(secret(
                        "it lists no token; expected \"token1=subject1,token2=subject2\"".into(),
                    ));
                }
                Ok(Auth::Bearer(tokens))
            }
            AuthMode::Jwt => {
                let secret = std::env::var(JWT_SECRET_ENV)
                    .ok()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| ServeError::Secret {
                        mode,
                        var: JWT_SECRET_ENV,
                        problem: "it is not set, empty or not UTF-8; set it to the HS256 secret"
                            .into(),
                    })?;
                let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
                validation.required_spec_claims.clear();
                validation.validate_exp = true;
                validation.validate_aud = false;
                validation.leeway = 0;
                Ok(Auth::Jwt(Box::new((
                    DecodingKey::from_secret(secret.as_bytes()),
                    validation,
                ))))
            }
        }
    }

    /// The subject of an authorized request.
    fn check(&self, headers: &HeaderMap) -> Result<Option<Arc<str>>, Reject> {
        if matches!(self, Auth::None) {
            return Ok(None);
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(Reject::Missing)?
            .to_str()
            .map_err(|_| Reject::Malformed)?
            .trim();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(Reject::Malformed),
        };
        if token.is_empty() {
            return Err(Reject::Missing);
        }
        match self {
            Auth::None => Ok(None),
            Auth::Bearer(tokens) => tokens
                .get(token)
                .map(|subject| Some(subject.clone()))
                .ok_or(Reject::Unknown),
            Auth::Jwt(jwt) => {
                let (key, validation) = &**jwt;
                match jsonwebtoken::decode::<Claims>(token, key, validation) {
                    Ok(data) => Ok(data.claims.sub.map(Arc::from)),
                    Err(e) => Err(match e.kind() {
                        ErrorKind::ExpiredSignature => Reject::Expired,
                        ErrorKind::InvalidSignature | ErrorKind::ImmatureSignature => {
                            Reject::Unknown
                        }
                        _ => Reject::Malformed,
                    }),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Session manager: rmcp's local one, plus the session id handed to `initialize`.

/// [`LocalSessionManager`] that tells the handler its session id at `initialize`.
#[derive(Default)]
pub(crate) struct Sessions(LocalSessionManager);

impl SessionManager for Sessions {
    type Error = <LocalSessionManager as SessionManager>::Error;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    fn create_session(
        &self,
    ) -> impl Future<Output = Result<(SessionId, Self::Transport), Self::Error>> + Send {
        self.0.create_session()
    }

    fn initialize_session(
        &self,
        id: &SessionId,
        mut message: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<ServerJsonRpcMessage, Self::Error>> + Send {
        if let ClientJsonRpcMessage::Request(request) = &mut message {
            request
                .request
                .extensions_mut()
                .insert(InitSessionId(id.clone()));
        }
        self.0.initialize_session(id, message)
    }

    fn has_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        self.0.has_session(id)
    }

    fn close_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.close_session(id)
    }

    fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>,
    > + Send {
        self.0.create_stream(id, message)
    }

    fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.0.accept_message(id, message)
    }

    fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> impl Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>,
    > + Send {
        self.0.create_standalone_stream(id)
    }

    fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> impl Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>,
    > + Send {
        self.0.resume(id, last_event_id)
    }

    fn restore_session(
        &self,
        id: SessionId,
    ) -> impl Future<Output = Result<RestoreOutcome<Self::Transport>, Self::Error>> + Send {
        self.0.restore_session(id)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.0.event_store()
    }
}

// ---------------------------------------------------------------------------------------
// The app

struct AppState {
    mcp: StreamableHttpService<Handler, Sessions>,
    auth: Auth,
    /// `Bearer resource_metadata="..."`, precomputed.
    challenge: HeaderValue,
    /// The protected-resource metadata document, precomputed.
    metadata: String,
}

/// `http://host:port` as clients should write it.
pub(crate) fn base_url(addr: SocketAddr) -> String {
    let ip = addr.ip();
    let ip = if ip.is_unspecified() {
        if ip.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        }
    } else {
        ip
    };
    match ip {
        std::net::IpAddr::V4(v4) => format!("http://{v4}:{}", addr.port()),
        std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{}", addr.port()),
    }
}

/// Everything the HTTP server needs except the listener; fails early on bad options.
pub(crate) struct App {
    router: Router,
    rmcp_ct: CancellationToken,
}

pub(crate) fn validate_path(path: &str) -> Result<(), ServeError> {
    if !path.starts_with('/') || path.contains(['?', '#', '{', '}', '*']) {
        return Err(ServeError::InvalidOptions(format!(
            "path {path:?} must start with '/' and be a plain path (no ?, #, {{, }} or *), e.g. \"/mcp\""
        )));
    }
    Ok(())
}

pub(crate) fn build_app(opts: &ServeOptions, auth: Auth, addr: SocketAddr) -> App {
    let mode = if opts.stateless {
        Mode::HttpStateless
    } else {
        Mode::HttpStateful
    };
    let shared = Shared::new(opts.server, mode);
    let rmcp_ct = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!opts.stateless)
        .with_json_response(opts.stateless)
        .with_cancellation_token(rmcp_ct.clone());
    let host = opts.host;
    if host.is_unspecified() {
        config = config.disable_allowed_hosts();
    } else if !host.is_loopback() {
        let mut hosts = config.allowed_hosts.clone();
        hosts.push(host.to_string());
        config = config.with_allowed_hosts(hosts);
    }
    let mcp = StreamableHttpService::new(
        move || Ok(Handler::new(shared.clone())),
        Arc::new(Sessions::default()),
        config,
    );
    let base = base_url(addr);
    let resource = format!("{base}{}", opts.path);
    let challenge = HeaderValue::from_str(&format!(
        "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource\""
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    let metadata = json!({
        "resource": resource,
        "authorization_servers": [],
        "bearer_methods_supported": ["header"],
        "resource_name": format!("mcp-harness {}", opts.server),
    })
    .to_string();
    let state = Arc::new(AppState {
        mcp,
        auth,
        challenge,
        metadata,
    });
    let well_known = "/.well-known/oauth-protected-resource";
    let mut router = Router::new().route(well_known, get(metadata_doc));
    let suffixed = format!("{well_known}{}", opts.path.trim_end_matches('/'));
    if suffixed != well_known {
        router = router.route(&suffixed, get(metadata_doc));
    }
    let router = router
        .route(&opts.path, any(mcp_endpoint))
        .with_state(state);
    App { router, rmcp_ct }
}

async fn metadata_doc(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.metadata.clone(),
    )
        .into_response()
}

async fn mcp_endpoint(State(state): State<Arc<AppState>>, mut request: Request<Body>) -> Response {
    match state.auth.check(request.headers()) {
        Ok(None) if matches!(state.auth, Auth::None) => {}
        Ok(subject) => {
            request.extensions_mut().insert(AuthSubject(subject));
        }
        Err(reject) => return unauthorized(&state, reject),
    }
    state.mcp.handle(request).await.map(Body::new)
}

fn unauthorized(state: &AppState, reject: Reject) -> Response {
    let message = match (reject, &state.auth) {
        (Reject::Missing, _) => "no bearer token: send \"Authorization: Bearer <token>\"",
        (Reject::Unknown, Auth::Jwt(_)) => "the JWT does not verify with the server's HS256 secret",
        (Reject::Unknown, _) => "the bearer token is not one this server knows",
        (Reject::Malformed, Auth::Jwt(_)) => {
            "the Authorization header is not \"Bearer <HS256 JWT>\""
        }
        (Reject::Malformed, _) => "the Authorization header is not \"Bearer <token>\"",
        (Reject::Expired, _) => "the JWT has expired (exp is in the past)",
    };
    tracing::debug!(reason = reject.reason(), "refused an HTTP request");
    let body = json!({
        "error": if matches!(reject, Reject::Missing) { "unauthorized" } else { "invalid_token" },
        "reason": reject.reason(),
        "message": message,
    })
    .to_string();
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, state.challenge.clone()),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then waits at most
/// [`SHUTDOWN_GRACE`] for open connections.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let App { router, rmcp_ct } = app;
    let graceful = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            // End the sessions and their SSE streams so connections can close.
            rmcp_ct.cancel();
        }
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(graceful);
    let server = std::future::IntoFuture::into_future(server);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.map_err(ServeError::io("serving HTTP")),
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::debug!("HTTP connections still open after the shutdown grace period");
            Ok(())
        }
    }
}
