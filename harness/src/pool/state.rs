//! [`SessionPool`] and the shared state behind it: the per-key idle sessions, counts and waiter
//! queues, and the slot permits that hand out the right to create a session.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;

use super::affinity::Affinity;
use super::breaker::Breakers;
use super::eras::EraCache;
use super::metrics::Counters;
use super::notify::RefreshScheduler;
use super::{PoolConfig, PoolKey, PooledSession};
use crate::session::{Era, Session};

/// A pool of MCP client sessions, shared by cheap clones.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::SessionPool;
/// use mcp_harness::pool::AcquireRequest;
/// let pool = SessionPool::builder().build();
/// let req = AcquireRequest::http("http://127.0.0.1:4000/mcp").header("authorization", "Bearer t");
/// {
///     let session = pool.acquire(req.clone()).await?;   // a miss: creates the session
///     session.ping().await?;
/// }                                                      // dropped: released for reuse
/// let again = pool.acquire(req).await?;                  // a hit
/// assert_eq!(pool.metrics().hits, 1);
/// # drop(again);
/// pool.close_all().await;
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Clone)]
pub struct SessionPool {
    pub(super) inner: Arc<PoolInner>,
}

impl fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionPool")
            .field("config", &self.inner.cfg)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

pub(super) struct PoolInner {
    pub(super) cfg: PoolConfig,
    pub(super) affinity: Arc<Affinity>,
    pub(super) refresh: Option<Arc<RefreshScheduler>>,
    pub(super) state: Mutex<State>,
    pub(super) counters: Counters,
    pub(super) eras: EraCache,
    pub(super) closed: AtomicBool,
    pub(super) generation: AtomicU64,
    pub(super) last_eviction: Mutex<Instant>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) keys: HashMap<PoolKey, KeyState>,
    pub(super) breakers: Breakers,
    pub(super) total_live: usize,
    pub(super) next_waiter: u64,
}

pub(super) struct KeyState {
    pub(super) idle: VecDeque<Entry>,
    pub(super) busy: usize,
    pub(super) creating: usize,
    pub(super) waiters: VecDeque<(u64, oneshot::Sender<Grant>)>,
    pub(super) last_activity: Instant,
    pub(super) max: usize,
    /// The era of the key's upstream, once one of its sessions connected.
    pub(super) era: Option<Era>,
}

impl KeyState {
    pub(super) fn live(&self) -> usize {
        self.idle.len() + self.busy + self.creating
    }
}

pub(super) struct Entry {
    pub(super) session: Session,
    pub(super) created: Instant,
    pub(super) last_used: Instant,
    pub(super) generation: u64,
}

/// What a waiter is handed: a session, or the right to create one.
pub(super) enum Grant {
    Session(PooledSession),
    Slot(SlotPermit),
}

/// The right to create one session for a key; dropping it unused frees the slot.
pub(super) struct SlotPermit {
    pub(super) pool: Arc<PoolInner>,
    pub(super) key: Arc<PoolKey>,
    pub(super) trial: bool,
    pub(super) armed: bool,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if self.armed {
            let mut st = self.pool.lock();
            if self.trial {
                st.breakers.trial_abandoned(&self.key.url);
            }
            self.pool.free_slot(&mut st, &self.key);
        }
    }
}

impl PoolInner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A slot of `key` was freed (creation failed or abandoned, or a session closed): hand it to
    /// the longest waiter as a right to create, else just count it free. Runs under the lock.
    fn free_slot(self: &Arc<Self>, st: &mut State, key: &Arc<PoolKey>) {
        let Some(ks) = st.keys.get_mut(key) else {
            return;
        };
        ks.creating = ks.creating.saturating_sub(1);
        st.total_live = st.total_live.saturating_sub(1);
        self.offer_slot(st, key);
    }

    pub(super) fn offer_slot(self: &Arc<Self>, st: &mut State, key: &Arc<PoolKey>) {
        if self.closed() {
            return;
        }
        let State {
            keys, total_live, ..
        } = st;
        let Some(ks) = keys.get_mut(key) else { return };
        while let Some((_, tx)) = ks.waiters.pop_front() {
            ks.creating += 1;
            *total_live += 1;
            let permit = SlotPermit {
                pool: self.clone(),
                key: key.clone(),
                trial: false,
                armed: true,
            };
            match tx.send(Grant::Slot(permit)) {
                Ok(()) => return,
                Err(grant) => {
                    // The waiter is gone: take the slot back without re-locking.
                    if let Grant::Slot(mut p) = grant {
                        p.armed = false;
                    }
                    ks.creating -= 1;
                    *total_live -= 1;
                }
            }
        }
    }
}
