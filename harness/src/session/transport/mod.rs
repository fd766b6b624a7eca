//! The wires a session speaks, one module each: `stdio` (a child's stdin/stdout),
//! `streamable_http` (MCP 2025-03-26 and later) and `sse` (the legacy HTTP+SSE transport of
//! 2024-11-05, which rmcp no longer ships).
//!
//! Each module turns a session's settings into a transport and hands it to the era's lifecycle
//! (`super::era`). May import `crate::auth` (credentials and the token-injecting HTTP client),
//! `crate::process` (stdio children) and `crate::runtime`; must not import the session's handle
//! or owner task.

pub(super) mod sse;
pub(super) mod stdio;
pub(super) mod streamable_http;

use std::time::Duration;

use super::builder::SessionBuilder;
use crate::errors::Error;
use crate::tls::SharedClient;

/// One HTTP client for every session of the process: connections are pooled and kept alive;
/// https trusts what [`crate::tls`] says.
pub(super) static HTTP_CLIENT: SharedClient = SharedClient::new(|b| {
    b.tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(30))
});

/// The session's custom headers (values marked sensitive, so they never show in logs).
pub(super) fn header_map(cfg: &SessionBuilder) -> std::result::Result<http::HeaderMap, Error> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| Error::Invalid {
            what: format!("header name `{k}` of session `{}`", cfg.name),
            reason: e.to_string(),
        })?;
        let mut value = http::HeaderValue::from_str(v.expose()).map_err(|_| Error::Invalid {
            what: format!("value of header `{k}` of session `{}`", cfg.name),
            reason: "header values must be visible ASCII".into(),
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}
