//! How the pool builds the session to an upstream: its target, its protocol era, its timeouts,
//! and which of the caller's headers go upstream.

use std::time::Duration;

use super::request::PoolTarget;
use super::{AcquireRequest, PoolConfig, PoolKey};
use crate::errors::{Error, Result};
use crate::session::{Protocol, Session, SessionBuilder, Target};
use crate::transport::Transport;

pub(super) fn session_builder(
    cfg: &PoolConfig,
    req: &AcquireRequest,
    key: &PoolKey,
    protocol: Protocol,
) -> Result<SessionBuilder> {
    let target = match &req.target {
        PoolTarget::Stdio(spec) => Target::Stdio((**spec).clone()),
        PoolTarget::Url(url, Transport::StreamableHttp) => Target::Http(url.clone()),
        PoolTarget::Url(url, Transport::Sse) => Target::Sse(url.clone()),
        PoolTarget::Url(_, other) => {
            return Err(Error::Invalid {
                what: format!("pool transport `{other}`"),
                reason: "the pool connects over streamable_http, sse or stdio".into(),
            });
        }
    };
    let mut b = Session::builder(target)
        .name(format!(
            "pool:{}",
            &key.identity_hash[..key.identity_hash.len().min(8)]
        ))
        .connect_attempts(1)
        // The pool's create_timeout bounds the whole creation; this inner bound only backs it up.
        .init_timeout(cfg.create_timeout + Duration::from_secs(1))
        .request_timeout(cfg.request_timeout)
        .close_timeout(cfg.cleanup_timeout)
        .protocol(protocol)
        // A stateless upstream's `subscriptions/listen` stream is opened only when the pool
        // watches list_changed notifications: a pool of many sessions saves one stream each.
        .listen(cfg.refresh.is_some());
    for (name, value) in &req.headers {
        if !forwarded_upstream(name.as_str()) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            b = b.header(name.as_str(), v);
        }
    }
    Ok(b)
}

/// Whether a caller's header goes upstream: session ids never do (the pool owns the upstream
/// session), nor headers the HTTP transport sets itself.
fn forwarded_upstream(name: &str) -> bool {
    !matches!(
        name,
        "x-mcp-session-id"
            | "mcp-session-id"
            | "host"
            | "content-length"
            | "content-type"
            | "accept"
            | "connection"
            | "transfer-encoding"
            | "mcp-protocol-version"
            | "last-event-id"
    )
}
