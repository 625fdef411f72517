//! The scheduler: decides what is missing from the store and what to substitute or build (the pure
//! step in `decide.rs`), fetches every missing source first (so a missing source fails before
//! anything is built), then makes ready nodes in parallel, longest remaining path first, under one
//! CPU budget shared with `make` through a GNU make jobserver (the queue, `queue.rs`, tested with
//! stand-in jobs). Each node is made by the realizer of
//! its kind (`spy_plan::Realizer`: spy-build, spy-fuse, spy-cache) inside a store transaction; the
//! scheduler itself touches no path: it only asks the store which entries are valid.

mod decide;
mod progress;
mod queue;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use spy_build::{Bootstrap, BuildError, Builder};
use spy_cache::{Found, Substituters, Substitution};
use spy_fetch::{FetchError, FetchOptions};
use spy_fuse::Fuser;
use spy_plan::{Kind, Plan, Realizer};
use spy_store::{Store, StoreError, TransactError, Transacted};

pub use decide::{decide, Action, Dag, Facts, Schedule, Step};
pub use progress::Progress;
use queue::{JobError, Outcome, Runner};

#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("{} source(s) could not be obtained; nothing was built\n{}", .0.len(), .0.iter().map(|(n, e)| format!("{n}: {e}")).collect::<Vec<_>>().join("\n"))]
    Fetch(Vec<(String, FetchError)>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{} node(s) failed: {}", failed.len(), failed.join(", "))]
    Failed { failed: Vec<String> },
    #[error("cannot create the jobserver: {0}")]
    Jobserver(String),
}

#[derive(Clone)]
pub struct RealizeOptions {
    /// Total CPU budget (builds and the `make` jobs inside them).
    pub jobs: usize,
    pub keep_going: bool,
    pub sandbox: bool,
    pub spy_exe: PathBuf,
    pub fetch: FetchOptions,
    /// Binary caches asked before building (none: build everything).
    pub substituters: Option<Arc<Substituters>>,
}

#[derive(Debug, Default)]
pub struct RealizeReport {
    pub built: Vec<String>,
    pub substituted: Vec<String>,
    pub reused_after_wait: Vec<String>,
    pub already_valid: usize,
}

/// Fetches every source of `nodes` that is not cached yet; all failures are reported together.
pub fn fetch_sources(store: &Store, plan: &Plan, nodes: &[NodeIndex], opts: &FetchOptions, ui: &Progress) -> Result<(), SchedError> {
    let origins = spy_fetch::default_origins(opts);
    let mut errors = Vec::new();
    let mut done = HashSet::new();
    for &n in nodes {
        let node = plan.node(n);
        for s in &node.sources {
            if !done.insert(s.pin.to_string()) || s.cached_in(store).is_some() {
                continue;
            }
            ui.line(&format!("fetching {} for {}", s.file, node.key));
            if let Err(e) = spy_fetch::ensure(store, s, &origins, &|m| ui.line(m)) {
                errors.push((node.key.to_string(), e));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SchedError::Fetch(errors))
    }
}

/// Asks the substituters about `nodes`, several at a time; trusted entries found, by node.
fn query_substitutes(subs: &Substituters, plan: &Plan, nodes: &[NodeIndex], ui: &Progress) -> HashMap<NodeIndex, Found> {
    let found = std::sync::Mutex::new(HashMap::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8.min(nodes.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&n) = nodes.get(i) else { break };
                let node = plan.node(n);
                if let Some(f) = subs.query(&node.id, &node.store_name(), &node.key.to_string(), &|m| ui.line(m)) {
                    found.lock().expect("query results").insert(n, f);
                }
            });
        }
    });
    found.into_inner().expect("query results")
}

/// [`realize`], after registering the whole closure of `roots` as temporary GC roots of this
/// process: `spy gc` deletes nothing the run uses or builds while the returned guard lives.
pub fn realize_rooted(
    store: &Store,
    plan: &Plan,
    roots: &[NodeIndex],
    opts: &RealizeOptions,
    ui: &Progress,
) -> Result<spy_store::TempRoots, SchedError> {
    let closure: Vec<spy_store::StoreName> = plan.closure(roots).into_iter().map(|n| plan.node(n).store_name()).collect();
    let temp_roots = store.add_temp_roots(&closure)?;
    realize(store, plan, roots, opts, ui)?;
    Ok(temp_roots)
}

