//! The pool's metrics: a typed, serializable snapshot with the reference pool's names, the
//! counters behind it, and its assembly ([`SessionPool::metrics`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::SessionPool;
pub use super::breaker::CircuitBreakerMetrics;
use crate::session::Era;

/// Monotonic counters, updated without the pool lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) health_check_failures: AtomicU64,
    pub(crate) circuit_breaker_trips: AtomicU64,
    pub(crate) pool_keys_evicted: AtomicU64,
    pub(crate) sessions_reaped: AtomicU64,
    pub(crate) anonymous_identity_count: AtomicU64,
    pub(crate) era_discoveries: AtomicU64,
    pub(crate) handshake_misses: AtomicU64,
    pub(crate) stateless_misses: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Per-key occupancy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyMetrics {
    /// Idle sessions ready for reuse.
    pub available: usize,
    /// Sessions handed out (busy) or being created.
    pub active: usize,
    /// The per-key limit.
    pub max: usize,
    /// The protocol era of the key's upstream (`handshake` or `stateless`), `None` until its
    /// first session connected.
    pub era: Option<String>,
}

/// Keys and live sessions of one protocol era ([`PoolMetrics::eras`]).
///
/// ```
/// let pool = mcp_harness::SessionPool::builder().build();
/// let m = pool.metrics();
/// let stateless = &m.eras["stateless"];
/// assert_eq!((stateless.keys, stateless.sessions, m.eras["handshake"].keys), (0, 0, 0));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EraMetrics {
    /// Pool keys whose upstream speaks this era.
    pub keys: usize,
    /// Their live sessions (idle, busy and being created).
    pub sessions: usize,
    /// Sessions created for them.
    pub misses: u64,
}

/// Affinity counters (several workers); zero until affinity is in use.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AffinityMetrics {
    /// Downstream sessions found in the local mapping.
    pub local_hits: u64,
    /// Downstream sessions found in the shared store.
    pub redis_hits: u64,
    /// Downstream sessions found nowhere.
    pub misses: u64,
    /// `(local_hits + redis_hits) / all`, 0 when none.
    pub hit_rate: f64,
    /// Requests forwarded to the owning worker.
    pub forwarded_requests: u64,
    /// Forwards that failed.
    pub forwarded_failures: u64,
    /// Forwards that timed out.
    pub forwarded_timeouts: u64,
}

/// A snapshot of the pool's metrics. Keys and urls carry hashes only, never a credential.
///
/// ```no_run
/// # let pool = mcp_harness::SessionPool::builder().build();
/// let m = pool.metrics();
/// println!("{}", serde_json::to_string_pretty(&m).unwrap());
/// assert!(m.hit_rate >= 0.0 && m.hit_rate <= 1.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolMetrics {
    /// Acquires served by an idle session.
    pub hits: u64,
    /// Acquires that created a session.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 when none.
    pub hit_rate: f64,
    /// Sessions closed because they were invalid (closed, expired, unhealthy, discarded).
    pub evictions: u64,
    /// Health checks that failed.
    pub health_check_failures: u64,
    /// Times a circuit opened.
    pub circuit_breaker_trips: u64,
    /// Idle pool keys removed.
    pub pool_keys_evicted: u64,
    /// Idle or expired sessions closed by eviction.
    pub sessions_reaped: u64,
    /// Acquires with no identity.
    pub anonymous_identity_count: u64,
    /// Pool keys currently present.
    pub pool_key_count: usize,
    /// Live sessions (idle, busy and being created).
    pub total_active_sessions: usize,
    /// Affinity counters.
    pub session_affinity: AffinityMetrics,
    /// Per pool key (its display form: hashes, url without query).
    pub pools: BTreeMap<String, KeyMetrics>,
    /// Upstreams (url and transport) whose era the pool discovered: once each, again only
    /// after one refused the version learnt. Pinned upstreams are not discovered.
    pub era_discoveries: u64,
    /// Per protocol era, always both: `handshake` and `stateless`. A key whose first session
    /// is still being created is in neither.
    pub eras: BTreeMap<String, EraMetrics>,
    /// Per url.
    pub circuit_breakers: BTreeMap<String, CircuitBreakerMetrics>,
    /// list_changed handling.
    pub notifications: super::NotificationMetrics,
}

impl Counters {
    pub(crate) fn load(&self) -> [u64; 8] {
        [
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.evictions.load(Ordering::Relaxed),
            self.health_check_failures.load(Ordering::Relaxed),
            self.circuit_breaker_trips.load(Ordering::Relaxed),
            self.pool_keys_evicted.load(Ordering::Relaxed),
            self.sessions_reaped.load(Ordering::Relaxed),
            self.anonymous_identity_count.load(Ordering::Relaxed),
        ]
    }
}

impl SessionPool {
    /// A snapshot of the metrics.
    pub fn metrics(&self) -> PoolMetrics {
        let [
            hits,
            misses,
            evictions,
            health_check_failures,
            circuit_breaker_trips,
            pool_keys_evicted,
            sessions_reaped,
            anonymous_identity_count,
        ] = self.inner.counters.load();
        let st = self.inner.lock();
        let mut eras = BTreeMap::new();
        for (era, misses) in [
            (Era::Handshake, &self.inner.counters.handshake_misses),
            (Era::Stateless, &self.inner.counters.stateless_misses),
        ] {
            let mut m = EraMetrics {
                misses: misses.load(Ordering::Relaxed),
                ..EraMetrics::default()
            };
            for ks in st.keys.values().filter(|ks| ks.era == Some(era)) {
                m.keys += 1;
                m.sessions += ks.live();
            }
            eras.insert(era.to_string(), m);
        }
        let pools = st
            .keys
            .iter()
            .map(|(k, ks)| {
                (
                    k.to_string(),
                    KeyMetrics {
                        available: ks.idle.len(),
                        active: ks.busy + ks.creating,
                        max: ks.max,
                        era: ks.era.map(|e| e.to_string()),
                    },
                )
            })
            .collect();
        let a = &self.inner.affinity.counters;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (local_hits, redis_hits, affinity_misses) =
            (load(&a.local_hits), load(&a.redis_hits), load(&a.misses));
        let lookups = local_hits + redis_hits + affinity_misses;
        let session_affinity = AffinityMetrics {
            local_hits,
            redis_hits,
            misses: affinity_misses,
            hit_rate: if lookups == 0 {
                0.0
            } else {
                (local_hits + redis_hits) as f64 / lookups as f64
            },
            forwarded_requests: load(&a.forwarded_requests),
            forwarded_failures: load(&a.forwarded_failures),
            forwarded_timeouts: load(&a.forwarded_timeouts),
        };
        PoolMetrics {
            hits,
            misses,
            hit_rate: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            evictions,
            health_check_failures,
            circuit_breaker_trips,
            pool_keys_evicted,
            sessions_reaped,
            anonymous_identity_count,
            pool_key_count: st.keys.len(),
            total_active_sessions: st.total_live,
            session_affinity,
            notifications: self
                .inner
                .refresh
                .as_ref()
                .map(|r| r.metrics())
                .unwrap_or_default(),
            pools,
            era_discoveries: self.inner.counters.era_discoveries.load(Ordering::Relaxed),
            eras,
            circuit_breakers: st.breakers.snapshot(),
        }
    }
}
