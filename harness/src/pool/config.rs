//! The pool's configuration: the health-check chain, [`PoolConfig`] with the reference pool's
//! defaults, and [`PoolBuilder`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::affinity::{self, Affinity};
use super::eras::EraCache;
use super::eviction::spawn_reaper;
use super::identity::{DEFAULT_IDENTITY_HEADERS, IdentityExtractor, IdentityRules};
use super::metrics::Counters;
use super::notify::{Catalog, RefreshCallback, RefreshScheduler};
use super::state::{PoolInner, State};
use super::{SessionPool, WorkerConfig};

/// One step of the health-check chain run before reusing a session idle for longer than
/// `health_check_interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthCheck {
    /// `ping` for a handshake-era upstream; for a stateless one (MCP 2026-07-28 has no
    /// `ping`), a `server/discover` round trip. Either way a healthy server passes it.
    Ping,
    /// `tools/list`.
    ListTools,
    /// `prompts/list`.
    ListPrompts,
    /// `resources/list`.
    ListResources,
    /// Count as healthy without asking.
    Skip,
}

/// The pool's settings, with the reference pool's defaults.
#[derive(Clone)]
pub struct PoolConfig {
    pub(super) max_sessions_per_key: usize,
    pub(super) session_ttl: Duration,
    pub(super) health_check_interval: Duration,
    pub(super) acquire_timeout: Duration,
    pub(super) create_timeout: Duration,
    pub(super) circuit_breaker_threshold: u32,
    pub(super) circuit_breaker_reset: Duration,
    pub(super) idle_pool_eviction: Duration,
    pub(super) health_checks: Vec<HealthCheck>,
    pub(super) health_check_timeout: Duration,
    pub(super) cleanup_timeout: Duration,
    pub(super) list_tools_probe: bool,
    pub(super) reaper_interval: Duration,
    pub(super) request_timeout: Duration,
    pub(super) max_pool_keys: Option<usize>,
    pub(super) max_total_sessions: Option<usize>,
    pub(super) rules: IdentityRules,
    pub(super) worker: Option<WorkerConfig>,
    pub(super) exclusive: bool,
    pub(super) affinity_ttl: Duration,
    pub(super) debounce: Duration,
    pub(super) refresh: Option<RefreshCallback>,
    /// The era of every upstream; `None`: `MCP_HARNESS_PROTOCOL` if set, else discovered per url.
    pub(super) protocol: Option<crate::session::Protocol>,
    /// The era of one upstream url (stronger than `protocol`).
    pub(super) url_protocols: HashMap<String, crate::session::Protocol>,
}

impl fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConfig")
            .field("max_sessions_per_key", &self.max_sessions_per_key)
            .field("session_ttl", &self.session_ttl)
            .field("health_check_interval", &self.health_check_interval)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("create_timeout", &self.create_timeout)
            .field("circuit_breaker_threshold", &self.circuit_breaker_threshold)
            .field("circuit_breaker_reset", &self.circuit_breaker_reset)
            .field("idle_pool_eviction", &self.idle_pool_eviction)
            .field("health_checks", &self.health_checks)
            .field("health_check_timeout", &self.health_check_timeout)
            .field("cleanup_timeout", &self.cleanup_timeout)
            .field("identity", &self.rules)
            .field("protocol", &self.protocol)
            .field("url_protocols", &self.url_protocols.len())
            .finish_non_exhaustive()
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_sessions_per_key: 10,
            session_ttl: Duration::from_secs(300),
            health_check_interval: Duration::from_secs(60),
            acquire_timeout: Duration::from_secs(30),
            create_timeout: Duration::from_secs(30),
            circuit_breaker_threshold: 5,
            circuit_breaker_reset: Duration::from_secs(60),
            idle_pool_eviction: Duration::from_secs(600),
            health_checks: vec![HealthCheck::Ping, HealthCheck::Skip],
            health_check_timeout: Duration::from_secs(5),
            cleanup_timeout: Duration::from_secs(5),
            list_tools_probe: false,
            reaper_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_pool_keys: None,
            max_total_sessions: None,
            worker: None,
            exclusive: false,
            affinity_ttl: Duration::from_secs(300),
            debounce: Duration::from_secs(1),
            refresh: None,
            protocol: None,
            url_protocols: HashMap::new(),
            rules: IdentityRules {
                headers: DEFAULT_IDENTITY_HEADERS
                    .iter()
                    .map(|s| http::HeaderName::from_static(s))
                    .collect(),
                extractor: None,
                affinity: false,
            },
        }
    }
}

