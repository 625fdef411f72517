//! Turns the loaded recipes into a plan: one node per (name, target) in the closure of what was
//! asked for, each with its content-addressed id, in a petgraph DAG (edges point from a node to its
//! dependencies). The canonical form hashed into an id is specified in `docs/hashing.md`.
//!
//! It also defines what the rest needs to know of a node: its entry name ([`StoreName`]), whether
//! it is host-specific, the store's [`spy_store::NewEntry`] for it, and the [`Realizer`] trait
//! that every node kind's builder implements ([`Plan::realize_with`] runs one in a store
//! transaction).
//!
//! It reads the graph's patch and file contents (they are hashed into ids) and runs host tools
//! with `--version` (bootstrap nodes); the store it reaches only through the store's API (the
//! host-tools cache, cached source paths, transactions run for a caller). It never decides what
//! to build.

mod canonical;
mod probe;
mod realize;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// The maps every resolve fills and reads once per node and dependency, keyed by names. foldhash
/// is seeded per process like std's SipHash, so crafted names cannot make them collide in
/// general, at a fraction of SipHash's cost (20M instructions of a 10,000-node `spy list`).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use petgraph::graph::{DiGraph, NodeIndex};
use spy_hash::{NodeId, Sha256};
use spy_recipe::{Graph, Phase, RecipeError};
use spy_store::StoreName;

pub use canonical::{canonical_form, BUILDER_VERSION, CANONICAL_FORMAT, FUSE_VERSION};
pub use probe::{HostTool, ProbeCache};
pub use realize::Realizer;
/// A node's kind, as the recipe says (`PlanNode::kind`).
pub use spy_recipe::Kind;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error("`{spec}` names no node{}", did_you_mean(suggestions))]
    UnknownName { spec: String, suggestions: Vec<String> },
    #[error("`{spec}`: no target `{target}`; the targets are {}{}", known.join(", "), did_you_mean(suggestions))]
    UnknownTarget {
        spec: String,
        target: String,
        known: Vec<String>,
        suggestions: Vec<String>,
    },
    #[error("`{name}` is not made for target `{target}`: its recipe is for {}", if made_for.is_empty() { "no target of this graph".to_string() } else { made_for.join(", ") })]
    NotForTarget {
        name: String,
        target: String,
        made_for: Vec<String>,
    },
    #[error("{}: `{needed_by}` depends on `{name}`, which is not made for target `{target}` (its recipe limits `targets`)", file.display())]
    DepNotForTarget {
        file: PathBuf,
        needed_by: String,
        name: String,
        target: String,
    },
    #[error("{file}: node `{node}`, source {index}: {message}")]
    BadSource {
        file: PathBuf,
        node: String,
        index: usize,
        message: String,
    },
    #[error("node `{node}`: cannot read patch {}: {message}", path.display())]
    Patch { node: String, path: PathBuf, message: String },
    #[error("node `{node}`: host tool `{tool}` not found in /usr/local/bin, /usr/bin or /bin")]
    ToolMissing { node: String, tool: String },
    #[error("{}: node `{node}`: {message}", file.display())]
    StoreName { file: PathBuf, node: String, message: String },
}

/// A node's name and target: `zlib@x86_64-linux-musl`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    pub name: String,
    pub target: String,
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.target)
    }
}

/// Where a source's bytes are pinned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourcePin {
    Sha256(Sha256),
    /// `exclude`: tree paths left out of the archive, sorted, without duplicates.
    Git {
        url: String,
        commit: String,
        exclude: Vec<String>,
    },
}

impl SourcePin {
    /// The name of a git source in the store's source cache: the commit, plus a digest of the
    /// excluded paths when there are any (an archive without them is other bytes).
    pub fn git_cache_key(&self) -> Option<String> {
        match self {
            SourcePin::Sha256(_) => None,
            SourcePin::Git { commit, exclude, .. } if exclude.is_empty() => Some(commit.clone()),
            SourcePin::Git { commit, exclude, .. } => {
                let digest = blake3::hash(exclude.join("\0").as_bytes()).to_hex();
                Some(format!("{commit}-x{}", &digest[..16]))
            }
        }
    }
}

