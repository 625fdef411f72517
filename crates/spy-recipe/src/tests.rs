use super::*;

pub(crate) fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

pub(crate) const CONFIG: &str =
    "format = 1\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n[targets.i686-linux-musl]\nshort = \"i686\"\n";

#[test]
fn loads_merges_targets_and_overlays() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("graph");
    write(&g, "spy.toml", CONFIG);
    write(
        &g,
        "libs/a.toml",
        "name = \"a\"\nversion = \"1\"\npatches = [\"p.patch\"]\n[env]\nX = \"1\"\nY = \"y\"\n[target.i686-linux-musl.env]\nX = \"32\"\n",
    );
    write(&g, "b.toml", "name = \"b\"\nversion = \"2\"\ndeps = [\"a\"]\n");
    write(
        d.path(),
        "overlays/o.toml",
        "[nodes.a]\nversion = \"1.1\"\n[nodes.a.env]\nY = \"over\"\n[nodes.c]\nversion = \"3\"\n",
    );
    let graph = Graph::load(&g, &[d.path().join("overlays/o.toml")]).unwrap();
    let a64 = graph.recipe_for("a", "x86_64-linux-musl").unwrap();
    assert_eq!(a64.version, "1.1");
    assert_eq!(a64.env["X"], "1");
    assert_eq!(a64.env["Y"], "over");
    assert_eq!(a64.patches, vec![g.join("libs/p.patch")]);
    let a32 = graph.recipe_for("a", "i686-linux-musl").unwrap();
    assert_eq!(a32.env["X"], "32");
    assert_eq!(graph.recipe_for("c", "i686-linux-musl").unwrap().version, "3");
}

#[test]
fn unknown_key_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "spy.toml", CONFIG);
    write(d.path(), "a.toml", "name = \"a\"\nversion = \"1\"\n\nconfgure = \"x\"\n");
    let e = Graph::load(d.path(), &[]).unwrap_err().to_string();
    assert!(e.contains("a.toml:4"), "{e}");
    assert!(e.contains("confgure"), "{e}");
}

#[test]
fn unknown_phase_and_target_are_errors() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "spy.toml", CONFIG);
    write(d.path(), "a.toml", "name = \"a\"\nversion = \"1\"\n[phases]\ncompile = \"make\"\n");
    let e = Graph::load(d.path(), &[]).unwrap_err().to_string();
    assert!(e.contains("a.toml:4") && e.contains("compile"), "{e}");
    write(
        d.path(),
        "a.toml",
        "name = \"a\"\nversion = \"1\"\n[target.sparc-linux.env]\nX = \"1\"\n",
    );
    let e = Graph::load(d.path(), &[]).unwrap_err().to_string();
    assert!(e.contains("a.toml:3") && e.contains("sparc-linux"), "{e}");
}

#[test]
fn missing_dep_names_file_key_and_line() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "spy.toml", CONFIG);
    write(d.path(), "a.toml", "name = \"a\"\nversion = \"1\"\ndeps = [\n  \"zlib\",\n]\n");
    let e = Graph::load(d.path(), &[]).unwrap_err().to_string();
    assert!(e.contains("a.toml:4") && e.contains("`deps`") && e.contains("zlib"), "{e}");
}

#[test]
fn duplicate_node_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "spy.toml", CONFIG);
    write(d.path(), "a.toml", "name = \"a\"\nversion = \"1\"\n");
    write(d.path(), "x/a.toml", "name = \"a\"\nversion = \"2\"\n");
    assert!(matches!(Graph::load(d.path(), &[]), Err(RecipeError::Duplicate { .. })));
}

