//! Where a request for a downstream session runs: registering session mappings, routing a
//! request here or to the owning worker, and running it locally.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::forward::Message;
use super::{prefix, validate_session_id};
use crate::errors::{Error, Result};
use crate::pool::identity;
use crate::pool::store::Claim;
use crate::pool::{AcquireRequest, SessionPool};
use crate::runtime;
use crate::session::Era;

/// Where a request for a session runs.
enum Route {
    Local,
    Forward(String),
}

impl SessionPool {
    /// Maps a downstream session id to the pool key of `req` (its url, gateway, transport and
    /// user) for the affinity TTL, locally and in the shared store, and claims the session for
    /// this worker if nobody owns it (unless its upstream is known to be stateless: there is no
    /// upstream session to own). Ids must match `^[A-Za-z0-9_-]{1,128}$`.
    pub async fn register_session_mapping(
        &self,
        downstream_session_id: &str,
        req: &AcquireRequest,
    ) -> Result<()> {
        validate_session_id(downstream_session_id)?;
        let req = req
            .clone()
            .header(identity::SESSION_ID_HEADER, downstream_session_id);
        let key = self.key_of(&req);
        let claim = self.upstream_era(&req) != Some(Era::Stateless);
        self.inner
            .affinity
            .register(downstream_session_id, req, key, claim)
            .await
    }

