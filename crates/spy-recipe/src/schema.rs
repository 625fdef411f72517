//! The recipe schema. `Partial*` types mirror a file as written (everything optional, unknown keys
//! rejected with a line number); `Recipe` is one node for one target after merging.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::names::{FileName, NodeName, RelPath, TargetName, ToolName, VarName, Version};

/// The build phases, in the order they run.
pub const PHASES: [Phase; 5] = [Phase::Configure, Phase::Build, Phase::Check, Phase::Install, Phase::Fixup];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Configure,
    Build,
    Check,
    Install,
    Fixup,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Configure => "configure",
            Phase::Build => "build",
            Phase::Check => "check",
            Phase::Install => "install",
            Phase::Fixup => "fixup",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Runs phases in the sandbox.
    #[default]
    Build,
    /// Host tools borrowed by stage 0, identified by their versions.
    Bootstrap,
    /// Fuses an interpreter node with its zipped standard library into one executable, plus a
    /// manifest (done by spy itself, `crates/spy-fuse`; no phases, no sandbox).
    Fuse,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Bootstrap => "bootstrap",
            Kind::Fuse => "fuse",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GitPin {
    #[serde(deserialize_with = "crate::names::de::git_url")]
    pub url: String,
    /// Full 40-hex commit id; a prefix is refused.
    pub commit: String,
    /// Paths of the commit's tree left out of the archived source (each must exist in the tree):
    /// for a mirror that lacks a blob no build reads. Plain relative paths, so no glob or git
    /// pathspec magic either.
    #[serde(default)]
    pub exclude: Vec<RelPath>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Name of the file (defaults to the last path segment of the first URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileName>,
    /// Pinned sha256 of the file; required unless `git` is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, deserialize_with = "crate::names::de::urls")]
    pub urls: Vec<String>,
    /// Debian source package (`apt-get source --download-only`), `NAME` or `NAME=VERSION`.
    #[serde(default, deserialize_with = "crate::names::de::debian")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debian: Option<String>,
    /// PyPI sdist, `NAME==VERSION` (`pip download --no-binary :all: --no-deps`).
    #[serde(default, deserialize_with = "crate::names::de::pypi")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pypi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitPin>,
    /// Unpack the archive (default) or hand the file over as is.
    #[serde(default = "yes")]
    pub unpack: bool,
    /// Variable naming the unpacked tree (`src` for the first source, `src_<n>` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub var: Option<VarName>,
}

fn yes() -> bool {
    true
}

/// The `[fuse]` table of a `kind = "fuse"` node: what to take from the interpreter node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FuseSpec {
    /// The dependency that holds the interpreter.
    pub interpreter: String,
    /// The executable inside it, e.g. `bin/python3.11`.
    pub executable: String,
    /// The standard library directory inside it (compiled `.pyc` beside each module).
    pub stdlib: String,
    /// A JSON file inside it listing `builtin` modules and `missing` ones with reasons.
    pub modules: Option<String>,
    /// Paths below `stdlib` left out of the ZIP: a file, or a directory and all below it.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub compression: ZipCompression,
    /// Paths below `stdlib` (a file, or a directory and all below it) that start-up and common
    /// imports read, in the order they read them. With `deflated` and `solid-zstd` they are stored
    /// uncompressed (nothing to inflate); with `solid-lz4-zstd`, their compiled modules go first,
    /// into LZ4 blocks, in this order (so each block is decoded once).
    #[serde(default)]
    pub hot: Vec<String>,
    /// Whether the zstd blocks of `solid-zstd` and `solid-lz4-zstd` share a dictionary trained on
    /// their modules (spy-fuse's zipout module): a tenth or more smaller, for cold imports that
    /// take longer (the dictionary is read from memory at each block). Only for interpreters whose
    /// zipimport reads it (python2.7-solid-zip.patch, spy-solid-zip.patch).
    #[serde(default)]
    pub dictionary: bool,
    /// What the manifest calls this build (`plain`, `co`, `stackless`...).
    pub flavor: String,
    /// Whether each module's `.py` goes into the ZIP beside its `.pyc` (tracebacks then show
    /// source lines, and `inspect.getsource` works).
    pub sources: bool,
}

/// A `[fuse]` table as written: every key optional, merged key by key (a variant or an overlay sets
/// only what differs); [`PartialFuse::finish`] checks the required ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartialFuse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<NodeName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<RelPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdlib: Option<RelPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<RelPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<RelPath>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<ZipCompression>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hot: Option<Vec<RelPath>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dictionary: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<bool>,
}