#[test]
fn variants_make_one_node_each_and_overlays_extend_deps_and_fuse() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("graph");
    write(&g, "spy.toml", CONFIG);
    write(&g, "base.toml", "name = \"base\"\nversion = \"1\"\n");
    write(&g, "pkg.toml", "name = \"pkg\"\nversion = \"1\"\n");
    write(
        &g,
        "rel.toml",
        "kind = \"fuse\"\nversion = \"9\"\nfiles = [\"h.sh\"]\n[fuse]\nexecutable = \"bin/x\"\nstdlib = \"lib\"\nflavor = \"plain\"\n\
         [variants.one]\ndeps = [\"base\"]\nfuse = { interpreter = \"base\" }\n\
         [variants.two]\nversion = \"10\"\ndeps = [\"base\"]\nfuse = { interpreter = \"base\", flavor = \"co\" }\n",
    );
    write(
        d.path(),
        "o.toml",
        "[nodes.two]\nextra_deps = [\"pkg\"]\n[nodes.two.fuse]\nexclude = [\"test\"]\n",
    );
    let graph = Graph::load(&g, &[d.path().join("o.toml")]).unwrap();
    let one = graph.recipe_for("one", "x86_64-linux-musl").unwrap();
    let two = graph.recipe_for("two", "x86_64-linux-musl").unwrap();
    assert_eq!((one.version.as_str(), two.version.as_str()), ("9", "10"));
    assert_eq!(one.files, vec![g.join("h.sh")]);
    assert_eq!(one.deps, ["base"]);
    assert_eq!(two.deps, ["base", "pkg"]);
    let (f1, f2) = (one.fuse.unwrap(), two.fuse.unwrap());
    assert_eq!((f1.flavor.as_str(), f1.executable.as_str()), ("plain", "bin/x"));
    assert_eq!((f2.flavor.as_str(), f2.exclude.clone()), ("co", vec!["test".to_string()]));
    // A variant without a required fuse key is an error naming it.
    write(
        &g,
        "rel.toml",
        "kind = \"fuse\"\nversion = \"9\"\n[variants.one]\ndeps = [\"base\"]\nfuse = { interpreter = \"base\" }\n",
    );
    let graph = Graph::load(&g, &[]).unwrap();
    let err = graph.recipe_for("one", "x86_64-linux-musl").unwrap_err().to_string();
    assert!(err.contains("fuse.executable"), "{err}");
    // `name` beside variants is refused.
    write(&g, "rel.toml", "name = \"x\"\nversion = \"9\"\n[variants.one]\n");
    let err = Graph::load(&g, &[]).unwrap_err().to_string();
    assert!(err.contains("variants"), "{err}");
}

#[test]
fn explicit_targets_and_families() {
    let d = tempfile::tempdir().unwrap();
    let config = format!(
        "{CONFIG}[targets.x86_64-darwin]\nshort = \"darwin-x86_64\"\nexplicit = true\nfamily = \"darwin\"\n\
         [targets.aarch64-darwin]\nshort = \"darwin-arm64\"\nexplicit = true\nfamily = \"darwin\"\n"
    );
    write(d.path(), "spy.toml", &config);
    write(d.path(), "linux-only.toml", "name = \"l\"\nversion = \"1\"\n");
    write(
        d.path(),
        "both.toml",
        "name = \"b\"\nversion = \"1\"\ndeps = [\"l\"]\ntargets = [\"x86_64-linux-musl\", \"darwin\"]\n[env]\nX = \"base\"\n\
         [target.darwin]\ndeps = []\n[target.darwin.env]\nX = \"darwin\"\nY = \"d\"\n[target.aarch64-darwin.env]\nX = \"arm\"\n",
    );
    let g = Graph::load(d.path(), &[]).unwrap();
    let (l, b) = (&g.nodes["l"], &g.nodes["b"]);
    // A recipe without `targets` exists for the ordinary targets, not for explicit ones.
    assert!(l.has_target("i686-linux-musl", &g.config) && !l.has_target("x86_64-darwin", &g.config));
    // A family in `targets` covers each of its targets.
    assert!(b.has_target("x86_64-darwin", &g.config) && b.has_target("aarch64-darwin", &g.config));
    assert!(!b.has_target("i686-linux-musl", &g.config));
    // The family table applies first, the target's own table after it.
    let x = g.recipe_for("b", "x86_64-darwin").unwrap();
    assert_eq!((x.env["X"].as_str(), x.env["Y"].as_str()), ("darwin", "d"));
    assert!(x.deps.is_empty());
    let a = g.recipe_for("b", "aarch64-darwin").unwrap();
    assert_eq!((a.env["X"].as_str(), a.env["Y"].as_str()), ("arm", "d"));
    assert_eq!(g.recipe_for("b", "x86_64-linux-musl").unwrap().deps, vec!["l".to_string()]);
    assert!(g.nodes["b"].recipe.for_target_deps("x86_64-darwin", Some("darwin")).is_empty());
    // An unknown family is an unknown target.
    write(d.path(), "bad.toml", "name = \"z\"\nversion = \"1\"\ntargets = [\"windows\"]\n");
    assert!(Graph::load(d.path(), &[]).unwrap_err().to_string().contains("windows"));
}