    /// Runs `method` for the downstream session named by `req`'s `x-mcp-session-id`: here when
    /// nobody or this worker owns it, else on the owning worker (forwarded through the store,
    /// waiting up to the forward timeout). A dead owner is taken over. Every decision is a
    /// `tracing` event (target `mcp_harness::affinity`) with worker, session prefix, method and
    /// decision: no-owner-local, owned-local, reclaimed-local, forwarding, published,
    /// received-forward, forward-completed, store-unavailable-local.
    ///
    /// Ownership concerns handshake-era upstreams only: a request for an upstream the pool
    /// knows to be stateless (pinned, or discovered by an earlier session) runs here, whoever
    /// owns the downstream session, and the decision says `stateless-local`.
    pub async fn execute(&self, req: AcquireRequest, method: &str, params: Value) -> Result<Value> {
        let session = req
            .headers
            .get(identity::SESSION_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Invalid {
                what: "request".into(),
                reason: "execute needs an x-mcp-session-id header naming the downstream session"
                    .into(),
            })?;
        validate_session_id(&session)?;
        let aff = &self.inner.affinity;
        // A stateless upstream keeps no protocol session: any worker serves the request.
        if self.upstream_era(&req) == Some(Era::Stateless) {
            aff.decision(&session, method, "stateless-local");
            return self.execute_local(req, method, params).await;
        }
        match self.route(&session, method).await {
            Route::Local => self.execute_local(req, method, params).await,
            Route::Forward(owner) => {
                let w = aff.worker.as_ref().expect("forwarding needs a worker");
                aff.decision(&session, method, "forwarding");
                aff.counters
                    .forwarded_requests
                    .fetch_add(1, Ordering::Relaxed);
                let id = aff.next_id.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = oneshot::channel();
                aff.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, tx);
                let (url, transport) = req.url_and_transport();
                let msg = Message::Forward {
                    id,
                    from: w.id.clone(),
                    session: session.clone(),
                    method: method.to_owned(),
                    params,
                    url,
                    transport: transport.to_string(),
                    gateway_id: req.gateway_id.clone().unwrap_or_default(),
                };
                if let Err(e) = w
                    .store
                    .publish(
                        &owner,
                        serde_json::to_string(&msg).expect("a message serializes"),
                    )
                    .await
                {
                    aff.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    aff.counters
                        .forwarded_failures
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Error::Forwarded {
                        session: prefix(&session).into(),
                        owner,
                        method: method.into(),
                        reason: e.to_string(),
                    });
                }
                aff.decision(&session, method, "published");
                let reply = runtime::timeout(w.forward_timeout, rx).await;
                if let Ok(Ok(super::Reply {
                    version: Some(v), ..
                })) = &reply
                {
                    self.learn_version(&req, v);
                }
                match reply.map(|r| r.map(|r| r.result)) {
                    Ok(Ok(Ok(v))) => Ok(v),
                    Ok(Ok(Err(reason))) => {
                        aff.counters
                            .forwarded_failures
                            .fetch_add(1, Ordering::Relaxed);
                        Err(Error::Forwarded {
                            session: prefix(&session).into(),
                            owner,
                            method: method.into(),
                            reason,
                        })
                    }
                    Ok(Err(_)) | Err(_) => {
                        aff.pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        aff.counters
                            .forwarded_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        Err(Error::ForwardTimeout {
                            session: prefix(&session).into(),
                            owner,
                            method: method.into(),
                            after: w.forward_timeout,
                        })
                    }
                }
            }
        }
    }

    async fn route(&self, session: &str, method: &str) -> Route {
        let aff = &self.inner.affinity;
        let Some(w) = &aff.worker else {
            aff.decision(session, method, "no-owner-local");
            return Route::Local;
        };
        if aff.store_down() {
            aff.decision(session, method, "store-unavailable-local");
            return Route::Local;
        }
        let claim = w.store.claim(session, &w.id, w.ownership_ttl).await;
        let owner = match claim {
            Ok(Claim::Mine) => {
                aff.recovered();
                let newly = aff
                    .owned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(session.to_owned());
                aff.decision(
                    session,
                    method,
                    if newly {
                        "no-owner-local"
                    } else {
                        "owned-local"
                    },
                );
                return Route::Local;
            }
            Ok(Claim::Owner(o)) => o,
            Err(e) => {
                aff.degrade("claiming a session", &e);
                aff.decision(session, method, "store-unavailable-local");
                return Route::Local;
            }
        };
        match w.store.is_alive(&owner).await {
            Ok(true) => Route::Forward(owner),
            Ok(false) => match w
                .store
                .take_over(session, &owner, &w.id, w.ownership_ttl)
                .await
            {
                Ok(true) => {
                    aff.owned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(session.to_owned());
                    aff.decision(session, method, "reclaimed-local");
                    Route::Local
                }
                // Another worker won the race: it owns the session now.
                Ok(false) => match w.store.owner(session).await {
                    Ok(Some(o)) if o != w.id => Route::Forward(o),
                    _ => {
                        aff.decision(session, method, "owned-local");
                        Route::Local
                    }
                },
                Err(e) => {
                    aff.degrade("taking over a session", &e);
                    aff.decision(session, method, "store-unavailable-local");
                    Route::Local
                }
            },
            Err(e) => {
                aff.degrade("checking an owner", &e);
                aff.decision(session, method, "store-unavailable-local");
                Route::Local
            }
        }
    }

    /// Runs a method on a pooled session of this worker; forwarded requests end here (they are
    /// never forwarded again).
    pub(crate) async fn execute_local(
        &self,
        req: AcquireRequest,
        method: &str,
        params: Value,
    ) -> Result<Value> {
        let method = method.to_owned();
        self.with_session(req, |s| async move {
            match method.as_str() {
                "tools/call" => {
                    let name = params
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let args = params.get("arguments").cloned().unwrap_or(Value::Null);
                    let r = s.call_tool(&name, args).await?;
                    Ok(serde_json::to_value(r).unwrap_or(Value::Null))
                }
                "ping" => s.ping().await.map(|()| serde_json::json!({})),
                other => s.request(other, params).await,
            }
        })
        .await
    }

    /// Waits, at most `within`, until this worker takes part in ownership: it listens for
    /// forwarded requests (its inbox subscription is up) and its heartbeat is in the store (so
    /// other workers see it alive and forward to it rather than take its sessions over). False
    /// if that did not happen in time (or this pool is not a worker).
    pub async fn worker_ready(&self, within: Duration) -> bool {
        let mut rx = self.inner.affinity.ready.subscribe();
        runtime::timeout(within, rx.wait_for(|r| r.inbox && r.heartbeat))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether another worker is recorded as the owner of `session` (for tests and tools).
    pub async fn session_owner(&self, session: &str) -> Option<String> {
        let w = self.inner.affinity.worker.as_ref()?;
        w.store.owner(session).await.ok().flatten()
    }
}
