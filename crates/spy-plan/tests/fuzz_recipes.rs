//! Fuzzing recipe and overlay loading and the canonical form with proptest: random TOML-ish
//! recipes and overlays (recipe keys, hostile values: `..`, absolute paths, options, control
//! characters), the repository's own recipes mutated byte by byte and line by line, and valid
//! recipes written in two random styles. No input may panic; a graph that loads must have only
//! valid names and entry names; two writings of one recipe must have one canonical form (and id).
//!
//! `SPY_FUZZ_CASES` sets the number of inputs per harness (defaults below), `SPY_FUZZ_SEED` the
//! seed (0); `benches/fuzz-recipes.sh` runs them longer. Each harness prints
//! `fuzz-recipes NAME: N inputs, P panics, R refused, A accepted`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use spy_plan::{canonical_form, resolve, NodeKey, Plan, ProbeCache};
use spy_recipe::{Graph, NodeName, Version};

const CONFIG: &str = "format = 1\ndefault_target = \"x86_64-linux-musl\"\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n[targets.i686-linux-musl]\nshort = \"i686\"\n[targets.aarch64-darwin]\nshort = \"darwin-arm64\"\nexplicit = true\nfamily = \"darwin\"\n";

fn config(default_cases: u32) -> (Config, TestRng) {
    let cases = std::env::var("SPY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let seed: u64 = std::env::var("SPY_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    (config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Runs `check` on `cases` inputs, counting panics (caught, so every input runs) and outcomes;
/// an `Err` from `check` is a broken invariant and fails at once (proptest shrinks it).
fn run<S: Strategy>(name: &str, default_cases: u32, strategy: S, check: impl Fn(&S::Value) -> Result<bool, String>)
where
    S::Value: std::fmt::Debug,
{
    let (config, rng) = config(default_cases);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let counts = RefCell::new([0usize; 4]); // inputs, panics, refused, accepted
    let first_panic = RefCell::new(None::<String>);
    let result = runner.run(&strategy, |input| {
        counts.borrow_mut()[0] += 1;
        match catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Err(p) => {
                counts.borrow_mut()[1] += 1;
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                first_panic.borrow_mut().get_or_insert_with(|| format!("{msg:?} on {input:?}"));
                Ok(())
            }
            Ok(Ok(accepted)) => {
                counts.borrow_mut()[if accepted { 3 } else { 2 }] += 1;
                Ok(())
            }
            Ok(Err(broken)) => Err(TestCaseError::fail(broken)),
        }
    });
    let [inputs, panics, refused, accepted] = counts.into_inner();
    println!("fuzz-recipes {name}: {inputs} inputs, {panics} panics, {refused} refused, {accepted} accepted");
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    assert_eq!(panics, 0, "{name}: first panic: {}", first_panic.into_inner().unwrap_or_default());
}

// ---- a scratch graph ------------------------------------------------------------------------------

struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new().prefix("spy-fuzz-recipes-").tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let s = Scratch { _dir: dir, root };
        s.write("graph/spy.toml", CONFIG);
        s.write("graph/b.toml", "name = \"b\"\nversion = \"1\"\n");
        s.write("graph/p1.patch", "--- a/x\n+++ b/x\n");
        s.write("graph/p2.patch", "--- a/y\n+++ b/y\n");
        s.write("graph/h.sh", "echo hi\n");
        s
    }
    fn graph(&self) -> PathBuf {
        self.root.join("graph")
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// Every node of `graph` for every target it exists for.
fn all_keys(graph: &Graph) -> Vec<NodeKey> {
    let mut keys = Vec::new();
    for node in graph.nodes.values() {
        for t in graph.config.targets.keys() {
            if node.has_target(t, &graph.config) {
                keys.push(NodeKey {
                    name: node.name.clone(),
                    target: t.to_string(),
                });
            }
        }
    }
    keys
}

/// What must hold of any graph that loads and any plan that resolves.
fn check_loaded(graph: &Graph, plan: Option<&Plan>) -> Result<(), String> {
    for (name, node) in &graph.nodes {
        if !NodeName::is_valid(name) {
            return Err(format!("a node named {name:?} loaded"));
        }
        if let Some(v) = &node.recipe.version {
            if !Version::is_valid(v) {
                return Err(format!("node {name:?} has version {v:?}"));
            }
        }
    }
    let Some(plan) = plan else { return Ok(()) };
    for ix in plan.dag.node_indices() {
        let node = plan.node(ix);
        let entry = node.store_name().to_string();
        let ok = entry.len() > 33
            && entry.as_bytes()[32] == b'-'
            && !entry.contains('/')
            && !entry.contains("..")
            && !entry.bytes().any(|b| b.is_ascii_control());
        if !ok {
            return Err(format!("entry name {entry:?}"));
        }
        for s in &node.sources {
            if !spy_recipe::FileName::is_valid(&s.file) || !spy_recipe::VarName::is_valid(&s.var) {
                return Err(format!("source file {:?} var {:?}", s.file, s.var));
            }
        }
        for p in node.patches.iter().chain(&node.files) {
            if p.name.contains('/') || p.name.starts_with('.') || p.name.is_empty() {
                return Err(format!("patch or file named {:?}", p.name));
            }
        }
        if let Some(f) = &node.fuse {
            for p in [&f.spec.executable, &f.spec.stdlib]
                .into_iter()
                .chain(f.spec.modules.as_ref())
                .chain(&f.spec.exclude)
            {
                if !spy_recipe::RelPath::is_valid(p) {
                    return Err(format!("fuse path {p:?}"));
                }
            }
        }
        let deps: Vec<(String, spy_hash::NodeId)> = node
            .deps
            .iter()
            .map(|&d| (plan.node(d).key.name.clone(), plan.node(d).id))
            .collect();
        let form = canonical_form(node, &deps);
        let json = form.strip_prefix("spy-node-v1\n").ok_or("canonical form without its header")?;
        serde_json::from_str::<serde_json::Value>(json).map_err(|e| format!("canonical form is not JSON: {e}"))?;
    }
    Ok(())
}

/// Loads the scratch graph (with `overlay`, if any) and resolves every node.
fn load_and_resolve(s: &Scratch, overlay: Option<&Path>, probes: &mut ProbeCache) -> Result<bool, String> {
    let overlays: Vec<PathBuf> = overlay.map(Path::to_path_buf).into_iter().collect();
    let Ok(graph) = Graph::load(&s.graph(), &overlays) else {
        return Ok(false);
    };
    check_loaded(&graph, None)?;
    let keys = all_keys(&graph);
    match resolve(&graph, &keys, probes) {
        Ok(plan) => {
            check_loaded(&graph, Some(&plan))?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

// ---- TOML-ish recipes ------------------------------------------------------------------------------

const KEYS: &[&str] = &[
    "name",
    "version",
    "kind",
    "description",
    "license",
    "deps",
    "targets",
    "patches",
    "files",
    "tools",
    "weight",
    "extra_deps",
    "file",
    "sha256",
    "urls",
    "debian",
    "pypi",
    "unpack",
    "var",
    "git",
    "interpreter",
    "executable",
    "stdlib",
    "modules",
    "exclude",
    "compression",
    "flavor",
    "configure",
    "build",
    "install",
    "CFLAGS",
    "env.X",
    "phases.build",
    "fuse.executable",
    "target.i686-linux-musl.version",
    "target.darwin.deps",
    "sources",
    "fuse",
    "env",
    "phases",
    "confgure",
    "\"a/b\"",
    "nodes",
];

const HEADERS: &[&str] = &[
    "[phases]",
    "[env]",
    "[fuse]",
    "[[sources]]",
    "[target.x86_64-linux-musl]",
    "[target.i686-linux-musl.env]",
    "[target.darwin]",
    "[target.sparc]",
    "[variants.v1]",
    "[variants.\"a/b\"]",
    "[variants.v2.env]",
    "[sources.git]",
    "[nodes.a]",
    "[",
    "[[",
    "[]",
    "[env.\"\"]",
];

const VALUES: &[&str] = &[
    "",
    ".",
    "..",
    "../x",
    "../../victim",
    "1/../../victim",
    "/etc/passwd",
    "/",
    "a/b",
    "a//b",
    "-rf",
    "--upload-pack=touch /tmp/x",
    "https://example.org/a-1.tar.gz",
    "file:///etc/passwd",
    "ftp://x",
    "\u{0}",
    "é",
    "a b",
    "$out",
    "b",
    "a",
    "stage0",
    "src",
    "src_1",
    "bin/x",
    "lib",
    "lib/./x",
    "x86_64-linux-musl",
    "darwin",
    "build",
    "bootstrap",
    "fuse",
    "stored",
    "hot",
    "solid-lz4-zstd",
    "deflated",
    "zlib==1",
    "zlib",
    "-oDir::Cache=/",
    "sh",
    "[",
    "g++",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269",
    "4de5ac6bbe87cebfecbc050443e1084e9472c5f8",
    "p1.patch",
    "h.sh",
    "a.tar.gz",
];

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn value() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        4 => prop::sample::select(VALUES).prop_map(str::to_string),
        2 => "[a-zA-Z0-9._/+-]{0,12}",
        1 => ".{0,8}",
    ];
    prop_oneof![
        6 => word.clone().prop_map(|w| quoted(&w)),
        1 => word.clone().prop_map(|w| format!("'{w}'")),
        2 => prop::collection::vec(word.clone(), 0..4).prop_map(|v| format!("[{}]", v.iter().map(|w| quoted(w)).collect::<Vec<_>>().join(", "))),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => (prop::sample::select(KEYS), word).prop_map(|(k, w)| format!("{{ {k} = {} }}", quoted(&w))),
        1 => "[ -~]{0,10}",
    ]
}

/// A value of the type `key` takes, holding one of the interesting words.
fn typed_value(key: &'static str) -> BoxedStrategy<String> {
    let word = prop::sample::select(VALUES).prop_map(str::to_string);
    match key {
        "deps" | "targets" | "patches" | "files" | "tools" | "extra_deps" | "urls" | "exclude" | "target.darwin.deps" => {
            prop::collection::vec(word, 0..3)
                .prop_map(|v| format!("[{}]", v.iter().map(|w| quoted(w)).collect::<Vec<_>>().join(", ")))
                .boxed()
        }
        "weight" => (0u32..1000).prop_map(|i| i.to_string()).boxed(),
        "unpack" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        "git" => (word.clone(), word)
            .prop_map(|(u, c)| format!("{{ url = {}, commit = {} }}", quoted(&u), quoted(&c)))
            .boxed(),
        _ => word.prop_map(|w| quoted(&w)).boxed(),
    }
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(KEYS).prop_flat_map(|k| typed_value(k).prop_map(move |v| format!("{k} = {v}"))),
        3 => (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        3 => prop::sample::select(HEADERS).prop_map(str::to_string),
        1 => "[ -~]{0,16}",
        1 => Just("# comment".to_string()),
    ]
}

/// A recipe-ish file: mostly a name and a version first (so that something gets past the first
/// checks), then random lines.
fn recipe_text() -> impl Strategy<Value = String> {
    (
        prop::option::weighted(
            0.9,
            prop_oneof![3 => Just("name = \"a\"".to_string()), 1 => value().prop_map(|v| format!("name = {v}"))],
        ),
        prop::option::weighted(
            0.9,
            prop_oneof![3 => Just("version = \"1\"".to_string()), 1 => value().prop_map(|v| format!("version = {v}"))],
        ),
        prop::collection::vec(line(), 0..8),
    )
        .prop_map(|(name, version, lines)| {
            let mut text = String::new();
            for l in name.into_iter().chain(version).chain(lines) {
                text.push_str(&l);
                text.push('\n');
            }
            text
        })
}

#[test]
fn fuzz_recipe_files() {
    let s = Scratch::new();
    let probes = RefCell::new(ProbeCache::in_memory());
    run("recipes", 400, recipe_text(), |text| {
        s.write("graph/a.toml", text);
        load_and_resolve(&s, None, &mut probes.borrow_mut())
    });
}

#[test]
fn fuzz_overlays() {
    let s = Scratch::new();
    s.write(
        "graph/a.toml",
        "name = \"a\"\nversion = \"1\"\ndeps = [\"b\"]\n[phases]\nbuild = \"make\"\n",
    );
    let probes = RefCell::new(ProbeCache::in_memory());
    let node = prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("new".to_string()),
        prop::sample::select(VALUES).prop_map(str::to_string)
    ];
    let overlay = prop::collection::vec((node, recipe_text()), 0..3).prop_map(|tables| {
        tables
            .iter()
            .map(|(n, body)| {
                // Every header of the body moves below `[nodes.N]`.
                let n = quoted(n);
                let mut out = format!("[nodes.{n}]\n");
                for l in body.lines() {
                    if let Some(h) = l.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
                        out.push_str(&format!("[[nodes.{n}.{h}]]\n"));
                    } else if let Some(h) = l.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                        out.push_str(&format!("[nodes.{n}.{h}]\n"));
                    } else {
                        out.push_str(l);
                        out.push('\n');
                    }
                }
                out
            })
            .collect::<String>()
    });
    let path = s.root.join("overlays/o.toml");
    run("overlays", 300, overlay, |text| {
        s.write("overlays/o.toml", text);
        load_and_resolve(&s, Some(&path), &mut probes.borrow_mut())
    });
}