/// How a pin is written in messages and in an entry's metadata (`sources`).
impl fmt::Display for SourcePin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePin::Sha256(h) => write!(f, "sha256 {h}"),
            SourcePin::Git { url, commit, exclude } if exclude.is_empty() => write!(f, "git {url} at {commit}"),
            SourcePin::Git { url, commit, exclude } => write!(f, "git {url} at {commit} without {}", exclude.join(", ")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Source {
    pub pin: SourcePin,
    pub file: String,
    pub urls: Vec<String>,
    pub debian: Option<String>,
    pub pypi: Option<String>,
    pub unpack: bool,
    pub var: String,
}

impl Source {
    /// The source's file in the store's source cache, if it has been fetched.
    pub fn cached_in(&self, store: &spy_store::Store) -> Option<PathBuf> {
        let p = match &self.pin {
            SourcePin::Sha256(h) => store.source_path(h),
            SourcePin::Git { .. } => store.git_source_path(&self.pin.git_cache_key()?),
        };
        p.is_file().then_some(p)
    }
}

#[derive(Debug, Clone)]
pub struct Patch {
    pub name: String,
    pub path: PathBuf,
    pub blake3: spy_hash::Blake3,
}

#[derive(Debug, Clone)]
pub struct PlanNode {
    pub key: NodeKey,
    pub id: NodeId,
    pub version: String,
    pub kind: Kind,
    pub description: String,
    pub license: String,
    pub sources: Vec<Source>,
    pub patches: Vec<Patch>,
    /// Local files handed to the build (`$SPY_FILES/<name>`), hashed like patches.
    pub files: Vec<Patch>,
    pub env: BTreeMap<String, String>,
    pub phases: BTreeMap<Phase, String>,
    pub tools: Vec<HostTool>,
    pub weight: u32,
    /// Direct dependencies, sorted by name.
    pub deps: Vec<NodeIndex>,
    pub file: PathBuf,
    /// Fuse nodes: what to fuse, under which release name, with the licenses of the closure (the
    /// manifest publishes them, so they are part of the id).
    pub fuse: Option<FusePlan>,
}

#[derive(Debug, Clone)]
pub struct FusePlan {
    pub spec: spy_recipe::FuseSpec,
    /// The executable's name: the node's name as `spy list` shows it (`python3.11-x86_64`).
    pub release: String,
    /// Name → license of every non-bootstrap node in the closure.
    pub licenses: BTreeMap<String, String>,
}

impl PlanNode {
    /// `<id prefix>-<name>-<version>`: the entry's directory name in the store.
    pub fn store_name(&self) -> StoreName {
        // Every node of a plan was checked to have one when the plan was resolved.
        StoreName::new(&self.id, &self.key.name, &self.version).expect("checked by resolve")
    }

    /// Whether the node's output is made of this machine's own tools (a bootstrap node: links to
    /// host programs, identified by their versions) rather than built from sources. Such an entry
    /// means nothing on another machine, so it is never asked of or pushed to a binary cache,
    /// never rebuilt by `spy check`, and is no component of a release (no license, listed among
    /// the build tools); builds put its tools on `PATH` after those of other inputs.
    pub fn is_host_specific(&self) -> bool {
        self.kind == Kind::Bootstrap
    }

    /// The shell variable through which dependents see this node: `zlib` → `$zlib`.
    pub fn var_name(&self) -> String {
        var_name(&self.key.name)
    }
}

pub fn var_name(name: &str) -> String {
    let mut v: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if v.starts_with(|c: char| c.is_ascii_digit()) {
        v.insert(0, '_');
    }
    v
}

/// The resolved DAG. Edges point from a node to each of its dependencies.
#[derive(Debug, Default)]
pub struct Plan {
    pub dag: DiGraph<PlanNode, ()>,
    index: FastMap<NodeKey, NodeIndex>,
}

impl Plan {
    pub fn node(&self, ix: NodeIndex) -> &PlanNode {
        &self.dag[ix]
    }
    pub fn get(&self, key: &NodeKey) -> Option<NodeIndex> {
        self.index.get(key).copied()
    }
    pub fn len(&self) -> usize {
        self.dag.node_count()
    }
    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }

    /// Every node reachable from `roots`, dependencies before dependents.
    pub fn closure(&self, roots: &[NodeIndex]) -> Vec<NodeIndex> {
        let mut seen = vec![false; self.dag.node_count()];
        let mut order = Vec::new();
        fn visit(p: &Plan, ix: NodeIndex, seen: &mut [bool], order: &mut Vec<NodeIndex>) {
            if seen[ix.index()] {
                return;
            }
            seen[ix.index()] = true;
            for &d in &p.dag[ix].deps {
                visit(p, d, seen, order);
            }
            order.push(ix);
        }
        for &r in roots {
            visit(self, r, &mut seen, &mut order);
        }
        order
    }

    /// What the store is to record about node `n`'s entry, made by `origin`.
    pub fn new_entry(&self, n: NodeIndex, origin: spy_store::Origin) -> spy_store::NewEntry {
        let node = self.node(n);
        spy_store::NewEntry {
            node: spy_store::EntryNode {
                id: node.id,
                name: node.key.name.clone(),
                version: node.version.clone(),
                target: node.key.target.clone(),
                license: node.license.clone(),
            },
            inputs: node.deps.iter().map(|&d| self.node(d).store_name()).collect(),
            sources: node.sources.iter().map(|s| s.pin.to_string()).collect(),
            origin,
        }
    }

    /// A shortest dependency path from `from` to `to`, if `from` depends on `to` at all.
    pub fn why_depends(&self, from: NodeIndex, to: NodeIndex) -> Option<Vec<NodeIndex>> {
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([from]);
        let mut seen = std::collections::HashSet::from([from]);
        while let Some(n) = queue.pop_front() {
            if n == to {
                let mut path = vec![to];
                let mut cur = to;
                while let Some(&p) = prev.get(&cur) {
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for &d in &self.dag[n].deps {
                if seen.insert(d) {
                    prev.insert(d, n);
                    queue.push_back(d);
                }
            }
        }
        None
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!(
            "; did you mean {}?",
            many.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" or ")
        ),
    }
}

/// The closest of `candidates` to what was typed (a typo of a few letters), best first, at most
/// three: normalized edit distance, ties by name.
fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(typed, c), c))
        .filter(|(score, _)| *score >= 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c.to_string()).collect()
}

