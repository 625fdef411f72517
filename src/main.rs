//! The `spy` executable: everything lives in the `spy-cli` crate.

// jemalloc rather than the C library's malloc: loading and resolving a graph makes hundreds of
// thousands of small strings on three threads, and jemalloc's per-thread caches take 12 % of the
// instructions off `spy list` on 10,000 nodes (callgrind: 637M -> 560M) at the same peak RSS
// (benches/engine.rs prints both). mimalloc was as fast but kept 115 MiB resident.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    spy_cli::main()
}