impl PartialFuse {
    fn merge(&mut self, o: PartialFuse) {
        replace(&mut self.interpreter, o.interpreter);
        replace(&mut self.executable, o.executable);
        replace(&mut self.stdlib, o.stdlib);
        replace(&mut self.modules, o.modules);
        replace(&mut self.exclude, o.exclude);
        replace(&mut self.compression, o.compression);
        replace(&mut self.hot, o.hot);
        replace(&mut self.dictionary, o.dictionary);
        replace(&mut self.flavor, o.flavor);
        replace(&mut self.sources, o.sources);
    }

    /// The complete spec, or the name of the first required key that is missing.
    pub fn finish(self) -> Result<FuseSpec, &'static str> {
        Ok(FuseSpec {
            interpreter: self.interpreter.ok_or("interpreter")?.into(),
            executable: self.executable.ok_or("executable")?.into(),
            stdlib: self.stdlib.ok_or("stdlib")?.into(),
            modules: self.modules.map(Into::into),
            exclude: self.exclude.unwrap_or_default().into_iter().map(Into::into).collect(),
            compression: self.compression.unwrap_or_default(),
            hot: self.hot.unwrap_or_default().into_iter().map(Into::into).collect(),
            dictionary: self.dictionary.unwrap_or(false),
            flavor: self.flavor.ok_or("flavor")?,
            sources: self.sources.unwrap_or(false),
        })
    }
}

/// How the standard library ZIP stores its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZipCompression {
    /// Uncompressed: zipimport reads members without inflating them (faster start-up).
    #[default]
    Stored,
    Deflated,
    /// Deflated, but for compiled modules (`.pyc`) not listed in `hot`: those go into zstd
    /// blocks that the single-file zipimport reads (spy-fuse's zipout module; a third smaller than
    /// deflating each alone). Only for interpreters whose zipimport reads them
    /// (graph/python/spy-solid-zip.patch: CPython 3.11 and later).
    #[serde(rename = "solid-zstd")]
    SolidZstd,
    /// Every compiled module in blocks: those of `hot` first, in LZ4 blocks, in the order `hot`
    /// gives (each is decoded once, and LZ4 decodes five times faster than zstd); the rest in zstd
    /// blocks, as with `solid-zstd`. Other files deflated (`hot` ones stored). Only for
    /// interpreters whose zipimport reads both (spy-solid-zip.patch).
    #[serde(rename = "solid-lz4-zstd")]
    SolidLz4Zstd,
}

impl ZipCompression {
    pub fn as_str(self) -> &'static str {
        match self {
            ZipCompression::Stored => "stored",
            ZipCompression::Deflated => "deflated",
            ZipCompression::SolidZstd => "solid-zstd",
            ZipCompression::SolidLz4Zstd => "solid-lz4-zstd",
        }
    }
}

/// One node for one target, merged.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: NodeName,
    pub version: Version,
    pub kind: Kind,
    pub description: String,
    pub license: String,
    pub deps: Vec<NodeName>,
    pub targets: Option<Vec<TargetName>>,
    pub sources: Vec<SourceSpec>,
    pub patches: Vec<PathBuf>,
    /// Local files (helper scripts...) copied into the build, `$SPY_FILES/<name>`.
    pub files: Vec<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub phases: BTreeMap<Phase, String>,
    /// Bootstrap nodes: host tools to expose and identify by version.
    pub tools: Vec<ToolName>,
    /// Relative cost, used to order builds (longest weighted path first).
    pub weight: u32,
    /// Fuse nodes: what to fuse.
    pub fuse: Option<FuseSpec>,
}

/// A recipe as written in a file or an overlay: every key optional, unknown keys rejected. Nodes
/// are kept in this form; merging is field by field (maps merge key by key, the rest replaces).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartialRecipe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<NodeName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deps: Option<Vec<NodeName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetName>>,
    #[serde(default, deserialize_with = "source_list")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<SourceSpec>>,
    /// Relative to the file that names them when parsed ([`RelPath`]s), absolute once loaded.
    #[serde(default, deserialize_with = "rel_paths")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Vec<PathBuf>>,
    #[serde(default, deserialize_with = "rel_paths")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<PathBuf>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<BTreeMap<Phase, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuse: Option<PartialFuse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<BTreeMap<TargetName, PartialTargetRecipe>>,
    /// Appended to `deps` (and to every per-target `deps`) when merged: how an overlay adds a
    /// dependency without restating the list. Not kept after merging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_deps: Option<Vec<NodeName>>,
    /// Appended to `patches` (and to every per-target `patches`) when merged, as `extra_deps`.
    #[serde(default, deserialize_with = "rel_paths")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_patches: Option<Vec<PathBuf>>,
    /// Taken out of `tools` (and out of every per-target `tools`) when merged: how a bootstrap
    /// node's tool list loses a tool without being restated. Not kept after merging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_tools: Option<Vec<ToolName>>,
    /// Taken out of `deps` (and out of every per-target `deps`) before `extra_deps` is appended:
    /// how an overlay swaps one library for another (readline for libedit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_deps: Option<Vec<NodeName>>,
    /// A file of variants: one node per key, each the file's other keys merged with its table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants: Option<BTreeMap<NodeName, PartialRecipe>>,
}