/// Every way `spy list` and `name@target` name a node, for suggestions.
fn spellings(graph: &Graph) -> Vec<String> {
    let mut v = Vec::new();
    for (name, node) in &graph.nodes {
        v.push(name.to_string());
        for (target, tc) in &graph.config.targets {
            if node.has_target(target, &graph.config) {
                v.push(format!("{name}-{}", tc.short));
            }
        }
    }
    v
}

/// Turns what a user typed into a node key: `name@target`, `name-<short>` (as `spy list` shows) or
/// a bare `name` (default target). A name or target that does not exist is an error about the
/// command line, with the closest spellings that do.
pub fn parse_spec(graph: &Graph, spec: &str) -> Result<NodeKey, PlanError> {
    if let Some((name, target)) = spec.split_once('@') {
        if !graph.config.targets.contains_key(target) {
            let known: Vec<String> = graph.config.targets.keys().map(|k| k.to_string()).collect();
            let mut suggestions = closest(target, known.iter().map(String::as_str));
            // `python3.11@x86_64`: the short name is not a target, but `python3.11-x86_64` is a node.
            if graph.nodes.contains_key(name) && graph.config.targets.values().any(|t| t.short.as_str() == target) {
                suggestions.insert(0, format!("{name}-{target}"));
            }
            return Err(PlanError::UnknownTarget {
                spec: spec.into(),
                target: target.into(),
                known,
                suggestions,
            });
        }
        if !graph.nodes.contains_key(name) {
            let names: Vec<&str> = graph.nodes.keys().map(|n| n.as_str()).collect();
            let suggestions = closest(name, names).into_iter().map(|n| format!("{n}@{target}")).collect();
            return Err(PlanError::UnknownName {
                spec: spec.into(),
                suggestions,
            });
        }
        return Ok(NodeKey {
            name: name.into(),
            target: target.into(),
        });
    }
    for (target, tc) in &graph.config.targets {
        if let Some(name) = spec.strip_suffix(&format!("-{}", tc.short)) {
            if graph.nodes.contains_key(name) {
                return Ok(NodeKey {
                    name: name.into(),
                    target: target.to_string(),
                });
            }
        }
    }
    if graph.nodes.contains_key(spec) {
        if let Some(t) = graph.default_target() {
            return Ok(NodeKey {
                name: spec.into(),
                target: t.into(),
            });
        }
    }
    let all = spellings(graph);
    Err(PlanError::UnknownName {
        spec: spec.into(),
        suggestions: closest(spec, all.iter().map(String::as_str)),
    })
}

