//! The session layer: sessions owned by a task. Connect, initialize, serve and close all happen
//! in one owner task on the shared runtime; tests hold cheap [`Session`] handles that work from
//! anywhere.
//!
//! - `target`, `builder`: what a session connects to and with which settings;
//! - `handle`: [`Session`], the handle; `surface`: its era-dependent parts (log levels,
//!   resource subscriptions, cache hints); `notifications`: what the server sent;
//! - `connection`, `owner`: one connection's owner task and the state handles share with it;
//!   `listen`: the stateless era's `subscriptions/listen` stream, held by the owner;
//! - `era/`: the lifecycle of each protocol era; `transport/`: stdio, streamable HTTP, SSE;
//! - `registry`: every open session, closed last-opened-first at process exit;
//! - `probe`: the MCP readiness probe handed to the process layer (and `Server::start`);
//! - `answers`: the client's scripted answers; `rounds`: `input_required` rounds answered
//!   with them (stateless era);
//! - `failure`: how transport errors read.
//!
//! May import `auth`, `process`, `runtime`, `transport`, `errors`, `secret`. Must not import
//! `pool` or anything above it.

mod answers;
mod builder;
mod connection;
mod era;
mod failure;
mod handle;
mod listen;
mod notifications;
mod owner;
mod probe;
mod registry;
mod rounds;
mod surface;
mod target;
mod transport;

pub use answers::{ClientAnswers, ElicitationAnswer};
pub use builder::SessionBuilder;
pub use era::{Era, PROTOCOL_ENV, Protocol};
pub use handle::{Session, tool_text};
pub use notifications::{LogLevel, Notifications};
pub use registry::close_all_sessions;
pub use surface::Listing;
pub use target::Target;
