//! Session affinity and ownership across workers: mappings from downstream session ids to pool
//! keys, ownership claims with heartbeats, and requests forwarded to the owning worker.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use super::state::PoolInner;
use super::store::{Claim, OwnershipStore};
use super::{AcquireRequest, PoolKey, SessionPool};
use crate::errors::{Error, Result};
use crate::process::Transport;
use crate::runtime;

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

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message {
    Forward {
        id: u64,
        from: String,
        session: String,
        method: String,
        params: Value,
        /// Where the caller meant it to run (never its headers): used when the owner has no
        /// mapping of its own.
        url: String,
        transport: String,
        gateway_id: String,
    },
    Reply {
        id: u64,
        ok: Option<Value>,
        error: Option<String>,
    },
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
    pending: Mutex<HashMap<u64, oneshot::Sender<std::result::Result<Value, String>>>>,
    next_id: AtomicU64,
    pub(crate) counters: AffinityCounters,
    degraded: AtomicBool,
    /// While the store is down, calls run locally at once instead of waiting on it each time.
    store_down_until: Mutex<Option<Instant>>,
    ready: watch::Sender<WorkerReadiness>,
}

/// What a worker has up, for [`SessionPool::worker_ready`].
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

/// Where a request for a session runs.
enum Route {
    Local,
    Forward(String),
}

impl SessionPool {
    /// Maps a downstream session id to the pool key of `req` (its url, gateway, transport and
    /// user) for the affinity TTL, locally and in the shared store, and claims the session for
    /// this worker if nobody owns it. Ids must match `^[A-Za-z0-9_-]{1,128}$`.
    pub async fn register_session_mapping(
        &self,
        downstream_session_id: &str,
        req: &AcquireRequest,
    ) -> Result<()> {
        validate_session_id(downstream_session_id)?;
        let req = req
            .clone()
            .header(super::identity::SESSION_ID_HEADER, downstream_session_id);
        let key = self.key_of(&req);
        self.inner
            .affinity
            .register(downstream_session_id, req, key)
            .await
    }

