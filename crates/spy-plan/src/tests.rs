use super::*;
use std::path::Path;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const CONFIG: &str = "format = 1\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n";
const SHA: &str = "ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269";

fn fixture(dir: &Path, lib_text: &str) -> Graph {
    write(dir, "spy.toml", CONFIG);
    write(dir, "lib.toml", lib_text);
    write(
        dir,
        "app.toml",
        "name = \"app\"\nversion = \"2\"\ndeps = [\"lib\"]\n[phases]\nbuild = \"cc -o $out/app app.c\"\n",
    );
    write(dir, "other.toml", "name = \"other\"\nversion = \"1\"\n");
    write(dir, "fix.patch", "--- a/x\n+++ b/x\n");
    Graph::load(dir, &[]).unwrap()
}

fn lib(extra: &str) -> String {
    format!("name = \"lib\"\nversion = \"1.0\"\npatches = [\"fix.patch\"]\n[[sources]]\nurls = [\"https://example.org/lib-1.0.tar.gz\"]\nsha256 = \"{SHA}\"\n[env]\nCFLAGS = \"-O2\"\n[phases]\nbuild = \"make\"\ninstall = \"make install PREFIX=$out\"\n{extra}")
}

fn ids(g: &Graph) -> (NodeId, NodeId, NodeId) {
    let plan = resolve_all(g, &mut ProbeCache::in_memory()).unwrap();
    let id = |n: &str| {
        plan.node(
            plan.get(&NodeKey {
                name: n.into(),
                target: "x86_64-linux-musl".into(),
            })
            .unwrap(),
        )
        .id
    };
    (id("lib"), id("app"), id("other"))
}

#[test]
fn golden_id_of_a_fixed_recipe() {
    // Changing this value means the canonical form changed: bump CANONICAL_FORMAT and docs/hashing.md.
    let d = tempfile::tempdir().unwrap();
    let g = fixture(d.path(), &lib(""));
    let (l, a, _) = ids(&g);
    assert_eq!(l.to_hex(), GOLDEN_LIB);
    assert_eq!(a.to_hex(), GOLDEN_APP);
}

#[test]
fn reformatting_keeps_ids_and_changes_propagate() {
    let d = tempfile::tempdir().unwrap();
    let base = ids(&fixture(d.path(), &lib("")));
    // Same meaning, other formatting, comments, key order and URL (mirrors do not change bytes).
    let reformatted = format!("# a comment\nversion   =   \"1.0\"\nname = \"lib\"\n\n[phases]\ninstall = \"make install PREFIX=$out\"\nbuild = \"make\"\n\n[env]\nCFLAGS = '-O2'\n\n[[sources]]\nsha256 = \"{SHA}\"\nurls = [\"https://mirror.example/lib-1.0.tar.gz\"]\n\n\npatches = []\n");
    let reformatted = reformatted.replace("\npatches = []\n", "\n");
    let r = ids(&fixture(d.path(), &format!("patches = [\"fix.patch\"]\n{reformatted}")));
    assert_eq!(r, base);

    // A phase change: lib and app change, other does not.
    let p = ids(&fixture(d.path(), &lib("").replace("build = \"make\"", "build = \"make -s\"")));
    assert_ne!(p.0, base.0);
    assert_ne!(p.1, base.1);
    assert_eq!(p.2, base.2);
    // A source hash change.
    let s = ids(&fixture(d.path(), &lib("").replace(SHA, &SHA.replace('a', "b"))));
    assert_ne!(s.0, base.0);
    assert_ne!(s.1, base.1);
    // A patch content change.
    fixture(d.path(), &lib(""));
    write(d.path(), "fix.patch", "--- a/x\n+++ b/y\n");
    let g = Graph::load(d.path(), &[]).unwrap();
    let pc = ids(&g);
    assert_ne!(pc.0, base.0);
    assert_ne!(pc.1, base.1);
    // An env change.
    let e = ids(&fixture(d.path(), &lib("").replace("-O2", "-O3")));
    assert_ne!(e.0, base.0);
}

