//! Session affinity and ownership across workers: mappings from downstream session ids to pool
//! keys, ownership claims with heartbeats, and requests forwarded to the owning worker.
//!
//! This file holds the worker configuration and each pool's affinity state (mappings, claims,
//! counters, store health); `routing` decides where a request runs, and `forward` carries
//! requests between workers over the store.

mod forward;
mod routing;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use super::store::{Claim, OwnershipStore};
use super::{AcquireRequest, PoolKey};
use crate::errors::{Error, Result};
use crate::transport::Transport;

pub(crate) use forward::start_worker;

/// How a worker takes part in ownership across workers.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use mcp_harness::pool::{MemoryStore, WorkerConfig};
/// let worker = WorkerConfig::new("worker-a", Arc::new(MemoryStore::default()))
///     .forward_timeout(Duration::from_millis(500))
///     .heartbeat_interval(Duration::from_millis(100));
/// # drop(worker);
/// ```
#[derive(Clone)]
pub struct WorkerConfig {
    pub(crate) id: String,
    pub(crate) store: Arc<dyn OwnershipStore>,
    pub(crate) ownership_ttl: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) forward_timeout: Duration,
    pub(crate) affinity_ttl: Duration,
}

impl fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("id", &self.id)
            .field("ownership_ttl", &self.ownership_ttl)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("forward_timeout", &self.forward_timeout)
            .field("affinity_ttl", &self.affinity_ttl)
            .finish_non_exhaustive()
    }
}

impl WorkerConfig {
    /// A worker named `id` (unique among the workers sharing `store`).
    pub fn new(id: impl Into<String>, store: Arc<dyn OwnershipStore>) -> Self {
        WorkerConfig {
            id: id.into(),
            store,
            ownership_ttl: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            forward_timeout: Duration::from_secs(10),
            affinity_ttl: Duration::from_secs(300),
        }
    }

    /// How long an ownership claim lasts without renewal (default 30 s).
    pub fn ownership_ttl(mut self, d: Duration) -> Self {
        self.ownership_ttl = d;
        self
    }

    /// How often the worker proves it is alive and renews its claims (default 5 s); it counts
    /// as dead three intervals after its last heartbeat.
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = d;
        self
    }

    /// How long a forwarded request waits for the owner's reply (default 10 s).
    pub fn forward_timeout(mut self, d: Duration) -> Self {
        self.forward_timeout = d;
        self
    }

    /// How long a session mapping lives (default 300 s).
    pub fn affinity_ttl(mut self, d: Duration) -> Self {
        self.affinity_ttl = d;
        self
    }
}

/// Refuses session ids that are not `^[A-Za-z0-9_-]{1,128}$`.
pub(crate) fn validate_session_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "downstream session id".into(),
            reason: format!(
                "it must match ^[A-Za-z0-9_-]{{1,128}}$ (got {} bytes{})",
                id.len(),
                if id.is_empty() {
                    ""
                } else {
                    " with other characters"
                }
            ),
        })
    }
}

fn prefix(session: &str) -> &str {
    &session[..session.len().min(8)]
}

/// An owner's answer to a forwarded request: the result, and the protocol version of the
/// upstream when the owner discovered it (so that the caller learns the upstream's era).
pub(crate) struct Reply {
    result: std::result::Result<Value, String>,
    version: Option<String>,
}

/// What the shared store keeps about a mapping: routing facts, never a header value.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SharedMapping {
    url: String,
    transport: String,
    gateway_id: String,
    user_hash: String,
    identity_hash: String,
}

struct LocalMapping {
    req: AcquireRequest,
    key: PoolKey,
    expires: Instant,
}

#[derive(Default)]
pub(crate) struct AffinityCounters {
    pub(crate) local_hits: AtomicU64,
    pub(crate) redis_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) forwarded_requests: AtomicU64,
    pub(crate) forwarded_failures: AtomicU64,
    pub(crate) forwarded_timeouts: AtomicU64,
}

/// The affinity and ownership state of one pool.
pub(crate) struct Affinity {
    pub(crate) worker: Option<WorkerConfig>,
    pub(crate) ttl: Duration,
    mappings: Mutex<HashMap<String, LocalMapping>>,
    owned: Mutex<HashSet<String>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    pub(crate) counters: AffinityCounters,
    degraded: AtomicBool,
    /// While the store is down, calls run locally at once instead of waiting on it each time.
    store_down_until: Mutex<Option<Instant>>,
    ready: watch::Sender<WorkerReadiness>,
}

/// What a worker has up, for [`SessionPool::worker_ready`](super::SessionPool::worker_ready).
#[derive(Clone, Copy, Default)]
struct WorkerReadiness {
    /// Its inbox subscription is up: it hears forwarded requests.
    inbox: bool,
    /// Its last heartbeat reached the store: other workers see it alive.
    heartbeat: bool,
}

