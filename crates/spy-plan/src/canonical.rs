//! The canonical form of a node, hashed into its id. Specified in `docs/hashing.md`: change it only
//! together with `CANONICAL_FORMAT` and the golden tests.
//!
//! The form is `spy-node-v1\n` followed by compact JSON whose object keys are in byte order, as
//! serde_json writes it (its string escapes, no spaces). It is written here by hand, straight into
//! one buffer: through serde, a 10,000-node graph spent a fifth of its load-and-resolve time
//! escaping strings byte by byte and making hex strings it then copied. The tests check these bytes
//! against serde_json's serialization of the same structure (`reference` below).

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

/// Compact JSON, written as serde_json writes it.
struct Json(Vec<u8>);

impl Json {
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    /// A JSON string with serde_json's escapes: `"` and `\` backslashed, the control characters
    /// with a short form as such (`\n`...), the others as `\u00XX`; everything else as is.
    fn str(&mut self, s: &str) {
        let b = s.as_bytes();
        self.0.push(b'"');
        // Branch-free over the whole string (the compiler vectorizes it); strings needing an
        // escape are rare.
        let plain = b.iter().fold(true, |ok, &c| ok & (c >= 0x20) & (c != b'"') & (c != b'\\'));
        if plain {
            self.0.extend_from_slice(b);
        } else {
            for &c in b {
                match c {
                    b'"' => self.raw("\\\""),
                    b'\\' => self.raw("\\\\"),
                    b'\n' => self.raw("\\n"),
                    b'\r' => self.raw("\\r"),
                    b'\t' => self.raw("\\t"),
                    0x08 => self.raw("\\b"),
                    0x0c => self.raw("\\f"),
                    c if c < 0x20 => {
                        const HEX: &[u8; 16] = b"0123456789abcdef";
                        self.0.extend_from_slice(b"\\u00");
                        self.0.push(HEX[(c >> 4) as usize]);
                        self.0.push(HEX[(c & 15) as usize]);
                    }
                    c => self.0.push(c),
                }
            }
        }
        self.0.push(b'"');
    }

    fn hex(&mut self, bytes: &[u8; 32]) {
        self.0.push(b'"');
        let at = self.0.len();
        self.0.resize(at + 64, 0);
        spy_hash::write_hex(bytes, &mut self.0[at..]);
        self.0.push(b'"');
    }

    /// `"key":` (keys are this file's literals: nothing to escape), after a comma unless first.
    fn key(&mut self, first: bool, key: &str) {
        if !first {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.raw(key);
        self.raw("\":");
    }

    fn list<T>(&mut self, items: impl IntoIterator<Item = T>, mut each: impl FnMut(&mut Json, T)) {
        self.0.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            each(self, item);
        }
        self.0.push(b']');
    }

    /// An object of string values whose keys are already in byte order.
    fn map<'a>(&mut self, entries: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.0.push(b'{');
        for (i, (k, v)) in entries.into_iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.str(k);
            self.0.push(b':');
            self.str(v);
        }
        self.0.push(b'}');
    }

    fn strs(&mut self, items: &[String]) {
        self.list(items, |j, s| j.str(s));
    }

    fn patch(&mut self, p: &crate::Patch) {
        self.0.extend_from_slice(b"{\"blake3\":");
        self.hex(&p.blake3.0);
        self.raw(",\"name\":");
        self.str(&p.name);
        self.0.push(b'}');
    }
}