// ---- the repository's recipes, mutated ---------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    DeleteBytes { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceString { nth: usize, with: String },
    Truncate(usize),
}

impl Mutation {
    fn apply(&self, text: &str) -> String {
        let floor = |i: usize| {
            let mut i = i % (text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let lines: Vec<&str> = text.lines().collect();
        let n = lines.len().max(1);
        match self {
            Mutation::DeleteBytes { at, len } => {
                let a = floor(*at);
                let b = floor(a + len);
                format!("{}{}", &text[..a], &text[b.max(a)..])
            }
            Mutation::Insert { at, text: t } => {
                let a = floor(*at);
                format!("{}{t}{}", &text[..a], &text[a..])
            }
            Mutation::DuplicateLine(i) => {
                let mut l = lines.clone();
                if !l.is_empty() {
                    let i = i % n;
                    l.insert(i, lines[i]);
                }
                l.join("\n")
            }
            Mutation::SwapLines(i, j) => {
                let mut l = lines.clone();
                if !l.is_empty() {
                    l.swap(i % n, j % n);
                }
                l.join("\n")
            }
            Mutation::ReplaceString { nth, with } => {
                // The nth "..." string of the file.
                let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
                if quotes.len() < 2 {
                    return text.to_string();
                }
                let k = (nth % (quotes.len() / 2)) * 2;
                format!("{}{}{}", &text[..quotes[k]], quoted(with), &text[quotes[k + 1] + 1..])
            }
            Mutation::Truncate(at) => text[..floor(*at)].to_string(),
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        prop::sample::select(VALUES).prop_map(quoted),
        prop::sample::select(KEYS).prop_map(|k| format!("\n{k} = ")),
        prop::sample::select(HEADERS).prop_map(|h| format!("\n{h}\n")),
        prop::sample::select(&["\"", "'", "[", "]", "{", "}", "=", ",", "\n", "#", "\\", "\"\"\"", "'''"][..]).prop_map(str::to_string),
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::DeleteBytes { at, len }),
        (any::<usize>(), token).prop_map(|(at, text)| Mutation::Insert { at, text }),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::SwapLines(i, j)),
        (any::<usize>(), prop::sample::select(VALUES)).prop_map(|(nth, w)| Mutation::ReplaceString { nth, with: w.to_string() }),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Copies `from` to `to` recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dest) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dest);
        } else {
            std::fs::copy(&src, &dest).unwrap();
        }
    }
}