#[test]
fn cycle_is_reported_with_its_path() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "spy.toml", CONFIG);
    write(d.path(), "a.toml", "name = \"a\"\nversion = \"1\"\ndeps = [\"b\"]\n");
    write(d.path(), "b.toml", "name = \"b\"\nversion = \"1\"\ndeps = [\"a\"]\n");
    let g = Graph::load(d.path(), &[]).unwrap();
    let e = resolve_all(&g, &mut ProbeCache::in_memory()).unwrap_err().to_string();
    assert!(e.contains("a -> b -> a"), "{e}");
}

#[test]
fn specs_parse() {
    let d = tempfile::tempdir().unwrap();
    let g = fixture(d.path(), &lib(""));
    let k = parse_spec(&g, "lib-x86_64").unwrap();
    assert_eq!(
        k,
        NodeKey {
            name: "lib".into(),
            target: "x86_64-linux-musl".into()
        }
    );
    assert_eq!(parse_spec(&g, "lib@x86_64-linux-musl").unwrap(), k);
    assert_eq!(parse_spec(&g, "lib").unwrap(), k);
    assert!(parse_spec(&g, "nope").is_err());
    assert!(parse_spec(&g, "lib@mips").unwrap_err().to_string().contains("mips"));
}

#[test]
fn implicit_deps_and_bootstrap_probe() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "spy.toml",
        "format = 1\nimplicit_deps = [\"stage0\"]\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n",
    );
    write(
        d.path(),
        "stage0.toml",
        "name = \"stage0\"\nversion = \"host\"\nkind = \"bootstrap\"\ntools = [\"bash\", \"sh\"]\n",
    );
    write(d.path(), "a.toml", "name = \"a\"\nversion = \"1\"\n");
    let g = Graph::load(d.path(), &[]).unwrap();
    let plan = resolve_all(&g, &mut ProbeCache::in_memory()).unwrap();
    let a = plan
        .get(&NodeKey {
            name: "a".into(),
            target: "x86_64-linux-musl".into(),
        })
        .unwrap();
    assert_eq!(plan.node(a).deps.len(), 1);
    let s = plan.node(plan.node(a).deps[0]);
    assert_eq!(s.tools.len(), 2);
    assert!(s.tools[0].version.contains("bash"), "{:?}", s.tools);
}

const GOLDEN_LIB: &str = "a9471864d6f81b98e2a513a49cf5903553a7cef18a9bfe90080dde190f277180";
const GOLDEN_GIT_EXCLUDING: &str = "18de148ffb40c4da70c0bdd72fd0562648be6b3ac78a9fdc51e0a158172c0446";
const GOLDEN_APP: &str = "0c8db9f2e51bc3a4924e0b2ae7f414a04bed2fdb7ec3e9c68703f1590192b293";

/// A node's dependencies as the canonical form takes them: (name, id).
fn dep_ids(plan: &Plan, n: &PlanNode) -> Vec<(String, NodeId)> {
    n.deps.iter().map(|&d| (plan.node(d).key.name.clone(), plan.node(d).id)).collect()
}

#[test]
fn streamed_id_equals_hash_of_canonical_text() {
    let d = tempfile::tempdir().unwrap();
    let g = fixture(d.path(), &lib(""));
    let plan = resolve_all(&g, &mut ProbeCache::in_memory()).unwrap();
    for ix in plan.dag.node_indices() {
        let n = plan.node(ix);
        let deps = dep_ids(&plan, n);
        let text = canonical_form(n, &deps);
        // The fixture graph's nodes, whose ids the golden tests pin, as serde_json writes them.
        assert_eq!(text, canonical::reference::canonical_form(n, &deps));
        assert!(
            text.starts_with(&format!("spy-node-v1\n{{\"builder\":{BUILDER_VERSION},\"deps\":[")),
            "{text}"
        );
        assert_eq!(NodeId::of_bytes(text.as_bytes()), n.id);
    }
}

const COMMIT: &str = "4de5ac6bbe87cebfecbc050443e1084e9472c5f8";

fn git_lib(exclude: &str) -> String {
    format!("name = \"lib\"\nversion = \"1.0\"\n[[sources]]\ngit = {{ url = \"https://example.org/lib\", commit = \"{COMMIT}\"{exclude} }}\n[phases]\nbuild = \"make\"\n")
}

