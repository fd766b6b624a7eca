//! Auth plumbing for the HTTP transports: the credential check in front of every request
//! (`gate`), the built-in OAuth 2.1 authorization server (`oauth`), and why a request is
//! refused (`reject`), which both use.
//!
//! Imports run one way: gate -> oauth, and both -> reject. Must not import
//! `crate::handler`, `crate::transport` or `crate::bundled`.

pub(crate) mod gate;
pub(crate) mod oauth;
mod reject;
