//! Which wire a client and a server speak: the one type every layer shares.
//!
//! The bottom of the library beside `runtime`: it imports nothing of ours but the error type.

use std::fmt;

use crate::errors::{Error, Result};

/// How a client talks to a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Transport {
    /// JSON-RPC over the child's stdin/stdout; one process per session.
    #[default]
    Stdio,
    /// Streamable HTTP (the 2025-03-26 transport and later).
    StreamableHttp,
    /// Legacy HTTP+SSE (the 2024-11-05 transport).
    Sse,
}

impl Transport {
    /// The lower-case name used in keys, metrics and logs: `stdio`, `streamable_http`, `sse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::StreamableHttp => "streamable_http",
            Transport::Sse => "sse",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Transport {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "stdio" => Ok(Transport::Stdio),
            "http" | "streamable_http" | "streamable-http" => Ok(Transport::StreamableHttp),
            "sse" => Ok(Transport::Sse),
            other => Err(Error::Invalid {
                what: format!("transport `{other}`"),
                reason: "expected one of: stdio, http (streamable_http), sse".into(),
            }),
        }
    }
}