    /// Runs `method` for the downstream session named by `req`'s `x-mcp-session-id`: here when
    /// nobody or this worker owns it, else on the owning worker (forwarded through the store,
    /// waiting up to the forward timeout). A dead owner is taken over. Every decision is a
    /// `tracing` event (target `mcp_harness::affinity`) with worker, session prefix, method and
    /// decision: no-owner-local, owned-local, reclaimed-local, forwarding, published,
    /// received-forward, forward-completed, store-unavailable-local.
    pub async fn execute(&self, req: AcquireRequest, method: &str, params: Value) -> Result<Value> {
        let session = req
            .headers
            .get(super::identity::SESSION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Invalid {
                what: "request".into(),
                reason: "execute needs an x-mcp-session-id header naming the downstream session"
                    .into(),
            })?;
        validate_session_id(&session)?;
        let aff = &self.inner.affinity;
        match self.route(&session, method).await {
            Route::Local => self.execute_local(req, method, params).await,
            Route::Forward(owner) => {
                let w = aff.worker.as_ref().expect("forwarding needs a worker");
                aff.decision(&session, method, "forwarding");
                aff.counters
                    .forwarded_requests
                    .fetch_add(1, Ordering::Relaxed);
                let id = aff.next_id.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = oneshot::channel();
                aff.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, tx);
                let (url, transport) = req.url_and_transport();
                let msg = Message::Forward {
                    id,
                    from: w.id.clone(),
                    session: session.clone(),
                    method: method.to_owned(),
                    params,
                    url,
                    transport: transport.to_string(),
                    gateway_id: req.gateway_id.clone().unwrap_or_default(),
                };
                if let Err(e) = w
                    .store
                    .publish(
                        &owner,
                        serde_json::to_string(&msg).expect("a message serializes"),
                    )
                    .await
                {
                    aff.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    aff.counters
                        .forwarded_failures
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Error::Forwarded {
                        session: prefix(&session).into(),
                        owner,
                        method: method.into(),
                        reason: e.to_string(),
                    });
                }
                aff.decision(&session, method, "published");
                match runtime::timeout(w.forward_timeout, rx).await {
                    Ok(Ok(Ok(v))) => Ok(v),
                    Ok(Ok(Err(reason))) => {
                        aff.counters
                            .forwarded_failures
                            .fetch_add(1, Ordering::Relaxed);
                        Err(Error::Forwarded {
                            session: prefix(&session).into(),
                            owner,
                            method: method.into(),
                            reason,
                        })
                    }
                    Ok(Err(_)) | Err(_) => {
                        aff.pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        aff.counters
                            .forwarded_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        Err(Error::ForwardTimeout {
                            session: prefix(&session).into(),
                            owner,
                            method: method.into(),
                            after: w.forward_timeout,
                        })
                    }
                }
            }
        }
    }

    async fn route(&self, session: &str, method: &str) -> Route {
        let aff = &self.inner.affinity;
        let Some(w) = &aff.worker else {
            aff.decision(session, method, "no-owner-local");
            return Route::Local;
        };
        if aff.store_down() {
            aff.decision(session, method, "store-unavailable-local");
            return Route::Local;
        }
        let claim = w.store.claim(session, &w.id, w.ownership_ttl).await;
        let owner = match claim {
            Ok(Claim::Mine) => {
                aff.recovered();
                let newly = aff
                    .owned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(session.to_owned());
                aff.decision(
                    session,
                    method,
                    if newly {
                        "no-owner-local"
                    } else {
                        "owned-local"
                    },
                );
                return Route::Local;
            }
            Ok(Claim::Owner(o)) => o,
            Err(e) => {
                aff.degrade("claiming a session", &e);
                aff.decision(session, method, "store-unavailable-local");
                return Route::Local;
            }
        };
        match w.store.is_alive(&owner).await {
            Ok(true) => Route::Forward(owner),
            Ok(false) => match w
                .store
                .take_over(session, &owner, &w.id, w.ownership_ttl)
                .await
            {
                Ok(true) => {
                    aff.owned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(session.to_owned());
                    aff.decision(session, method, "reclaimed-local");
                    Route::Local
                }
                // Another worker won the race: it owns the session now.
                Ok(false) => match w.store.owner(session).await {
                    Ok(Some(o)) if o != w.id => Route::Forward(o),
                    _ => {
                        aff.decision(session, method, "owned-local");
                        Route::Local
                    }
                },
                Err(e) => {
                    aff.degrade("taking over a session", &e);
                    aff.decision(session, method, "store-unavailable-local");
                    Route::Local
                }
            },
            Err(e) => {
                aff.degrade("checking an owner", &e);
                aff.decision(session, method, "store-unavailable-local");
                Route::Local
            }
        }
    }

    /// Runs a method on a pooled session of this worker; forwarded requests end here (they are
    /// never forwarded again).
    pub(crate) async fn execute_local(
        &self,
        req: AcquireRequest,
        method: &str,
        params: Value,
    ) -> Result<Value> {
        let method = method.to_owned();
        self.with_session(req, |s| async move {
            match method.as_str() {
                "tools/call" => {
                    let name = params
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let args = params.get("arguments").cloned().unwrap_or(Value::Null);
                    let r = s.call_tool(&name, args).await?;
                    Ok(serde_json::to_value(r).unwrap_or(Value::Null))
                }
                "ping" => s.ping().await.map(|()| serde_json::json!({})),
                other => s.request(other, params).await,
            }
        })
        .await
    }

    /// Waits, at most `within`, until this worker takes part in ownership: it listens for
    /// forwarded requests (its inbox subscription is up) and its heartbeat is in the store (so
    /// other workers see it alive and forward to it rather than take its sessions over). False
    /// if that did not happen in time (or this pool is not a worker).
    pub async fn worker_ready(&self, within: Duration) -> bool {
        let mut rx = self.inner.affinity.ready.subscribe();
        runtime::timeout(within, rx.wait_for(|r| r.inbox && r.heartbeat))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether another worker is recorded as the owner of `session` (for tests and tools).
    pub async fn session_owner(&self, session: &str) -> Option<String> {
        let w = self.inner.affinity.worker.as_ref()?;
        w.store.owner(session).await.ok().flatten()
    }
}

