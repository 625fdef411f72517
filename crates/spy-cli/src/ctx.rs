//! What every command starts from: the graph, the store, the host-tool cache and the settings of
//! the command line, and the options of a realize. Wiring only: each step is a library call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use petgraph::graph::NodeIndex;
use spy_cache::Substituters;
use spy_plan::{parse_spec, NodeKey, Plan, ProbeCache};
use spy_recipe::{Graph, RecipeCache};
use spy_store::Store;

use crate::Cli;

/// Cache settings of the command line (global flags).
#[derive(clap::Args, Clone, Default)]
pub struct CacheFlags {
    /// Ask this binary cache before building (repeatable; before those of the config files).
    #[arg(long = "substituter", global = true, value_name = "URL")]
    pub substituters: Vec<String>,
    /// Trust entries signed by this key: `NAME:BASE64`, or a file holding it (repeatable).
    #[arg(long = "trusted-public-key", global = true, value_name = "KEY")]
    pub trusted_public_keys: Vec<String>,
    /// Ask no binary cache: build everything that is missing.
    #[arg(long, global = true)]
    pub no_substitute: bool,
}

/// The substituters for a realize, or `None` when none is configured (or `--no-substitute`).
/// `offline` leaves out network caches.
fn substituters(ctx: &Ctx, flags: &CacheFlags, offline: bool) -> Result<Option<Arc<Substituters>>> {
    if flags.no_substitute {
        return Ok(None);
    }
    let cli = spy_cache::config::Layer {
        substituters: flags.substituters.clone(),
        trusted_public_keys: flags.trusted_public_keys.clone(),
    };
    let user = spy_cache::config::user_config(|k| std::env::var_os(k))?;
    let graph = spy_cache::config::Layer {
        substituters: ctx.graph.config.substituters.clone(),
        trusted_public_keys: ctx.graph.config.trusted_public_keys.clone(),
    };
    let quiet = ctx.quiet;
    let subs = spy_cache::config::substituters(&[&cli, &user, &graph], offline, |m| {
        if !quiet {
            eprintln!("spy: {m}");
        }
    })?;
    Ok(subs.map(Arc::new))
}

pub(crate) struct Ctx {
    pub graph: Graph,
    pub store: Store,
    pub probes: ProbeCache,
    pub mirrors: Vec<PathBuf>,
    pub quiet: bool,
    pub cache: CacheFlags,
}

impl Ctx {
    pub fn load(cli: &Cli) -> Result<Ctx> {
        let cwd = std::env::current_dir().context("current directory")?;
        let graph_dir = match &cli.graph {
            Some(g) => g.clone(),
            None => {
                Graph::discover(&cwd).context("no graph found: no `graph/spy.toml` here or above; pass --graph DIR or set SPY_GRAPH")?
            }
        };
        let mut overlays = env_paths("SPY_OVERLAYS");
        overlays.extend(cli.overlays.iter().cloned());
        for o in &overlays {
            if !o.is_file() {
                bail!("overlay {} does not exist", o.display());
            }
        }
        let store = match &cli.store {
            Some(asked) => Store::open_named(asked)?,
            None => Store::open(&Graph::default_store_dir(&graph_dir))?,
        };
        let mut graph = load_graph(&store, &graph_dir, &overlays)?;
        if cli.py_sources {
            graph.set_fuse_sources();
        }
        let probes = ProbeCache::open(&store);
        let mut mirrors = env_paths("SPY_MIRRORS");
        mirrors.extend(cli.mirrors.iter().cloned());
        Ok(Ctx {
            graph,
            store,
            probes,
            mirrors,
            quiet: cli.quiet,
            cache: cli.cache.clone(),
        })
    }

    pub fn keys(&self, specs: &[String]) -> Result<Vec<NodeKey>> {
        specs.iter().map(|s| parse_spec(&self.graph, s).map_err(Into::into)).collect()
    }

    pub fn plan(&mut self, keys: &[NodeKey]) -> Result<(Plan, Vec<NodeIndex>)> {
        let plan = spy_plan::resolve(&self.graph, keys, &mut self.probes)?;
        self.probes.save();
        let roots = keys.iter().map(|k| plan.get(k).expect("resolved root")).collect();
        Ok((plan, roots))
    }

    pub fn one(&mut self, spec: &str) -> Result<(Plan, NodeIndex)> {
        let keys = self.keys(&[spec.to_string()])?;
        let (plan, roots) = self.plan(&keys)?;
        Ok((plan, roots[0]))
    }
}

/// Loads the graph with the store's cache of its parsed recipes, and saves the cache if the load
/// changed it. The cache is an optimisation only: one the store cannot give or keep is no error.
/// `SPY_RECIPE_CACHE=0` reads every recipe file (a graph on a filesystem whose stamps cannot be
/// trusted: NFS attribute caching, FUSE without ctime).
fn load_graph(store: &Store, graph_dir: &Path, overlays: &[PathBuf]) -> Result<Graph> {
    if std::env::var_os("SPY_RECIPE_CACHE").is_some_and(|v| v == "0") {
        return Ok(Graph::load(graph_dir, overlays)?);
    }
    let dir = fs_err::canonicalize(graph_dir).unwrap_or_else(|_| graph_dir.to_path_buf());
    let key = spy_hash::Blake3::of_bytes(dir.as_os_str().as_encoded_bytes()).to_hex();
    let mut cache = store
        .recipe_cache(&key, spy_recipe::MAX_CACHE_BYTES)
        .map(RecipeCache::from_bytes)
        .unwrap_or_else(RecipeCache::empty);
    let graph = Graph::load_cached(graph_dir, overlays, &mut cache)?;
    if let Some(bytes) = cache.updated() {
        let _ = store.save_recipe_cache(&key, bytes);
    }
    Ok(graph)
}

/// A colon-separated list of paths from the environment (empty entries skipped).
fn env_paths(var: &str) -> Vec<PathBuf> {
    std::env::var_os(var)
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default()
}

/// Options of a realize: sandbox (checked), CPU budget, fetch origins and substituters.
pub fn realize_options(ctx: &Ctx, jobs: Option<usize>, no_sandbox: bool, offline: bool) -> Result<spy_sched::RealizeOptions> {
    let sandbox = !no_sandbox;
    if sandbox {
        if let Err(why) = spy_build::sandbox::available() {
            bail!("cannot build in a sandbox: {why}; pass --no-sandbox to build without one (builds then see the whole host)");
        }
    }
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    Ok(spy_sched::RealizeOptions {
        jobs,
        keep_going: false,
        sandbox,
        // /proc/self/exe still runs this very binary if it is replaced (upgraded) during a long realize.
        spy_exe: if std::path::Path::new("/proc/self/exe").exists() {
            PathBuf::from("/proc/self/exe")
        } else {
            std::env::current_exe().context("locating the spy executable")?
        },
        fetch: spy_fetch::FetchOptions {
            mirrors: ctx.mirrors.clone(),
            offline,
        },
        substituters: substituters(ctx, &ctx.cache, offline)?,
    })
}