/// The name `spy list` shows for a key: `zlib-x86_64`.
pub fn display_name(graph: &Graph, key: &NodeKey) -> String {
    match graph.config.targets.get(key.target.as_str()) {
        // Not `format!`: `Display` of a str goes through the formatter's padding logic, and a
        // listing names every node.
        Some(t) => [key.name.as_str(), "-", t.short.as_str()].concat(),
        None => key.to_string(),
    }
}

/// The result links of a realize of `names` (each root's display name), in their order: `LINK`
/// (default `result`) for one root, `LINK-NAME` for each of several, as nix-build names them.
pub fn result_links(out_link: Option<&Path>, names: &[String]) -> Vec<PathBuf> {
    let base = out_link.unwrap_or(Path::new("result"));
    match names {
        [_] => vec![base.to_path_buf()],
        _ => names.iter().map(|n| PathBuf::from(format!("{}-{n}", base.display()))).collect(),
    }
}

/// Resolves the closure of `roots` into a plan, computing every id.
///
/// Three passes: a depth-first walk finds the closure, its edges and any cycle (cheap: it reads
/// only dependency lists); every node's recipe is then resolved in parallel; ids are computed
/// level by level (a node's level is one more than its deepest dependency's), each level in parallel.
pub fn resolve(graph: &Graph, roots: &[NodeKey], probes: &mut ProbeCache) -> Result<Plan, PlanError> {
    use rayon::prelude::*;
    let (names, order) = walk(graph, roots)?;
    // Each visited node's position in `order`.
    let mut position = vec![usize::MAX; names.slots()];
    for (i, (ix, _)) in order.iter().enumerate() {
        position[names.slot(*ix)] = i;
    }
    let dep_positions: Vec<Vec<usize>> = order
        .iter()
        .map(|(_, deps)| deps.iter().map(|&d| position[names.slot(d)]).collect())
        .collect();

    // Collected as results of known length, so rayon writes each into its place: collecting into
    // `Result<Vec>` grows and concatenates per-thread lists (11 MB of copies at 10,000 nodes).
    let built: Vec<Result<(PlanNode, Vec<String>), PlanError>> = order
        .par_iter()
        .zip(dep_positions.par_iter())
        .map(|((ix, _), deps)| node_without_id(graph, &names.key(*ix), deps))
        .collect();
    let mut nodes = Vec::with_capacity(built.len());
    let mut tool_names = Vec::with_capacity(built.len());
    for b in built {
        let (node, tools) = b?;
        nodes.push(node);
        tool_names.push(tools);
    }
    // Probing needs the (mutable) cache, so it runs here, not in the parallel pass.
    for (node, tools) in nodes.iter_mut().zip(&tool_names) {
        for t in tools {
            node.tools.push(probes.probe(t).ok_or_else(|| PlanError::ToolMissing {
                node: node.key.name.clone(),
                tool: t.clone(),
            })?);
        }
    }

    for i in 0..nodes.len() {
        if nodes[i].fuse.is_some() {
            let licenses = closure_licenses(&nodes, &dep_positions, i);
            if let Some(f) = nodes[i].fuse.as_mut() {
                f.licenses = licenses;
            }
        }
    }

    let mut level = vec![0usize; nodes.len()];
    for i in 0..nodes.len() {
        level[i] = dep_positions[i].iter().map(|&d| level[d] + 1).max().unwrap_or(0);
    }
    let mut by_level: Vec<Vec<usize>> = vec![Vec::new(); level.iter().max().map_or(0, |m| m + 1)];
    for (i, &l) in level.iter().enumerate() {
        by_level[l].push(i);
    }
    // Names and versions follow the recipe grammar; together they must still fit one path
    // component. Checked in the parallel pass; the error names the first such node in plan order.
    let mut fits = vec![true; nodes.len()];
    for members in by_level {
        let ids: Vec<(usize, NodeId, bool)> = members
            .par_iter()
            .map(|&i| {
                let dep_ids: Vec<(&str, NodeId)> = dep_positions[i]
                    .iter()
                    .map(|&d| (nodes[d].key.name.as_str(), nodes[d].id))
                    .collect();
                let (n, id) = (&nodes[i], canonical::node_id(&nodes[i], &dep_ids));
                (i, id, StoreName::new(&id, &n.key.name, &n.version).is_ok())
            })
            .collect();
        for (i, id, fit) in ids {
            nodes[i].id = id;
            fits[i] = fit;
        }
    }
    if let Some(n) = nodes.iter().zip(&fits).find_map(|(n, fit)| (!fit).then_some(n)) {
        let e = StoreName::new(&n.id, &n.key.name, &n.version).expect_err("checked above");
        return Err(PlanError::StoreName {
            file: n.file.clone(),
            node: n.key.to_string(),
            message: e.to_string(),
        });
    }

    let edges = nodes.iter().map(|n| n.deps.len()).sum();
    let mut plan = Plan {
        dag: DiGraph::with_capacity(nodes.len(), edges),
        index: FastMap::with_capacity_and_hasher(nodes.len(), Default::default()),
    };
    for node in nodes {
        let key = node.key.clone();
        let deps = node.deps.clone();
        let ix = plan.dag.add_node(node);
        for d in deps {
            plan.dag.add_edge(ix, d, ());
        }
        plan.index.insert(key, ix);
    }
    Ok(plan)
}

