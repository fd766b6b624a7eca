//! The session pool: identity and transport isolation, fair acquire/release, owner-task
//! sessions, health checks, TTL, idle eviction, a circuit breaker per url, and metrics.
//!
//! The behaviour follows ContextForge's `MCPSessionPool` (its names, defaults and metrics) and
//! fixes its defects: a released session goes to the longest waiter at once, a health-check
//! timeout is unhealthy, a tripped circuit is half-open after its reset period, and the identity
//! is hashed once per acquire.
//!
//! One pool serves upstreams of both protocol eras. Each upstream's era is pinned
//! ([`PoolBuilder::protocol`], [`PoolBuilder::protocol_for`]), set by
//! [`PROTOCOL_ENV`](crate::PROTOCOL_ENV), or discovered once per url and transport and cached
//! ([`SessionPool::upstream_era`]). A stateless upstream's entries have no protocol session; the
//! health chain's `ping` is `server/discover` for them, affinity and ownership leave them alone
//! (routing decision `stateless-local`), and [`PoolMetrics::eras`] counts keys and sessions per
//! era.
//!
//! # Layering
//!
//! The pool is built on the session layer. It may import `crate::session` (sessions and their
//! builder), `crate::process::ServerSpec`, `crate::transport::Transport`, `crate::runtime`
//! (spawn, sleep, timeout) and `crate::errors`; it must not import the CLI or the test
//! fixtures, which sit above it (in other crates).
//!
//! # Where things live
//!
//! - `config`: [`HealthCheck`], [`PoolConfig`] and [`PoolBuilder`].
//! - `request`: [`AcquireRequest`], what to acquire.
//! - `state`: [`SessionPool`] and its shared state: per-key idle sessions, counts, waiters and
//!   slot permits.
//! - `pooled`: the [`PooledSession`] guard.
//! - `acquire`: acquire, release, validation and `with_session`.
//! - `upstream`: how a pooled session to an upstream is built; `eras`: the protocol era of each
//!   upstream, pinned or discovered once per url and cached.
//! - `health`: the health-check chain.
//! - `eviction`: idle eviction, TTL reaping and the background reaper.
//! - `lifecycle`: `close_all`, `drain` and closing sessions.
//! - `metrics`: the metrics snapshot and its assembly.
//! - `identity`: pool keys and identity hashing; `breaker`: the circuit breaker per url;
//!   `notify`: list_changed refreshes; `affinity`: session affinity and ownership across
//!   workers, over an ownership `store`.

mod acquire;
mod affinity;
mod breaker;
mod config;
mod eras;
mod eviction;
mod health;
pub(crate) mod identity;
mod lifecycle;
mod metrics;
mod notify;
mod pooled;
mod request;
mod state;
mod store;
#[cfg(test)]
mod unit_tests;
mod upstream;

pub use affinity::WorkerConfig;
pub use breaker::CircuitBreakerMetrics;
pub use config::{HealthCheck, PoolBuilder, PoolConfig};
pub use identity::{
    ANONYMOUS, DEFAULT_IDENTITY_HEADERS, IdentityExtractor, JwtSubjectExtractor, PoolKey,
    SESSION_ID_HEADER,
};
pub use metrics::{AffinityMetrics, EraMetrics, KeyMetrics, PoolMetrics};
pub use notify::{
    Catalog, GatewayCatalog, NotificationMetrics, RefreshCallback, RefreshFlags, RefreshRequest,
};
pub use pooled::PooledSession;
pub use request::AcquireRequest;
pub use state::SessionPool;
#[cfg(feature = "redis")]
pub use store::RedisStore;
pub use store::{Claim, MemoryStore, OwnershipStore, StoreError, StoreResult};
