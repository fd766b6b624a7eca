//! Acquire and release: an idle session of the key (validated first), a new one while the key
//! has room, or the next one released; and a released session back to the longest waiter or
//! the idle queue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::oneshot;

use super::breaker::Permit;
use super::eras::Choice;
use super::identity::{self, SESSION_ID_HEADER};
use super::lifecycle::close_in_background;
use super::metrics::bump;
use super::state::{Entry, Grant, KeyState, PoolInner, SlotPermit, State};
use super::upstream::session_builder;
use super::{AcquireRequest, PoolKey, PooledSession, SessionPool, affinity};
use crate::errors::{Error, Result};
use crate::runtime;
use crate::session::{Era, Protocol, Session};

impl PoolInner {
    pub(super) fn release(self: &Arc<Self>, key: &Arc<PoolKey>, mut entry: Entry, discard: bool) {
        let mut to_close = None;
        {
            let mut st = self.lock();
            let generation = self.generation.load(Ordering::Acquire);
            let Some(ks) = st.keys.get_mut(key) else {
                to_close = Some(entry.session);
                drop(st);
                close_in_background(to_close, self.cfg.cleanup_timeout);
                return;
            };
            ks.busy = ks.busy.saturating_sub(1);
            let now = Instant::now();
            ks.last_activity = now;
            let expired = now.duration_since(entry.created) > self.cfg.session_ttl;
            let dead = entry.session.is_closed();
            if self.closed() || discard || dead || expired || entry.generation < generation {
                if discard || dead || expired {
                    bump(&self.counters.evictions);
                }
                st.total_live = st.total_live.saturating_sub(1);
                to_close = Some(entry.session);
                self.offer_slot(&mut st, key);
            } else {
                entry.last_used = now;
                // Unlike the reference, a released session goes to the longest waiter at once.
                let mut entry = Some(entry);
                while let Some((_, tx)) = ks.waiters.pop_front() {
                    ks.busy += 1;
                    let ps = PooledSession {
                        pool: self.clone(),
                        key: key.clone(),
                        entry: entry.take(),
                        discard: false,
                    };
                    match tx.send(Grant::Session(ps)) {
                        Ok(()) => break,
                        Err(grant) => {
                            ks.busy -= 1;
                            if let Grant::Session(mut ps) = grant {
                                entry = ps.entry.take();
                            }
                        }
                    }
                }
                if let Some(e) = entry {
                    ks.idle.push_back(e);
                }
            }
        }
        close_in_background(to_close, self.cfg.cleanup_timeout);
    }
}

/// Errors after which a pooled session is not reused: its transport or protocol is broken.
fn breaks_session(e: &Error) -> bool {
    matches!(
        e,
        Error::Closed { .. } | Error::Protocol { .. } | Error::Unauthorized { .. }
    )
}

/// Why a creation failed: the configuration (no upstream involved) or the upstream.
enum Failed {
    Config(Error),
    Connect(Error),
}

enum Next {
    Reuse(PooledSession),
    Create(SlotPermit),
    Wait(oneshot::Receiver<Grant>, u64),
}

