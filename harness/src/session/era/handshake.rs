//! The handshake era: `initialize` within a deadline, and the client side that answers the
//! server's requests and forwards its notifications.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    ClientCapabilities, Implementation, InitializeRequestParams, ServerNotification,
};
use rmcp::service::{
    ClientInitializeError, NotificationContext, RequestContext, RoleClient, RunningService,
};
use rmcp::transport::IntoTransport;
use tokio::sync::broadcast;

use super::Protocol;
use crate::runtime;
use crate::session::answers::{Asked, ClientAnswers};
use crate::session::failure::error_chain;

/// The outcome of one `initialize` attempt: timed out, refused, or a running session.
pub(in crate::session) type Started = std::result::Result<
    std::result::Result<RunningService<RoleClient, ClientHandler>, ClientInitializeError>,
    tokio::time::error::Elapsed,
>;

/// Starts the session over `transport` within `bound`, in the era `protocol` chooses:
/// `initialize` (handshake era), `server/discover` (stateless era), or discover first (auto).
pub(in crate::session) async fn initialize<T, E, A>(
    mut handler: ClientHandler,
    transport: T,
    bound: Duration,
    protocol: &Protocol,
) -> Started
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    if let Protocol::Handshake(v) = protocol {
        handler.info.protocol_version = super::version(v);
    }
    let lifecycle = protocol.lifecycle();
    let transport = super::tap::Tap::new(transport.into_transport(), handler.notifications.clone());
    runtime::timeout(
        bound,
        rmcp::serve_client_with_lifecycle(handler, transport, lifecycle),
    )
    .await
}

/// One `initialize` round trip and a close: a readiness probe.
pub(in crate::session) async fn probe<T, E, A>(transport: T) -> std::result::Result<(), String>
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let info = InitializeRequestParams::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-harness-readiness-probe", env!("CARGO_PKG_VERSION")),
    );
    match rmcp::serve_client(info, transport).await {
        Ok(mut running) => {
            let _ = running.close_with_timeout(Duration::from_secs(1)).await;
            Ok(())
        }
        Err(e) => Err(error_chain(&e)),
    }
}

/// Answers the server's requests and forwards its notifications to subscribers.
pub(in crate::session) struct ClientHandler {
    pub(super) info: InitializeRequestParams,
    notifications: broadcast::Sender<ServerNotification>,
    answers: Arc<ClientAnswers>,
    asked: Asked,
}

impl ClientHandler {
    /// The client `name` (a session's name), publishing notifications on `notifications`.
    pub(in crate::session) fn new(
        name: &str,
        notifications: broadcast::Sender<ServerNotification>,
        answers: Arc<ClientAnswers>,
        asked: Asked,
    ) -> Self {
        // Servers may ask for what a client advertises (rmcp refuses the rest): advertise
        // all three, so that a test sees every question, scripted or not.
        let capabilities: ClientCapabilities = serde_json::from_value(serde_json::json!({
            "elicitation": {"form": {}},
            "sampling": {},
            "roots": {"listChanged": false},
        }))
        .unwrap_or_default();
        ClientHandler {
            info: InitializeRequestParams::new(
                capabilities,
                Implementation::new(name.to_owned(), env!("CARGO_PKG_VERSION")),
            ),
            notifications,
            answers,
            asked,
        }
    }

    /// Records the question and answers it as scripted.
    fn answer<P: serde::Serialize>(
        &self,
        method: &str,
        params: &P,
    ) -> std::result::Result<serde_json::Value, rmcp::ErrorData> {
        let params = serde_json::to_value(params).unwrap_or_default();
        let answer = self.answers.answer(method, &params);
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(serde_json::json!({"method": method, "params": params}));
        answer.map_err(|reason| rmcp::ErrorData::new(rmcp::model::ErrorCode(-1), reason, None))
    }
}

impl rmcp::Service<RoleClient> for ClientHandler {
    async fn handle_request(
        &self,
        request: rmcp::model::ServerRequest,
        _context: RequestContext<RoleClient>,
    ) -> std::result::Result<rmcp::model::ClientResult, rmcp::ErrorData> {
        use rmcp::model::{ClientResult, ServerRequest};
        match request {
            ServerRequest::PingRequest(_) => Ok(ClientResult::empty(())),
            ServerRequest::ElicitRequest(r) => Ok(ClientResult::ElicitResult(parse(
                self.answer("elicitation/create", &r.params)?,
            )?)),
            ServerRequest::CreateMessageRequest(r) => Ok(ClientResult::CreateMessageResult(parse(
                self.answer("sampling/createMessage", &r.params)?,
            )?)),
            ServerRequest::ListRootsRequest(_) => Ok(ClientResult::ListRootsResult(parse(
                self.answer("roots/list", &serde_json::Value::Null)?,
            )?)),
            _ => Err(rmcp::ErrorData::new(
                rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                "mcp-harness test client does not handle this request",
                None,
            )),
        }
    }

    async fn handle_notification(
        &self,
        _notification: ServerNotification,
        _context: NotificationContext<RoleClient>,
    ) -> std::result::Result<(), rmcp::ErrorData> {
        // Published by the transport tap, in the order they arrived (see `tap`).
        Ok(())
    }

    fn get_info(&self) -> InitializeRequestParams {
        self.info.clone()
    }
}

/// A scripted answer as rmcp's result type.
fn parse<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> std::result::Result<T, rmcp::ErrorData> {
    serde_json::from_value(v).map_err(|e| {
        rmcp::ErrorData::internal_error(format!("a scripted answer does not fit: {e}"), None)
    })
}
