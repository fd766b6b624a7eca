//! The bundled servers, one module each (`fast_test`, `fast_time`, `conformance`), each a
//! [`BundledServer`] over the shared handler plumbing; [`server`] picks one.
//!
//! A server may import `crate::handler` and `crate::options`; it must not import
//! `crate::transport`, `crate::auth` or another bundled server.

pub(crate) mod conformance;
pub(crate) mod fast_test;
#[cfg(feature = "fast-time")]
pub(crate) mod fast_time;

use crate::{
    handler::BundledServer,
    options::{Bundled, ServeError},
};

/// The bundled server `kind` names, if this build has it.
pub(crate) fn server(kind: Bundled) -> Result<&'static dyn BundledServer, ServeError> {
    match kind {
        Bundled::FastTest => Ok(&fast_test::FastTest),
        #[cfg(feature = "fast-time")]
        Bundled::FastTime => Ok(&fast_time::FastTime),
        #[cfg(not(feature = "fast-time"))]
        Bundled::FastTime => Err(ServeError::InvalidOptions(
            "fast-time is not built into this program: enable the `fast-time` feature of \
             mcp-harness-fixtures, mcp-harness or mcp-harness-servers (the mcp-harness command \
             line has it)"
                .into(),
        )),
        Bundled::Conformance => Ok(&conformance::Conformance),
    }
}