/// Builds (or substitutes) whatever `roots` still miss. Returns what happened; the roots are valid
/// on `Ok`. A node whose substitute is refused while downloading is built in a further round,
/// together with whatever its build needs.
pub fn realize(store: &Store, plan: &Plan, roots: &[NodeIndex], opts: &RealizeOptions, ui: &Progress) -> Result<RealizeReport, SchedError> {
    let mut report = RealizeReport::default();
    let mut refused: HashSet<NodeIndex> = HashSet::new();
    loop {
        let fell_back = realize_round(store, plan, roots, opts, ui, &refused, &mut report)?;
        if fell_back.is_empty() {
            return Ok(report);
        }
        ui.line(&format!(
            "building {} node(s) whose substitute was refused, and what they need",
            fell_back.len()
        ));
        refused.extend(fell_back);
    }
}

/// Runs the decision step, asking the caches whatever it wants to know (each batch in parallel),
/// until it acts: the action of each node to make, and the trusted cache entries found.
fn decide_asking(
    plan: &Plan,
    roots: &[NodeIndex],
    closure: &[NodeIndex],
    valid: &HashSet<NodeIndex>,
    refused: &HashSet<NodeIndex>,
    subs: Option<&Substituters>,
    ui: &Progress,
) -> (HashMap<NodeIndex, Action>, HashMap<NodeIndex, Found>) {
    let mut found: HashMap<NodeIndex, Found> = HashMap::new();
    let mut asked: HashSet<NodeIndex> = HashSet::new();
    loop {
        let found_set: HashSet<NodeIndex> = found.keys().copied().collect();
        let facts = Facts {
            roots,
            closure,
            valid,
            caches: subs.is_some(),
            refused,
            asked: &asked,
            found: &found_set,
        };
        match decide(plan, &facts) {
            Step::Act(action) => return (action, found),
            Step::Ask(to_ask) => {
                // `decide` asks only when there are caches; either way the nodes count as asked.
                if let Some(subs) = subs {
                    found.extend(query_substitutes(subs, plan, &to_ask, ui));
                }
                asked.extend(to_ask);
            }
        }
    }
}

fn realize_round(
    store: &Store,
    plan: &Plan,
    roots: &[NodeIndex],
    opts: &RealizeOptions,
    ui: &Progress,
    refused: &HashSet<NodeIndex>,
    report: &mut RealizeReport,
) -> Result<Vec<NodeIndex>, SchedError> {
    let closure = plan.closure(roots);
    let valid: HashSet<NodeIndex> = closure
        .iter()
        .copied()
        .filter(|&n| store.is_valid(&plan.node(n).store_name()))
        .collect();
    if roots.iter().all(|r| valid.contains(r)) {
        report.already_valid = report.already_valid.max(closure.len());
        return Ok(Vec::new());
    }
    let subs = opts.substituters.as_deref().filter(|s| !s.is_empty());
    let (action, found) = decide_asking(plan, roots, &closure, &valid, refused, subs, ui);
    let sched = Schedule::new(plan, &closure, action);
    report.already_valid = closure.len() - sched.need.len();
    let to_build: Vec<NodeIndex> = sched.need.iter().copied().filter(|n| sched.action[n] == Action::Build).collect();
    if !opts.sandbox && !to_build.is_empty() {
        ui.line("warning: building without a sandbox (--no-sandbox): builds see the whole host and its network");
    }
    fetch_sources(store, plan, &to_build, &opts.fetch, ui)?;

    let jobs = RealJobs {
        store,
        plan,
        opts,
        subs,
        found: &found,
    };
    let to_substitute = sched.need.len() - to_build.len();
    let label = |n: NodeIndex| plan.node(n).key.to_string();
    let done = queue::run(sched, to_substitute, &jobs, &label, opts.jobs, opts.keep_going, ui, report)?;
    if !done.failed.is_empty() {
        if !done.skipped.is_empty() {
            ui.line(&format!("{} dependent node(s) were not built", done.skipped.len()));
        }
        return Err(SchedError::Failed { failed: done.failed });
    }
    Ok(done.fell_back)
}

