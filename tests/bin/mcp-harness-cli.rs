//! The `mcp-harness` command line, built inside the scenario suite's package so that its
//! integration tests find it (`CARGO_BIN_EXE_mcp-harness-cli`) under both `cargo test` and
//! `cargo nextest run`; the same code as the `mcp-harness` binary.

fn main() -> std::process::ExitCode {
    mcp_harness_cli::main()
}
