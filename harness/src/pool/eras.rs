//! The protocol era of each upstream: pinned in the configuration (per url or for the whole
//! pool), set for a suite by [`PROTOCOL_ENV`](crate::PROTOCOL_ENV), or discovered once per url
//! and transport and cached.
//!
//! Discovery is single-flight: the first creation for an upstream whose era is unknown connects
//! with [`Protocol::Auto`] while holding that upstream's slot in the cache, and the creations
//! that arrive meanwhile wait for its verdict instead of probing again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::{AcquireRequest, PoolConfig};
use crate::errors::{Error, Result};
use crate::session::{Era, PROTOCOL_ENV, Protocol};
use crate::transport::Transport;

/// What the pool learnt about an upstream: the era and the version its first session negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Discovered {
    pub(super) era: Era,
    pub(super) version: String,
}

impl Discovered {
    /// The pin that reconnects in the same era at the same version.
    fn pin(&self) -> Protocol {
        match self.era {
            Era::Stateless => Protocol::Stateless(self.version.clone()),
            Era::Handshake => Protocol::Handshake(self.version.clone()),
        }
    }
}

type Upstream = (String, Transport);

/// The eras discovered per (url, transport).
#[derive(Default)]
pub(super) struct EraCache {
    /// What was learnt, read without waiting (routing asks it on every request).
    learnt: Mutex<HashMap<Upstream, Discovered>>,
    /// One discovery at a time per upstream.
    discovering: Mutex<HashMap<Upstream, Arc<AsyncMutex<()>>>>,
}

/// The protocol a creation connects with.
pub(super) enum Choice {
    /// Pinned (configuration or environment): connect with this.
    Known(Protocol),
    /// Learnt from an earlier session of the upstream: connect with this.
    Learnt(Protocol),
    /// Unknown: connect with [`Protocol::Auto`] and [`EraCache::record`] what was negotiated.
    Discover(Discovery),
}

/// The right to discover an upstream's era (held while its first session is created; the
/// creations that arrive meanwhile wait for it).
pub(super) struct Discovery {
    upstream: Upstream,
    _turn: OwnedMutexGuard<()>,
}

impl EraCache {
    /// What the cache knows about an upstream (never waits: a discovery under way is unknown).
    pub(super) fn known(&self, url: &str, transport: Transport) -> Option<Discovered> {
        self.learnt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(url.to_owned(), transport))
            .cloned()
    }

    /// Records what the session a discovery connected negotiated, and ends the discovery.
    pub(super) fn record(&self, discovery: Discovery, era: Era, version: String) {
        self.learnt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(discovery.upstream.clone(), Discovered { era, version });
    }

    /// Learns an upstream's era from elsewhere (another worker), unless it is known already.
    fn learn(&self, url: &str, transport: Transport, d: Discovered) {
        self.learnt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((url.to_owned(), transport))
            .or_insert(d);
    }

    /// Forgets an upstream's era (it refused the version learnt earlier: upgraded or replaced).
    pub(super) fn forget(&self, url: &str, transport: Transport) {
        self.learnt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(url.to_owned(), transport));
    }
}

/// Where the protocol of an upstream comes from, strongest first.
enum Setting {
    /// `PoolBuilder::protocol_for(url, ..)` or `PoolBuilder::protocol(..)`.
    Pinned(Protocol),
    /// [`PROTOCOL_ENV`], which switches every session that does not set its own.
    Env(Protocol),
    /// Nothing: discover.
    Default,
}

fn setting(cfg: &PoolConfig, url: &str) -> Result<Setting> {
    if let Some(p) = cfg.url_protocols.get(url).or(cfg.protocol.as_ref()) {
        return Ok(Setting::Pinned(p.clone()));
    }
    match std::env::var(PROTOCOL_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            let p = v.parse::<Protocol>().map_err(|e| match e {
                Error::Invalid { what, reason } => Error::Invalid {
                    what: format!("{what} in {PROTOCOL_ENV}"),
                    reason,
                },
                other => other,
            })?;
            Ok(Setting::Env(p))
        }
        _ => Ok(Setting::Default),
    }
}

