//! Every open session, so that process exit can close them last-opened-first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use super::handle::SessionInner;
use crate::runtime;

/// The next session's place in the opening order.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(0);
type OpenSessions = Mutex<Vec<(u64, Weak<SessionInner>)>>;
static OPEN: LazyLock<OpenSessions> = LazyLock::new(|| Mutex::new(Vec::new()));

/// A number that orders sessions by when they were opened.
pub(super) fn next_seq() -> u64 {
    NEXT_SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Lists an open session, so that process exit closes it.
pub(super) fn register(inner: &Arc<SessionInner>) {
    runtime::at_exit(
        runtime::ExitStep::CloseSessions,
        |within| {
            close_all_sessions(within);
        },
        || {},
    );
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    open.retain(|(_, w)| w.strong_count() > 0);
    open.push((inner.seq, Arc::downgrade(inner)));
}

/// Closes every session still open, last opened first, within `within` overall; returns the
/// names in the order they were closed. Called at process exit; tests may call it too.
pub fn close_all_sessions(within: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + within;
    let mut open: Vec<Arc<SessionInner>> = OPEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
        .filter_map(|(_, w)| w.upgrade())
        .collect();
    open.sort_by_key(|s| std::cmp::Reverse(s.seq));
    let mut closed = Vec::new();
    for s in open {
        let conn = s.conn.read().unwrap_or_else(|p| p.into_inner()).clone();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // An owner that already recorded why it closed has nothing left to do.
        let owner_done = conn
            .shared
            .closed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !owner_done && (left.is_zero() || !conn.close_blocking(left)) {
            conn.owner.abort();
        }
        closed.push(s.cfg.name.clone());
    }
    closed
}
