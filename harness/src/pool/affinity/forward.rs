//! Forwarding between workers over the ownership store: the message format, a worker's heartbeat
//! and inbox listener, and running the requests forwarded to it.

use std::sync::Weak;
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::WorkerConfig;
use crate::pool::identity;
use crate::pool::state::PoolInner;
use crate::pool::{AcquireRequest, SessionPool};
use crate::runtime;
use crate::transport::Transport;

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Message {
    Forward {
        id: u64,
        from: String,
        session: String,
        method: String,
        params: Value,
        /// Where the caller meant it to run (never its headers): used when the owner has no
        /// mapping of its own.
        url: String,
        transport: String,
        gateway_id: String,
    },
    Reply {
        id: u64,
        ok: Option<Value>,
        error: Option<String>,
        /// The protocol version the owner discovered for the upstream, if it did: the caller
        /// learns the upstream's era from it (a stateless upstream needs no forwarding).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
}

/// Starts the heartbeat and the inbox listener of a worker pool.
pub(crate) fn start_worker(pool: Weak<PoolInner>) {
    let Some(p) = pool.upgrade() else { return };
    let Some(w) = p.affinity.worker.clone() else {
        return;
    };
    drop(p);
    let hb_pool = pool.clone();
    let hb = w.clone();
    runtime::spawn(async move {
        loop {
            let Some(p) = hb_pool.upgrade() else { return };
            if p.closed() {
                return;
            }
            let aff = p.affinity.clone();
            drop(p);
            match hb.store.heartbeat(&hb.id, hb.heartbeat_interval * 3).await {
                Ok(()) => {
                    aff.recovered();
                    aff.ready
                        .send_if_modified(|r| !std::mem::replace(&mut r.heartbeat, true));
                    let owned: Vec<String> = aff
                        .owned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .cloned()
                        .collect();
                    for s in owned {
                        match hb.store.renew(&s, &hb.id, hb.ownership_ttl).await {
                            Ok(true) => {}
                            Ok(false) => {
                                aff.owned
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&s);
                            }
                            Err(e) => aff.degrade("renewing ownership", &e),
                        }
                    }
                }
                Err(e) => {
                    aff.ready
                        .send_if_modified(|r| std::mem::replace(&mut r.heartbeat, false));
                    aff.degrade("the heartbeat", &e);
                }
            }
            runtime::sleep(hb.heartbeat_interval).await;
        }
    });
    runtime::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(p) = pool.upgrade() else { return };
            if p.closed() {
                return;
            }
            let aff = p.affinity.clone();
            drop(p);
            match w.store.subscribe(&w.id).await {
                Ok(mut inbox) => {
                    backoff = Duration::from_millis(50);
                    aff.ready.send_modify(|r| r.inbox = true);
                    while let Some(raw) = inbox.next().await {
                        let Some(p) = pool.upgrade() else { return };
                        handle_message(SessionPool { inner: p }, &w, raw);
                    }
                    aff.ready.send_modify(|r| r.inbox = false);
                    aff.degrade(
                        "listening for forwarded requests",
                        &"the subscription ended",
                    );
                }
                Err(e) => aff.degrade("subscribing to the inbox", &e),
            }
            runtime::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

fn handle_message(pool: SessionPool, w: &WorkerConfig, raw: String) {
    let Ok(msg) = serde_json::from_str::<Message>(&raw) else {
        tracing::debug!("ignoring a malformed message in the inbox");
        return;
    };
    match msg {
        Message::Reply {
            id,
            ok,
            error,
            version,
        } => {
            let tx = pool
                .inner
                .affinity
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(tx) = tx {
                let result = match (ok, error) {
                    (_, Some(e)) => Err(e),
                    (Some(v), None) => Ok(v),
                    (None, None) => Ok(Value::Null),
                };
                let _ = tx.send(super::Reply { result, version });
            }
        }
        Message::Forward {
            id,
            from,
            session,
            method,
            params,
            url,
            transport,
            gateway_id,
        } => {
            let store = w.store.clone();
            // The owner handles forwards concurrently (the reference took them one at a time).
            runtime::spawn(async move {
                let aff = pool.inner.affinity.clone();
                aff.decision(&session, &method, "received-forward");
                let target = (
                    url,
                    transport.parse().unwrap_or(Transport::StreamableHttp),
                    gateway_id,
                );
                let req = pool.forwarded_request(&session, target).await;
                let result = pool.execute_local(req.clone(), &method, params).await;
                let version = pool.discovered_version(&req);
                let reply = match result {
                    Ok(v) => Message::Reply {
                        id,
                        ok: Some(v),
                        error: None,
                        version,
                    },
                    Err(e) => Message::Reply {
                        id,
                        ok: None,
                        error: Some(e.to_string()),
                        version,
                    },
                };
                aff.decision(&session, &method, "forward-completed");
                let _ = store
                    .publish(
                        &from,
                        serde_json::to_string(&reply).expect("a message serializes"),
                    )
                    .await;
            });
        }
    }
}

impl SessionPool {
    /// The acquire request to run a forwarded request with: the local mapping's (which has the
    /// upstream credentials), else one rebuilt from where the caller meant it to run.
    async fn forwarded_request(
        &self,
        session: &str,
        (url, transport, gateway_id): (String, Transport, String),
    ) -> AcquireRequest {
        match self.inner.affinity.key_for_session(session).await {
            Some((_, Some(req))) => req,
            Some((key, None)) => AcquireRequest::url(key.url, key.transport)
                .gateway(key.gateway_id)
                .header(identity::SESSION_ID_HEADER, session),
            None => {
                let mut req = AcquireRequest::url(url, transport)
                    .header(identity::SESSION_ID_HEADER, session);
                if !gateway_id.is_empty() {
                    req = req.gateway(gateway_id);
                }
                req
            }
        }
    }
}
