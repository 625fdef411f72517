//! The `spy` command line. It parses arguments, asks spy-recipe and spy-store for the graph and
//! the store (`ctx.rs`: flags, environment variables), calls
//! the crates and prints what they return; anything a test would want to call lives in those
//! crates, not here. `commands` dispatches to `cache` and `check`, which import only `ctx` (and
//! the crate root): no module imports one that imports it.

mod cache;
mod check;
mod commands;
mod ctx;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "spy",
    version,
    about = "Build fully static, single-file Python interpreters from a declarative package graph",
    long_about = "spy realizes nodes of a package graph (TOML recipes under graph/) into a local \
content-addressed store, building what is missing in a sandbox, in parallel.\n\n\
Nodes are named as `spy list` shows them: NAME-SHORT (zlib-x86_64), NAME@TARGET \
(zlib@x86_64-linux-musl) or a bare NAME for the graph's default target.",
    after_help = "Environment: SPY_GRAPH (graph directory), SPY_STORE (store directory), \
SPY_MIRRORS (colon-separated mirror directories), SPY_OVERLAYS (colon-separated overlay files), \
SPY_CONFIG (the user config file; default ~/.config/spy/config.toml, with `substituters` and \
`trusted-public-keys` like spy.toml), SPY_RECIPE_CACHE=0 (read every recipe file, not the store's \
cache of parsed recipes: for a graph on NFS or FUSE)."
)]
pub struct Cli {
    /// The graph directory (holds spy.toml); default: the nearest `graph/` at or above the current directory.
    #[arg(long, global = true, env = "SPY_GRAPH", value_name = "DIR")]
    graph: Option<PathBuf>,
    /// The store directory; default: `store/` beside the graph directory.
    #[arg(long, global = true, env = "SPY_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Apply an overlay file after the graph's own (repeatable, in order).
    #[arg(long = "overlay", global = true, value_name = "FILE")]
    overlays: Vec<PathBuf>,
    /// A directory of source files (or of directories of them, one level deep) to use before any
    /// network origin (repeatable); a file is found by its name or its sha256.
    #[arg(long = "mirror", global = true, value_name = "DIR")]
    mirrors: Vec<PathBuf>,
    /// Put each module's `.py` beside its `.pyc` in the single files' ZIP: tracebacks show source
    /// lines and `inspect.getsource` works (a few MB larger; docs/packages.md). Same as `sources =
    /// true` in every `[fuse]` table; such releases are other nodes, with ids of their own.
    #[arg(long, global = true)]
    py_sources: bool,
    /// Print less.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(flatten)]
    cache: ctx::CacheFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build what is missing for the given nodes, print their store paths, leave `result` links.
    #[command(visible_alias = "build")]
    Realize(commands::RealizeArgs),
    /// Only fetch the sources of the given nodes (and of what they need) into the store.
    Fetch {
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
        /// Use only local origins (store, mirrors, file URLs, local git).
        #[arg(long)]
        offline: bool,
    },
    /// List every node for every target, with its version and whether it is built.
    List {
        /// Only nodes of this target.
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
        /// Also list targets.
        #[arg(long)]
        targets: bool,
        /// One JSON array for scripts (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Show a node: id, store path, state, dependencies, sources, phases, host tools.
    Show {
        node: String,
        /// One JSON object for scripts (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Print the store path of a node (built or not).
    Path {
        node: String,
        /// One JSON object for scripts (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Print the build log of a node.
    Log { node: String },
    /// Print a node's dependency graph.
    Graph {
        node: String,
        #[arg(long, value_enum, default_value = "dot")]
        format: commands::GraphFormat,
    },
    /// Show why A depends on B: a shortest chain of dependencies.
    WhyDepends { a: String, b: String },
    /// Delete store entries not reachable from a root (`result` links), and crash debris.
    Gc {
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object for scripts (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Re-hash store entries and compare with their recorded output hash.
    Verify {
        /// Only these nodes (default: every entry).
        nodes: Vec<String>,
        /// One JSON object for scripts (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Put local files into the store's source cache (for sources no origin here can supply).
    AddSource {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Signing keys for binary caches and releases.
    Key {
        #[command(subcommand)]
        cmd: cache::KeyCommand,
    },
    /// Upload nodes (with their closures) to a binary cache: archive first, then signed metadata.
    Push(cache::PushArgs),
    /// Serve this store, read-only, as an HTTP binary cache.
    Serve(cache::ServeArgs),
    /// Rebuild nodes in a fresh store at another path and compare their outputs bit for bit.
    Check(check::CheckArgs),
    /// Write release files: the binaries, their manifests, SHA256SUMS and its signature.
    Release(check::ReleaseArgs),
    /// Internal: run a build inside the namespace sandbox.
    #[command(name = "__sandbox", hide = true)]
    Sandbox { spec: PathBuf },
}

pub fn main() -> ExitCode {
    // `spy list | head` must end quietly, as other Unix tools do, not panic on a closed pipe.
    // SAFETY: called first thing, before any thread exists.
    unsafe {
        let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
    }
    let cli = Cli::parse();
    if let Command::Sandbox { spec } = &cli.command {
        spy_build::sandbox::enter(spec);
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

fn report(e: &anyhow::Error) {
    let mut msg = format!("error: {e}");
    let chain: Vec<String> = e
        .chain()
        .skip(1)
        .map(|c| c.to_string())
        .filter(|c| !msg.contains(c.as_str()))
        .collect();
    for c in chain {
        msg.push_str(&format!(": {c}"));
    }
    eprintln!("{msg}");
    if let Some(h) = hint(e) {
        eprintln!("hint: {h}");
    }
}

fn hint(e: &anyhow::Error) -> Option<String> {
    if let Some(w) = e.downcast_ref::<spy_with::WithError>() {
        return w.hint();
    }
    if let Some(f) = e.downcast_ref::<spy_fetch::FetchError>() {
        return Some(f.hint());
    }
    // A realize's error, also when `spy check` or `spy release` ran the realize.
    let sched = e
        .downcast_ref::<spy_sched::SchedError>()
        .or_else(|| match e.downcast_ref::<spy_release::CheckError>() {
            Some(spy_release::CheckError::Sched(s)) => Some(s),
            _ => None,
        })
        .or_else(|| match e.downcast_ref::<spy_release::ReleaseError>() {
            Some(spy_release::ReleaseError::Sched(s)) => Some(s),
            _ => None,
        });
    if let Some(s) = sched {
        return Some(match s {
            spy_sched::SchedError::Fetch(errors) => {
                let mut hints: Vec<String> = errors.iter().map(|(_, f)| f.hint()).collect();
                hints.dedup();
                hints.join("\nhint: ")
            }
            spy_sched::SchedError::Failed { .. } => "see the log tail above; `spy log NODE` prints the whole log".into(),
            _ => return None,
        });
    }
    if let Some(p) = e.downcast_ref::<spy_plan::PlanError>() {
        return Some(match p {
            spy_plan::PlanError::UnknownName { .. } => "`spy list` shows every node name".into(),
            spy_plan::PlanError::UnknownTarget { .. } => "`spy list --targets` shows the targets and their short names".into(),
            spy_plan::PlanError::NotForTarget { target, .. } => format!("`spy list --target {target}` shows what is made for `{target}`"),
            _ => "fix the recipe named above".into(),
        });
    }
    None
}
