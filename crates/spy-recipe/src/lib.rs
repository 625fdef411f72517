//! The recipe model: reads the graph directory (`spy.toml` plus one TOML recipe per node) and the
//! overlays, checks every file's keys against the schema (so a typo is an error with file and
//! line), and merges overlays and per-target tables into one recipe per node and target. It only
//! reads the graph directory and the overlay files; every value that will become a path is a
//! checked newtype (`names.rs`).
//!
//! Merging is one rule everywhere: tables (`env`, `phases`, `target`) merge key by key, every other
//! value replaces. The same rule applies to `[target.<name>]` tables and to `[nodes.<name>]` tables
//! of overlays, in order.

mod cache;
mod error;
mod names;
mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use cache::{RecipeCache, MAX_CACHE_BYTES};
pub use error::RecipeError;
pub use names::{
    check_debian, check_git_url, check_pypi, check_url, FileName, NameError, NodeName, RelPath, TargetName, ToolName, VarName, Version,
};
pub use schema::{
    FuseSpec, GitPin, Kind, PartialFuse, PartialRecipe, PartialTargetRecipe, Phase, Recipe, SourceSpec, ZipCompression, PHASES,
};

/// Graph-wide settings from `spy.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// Recipe format version this graph is written for.
    pub format: u32,
    /// Target used when a name carries none.
    pub default_target: Option<TargetName>,
    /// Nodes every build node depends on (the stdenv), unless they are in its own closure.
    #[serde(default)]
    pub implicit_deps: Vec<NodeName>,
    /// Overlay files (relative to the graph root's parent) applied on every load.
    #[serde(default)]
    pub overlays: Vec<RelPath>,
    /// Binary caches asked before building, in order (`file:///DIR`, `http(s)://...`).
    #[serde(default)]
    pub substituters: Vec<String>,
    /// Public keys (`NAME:BASE64`) whose signatures make a cache entry acceptable.
    #[serde(default, rename = "trusted-public-keys")]
    pub trusted_public_keys: Vec<String>,
    pub targets: BTreeMap<TargetName, TargetConfig>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The short name used in release names: `zlib-x86_64`.
    pub short: TargetName,
    #[serde(default)]
    pub description: String,
    /// Only recipes that name this target (or its family) in their `targets` list exist for it
    /// (targets whose support is added recipe by recipe, such as darwin).
    #[serde(default)]
    pub explicit: bool,
    /// A name shared by similar targets (`darwin`): a recipe's `[target.<family>]` table applies to
    /// each of them (before the target's own table), and `targets` may name the family.
    #[serde(default)]
    pub family: Option<TargetName>,
}

impl GraphConfig {
    /// The family of a target, if it has one.
    pub fn family(&self, target: &str) -> Option<&str> {
        self.targets.get(target).and_then(|t| t.family.as_deref())
    }

    /// What decides which nodes exist for `target`, looked up once for the many nodes a resolve
    /// asks about (two map lookups a node and dependency were 4 ms of a 10,000-node resolve).
    pub fn target_facts<'a>(&'a self, target: &'a str) -> TargetFacts<'a> {
        let t = self.targets.get(target);
        TargetFacts {
            name: target,
            family: t.and_then(|t| t.family.as_deref()),
            implicit: t.is_some_and(|t| !t.explicit),
        }
    }
}

/// A target as [`RawNode::exists_for`] needs it: its name, its family, and whether recipes
/// without a `targets` list exist for it (a target spy.toml does not have: no).
#[derive(Debug, Clone, Copy)]
pub struct TargetFacts<'a> {
    pub name: &'a str,
    pub family: Option<&'a str>,
    pub implicit: bool,
}

pub const FORMAT: u32 = 1;

/// One node after loading: its merged raw table and where it came from.
#[derive(Debug, Clone)]
pub struct RawNode {
    pub name: String,
    /// Boxed: the table is large, and a graph's nodes are sorted and mapped by name in bulk.
    pub recipe: Box<PartialRecipe>,
    /// The recipe file that defined the node.
    pub file: PathBuf,
    /// Overlay files that changed it, in order.
    pub overlays: Vec<PathBuf>,
}

impl RawNode {
    /// Whether the node exists for `target`: a recipe with `targets = [...]` exists for those; one
    /// without exists for every target that is not `explicit` in spy.toml.
    pub fn has_target(&self, target: &str, config: &GraphConfig) -> bool {
        self.exists_for(config.target_facts(target))
    }

