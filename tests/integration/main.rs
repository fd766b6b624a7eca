//! The mcp-harness scenario suite: one integration-test binary, a module per theme.
//! Every scenario runs against real server processes over real transports.

mod support;

mod affinity;
mod answers;
mod cancellation;
mod cli;
mod config;
mod conformance;
mod eras;
mod faults;
mod hostile;
mod identity;
mod logs;
mod notifications;
mod oauth_cimd;
mod oauth_m2m;
mod oauth_rules;
mod pool;
mod pool_lent;
mod runtime;
mod servers_eras;
mod stateless;
mod teardown;
mod tls;
mod transports;
