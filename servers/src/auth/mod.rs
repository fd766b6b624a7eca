pub(crate) mod gate;
pub(crate) mod oauth;
mod reject;