/// Name → license of the non-bootstrap nodes below node `i` (positions index `nodes`).
fn closure_licenses(nodes: &[PlanNode], dep_positions: &[Vec<usize>], i: usize) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = dep_positions[i].clone();
    while let Some(d) = stack.pop() {
        if seen.insert(d) {
            if !nodes[d].is_host_specific() {
                out.insert(nodes[d].key.name.clone(), nodes[d].license.clone());
            }
            stack.extend(&dep_positions[d]);
        }
    }
    out
}

/// Resolves every node for every target it exists for.
pub fn resolve_all(graph: &Graph, probes: &mut ProbeCache) -> Result<Plan, PlanError> {
    let targets: Vec<spy_recipe::TargetFacts> = graph.config.targets.keys().map(|t| graph.config.target_facts(t)).collect();
    let mut roots = Vec::new();
    for node in graph.nodes.values() {
        for t in &targets {
            if node.exists_for(*t) {
                roots.push(NodeKey {
                    name: node.name.clone(),
                    target: t.name.to_string(),
                });
            }
        }
    }
    resolve(graph, &roots, probes)
}

/// Interned names and targets: the walk handles `(name index, target index)` pairs, not strings.
struct Names<'g> {
    config: &'g spy_recipe::GraphConfig,
    nodes: Vec<&'g spy_recipe::RawNode>,
    node_ix: FastMap<&'g str, u32>,
    /// Per target index: its name and what decides which nodes exist for it.
    target_facts: Vec<spy_recipe::TargetFacts<'g>>,
    target_ix: FastMap<&'g str, u32>,
    /// Per target: the nodes the implicit dependencies are built from (they must not receive the
    /// implicit dependencies themselves).
    stdenv: HashMap<u32, std::collections::HashSet<u32>>,
    implicit: Vec<u32>,
}

