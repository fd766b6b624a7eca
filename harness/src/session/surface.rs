//! The parts of a session's surface whose wire differs by era: log levels, resource
//! subscriptions and the stateless era's listen stream, and the cache hints on list results.

use rmcp::model::{
    CacheScope, ClientRequest, CustomRequest, ListPromptsRequest, ListResourcesRequest,
    ListToolsRequest, PaginatedRequestParams, Prompt, Resource, ServerResult,
    SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use tokio::sync::oneshot;

use super::connection::Command;
use super::era::Era;
use super::handle::Session;
use super::notifications::LogLevel;
use crate::errors::{Error, Result};
use crate::runtime;

/// A list result with the server's cache hints (`ttlMs`, `cacheScope`, 2026-07-28).
///
/// The harness never caches: every call asks the server. The hints are there to be checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Listing<T> {
    /// Every item, all pages.
    pub items: Vec<T>,
    /// How long the result may be reused, in milliseconds: the smallest of all pages; `None`
    /// when no page said (handshake-era servers do not).
    pub ttl_ms: Option<u64>,
    /// Who may reuse it: `private` if any page said so, `public` if every page that said
    /// anything said that; `None` when no page said.
    pub cache_scope: Option<CacheScope>,
}

impl<T> Listing<T> {
    fn add_page(&mut self, items: Vec<T>, ttl_ms: Option<u64>, scope: Option<CacheScope>) {
        self.items.extend(items);
        if let Some(t) = ttl_ms {
            self.ttl_ms = Some(self.ttl_ms.map_or(t, |m| m.min(t)));
        }
        if let Some(s) = scope {
            self.cache_scope = match (self.cache_scope.take(), s) {
                (Some(CacheScope::Private), _) | (_, CacheScope::Private) => {
                    Some(CacheScope::Private)
                }
                (_, s) => Some(s),
            };
        }
    }
}

type Page<T> = (Vec<T>, Option<String>, Option<u64>, Option<CacheScope>);

impl Session {
    /// Another handle to the same session whose requests carry log level `level` in their
    /// `_meta` (`io.modelcontextprotocol/logLevel`), the stateless era's per-request logging
    /// level. The session and its other handles are unchanged.
    ///
    /// Only the stateless era has per-request levels: on a handshake-era session the requests
    /// of this handle fail with [`Error::Invalid`] (use [`set_log_level`](Self::set_log_level),
    /// which sends `logging/setLevel` for the whole session).
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// # let session: mcp_harness::Session = unimplemented!();
    /// use mcp_harness::LogLevel;
    /// let chatty = session.with_log_level(LogLevel::Debug);
    /// let mut seen = chatty.notifications();
    /// chatty.call_tool("log", serde_json::json!({"level": "debug"})).await?;
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub fn with_log_level(&self, level: LogLevel) -> Session {
        Session {
            inner: self.inner.clone(),
            request_timeout: self.request_timeout,
            log_level: Some(level),
        }
    }

    /// Sets the level of the log messages the server sends this session: `logging/setLevel`
    /// in the handshake era; in the stateless era (which has no such method) every later
    /// request of the session carries the level in its `_meta`.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// # let session: mcp_harness::Session = unimplemented!();
    /// use mcp_harness::LogLevel;
    /// session.set_log_level(LogLevel::Warning).await?;
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub async fn set_log_level(&self, level: LogLevel) -> Result<()> {
        match self.era() {
            Era::Handshake => {
                let req = ClientRequest::CustomRequest(CustomRequest::new(
                    "logging/setLevel",
                    Some(serde_json::json!({"level": level.as_str()})),
                ));
                self.send("logging/setLevel", req).await.map(|_| ())
            }
            Era::Stateless => {
                *self
                    .inner
                    .log_level
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Some(level);
                Ok(())
            }
        }
    }

    /// Subscribes to updates of the resource at `uri`: `resources/subscribe` in the handshake
    /// era; in the stateless era the session's `subscriptions/listen` stream is opened again
    /// with the resource in its filter. Updates arrive on [`notifications`](Self::notifications)
    /// as `notifications/resources/updated`.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// # let session: mcp_harness::Session = unimplemented!();
    /// use std::time::Duration;
    /// use mcp_harness::rmcp::model::ServerNotification;
    /// let mut seen = session.notifications();
    /// session.subscribe_resource("test://counter").await?;
    /// session.call_tool("bump_resource", serde_json::json!({})).await?;
    /// let update = seen
    ///     .wait_for(Duration::from_secs(5), |n| matches!(n, ServerNotification::ResourceUpdatedNotification(_)))
    ///     .await;
    /// assert!(update.is_some());
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub async fn subscribe_resource(&self, uri: &str) -> Result<()> {
        self.resource_subscription(uri, true).await
    }

    /// Stops the updates [`subscribe_resource`](Self::subscribe_resource) asked for.
    pub async fn unsubscribe_resource(&self, uri: &str) -> Result<()> {
        self.resource_subscription(uri, false).await
    }

