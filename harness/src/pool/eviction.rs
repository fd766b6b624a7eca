//! Idle eviction: keys idle past `idle_pool_eviction` and sessions past their TTL are reaped, on
//! acquire (throttled) and by the background reaper.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::SessionPool;
use super::lifecycle::close_in_background;
use super::state::PoolInner;
use crate::runtime;

impl SessionPool {
    pub(super) fn evict_if_due(&self) {
        let due = {
            let mut last = self
                .inner
                .last_eviction
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= self.inner.cfg.reaper_interval {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            evict_idle(&self.inner);
        }
    }

    /// Runs idle-key eviction and reaping now (the background reaper does it every
    /// `reaper_interval`).
    pub fn evict_idle(&self) {
        evict_idle(&self.inner);
    }
}

fn evict_idle(pool: &Arc<PoolInner>) {
    let cfg = &pool.cfg;
    let mut to_close = Vec::new();
    {
        let mut st = pool.lock();
        let mut evicted_keys = Vec::new();
        let mut reaped = 0usize;
        for (key, ks) in st.keys.iter_mut() {
            let key_idle = ks.busy == 0
                && ks.creating == 0
                && ks.waiters.is_empty()
                && ks.last_activity.elapsed() >= cfg.idle_pool_eviction;
            if key_idle {
                reaped += ks.idle.len();
                to_close.extend(ks.idle.drain(..).map(|e| e.session));
                evicted_keys.push(key.clone());
                continue;
            }
            let before = ks.idle.len();
            let mut keep = VecDeque::with_capacity(before);
            for e in ks.idle.drain(..) {
                if e.created.elapsed() > cfg.session_ttl
                    || e.last_used.elapsed() >= cfg.idle_pool_eviction
                {
                    to_close.push(e.session);
                } else {
                    keep.push_back(e);
                }
            }
            reaped += before - keep.len();
            ks.idle = keep;
        }
        for k in &evicted_keys {
            st.keys.remove(k);
        }
        pool.affinity.drop_mappings_for(&evicted_keys);
        st.total_live = st.total_live.saturating_sub(reaped);
        pool.counters
            .sessions_reaped
            .fetch_add(reaped as u64, Ordering::Relaxed);
        pool.counters
            .pool_keys_evicted
            .fetch_add(evicted_keys.len() as u64, Ordering::Relaxed);
    }
    for s in to_close {
        close_in_background(Some(s), cfg.cleanup_timeout);
    }
}

pub(super) fn spawn_reaper(pool: Weak<PoolInner>) {
    let interval = match pool.upgrade() {
        Some(p) => p.cfg.reaper_interval,
        None => return,
    };
    runtime::spawn(async move {
        loop {
            runtime::sleep(interval).await;
            let Some(p) = pool.upgrade() else { return };
            if p.closed() {
                return;
            }
            *p.last_eviction.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            evict_idle(&p);
        }
    });
}
