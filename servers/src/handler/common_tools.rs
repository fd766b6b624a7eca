//! The tools fast-test and fast-time share: `stats` and `whoami`.

use std::sync::atomic::Ordering;

use rmcp::{
    RoleServer,
    model::{CallToolResult, Implementation},
    service::RequestContext,
    tool, tool_router,
};
use serde_json::{Map, Value, json};

use super::{AuthSubject, Handler, text};

// ---------------------------------------------------------------------------------------
// Tools shared by both servers

/// Headers whose values `whoami` never reports.
fn is_secret_header(name: &str) -> bool {
    matches!(
        name,
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-api-key"
    ) || name.contains("token")
        || name.contains("secret")
}

#[tool_router(router = common_tools, vis = "pub(crate)")]
impl Handler {
    /// Server-side statistics, as JSON: initializations (process-wide count of
    /// `initialize` requests), initializations_by_client, cancellations,
    /// active_sessions, sleeping (sleep calls running now), pid.
    #[tool]
    fn stats(&self) -> CallToolResult {
        let stats = &self.shared().stats;
        let by_client: Map<String, Value> = stats
            .by_client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        let body = json!({
            "initializations": stats.initializations.load(Ordering::Relaxed),
            "initializations_by_client": by_client,
            "cancellations": stats.cancellations.load(Ordering::Relaxed),
            "active_sessions": stats.active_sessions.load(Ordering::Relaxed).max(0),
            "sleeping": stats.sleeping.load(Ordering::Relaxed).max(0),
            "pid": std::process::id(),
        });
        text(body.to_string())
    }

    /// Who is calling, as JSON: subject (authenticated identity or null), session_id,
    /// client (clientInfo.name), transport, and the non-secret HTTP request headers.
    #[tool]
    fn whoami(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        let parts = ctx.extensions.get::<http::request::Parts>();
        let subject = match parts {
            Some(parts) => parts
                .extensions
                .get::<AuthSubject>()
                .and_then(|s| s.0.as_deref())
                .map(Value::from)
                .unwrap_or(Value::Null),
            None => self
                .shared()
                .stdio_subject
                .as_deref()
                .map_or(Value::Null, Value::from),
        };
        let session_id = parts
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(Value::from)
            .or_else(|| {
                // SSE: the session id is a query parameter; it was recorded at initialize.
                let opened = self.session.opened.get()?;
                opened.session_id.as_deref().map(Value::from)
            })
            .unwrap_or(Value::Null);
        let client = ctx
            .client_info()
            .filter(|info| *info != Implementation::default())
            .map_or(Value::Null, |info| Value::from(info.name));
        let mut body = Map::new();
        body.insert("subject".into(), subject);
        body.insert("session_id".into(), session_id);
        body.insert("client".into(), client);
        body.insert("transport".into(), Value::from(self.transport_name()));
        if let Some(parts) = parts {
            let mut headers = Map::new();
            for (name, value) in &parts.headers {
                let name = name.as_str();
                let value = if is_secret_header(name) {
                    Value::from("<redacted>")
                } else {
                    Value::from(String::from_utf8_lossy(value.as_bytes()))
                };
                // Repeated headers: keep them all, comma-joined as HTTP allows.
                match headers.get_mut(name) {
                    Some(Value::String(previous)) if value.as_str() != Some("<redacted>") => {
                        previous.push_str(", ");
                        previous.push_str(value.as_str().unwrap_or_default());
                    }
                    Some(_) => {}
                    None => {
                        headers.insert(name.to_owned(), value);
                    }
                }
            }
            body.insert("headers".into(), Value::Object(headers));
        } else {
            body.insert("headers".into(), Value::Object(Map::new()));
        }
        text(Value::Object(body).to_string())
    }
}
