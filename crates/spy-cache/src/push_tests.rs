//! push_nodes and the Substitution realizer on a two-node plan: entries made by a stand-in
//! realizer, pushed to a directory cache, then substituted into a second store.

use std::path::Path;

use petgraph::graph::NodeIndex;
use spy_plan::{Plan, PlanNode, ProbeCache, Realizer};
use spy_store::{Origin, Transacted, Work};

use super::*;

/// Writes one file naming the node.
struct Stub;

impl Realizer for Stub {
    type Error = std::io::Error;
    fn origin(&self, _node: &PlanNode) -> Origin {
        Origin::built(true)
    }
    fn realize(&self, plan: &Plan, n: NodeIndex, w: &mut Work) -> Result<(), std::io::Error> {
        std::fs::write(w.out().join("name"), &plan.node(n).key.name)
    }
}

fn plan(dir: &Path) -> (Plan, NodeIndex, NodeIndex) {
    let w = |rel: &str, text: &str| std::fs::write(dir.join(rel), text).unwrap();
    w("spy.toml", "format = 1\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n");
    w("lib.toml", "name = \"lib\"\nversion = \"1\"\n[phases]\nbuild = \"true\"\n");
    w(
        "app.toml",
        "name = \"app\"\nversion = \"2\"\ndeps = [\"lib\"]\n[phases]\nbuild = \"true\"\n",
    );
    let graph = spy_recipe::Graph::load(dir, &[]).unwrap();
    let plan = spy_plan::resolve_all(&graph, &mut ProbeCache::in_memory()).unwrap();
    let ix = |name: &str| {
        plan.get(&spy_plan::NodeKey {
            name: name.into(),
            target: "x86_64-linux-musl".into(),
        })
        .unwrap()
    };
    let (lib, app) = (ix("lib"), ix("app"));
    (plan, lib, app)
}

#[test]
fn pushed_closures_substitute_into_another_store() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("graph")).unwrap();
    let (plan, lib, app) = plan(&d.path().join("graph"));
    let store = Store::open(&d.path().join("store")).unwrap();
    let cache_dir = d.path().join("cache");
    let cache = crate::backend::FileBackend::new(&format!("file://{}", cache_dir.display()), &cache_dir).unwrap();
    let key = SecretKey::generate("test-1").unwrap();
    let push = |roots: &[NodeIndex], closure: bool| {
        let events = std::cell::RefCell::new(Vec::new());
        let r = push_nodes(&store, &plan, roots, closure, &cache, Some(&key), Compression::Zstd, |e| {
            events.borrow_mut().push(format!("{e:?}"))
        });
        (r, events.into_inner())
    };

    // Nothing built: refused, naming the root.
    let (r, _) = push(&[app], true);
    assert!(
        matches!(&r, Err(CacheError::NotBuilt { node }) if node == "app@x86_64-linux-musl"),
        "{r:?}"
    );
    // Only the root is there: its missing dependency is skipped.
    assert!(matches!(
        plan.realize_with(&store, app, &Stub, || {}),
        Ok(Transacted::Registered { .. })
    ));
    let (r, events) = push(&[app], true);
    assert_eq!(r.unwrap().uploaded, 1);
    assert!(events[0].starts_with("Skipped"), "{events:?}");
    plan.realize_with(&store, lib, &Stub, || {}).unwrap();
    let (r, _) = push(&[app], true);
    let sum = r.unwrap();
    assert_eq!((sum.uploaded, sum.present), (1, 1));
    assert!(sum.bytes_in > 0 && sum.bytes_out > 0);
    let (r, _) = push(&[app], false);
    assert_eq!(
        r.unwrap(),
        PushSummary {
            present: 1,
            ..Default::default()
        }
    );

    // Substituted into a fresh store, with its origin recorded; the log says where from.
    let other = Store::open(&d.path().join("other")).unwrap();
    let subs = Substituters::from_backends(vec![Box::new(cache)], vec![key.public()]);
    let node = plan.node(app);
    let found = subs.query(&node.id, &node.store_name(), "app", &|m| panic!("{m}")).unwrap();
    let done = plan
        .realize_with(
            &other,
            app,
            &Substitution {
                subs: &subs,
                found: &found,
            },
            || {},
        )
        .unwrap();
    let Transacted::Registered { meta, .. } = done else {
        panic!("not registered")
    };
    assert_eq!(meta.substituted_from.as_deref(), Some(subs.url(0)));
    assert_eq!(meta.tree_hash, store.lookup(&node.store_name()).unwrap().unwrap().tree_hash);
    assert_eq!(std::fs::read_to_string(other.entry(&meta.store_name).join("name")).unwrap(), "app");
    let log = std::fs::read_to_string(other.log_path(&meta.store_name)).unwrap();
    assert!(log.starts_with(&format!("substituted from {}: archives/", subs.url(0))), "{log}");
}
