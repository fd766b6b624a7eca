//! The MCP readiness probe the session layer hands to the process layer, and the public
//! `Server::start` functions that use it.

use futures::FutureExt as _;
use futures::future::BoxFuture;

use super::era::handshake;
use super::transport::{HTTP_CLIENT, sse, streamable_http};
use crate::errors::Result;
use crate::process::{ProbeError, Server, ServerSpec};
use crate::transport::Transport;

/// A one-shot MCP initialize round trip, used as a readiness probe.
fn probe_initialize(
    url: String,
    transport: Transport,
) -> BoxFuture<'static, std::result::Result<(), ProbeError>> {
    async move {
        let probed = if transport == Transport::Sse {
            match sse::anonymous(&url).await {
                Ok(t) => handshake::probe(t).await,
                Err(e) => Err(e),
            }
        } else {
            handshake::probe(streamable_http::anonymous(&url)).await
        };
        match probed {
            Ok(()) => Ok(()),
            // A refused certificate stays refused: say so now, not at the startup deadline.
            Err(e) => match crate::tls::certificate_refusal(&HTTP_CLIENT.get(), &url).await {
                Some(refusal) => Err(ProbeError::Stop(refusal)),
                None => Err(ProbeError::Retry(e)),
            },
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
