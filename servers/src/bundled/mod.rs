pub(crate) mod conformance;
pub(crate) mod fast_time;
