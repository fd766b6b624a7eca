//! Where session ownership, affinity mappings and forwarded requests live when several workers
//! (processes, hosts) share upstream sessions: in memory for one process, or in Redis.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

/// A store failure (the store is unreachable, or answered something unexpected). Callers
/// degrade to local execution: ownership is an optimisation, never a reason to fail a call.
#[derive(Debug, thiserror::Error)]
#[error("ownership store: {0}")]
pub struct StoreError(pub String);

/// The result type of store operations.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// Who owns a session after a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This worker owns it now (it was free, or already ours).
    Mine,
    /// Another worker owns it.
    Owner(String),
}

/// Ownership, heartbeats, affinity mappings and a message bus between workers.
///
/// Ownership keys are `owner:{session}` (set-if-absent with a TTL, refreshed by the owner's
/// heartbeat); a worker is alive while its `alive:{worker}` key exists. A dead owner is taken
/// over with compare-and-set, so exactly one of several racing workers wins.
pub trait OwnershipStore: Send + Sync + 'static {
    /// Claims `session` for `worker` if nobody owns it (set-if-absent with `ttl`).
    fn claim<'a>(
        &'a self,
        session: &'a str,
        worker: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<Claim>>;
    /// Replaces `dead` with `worker` as the owner of `session`, only if `dead` still owns it.
    fn take_over<'a>(
        &'a self,
        session: &'a str,
        dead: &'a str,
        worker: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// Extends `worker`'s ownership of `session`; false if it is not the owner any more.
    fn renew<'a>(
        &'a self,
        session: &'a str,
        worker: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    /// The current owner of `session`.
    fn owner<'a>(&'a self, session: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>>;
    /// Marks `worker` alive for `ttl` (the heartbeat).
    fn heartbeat<'a>(&'a self, worker: &'a str, ttl: Duration) -> BoxFuture<'a, StoreResult<()>>;
    /// Whether `worker`'s heartbeat is current.
    fn is_alive<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, StoreResult<bool>>;
    /// Stores a session's affinity mapping (an opaque, non-secret string) for `ttl`.
    fn put_mapping<'a>(
        &'a self,
        session: &'a str,
        mapping: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// A session's affinity mapping.
    fn get_mapping<'a>(&'a self, session: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>>;
    /// Sends a message to `worker`'s inbox.
    fn publish<'a>(&'a self, worker: &'a str, message: String) -> BoxFuture<'a, StoreResult<()>>;
    /// `worker`'s inbox.
    fn subscribe<'a>(
        &'a self,
        worker: &'a str,
    ) -> BoxFuture<'a, StoreResult<BoxStream<'static, String>>>;
}

// ---------------------------------------------------------------------------------------------
// In memory

/// An in-process store: several pools of one process can share it (clone it).
///
/// ```
/// let store = mcp_harness::pool::MemoryStore::default();
/// let shared_by_two_pools = store.clone();
/// # drop(shared_by_two_pools);
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Memory>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryStore")
    }
}

#[derive(Default)]
struct Memory {
    values: HashMap<String, (String, Instant)>,
    inboxes: HashMap<String, broadcast::Sender<String>>,
}

