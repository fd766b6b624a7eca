//! The lifecycle of each protocol era, one module each, over any transport.
//!
//! - `handshake`: the handshake era (MCP 2024-11-05 .. 2025-11-25): `initialize`, then
//!   requests on a protocol session; the server may send requests back (answered by
//!   [`ClientHandler`]).
//!
//! May import the transports' types (from rmcp) and `crate::runtime`; must not import the
//! session's handle, builder or owner task.

pub(super) mod handshake;

pub(super) use handshake::ClientHandler;
