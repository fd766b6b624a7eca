//! The pool's lifecycle: [`close_all`](SessionPool::close_all), [`drain`](SessionPool::drain),
//! and closing sessions within the cleanup timeout.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::SessionPool;
use crate::runtime;
use crate::session::Session;

impl SessionPool {
    /// Closes every session within `cleanup_timeout` overall; afterwards every acquire fails
    /// with [`Error::PoolClosed`](crate::errors::Error::PoolClosed). Busy sessions are closed when released.
    pub async fn close_all(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let sessions = self.take_idle_sessions(true);
        self.close_sessions(sessions).await;
    }

    /// Closes every idle session (and busy ones when released) but keeps the pool usable, for
    /// example after rotating credentials.
    pub async fn drain(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        let sessions = self.take_idle_sessions(false);
        self.close_sessions(sessions).await;
    }

    fn take_idle_sessions(&self, drop_waiters: bool) -> Vec<Session> {
        let mut st = self.inner.lock();
        let mut out = Vec::new();
        for ks in st.keys.values_mut() {
            out.extend(ks.idle.drain(..).map(|e| e.session));
            if drop_waiters {
                ks.waiters.clear();
            }
        }
        st.total_live = st.total_live.saturating_sub(out.len());
        out
    }

    async fn close_sessions(&self, sessions: Vec<Session>) {
        let bound = self.inner.cfg.cleanup_timeout;
        let all = futures::future::join_all(sessions.iter().map(|s| s.shutdown()));
        if runtime::timeout(bound, all).await.is_err() {
            tracing::warn!(
                count = sessions.len(),
                "closing pooled sessions exceeded {bound:?}; aborting their owners"
            );
            for s in &sessions {
                s.abort_owner();
            }
        }
    }
}

pub(super) fn close_in_background(session: Option<Session>, bound: Duration) {
    if let Some(s) = session {
        runtime::spawn(async move {
            let _ = runtime::timeout(bound, s.shutdown()).await;
        });
    }
}
