//! The process layer: real server processes, spawned, made ready, logged, signalled and killed
//! reliably.
//!
//! Every child is spawned from one thread that lives as long as the test process, with
//! `PR_SET_PDEATHSIG(SIGKILL)` (which fires when the *spawning thread* dies) and in a process
//! group of its own, so a killed test process never leaves a server behind. PDEATHSIG reaches
//! the child only; for servers started through a wrapper (`npx`, `uv run`, `sh -c`), a
//! watchdog process kills the whole process group when the test process dies (see
//! `watchdog`). Children never inherit the test's stdout/stderr: their output goes to log
//! files.
//!
//! - `spec`: [`ServerSpec`], where the address comes from, when the server counts as ready;
//! - `spawn`: the spawner thread; `watchdog`: the process-group killer of last resort;
//! - `child`: one spawned process (state, signals, logs) and the list of live children;
//! - `logs`: log files and their tails; `readiness`: address discovery and probes;
//! - `server`: [`Server`], a running network server.
//!
//! May import: `runtime`, `transport`, `errors`. Must not import `session`, `auth`, `pool` or
//! anything above them: the MCP readiness probe is handed in by the session layer
//! (`McpProbe`), which also defines `Server::start`.

mod child;
mod logs;
mod readiness;
mod server;
mod spawn;
mod spec;
mod watchdog;

pub(crate) use child::{ChildProcess, Spawned, print_log_tails_for_failure};
pub(crate) use logs::keep as keep_logs;
pub(crate) use readiness::ProbeError;
pub use readiness::READY_PREFIX;
pub use server::Server;
pub use spec::{AddressSource, Readiness, ServerSpec};
