//! What to acquire: [`AcquireRequest`], an upstream target plus the caller's headers, user and
//! gateway.

use std::fmt;

use http::HeaderMap;

use super::identity;
use crate::process::ServerSpec;
use crate::transport::Transport;

/// What to acquire: an upstream target plus the caller's headers, user and gateway.
///
/// ```
/// use mcp_harness::pool::AcquireRequest;
/// let req = AcquireRequest::http("http://127.0.0.1:4000/mcp")
///     .header("authorization", "Bearer t0k3n")
///     .header("x-tenant-id", "acme")
///     .user("alice@example.com")
///     .gateway("gw-1");
/// assert_eq!(format!("{req:?}").contains("t0k3n"), false);
/// ```
#[derive(Clone)]
pub struct AcquireRequest {
    pub(super) target: PoolTarget,
    pub(super) headers: HeaderMap,
    pub(super) user: Option<String>,
    pub(super) gateway_id: Option<String>,
}

#[derive(Clone)]
pub(super) enum PoolTarget {
    Url(String, Transport),
    Stdio(Box<ServerSpec>),
}

impl fmt::Debug for AcquireRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            PoolTarget::Url(u, t) => format!("{t} {}", identity::safe_url(u)),
            PoolTarget::Stdio(s) => format!("stdio {}", s.name()),
        };
        f.debug_struct("AcquireRequest")
            .field("target", &target)
            .field(
                "headers",
                &self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            )
            .field("user", &self.user.as_ref().map(|_| "<redacted>"))
            .field("gateway_id", &self.gateway_id)
            .finish()
    }
}

impl AcquireRequest {
    /// A streamable HTTP upstream.
    pub fn http(url: impl Into<String>) -> Self {
        Self::url(url, Transport::StreamableHttp)
    }

    /// An upstream at `url` over `transport` (streamable HTTP or SSE).
    pub fn url(url: impl Into<String>, transport: Transport) -> Self {
        AcquireRequest {
            target: PoolTarget::Url(url.into(), transport),
            headers: HeaderMap::new(),
            user: None,
            gateway_id: None,
        }
    }

    /// A stdio upstream: each pooled session spawns `spec`.
    pub fn stdio(spec: ServerSpec) -> Self {
        AcquireRequest {
            target: PoolTarget::Stdio(Box::new(spec)),
            headers: HeaderMap::new(),
            user: None,
            gateway_id: None,
        }
    }

    /// Adds a header (invalid names or values are ignored with a debug log, never an error).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                self.headers.append(n, v);
            }
            _ => tracing::debug!(header = name, "ignoring an invalid header"),
        }
        self
    }

    /// Replaces the headers.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// The caller's user identity (hashed into the key, never stored raw).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The gateway id.
    pub fn gateway(mut self, gateway_id: impl Into<String>) -> Self {
        self.gateway_id = Some(gateway_id.into());
        self
    }

    pub(super) fn url_and_transport(&self) -> (String, Transport) {
        match &self.target {
            PoolTarget::Url(u, t) => (u.clone(), *t),
            PoolTarget::Stdio(s) => (s.command_line(), Transport::Stdio),
        }
    }
}
