//! The `mcp-harness` command line: `serve`, `check` and `soak` (see [`mcp_harness_cli`]).
//!
//! Exit codes: 0 ok; 1 soak failures; 2 bad usage; 3 unreachable or could not start;
//! 4 credentials refused; 5 protocol error; 6 tool error (`isError`).

fn main() -> std::process::ExitCode {
    mcp_harness_cli::main()
}