#[test]
fn a_target_table_changes_fuse_keys_for_its_target_only() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("graph");
    write(&g, "spy.toml", CONFIG);
    write(&g, "a.toml", "name = \"a\"\nversion = \"1\"\n");
    write(&g, "b.toml", "name = \"b\"\nversion = \"1\"\n");
    write(
        &g,
        "rel.toml",
        "name = \"rel\"\nkind = \"fuse\"\nversion = \"1\"\ndeps = [\"a\"]\n\
         [fuse]\ninterpreter = \"a\"\nexecutable = \"bin/x\"\nstdlib = \"lib\"\nflavor = \"plain\"\n\
         [target.i686-linux-musl]\ndeps = [\"b\"]\nfuse = { interpreter = \"b\" }\n",
    );
    let graph = Graph::load(&g, &[]).unwrap();
    let x = graph.recipe_for("rel", "x86_64-linux-musl").unwrap();
    let i = graph.recipe_for("rel", "i686-linux-musl").unwrap();
    let (fx, fi) = (x.fuse.unwrap(), i.fuse.unwrap());
    assert_eq!((fx.interpreter.as_str(), fi.interpreter.as_str()), ("a", "b"));
    // The other keys are the recipe's.
    assert_eq!((fi.executable.as_str(), fi.flavor.as_str()), ("bin/x", "plain"));
    assert_eq!(i.deps, ["b"]);
}

#[test]
fn path_values_are_refused_with_file_line_and_key() {
    let sha = "0".repeat(64);
    for (body, line, key) in [
        ("name = \"a\"\nversion = \"1/../../victim\"\n".to_string(), 2, "version"),
        ("version = \"1\"\nname = \"a/b\"\n".to_string(), 2, "name"),
        ("name = \"a\"\nversion = \"1\"\ndeps = [\n  \"../x\",\n]\n".to_string(), 4, "deps"),
        (
            format!("name = \"a\"\nversion = \"1\"\n[[sources]]\nsha256 = \"{sha}\"\nfile = \"../../x.tar.gz\"\n"),
            5,
            "sources.file",
        ),
        (
            format!("name = \"a\"\nversion = \"1\"\n[[sources]]\nsha256 = \"{sha}\"\nvar = \"a-b\"\n"),
            5,
            "sources.var",
        ),
        (
            format!("name = \"a\"\nversion = \"1\"\nsources = [{{ sha256 = \"{sha}\", urls = [\"-o/x\"] }}]\n"),
            3,
            "sources.urls",
        ),
        (
            format!("name = \"a\"\nversion = \"1\"\n[[sources]]\nsha256 = \"{sha}\"\ndebian = \"-oDir=/\"\n"),
            5,
            "sources.debian",
        ),
        (
            "name = \"a\"\nversion = \"1\"\n[[sources]]\npypi = \"--index-url=x==1\"\n".to_string(),
            4,
            "sources.pypi",
        ),
        (
            format!(
                "name = \"a\"\nversion = \"1\"\n[[sources]]\ngit = {{ url = \"--upload-pack=touch /tmp/x\", commit = \"{}\" }}\n",
                "a".repeat(40)
            ),
            4,
            "sources.git.url",
        ),
        (
            "name = \"a\"\nversion = \"1\"\npatches = [\"../../etc/passwd\"]\n".to_string(),
            3,
            "patches",
        ),
        ("name = \"a\"\nversion = \"1\"\nfiles = [\"/etc/shadow\"]\n".to_string(), 3, "files"),
        (
            "name = \"a\"\nversion = \"1\"\nkind = \"bootstrap\"\ntools = [\"../bin/sh\"]\n".to_string(),
            4,
            "tools",
        ),
        (
            "name = \"a\"\nversion = \"1\"\n[fuse]\nexecutable = \"../../etc/shadow\"\n".to_string(),
            4,
            "fuse.executable",
        ),
        (
            "name = \"a\"\nversion = \"1\"\n[fuse]\nstdlib = \"/\"\n".to_string(),
            4,
            "fuse.stdlib",
        ),
        (
            "name = \"a\"\nversion = \"1\"\n[fuse]\nexclude = [\"a/../..\"]\n".to_string(),
            4,
            "fuse.exclude",
        ),
        (
            "name = \"a\"\nversion = \"1\"\n[target.x86_64-linux-musl]\nversion = \"..\"\n".to_string(),
            4,
            "target.x86_64-linux-musl.version",
        ),
        ("version = \"1\"\n[variants.\"a/b\"]\n".to_string(), 2, "variants"),
    ] {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "spy.toml", CONFIG);
        write(d.path(), "a.toml", &body);
        let e = Graph::load(d.path(), &[]).unwrap_err().to_string();
        assert!(e.contains(&format!("a.toml:{line}: key `{key}`: ")), "{key}: {e}");
        assert!(e.contains("is not a valid"), "{e}");
    }
}

