//! The MCP readiness probe the session layer hands to the process layer, and the public
//! `Server::start` functions that use it.

use futures::FutureExt as _;
use futures::future::BoxFuture;

use super::era::handshake;
use super::transport::{sse, streamable_http};
use crate::errors::Result;
use crate::process::{Server, ServerSpec};
use crate::transport::Transport;

/// A one-shot MCP initialize round trip, used as a readiness probe.
fn probe_initialize(
    url: String,
    transport: Transport,
) -> BoxFuture<'static, std::result::Result<(), String>> {
    async move {
        if transport == Transport::Sse {
            handshake::probe(sse::anonymous(&url).await?).await
        } else {
            handshake::probe(streamable_http::anonymous(&url)).await
        }
    }
    .boxed()
}

impl Server {
    /// Starts a network server and waits until it is ready (see [`Readiness`]), within the
    /// spec's startup deadline. A process that exits first fails at once with its log tail.
    ///
    /// [`Readiness`]: crate::Readiness
    pub async fn start(spec: ServerSpec) -> Result<Server> {
        Server::launch(spec, None, probe_initialize).await
    }

    /// Starts a network server with `{port}` set to `port` on its first start.
    pub async fn start_on_port(spec: ServerSpec, port: u16) -> Result<Server> {
        Server::launch(spec, Some(port), probe_initialize).await
    }
}