fn lib_canonical(g: &Graph) -> String {
    let plan = resolve_all(g, &mut ProbeCache::in_memory()).unwrap();
    let key = NodeKey {
        name: "lib".into(),
        target: "x86_64-linux-musl".into(),
    };
    let node = plan.node(plan.get(&key).unwrap());
    canonical_form(node, &[])
}

#[test]
fn git_exclude_is_part_of_the_canonical_form() {
    let d = tempfile::tempdir().unwrap();
    let plain = lib_canonical(&fixture(d.path(), &git_lib("")));
    // A pin without `exclude` keeps the form it always had (and with it the ids of such nodes).
    assert!(plain.contains(&format!("\"pin\":{{\"git\":\"{COMMIT}\"}}")), "{plain}");
    let one = lib_canonical(&fixture(d.path(), &git_lib(", exclude = [\"Misc/svnmap.txt\", \"Doc\"]")));
    assert!(
        one.contains(&format!(
            "\"pin\":{{\"git_excluding\":{{\"commit\":\"{COMMIT}\",\"exclude\":[\"Doc\",\"Misc/svnmap.txt\"]}}}}"
        )),
        "{one}"
    );
    // Golden: changing it means the canonical form changed (docs/hashing.md).
    assert_eq!(blake3::hash(one.as_bytes()).to_hex().as_str(), GOLDEN_GIT_EXCLUDING);
    // The order written in the recipe does not matter; another set of paths is another node.
    let reordered = lib_canonical(&fixture(d.path(), &git_lib(", exclude = [\"Doc\", \"Misc/svnmap.txt\"]")));
    assert_eq!(one, reordered);
    let other = lib_canonical(&fixture(d.path(), &git_lib(", exclude = [\"Doc\"]")));
    assert_ne!(one, other);
    // An empty list is no exclusion at all.
    assert_eq!(plain, lib_canonical(&fixture(d.path(), &git_lib(", exclude = []"))));
}

#[test]
fn git_exclude_paths_are_plain_relative_paths() {
    for bad in [
        "../etc/passwd",
        "/abs",
        "a//b",
        "a/./b",
        "",
        ":(glob)*",
        "Misc/*.txt",
        "a/..",
        "x\ny",
    ] {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "spy.toml", CONFIG);
        let text = git_lib(&format!(", exclude = [{}]", serde_json::to_string(bad).unwrap()));
        write(d.path(), "lib.toml", &text);
        // Refused when the recipe is parsed (spy-recipe's RelPath), naming file and key.
        let err = Graph::load(d.path(), &[]).err().unwrap().to_string();
        assert!(err.contains("exclude") && err.contains("lib.toml"), "{bad:?}: {err}");
    }
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "spy.toml", CONFIG);
    write(d.path(), "lib.toml", &git_lib(", exclude = [\"a\", \"a\"]"));
    let g = Graph::load(d.path(), &[]).unwrap();
    let err = resolve_all(&g, &mut ProbeCache::in_memory()).err().unwrap().to_string();
    assert!(err.contains("twice"), "{err}");
}