/// The runner of a real round: nodes are made by their realizers in store transactions.
struct RealJobs<'a> {
    store: &'a Store,
    plan: &'a Plan,
    opts: &'a RealizeOptions,
    subs: Option<&'a Substituters>,
    found: &'a HashMap<NodeIndex, Found>,
}

impl Runner for RealJobs<'_> {
    fn substitute(&self, n: NodeIndex, on_wait: &dyn Fn()) -> Result<Outcome, JobError> {
        match (self.subs, self.found.get(&n)) {
            (Some(subs), Some(found)) => substitute_one(self.store, self.plan, n, subs, found, on_wait),
            _ => Err(JobError::Substitute(format!("{}: no cache holds it", self.plan.node(n).key))),
        }
    }
    fn build(&self, n: NodeIndex, client: &jobserver::Client, cancel: &AtomicBool, on_wait: &dyn Fn()) -> Result<Outcome, JobError> {
        build_node(self.store, self.plan, n, self.opts, client, cancel, on_wait).map_err(JobError::Build)
    }
    fn log_path(&self, n: NodeIndex) -> Option<PathBuf> {
        Some(self.store.log_path(&self.plan.node(n).store_name()))
    }
}

/// Substitutes one node. Nothing is registered unless the archive matches its signed hash and the
/// unpacked tree its signed tree hash; any failure means the node is to be built instead.
fn substitute_one(
    store: &Store,
    plan: &Plan,
    n: NodeIndex,
    subs: &Substituters,
    found: &Found,
    on_wait: &dyn Fn(),
) -> Result<Outcome, JobError> {
    match made(store, plan, n, &Substitution { subs, found }, on_wait) {
        Ok(true) => Ok(Outcome::Substituted(subs.url(found.cache).to_string())),
        Ok(false) => Ok(Outcome::AlreadyThere),
        Err(e) => Err(JobError::Substitute(e.to_string())),
    }
}

/// Builds one node with the realizer of its kind.
fn build_node(
    store: &Store,
    plan: &Plan,
    n: NodeIndex,
    opts: &RealizeOptions,
    client: &jobserver::Client,
    cancel: &AtomicBool,
    on_wait: &dyn Fn(),
) -> Result<Outcome, BuildError> {
    let node = plan.node(n);
    let setup = |e: &dyn std::fmt::Display| BuildError::Setup {
        node: node.key.to_string(),
        message: e.to_string(),
    };
    let build_error = |e: TransactError<BuildError>| match e {
        TransactError::Work(e) => e,
        TransactError::Store(e) => setup(&e),
    };
    let made_it = match node.kind {
        Kind::Build => {
            let builder = Builder {
                store,
                sandbox: opts.sandbox,
                jobs: opts.jobs,
                jobserver: Some(client),
                cancel,
                spy_exe: opts.spy_exe.clone(),
            };
            made(store, plan, n, &builder, on_wait).map_err(build_error)?
        }
        Kind::Bootstrap => made(store, plan, n, &Bootstrap { sandboxed: opts.sandbox }, on_wait).map_err(build_error)?,
        Kind::Fuse => made(
            store,
            plan,
            n,
            &Fuser {
                store,
                sandboxed: opts.sandbox,
            },
            on_wait,
        )
        .map_err(|e| setup(&e))?,
    };
    Ok(if made_it { Outcome::Built } else { Outcome::AlreadyThere })
}

/// Runs `r` for node `n` in a store transaction: `Ok(false)` when another process made the entry
/// while this one waited for the lock.
fn made<R: Realizer>(store: &Store, plan: &Plan, n: NodeIndex, r: &R, on_wait: &dyn Fn()) -> Result<bool, TransactError<R::Error>> {
    plan.realize_with(store, n, r, on_wait)
        .map(|t| matches!(t, Transacted::Registered { .. }))
}
