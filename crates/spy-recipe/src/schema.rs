//! The recipe schema. `Partial*` types mirror a file as written (everything optional, unknown keys
//! rejected with a line number); `Recipe` is one node for one target after merging.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

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
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Build => "build",
            Kind::Bootstrap => "bootstrap",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitPin {
    pub url: String,
    /// Full 40-hex commit id; a prefix is refused.
    pub commit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Name of the file (defaults to the last path segment of the first URL).
    pub file: Option<String>,
    /// Pinned sha256 of the file; required unless `git` is given.
    pub sha256: Option<String>,
    #[serde(default)]
    pub urls: Vec<String>,
    /// Debian source package (`apt-get source --download-only`), `NAME` or `NAME=VERSION`.
    pub debian: Option<String>,
    /// PyPI sdist, `NAME==VERSION` (`pip download --no-binary :all: --no-deps`).
    pub pypi: Option<String>,
    pub git: Option<GitPin>,
    /// Unpack the archive (default) or hand the file over as is.
    #[serde(default = "yes")]
    pub unpack: bool,
    /// Variable naming the unpacked tree (`src` for the first source, `src_<n>` otherwise).
    pub var: Option<String>,
}

fn yes() -> bool {
    true
}

/// One node for one target, merged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub deps: Vec<String>,
    pub targets: Option<Vec<String>>,
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub patches: Vec<PathBuf>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub phases: BTreeMap<Phase, String>,
    /// Bootstrap nodes: host tools to expose and identify by version.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Relative cost, used to order builds (longest weighted path first).
    #[serde(default = "one")]
    pub weight: u32,
    /// Already merged in by `Graph::recipe_for`; kept so the key is accepted.
    #[serde(default)]
    pub target: Option<toml::Table>,
}

fn one() -> u32 {
    1
}

/// A recipe file as written: every key optional, unknown keys rejected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartialRecipe {
    pub name: Option<String>,
    #[allow(dead_code)]
    pub version: Option<String>,
    #[allow(dead_code)]
    pub kind: Option<Kind>,
    #[allow(dead_code)]
    pub description: Option<String>,
    #[allow(dead_code)]
    pub license: Option<String>,
    #[allow(dead_code)]
    pub deps: Option<Vec<String>>,
    pub targets: Option<Vec<String>>,
    #[allow(dead_code)]
    pub sources: Option<Vec<SourceSpec>>,
    #[allow(dead_code)]
    pub patches: Option<Vec<String>>,
    #[allow(dead_code)]
    pub env: Option<BTreeMap<String, String>>,
    #[allow(dead_code)]
    pub phases: Option<BTreeMap<Phase, String>>,
    #[allow(dead_code)]
    pub tools: Option<Vec<String>>,
    #[allow(dead_code)]
    pub weight: Option<u32>,
    pub target: Option<BTreeMap<String, PartialTargetRecipe>>,
}

/// What a `[target.<name>]` table may change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct PartialTargetRecipe {
    pub version: Option<String>,
    pub deps: Option<Vec<String>>,
    pub sources: Option<Vec<SourceSpec>>,
    pub patches: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub phases: Option<BTreeMap<Phase, String>>,
    pub tools: Option<Vec<String>>,
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverlayFile {
    #[serde(default)]
    pub nodes: BTreeMap<String, PartialRecipe>,
}
