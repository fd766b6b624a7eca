//! Placeholder crate root: the scenarios live in `integration/`.