/// Builds a [`SessionPool`]; every duration is configurable so scenarios run in milliseconds.
///
/// ```
/// use std::time::Duration;
/// use mcp_harness::SessionPool;
/// use mcp_harness::pool::{HealthCheck, JwtSubjectExtractor};
/// let pool = SessionPool::builder()
///     .max_sessions_per_key(4)
///     .session_ttl(Duration::from_millis(500))
///     .health_checks([HealthCheck::Ping, HealthCheck::ListTools])
///     .identity_extractor(JwtSubjectExtractor)
///     .build();
/// assert_eq!(pool.metrics().pool_key_count, 0);
/// ```
#[derive(Debug, Default)]
pub struct PoolBuilder {
    cfg: PoolConfig,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.cfg.$name = value;
                self
            }
        )*
    };
}

impl PoolBuilder {
    setters! {
        /// At most this many live sessions (idle + busy) per pool key. Default 10.
        max_sessions_per_key: usize,
        /// Sessions older than this are closed at validation or release. Default 300 s.
        session_ttl: Duration,
        /// A session idle longer than this is health-checked before reuse. Default 60 s.
        health_check_interval: Duration,
        /// How long an acquire waits for a session of a full key. Default 30 s.
        acquire_timeout: Duration,
        /// How long creating (connect, then `initialize` or `server/discover`) may take.
        /// Default 30 s.
        create_timeout: Duration,
        /// Consecutive creation failures that open a url's circuit. Default 5.
        circuit_breaker_threshold: u32,
        /// How long an open circuit stays open before a half-open trial. Default 60 s.
        circuit_breaker_reset: Duration,
        /// Keys with no activity and no busy session for this long are evicted. Default 600 s.
        idle_pool_eviction: Duration,
        /// The bound on one health check. Default 5 s.
        health_check_timeout: Duration,
        /// The bound on closing sessions (and on `close_all` overall). Default 5 s.
        cleanup_timeout: Duration,
        /// Also run a `tools/list` probe whenever a health check is due. Default off.
        list_tools_probe: bool,
        /// How often the background reaper evicts idle keys (and the throttle of eviction on
        /// acquire). Default 30 s.
        reaper_interval: Duration,
        /// The request timeout of pooled sessions. Default 30 s.
        request_timeout: Duration,
    }

    /// The health-check chain (default: `Ping`, then `Skip`).
    pub fn health_checks(mut self, chain: impl IntoIterator<Item = HealthCheck>) -> Self {
        self.cfg.health_checks = chain.into_iter().collect();
        self
    }

