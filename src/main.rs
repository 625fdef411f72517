//! The `spy` executable: everything lives in the `spy-cli` crate.
fn main() -> std::process::ExitCode {
    spy_cli::main()
}