type Ix = (u32, u32);
/// A node of the closure and its dependencies, in post-order.
type Visited = (Ix, Vec<Ix>);

impl<'g> Names<'g> {
    fn new(graph: &'g Graph) -> Self {
        let nodes: Vec<&spy_recipe::RawNode> = graph.nodes.values().collect();
        let node_ix = nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i as u32)).collect();
        let target_facts: Vec<spy_recipe::TargetFacts> = graph.config.targets.keys().map(|t| graph.config.target_facts(t)).collect();
        let target_ix = target_facts.iter().enumerate().map(|(i, t)| (t.name, i as u32)).collect();
        let mut names = Names {
            config: &graph.config,
            nodes,
            node_ix,
            target_facts,
            target_ix,
            stdenv: HashMap::new(),
            implicit: Vec::new(),
        };
        names.implicit = graph
            .config
            .implicit_deps
            .iter()
            .filter_map(|d| names.node_ix.get(d.as_str()).copied())
            .collect();
        names
    }

    /// How many (node, target) pairs there are, and a pair's place among them: the index of the
    /// flat tables a resolve keeps per pair, not hash maps (a resolve visits every node).
    fn slots(&self) -> usize {
        self.nodes.len() * self.target_facts.len()
    }

    fn slot(&self, (n, t): Ix) -> usize {
        n as usize * self.target_facts.len() + t as usize
    }

    fn ix(&self, key: &NodeKey) -> Option<Ix> {
        Some((*self.node_ix.get(key.name.as_str())?, *self.target_ix.get(key.target.as_str())?))
    }

    fn key(&self, (n, t): Ix) -> NodeKey {
        NodeKey {
            name: self.nodes[n as usize].name.clone(),
            target: self.target_facts[t as usize].name.to_string(),
        }
    }

    fn deps_of(&self, (n, t): Ix) -> std::borrow::Cow<'g, [spy_recipe::NodeName]> {
        let target = self.target_facts[t as usize];
        self.nodes[n as usize].recipe.for_target_deps(target.name, target.family)
    }

    fn stdenv_closure(&mut self, t: u32) -> &std::collections::HashSet<u32> {
        if !self.stdenv.contains_key(&t) {
            let mut seen = std::collections::HashSet::new();
            let mut stack = self.implicit.clone();
            while let Some(n) = stack.pop() {
                if seen.insert(n) {
                    stack.extend(self.deps_of((n, t)).iter().filter_map(|d| self.node_ix.get(d.as_str()).copied()));
                }
            }
            self.stdenv.insert(t, seen);
        }
        &self.stdenv[&t]
    }

    /// The dependencies of a node: its recipe's, plus the implicit ones for build nodes outside
    /// the stdenv's own closure; sorted by name.
    fn dep_ixs(&mut self, ix: Ix) -> Result<Vec<Ix>, PlanError> {
        let (n, t) = ix;
        let mut deps: Vec<u32> = Vec::new();
        for d in self.deps_of(ix).iter() {
            deps.push(*self.node_ix.get(d.as_str()).ok_or_else(|| PlanError::UnknownName {
                spec: d.to_string(),
                suggestions: Vec::new(),
            })?);
        }
        let kind = self.nodes[n as usize].recipe.kind.unwrap_or_default();
        if kind == Kind::Build && !self.implicit.is_empty() && !self.stdenv_closure(t).contains(&n) {
            deps.extend(self.implicit.iter().copied());
        }
        // Node indices follow the graph's name order (a BTreeMap's), so this sorts by name.
        deps.sort_unstable();
        deps.dedup();
        let target = self.target_facts[t as usize];
        deps.into_iter()
            .map(|d| {
                let node = self.nodes[d as usize];
                let name = &node.name;
                if node.exists_for(target) {
                    Ok((d, t))
                } else {
                    let user = self.nodes[n as usize];
                    Err(PlanError::DepNotForTarget {
                        file: user.file.clone(),
                        needed_by: user.name.clone(),
                        name: name.clone(),
                        target: target.name.to_string(),
                    })
                }
            })
            .collect()
    }
}

