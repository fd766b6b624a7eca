//! What a session connects to: [`Target`].

use crate::process::{Server, ServerSpec};
use crate::transport::Transport;

/// What a session connects to.
#[derive(Clone, Debug)]
// Built once per session; boxing the spec would only make every caller write `Box::new`.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Target {
    /// Spawn this command for the session and speak JSON-RPC over its stdin/stdout.
    Stdio(ServerSpec),
    /// A streamable HTTP endpoint (for example `http://127.0.0.1:4000/mcp`).
    Http(String),
    /// A legacy HTTP+SSE endpoint (2024-11-05), the url of its event stream (for example
    /// `http://127.0.0.1:4000/sse`).
    Sse(String),
    /// A server process started with [`Server::start`]; its state is named in errors.
    Server(Server),
}

impl Target {
    /// The target as messages show it: the url, or the stdio server's name and command line.
    ///
    /// ```
    /// use mcp_harness::Target;
    /// let t = Target::Http("http://127.0.0.1:4000/mcp".into());
    /// assert_eq!(t.describe(), "http://127.0.0.1:4000/mcp");
    /// ```
    pub fn describe(&self) -> String {
        match self {
            Target::Stdio(spec) => {
                format!("stdio server `{}` (`{}`)", spec.name, spec.command_line())
            }
            Target::Http(url) | Target::Sse(url) => url.clone(),
            Target::Server(s) => s.url().to_owned(),
        }
    }

    /// The transport used for this target.
    pub fn transport(&self) -> Transport {
        match self {
            Target::Stdio(_) => Transport::Stdio,
            Target::Http(_) => Transport::StreamableHttp,
            Target::Sse(_) => Transport::Sse,
            Target::Server(s) => s.transport(),
        }
    }
}

impl From<Server> for Target {
    fn from(s: Server) -> Self {
        Target::Server(s)
    }
}

impl From<&Server> for Target {
    fn from(s: &Server) -> Self {
        Target::Server(s.clone())
    }
}