/// Writes the canonical bytes of a node (its dependencies' names and ids given) into `out`.
fn write(out: Vec<u8>, node: &PlanNode, dep_ids: &[(&str, NodeId)]) -> Vec<u8> {
    let mut j = Json(out);
    j.raw(CANONICAL_FORMAT);
    j.0.push(b'\n');
    j.0.push(b'{');
    j.key(true, "builder");
    j.raw(itoa::Buffer::new().format(BUILDER_VERSION));
    j.key(false, "deps");
    let mut deps: Vec<&(&str, NodeId)> = dep_ids.iter().collect();
    deps.sort_unstable_by(|a, b| (a.0, a.1 .0).cmp(&(b.0, b.1 .0)));
    j.list(deps, |j, (name, id)| {
        j.0.extend_from_slice(b"{\"id\":");
        j.hex(&id.0);
        j.raw(",\"name\":");
        j.str(name);
        j.0.push(b'}');
    });
    j.key(false, "env");
    j.map(node.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // Absent when empty, so nodes without local files keep their ids.
    if !node.files.is_empty() {
        j.key(false, "files");
        j.list(&node.files, Json::patch);
    }
    // Fuse nodes only (absent otherwise, so other nodes' ids do not move).
    if let Some(f) = &node.fuse {
        let s = &f.spec;
        j.key(false, "fuse");
        j.0.push(b'{');
        j.key(true, "compression");
        j.str(s.compression.as_str());
        // Absent when false, as `sources`.
        if s.dictionary {
            j.key(false, "dictionary");
            j.raw("true");
        }
        j.key(false, "engine");
        j.raw(itoa::Buffer::new().format(FUSE_VERSION));
        j.key(false, "exclude");
        j.strs(&s.exclude);
        j.key(false, "executable");
        j.str(&s.executable);
        j.key(false, "flavor");
        j.str(&s.flavor);
        // Absent when empty, as `sources` when false.
        if !s.hot.is_empty() {
            j.key(false, "hot");
            j.strs(&s.hot);
        }
        j.key(false, "interpreter");
        j.str(&s.interpreter);
        j.key(false, "licenses");
        j.map(f.licenses.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        j.key(false, "modules");
        match &s.modules {
            Some(m) => j.str(m),
            None => j.raw("null"),
        }
        j.key(false, "release");
        j.str(&f.release);
        // Left out when false, so that the ids of releases without sources are what they were.
        if s.sources {
            j.key(false, "sources");
            j.raw("true");
        }
        j.key(false, "stdlib");
        j.str(&s.stdlib);
        j.0.push(b'}');
    }
    j.key(false, "kind");
    j.str(node.kind.as_str());
    j.key(false, "name");
    j.str(&node.key.name);
    j.key(false, "patches");
    j.list(&node.patches, Json::patch);
    j.key(false, "phases");
    let mut phases: Vec<(&str, &str)> = node.phases.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    phases.sort_unstable();
    j.map(phases);
    j.key(false, "sources");
    j.list(&node.sources, |j, s| {
        j.0.extend_from_slice(b"{\"file\":");
        j.str(&s.file);
        j.raw(",\"pin\":{");
        match &s.pin {
            SourcePin::Sha256(h) => {
                j.raw("\"sha256\":");
                j.hex(&h.0);
            }
            // A git pin with excluded paths; a pin without them keeps the plain `git` form (and
            // its ids).
            SourcePin::Git { commit, exclude, .. } if exclude.is_empty() => {
                j.raw("\"git\":");
                j.str(commit);
            }
            SourcePin::Git { commit, exclude, .. } => {
                j.raw("\"git_excluding\":{\"commit\":");
                j.str(commit);
                j.raw(",\"exclude\":");
                j.strs(exclude);
                j.0.push(b'}');
            }
        }
        j.raw("},\"unpack\":");
        j.raw(if s.unpack { "true" } else { "false" });
        j.raw(",\"var\":");
        j.str(&s.var);
        j.0.push(b'}');
    });
    j.key(false, "target");
    j.str(&node.key.target);
    j.key(false, "tools");
    j.list(&node.tools, |j, t| {
        j.0.extend_from_slice(b"{\"name\":");
        j.str(&t.name);
        j.raw(",\"path\":");
        j.str(&t.path);
        j.raw(",\"version\":");
        j.str(&t.version);
        j.0.push(b'}');
    });
    j.key(false, "version");
    j.str(&node.version);
    j.0.push(b'}');
    j.0
}

/// The canonical bytes of a node, as text (for `docs/` and tests).
pub fn canonical_form(node: &PlanNode, dep_ids: &[(String, NodeId)]) -> String {
    let deps: Vec<(&str, NodeId)> = dep_ids.iter().map(|(n, id)| (n.as_str(), *id)).collect();
    String::from_utf8(write(Vec::new(), node, &deps)).expect("written from strings and ASCII")
}

/// The node's id: blake3 of its canonical form.
pub fn node_id(node: &PlanNode, dep_ids: &[(&str, NodeId)]) -> NodeId {
    // One buffer, one hash: blake3 is slow when fed many tiny writes.
    let buf = write(Vec::with_capacity(1024), node, dep_ids);
    NodeId(*blake3::hash(&buf).as_bytes())
}

/// The same structure through serde_json: what the hand-written form must equal, byte for byte.
#[cfg(test)]
pub(crate) mod reference {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use spy_hash::NodeId;

    use super::{BUILDER_VERSION, CANONICAL_FORMAT, FUSE_VERSION};
    use crate::{PlanNode, SourcePin};

    #[derive(Serialize)]
    struct Canon<'a> {
        builder: u32,
        deps: Vec<CanonDep<'a>>,
        env: &'a BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        files: Vec<CanonPatch<'a>>,
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
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        dictionary: bool,
        engine: u32,
        exclude: &'a [String],
        executable: &'a str,
        flavor: &'a str,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        hot: &'a [String],
        interpreter: &'a str,
        licenses: &'a BTreeMap<String, String>,
        modules: Option<&'a str>,
        release: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        sources: bool,
        stdlib: &'a str,
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

    pub(crate) fn canonical_form(node: &PlanNode, dep_ids: &[(String, NodeId)]) -> String {
        let mut deps: Vec<CanonDep> = dep_ids.iter().map(|(n, id)| CanonDep { id: id.to_hex(), name: n }).collect();
        deps.sort_by(|a, b| (a.name, &a.id).cmp(&(b.name, &b.id)));
        fn patch(p: &crate::Patch) -> CanonPatch<'_> {
            CanonPatch {
                blake3: p.blake3.to_hex(),
                name: &p.name,
            }
        }
        let canon = Canon {
            builder: BUILDER_VERSION,
            deps,
            env: &node.env,
            fuse: node.fuse.as_ref().map(|f| CanonFuse {
                compression: f.spec.compression.as_str(),
                dictionary: f.spec.dictionary,
                engine: FUSE_VERSION,
                exclude: &f.spec.exclude,
                executable: &f.spec.executable,
                flavor: &f.spec.flavor,
                hot: &f.spec.hot,
                interpreter: &f.spec.interpreter,
                licenses: &f.licenses,
                modules: f.spec.modules.as_deref(),
                release: &f.release,
                sources: f.spec.sources,
                stdlib: &f.spec.stdlib,
            }),
            files: node.files.iter().map(patch).collect(),
            kind: node.kind.as_str(),
            name: &node.key.name,
            patches: node.patches.iter().map(patch).collect(),
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
        };
        format!("{CANONICAL_FORMAT}\n{}", serde_json::to_string(&canon).unwrap())
    }
}