/// Depth-first, iteratively (graphs may be deep): the closure of `roots` in post-order
/// (dependencies first), with each node's dependency keys. A dependency met again while still on
/// the current path closes a cycle.
fn walk<'g>(graph: &'g Graph, roots: &[NodeKey]) -> Result<(Names<'g>, Vec<Visited>), PlanError> {
    enum Frame {
        Enter(Ix),
        Exit(Ix, Vec<Ix>),
    }
    let mut names = Names::new(graph);
    let mut done = vec![false; names.slots()];
    // Where on the current path a node is (`usize::MAX`: not on it).
    let mut on_path = vec![usize::MAX; names.slots()];
    let mut order: Vec<(Ix, Vec<Ix>)> = Vec::new();
    for root in roots {
        let root_ix = names.ix(root).ok_or_else(|| PlanError::UnknownName {
            spec: root.to_string(),
            suggestions: Vec::new(),
        })?;
        let node = names.nodes[root_ix.0 as usize];
        if !node.exists_for(names.target_facts[root_ix.1 as usize]) {
            return Err(PlanError::NotForTarget {
                name: root.name.clone(),
                target: root.target.clone(),
                made_for: names
                    .config
                    .targets
                    .keys()
                    .filter(|t| node.has_target(t.as_str(), names.config))
                    .map(|t| t.to_string())
                    .collect(),
            });
        }
        let mut path: Vec<Ix> = Vec::new();
        let mut stack = vec![Frame::Enter(root_ix)];
        while let Some(frame) = stack.pop() {
            match frame {
                Frame::Enter(ix) => {
                    if done[names.slot(ix)] {
                        continue;
                    }
                    let pos = on_path[names.slot(ix)];
                    if pos != usize::MAX {
                        let mut cycle: Vec<String> = path[pos..].iter().map(|k| names.nodes[k.0 as usize].name.clone()).collect();
                        cycle.push(names.nodes[ix.0 as usize].name.clone());
                        let file = path
                            .last()
                            .map(|k| names.nodes[k.0 as usize].file.display().to_string())
                            .unwrap_or_default();
                        cycle.push(format!("(closed by key `deps` in {file})"));
                        return Err(PlanError::Cycle { cycle });
                    }
                    let deps = names.dep_ixs(ix)?;
                    on_path[names.slot(ix)] = path.len();
                    path.push(ix);
                    stack.push(Frame::Exit(ix, deps.clone()));
                    stack.extend(deps.iter().rev().map(|&d| Frame::Enter(d)));
                }
                Frame::Exit(ix, deps) => {
                    path.pop();
                    on_path[names.slot(ix)] = usize::MAX;
                    if !std::mem::replace(&mut done[names.slot(ix)], true) {
                        order.push((ix, deps));
                    }
                }
            }
        }
    }
    Ok((names, order))
}