#[test]
fn fuzz_mutated_real_recipes() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::Builder::new().prefix("spy-fuzz-real-").tempdir().unwrap();
    copy_tree(&repo.join("graph"), &dir.path().join("graph"));
    copy_tree(&repo.join("overlays"), &dir.path().join("overlays"));
    let graph_dir = dir.path().join("graph");
    let mut recipes: Vec<(PathBuf, String)> = Vec::new();
    fn collect(d: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else if p.extension().is_some_and(|x| x == "toml") && p.file_name().is_some_and(|n| n != "spy.toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    collect(&graph_dir, &mut recipes);
    recipes.sort();
    assert!(recipes.len() > 30, "{} recipes", recipes.len());
    // The unmutated graph loads.
    let clean = Graph::load(&graph_dir, &[]).expect("the repository's graph loads");
    check_loaded(&clean, None).unwrap();
    let probes = RefCell::new(ProbeCache::in_memory());
    let n = recipes.len();
    let input = (0..n, prop::collection::vec(mutation(), 1..4));
    run("mutated-real", 150, input, |(which, mutations)| {
        let (path, original) = &recipes[*which];
        let text = mutations.iter().fold(original.clone(), |t, m| m.apply(&t));
        std::fs::write(path, &text).unwrap();
        let outcome = (|| {
            let Ok(graph) = Graph::load(&graph_dir, &[]) else {
                return Ok(false);
            };
            check_loaded(&graph, None)?;
            // Resolve what the mutated file defines (and its closure), not the whole graph.
            let keys: Vec<NodeKey> = all_keys(&graph)
                .into_iter()
                .filter(|k| graph.file_of(&k.name) == Some(path.as_path()))
                .collect();
            match resolve(&graph, &keys, &mut probes.borrow_mut()) {
                Ok(plan) => check_loaded(&graph, Some(&plan)).map(|_| true),
                Err(_) => Ok(false),
            }
        })();
        std::fs::write(path, original).unwrap();
        outcome
    });
}

// ---- one recipe, two writings ----------------------------------------------------------------------

/// A valid recipe, as data.
#[derive(Debug, Clone)]
struct Valid {
    version: String,
    deps: bool,
    description: String,
    env: BTreeMap<String, String>,
    phases: BTreeMap<&'static str, String>,
    sources: Vec<(Option<String>, String, bool)>,
    patches: Vec<&'static str>,
    weight: Option<u32>,
    i686_env: BTreeMap<String, String>,
}

/// How to write it.
#[derive(Debug, Clone)]
struct Style {
    order: Vec<usize>,
    spaces: usize,
    comments: bool,
    literal: bool,
    inline_tables: bool,
    multiline_arrays: bool,
    array_of_tables: bool,
    mirror: String,
}

fn valid() -> impl Strategy<Value = Valid> {
    let id = "[0-9][0-9a-z.+_-]{0,8}".prop_filter("no ..", |s| !s.contains(".."));
    let text = prop_oneof![
        "[ -~]{0,20}",
        ".{0,12}",
        Just("a \"quoted\" \\ back\\slash".to_string()),
        Just("line\nbreak\ttab".to_string())
    ];
    let env = prop::collection::btree_map("[A-Z_][A-Z0-9_]{0,6}", text.clone(), 0..4);
    let phases = prop::collection::btree_map(
        prop::sample::select(&["configure", "build", "check", "install", "fixup"][..]),
        text.clone(),
        0..4,
    );
    let file = "[a-z][a-z0-9.-]{0,10}\\.tar\\.gz".prop_filter("no ..", |f| !f.contains(".."));
    let source = (prop::option::of(file), "[0-9a-f]{64}", any::<bool>());
    (
        id,
        any::<bool>(),
        text,
        env.clone(),
        phases,
        prop::collection::vec(source, 0..3),
        prop::sample::subsequence(vec!["p1.patch", "p2.patch"], 0..=2),
        prop::option::of(1u32..100),
        env,
    )
        .prop_map(
            |(version, deps, description, env, phases, sources, patches, weight, i686_env)| Valid {
                version,
                deps,
                description,
                env,
                phases,
                sources,
                patches,
                weight,
                i686_env,
            },
        )
}

fn style() -> impl Strategy<Value = Style> {
    (
        Just((0..9).collect::<Vec<usize>>()).prop_shuffle(),
        0usize..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        "[a-z]{1,8}",
    )
        .prop_map(
            |(order, spaces, comments, literal, inline_tables, multiline_arrays, array_of_tables, mirror)| Style {
                order,
                spaces,
                comments,
                literal,
                inline_tables,
                multiline_arrays,
                array_of_tables,
                mirror,
            },
        )
}

impl Style {
    fn string(&self, s: &str) -> String {
        if self.literal && !s.contains('\'') && !s.chars().any(|c| c.is_control()) {
            format!("'{s}'")
        } else {
            // JSON's escapes are TOML's, but for a few control characters only JSON names.
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
    }
    fn eq(&self) -> String {
        format!("{0}={0}", " ".repeat(self.spaces))
    }
    fn array(&self, items: &[String]) -> String {
        if self.multiline_arrays && !items.is_empty() {
            format!("[\n{}\n]", items.iter().map(|i| format!("  {i},")).collect::<Vec<_>>().join("\n"))
        } else {
            format!("[{}]", items.join(", "))
        }
    }
    fn table(&self, name: &str, map: &BTreeMap<String, String>) -> String {
        let entries: Vec<(String, String)> = map.iter().rev().map(|(k, v)| (k.clone(), self.string(v))).collect();
        if self.inline_tables {
            format!(
                "{name}{}{{ {} }}\n",
                self.eq(),
                entries.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "[{name}]\n{}",
                entries.iter().map(|(k, v)| format!("{k}{}{v}\n", self.eq())).collect::<String>()
            )
        }
    }

    fn write(&self, r: &Valid) -> String {
        let e = self.eq();
        // Plain keys first (a table header ends them), then tables, each group in the style's order.
        let mut plain: Vec<String> = vec![
            format!("name{e}\"a\"\n"),
            format!("version{e}{}\n", self.string(&r.version)),
            format!("description{e}{}\n", self.string(&r.description)),
        ];
        if r.deps {
            plain.push(format!("deps{e}{}\n", self.array(&["\"b\"".to_string()])));
        }
        if !r.patches.is_empty() {
            plain.push(format!(
                "patches{e}{}\n",
                self.array(&r.patches.iter().map(|p| self.string(p)).collect::<Vec<_>>())
            ));
        }
        if let Some(w) = r.weight {
            plain.push(format!("weight{e}{w}\n"));
        }
        let source = |(file, sha, unpack): &(Option<String>, String, bool)| -> Vec<String> {
            let mut keys = vec![format!("sha256{e}\"{sha}\"")];
            let url_name = file.clone().unwrap_or_else(|| "x-1.tar.gz".to_string());
            keys.push(format!("urls{e}[\"https://{}.example/{url_name}\"]", self.mirror));
            if let Some(f) = file {
                keys.push(format!("file{e}{}", self.string(f)));
            }
            if !unpack {
                keys.push(format!("unpack{e}false"));
            }
            keys
        };
        let mut tables: Vec<String> = Vec::new();
        if !r.env.is_empty() {
            tables.push(self.table("env", &r.env));
        }
        if !r.phases.is_empty() {
            let phases: BTreeMap<String, String> = r.phases.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            tables.push(self.table("phases", &phases));
        }
        if !r.i686_env.is_empty() {
            tables.push(self.table("target.i686-linux-musl.env", &r.i686_env));
        }
        if !r.sources.is_empty() {
            if self.array_of_tables {
                tables.push(
                    r.sources
                        .iter()
                        .map(|s| format!("[[sources]]\n{}\n", source(s).join("\n")))
                        .collect(),
                );
            } else {
                let items: Vec<String> = r.sources.iter().map(|s| format!("{{ {} }}", source(s).join(", "))).collect();
                plain.push(format!("sources{e}{}\n", self.array(&items)));
            }
        }
        let order = |v: &mut Vec<String>| {
            let mut keyed: Vec<(usize, String)> = v
                .drain(..)
                .enumerate()
                .map(|(i, s)| (self.order.iter().position(|&o| o == i).unwrap_or(i), s))
                .collect();
            keyed.sort_by_key(|(k, _)| *k);
            v.extend(keyed.into_iter().map(|(_, s)| s));
        };
        order(&mut plain);
        // Inline tables are plain keys too.
        if self.inline_tables {
            let (inline, headed): (Vec<String>, Vec<String>) = tables.into_iter().partition(|t| !t.starts_with('['));
            plain.extend(inline);
            tables = headed;
        }
        order(&mut tables);
        let mut out = String::new();
        if self.comments {
            out.push_str("# a recipe, written one way\n\n");
        }
        for p in plain.iter().chain(&tables) {
            out.push_str(p);
            if self.comments {
                out.push_str("# and a comment\n\n");
            }
        }
        out
    }
}

#[test]
fn fuzz_canonical_form_under_formatting() {
    let s = Scratch::new();
    let probes = RefCell::new(ProbeCache::in_memory());
    run("formatting", 300, (valid(), style(), style()), |(recipe, one, two)| {
        let mut forms = Vec::new();
        for style in [one, two] {
            let text = style.write(recipe);
            s.write("graph/a.toml", &text);
            let graph = Graph::load(&s.graph(), &[]).map_err(|e| format!("a valid recipe was refused: {e}\n{text}"))?;
            let key = NodeKey {
                name: "a".into(),
                target: "i686-linux-musl".into(),
            };
            let plan = resolve(&graph, std::slice::from_ref(&key), &mut probes.borrow_mut()).map_err(|e| format!("{e}\n{text}"))?;
            let ix = plan.get(&key).ok_or("no node a")?;
            let node = plan.node(ix);
            let deps: Vec<(String, spy_hash::NodeId)> = node
                .deps
                .iter()
                .map(|&d| (plan.node(d).key.name.clone(), plan.node(d).id))
                .collect();
            forms.push((canonical_form(node, &deps), node.id, text));
        }
        if forms[0].0 != forms[1].0 || forms[0].1 != forms[1].1 {
            return Err(format!(
                "two writings, two canonical forms:\n{}\n---\n{}\n=== {}\n=== {}",
                forms[0].2, forms[1].2, forms[0].0, forms[1].0
            ));
        }
        Ok(true)
    });
}
