//! Change notifications in both eras.
//!
//! * **Stateless era**: a client opens `subscriptions/listen` with a filter; rmcp
//!   acknowledges it and hands the handler a [`SubscriptionSink`] that tags every
//!   notification with the subscription id and drops what the filter excludes. There is
//!   no session, so a change is announced to every open subscription of the process.
//! * **Handshake era**: the notification goes to the session's peer (its GET stream or
//!   stdout); `notifications/resources/updated` only for URIs the session subscribed to
//!   with `resources/subscribe`.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use rmcp::{
    ErrorData, RoleServer,
    model::ResourceUpdatedNotificationParam,
    service::{RequestContext, SubscriptionSendError, SubscriptionSink},
};

use super::{Handler, era::Era};

/// Which list changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// `notifications/tools/list_changed`.
    Tools,
    /// `notifications/resources/list_changed`.
    Resources,
    /// `notifications/prompts/list_changed`.
    Prompts,
}

impl ListKind {
    /// `tools`, `resources` or `prompts`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Resources => "resources",
            Self::Prompts => "prompts",
        }
    }
}

/// The open `subscriptions/listen` streams of one server process.
#[derive(Default)]
pub(crate) struct Listeners {
    next: AtomicU64,
    open: Mutex<Vec<(u64, SubscriptionSink)>>,
}

impl Listeners {
    /// Registers `sink` until the returned guard is dropped.
    pub(crate) fn register(&self, sink: SubscriptionSink) -> Registration<'_> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((key, sink));
        Registration {
            listeners: self,
            key,
        }
    }

    /// The number of open subscriptions.
    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, SubscriptionSink)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sinks(&self) -> Vec<SubscriptionSink> {
        self.lock().iter().map(|(_, sink)| sink.clone()).collect()
    }

    /// Sends `kind`'s list_changed to every subscription that asked for it; returns how
    /// many got it.
    pub(crate) async fn list_changed(&self, kind: ListKind) -> usize {
        let mut sent = 0;
        for sink in self.sinks() {
            let result = match kind {
                ListKind::Tools => sink.notify_tool_list_changed().await,
                ListKind::Resources => sink.notify_resource_list_changed().await,
                ListKind::Prompts => sink.notify_prompt_list_changed().await,
            };
            sent += delivered(result);
        }
        sent
    }

    /// Sends `notifications/resources/updated` for `uri` to every subscription that
    /// listens to it; returns how many got it.
    pub(crate) async fn resource_updated(&self, uri: &str) -> usize {
        let mut sent = 0;
        for sink in self.sinks() {
            sent += delivered(sink.notify_resource_updated(uri).await);
        }
        sent
    }
}

/// 1 if the notification went out; filtered out or closed streams count 0.
fn delivered(result: Result<(), SubscriptionSendError>) -> usize {
    match result {
        Ok(()) => 1,
        Err(SubscriptionSendError::NotificationNotAccepted(_))
        | Err(SubscriptionSendError::SubscriptionClosed) => 0,
        Err(error) => {
            tracing::debug!(%error, "a subscriptions/listen stream could not take a notification");
            0
        }
    }
}

/// Keeps a subscription registered; removes it when dropped.
pub(crate) struct Registration<'a> {
    listeners: &'a Listeners,
    key: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.listeners.lock().retain(|(key, _)| *key != self.key);
    }
}

impl Handler {
    /// Announces that `kind`'s list changed: to every open `subscriptions/listen`
    /// stream (stateless era) or to this session (handshake era). Returns a sentence for
    /// the tool's result.
    pub(crate) async fn announce_list_changed(
        &self,
        kind: ListKind,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<String, ErrorData> {
        let name = kind.as_str();
        if Era::of(ctx) == Era::Stateless {
            let n = self.shared().listeners.list_changed(kind).await;
            return Ok(format!(
                "notifications/{name}/list_changed sent to {n} subscriptions/listen stream(s)"
            ));
        }
        let sent = match kind {
            ListKind::Tools => ctx.peer.notify_tool_list_changed().await,
            ListKind::Resources => ctx.peer.notify_resource_list_changed().await,
            ListKind::Prompts => ctx.peer.notify_prompt_list_changed().await,
        };
        sent.map_err(|e| {
            ErrorData::internal_error(
                format!("sending notifications/{name}/list_changed: {e}"),
                None,
            )
        })?;
        Ok(format!("notifications/{name}/list_changed sent"))
    }

    /// Announces that the resource `uri` changed: to every `subscriptions/listen` stream
    /// that listens to it (stateless era), or to this session if it subscribed to it with
    /// `resources/subscribe` (handshake era). Returns a sentence for the tool's result.
    pub(crate) async fn announce_resource_updated(
        &self,
        uri: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<String, ErrorData> {
        if Era::of(ctx) == Era::Stateless {
            let n = self.shared().listeners.resource_updated(uri).await;
            return Ok(format!(
                "notifications/resources/updated for {uri} sent to {n} subscriptions/listen stream(s)"
            ));
        }
        if !self.subscriptions().contains(uri) {
            return Ok(format!(
                "this session did not subscribe to {uri}: no notification sent"
            ));
        }
        ctx.peer
            .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
            .await
            .map_err(|e| {
                ErrorData::internal_error(
                    format!("sending notifications/resources/updated: {e}"),
                    None,
                )
            })?;
        Ok(format!("notifications/resources/updated for {uri} sent"))
    }
}