/// Starts the heartbeat and the inbox listener of a worker pool.
pub(crate) fn start_worker(pool: Weak<PoolInner>) {
    let Some(p) = pool.upgrade() else { return };
    let Some(w) = p.affinity.worker.clone() else {
        return;
    };
    drop(p);
    let hb_pool = pool.clone();
    let hb = w.clone();
    runtime::spawn(async move {
        loop {
            let Some(p) = hb_pool.upgrade() else { return };
            if p.closed() {
                return;
            }
            let aff = p.affinity.clone();
            drop(p);
            match hb.store.heartbeat(&hb.id, hb.heartbeat_interval * 3).await {
                Ok(()) => {
                    aff.recovered();
                    aff.ready
                        .send_if_modified(|r| !std::mem::replace(&mut r.heartbeat, true));
                    let owned: Vec<String> = aff
                        .owned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .cloned()
                        .collect();
                    for s in owned {
                        match hb.store.renew(&s, &hb.id, hb.ownership_ttl).await {
                            Ok(true) => {}
                            Ok(false) => {
                                aff.owned
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&s);
                            }
                            Err(e) => aff.degrade("renewing ownership", &e),
                        }
                    }
                }
                Err(e) => {
                    aff.ready
                        .send_if_modified(|r| std::mem::replace(&mut r.heartbeat, false));
                    aff.degrade("the heartbeat", &e);
                }
            }
            runtime::sleep(hb.heartbeat_interval).await;
        }
    });
    runtime::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(p) = pool.upgrade() else { return };
            if p.closed() {
                return;
            }
            let aff = p.affinity.clone();
            drop(p);
            match w.store.subscribe(&w.id).await {
                Ok(mut inbox) => {
                    backoff = Duration::from_millis(50);
                    aff.ready.send_modify(|r| r.inbox = true);
                    while let Some(raw) = inbox.next().await {
                        let Some(p) = pool.upgrade() else { return };
                        handle_message(SessionPool { inner: p }, &w, raw);
                    }
                    aff.ready.send_modify(|r| r.inbox = false);
                    aff.degrade(
                        "listening for forwarded requests",
                        &"the subscription ended",
                    );
                }
                Err(e) => aff.degrade("subscribing to the inbox", &e),
            }
            runtime::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

fn handle_message(pool: SessionPool, w: &WorkerConfig, raw: String) {
    let Ok(msg) = serde_json::from_str::<Message>(&raw) else {
        tracing::debug!("ignoring a malformed message in the inbox");
        return;
    };
    match msg {
        Message::Reply { id, ok, error } => {
            let tx = pool
                .inner
                .affinity
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(tx) = tx {
                let _ = tx.send(match (ok, error) {
                    (_, Some(e)) => Err(e),
                    (Some(v), None) => Ok(v),
                    (None, None) => Ok(Value::Null),
                });
            }
        }
        Message::Forward {
            id,
            from,
            session,
            method,
            params,
            url,
            transport,
            gateway_id,
        } => {
            let store = w.store.clone();
            // The owner handles forwards concurrently (the reference took them one at a time).
            runtime::spawn(async move {
                let aff = pool.inner.affinity.clone();
                aff.decision(&session, &method, "received-forward");
                let target = (
                    url,
                    transport.parse().unwrap_or(Transport::StreamableHttp),
                    gateway_id,
                );
                let req = pool.forwarded_request(&session, target).await;
                let result = pool.execute_local(req, &method, params).await;
                let reply = match result {
                    Ok(v) => Message::Reply {
                        id,
                        ok: Some(v),
                        error: None,
                    },
                    Err(e) => Message::Reply {
                        id,
                        ok: None,
                        error: Some(e.to_string()),
                    },
                };
                aff.decision(&session, &method, "forward-completed");
                let _ = store
                    .publish(
                        &from,
                        serde_json::to_string(&reply).expect("a message serializes"),
                    )
                    .await;
            });
        }
    }
}

impl SessionPool {
    /// The acquire request to run a forwarded request with: the local mapping's (which has the
    /// upstream credentials), else one rebuilt from where the caller meant it to run.
    async fn forwarded_request(
        &self,
        session: &str,
        (url, transport, gateway_id): (String, Transport, String),
    ) -> AcquireRequest {
        match self.inner.affinity.key_for_session(session).await {
            Some((_, Some(req))) => req,
            Some((key, None)) => AcquireRequest::url(key.url, key.transport)
                .gateway(key.gateway_id)
                .header(super::identity::SESSION_ID_HEADER, session),
            None => {
                let mut req = AcquireRequest::url(url, transport)
                    .header(super::identity::SESSION_ID_HEADER, session);
                if !gateway_id.is_empty() {
                    req = req.gateway(gateway_id);
                }
                req
            }
        }
    }
}