/// The protocol `req`'s upstream is set to, if the configuration or the environment pins one
/// (`Auto` counts as not pinned).
pub(super) fn pinned(cfg: &PoolConfig, req: &AcquireRequest) -> Result<Option<Protocol>> {
    let (url, transport) = req.url_and_transport();
    Ok(match setting(cfg, &url)? {
        Setting::Pinned(Protocol::Auto) | Setting::Env(Protocol::Auto) | Setting::Default => {
            // Legacy HTTP+SSE exists only in the handshake era: nothing to discover.
            (transport == Transport::Sse).then(Protocol::default)
        }
        // The environment switches a suite to the stateless era, but legacy SSE keeps the
        // handshake era (as sessions do); a stateless pin in the configuration is refused by
        // the session instead, in plain words.
        Setting::Env(Protocol::Stateless(_)) if transport == Transport::Sse => {
            Some(Protocol::default())
        }
        Setting::Pinned(p) | Setting::Env(p) => Some(p),
    })
}

impl EraCache {
    /// The protocol a new session for `req` connects with. Waits while another creation is
    /// discovering the same upstream (the caller bounds the wait with its create timeout).
    pub(super) async fn choose(&self, cfg: &PoolConfig, req: &AcquireRequest) -> Result<Choice> {
        if let Some(p) = pinned(cfg, req)? {
            return Ok(Choice::Known(p));
        }
        let (url, transport) = req.url_and_transport();
        if let Some(d) = self.known(&url, transport) {
            return Ok(Choice::Learnt(d.pin()));
        }
        let upstream = (url, transport);
        let queue = self
            .discovering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(upstream.clone())
            .or_default()
            .clone();
        let turn = queue.lock_owned().await;
        // Another creation may have discovered it while this one waited.
        Ok(match self.known(&upstream.0, upstream.1) {
            Some(d) => Choice::Learnt(d.pin()),
            None => Choice::Discover(Discovery {
                upstream,
                _turn: turn,
            }),
        })
    }

    /// The era of `req`'s upstream as far as the pool knows it: pinned, or discovered by an
    /// earlier session. `None` under [`Protocol::Auto`] before the first session connected.
    pub(super) fn era_of(&self, cfg: &PoolConfig, req: &AcquireRequest) -> Option<Era> {
        match pinned(cfg, req).ok().flatten() {
            Some(Protocol::Stateless(_)) => Some(Era::Stateless),
            Some(Protocol::Handshake(_)) => Some(Era::Handshake),
            Some(_) | None => {
                let (url, transport) = req.url_and_transport();
                self.known(&url, transport).map(|d| d.era)
            }
        }
    }
}

impl super::SessionPool {
    /// The protocol era of `req`'s upstream as far as the pool knows it: pinned in the
    /// configuration or by [`PROTOCOL_ENV`](crate::PROTOCOL_ENV), or discovered by an earlier
    /// session of the same url and transport. `None` while it is still to be discovered.
    ///
    /// ```
    /// use mcp_harness::{Era, Protocol, SessionPool};
    /// use mcp_harness::pool::AcquireRequest;
    /// let pool = SessionPool::builder()
    ///     .protocol_for("http://127.0.0.1:4000/mcp", Protocol::Stateless("2026-07-28".into()))
    ///     .build();
    /// let req = AcquireRequest::http("http://127.0.0.1:4000/mcp");
    /// assert_eq!(pool.upstream_era(&req), Some(Era::Stateless));
    /// ```
    pub fn upstream_era(&self, req: &AcquireRequest) -> Option<Era> {
        self.inner.eras.era_of(&self.inner.cfg, req)
    }
}

impl super::SessionPool {
    /// The protocol version this pool discovered for `req`'s upstream (not one pinned in its
    /// configuration), for an owner's reply to a forwarded request.
    pub(super) fn discovered_version(&self, req: &AcquireRequest) -> Option<String> {
        let (url, transport) = req.url_and_transport();
        self.inner.eras.known(&url, transport).map(|d| d.version)
    }

    /// Learns `req`'s upstream's era from the version another worker discovered, unless this
    /// pool pins or knows it already.
    pub(super) fn learn_version(&self, req: &AcquireRequest, version: &str) {
        if matches!(pinned(&self.inner.cfg, req), Ok(Some(_)) | Err(_)) {
            return;
        }
        let (url, transport) = req.url_and_transport();
        self.inner.eras.learn(
            &url,
            transport,
            Discovered {
                era: Era::of(version),
                version: version.to_owned(),
            },
        );
    }
}