    // rmcp marks `resources/subscribe` legacy-only: it is, and this is the legacy era's path.
    #[allow(deprecated)]
    async fn resource_subscription(&self, uri: &str, on: bool) -> Result<()> {
        use rmcp::model::{SubscribeRequest, UnsubscribeRequest};
        let method = if on {
            "resources/subscribe"
        } else {
            "resources/unsubscribe"
        };
        if self.era() == Era::Handshake {
            let req = if on {
                ClientRequest::SubscribeRequest(SubscribeRequest::new(SubscribeRequestParams::new(
                    uri,
                )))
            } else {
                ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(
                    UnsubscribeRequestParams::new(uri),
                ))
            };
            return self.send(method, req).await.map(|_| ());
        }
        let conn = self.conn();
        let (reply, done) = oneshot::channel();
        let closed = |reason: String| Error::Closed {
            session: self.name().to_owned(),
            method: method.to_owned(),
            reason,
            server_state: conn.server_state(),
        };
        conn.commands
            .send(Command::Listen {
                uri: uri.to_owned(),
                on,
                reply,
            })
            .map_err(|_| closed("the session is closed".into()))?;
        let timeout = self.inner.cfg.request_timeout;
        match runtime::timeout(timeout, done).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(Error::Protocol {
                session: self.name().to_owned(),
                method: method.to_owned(),
                detail: format!("the listen stream could not be opened with `{uri}`: {reason}"),
            }),
            Ok(Err(_)) => Err(closed("the session closed".into())),
            Err(_) => Err(Error::Timeout {
                session: self.name().to_owned(),
                method: method.to_owned(),
                after: timeout,
                server_state: conn.server_state(),
            }),
        }
    }

    /// The id of the session's open `subscriptions/listen` stream (stateless era): the
    /// `subscriptionId` its notifications carry. `None` in the handshake era, when the
    /// server advertises nothing to listen to, or when listening failed or was turned off
    /// ([`SessionBuilder::listen`](crate::SessionBuilder::listen)).
    pub fn listen_id(&self) -> Option<String> {
        self.conn()
            .shared
            .listen_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Lists the server's tools (all pages) with the result's cache hints.
    ///
    /// ```no_run
    /// # mcp_harness::run(async {
    /// # let session: mcp_harness::Session = unimplemented!();
    /// let tools = session.tools_listing().await?;
    /// println!("{} tools, fresh for {:?} ms", tools.items.len(), tools.ttl_ms);
    /// # Ok::<_, mcp_harness::Error>(()) });
    /// ```
    pub async fn tools_listing(&self) -> Result<Listing<Tool>> {
        self.listing(
            "tools/list",
            |p| ClientRequest::ListToolsRequest(ListToolsRequest::with_param_opt(p)),
            |r| match r {
                ServerResult::ListToolsResult(r) => {
                    Ok((r.tools, r.next_cursor, r.ttl_ms, r.cache_scope))
                }
                other => Err(Box::new(other)),
            },
        )
        .await
    }

    /// Lists the server's resources (all pages) with the result's cache hints.
    pub async fn resources_listing(&self) -> Result<Listing<Resource>> {
        self.listing(
            "resources/list",
            |p| ClientRequest::ListResourcesRequest(ListResourcesRequest::with_param_opt(p)),
            |r| match r {
                ServerResult::ListResourcesResult(r) => {
                    Ok((r.resources, r.next_cursor, r.ttl_ms, r.cache_scope))
                }
                other => Err(Box::new(other)),
            },
        )
        .await
    }

    /// Lists the server's prompts (all pages) with the result's cache hints.
    pub async fn prompts_listing(&self) -> Result<Listing<Prompt>> {
        self.listing(
            "prompts/list",
            |p| ClientRequest::ListPromptsRequest(ListPromptsRequest::with_param_opt(p)),
            |r| match r {
                ServerResult::ListPromptsResult(r) => {
                    Ok((r.prompts, r.next_cursor, r.ttl_ms, r.cache_scope))
                }
                other => Err(Box::new(other)),
            },
        )
        .await
    }

    /// Follows `nextCursor` until the last page of a `*/list` method.
    pub(super) async fn listing<T>(
        &self,
        method: &str,
        request: impl Fn(Option<PaginatedRequestParams>) -> ClientRequest,
        page: impl Fn(ServerResult) -> std::result::Result<Page<T>, Box<ServerResult>>,
    ) -> Result<Listing<T>> {
        let mut out = Listing {
            items: Vec::new(),
            ttl_ms: None,
            cache_scope: None,
        };
        let mut cursor = None;
        loop {
            let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            match page(self.send(method, request(params)).await?) {
                Ok((items, next, ttl, scope)) => {
                    out.add_page(items, ttl, scope);
                    match next {
                        Some(c) => cursor = Some(c),
                        None => return Ok(out),
                    }
                }
                Err(other) => return Err(self.unexpected(method, &other)),
            }
        }
    }
}

/// Helpers to build requests whose params are optional.
pub(super) trait WithParamOpt<P> {
    fn with_param_opt(p: Option<P>) -> Self;
}

impl<M: Default, P> WithParamOpt<P> for rmcp::model::RequestOptionalParam<M, P> {
    fn with_param_opt(params: Option<P>) -> Self {
        rmcp::model::RequestOptionalParam {
            method: M::default(),
            params,
            extensions: Default::default(),
        }
    }
}