impl Memory {
    fn get(&mut self, key: &str) -> Option<String> {
        match self.values.get(key) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                self.values.remove(key);
                None
            }
            None => None,
        }
    }

    fn set(&mut self, key: String, value: String, ttl: Duration) {
        self.values.insert(key, (value, Instant::now() + ttl));
    }

    fn inbox(&mut self, worker: &str) -> broadcast::Sender<String> {
        self.inboxes
            .entry(worker.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl OwnershipStore for MemoryStore {
    fn claim<'a>(
        &'a self,
        session: &'a str,
        worker: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<Claim>> {
        ready(Ok(self.with(|m| {
            let key = format!("owner:{session}");
            match m.get(&key) {
                Some(owner) if owner != worker => Claim::Owner(owner),
                _ => {
                    m.set(key, worker.to_owned(), ttl);
                    Claim::Mine
                }
            }
        })))
    }

    fn take_over<'a>(
        &'a self,
        session: &'a str,
        dead: &'a str,
        worker: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        ready(Ok(self.with(|m| {
            let key = format!("owner:{session}");
            match m.get(&key) {
                Some(owner) if owner == dead => {
                    m.set(key, worker.to_owned(), ttl);
                    true
                }
                None => {
                    m.set(key, worker.to_owned(), ttl);
                    true
                }
                _ => false,
            }
        })))
    }

    fn renew<'a>(
        &'a self,
        session: &'a str,
        worker: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        ready(Ok(self.with(|m| {
            let key = format!("owner:{session}");
            match m.get(&key) {
                Some(owner) if owner == worker => {
                    m.set(key, owner, ttl);
                    true
                }
                _ => false,
            }
        })))
    }

    fn owner<'a>(&'a self, session: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        ready(Ok(self.with(|m| m.get(&format!("owner:{session}")))))
    }

    fn heartbeat<'a>(&'a self, worker: &'a str, ttl: Duration) -> BoxFuture<'a, StoreResult<()>> {
        self.with(|m| m.set(format!("alive:{worker}"), "1".into(), ttl));
        ready(Ok(()))
    }

    fn is_alive<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        ready(Ok(
            self.with(|m| m.get(&format!("alive:{worker}")).is_some())
        ))
    }

    fn put_mapping<'a>(
        &'a self,
        session: &'a str,
        mapping: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.with(|m| m.set(format!("mapping:{session}"), mapping.to_owned(), ttl));
        ready(Ok(()))
    }

    fn get_mapping<'a>(&'a self, session: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        ready(Ok(self.with(|m| m.get(&format!("mapping:{session}")))))
    }

    fn publish<'a>(&'a self, worker: &'a str, message: String) -> BoxFuture<'a, StoreResult<()>> {
        let tx = self.with(|m| m.inbox(worker));
        let _ = tx.send(message);
        ready(Ok(()))
    }

    fn subscribe<'a>(
        &'a self,
        worker: &'a str,
    ) -> BoxFuture<'a, StoreResult<BoxStream<'static, String>>> {
        let rx = self.with(|m| m.inbox(worker)).subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(m) => return Some((m, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        ready(Ok(Box::pin(stream) as BoxStream<'static, String>))
    }
}

// ---------------------------------------------------------------------------------------------
// Redis

#[cfg(feature = "redis")]
pub use redis_store::RedisStore;

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use futures::StreamExt as _;
    use redis::AsyncCommands as _;

    /// Ownership in a real Redis (`redis://host:port`), through a connection manager that
    /// reconnects; forwarded requests travel over Redis pub/sub.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// let store = mcp_harness::pool::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # Ok::<_, mcp_harness::pool::StoreError>(()) });
    /// ```
    #[derive(Clone)]
    pub struct RedisStore {
        client: redis::Client,
        conn: redis::aio::ConnectionManager,
        prefix: String,
    }

    impl fmt::Debug for RedisStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RedisStore")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    fn err(e: redis::RedisError) -> StoreError {
        StoreError(e.to_string())
    }

    const TAKE_OVER: &str = r"
        local cur = redis.call('GET', KEYS[1])
        if cur == false or cur == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            return 1
        end
        return 0";

    const RENEW: &str = r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return 1
        end
        return 0";

    impl RedisStore {
        /// Connects (the connection manager reconnects on its own afterwards).
        pub async fn connect(url: &str) -> StoreResult<RedisStore> {
            let client = redis::Client::open(url).map_err(err)?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_millis(500))
                .set_response_timeout(Duration::from_secs(1))
                .set_number_of_retries(1);
            let conn = crate::runtime::spawn(async move {
                let c =
                    redis::aio::ConnectionManager::new_with_config(client.clone(), config).await;
                c.map(|c| (client, c))
            })
            .await
            .map_err(|e| StoreError(e.to_string()))?
            .map_err(err)?;
            Ok(RedisStore {
                client: conn.0,
                conn: conn.1,
                prefix: "mcp-harness:".into(),
            })
        }

        fn key(&self, k: String) -> String {
            format!("{}{k}", self.prefix)
        }
    }

    fn px(ttl: Duration) -> u64 {
        ttl.as_millis().max(1) as u64
    }

    impl OwnershipStore for RedisStore {
        fn claim<'a>(
            &'a self,
            session: &'a str,
            worker: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, StoreResult<Claim>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                let key = self.key(format!("owner:{session}"));
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(worker)
                    .arg("NX")
                    .arg("PX")
                    .arg(px(ttl))
                    .query_async(&mut c)
                    .await
                    .map_err(err)?;
                if set.is_some() {
                    return Ok(Claim::Mine);
                }
                let owner: Option<String> = c.get(&key).await.map_err(err)?;
                Ok(match owner {
                    Some(o) if o != worker => Claim::Owner(o),
                    _ => Claim::Mine,
                })
            })
        }

        fn take_over<'a>(
            &'a self,
            session: &'a str,
            dead: &'a str,
            worker: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, StoreResult<bool>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                let won: i32 = redis::Script::new(TAKE_OVER)
                    .key(self.key(format!("owner:{session}")))
                    .arg(dead)
                    .arg(worker)
                    .arg(px(ttl))
                    .invoke_async(&mut c)
                    .await
                    .map_err(err)?;
                Ok(won == 1)
            })
        }

        fn renew<'a>(
            &'a self,
            session: &'a str,
            worker: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, StoreResult<bool>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                let ok: i32 = redis::Script::new(RENEW)
                    .key(self.key(format!("owner:{session}")))
                    .arg(worker)
                    .arg(px(ttl))
                    .invoke_async(&mut c)
                    .await
                    .map_err(err)?;
                Ok(ok == 1)
            })
        }

        fn owner<'a>(&'a self, session: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                c.get(self.key(format!("owner:{session}")))
                    .await
                    .map_err(err)
            })
        }

        fn heartbeat<'a>(
            &'a self,
            worker: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, StoreResult<()>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                let _: () = c
                    .pset_ex(self.key(format!("alive:{worker}")), 1, px(ttl))
                    .await
                    .map_err(err)?;
                Ok(())
            })
        }

        fn is_alive<'a>(&'a self, worker: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                c.exists(self.key(format!("alive:{worker}")))
                    .await
                    .map_err(err)
            })
        }

        fn put_mapping<'a>(
            &'a self,
            session: &'a str,
            mapping: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, StoreResult<()>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                let _: () = c
                    .pset_ex(self.key(format!("mapping:{session}")), mapping, px(ttl))
                    .await
                    .map_err(err)?;
                Ok(())
            })
        }

        fn get_mapping<'a>(
            &'a self,
            session: &'a str,
        ) -> BoxFuture<'a, StoreResult<Option<String>>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                c.get(self.key(format!("mapping:{session}")))
                    .await
                    .map_err(err)
            })
        }

        fn publish<'a>(
            &'a self,
            worker: &'a str,
            message: String,
        ) -> BoxFuture<'a, StoreResult<()>> {
            Box::pin(async move {
                let mut c = self.conn.clone();
                let _: i64 = c
                    .publish(self.key(format!("inbox:{worker}")), message)
                    .await
                    .map_err(err)?;
                Ok(())
            })
        }

        fn subscribe<'a>(
            &'a self,
            worker: &'a str,
        ) -> BoxFuture<'a, StoreResult<BoxStream<'static, String>>> {
            Box::pin(async move {
                let mut pubsub = self.client.get_async_pubsub().await.map_err(err)?;
                pubsub
                    .subscribe(self.key(format!("inbox:{worker}")))
                    .await
                    .map_err(err)?;
                let stream = pubsub
                    .into_on_message()
                    .filter_map(|m| async move { m.get_payload::<String>().ok() });
                Ok(Box::pin(stream) as BoxStream<'static, String>)
            })
        }
    }
}