#[test]
fn graph_config_and_overlay_names_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("graph");
    for (config, key) in [
        ("format = 1\n[targets.\"../x\"]\nshort = \"x\"\n", "targets"),
        ("format = 1\n[targets.x]\nshort = \"x/y\"\n", "targets.x.short"),
        (
            "format = 1\nimplicit_deps = [\"/bin\"]\n[targets.x]\nshort = \"x\"\n",
            "implicit_deps",
        ),
        (
            "format = 1\noverlays = [\"../../o.toml\"]\n[targets.x]\nshort = \"x\"\n",
            "overlays",
        ),
    ] {
        write(&g, "spy.toml", config);
        let e = Graph::load(&g, &[]).unwrap_err().to_string();
        assert!(e.contains("spy.toml:") && e.contains(&format!("key `{key}`")), "{e}");
    }
    write(&g, "spy.toml", CONFIG);
    write(&g, "a.toml", "name = \"a\"\nversion = \"1\"\n");
    write(d.path(), "o.toml", "[nodes.\"a/../b\"]\nversion = \"1\"\n");
    let e = Graph::load(&g, &[d.path().join("o.toml")]).unwrap_err().to_string();
    assert!(e.contains("o.toml:1") && e.contains("`a/../b` is not a valid node name"), "{e}");
}