impl Affinity {
    pub(crate) fn new(worker: Option<WorkerConfig>, ttl: Duration) -> Arc<Self> {
        Arc::new(Affinity {
            ttl: worker.as_ref().map_or(ttl, |w| w.affinity_ttl),
            worker,
            mappings: Mutex::new(HashMap::new()),
            owned: Mutex::new(HashSet::new()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            counters: AffinityCounters::default(),
            degraded: AtomicBool::new(false),
            store_down_until: Mutex::new(None),
            ready: watch::channel(WorkerReadiness::default()).0,
        })
    }

    fn me(&self) -> &str {
        self.worker.as_ref().map_or("local", |w| w.id.as_str())
    }

    /// A store failure: run locally, and say so once (not once per call).
    fn degrade(&self, what: &str, e: &dyn std::fmt::Display) {
        let retry = self
            .worker
            .as_ref()
            .map_or(Duration::from_secs(1), |w| w.heartbeat_interval);
        *self
            .store_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + retry);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(worker = %self.me(), error = %e, "ownership store unavailable during {what}: affinity degrades to local execution until it is back");
        }
    }

    fn recovered(&self) {
        *self
            .store_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        if self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!(worker = %self.me(), "ownership store is back: ownership resumes");
        }
    }

    /// True while a recent store failure says not to wait on the store.
    fn store_down(&self) -> bool {
        matches!(*self.store_down_until.lock().unwrap_or_else(|p| p.into_inner()), Some(t) if t > Instant::now())
    }

    fn decision(&self, session: &str, method: &str, decision: &str) {
        tracing::info!(target: "mcp_harness::affinity", worker = %self.me(), session = %prefix(session), method, decision, "routing decision");
    }

    /// The key a session id maps to: the local mapping, else the shared store's.
    pub(crate) async fn key_for_session(
        &self,
        session: &str,
    ) -> Option<(PoolKey, Option<AcquireRequest>)> {
        {
            let mut maps = self.mappings.lock().unwrap_or_else(|p| p.into_inner());
            match maps.get(session) {
                Some(m) if m.expires > Instant::now() => {
                    self.counters.local_hits.fetch_add(1, Ordering::Relaxed);
                    return Some((m.key.clone(), Some(m.req.clone())));
                }
                Some(_) => {
                    maps.remove(session);
                }
                None => {}
            }
        }
        if let Some(w) = self.worker.as_ref().filter(|_| !self.store_down()) {
            match w.store.get_mapping(session).await {
                Ok(Some(raw)) => {
                    self.recovered();
                    if let Ok(m) = serde_json::from_str::<SharedMapping>(&raw)
                        && let Ok(transport) = m.transport.parse::<Transport>()
                    {
                        self.counters.redis_hits.fetch_add(1, Ordering::Relaxed);
                        let key = PoolKey {
                            user_hash: m.user_hash,
                            url: m.url,
                            identity_hash: m.identity_hash,
                            transport,
                            gateway_id: m.gateway_id,
                        };
                        return Some((key, None));
                    }
                }
                Ok(None) => self.recovered(),
                Err(e) => self.degrade("a mapping lookup", &e),
            }
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    pub(crate) async fn register(
        &self,
        session: &str,
        req: AcquireRequest,
        key: PoolKey,
        claim: bool,
    ) -> Result<()> {
        validate_session_id(session)?;
        let shared = SharedMapping {
            url: key.url.clone(),
            transport: key.transport.to_string(),
            gateway_id: key.gateway_id.clone(),
            user_hash: key.user_hash.clone(),
            identity_hash: key.identity_hash.clone(),
        };
        self.mappings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                session.to_owned(),
                LocalMapping {
                    req,
                    key,
                    expires: Instant::now() + self.ttl,
                },
            );
        if let Some(w) = &self.worker {
            let raw = serde_json::to_string(&shared).expect("a mapping serializes");
            match w.store.put_mapping(session, &raw, self.ttl).await {
                Ok(()) => self.recovered(),
                Err(e) => self.degrade("registering a mapping", &e),
            }
            if !claim {
                return Ok(());
            }
            match w.store.claim(session, &w.id, w.ownership_ttl).await {
                Ok(Claim::Mine) => {
                    self.owned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(session.to_owned());
                }
                Ok(Claim::Owner(_)) => {}
                Err(e) => self.degrade("claiming a session", &e),
            }
        }
        Ok(())
    }

    /// Forgets the mappings that point at evicted keys.
    pub(crate) fn drop_mappings_for(&self, evicted: &[PoolKey]) {
        if evicted.is_empty() {
            return;
        }
        self.mappings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, m| !evicted.contains(&m.key));
    }
}