/// A plan node with everything but its id and its probed host tools, and the names of those tools
/// (bootstrap nodes; empty otherwise).
fn node_without_id(graph: &Graph, key: &NodeKey, deps: &[usize]) -> Result<(PlanNode, Vec<String>), PlanError> {
    let recipe = graph.recipe_for(&key.name, &key.target)?;
    let file = graph.file_of(&key.name).map(|p| p.to_path_buf()).unwrap_or_default();
    let mut sources = Vec::with_capacity(recipe.sources.len());
    for (i, s) in recipe.sources.iter().enumerate() {
        sources.push(resolve_source(&file, &key.name, i, s)?);
    }
    let local = |paths: &[PathBuf]| -> Result<Vec<Patch>, PlanError> {
        paths
            .iter()
            .map(|p| {
                let bytes = fs_err::read(p).map_err(|e| PlanError::Patch {
                    node: key.name.clone(),
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                Ok(Patch {
                    name: p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    path: p.clone(),
                    blake3: spy_hash::Blake3::of_bytes(&bytes),
                })
            })
            .collect()
    };
    let patches = local(&recipe.patches)?;
    let files = local(&recipe.files)?;
    let tool_names = if recipe.kind == Kind::Bootstrap {
        recipe.tools.into_iter().map(String::from).collect()
    } else {
        Vec::new()
    };
    let fuse = recipe.fuse.map(|spec| FusePlan {
        spec,
        release: display_name(graph, key),
        licenses: BTreeMap::new(),
    });
    let node = PlanNode {
        key: key.clone(),
        id: NodeId([0; 32]),
        version: recipe.version.into_string(),
        kind: recipe.kind,
        description: recipe.description,
        license: recipe.license,
        sources,
        patches,
        files,
        env: recipe.env,
        phases: recipe.phases,
        tools: Vec::new(),
        weight: recipe.weight,
        deps: deps.iter().map(|&d| NodeIndex::new(d)).collect(),
        file,
        fuse,
    };
    Ok((node, tool_names))
}

/// A git pin's `exclude` list (each a plain relative path, checked when the recipe was parsed),
/// sorted so that the order written in a recipe does not change the id; a path named twice is an
/// error.
fn git_exclude(paths: &[spy_recipe::RelPath]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    out.sort();
    if let Some(w) = out.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("git `exclude` names `{}` twice", w[0]));
    }
    Ok(out)
}

fn resolve_source(file: &std::path::Path, node: &str, index: usize, s: &spy_recipe::SourceSpec) -> Result<Source, PlanError> {
    let bad = |message: String| PlanError::BadSource {
        file: file.to_path_buf(),
        node: node.into(),
        index,
        message,
    };
    let pin = match (&s.sha256, &s.git) {
        (Some(h), None) => SourcePin::Sha256(h.parse().map_err(|e: spy_hash::HashError| bad(e.to_string()))?),
        (None, Some(g)) => {
            if g.commit.len() != 40 || !g.commit.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                return Err(bad(format!(
                    "git commit `{}` must be a full 40-digit lowercase hex id, not a prefix or a ref",
                    g.commit
                )));
            }
            SourcePin::Git {
                url: g.url.clone(),
                commit: g.commit.clone(),
                exclude: git_exclude(&g.exclude).map_err(bad)?,
            }
        }
        (Some(_), Some(_)) => return Err(bad("give either `sha256` or `git`, not both".into())),
        (None, None) => return Err(bad("a source needs a pinned `sha256` (or a `git` commit)".into())),
    };
    let file_name = match (&s.file, s.urls.first(), &pin) {
        (Some(f), _, _) => f.to_string(),
        (None, Some(u), _) => u.rsplit('/').next().unwrap_or(u).to_string(),
        (None, None, SourcePin::Git { commit, .. }) => format!("git-{commit}.tar"),
        (None, None, _) => return Err(bad("cannot tell the file name: give `file` or a URL".into())),
    };
    // `file` was checked when the recipe was read; a name taken from a URL is checked here, by the
    // same grammar (it names a file in mirrors and in the build directory).
    let file_name = spy_recipe::FileName::new(file_name)
        .map_err(|e| bad(format!("{e} (give `file`)")))?
        .into_string();
    let var = s
        .var
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| if index == 0 { "src".into() } else { format!("src_{index}") });
    Ok(Source {
        pin,
        file: file_name,
        urls: s.urls.clone(),
        debian: s.debian.clone(),
        pypi: s.pypi.clone(),
        unpack: s.unpack,
        var,
    })
}

#[cfg(test)]
mod tests;