#[test]
fn a_misspelt_node_or_target_gets_the_closest_spellings() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "python3.11.toml", "name = \"python3.11\"\nversion = \"3.11.2\"\n");
    write(d.path(), "python2.7.toml", "name = \"python2.7\"\nversion = \"2.7.18\"\n");
    let g = fixture(d.path(), &lib(""));
    let msg = |spec: &str| parse_spec(&g, spec).unwrap_err().to_string();
    // A typo of a `spy list` name: one suggestion, the right one first.
    let m = msg("pyhton3.11-x86_64");
    assert!(
        m.starts_with("`pyhton3.11-x86_64` names no node; did you mean `python3.11-x86_64`"),
        "{m}"
    );
    assert!(!m.contains("spy list"), "the hint belongs to the CLI, once: {m}");
    // name@target: the name is corrected, the target kept.
    let m = msg("pyton2.7@x86_64-linux-musl");
    assert!(m.contains("did you mean `python2.7@x86_64-linux-musl`"), "{m}");
    // A target's short name after `@` is a command-line error, not a recipe's, and the node as
    // `spy list` names it is suggested.
    let e = parse_spec(&g, "python3.11@x86_64").unwrap_err();
    assert!(matches!(e, PlanError::UnknownTarget { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("no target `x86_64`") && m.contains("did you mean `python3.11-x86_64`"),
        "{m}"
    );
    assert!(!m.contains("spy.toml"), "{m}");
    // A misspelt target is suggested too.
    assert!(msg("lib@x86_64-linux-mus").contains("`x86_64-linux-musl`"));
    // Nothing close: no suggestion at all.
    let m = msg("zzzzzzzz");
    assert_eq!(m, "`zzzzzzzz` names no node");
}

#[test]
fn result_links_name_one_root_plainly_and_several_by_name() {
    use std::path::{Path, PathBuf};
    let one = vec!["python3.11-x86_64".to_string()];
    let two = vec!["python3.11-x86_64".to_string(), "python2.7-i686".to_string()];
    assert_eq!(crate::result_links(None, &one), vec![PathBuf::from("result")]);
    assert_eq!(crate::result_links(Some(Path::new("out/py")), &one), vec![PathBuf::from("out/py")]);
    assert_eq!(
        crate::result_links(None, &two),
        vec![PathBuf::from("result-python3.11-x86_64"), PathBuf::from("result-python2.7-i686")]
    );
    assert_eq!(
        crate::result_links(Some(Path::new("r")), &two),
        vec![PathBuf::from("r-python3.11-x86_64"), PathBuf::from("r-python2.7-i686")]
    );
}

/// A node with every part of the canonical form set, its strings full of what JSON escapes.
fn node_with_everything(odd: &str) -> PlanNode {
    use spy_recipe::{FuseSpec, Phase, ZipCompression};
    let patch = |name: &str, b: u8| Patch {
        name: name.into(),
        path: PathBuf::from("/x").join(name),
        blake3: spy_hash::Blake3([b; 32]),
    };
    PlanNode {
        key: NodeKey {
            name: format!("n{odd}"),
            target: "x86_64-linux-musl".into(),
        },
        id: NodeId([0; 32]),
        version: format!("1.{odd}"),
        kind: Kind::Fuse,
        description: "not hashed".into(),
        license: "not hashed".into(),
        sources: vec![
            Source {
                pin: SourcePin::Sha256(spy_hash::Sha256([0xab; 32])),
                file: format!("a{odd}.tar.gz"),
                urls: vec!["https://example.org/a.tar.gz".into()],
                debian: None,
                pypi: None,
                unpack: true,
                var: "src".into(),
            },
            Source {
                pin: SourcePin::Git {
                    url: "https://example.org/g".into(),
                    commit: COMMIT.into(),
                    exclude: vec![],
                },
                file: "g.tar".into(),
                urls: vec![],
                debian: None,
                pypi: None,
                unpack: false,
                var: format!("src_1{odd}"),
            },
            Source {
                pin: SourcePin::Git {
                    url: "https://example.org/g".into(),
                    commit: COMMIT.into(),
                    exclude: vec!["Doc".into(), format!("x{odd}")],
                },
                file: "h.tar".into(),
                urls: vec![],
                debian: None,
                pypi: None,
                unpack: true,
                var: "src_2".into(),
            },
        ],
        patches: vec![patch(&format!("p{odd}.patch"), 1), patch("q.patch", 2)],
        files: vec![patch(&format!("f{odd}"), 3)],
        env: [("A".to_string(), odd.to_string()), (format!("B{odd}"), "-O2".to_string())]
            .into_iter()
            .collect(),
        // Inserted out of name order: the form sorts them by name.
        phases: [
            (Phase::Install, format!("make install{odd}")),
            (Phase::Build, "make".into()),
            (Phase::Configure, "./configure".into()),
        ]
        .into_iter()
        .collect(),
        tools: vec![HostTool {
            name: "bash".into(),
            path: "/usr/bin/bash".into(),
            version: format!("GNU bash{odd}"),
        }],
        weight: 3,
        deps: vec![],
        file: PathBuf::from("/g/n.toml"),
        fuse: Some(FusePlan {
            spec: FuseSpec {
                interpreter: "interp".into(),
                executable: format!("bin/python{odd}"),
                stdlib: "lib/python3".into(),
                modules: if odd.is_empty() { None } else { Some(format!("m{odd}.json")) },
                exclude: vec!["test".into(), odd.into()],
                compression: if odd.is_empty() {
                    ZipCompression::Stored
                } else {
                    ZipCompression::Deflated
                },
                hot: if odd.is_empty() {
                    vec![]
                } else {
                    vec!["os.pyc".into(), odd.into()]
                },
                dictionary: !odd.is_empty(),
                flavor: "plain".into(),
                sources: !odd.is_empty(),
            },
            release: format!("python{odd}-x86_64"),
            licenses: [("zlib".to_string(), format!("Zlib{odd}"))].into_iter().collect(),
        }),
    }
}

/// The hand-written canonical form is serde_json's serialization of the same structure, byte for
/// byte: escapes (every control character, quotes, backslashes, DEL and non-ASCII as is), empty
/// and absent parts, the order of keys, dependencies and phases (and the fixture graph's nodes:
/// `streamed_id_equals_hash_of_canonical_text`).
#[test]
fn canonical_form_is_serde_jsons_bytes() {
    let deps = vec![
        ("zz".to_string(), NodeId([9; 32])),
        ("aa".to_string(), NodeId([7; 32])),
        ("aa".to_string(), NodeId([3; 32])),
    ];
    let controls: String = (0u8..0x20).map(char::from).collect();
    for odd in ["", "plain", "\"quoted\" \\back\\slash", "\u{7f}é€😀 /<>&'", &controls, "\\u0000"] {
        let mut node = node_with_everything(odd);
        for _ in 0..2 {
            let fast = canonical_form(&node, &deps);
            assert_eq!(fast, canonical::reference::canonical_form(&node, &deps), "{odd:?}");
            let borrowed: Vec<(&str, NodeId)> = deps.iter().map(|(n, id)| (n.as_str(), *id)).collect();
            assert_eq!(canonical::node_id(&node, &borrowed), NodeId::of_bytes(fast.as_bytes()));
            // And with the optional parts empty or absent.
            node.fuse = None;
            node.files.clear();
            node.tools.clear();
            node.sources.truncate(1);
        }
    }
}

/// Every node of the repository's graph, for every target, hashes as serde_json's form does (the
/// real fuse nodes, git pins, patches, files and host tools).
#[test]
fn the_real_graphs_ids_are_serde_jsons() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graph");
    let g = Graph::load(&root, &[]).unwrap();
    let plan = resolve_all(&g, &mut ProbeCache::in_memory()).unwrap();
    let mut fuse = 0;
    for ix in plan.dag.node_indices() {
        let n = plan.node(ix);
        fuse += usize::from(n.fuse.is_some());
        let deps = dep_ids(&plan, n);
        let reference = canonical::reference::canonical_form(n, &deps);
        assert_eq!(n.id, NodeId::of_bytes(reference.as_bytes()), "{}", n.key);
    }
    assert!(plan.len() > 150 && fuse > 20, "{} nodes, {fuse} fuse nodes", plan.len());
}

/// A name and a version each within the grammar's 128 bytes can still make a store name longer
/// than one path component allows: the resolve refuses it, naming the node and its file.
#[test]
fn a_store_name_over_255_bytes_is_refused_by_the_resolve() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "spy.toml", CONFIG);
    let (name, version) = ("n".repeat(120), "1".repeat(120));
    write(d.path(), "long.toml", &format!("name = \"{name}\"\nversion = \"{version}\"\n"));
    // Another in the same level, later in plan order: never the one named, however the parallel
    // hashing runs.
    write(d.path(), "longer.toml", &format!("name = \"o{name}\"\nversion = \"{version}\"\n"));
    write(d.path(), "short.toml", "name = \"short\"\nversion = \"1\"\n");
    let g = Graph::load(d.path(), &[]).unwrap();
    for _ in 0..20 {
        let e = resolve_all(&g, &mut ProbeCache::in_memory()).unwrap_err();
        assert!(
            matches!(&e, PlanError::StoreName { node, file, .. } if node.starts_with(&name) && file.ends_with("long.toml")),
            "{e}"
        );
    }
}
