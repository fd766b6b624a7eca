//! The legacy HTTP+SSE transport (MCP 2024-11-05), built on rmcp's transport traits.
//!
//! `GET /sse` opens an event stream and one MCP session with its own handler; the first
//! event, `endpoint`, names the URL to POST messages to (`/message?sessionId=...`). Each
//! POST is answered `202 Accepted`; the session's messages (responses, notifications,
//! server requests) arrive as `message` events on the stream. Closing the stream ends the
//! session. Every request goes through the same credential check as streamable HTTP.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderValue, Request, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures::{StreamExt as _, channel::mpsc};
use rmcp::{
    ServiceExt as _,
    model::{ClientJsonRpcMessage, GetExtensions as _, ServerJsonRpcMessage},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::gate::{Auth, Gate},
    handler::{AuthSubject, BundledServer, Handler, InitSessionId, Mode, Shared},
    options::ServeOptions,
};

use super::http::{App, base_url};

/// The path of the event stream.
pub(crate) const SSE_PATH: &str = "/sse";
/// The path messages are POSTed to (with `?sessionId=`).
pub(crate) const MESSAGE_PATH: &str = "/message";

struct Session {
    to_server: mpsc::UnboundedSender<ClientJsonRpcMessage>,
    subject: Option<Arc<str>>,
}

struct SseState {
    gate: Arc<Gate>,
    shared: Arc<Shared>,
    sessions: Mutex<HashMap<Arc<str>, Session>>,
    /// Cancelled at shutdown: ends every session and stream.
    ct: CancellationToken,
    rng: ring::rand::SystemRandom,
}

impl SseState {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn build_app(
    opts: &ServeOptions,
    server: &'static dyn BundledServer,
    auth: Auth,
    addr: SocketAddr,
) -> App {
    let base = base_url(addr, opts.tls.is_some());
    let gate = Arc::new(Gate::new(auth, &base, SSE_PATH, opts.server.as_str()));
    let ct = CancellationToken::new();
    let state = Arc::new(SseState {
        gate: gate.clone(),
        shared: Shared::new(server, Mode::Sse),
        sessions: Mutex::new(HashMap::new()),
        ct: ct.clone(),
        rng: ring::rand::SystemRandom::new(),
    });
    let router: Router = gate
        .routes(SSE_PATH)
        .route(SSE_PATH, get(open_stream))
        .route(MESSAGE_PATH, post(post_message))
        .with_state(state);
    App {
        router,
        rmcp_ct: ct,
    }
}

/// Removes the session when its event stream is dropped (client gone, or the session ended):
/// dropping the sender ends the rmcp service's input, so the session closes.
struct StreamGuard {
    state: Arc<SseState>,
    id: Arc<str>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.state.sessions().remove(&self.id);
        tracing::debug!(session_id = %self.id, "SSE stream closed");
    }
}

async fn open_stream(State(state): State<Arc<SseState>>, request: Request<Body>) -> Response {
    let subject = match state.gate.check(request.headers()) {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    let id: Arc<str> = {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&state.rng, &mut bytes).expect("the OS random source works");
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into()
    };
    let (to_server, from_client) = mpsc::unbounded::<ClientJsonRpcMessage>();
    let (to_client, from_server) = mpsc::unbounded::<ServerJsonRpcMessage>();
    state
        .sessions()
        .insert(id.clone(), Session { to_server, subject });
    let handler = Handler::new(state.shared.clone());
    let ct = state.ct.child_token();
    tokio::spawn({
        let ct = ct.clone();
        let id = id.clone();
        async move {
            match handler.serve_with_ct((to_client, from_client), ct).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(error) => {
                    tracing::debug!(session_id = %id, %error, "SSE session did not start")
                }
            }
        }
    });
    let guard = StreamGuard {
        state: state.clone(),
        id: id.clone(),
    };
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("{MESSAGE_PATH}?sessionId={id}"));
    let messages = from_server.filter_map(|message| async move {
        match serde_json::to_string(&message) {
            Ok(json) => Some(Event::default().event("message").data(json)),
            Err(error) => {
                tracing::warn!(%error, "cannot serialize a server message; dropped");
                None
            }
        }
    });
    let stream = futures::stream::once(async move { endpoint })
        .chain(messages)
        .take_until(async move { ct.cancelled().await })
        .map(move |event| {
            let _keep = &guard;
            Ok::<_, Infallible>(event)
        });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[derive(serde::Deserialize)]
struct MessageQuery {
    #[serde(rename = "sessionId", alias = "session_id")]
    session_id: Option<String>,
}

fn json_error(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"error": error, "message": message}).to_string(),
    )
        .into_response()
}

async fn post_message(
    State(state): State<Arc<SseState>>,
    Query(query): Query<MessageQuery>,
    request: Request<Body>,
) -> Response {
    let subject = match state.gate.check(request.headers()) {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    let Some(id) = query.session_id else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "missing_session",
            "POST to the url of the stream's `endpoint` event (it carries ?sessionId=)",
        );
    };
    let (mut parts, body) = request.into_parts();
    let sender = {
        let sessions = state.sessions();
        match sessions.get(id.as_str()) {
            None => None,
            Some(s) if s.subject.is_some() && s.subject != subject => {
                return json_error(
                    StatusCode::FORBIDDEN,
                    "subject_mismatch",
                    "this session belongs to another subject",
                );
            }
            Some(s) => Some(s.to_server.clone()),
        }
    };
    let Some(sender) = sender else {
        return json_error(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "no open SSE stream has this sessionId; open a new one with GET /sse",
        );
    };
    let bytes: Bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return json_error(StatusCode::BAD_REQUEST, "bad_body", "cannot read the body");
        }
    };
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "parse_error",
                &format!("the body is not a JSON-RPC message: {e}"),
            );
        }
    };
    if !matches!(state.gate.auth, Auth::None) {
        parts.extensions.insert(AuthSubject(subject));
    }
    match &mut message {
        ClientJsonRpcMessage::Request(req) => {
            if matches!(
                req.request,
                rmcp::model::ClientRequest::InitializeRequest(_)
            ) {
                req.request
                    .extensions_mut()
                    .insert(InitSessionId(Arc::from(id.as_str())));
            }
            req.request.extensions_mut().insert(parts);
        }
        ClientJsonRpcMessage::Notification(n) => {
            n.notification.extensions_mut().insert(parts);
        }
        _ => {}
    }
    if sender.unbounded_send(message).is_err() {
        return json_error(
            StatusCode::NOT_FOUND,
            "session_closed",
            "the session of this sessionId has ended",
        );
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}
