pub(crate) mod conformance;
pub(crate) mod fast_test;
pub(crate) mod fast_time;

use crate::{Bundled, handler::BundledServer};

/// The bundled server `kind` names.
pub(crate) fn server(kind: Bundled) -> &'static dyn BundledServer {
    match kind {
        Bundled::FastTest => &fast_test::FastTest,
        Bundled::FastTime => &fast_time::FastTime,
        Bundled::Conformance => &conformance::Conformance,
    }
}
