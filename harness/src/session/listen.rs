//! `subscriptions/listen` (stateless era): the one long-lived request on which a 2026-07-28
//! server sends list_changed notifications and resource updates. It replaces the handshake
//! era's GET stream and `resources/subscribe`.
//!
//! The owner task holds the subscription: it opens it after `server/discover` (when the server
//! advertises something to listen to), forwards what arrives to the session's notifications,
//! opens it again with a new filter when the test subscribes to a resource, and opens it once
//! more when the server ends it.

use std::time::Duration;

use rmcp::model::{ServerCapabilities, ServerNotification, SubscriptionFilter};
use rmcp::service::{Peer, RoleClient, Subscription, SubscriptionEnd};

use crate::runtime;

/// The filter a session listens with: every list_changed the server advertises, and the
/// resources the test subscribed to. `None` when there is nothing to listen to.
pub(super) fn filter_for(caps: &ServerCapabilities, uris: &[String]) -> Option<SubscriptionFilter> {
    let mut filter = SubscriptionFilter::new();
    let on = |b: Option<bool>| b.unwrap_or(false).then_some(true);
    filter.tools_list_changed = caps.tools.as_ref().and_then(|t| on(t.list_changed));
    filter.prompts_list_changed = caps.prompts.as_ref().and_then(|p| on(p.list_changed));
    filter.resources_list_changed = caps.resources.as_ref().and_then(|r| on(r.list_changed));
    if !uris.is_empty() {
        filter.resource_subscriptions = Some(uris.to_vec());
    }
    (filter != SubscriptionFilter::new()).then_some(filter)
}

/// How many times a connection opens its listen stream again after the server ended it.
const MAX_REOPENS: u32 = 5;

/// The owner's side of the listen stream.
pub(super) struct Listener {
    peer: Peer<RoleClient>,
    caps: ServerCapabilities,
    bound: Duration,
    uris: Vec<String>,
    current: Option<Subscription>,
    /// How many times the stream was opened again after it ended (bounded: a server that ends
    /// every stream at once is not listened to forever).
    reopens: u32,
}

impl Listener {
    pub(super) fn new(peer: Peer<RoleClient>, caps: ServerCapabilities, bound: Duration) -> Self {
        Listener {
            peer,
            caps,
            bound,
            uris: Vec::new(),
            current: None,
            reopens: 0,
        }
    }

    /// The id of the open subscription (the `subscriptions/listen` request id).
    pub(super) fn id(&self) -> Option<String> {
        self.current.as_ref().map(|s| s.id().to_string())
    }

    /// Opens the stream with the filter the capabilities and subscribed resources call for,
    /// replacing the open one (cancelled once the new one is acknowledged).
    pub(super) async fn open(&mut self) -> Result<(), String> {
        let Some(filter) = filter_for(&self.caps, &self.uris) else {
            self.close().await;
            return Ok(());
        };
        let listened = runtime::timeout(self.bound, self.peer.listen(filter)).await;
        match listened {
            Ok(Ok(sub)) => {
                if let Some(mut old) = self.current.replace(sub) {
                    let _ = old.cancel_with_reason(Some("filter changed".into())).await;
                }
                tracing::debug!(id = ?self.id(), "listening");
                Ok(())
            }
            Ok(Err(e)) => Err(format!(
                "`subscriptions/listen` failed: {}",
                super::failure::error_chain(&e)
            )),
            Err(_) => Err(format!(
                "`subscriptions/listen` was not acknowledged within {:?}",
                self.bound
            )),
        }
    }

    /// Adds (or removes) a resource subscription and opens the stream again with it.
    pub(super) async fn subscribe(&mut self, uri: String, on: bool) -> Result<(), String> {
        if on {
            if !self.uris.contains(&uri) {
                self.uris.push(uri);
            }
        } else {
            self.uris.retain(|u| *u != uri);
        }
        self.open().await
    }

    /// The next notification on the stream; pending forever while none is open. `None` once
    /// the stream ended (the reason is logged); the caller may [`reopen`](Self::reopen).
    pub(super) async fn next(&mut self) -> Option<ServerNotification> {
        let Some(sub) = self.current.as_mut() else {
            return std::future::pending().await;
        };
        match sub.next().await {
            Ok(Some(n)) => Some(n),
            Ok(None) => {
                let end = match sub.end() {
                    Some(SubscriptionEnd::Graceful(_)) => "the server ended it".to_owned(),
                    Some(SubscriptionEnd::Cancelled) => "it was cancelled".to_owned(),
                    Some(SubscriptionEnd::Lagged { capacity }) => {
                        format!("more than {capacity} notifications went unread")
                    }
                    _ => "its stream closed".to_owned(),
                };
                tracing::info!("`subscriptions/listen` ended: {end}");
                self.current = None;
                None
            }
            Err(e) => {
                // rmcp ended it: a notification outside the acknowledged filter, or an answer
                // that is not a listen result. A server bug worth seeing.
                tracing::warn!(
                    "`subscriptions/listen` broke: {} (the server sent something outside the \
                     subscription it acknowledged)",
                    super::failure::error_chain(&e)
                );
                self.current = None;
                None
            }
        }
    }

    /// Opens the stream again after it ended (at most [`MAX_REOPENS`] times per connection).
    pub(super) async fn reopen(&mut self) {
        if self.reopens >= MAX_REOPENS {
            tracing::warn!("`subscriptions/listen` ended {MAX_REOPENS} times: not listening again");
            return;
        }
        self.reopens += 1;
        if let Err(e) = self.open().await {
            tracing::warn!("could not listen again: {e}");
        }
    }

    /// Cancels the open stream, if any.
    pub(super) async fn close(&mut self) {
        if let Some(mut sub) = self.current.take() {
            let _ = runtime::timeout(
                self.bound,
                sub.cancel_with_reason(Some("session closing".into())),
            )
            .await;
        }
    }
}
