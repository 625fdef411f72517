//! The canonical form of a node, hashed into its id. Specified in `docs/hashing.md`: change it only
//! together with `CANONICAL_FORMAT` and the golden tests.
//!
//! The form is `spy-node-v1\n` followed by compact JSON whose object keys are in byte order. The
//! structs below declare their fields in that order, so serde writes the canonical bytes directly
//! (into the hasher, for ids) without building a JSON tree first.

use std::collections::BTreeMap;

use serde::Serialize;
use spy_hash::NodeId;

use crate::{PlanNode, SourcePin};

/// Version of the serialization below.
pub const CANONICAL_FORMAT: &str = "spy-node-v1";

// The versions of the builders' outputs live beside the crates that make them (so a change and
// its bump are made in one place); those crates depend on this one, so their version files are
// compiled in here by path.
#[path = "../../spy-build/src/version.rs"]
mod builder_version;
#[path = "../../spy-fuse/src/version.rs"]
mod fuse_version;
pub use builder_version::BUILDER_VERSION;
pub use fuse_version::FUSE_VERSION;

#[derive(Serialize)]
struct Canon<'a> {
    builder: u32,
    deps: Vec<CanonDep<'a>>,
    env: &'a BTreeMap<String, String>,
    /// Absent when empty, so nodes without local files keep their ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<CanonPatch<'a>>,
    /// Fuse nodes only (absent otherwise, so other nodes' ids do not move).
    #[serde(skip_serializing_if = "Option::is_none")]
    fuse: Option<CanonFuse<'a>>,
    kind: &'a str,
    name: &'a str,
    patches: Vec<CanonPatch<'a>>,
    phases: BTreeMap<&'a str, &'a str>,
    sources: Vec<CanonSource<'a>>,
    target: &'a str,
    tools: Vec<CanonTool<'a>>,
    version: &'a str,
}

#[derive(Serialize)]
struct CanonFuse<'a> {
    compression: &'a str,
    engine: u32,
    exclude: &'a [String],
    executable: &'a str,
    flavor: &'a str,
    interpreter: &'a str,
    licenses: &'a BTreeMap<String, String>,
    modules: Option<&'a str>,
    release: &'a str,
    /// Left out when false, so that the ids of releases without sources are what they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sources: bool,
    stdlib: &'a str,
    /// Left out when empty, as `sources`.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stored: &'a [String],
}

#[derive(Serialize)]
struct CanonDep<'a> {
    id: String,
    name: &'a str,
}

#[derive(Serialize)]
struct CanonPatch<'a> {
    blake3: String,
    name: &'a str,
}

#[derive(Serialize)]
struct CanonSource<'a> {
    file: &'a str,
    pin: CanonPin<'a>,
    unpack: bool,
    var: &'a str,
}

#[derive(Serialize)]
enum CanonPin<'a> {
    #[serde(rename = "git")]
    Git(&'a str),
    /// A git pin with excluded paths; a pin without them keeps the plain `git` form (and its ids).
    #[serde(rename = "git_excluding")]
    GitExcluding { commit: &'a str, exclude: &'a [String] },
    #[serde(rename = "sha256")]
    Sha256(String),
}

#[derive(Serialize)]
struct CanonTool<'a> {
    name: &'a str,
    path: &'a str,
    version: &'a str,
}

fn canon<'a>(node: &'a PlanNode, dep_ids: &'a [(String, NodeId)]) -> Canon<'a> {
    let mut deps: Vec<CanonDep> = dep_ids.iter().map(|(n, id)| CanonDep { id: id.to_hex(), name: n }).collect();
    deps.sort_by(|a, b| (a.name, &a.id).cmp(&(b.name, &b.id)));
    Canon {
        builder: BUILDER_VERSION,
        deps,
        env: &node.env,
        fuse: node.fuse.as_ref().map(|f| CanonFuse {
            compression: f.spec.compression.as_str(),
            engine: FUSE_VERSION,
            exclude: &f.spec.exclude,
            executable: &f.spec.executable,
            flavor: &f.spec.flavor,
            interpreter: &f.spec.interpreter,
            licenses: &f.licenses,
            modules: f.spec.modules.as_deref(),
            release: &f.release,
            sources: f.spec.sources,
            stdlib: &f.spec.stdlib,
            stored: &f.spec.stored,
        }),
        files: node
            .files
            .iter()
            .map(|p| CanonPatch {
                blake3: p.blake3.to_hex(),
                name: &p.name,
            })
            .collect(),
        kind: node.kind.as_str(),
        name: &node.key.name,
        patches: node
            .patches
            .iter()
            .map(|p| CanonPatch {
                blake3: p.blake3.to_hex(),
                name: &p.name,
            })
            .collect(),
        phases: node.phases.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        sources: node
            .sources
            .iter()
            .map(|s| CanonSource {
                file: &s.file,
                pin: match &s.pin {
                    SourcePin::Sha256(h) => CanonPin::Sha256(h.to_hex()),
                    SourcePin::Git { commit, exclude, .. } if exclude.is_empty() => CanonPin::Git(commit),
                    SourcePin::Git { commit, exclude, .. } => CanonPin::GitExcluding { commit, exclude },
                },
                unpack: s.unpack,
                var: &s.var,
            })
            .collect(),
        target: &node.key.target,
        tools: node
            .tools
            .iter()
            .map(|t| CanonTool {
                name: &t.name,
                path: &t.path,
                version: &t.version,
            })
            .collect(),
        version: &node.version,
    }
}

/// The canonical bytes of a node, as text (for `docs/` and tests).
pub fn canonical_form(node: &PlanNode, dep_ids: &[(String, NodeId)]) -> String {
    let json = serde_json::to_string(&canon(node, dep_ids)).expect("serializing to a string cannot fail");
    format!("{CANONICAL_FORMAT}\n{json}")
}

/// The node's id: blake3 of its canonical form.
pub fn node_id(node: &PlanNode, dep_ids: &[(String, NodeId)]) -> NodeId {
    // One buffer, one hash: blake3 is slow when fed serde's many tiny writes.
    let mut buf = Vec::with_capacity(1024);
    buf.extend_from_slice(CANONICAL_FORMAT.as_bytes());
    buf.push(b'\n');
    serde_json::to_writer(&mut buf, &canon(node, dep_ids)).expect("writing to memory cannot fail");
    NodeId(*blake3::hash(&buf).as_bytes())
}
