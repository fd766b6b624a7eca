//! [`PooledSession`], the guard of an acquired session: it derefs to the session and releases it
//! to the pool when dropped.

use std::fmt;
use std::sync::Arc;

use super::PoolKey;
use super::state::{Entry, PoolInner};
use crate::session::Session;

/// A session acquired from the pool: dropping it releases it for reuse;
/// [`discard`](Self::discard) closes it instead.
///
/// Derefs to [`Session`].
pub struct PooledSession {
    pub(super) pool: Arc<PoolInner>,
    // Shared, not cloned: a hit must not copy the key's four strings.
    pub(super) key: Arc<PoolKey>,
    pub(super) entry: Option<Entry>,
    pub(super) discard: bool,
}

impl fmt::Debug for PooledSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledSession")
            .field("key", &self.key.to_string())
            .finish()
    }
}

impl std::ops::Deref for PooledSession {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self
            .entry
            .as_ref()
            .expect("a PooledSession holds its entry until dropped")
            .session
    }
}

impl PooledSession {
    /// The pool key this session belongs to.
    pub fn key(&self) -> &PoolKey {
        &self.key
    }

    /// Closes this session instead of returning it to the pool.
    pub fn discard(mut self) {
        self.discard = true;
    }

    pub(super) fn entry(&self) -> &Entry {
        self.entry
            .as_ref()
            .expect("a PooledSession holds its entry until dropped")
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.pool.release(&self.key, entry, self.discard);
        }
    }
}