impl SessionPool {
    /// Acquires a session for `req`: an idle one of its key (validated first), a new one while
    /// the key is under `max_sessions_per_key`, or the next one released (first come, first
    /// served) within `acquire_timeout`.
    ///
    /// Fails fast with [`Error::PoolClosed`] or [`Error::CircuitOpen`]; with
    /// [`Error::AcquireTimeout`] past the acquire timeout; with [`Error::CreateTimeout`] when
    /// creating takes longer than the create timeout; with [`Error::Capacity`] past a soft cap.
    pub async fn acquire(&self, req: AcquireRequest) -> Result<PooledSession> {
        let pool = &self.inner;
        if pool.closed() {
            return Err(Error::PoolClosed);
        }
        let (key, exclusive) = self.resolve_key(&req).await?;
        let key = Arc::new(key);
        self.evict_if_due();
        let started = Instant::now();
        let deadline = started + pool.cfg.acquire_timeout;
        loop {
            let next = {
                let mut st = pool.lock();
                if pool.closed() {
                    return Err(Error::PoolClosed);
                }
                if !st.keys.contains_key(&key) {
                    if let Some(cap) = pool.cfg.max_pool_keys
                        && st.keys.len() >= cap
                    {
                        return Err(Error::Capacity {
                            what: "pool keys".into(),
                            limit: cap,
                        });
                    }
                    // Exclusive mode: a downstream session's upstream session is never shared.
                    let max = if exclusive {
                        1
                    } else {
                        pool.cfg.max_sessions_per_key
                    };
                    st.keys.insert(
                        (*key).clone(),
                        KeyState {
                            idle: VecDeque::new(),
                            busy: 0,
                            creating: 0,
                            waiters: VecDeque::new(),
                            last_activity: Instant::now(),
                            max,
                            era: None,
                        },
                    );
                }
                let State {
                    keys,
                    breakers,
                    next_waiter,
                    total_live,
                } = &mut *st;
                let ks = keys.get_mut(&key).expect("inserted above");
                ks.last_activity = started;
                let needs_create = ks.idle.is_empty() && ks.live() < ks.max;
                let permit = breakers.check(&key.url, needs_create)?;
                if let Some(entry) = ks.idle.pop_front() {
                    ks.busy += 1;
                    Next::Reuse(PooledSession {
                        pool: pool.clone(),
                        key: key.clone(),
                        entry: Some(entry),
                        discard: false,
                    })
                } else if ks.live() < ks.max {
                    if let Some(cap) = pool.cfg.max_total_sessions
                        && *total_live >= cap
                    {
                        if permit == Permit::Trial {
                            breakers.trial_abandoned(&key.url);
                        }
                        return Err(Error::Capacity {
                            what: "sessions".into(),
                            limit: cap,
                        });
                    }
                    ks.creating += 1;
                    *total_live += 1;
                    Next::Create(SlotPermit {
                        pool: pool.clone(),
                        key: key.clone(),
                        trial: permit == Permit::Trial,
                        armed: true,
                    })
                } else {
                    let (tx, rx) = oneshot::channel();
                    *next_waiter += 1;
                    let id = *next_waiter;
                    ks.waiters.push_back((id, tx));
                    Next::Wait(rx, id)
                }
            };
            match next {
                Next::Reuse(ps) => match self.validate(&ps).await {
                    Ok(()) => {
                        bump(&pool.counters.hits);
                        return Ok(ps);
                    }
                    Err(reason) => {
                        tracing::debug!(key = %key, %reason, "discarding an invalid pooled session");
                        ps.discard();
                    }
                },
                Next::Create(slot) => return self.create(&req, slot).await,
                Next::Wait(rx, id) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match runtime::timeout(left, rx).await {
                        Ok(Ok(Grant::Session(ps))) => match self.validate(&ps).await {
                            Ok(()) => {
                                bump(&pool.counters.hits);
                                return Ok(ps);
                            }
                            Err(reason) => {
                                tracing::debug!(key = %key, %reason, "discarding an invalid pooled session");
                                ps.discard();
                            }
                        },
                        Ok(Ok(Grant::Slot(mut slot))) => {
                            let permit = pool.lock().breakers.check(&key.url, true)?;
                            slot.trial = permit == Permit::Trial;
                            return self.create(&req, slot).await;
                        }
                        Ok(Err(_)) => return Err(Error::PoolClosed),
                        Err(_) => {
                            let mut st = pool.lock();
                            if let Some(ks) = st.keys.get_mut(&key) {
                                ks.waiters.retain(|(w, _)| *w != id);
                            }
                            let max = st
                                .keys
                                .get(&key)
                                .map_or(pool.cfg.max_sessions_per_key, |k| k.max);
                            return Err(Error::AcquireTimeout {
                                key: key.to_string(),
                                after: pool.cfg.acquire_timeout,
                                max,
                            });
                        }
                    }
                }
            }
        }
    }

    /// The key of `req`: its affinity mapping when it names a mapped downstream session, else
    /// computed from it (the identity hash once); and whether the key is exclusive.
    async fn resolve_key(&self, req: &AcquireRequest) -> Result<(PoolKey, bool)> {
        let rules = &self.inner.cfg.rules;
        let session = if rules.affinity {
            req.headers
                .get(SESSION_ID_HEADER)
                .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
        } else {
            None
        };
        let Some(session) = session else {
            return Ok((self.key_for(req), false));
        };
        affinity::validate_session_id(&session)?;
        let exclusive = self.inner.cfg.exclusive;
        match self.inner.affinity.key_for_session(&session).await {
            Some((key, _)) => Ok((key, exclusive)),
            None => Ok((self.key_for(req), exclusive)),
        }
    }

    /// The key `req` maps to (computes the identity hash once).
    fn key_for(&self, req: &AcquireRequest) -> PoolKey {
        let (identity_hash, anonymous) = self.inner.cfg.rules.identity_hash(&req.headers);
        if anonymous {
            bump(&self.inner.counters.anonymous_identity_count);
        }
        let (url, transport) = req.url_and_transport();
        PoolKey {
            user_hash: identity::user_hash(req.user.as_deref()),
            url,
            identity_hash,
            transport,
            gateway_id: req.gateway_id.clone().unwrap_or_default(),
        }
    }

    /// The pool key `req` would use (for tests and logs).
    pub fn key_of(&self, req: &AcquireRequest) -> PoolKey {
        let (identity_hash, _) = self.inner.cfg.rules.identity_hash(&req.headers);
        let (url, transport) = req.url_and_transport();
        PoolKey {
            user_hash: identity::user_hash(req.user.as_deref()),
            url,
            identity_hash,
            transport,
            gateway_id: req.gateway_id.clone().unwrap_or_default(),
        }
    }

    async fn create(&self, req: &AcquireRequest, mut slot: SlotPermit) -> Result<PooledSession> {
        let pool = &self.inner;
        let cfg = &pool.cfg;
        let url = slot.key.url.clone();
        // The bound covers waiting for another creation's discovery of the same upstream.
        let connect = async {
            let mut refused_learnt = false;
            loop {
                let choice = pool.eras.choose(cfg, req).await.map_err(Failed::Config)?;
                let (protocol, discovery, learnt) = match choice {
                    Choice::Known(p) => (p, None, false),
                    Choice::Learnt(p) => (p, None, true),
                    Choice::Discover(d) => (Protocol::Auto, Some(d), false),
                };
                let builder =
                    session_builder(cfg, req, &slot.key, protocol).map_err(Failed::Config)?;
                return match builder.connect().await {
                    Ok(session) => {
                        if let Some(d) = discovery {
                            bump(&pool.counters.era_discoveries);
                            tracing::debug!(
                                upstream = %identity::safe_url(&slot.key.url),
                                era = %session.era(),
                                version = %session.protocol_version(),
                                "discovered the protocol era of an upstream"
                            );
                            pool.eras
                                .record(d, session.era(), session.protocol_version());
                        }
                        Ok(session)
                    }
                    Err(e) => {
                        if learnt
                            && !refused_learnt
                            && matches!(e, Error::UnsupportedVersion { .. })
                        {
                            // The upstream no longer speaks what it spoke (upgraded, or replaced
                            // at the same address): learn its era again, once, in this creation.
                            tracing::info!(
                                upstream = %identity::safe_url(&slot.key.url),
                                "the upstream refused the protocol version it spoke before: \
                                 discovering its era again"
                            );
                            let (u, t) = req.url_and_transport();
                            pool.eras.forget(&u, t);
                            refused_learnt = true;
                            continue;
                        }
                        Err(Failed::Connect(e))
                    }
                };
            }
        };
        let outcome = runtime::timeout(cfg.create_timeout, connect).await;
        match outcome {
            Ok(Ok(session)) => {
                let mut st = pool.lock();
                st.breakers.success(&url);
                if let Some(ks) = st.keys.get_mut(&slot.key) {
                    ks.creating = ks.creating.saturating_sub(1);
                    ks.busy += 1;
                    ks.era = Some(session.era());
                }
                slot.armed = false;
                drop(st);
                bump(&pool.counters.misses);
                bump(match session.era() {
                    Era::Handshake => &pool.counters.handshake_misses,
                    Era::Stateless => &pool.counters.stateless_misses,
                });
                if let Some(refresh) = &pool.refresh {
                    refresh.watch(slot.key.gateway_id.clone(), &session);
                }
                let now = Instant::now();
                Ok(PooledSession {
                    pool: pool.clone(),
                    key: slot.key.clone(),
                    entry: Some(Entry {
                        session,
                        created: now,
                        last_used: now,
                        generation: pool.generation.load(Ordering::Acquire),
                    }),
                    discard: false,
                })
            }
            // A configuration error is not the upstream's failure: the slot is just freed.
            Ok(Err(Failed::Config(e))) => Err(e),
            Ok(Err(Failed::Connect(e))) => {
                self.creation_failed(&mut slot);
                drop(slot);
                Err(e)
            }
            Err(_) => {
                self.creation_failed(&mut slot);
                drop(slot);
                Err(Error::CreateTimeout {
                    url: identity::safe_url(&url),
                    after: cfg.create_timeout,
                })
            }
        }
    }

    fn creation_failed(&self, slot: &mut SlotPermit) {
        let pool = &self.inner;
        let tripped = pool.lock().breakers.failure(
            &slot.key.url,
            pool.cfg.circuit_breaker_threshold,
            pool.cfg.circuit_breaker_reset,
        );
        // The failure is recorded: dropping the permit only frees the slot.
        slot.trial = false;
        if tripped {
            bump(&pool.counters.circuit_breaker_trips);
            tracing::warn!(url = %identity::safe_url(&slot.key.url), "circuit breaker opened");
        }
    }

    /// Whether an idle session may be reused: open, within its TTL, and healthy if it was idle
    /// long enough to need a check.
    async fn validate(&self, ps: &PooledSession) -> std::result::Result<(), String> {
        let cfg = &self.inner.cfg;
        let entry = ps.entry();
        if entry.session.is_closed() {
            return Err("the session is closed".into());
        }
        let now = Instant::now();
        if now.duration_since(entry.created) > cfg.session_ttl {
            return Err("the session outlived its TTL".into());
        }
        if now.duration_since(entry.last_used) < cfg.health_check_interval {
            return Ok(());
        }
        let healthy = self.health_check(&entry.session).await;
        if let Err(reason) = &healthy {
            bump(&self.inner.counters.health_check_failures);
            tracing::debug!(%reason, "health check failed");
        }
        healthy
    }

    /// Acquires, runs `body`, and releases; a body that fails with a transport or protocol
    /// error discards the session (a tool result with `isError: true` is an `Ok` and does not).
    pub async fn with_session<T, F, Fut>(&self, req: AcquireRequest, body: F) -> Result<T>
    where
        F: FnOnce(Session) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let ps = self.acquire(req).await?;
        let result = body((*ps).clone()).await;
        if let Err(e) = &result
            && breaks_session(e)
        {
            ps.discard();
        }
        result
    }

    /// Calls a tool through a pooled session (see [`with_session`](Self::with_session)).
    pub async fn call_tool(
        &self,
        req: AcquireRequest,
        name: &str,
        arguments: serde_json::Value,
    ) -> Result<rmcp::model::CallToolResult> {
        self.with_session(req, |s| async move { s.call_tool(name, arguments).await })
            .await
    }

    /// How many acquires are waiting for a session of `req`'s key.
    pub fn waiting(&self, req: &AcquireRequest) -> usize {
        let key = self.key_of(req);
        self.inner
            .lock()
            .keys
            .get(&key)
            .map_or(0, |ks| ks.waiters.len())
    }
}
