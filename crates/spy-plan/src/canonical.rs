//! The canonical form of a node, hashed into its id. Specified in `docs/hashing.md`: change it only
//! together with `CANONICAL_FORMAT` and the golden tests.

use serde_json::{json, Map, Value};
use spy_hash::NodeId;

use crate::{PlanNode, SourcePin};

/// Version of the serialization below.
pub const CANONICAL_FORMAT: &str = "spy-node-v1";
/// Version of the builder's observable behaviour (sandbox layout, variables, phase driver). Bumping it
/// rebuilds everything.
pub const BUILDER_VERSION: u32 = 1;

/// `spy-node-v1\n` followed by compact JSON with object keys in byte order (serde_json's map is a
/// BTreeMap), so equal nodes give equal bytes whatever the recipe's formatting.
pub fn canonical_form(node: &PlanNode, dep_ids: &[(String, NodeId)]) -> String {
    let sources: Vec<Value> = node
        .sources
        .iter()
        .map(|s| {
            let pin = match &s.pin {
                SourcePin::Sha256(h) => json!({ "sha256": h.to_hex() }),
                SourcePin::Git { commit, .. } => json!({ "git": commit }),
            };
            json!({ "pin": pin, "file": s.file, "unpack": s.unpack, "var": s.var })
        })
        .collect();
    let patches: Vec<Value> = node.patches.iter().map(|p| json!({ "name": p.name, "blake3": p.blake3.to_hex() })).collect();
    let phases: Map<String, Value> = node.phases.iter().map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone()))).collect();
    let env: Map<String, Value> = node.env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let tools: Vec<Value> = node.tools.iter().map(|t| json!({ "name": t.name, "path": t.path, "version": t.version })).collect();
    let mut deps: Vec<(String, NodeId)> = dep_ids.to_vec();
    deps.sort();
    let deps: Vec<Value> = deps.iter().map(|(n, id)| json!({ "name": n, "id": id.to_hex() })).collect();
    let v = json!({
        "builder": BUILDER_VERSION,
        "kind": node.kind.as_str(),
        "name": node.key.name,
        "version": node.version,
        "target": node.key.target,
        "phases": phases,
        "env": env,
        "patches": patches,
        "sources": sources,
        "deps": deps,
        "tools": tools,
    });
    format!("{CANONICAL_FORMAT}\n{v}")
}
