//! Streamable HTTP: axum in front of rmcp's `StreamableHttpService`, with the auth
//! modes and the protected-resource metadata document.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router, body::Body, extract::State, http::Request, response::Response, routing::any,
    serve::ListenerExt,
};
use futures::Stream;
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
use tokio_util::sync::CancellationToken;

use crate::{
    auth::gate::{Auth, Gate},
    handler::{AuthSubject, BundledServer, Handler, InitSessionId, Mode, Shared},
    options::{Bundled, ServeError, ServeOptions},
};

/// How long shutdown waits for open connections before returning anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// Session manager: rmcp's local one, plus the session id handed to `initialize`.

/// [`LocalSessionManager`] that tells the handler its session id at `initialize`.
#[derive(Default)]
pub(crate) struct Sessions(LocalSessionManager, CloseReconnection);

/// Whether the POST stream of a `test_reconnection` call ends after its priming event
/// (the `conformance` server: SEP-1699 polling). The call's answer stays in the session's
/// cache and reaches the client when it reconnects with `Last-Event-ID`.
#[derive(Default, Clone, Copy)]
pub(crate) struct CloseReconnection(bool);

fn is_reconnection_call(message: &ClientJsonRpcMessage) -> bool {
    matches!(
        message,
        ClientJsonRpcMessage::Request(request)
            if matches!(
                &request.request,
                rmcp::model::ClientRequest::CallToolRequest(call)
                    if call.params.name == "test_reconnection"
            )
    )
}

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
        let close = self.1.0 && is_reconnection_call(&message);
        let stream = self.0.create_stream(id, message);
        async move {
            // The first event is the priming event (id and retry) that lets the client resume.
            Ok(futures::StreamExt::take(
                stream.await?,
                if close { 1 } else { usize::MAX },
            ))
        }
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
    gate: Arc<Gate>,
}

/// `http://host:port` (`https://` with TLS) as clients should write it.
pub(crate) fn base_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
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
        std::net::IpAddr::V4(v4) => format!("{scheme}://{v4}:{}", addr.port()),
        std::net::IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{}", addr.port()),
    }
}

/// Everything the HTTP server needs except the listener; fails early on bad options.
pub(crate) struct App {
    pub(crate) router: Router,
    /// Cancelled at shutdown to end the sessions (and their streams).
    pub(crate) rmcp_ct: CancellationToken,
}

pub(crate) fn validate_path(path: &str) -> Result<(), ServeError> {
    if !path.starts_with('/') || path.contains(['?', '#', '{', '}', '*']) {
        return Err(ServeError::InvalidOptions(format!(
            "path {path:?} must start with '/' and be a plain path (no ?, #, {{, }} or *), e.g. \"/mcp\""
        )));
    }
    Ok(())
}

pub(crate) fn build_app(
    opts: &ServeOptions,
    server: &'static dyn BundledServer,
    auth: Auth,
    addr: SocketAddr,
) -> App {
    let mode = if opts.stateless {
        Mode::HttpStateless
    } else {
        Mode::HttpStateful
    };
    let shared = Shared::new(server, mode);
    let rmcp_ct = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!opts.stateless)
        // A request that ends in one answer gets it as plain JSON, in both eras; one that sends
        // notifications or requests first gets an event stream. (This applies wherever rmcp
        // serves a request without a session: every 2026-07-28 request, and the handshake era
        // in stateless mode. Sessions of the handshake era answer on their own streams.)
        .with_json_response(true)
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
        Arc::new(Sessions(
            LocalSessionManager::default(),
            CloseReconnection(opts.server == Bundled::Conformance),
        )),
        config,
    );
    let base = base_url(addr, opts.tls.is_some());
    let gate = Arc::new(Gate::new(auth, &base, &opts.path, opts.server.as_str()));
    let state = Arc::new(AppState {
        mcp,
        gate: gate.clone(),
    });
    let router = gate
        .routes(&opts.path)
        .route(&opts.path, any(mcp_endpoint))
        .with_state(state);
    App { router, rmcp_ct }
}

async fn mcp_endpoint(State(state): State<Arc<AppState>>, mut request: Request<Body>) -> Response {
    match state.gate.check(request.headers()) {
        Ok(None) if matches!(state.gate.auth, Auth::None) => {}
        Ok(subject) => {
            request.extensions_mut().insert(AuthSubject(subject));
        }
        Err(refusal) => return refusal,
    }
    state.mcp.handle(request).await.map(Body::new)
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` is cancelled, then waits
/// at most [`SHUTDOWN_GRACE`] for open connections.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), ServeError> {
    let App { router, rmcp_ct } = app;
    let graceful = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            // End the sessions and their SSE streams so connections can close.
            rmcp_ct.cancel();
        }
    };
    let served = async {
        match tls {
            Some(acceptor) => {
                let listener = super::tls::TlsListener::new(listener, acceptor, shutdown.clone())
                    .map_err(ServeError::io("reading the listener's address"))?;
                axum::serve(listener, router)
                    .with_graceful_shutdown(graceful)
                    .await
                    .map_err(ServeError::io("serving HTTPS"))
            }
            None => {
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, router)
                    .with_graceful_shutdown(graceful)
                    .await
                    .map_err(ServeError::io("serving HTTP"))
            }
        }
    };
    tokio::select! {
        result = served => result,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::debug!("HTTP connections still open after the shutdown grace period");
            Ok(())
        }
    }
}
