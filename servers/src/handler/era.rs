//! Which protocol era a request belongs to, and what its `_meta` carried.
//!
//! The handshake era (up to 2025-11-25) negotiates a version at `initialize`; the
//! stateless era (2026-07-28) names it in every request's `_meta`
//! (`io.modelcontextprotocol/protocolVersion`). One server process serves both, so the
//! era is a property of the request, never of the server.

use rmcp::{
    RoleServer,
    model::{LoggingLevel, ProtocolVersion},
    service::RequestContext,
};

/// The protocol era of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Era {
    /// `initialize` / `notifications/initialized`; server-to-client requests.
    Handshake,
    /// `server/discover`, per-request `_meta`, `input_required` results.
    Stateless,
}

impl Era {
    /// The era of the request `ctx` belongs to.
    pub(crate) fn of(ctx: &RequestContext<RoleServer>) -> Self {
        // ISO dates compare lexically the same as chronologically.
        let stateless = ctx
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        if stateless {
            Self::Stateless
        } else {
            Self::Handshake
        }
    }

    /// `"handshake"` or `"stateless"`, as `whoami` and `stats` report it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::Stateless => "stateless",
        }
    }
}

/// The keys of the request's `_meta`, sorted (never their values: a client may put
/// anything there, secrets included).
pub(crate) fn meta_keys(ctx: &RequestContext<RoleServer>) -> Vec<String> {
    let mut keys: Vec<String> = ctx.meta.keys().cloned().collect();
    keys.sort();
    keys
}

/// The negotiated protocol version of the request, if any.
pub(crate) fn protocol_version(ctx: &RequestContext<RoleServer>) -> Option<String> {
    ctx.protocol_version().map(|v| v.as_str().to_owned())
}

/// The minimum level the request's `_meta` asks logs to be sent at
/// (`io.modelcontextprotocol/logLevel`, stateless era); `None` means no logs at all.
pub(crate) fn requested_log_level(ctx: &RequestContext<RoleServer>) -> Option<LoggingLevel> {
    ctx.meta.log_level()
}
