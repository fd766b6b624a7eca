//! The tools fast-test and fast-time share: `stats` and `whoami`.

use std::sync::atomic::Ordering;

use rmcp::{
    RoleServer,
    model::{CallToolResult, Implementation},
    service::RequestContext,
    tool, tool_router,
};
use serde_json::{Map, Value, json};

use super::{AuthSubject, Handler, era, text};

/// What every `whoami` and `stats` answer says about the request itself: its era,
/// protocol version and the keys (never the values) of its `_meta`.
fn request_facts(body: &mut Map<String, Value>, ctx: &RequestContext<RoleServer>) {
    body.insert("era".into(), Value::from(era::Era::of(ctx).as_str()));
    body.insert(
        "protocol_version".into(),
        era::protocol_version(ctx).map_or(Value::Null, Value::from),
    );
    body.insert("meta_keys".into(), Value::from(era::meta_keys(ctx)));
}

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
    /// `initialize` requests), initializations_by_client, discovers (`server/discover`
    /// requests), listeners (open `subscriptions/listen` streams), cancellations,
    /// active_sessions, sleeping (sleep calls running now), pid; and of this request:
    /// era (handshake or stateless), protocol_version, meta_keys (the `_meta` keys it
    /// carried, never their values).
    #[tool]
    fn stats(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        let stats = &self.shared().stats;
        let by_client: Map<String, Value> = stats
            .by_client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect();
        let mut body = json!({
            "initializations": stats.initializations.load(Ordering::Relaxed),
            "initializations_by_client": by_client,
            "discovers": stats.discovers.load(Ordering::Relaxed),
            "listeners": self.shared().listeners.count(),
            "cancellations": stats.cancellations.load(Ordering::Relaxed),
            "active_sessions": stats.active_sessions.load(Ordering::Relaxed).max(0),
            "sleeping": stats.sleeping.load(Ordering::Relaxed).max(0),
            "pid": std::process::id(),
        });
        if let Value::Object(map) = &mut body {
            request_facts(map, &ctx);
        }
        text(body.to_string())
    }

    /// Who is calling, as JSON: subject (authenticated identity or null), session_id,
    /// client (clientInfo.name), transport, era (handshake or stateless),
    /// protocol_version, meta_keys (the request's `_meta` keys, never their values), and
    /// the HTTP request headers (secret ones redacted).
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
        request_facts(&mut body, &ctx);
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