    /// [`RawNode::has_target`] with the target's facts looked up already.
    pub fn exists_for(&self, target: TargetFacts<'_>) -> bool {
        match &self.recipe.targets {
            Some(list) => list.iter().any(|t| t.as_str() == target.name || Some(t.as_str()) == target.family),
            None => target.implicit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Graph {
    pub root: PathBuf,
    pub config: GraphConfig,
    pub nodes: BTreeMap<String, RawNode>,
}

impl Graph {
    /// The graph a command run in `start` means: the nearest `graph/spy.toml` at or above it (as
    /// cargo finds its workspace), so spy works from any subdirectory of a checkout.
    pub fn discover(start: &Path) -> Option<PathBuf> {
        start.ancestors().map(|a| a.join("graph")).find(|g| g.join("spy.toml").is_file())
    }

    /// Where the store of the graph in `graph_dir` is when none is named: `store/` beside it.
    pub fn default_store_dir(graph_dir: &Path) -> PathBuf {
        graph_dir
            .parent()
            .map(|p| p.join("store"))
            .unwrap_or_else(|| PathBuf::from("store"))
    }

    /// Names of the nodes whose recipe (for any target) pins a source to this sha256 (hex).
    pub fn nodes_pinning(&self, sha256: &str) -> Vec<String> {
        let pins = |sources: &Option<Vec<SourceSpec>>| sources.iter().flatten().any(|s| s.sha256.as_deref() == Some(sha256));
        self.nodes
            .values()
            .filter(|n| pins(&n.recipe.sources) || n.recipe.target.iter().flatten().any(|(_, t)| pins(&t.sources)))
            .map(|n| n.name.clone())
            .collect()
    }

    /// Loads `dir/spy.toml` and every other `*.toml` below `dir`, then applies the overlays named
    /// in `spy.toml` followed by `extra_overlays`, in order.
    pub fn load(dir: &Path, extra_overlays: &[PathBuf]) -> Result<Graph, RecipeError> {
        Graph::load_cached(dir, extra_overlays, &mut RecipeCache::none())
    }

    /// [`Graph::load`], taking each recipe file's table from `cache` when the file is unchanged
    /// since it was recorded; afterwards `cache.updated()` has what to save, if anything changed.
    pub fn load_cached(dir: &Path, extra_overlays: &[PathBuf], cache: &mut RecipeCache) -> Result<Graph, RecipeError> {
        Graph::load_cached_at(dir, extra_overlays, cache, std::time::SystemTime::now())
    }

    /// [`Graph::load_cached`] as if it started at `started` (tests record files just written).
    pub(crate) fn load_cached_at(
        dir: &Path,
        extra_overlays: &[PathBuf],
        cache: &mut RecipeCache,
        started: std::time::SystemTime,
    ) -> Result<Graph, RecipeError> {
        match Graph::load_files(dir, extra_overlays, cache, started) {
            // A load that failed with tables from the cache is made again from the files alone: the
            // error is then the files' (never a damaged entry's), and the cache made anew.
            Err(_) if cache.has_entries() => {
                *cache = RecipeCache::empty();
                Graph::load_files(dir, extra_overlays, cache, started)
            }
            result => result,
        }
    }

    fn load_files(
        dir: &Path,
        extra_overlays: &[PathBuf],
        cache: &mut RecipeCache,
        started: std::time::SystemTime,
    ) -> Result<Graph, RecipeError> {
        let config_path = dir.join("spy.toml");
        let text = read(&config_path)?;
        let config: GraphConfig = toml::from_str(&text).map_err(|e| RecipeError::parse(&config_path, &text, &e))?;
        if config.format != FORMAT {
            return Err(RecipeError::Invalid {
                file: config_path,
                line: None,
                key: "format".into(),
                message: format!("graph format {} is not supported (this spy reads format {FORMAT})", config.format),
            });
        }
        if let Some(t) = &config.default_target {
            if !config.targets.contains_key(t.as_str()) {
                return Err(RecipeError::UnknownTarget {
                    file: config_path.clone(),
                    line: line_of(&text, t),
                    key: "default_target".into(),
                    target: t.to_string(),
                    known: config.targets.keys().map(|k| k.to_string()).collect(),
                });
            }
        }
        let mut files = Vec::new();
        collect_toml(dir, &mut files)?;
        // By bytes: the walk spells each path as `dir` joined with names, as `config_path` is
        // (a `Path` comparison parses both into components, 10,000 times).
        files.retain(|f| f.as_os_str() != config_path.as_os_str());
        use rayon::prelude::*;
        files.par_sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));

        let rels: Vec<Option<&str>> = files.iter().map(|f| rel_path(dir, f)).collect();
        cache.index_for(&rels);
        let shared = &*cache;
        let parsed: Vec<Result<LoadedFile, RecipeError>> = files
            .par_iter()
            .zip(&rels)
            .enumerate()
            .map(|(pos, (f, rel))| load_recipe_file(f, pos, *rel, &config, shared, started))
            .collect();
        let mut loaded: Vec<RawNode> = Vec::with_capacity(parsed.len());
        let mut lines = Vec::with_capacity(parsed.len());
        let mut hits = 0;
        for p in parsed {
            let (nodes, line, hit) = p?;
            lines.push(line);
            hits += usize::from(hit);
            for (name, recipe, file) in nodes {
                loaded.push(RawNode {
                    name,
                    recipe,
                    file,
                    overlays: vec![],
                });
            }
        }
        // Sorted first: duplicates become neighbours and the map is bulk-built.
        loaded.par_sort_unstable_by(|a, b| a.name.cmp(&b.name).then_with(|| a.file.cmp(&b.file)));
        if let Some(w) = loaded.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(RecipeError::Duplicate {
                name: w[0].name.clone(),
                first: w[0].file.clone(),
                second: w[1].file.clone(),
            });
        }
        let nodes: BTreeMap<String, RawNode> = loaded.into_iter().map(|n| (n.name.clone(), n)).collect();
        let base = dir.parent().unwrap_or(dir).to_path_buf();
        let mut graph = Graph {
            root: dir.to_path_buf(),
            config,
            nodes,
        };
        let mut overlays: Vec<PathBuf> = graph.config.overlays.iter().map(|o| base.join(o.as_str())).collect();
        overlays.extend(extra_overlays.iter().cloned());
        for o in overlays {
            graph.apply_overlay(&o)?;
        }
        graph.check_references()?;
        cache.finish_load(lines, hits);
        Ok(graph)
    }