#[test]
fn an_overlay_table_for_a_missing_node_is_an_error_unless_it_adds_one() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("graph");
    write(&g, "spy.toml", CONFIG);
    write(&g, "libgreet.toml", "name = \"libgreet\"\nversion = \"1\"\n");
    write(d.path(), "typo.toml", "# flags\n[nodes.libgret.env]\nCFLAGS = \"-O3\"\n");
    let e = Graph::load(&g, &[d.path().join("typo.toml")]).unwrap_err();
    assert!(matches!(e, RecipeError::UnknownOverlayNode { .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains("typo.toml:2") && e.contains("`libgret`"), "{e}");
    write(d.path(), "new.toml", "[nodes.newtool]\nversion = \"2\"\n");
    let graph = Graph::load(&g, &[d.path().join("new.toml")]).unwrap();
    assert_eq!(graph.recipe_for("newtool", "x86_64-linux-musl").unwrap().version, "2");
}

#[test]
fn list_edits_in_target_tables_families_and_overlays_add_up() {
    let d = tempfile::tempdir().unwrap();
    let config = format!(
        "{CONFIG}[targets.x86_64-darwin]\nshort = \"darwin-x86_64\"\nexplicit = true\nfamily = \"darwin\"\n\
         [targets.aarch64-darwin]\nshort = \"darwin-arm64\"\nexplicit = true\nfamily = \"darwin\"\n"
    );
    let g = d.path().join("graph");
    write(&g, "spy.toml", &config);
    for n in ["t", "u", "v", "w"] {
        write(
            &g,
            &format!("{n}.toml"),
            &format!("name = \"{n}\"\nversion = \"1\"\ntargets = [\"x86_64-linux-musl\", \"darwin\"]\n"),
        );
    }
    // A family table adds to the lists, the target's own table adds after it.
    write(
        &g,
        "p.toml",
        "name = \"p\"\nversion = \"1\"\ndeps = [\"t\", \"u\"]\npatches = [\"a.patch\"]\ntargets = [\"x86_64-linux-musl\", \"darwin\"]\n\
         [target.darwin]\nextra_deps = [\"v\"]\nextra_patches = [\"cross.patch\"]\n\
         [target.aarch64-darwin]\nextra_deps = [\"w\", \"t\"]\n",
    );
    // A bootstrap node loses tools per target without restating the list.
    write(
        &g,
        "s.toml",
        "name = \"s\"\nversion = \"1\"\nkind = \"bootstrap\"\ntools = [\"sh\", \"gcc\", \"cc\", \"make\"]\n\
         [target.i686-linux-musl]\nremove_tools = [\"gcc\", \"cc\"]\n",
    );
    // A family of variants: its own extra_deps reach every variant after the variant's own keys.
    write(
        &g,
        "fam.toml",
        "deps = [\"t\"]\nextra_deps = [\"u\"]\n[variants.f1]\nversion = \"1\"\n[variants.f2]\nversion = \"2\"\ndeps = [\"v\"]\n\
         [variants.f3]\nversion = \"3\"\nextra_deps = [\"w\"]\n",
    );
    write(
        d.path(),
        "o.toml",
        "[nodes.p.target.darwin]\nextra_patches = [\"more.patch\"]\n[nodes.p]\nextra_patches = [\"all.patch\"]\n",
    );
    let graph = Graph::load(&g, &[d.path().join("o.toml")]).unwrap();
    let names = |v: &[NodeName]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let linux = graph.recipe_for("p", "x86_64-linux-musl").unwrap();
    assert_eq!(names(&linux.deps), ["t", "u"]);
    assert_eq!(linux.patches, [g.join("a.patch"), d.path().join("all.patch")]);
    let x = graph.recipe_for("p", "x86_64-darwin").unwrap();
    assert_eq!(names(&x.deps), ["t", "u", "v"]);
    assert_eq!(
        x.patches,
        [
            g.join("a.patch"),
            d.path().join("all.patch"),
            g.join("cross.patch"),
            d.path().join("more.patch")
        ]
    );
    let arm = graph.recipe_for("p", "aarch64-darwin").unwrap();
    assert_eq!(names(&arm.deps), ["t", "u", "v", "w"]);
    // The planner's dependency list is the merged recipe's.
    for t in ["x86_64-linux-musl", "x86_64-darwin", "aarch64-darwin"] {
        let deps = graph.nodes["p"].recipe.for_target_deps(t, graph.config.family(t));
        assert_eq!(names(&deps), names(&graph.recipe_for("p", t).unwrap().deps), "{t}");
    }
    let tools = |t: &str| {
        graph
            .recipe_for("s", t)
            .unwrap()
            .tools
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(tools("x86_64-linux-musl"), ["sh", "gcc", "cc", "make"]);
    assert_eq!(tools("i686-linux-musl"), ["sh", "make"]);
    let deps = |n: &str| names(&graph.recipe_for(n, "x86_64-linux-musl").unwrap().deps);
    assert_eq!(deps("f1"), ["t", "u"]);
    assert_eq!(deps("f2"), ["v", "u"]);
    assert_eq!(deps("f3"), ["t", "w", "u"]);
    // An edit naming a node the graph lacks is refused like a dependency.
    write(
        &g,
        "bad.toml",
        "name = \"bad\"\nversion = \"1\"\n[target.i686-linux-musl]\nextra_deps = [\"nosuch\"]\n",
    );
    let err = Graph::load(&g, &[]).unwrap_err().to_string();
    assert!(err.contains("nosuch") && err.contains("extra_deps"), "{err}");
}

#[test]
fn nodes_pinning_a_sha256_are_found_in_any_target() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("graph");
    let (x, y) = ("a".repeat(64), "b".repeat(64));
    write(&g, "spy.toml", CONFIG);
    write(
        &g,
        "a.toml",
        &format!("name = \"a\"\nversion = \"1\"\n[[sources]]\nsha256 = \"{x}\"\n"),
    );
    write(
        &g,
        "b.toml",
        &format!("name = \"b\"\nversion = \"1\"\n[[target.i686-linux-musl.sources]]\nsha256 = \"{y}\"\n"),
    );
    let graph = Graph::load(&g, &[]).unwrap();
    assert_eq!(graph.nodes_pinning(&x), ["a"]);
    assert_eq!(graph.nodes_pinning(&y), ["b"]);
    assert!(graph.nodes_pinning(&"c".repeat(64)).is_empty());
}

#[test]
fn the_graph_is_found_from_any_subdirectory_and_its_store_beside_it() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "graph/spy.toml", "format = 1\n");
    std::fs::create_dir_all(d.path().join("a/b")).unwrap();
    assert_eq!(Graph::discover(&d.path().join("a/b")), Some(d.path().join("graph")));
    assert_eq!(Graph::discover(d.path()), Some(d.path().join("graph")));
    // A `graph/` directory without spy.toml is not a graph.
    let e = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(e.path().join("graph")).unwrap();
    assert_eq!(Graph::discover(e.path()), None);
    assert_eq!(Graph::default_store_dir(&d.path().join("graph")), d.path().join("store"));
}

