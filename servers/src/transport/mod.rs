//! Transport plumbing: how a client reaches a bundled server. `stdio`; streamable HTTP
//! (`http`, which also holds the listener plumbing `sse` reuses: `App`, `run`,
//! `base_url`); the legacy HTTP+SSE transport (`sse`).
//!
//! The server to run arrives as a `&dyn BundledServer` argument: must not import
//! `crate::bundled`.

pub(crate) mod http;
pub(crate) mod sse;
pub(crate) mod stdio;
pub(crate) mod tls;
