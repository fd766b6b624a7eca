//! The bundled servers, one module each (`fast_test`, `fast_time`, `conformance`), each a
//! [`BundledServer`] over the shared handler plumbing; [`server`] picks one.
//!
//! A server may import `crate::handler` and `crate::options`; it must not import
//! `crate::transport`, `crate::auth` or another bundled server.

pub(crate) mod conformance;
pub(crate) mod fast_test;
pub(crate) mod fast_time;

use crate::{handler::BundledServer, options::Bundled};

/// The bundled server `kind` names.
pub(crate) fn server(kind: Bundled) -> &'static dyn BundledServer {
    match kind {
        Bundled::FastTest => &fast_test::FastTest,
        Bundled::FastTime => &fast_time::FastTime,
        Bundled::Conformance => &conformance::Conformance,
    }
}
