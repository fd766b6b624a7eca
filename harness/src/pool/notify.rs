//! list_changed notifications from upstream sessions, turned into debounced refreshes per
//! gateway, run one at a time per gateway through a refresh callback.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::ServerNotification;
use serde::Serialize;

use crate::errors::Result;
use crate::runtime;
use crate::session::Session;

/// Which lists a refresh re-reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefreshFlags {
    /// Re-list tools.
    pub tools: bool,
    /// Re-list resources.
    pub resources: bool,
    /// Re-list prompts.
    pub prompts: bool,
}

impl RefreshFlags {
    /// What a notification asks to refresh: `tools/list_changed` refreshes all three,
    /// `resources/list_changed` tools and resources, `prompts/list_changed` tools and prompts.
    ///
    /// ```
    /// use mcp_harness::pool::RefreshFlags;
    /// use mcp_harness::rmcp::model::{ServerNotification, PromptListChangedNotification};
    /// let n = ServerNotification::PromptListChangedNotification(PromptListChangedNotification::default());
    /// let f = RefreshFlags::for_notification(&n).unwrap();
    /// assert!(f.tools && f.prompts && !f.resources);
    /// ```
    pub fn for_notification(n: &ServerNotification) -> Option<RefreshFlags> {
        match n {
            ServerNotification::ToolListChangedNotification(_) => Some(RefreshFlags {
                tools: true,
                resources: true,
                prompts: true,
            }),
            ServerNotification::ResourceListChangedNotification(_) => Some(RefreshFlags {
                tools: true,
                resources: true,
                prompts: false,
            }),
            ServerNotification::PromptListChangedNotification(_) => Some(RefreshFlags {
                tools: true,
                resources: false,
                prompts: true,
            }),
            _ => None,
        }
    }

    fn merge(&mut self, other: RefreshFlags) {
        self.tools |= other.tools;
        self.resources |= other.resources;
        self.prompts |= other.prompts;
    }
}

/// One refresh to run: a gateway, the merged flags, and a live upstream session of it.
#[derive(Clone, Debug)]
pub struct RefreshRequest {
    /// The gateway whose catalog to refresh (`""` when absent).
    pub gateway_id: String,
    /// What to re-list.
    pub flags: RefreshFlags,
    /// The upstream session that last reported a change.
    pub session: Session,
}

/// The function that performs refreshes.
pub type RefreshCallback =
    Arc<dyn Fn(RefreshRequest) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// Notification counters in the pool's metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NotificationMetrics {
    /// list_changed notifications received.
    pub notifications_received: u64,
    /// Notifications merged into a refresh already scheduled.
    pub notifications_debounced: u64,
    /// Refreshes started.
    pub refreshes_triggered: u64,
    /// Refreshes whose callback failed.
    pub refreshes_failed: u64,
    /// Refreshes scheduled and not yet started.
    pub pending_refreshes: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    debounced: AtomicU64,
    triggered: AtomicU64,
    failed: AtomicU64,
    pending: AtomicU64,
}

#[derive(Default)]
struct Gateway {
    /// Flags gathered during the open debounce window.
    window: Option<RefreshFlags>,
    running: bool,
    /// Flags for the one refresh to run after the current one.
    trailing: Option<RefreshFlags>,
    session: Option<Session>,
}

/// Debounces notifications into refreshes, one at a time per gateway.
pub(crate) struct RefreshScheduler {
    debounce: Duration,
    callback: RefreshCallback,
    gateways: Mutex<HashMap<String, Gateway>>,
    counters: Counters,
}

impl fmt::Debug for RefreshScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshScheduler")
            .field("debounce", &self.debounce)
            .finish_non_exhaustive()
    }
}

impl RefreshScheduler {
    pub(crate) fn new(debounce: Duration, callback: RefreshCallback) -> Arc<Self> {
        Arc::new(RefreshScheduler {
            debounce,
            callback,
            gateways: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })
    }

    /// Watches a new upstream session's notifications for as long as it lives.
    pub(crate) fn watch(self: &Arc<Self>, gateway_id: String, session: &Session) {
        let mut notifications = session.notifications();
        let scheduler = Arc::downgrade(self);
        let session = session.clone();
        runtime::spawn(async move {
            while let Some(n) = notifications.next().await {
                let Some(flags) = RefreshFlags::for_notification(&n) else {
                    continue;
                };
                let Some(s) = scheduler.upgrade() else { return };
                s.notify(&gateway_id, flags, &session);
            }
        });
    }