/// A list of [`RelPath`]s, kept as paths (they are made absolute when the file is loaded).
fn rel_paths<'d, D: serde::Deserializer<'d>>(d: D) -> Result<Option<Vec<PathBuf>>, D::Error> {
    let v = Vec::<RelPath>::deserialize(d)?;
    Ok(Some(v.into_iter().map(|p| PathBuf::from(p.into_string())).collect()))
}

/// A source list without spare room: serde grows a list as it reads it (room for four at the
/// first element), a `SourceSpec` is about 250 bytes, and every node's list lives as long as the
/// command (10 MB of the peak of a 10,000-node graph).
fn source_list<'d, D: serde::Deserializer<'d>>(d: D) -> Result<Option<Vec<SourceSpec>>, D::Error> {
    let mut v = Vec::<SourceSpec>::deserialize(d)?;
    v.shrink_to_fit();
    Ok(Some(v))
}

/// What a `[target.<name>]` table may change.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartialTargetRecipe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deps: Option<Vec<NodeName>>,
    #[serde(default, deserialize_with = "source_list")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<SourceSpec>>,
    #[serde(default, deserialize_with = "rel_paths")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Vec<PathBuf>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<BTreeMap<Phase, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Fuse nodes: keys of `[fuse]` that differ for the target (merged key by key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuse: Option<PartialFuse>,
    /// Applied to the recipe's lists for this target (after the keys above): appended to `deps`
    /// and `patches`, taken out of `tools`. Two tables' edits (an overlay's on a recipe's, a
    /// target's after its family's) add up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_deps: Option<Vec<NodeName>>,
    #[serde(default, deserialize_with = "rel_paths")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_patches: Option<Vec<PathBuf>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_tools: Option<Vec<ToolName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_deps: Option<Vec<NodeName>>,
}

/// The list edits a recipe, variant, overlay or target table may make without restating a list.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListEdits {
    extra_deps: Option<Vec<NodeName>>,
    extra_patches: Option<Vec<PathBuf>>,
    remove_tools: Option<Vec<ToolName>>,
    remove_deps: Option<Vec<NodeName>>,
}

impl ListEdits {
    /// Applies the edits to one set of lists; a list that is not there is made when something is
    /// appended to it (the recipe inherits nothing else that could fill it).
    fn apply(&self, deps: &mut Option<Vec<NodeName>>, patches: &mut Option<Vec<PathBuf>>, tools: &mut Option<Vec<ToolName>>) {
        if let (Some(list), Some(gone)) = (deps.as_mut(), &self.remove_deps) {
            list.retain(|d| !gone.contains(d));
        }
        append_new(deps, &self.extra_deps);
        append_new(patches, &self.extra_patches);
        if let (Some(list), Some(gone)) = (tools.as_mut(), &self.remove_tools) {
            list.retain(|t| !gone.contains(t));
        }
    }

    /// Two sets of edits made one after the other, as one.
    fn then(&mut self, o: ListEdits) {
        // Removals apply before additions: what the first adds, the second may take out again.
        if let (Some(added), Some(gone)) = (self.extra_deps.as_mut(), &o.remove_deps) {
            added.retain(|d| !gone.contains(d));
        }
        append_new(&mut self.remove_deps, &o.remove_deps);
        append_new(&mut self.extra_deps, &o.extra_deps);
        append_new(&mut self.extra_patches, &o.extra_patches);
        append_new(&mut self.remove_tools, &o.remove_tools);
    }
}

/// Appends what `list` does not hold yet, in order.
fn append_new<T: PartialEq + Clone>(list: &mut Option<Vec<T>>, extra: &Option<Vec<T>>) {
    if let Some(extra) = extra {
        let list = list.get_or_insert_with(Vec::new);
        for x in extra {
            if !list.contains(x) {
                list.push(x.clone());
            }
        }
    }
}