#[test]
fn an_overlay_swaps_a_dependency_with_remove_deps_and_extra_deps() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("graph");
    write(&g, "spy.toml", CONFIG);
    for lib in ["readline", "libedit", "zlib"] {
        write(&g, &format!("{lib}.toml"), &format!("name = \"{lib}\"\nversion = \"1\"\n"));
    }
    write(
        &g,
        "py.toml",
        "name = \"py\"\nversion = \"1\"\ndeps = [\"zlib\", \"readline\"]\n[target.x86_64-linux-musl]\nextra_deps = [\"readline\"]\n",
    );
    write(
        d.path(),
        "edit.toml",
        "[nodes.py]\nremove_deps = [\"readline\"]\nextra_deps = [\"libedit\"]\n",
    );
    let graph = Graph::load(&g, &[d.path().join("edit.toml")]).unwrap();
    let py = graph.recipe_for("py", "x86_64-linux-musl").unwrap();
    assert_eq!(py.deps, ["zlib", "libedit"], "the overlay's removal reaches the target's list too");
    assert_eq!(
        graph.nodes["py"].recipe.for_target_deps("x86_64-linux-musl", None).to_vec(),
        ["zlib", "libedit"]
    );
    // A later overlay can take back what an earlier one added.
    write(
        d.path(),
        "back.toml",
        "[nodes.py]\nremove_deps = [\"libedit\"]\nextra_deps = [\"readline\"]\n",
    );
    let graph = Graph::load(&g, &[d.path().join("edit.toml"), d.path().join("back.toml")]).unwrap();
    assert_eq!(graph.recipe_for("py", "x86_64-linux-musl").unwrap().deps, ["zlib", "readline"]);
}

#[test]
fn an_overlays_target_table_adds_back_what_its_top_level_removed() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("graph");
    write(&g, "spy.toml", CONFIG);
    for lib in ["readline", "libedit"] {
        write(&g, &format!("{lib}.toml"), &format!("name = \"{lib}\"\nversion = \"1\"\n"));
    }
    write(&g, "py.toml", "name = \"py\"\nversion = \"1\"\ndeps = [\"readline\"]\n");
    write(
        d.path(),
        "edit.toml",
        "[nodes.py]\nremove_deps = [\"readline\"]\nextra_deps = [\"libedit\"]\n\
         [nodes.py.target.i686-linux-musl]\nremove_deps = [\"libedit\"]\nextra_deps = [\"readline\"]\n",
    );
    let graph = Graph::load(&g, &[d.path().join("edit.toml")]).unwrap();
    assert_eq!(graph.recipe_for("py", "x86_64-linux-musl").unwrap().deps, ["libedit"]);
    assert_eq!(graph.recipe_for("py", "i686-linux-musl").unwrap().deps, ["readline"]);
    assert_eq!(
        graph.nodes["py"].recipe.for_target_deps("i686-linux-musl", None).to_vec(),
        ["readline"]
    );
}

/// The byte-wise relative path of a walked file is `Path::strip_prefix`'s, however the graph
/// directory is spelt; a path outside it is none.
#[test]
fn relative_paths_are_strip_prefixs() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    fn expected<'a>(dir: &Path, f: &'a Path) -> Option<&'a str> {
        f.strip_prefix(dir).ok().and_then(|r| r.to_str())
    }
    for dir in ["g", "g/", "./g", "/tmp/x/g", ".", "/", "g//", "g/.", "a.b/g"] {
        let dir = Path::new(dir);
        for name in ["a.toml", "libs/b.toml", "x/y/z.toml", ".hidden.toml", "é.toml"] {
            let f = dir.join(name);
            assert_eq!(rel_path(dir, &f), expected(dir, &f), "{} {name}", dir.display());
            assert!(rel_path(dir, &f).is_some());
        }
        let outside = Path::new("gs/x.toml");
        assert_eq!(rel_path(dir, outside), expected(dir, outside), "{}", dir.display());
    }
    let not_utf8 = Path::new("g").join(OsStr::from_bytes(b"\xff.toml"));
    assert_eq!(rel_path(Path::new("g"), &not_utf8), None);
}