    fn notify(self: &Arc<Self>, gateway_id: &str, flags: RefreshFlags, session: &Session) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let mut gateways = self.gateways.lock().unwrap_or_else(|p| p.into_inner());
        let gw = gateways.entry(gateway_id.to_owned()).or_default();
        gw.session = Some(session.clone());
        if let Some(window) = gw.window.as_mut() {
            window.merge(flags);
            self.counters.debounced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if gw.running {
            // Unlike the reference, a change during a refresh is not lost: one trailing refresh.
            match gw.trailing.as_mut() {
                Some(t) => {
                    t.merge(flags);
                    self.counters.debounced.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    gw.trailing = Some(flags);
                    self.counters.pending.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        gw.window = Some(flags);
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let gateway_id = gateway_id.to_owned();
        runtime::spawn(async move {
            runtime::sleep(this.debounce).await;
            this.run(gateway_id).await;
        });
    }

    /// Closes the window and runs refreshes until no trailing one is left.
    async fn run(self: Arc<Self>, gateway_id: String) {
        let mut next = {
            let mut gateways = self.gateways.lock().unwrap_or_else(|p| p.into_inner());
            let gw = gateways.entry(gateway_id.clone()).or_default();
            gw.running = true;
            gw.window.take().zip(gw.session.clone())
        };
        while let Some((flags, session)) = next.take() {
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
            self.counters.triggered.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(gateway = %gateway_id, ?flags, "refreshing");
            let req = RefreshRequest {
                gateway_id: gateway_id.clone(),
                flags,
                session,
            };
            if let Err(e) = (self.callback)(req).await {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(gateway = %gateway_id, error = %e, "refresh failed");
            }
            let mut gateways = self.gateways.lock().unwrap_or_else(|p| p.into_inner());
            let gw = gateways.entry(gateway_id.clone()).or_default();
            next = gw.trailing.take().zip(gw.session.clone());
            if next.is_none() {
                gw.running = false;
            }
        }
    }

    pub(crate) fn metrics(&self) -> NotificationMetrics {
        let c = &self.counters;
        NotificationMetrics {
            notifications_received: c.received.load(Ordering::Relaxed),
            notifications_debounced: c.debounced.load(Ordering::Relaxed),
            refreshes_triggered: c.triggered.load(Ordering::Relaxed),
            refreshes_failed: c.failed.load(Ordering::Relaxed),
            pending_refreshes: c.pending.load(Ordering::Relaxed),
        }
    }
}

/// What one gateway's server offers, as last refreshed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatewayCatalog {
    /// Tool names.
    pub tools: Vec<String>,
    /// Resource uris.
    pub resources: Vec<String>,
    /// Prompt names.
    pub prompts: Vec<String>,
    /// Refreshes applied, with the flags of each.
    pub refreshes: Vec<RefreshFlags>,
}

/// A catalog of tools, resources and prompts per gateway, kept up to date by refreshes: the
/// harness's own refresh callback (use it with
/// [`PoolBuilder::catalog`](crate::pool::PoolBuilder::catalog)).
///
/// ```
/// let catalog = mcp_harness::pool::Catalog::default();
/// assert!(catalog.gateway("gw-1").is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    inner: Arc<Mutex<BTreeMap<String, GatewayCatalog>>>,
}

impl Catalog {
    /// A gateway's catalog, if it was ever refreshed.
    pub fn gateway(&self, gateway_id: &str) -> Option<GatewayCatalog> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(gateway_id)
            .cloned()
    }

    /// The refresh callback that re-lists what the flags say into this catalog.
    pub fn callback(&self) -> RefreshCallback {
        let catalog = self.clone();
        Arc::new(move |req: RefreshRequest| {
            let catalog = catalog.clone();
            Box::pin(async move {
                let s = &req.session;
                let tools = if req.flags.tools {
                    Some(
                        s.list_tools()
                            .await?
                            .into_iter()
                            .map(|t| t.name.to_string())
                            .collect(),
                    )
                } else {
                    None
                };
                let resources = if req.flags.resources {
                    Some(
                        s.list_resources()
                            .await?
                            .into_iter()
                            .map(|r| r.uri.clone())
                            .collect(),
                    )
                } else {
                    None
                };
                let prompts = if req.flags.prompts {
                    Some(
                        s.list_prompts()
                            .await?
                            .into_iter()
                            .map(|p| p.name.clone())
                            .collect(),
                    )
                } else {
                    None
                };
                let mut all = catalog.inner.lock().unwrap_or_else(|p| p.into_inner());
                let gw = all.entry(req.gateway_id.clone()).or_default();
                if let Some(t) = tools {
                    gw.tools = t;
                }
                if let Some(r) = resources {
                    gw.resources = r;
                }
                if let Some(p) = prompts {
                    gw.prompts = p;
                }
                gw.refreshes.push(req.flags);
                Ok(())
            })
        })
    }
}