    /// Sets `sources = true` in every `[fuse]` table (`spy --py-sources`), the target-specific
    /// ones included.
    pub fn set_fuse_sources(&mut self) {
        for node in self.nodes.values_mut() {
            let r = &mut node.recipe;
            let tables = r
                .fuse
                .iter_mut()
                .chain(r.target.iter_mut().flatten().filter_map(|(_, t)| t.fuse.as_mut()));
            for fuse in tables {
                fuse.sources = Some(true);
            }
        }
    }

    /// Applies one overlay file: `[nodes.NAME]` tables merge into existing nodes or add new ones.
    pub fn apply_overlay(&mut self, path: &Path) -> Result<(), RecipeError> {
        let text = read(path)?;
        self.apply_overlay_text(path, &text)
    }

    /// Applies an overlay made by spy itself (`spy realize --with` makes one from the lock file):
    /// `path` is the file its nodes are said to come from; every dependency it names is checked.
    pub fn apply_generated_overlay(&mut self, path: &Path, text: &str) -> Result<(), RecipeError> {
        self.apply_overlay_text(path, text)?;
        self.check_references()
    }

    fn apply_overlay_text(&mut self, path: &Path, text: &str) -> Result<(), RecipeError> {
        let text = text.to_string();
        let overlay: schema::OverlayFile = toml::from_str(&text).map_err(|e| RecipeError::parse(path, &text, &e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for (name, mut partial) in overlay.nodes {
            if partial.variants.is_some() {
                return Err(RecipeError::Invalid {
                    file: path.into(),
                    line: line_of(&text, "variants"),
                    key: format!("nodes.{name}.variants"),
                    message: "variants belong in graph files, not in overlays".into(),
                });
            }
            check_targets(&partial, &self.config, path, &text)?;
            absolutize_patches(&mut partial, dir);
            match self.nodes.get_mut(name.as_str()) {
                Some(node) => {
                    if let Some(n) = &partial.name {
                        if n != &name {
                            return Err(RecipeError::Invalid {
                                file: path.into(),
                                line: line_of(&text, n),
                                key: format!("nodes.{name}.name"),
                                message: "an overlay cannot rename a node".into(),
                            });
                        }
                    }
                    node.recipe.merge(partial);
                    node.overlays.push(path.to_path_buf());
                }
                None => {
                    // A table for a node the graph does not have adds one; one without even a
                    // version is a misspelt name (`[nodes.libgret.env]`), which would otherwise
                    // change nothing without a word.
                    if partial.version.is_none() {
                        return Err(RecipeError::UnknownOverlayNode {
                            file: path.into(),
                            line: line_of(&text, &format!("nodes.{name}")).or_else(|| line_of(&text, &name)),
                            node: name.to_string(),
                        });
                    }
                    partial.name.get_or_insert_with(|| name.clone());
                    self.nodes.insert(
                        name.to_string(),
                        RawNode {
                            name: name.into_string(),
                            recipe: Box::new(partial),
                            file: path.to_path_buf(),
                            overlays: vec![],
                        },
                    );
                }
            }
        }
        Ok(())
    }

    fn check_references(&self) -> Result<(), RecipeError> {
        for name in &self.config.implicit_deps {
            if !self.nodes.contains_key(name.as_str()) {
                let file = self.root.join("spy.toml");
                let text = read(&file).unwrap_or_default();
                return Err(RecipeError::MissingDep {
                    file,
                    line: line_of(&text, name),
                    node: "(graph)".into(),
                    key: "implicit_deps".into(),
                    dep: name.to_string(),
                });
            }
        }
        // In parallel, the first node (by name) that names a missing one: most graphs have none.
        use rayon::prelude::*;
        let nodes: Vec<&RawNode> = self.nodes.values().collect();
        let names: std::collections::HashSet<&str> = self.nodes.keys().map(String::as_str).collect();
        let broken = nodes
            .par_iter()
            .find_first(|node| !node.recipe.dep_names().all(|d| names.contains(d.as_str())));
        if let Some(node) = broken {
            // The lists with their keys are made only for a node that names a missing node.
            for (key, list) in node.recipe.dep_lists() {
                for dep in list {
                    if !self.nodes.contains_key(dep.as_str()) {
                        let file = node
                            .overlays
                            .iter()
                            .rev()
                            .chain(std::iter::once(&node.file))
                            .find(|f| read(f).map(|t| t.contains(&format!("\"{dep}\""))).unwrap_or(false))
                            .unwrap_or(&node.file)
                            .clone();
                        let text = read(&file).unwrap_or_default();
                        return Err(RecipeError::MissingDep {
                            line: line_of(&text, &format!("\"{dep}\"")),
                            file,
                            node: node.name.clone(),
                            key: key.into_owned(),
                            dep: dep.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    pub fn default_target(&self) -> Option<&str> {
        self.config
            .default_target
            .as_deref()
            .or_else(|| self.config.targets.keys().next().map(|s| s.as_str()))
    }

    /// The recipe of `name` for `target`: the node's table with `[target.<target>]` merged in.
    pub fn recipe_for(&self, name: &str, target: &str) -> Result<Recipe, RecipeError> {
        let node = self.nodes.get(name).ok_or_else(|| RecipeError::UnknownNode { name: name.into() })?;
        if !self.config.targets.contains_key(target) {
            return Err(RecipeError::UnknownTarget {
                file: self.root.join("spy.toml"),
                line: None,
                key: "targets".into(),
                target: target.into(),
                known: self.config.targets.keys().map(|k| k.to_string()).collect(),
            });
        }
        let r = node.recipe.for_target(target, self.config.family(target));
        let last = node.overlays.last().unwrap_or(&node.file);
        let version = r.version.ok_or_else(|| RecipeError::Invalid {
            file: last.clone(),
            line: None,
            key: "version".into(),
            message: format!("node `{name}` (for {target}) has no version"),
        })?;
        let recipe_name = match r.name {
            Some(n) => n,
            None => NodeName::new(name).map_err(|e| RecipeError::Invalid {
                file: node.file.clone(),
                line: None,
                key: "name".into(),
                message: e.to_string(),
            })?,
        };
        if recipe_name != name {
            return Err(RecipeError::Invalid {
                file: node.file.clone(),
                line: None,
                key: "name".into(),
                message: format!("node `{name}` is named `{recipe_name}`"),
            });
        }
        let kind = r.kind.unwrap_or_default();
        let invalid = |key: &str, message: String| RecipeError::Invalid {
            file: last.clone(),
            line: None,
            key: key.into(),
            message,
        };
        let fuse = match r.fuse.clone().map(PartialFuse::finish).transpose() {
            Ok(f) => f,
            Err(key) => return Err(invalid(&format!("fuse.{key}"), format!("fuse node `{name}` needs `fuse.{key}`"))),
        };
        match (&fuse, kind) {
            (None, Kind::Fuse) => return Err(invalid("fuse", format!("fuse node `{name}` needs a [fuse] table"))),
            (Some(_), k) if k != Kind::Fuse => {
                return Err(invalid(
                    "fuse",
                    format!("node `{name}` has a [fuse] table but kind `{}`", k.as_str()),
                ))
            }
            (Some(f), _) => {
                if !r.deps.iter().flatten().any(|d| d == &f.interpreter) {
                    return Err(invalid(
                        "fuse.interpreter",
                        format!("`{}` must be one of the dependencies of `{name}`", f.interpreter),
                    ));
                }
                if r.sources.as_ref().is_some_and(|s| !s.is_empty()) || r.phases.as_ref().is_some_and(|p| !p.is_empty()) {
                    return Err(invalid("kind", format!("fuse node `{name}` takes no sources and no phases")));
                }
            }
            (None, _) => {}
        }
        Ok(Recipe {
            name: recipe_name,
            version,
            kind,
            description: r.description.unwrap_or_default(),
            license: r.license.unwrap_or_default(),
            deps: r.deps.unwrap_or_default(),
            targets: r.targets,
            sources: r.sources.unwrap_or_default(),
            patches: r.patches.unwrap_or_default(),
            files: r.files.unwrap_or_default(),
            env: r.env.unwrap_or_default(),
            phases: r.phases.unwrap_or_default(),
            tools: r.tools.unwrap_or_default(),
            weight: r.weight.unwrap_or(1),
            fuse,
        })
    }

    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.nodes.get(name).map(|n| n.file.as_path())
    }
}

/// `file` relative to `dir`, as `Path::strip_prefix` gives it, if it is UTF-8. The files of a walk
/// are `dir` joined with names, so their bytes start with `dir`'s: a byte comparison finds the rest
/// without parsing both paths into components (a tenth of a 10,000-file load's serial part).
fn rel_path<'a>(dir: &Path, file: &'a Path) -> Option<&'a str> {
    use std::os::unix::ffi::OsStrExt;
    let dir = dir.as_os_str().as_bytes();
    let fast = file.as_os_str().as_bytes().strip_prefix(dir).and_then(|rest| {
        // `dir` must end where a component does (`graph` is no prefix of `graphs/x.toml`).
        let rest = if dir.ends_with(b"/") { rest } else { rest.strip_prefix(b"/")? };
        // A rest that starts with a separator or a `.` component is left to `strip_prefix`.
        (!rest.is_empty() && rest != b"." && !rest.starts_with(b"/") && !rest.starts_with(b"./")).then_some(rest)
    });
    match fast {
        Some(rest) => std::str::from_utf8(rest).ok(),
        None => file.strip_prefix(std::ffi::OsStr::from_bytes(dir)).ok().and_then(|r| r.to_str()),
    }
}

fn read(path: &Path) -> Result<String, RecipeError> {
    use std::io::Read;
    let err = |e: std::io::Error| RecipeError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // Through `take`, so std does not stat the file for a size hint: recipes are small, and a
    // graph has thousands of them.
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut text = String::with_capacity(2048);
    (&mut file).take(u64::MAX).read_to_string(&mut text).map_err(err)?;
    Ok(text)
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), RecipeError> {
    let rd = fs_err::read_dir(dir).map_err(|e| RecipeError::Io {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut subdirs = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| RecipeError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let p = entry.path();
        let ft = entry.file_type().map_err(|e| RecipeError::Io {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if ft.is_dir() {
            subdirs.push(p);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    // Subdirectories are read in parallel: a large graph spreads its recipes over many, a
    // directory is read a syscall at a time, and the load sorts the files afterwards anyway.
    use rayon::prelude::*;
    let nested: Vec<Result<Vec<PathBuf>, RecipeError>> = subdirs
        .par_iter()
        .map(|d| {
            let mut files = Vec::new();
            collect_toml(d, &mut files).map(|()| files)
        })
        .collect();
    for files in nested {
        out.extend(files?);
    }
    Ok(())
}

/// A node as read from a file: its name, its table and the file.
type LoadedNode = (String, Box<PartialRecipe>, PathBuf);

/// A recipe file's nodes, its cache line (`None`: not recorded) and whether the cache had it.
type LoadedFile = (Vec<LoadedNode>, Option<cache::CacheLine>, bool);

fn load_recipe_file(
    path: &Path,
    pos: usize,
    rel: Option<&str>,
    config: &GraphConfig,
    cache: &RecipeCache,
    started: std::time::SystemTime,
) -> Result<LoadedFile, RecipeError> {
    let looked = cache.look_up(path, pos, rel, started)?;
    let (line, hit) = (looked.line, looked.hit);
    let nodes = match nodes_of_file(path, config, looked.partial, looked.text.as_deref().unwrap_or_default()) {
        Ok(nodes) => nodes,
        // A recorded table the graph's settings now refuse (a target gone from spy.toml): the
        // error is made again from the file, so that it names the line.
        Err(_) if hit => {
            let (text, partial) = parse_recipe_file(path)?;
            nodes_of_file(path, config, partial, &text)?
        }
        Err(e) => return Err(e),
    };
    Ok((nodes, line, hit))
}

/// A recipe file's text and its table as written.
fn parse_recipe_file(path: &Path) -> Result<(String, PartialRecipe), RecipeError> {
    let text = read(path)?;
    let partial = toml::from_str(&text).map_err(|e| RecipeError::parse(path, &text, &e))?;
    Ok((text, partial))
}

/// The nodes a recipe file's table makes (one, or one per variant), checked against the graph's
/// settings. `text` is the file's, for the line numbers of errors.
fn nodes_of_file(path: &Path, config: &GraphConfig, mut partial: PartialRecipe, text: &str) -> Result<Vec<LoadedNode>, RecipeError> {
    let invalid = |key: &str, message: &str| RecipeError::Invalid {
        file: path.into(),
        line: line_of(text, key).or(Some(1)),
        key: key.into(),
        message: message.into(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(variants) = partial.variants.take() {
        if partial.name.is_some() {
            return Err(invalid(
                "name",
                "a file of variants names its nodes by the keys of [variants.*], not by `name`",
            ));
        }
        if variants.is_empty() {
            return Err(invalid("variants", "`variants` is empty"));
        }
        // The family's own list edits apply to each variant's lists once the variant's keys are in.
        let family_edits = partial.take_edits();
        let mut out = Vec::with_capacity(variants.len());
        for (name, v) in variants {
            if v.variants.is_some() || v.name.is_some() {
                return Err(invalid(&name, "a variant cannot have `name` or `variants` of its own"));
            }
            let mut node = partial.clone();
            node.merge(v);
            node.apply_edits(&family_edits);
            node.name = Some(name.clone());
            check_targets(&node, config, path, text)?;
            absolutize_patches(&mut node, dir);
            out.push((name.into_string(), Box::new(node), path.to_path_buf()));
        }
        return Ok(out);
    }
    let Some(name) = partial.name.clone() else {
        return Err(invalid("name", "a recipe needs `name` (or `[variants.NAME]` tables)"));
    };
    let edits = partial.take_edits();
    partial.apply_edits(&edits);
    check_targets(&partial, config, path, text)?;
    absolutize_patches(&mut partial, dir);
    Ok(vec![(name.into_string(), Box::new(partial), path.to_path_buf())])
}

fn check_targets(p: &schema::PartialRecipe, config: &GraphConfig, path: &Path, text: &str) -> Result<(), RecipeError> {
    if p.target.is_none() && p.targets.is_none() {
        return Ok(());
    }
    let known: BTreeSet<&str> = config
        .targets
        .keys()
        .map(|t| t.as_str())
        .chain(config.targets.values().filter_map(|t| t.family.as_deref()))
        .collect();
    let named = p
        .target
        .iter()
        .flat_map(|t| t.keys().map(|k| (k, "target")))
        .chain(p.targets.iter().flatten().map(|k| (k, "targets")));
    for (t, key) in named {
        if !known.contains(t.as_str()) {
            return Err(RecipeError::UnknownTarget {
                file: path.into(),
                line: line_of(text, t),
                key: key.into(),
                target: t.to_string(),
                known: config.targets.keys().map(|k| k.to_string()).collect(),
            });
        }
    }
    Ok(())
}

/// Patch paths are written relative to the file that names them; they are stored absolute so that a
/// merged node can mix patches of its recipe and of overlays.
fn absolutize_patches(r: &mut PartialRecipe, dir: &Path) {
    for list in r.patch_lists_mut() {
        for p in list.iter_mut() {
            *p = dir.join(&*p);
        }
    }
}

/// 1-based line of the first occurrence of `needle`, for errors about values the parser accepted.
pub fn line_of(text: &str, needle: &str) -> Option<usize> {
    let pos = text.find(needle)?;
    Some(text[..pos].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests;