fn merge_map<K: Ord, V>(base: &mut Option<BTreeMap<K, V>>, over: Option<BTreeMap<K, V>>) {
    if let Some(o) = over {
        base.get_or_insert_with(BTreeMap::new).extend(o);
    }
}

fn replace<T>(base: &mut Option<T>, over: Option<T>) {
    if over.is_some() {
        *base = over;
    }
}

/// Applies the keys a `[target.<name>]` table may set from `$src` onto `$dst` (a recipe or another
/// target table), by the one merge rule. The list of those keys is written here only.
macro_rules! merge_target_keys {
    ($dst:expr, $src:expr) => {{
        let (dst, src) = ($dst, $src);
        replace(&mut dst.version, src.version);
        replace(&mut dst.deps, src.deps);
        replace(&mut dst.sources, src.sources);
        replace(&mut dst.patches, src.patches);
        merge_map(&mut dst.env, src.env);
        merge_map(&mut dst.phases, src.phases);
        replace(&mut dst.tools, src.tools);
        replace(&mut dst.weight, src.weight);
        if let Some(f) = src.fuse {
            dst.fuse.get_or_insert_with(PartialFuse::default).merge(f);
        }
    }};
}

impl PartialTargetRecipe {
    fn merge(&mut self, mut o: PartialTargetRecipe) {
        let edits = o.take_edits();
        merge_target_keys!(&mut *self, o);
        let mut mine = self.take_edits();
        mine.then(edits);
        (self.extra_deps, self.extra_patches, self.remove_tools, self.remove_deps) =
            (mine.extra_deps, mine.extra_patches, mine.remove_tools, mine.remove_deps);
    }

    fn take_edits(&mut self) -> ListEdits {
        ListEdits {
            extra_deps: self.extra_deps.take(),
            extra_patches: self.extra_patches.take(),
            remove_tools: self.remove_tools.take(),
            remove_deps: self.remove_deps.take(),
        }
    }
}

impl PartialRecipe {
    /// The one merge rule: tables (env, phases, target) merge key by key, anything else replaces.
    pub fn merge(&mut self, mut o: PartialRecipe) {
        let edits = o.take_edits();
        replace(&mut self.name, o.name);
        replace(&mut self.kind, o.kind);
        replace(&mut self.description, o.description);
        replace(&mut self.license, o.license);
        replace(&mut self.targets, o.targets);
        replace(&mut self.files, o.files);
        let target = o.target;
        merge_target_keys!(
            &mut *self,
            PartialTargetRecipe {
                version: o.version,
                deps: o.deps,
                sources: o.sources,
                patches: o.patches,
                env: o.env,
                phases: o.phases,
                tools: o.tools,
                weight: o.weight,
                fuse: o.fuse,
                extra_deps: None,
                extra_patches: None,
                remove_tools: None,
                remove_deps: None,
            }
        );
        // A dependency taken out is also out of what this recipe's target tables add later (not
        // out of what the merged tables themselves add: they come after).
        if let Some(gone) = &edits.remove_deps {
            for t in self.target.iter_mut().flat_map(|t| t.values_mut()) {
                if let Some(added) = t.extra_deps.as_mut() {
                    added.retain(|d| !gone.contains(d));
                }
            }
        }
        if let Some(targets) = target {
            let mine = self.target.get_or_insert_with(BTreeMap::new);
            for (t, over) in targets {
                mine.entry(t).or_default().merge(over);
            }
        }
        self.apply_edits(&edits);
    }

    /// Takes this recipe's own list edits (`extra_deps`... at its top level) out of it, to be
    /// applied once its other keys are final: a plain recipe's when it is loaded, a variant's
    /// family's after the variant's own keys.
    pub(crate) fn take_edits(&mut self) -> ListEdits {
        ListEdits {
            extra_deps: self.extra_deps.take(),
            extra_patches: self.extra_patches.take(),
            remove_tools: self.remove_tools.take(),
            remove_deps: self.remove_deps.take(),
        }
    }

    /// The edits reach the top-level lists and every per-target list that replaces them (a
    /// per-target list that is not there inherits the edited top-level one).
    pub(crate) fn apply_edits(&mut self, edits: &ListEdits) {
        edits.apply(&mut self.deps, &mut self.patches, &mut self.tools);
        for t in self.target.iter_mut().flat_map(|t| t.values_mut()) {
            let (mut deps, mut patches, mut tools) = (t.deps.take(), t.patches.take(), t.tools.take());
            let had = (deps.is_some(), patches.is_some(), tools.is_some());
            edits.apply(&mut deps, &mut patches, &mut tools);
            t.deps = deps.filter(|_| had.0);
            t.patches = patches.filter(|_| had.1);
            t.tools = tools.filter(|_| had.2);
        }
    }

