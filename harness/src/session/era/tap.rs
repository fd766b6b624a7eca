//! Notifications in the order the server sent them.
//!
//! rmcp hands every incoming notification to the client's handler in a task of its own, so
//! two notifications sent back to back (a debug log line, then a warning) can reach the
//! handler in either order. [`Tap`] sits between rmcp and the transport and publishes each
//! notification to the session's subscribers as it comes off the wire, in order. Notifications
//! of a `subscriptions/listen` stream are left to the listener (rmcp routes them to it).

use std::borrow::Cow;
use std::future::Future;

use rmcp::model::{GetMeta as _, JsonRpcMessage, ServerNotification};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::broadcast;

/// A transport that publishes the notifications it receives.
pub(in crate::session) struct Tap<T> {
    inner: T,
    notifications: broadcast::Sender<ServerNotification>,
}

impl<T> Tap<T> {
    pub(in crate::session) fn new(
        inner: T,
        notifications: broadcast::Sender<ServerNotification>,
    ) -> Self {
        Tap {
            inner,
            notifications,
        }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Tap<T> {
    type Error = T::Error;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await;
        if let Some(JsonRpcMessage::Notification(n)) = &message {
            let listened = n.notification.get_meta().subscription_id().is_some()
                || matches!(
                    n.notification,
                    ServerNotification::SubscriptionsAcknowledgedNotification(_)
                );
            if !listened {
                let _ = self.notifications.send(n.notification.clone());
            }
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