    /// The identity headers hashed into pool keys (default [`DEFAULT_IDENTITY_HEADERS`]).
    pub fn identity_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cfg.rules.headers = names
            .into_iter()
            .filter_map(|s| {
                let s = s.into();
                let parsed = http::HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes());
                if parsed.is_err() {
                    tracing::warn!(header = %s, "ignoring an invalid identity header name");
                }
                parsed.ok()
            })
            .collect();
        self
    }

    /// An identity extractor, consulted before header hashing.
    pub fn identity_extractor(mut self, extractor: impl IdentityExtractor) -> Self {
        self.cfg.rules.extractor = Some(Arc::new(extractor));
        self
    }

    /// Session affinity: an `x-mcp-session-id` header identifies the caller (so rotating tokens
    /// keep one upstream session).
    pub fn affinity(mut self, on: bool) -> Self {
        self.cfg.rules.affinity = on;
        self
    }

    /// Makes this pool a worker that shares session ownership with other workers through
    /// `worker`'s store (and turns affinity on).
    pub fn worker(mut self, worker: WorkerConfig) -> Self {
        self.cfg.rules.affinity = true;
        self.cfg.worker = Some(worker);
        self
    }

    /// Exclusive mode: one upstream session per downstream session (`x-mcp-session-id`), never
    /// shared, for stateful servers whose state must not leak between downstream clients.
    pub fn exclusive(mut self, on: bool) -> Self {
        self.cfg.exclusive = on;
        if on {
            self.cfg.rules.affinity = true;
        }
        self
    }

    /// How long session mappings live without a worker (default 300 s; with a worker, its
    /// `affinity_ttl`).
    pub fn affinity_ttl(mut self, d: Duration) -> Self {
        self.cfg.affinity_ttl = d;
        self
    }

    /// Pins the protocol era of every upstream (a url pinned with
    /// [`protocol_for`](Self::protocol_for) keeps its own).
    ///
    /// Without a pin the pool follows [`PROTOCOL_ENV`](crate::PROTOCOL_ENV) when it is set, and
    /// otherwise discovers each upstream's era once per url and transport, as a production
    /// gateway does: its first session asks `server/discover` and falls back to `initialize`
    /// for a handshake-era server ([`Protocol::Auto`](crate::Protocol::Auto)); later sessions
    /// connect straight in the era and version learnt. Legacy SSE upstreams are handshake-era
    /// by definition. `Protocol::Auto` here asks for discovery even when the environment pins
    /// an era.
    ///
    /// ```
    /// use mcp_harness::{Protocol, SessionPool};
    /// let pool = SessionPool::builder()
    ///     .protocol(Protocol::Stateless("2026-07-28".into()))
    ///     .build();
    /// # drop(pool);
    /// ```
    pub fn protocol(mut self, protocol: crate::session::Protocol) -> Self {
        self.cfg.protocol = Some(protocol);
        self
    }

    /// Pins the protocol era of the upstream at `url` (exactly as given to
    /// [`AcquireRequest::http`](super::AcquireRequest::http) or
    /// [`AcquireRequest::url`](super::AcquireRequest::url)), over the pool-wide setting; for
    /// stdio upstreams the key is the server's command line. One pool serves upstreams of both
    /// eras side by side.
    ///
    /// ```
    /// use mcp_harness::{Protocol, SessionPool};
    /// let pool = SessionPool::builder()
    ///     .protocol_for("http://legacy.internal:4000/mcp", Protocol::Handshake("2025-06-18".into()))
    ///     .protocol_for("http://modern.internal:4000/mcp", Protocol::Stateless("2026-07-28".into()))
    ///     .build();
    /// # drop(pool);
    /// ```
    pub fn protocol_for(
        mut self,
        url: impl Into<String>,
        protocol: crate::session::Protocol,
    ) -> Self {
        self.cfg.url_protocols.insert(url.into(), protocol);
        self
    }

    /// The debounce window for list_changed refreshes (default 1 s).
    pub fn debounce(mut self, d: Duration) -> Self {
        self.cfg.debounce = d;
        self
    }

    /// Runs `callback` for debounced list_changed refreshes, one at a time per gateway.
    pub fn on_refresh(mut self, callback: RefreshCallback) -> Self {
        self.cfg.refresh = Some(callback);
        self
    }

    /// Keeps `catalog` up to date from list_changed notifications (the harness's own refresh
    /// callback).
    pub fn catalog(self, catalog: &Catalog) -> Self {
        self.on_refresh(catalog.callback())
    }

    /// A soft cap on the number of pool keys.
    pub fn max_pool_keys(mut self, cap: usize) -> Self {
        self.cfg.max_pool_keys = Some(cap);
        self
    }

    /// A soft cap on live sessions across all keys.
    pub fn max_total_sessions(mut self, cap: usize) -> Self {
        self.cfg.max_total_sessions = Some(cap);
        self
    }

    /// Builds the pool and starts its background reaper on the shared runtime.
    pub fn build(self) -> SessionPool {
        let affinity = Affinity::new(self.cfg.worker.clone(), self.cfg.affinity_ttl);
        let refresh = self
            .cfg
            .refresh
            .clone()
            .map(|cb| RefreshScheduler::new(self.cfg.debounce, cb));
        let inner = Arc::new(PoolInner {
            affinity,
            refresh,
            cfg: self.cfg,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            eras: EraCache::default(),
            closed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            last_eviction: Mutex::new(Instant::now()),
        });
        spawn_reaper(Arc::downgrade(&inner));
        affinity::start_worker(Arc::downgrade(&inner));
        SessionPool { inner }
    }
}

impl SessionPool {
    /// Starts configuring a pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }
}