    /// This recipe with its `[target.<family>]` table (if the target has a family), then its
    /// `[target.<target>]` table applied.
    pub fn for_target(&self, target: &str, family: Option<&str>) -> PartialRecipe {
        let mut r = PartialRecipe {
            target: None,
            ..self.clone_without_targets()
        };
        for key in family.into_iter().chain([target]) {
            if let Some(t) = self.target.as_ref().and_then(|t| t.get(key)) {
                let mut t = t.clone();
                let edits = t.take_edits();
                merge_target_keys!(&mut r, t);
                edits.apply(&mut r.deps, &mut r.patches, &mut r.tools);
            }
        }
        r
    }

    /// The dependency list for one target, without cloning the rest of the recipe.
    pub fn for_target_deps(&self, target: &str, family: Option<&str>) -> std::borrow::Cow<'_, [NodeName]> {
        let tables = self.target.as_ref();
        if !family
            .into_iter()
            .chain([target])
            .any(|k| tables.is_some_and(|t| t.contains_key(k)))
        {
            // The common case, borrowed: a resolve asks for every node's list, often twice.
            return std::borrow::Cow::Borrowed(self.deps.as_deref().unwrap_or_default());
        }
        let mut deps = self.deps.clone();
        for key in family.into_iter().chain([target]) {
            if let Some(t) = self.target.as_ref().and_then(|t| t.get(key)) {
                replace(&mut deps, t.deps.clone());
                if let (Some(list), Some(gone)) = (deps.as_mut(), &t.remove_deps) {
                    list.retain(|d| !gone.contains(d));
                }
                append_new(&mut deps, &t.extra_deps);
            }
        }
        std::borrow::Cow::Owned(deps.unwrap_or_default())
    }

    fn clone_without_targets(&self) -> PartialRecipe {
        PartialRecipe {
            name: self.name.clone(),
            version: self.version.clone(),
            kind: self.kind,
            description: self.description.clone(),
            license: self.license.clone(),
            deps: self.deps.clone(),
            targets: self.targets.clone(),
            sources: self.sources.clone(),
            patches: self.patches.clone(),
            files: self.files.clone(),
            env: self.env.clone(),
            phases: self.phases.clone(),
            tools: self.tools.clone(),
            weight: self.weight,
            fuse: self.fuse.clone(),
            target: None,
            extra_deps: None,
            extra_patches: None,
            remove_tools: None,
            remove_deps: None,
            variants: None,
        }
    }

    /// Every list of local paths (patches and files, top level and per target), for making them
    /// absolute.
    pub(crate) fn patch_lists_mut(&mut self) -> impl Iterator<Item = &mut Vec<PathBuf>> {
        let top = self.patches.as_mut().into_iter().chain(self.files.as_mut());
        let top = top.chain(self.extra_patches.as_mut());
        let per_target = self
            .target
            .iter_mut()
            .flat_map(|t| t.values_mut())
            .flat_map(|t| t.patches.as_mut().into_iter().chain(t.extra_patches.as_mut()));
        top.chain(per_target)
    }

    /// Every node any of the dependency lists names (the recipe's, the edits', the targets').
    pub fn dep_names(&self) -> impl Iterator<Item = &NodeName> {
        let per_target = self
            .target
            .iter()
            .flatten()
            .flat_map(|(_, t)| t.deps.iter().flatten().chain(t.extra_deps.iter().flatten()));
        self.deps.iter().flatten().chain(self.extra_deps.iter().flatten()).chain(per_target)
    }

    /// Every dependency list with the key it sits under, for reference checks.
    pub fn dep_lists(&self) -> Vec<(std::borrow::Cow<'static, str>, &Vec<NodeName>)> {
        use std::borrow::Cow;
        let mut v: Vec<(Cow<'static, str>, &Vec<NodeName>)> = self.deps.iter().map(|d| (Cow::Borrowed("deps"), d)).collect();
        v.extend(self.extra_deps.iter().map(|d| (Cow::Borrowed("extra_deps"), d)));
        for (t, tr) in self.target.iter().flatten() {
            if let Some(d) = &tr.deps {
                v.push((Cow::Owned(format!("target.{t}.deps")), d));
            }
            if let Some(d) = &tr.extra_deps {
                v.push((Cow::Owned(format!("target.{t}.extra_deps")), d));
            }
        }
        v
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverlayFile {
    #[serde(default)]
    pub nodes: BTreeMap<NodeName, PartialRecipe>,
}
