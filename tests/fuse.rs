//! The fuse node kind on a fixture graph: a tiny static "interpreter" (a C program), its "stdlib"
//! (.py/.pyc files made by the test) and a static library; the fuse node makes one executable with
//! the stdlib appended as a ZIP, and a manifest.

mod common;

use common::Fixture;
use std::process::Command;

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.fuse_graph();
    f
}

fn id_of(f: &Fixture, node: &str) -> String {
    id_of_args(f, &["show", node])
}

#[test]
fn fuses_an_executable_with_its_stdlib_and_writes_a_manifest() {
    let f = fixture();
    let (out, _) = f.ok(&["realize", "--no-out-link", "fused-x86_64"]);
    let entry = std::path::PathBuf::from(out.trim());
    let bin = entry.join("bin/fused-x86_64");
    // Still the executable: the ZIP after it changes nothing for the kernel.
    let o = Command::new(&bin).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "interp runs");
    // The ZIP: compiled modules and data, packages as directories; no sources, nothing excluded.
    let o = Command::new("/usr/bin/python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(' '.join(z.namelist())); print(z.read('mod.pyc').decode())"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("data.txt mod.pyc pkg/ pkg/__init__.pyc"));
    assert_eq!(lines.next(), Some("compiled mod"));
    // The manifest.
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["release"], "fused-x86_64");
    assert_eq!(m["binary"]["sha256"], common::sha256(&bin).as_str());
    assert_eq!(m["binary"]["stdlib_zip"]["entries"], 4);
    assert_eq!(m["modules"]["missing"]["_tkinter"], "no GUI here");
    let comps = m["components"].as_array().unwrap();
    let comp = |n: &str| comps.iter().find(|c| c["name"] == n).unwrap().clone();
    assert_eq!(comp("interp")["role"], "interpreter");
    assert_eq!(
        (comp("libz")["role"].clone(), comp("libz")["license"].clone()),
        ("linked".into(), "Zlib".into())
    );
    assert_eq!(comp("libz")["static_libraries"], serde_json::json!(["libz.a"]));
    // The binary's licence: its parts', not the build tools'.
    assert_eq!(m["license"], "PSF-2.0 AND Zlib");
    assert_eq!(comp("libz")["id"].as_str().unwrap().len(), 64);
    assert!(m["build_tools"].as_array().unwrap().iter().any(|t| t["name"] == "gcc"));
    // Same inputs, same bytes: a second store at another path gives the same binary.
    let g = fixture();
    let (out2, _) = g.ok(&["realize", "--no-out-link", "fused-x86_64"]);
    let bin2 = std::path::PathBuf::from(out2.trim()).join("bin/fused-x86_64");
    assert_eq!(common::sha256(&bin2), common::sha256(&bin));
}

#[test]
fn a_license_change_below_changes_the_fused_id_only() {
    let f = fixture();
    let (interp, fused) = (id_of(&f, "interp"), id_of(&f, "fused"));
    f.write(
        "graph/libz.toml",
        &common::FUSE_LIBZ.replace("license = \"Zlib\"", "license = \"MIT\""),
    );
    assert_eq!(id_of(&f, "interp"), interp, "a license does not change a build");
    assert_ne!(id_of(&f, "fused"), fused, "the manifest publishes licenses");
}

/// The ZIP's member names, and one member's text, by the host's Python.
fn zip_names(bin: &std::path::Path) -> String {
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, zipfile; print(' '.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        ])
        .arg(bin)
        .output()
        .unwrap();
    common::ok(&o).trim().to_string()
}

#[test]
fn sources_put_each_py_beside_its_pyc_in_another_node() {
    let f = fixture();
    let plain = id_of(&f, "fused");
    // --py-sources: the same as `sources = true` in the [fuse] table, a node of its own.
    let (out, _) = f.ok(&["--py-sources", "realize", "--no-out-link", "fused-x86_64"]);
    let with_flag = id_of_args(&f, &["--py-sources", "show", "fused"]);
    assert_ne!(with_flag, plain, "sources change the output, so the id");
    let entry = std::path::PathBuf::from(out.trim());
    assert_eq!(
        zip_names(&entry.join("bin/fused-x86_64")),
        "data.txt mod.py mod.pyc pkg/ pkg/__init__.py pkg/__init__.pyc"
    );
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["binary"]["stdlib_zip"]["sources"], true);
    f.write("graph/fused.toml", &common::FUSE_FUSED.replace("[fuse]", "[fuse]\nsources = true"));
    assert_eq!(id_of(&f, "fused"), with_flag, "the flag and the recipe key are one setting");
    // Without: no sources, and the manifest says nothing of them (older manifests are unchanged).
    f.write("graph/fused.toml", common::FUSE_FUSED);
    let (out, _) = f.ok(&["realize", "--no-out-link", "fused-x86_64"]);
    let entry = std::path::PathBuf::from(out.trim());
    assert_eq!(zip_names(&entry.join("bin/fused-x86_64")), "data.txt mod.pyc pkg/ pkg/__init__.pyc");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).unwrap()).unwrap();
    assert!(m["binary"]["stdlib_zip"].get("sources").is_none());
}

fn id_of_args(f: &Fixture, args: &[&str]) -> String {
    let (out, _) = f.ok(args);
    out.lines().find_map(|l| l.strip_prefix("id:")).unwrap().trim().to_string()
}

#[test]
fn a_module_without_its_pyc_fails_the_fuse_and_stores_nothing_of_it() {
    let f = fixture();
    f.write(
        "graph/interp.toml",
        &common::FUSE_INTERP.replace("echo data >", "echo '# no pyc' > $out/lib/std/lonely.py; echo data >"),
    );
    let err = f.fails(&["realize", "--no-out-link", "fused-x86_64"]);
    assert!(err.contains("lonely.py has no compiled lonely.pyc"), "{err}");
    assert!(!f.entries().iter().any(|e| e.contains("-fused-")), "{:?}", f.entries());
    // With sources it goes in as it is (CPython's tests keep files that do not compile as data).
    let (out, _) = f.ok(&["--py-sources", "realize", "--no-out-link", "fused-x86_64"]);
    let names = zip_names(&std::path::PathBuf::from(out.trim()).join("bin/fused-x86_64"));
    assert!(
        names.split(' ').any(|n| n == "lonely.py") && !names.contains("lonely.pyc"),
        "{names}"
    );
}

#[test]
fn fuse_tables_are_checked() {
    let f = fixture();
    f.write(
        "graph/fused.toml",
        &common::FUSE_FUSED.replace("[fuse]", "[nothing]").replace("interpreter =", "x ="),
    );
    let err = f.fails(&["list"]);
    assert!(err.contains("fused.toml"), "{err}");
    f.write(
        "graph/fused.toml",
        &common::FUSE_FUSED.replace("interpreter = \"interp\"", "interpreter = \"libz\""),
    );
    let err = f.fails(&["realize", "fused"]);
    assert!(err.contains("`libz` must be one of the dependencies of `fused`"), "{err}");
    f.write(
        "graph/fused.toml",
        &common::FUSE_FUSED.replace("kind = \"fuse\"", "kind = \"build\""),
    );
    let err = f.fails(&["realize", "fused"]);
    assert!(err.contains("has a [fuse] table but kind `build`"), "{err}");
    f.write("graph/fused.toml", &format!("{}\n[phases]\nbuild = \"true\"\n", common::FUSE_FUSED));
    let err = f.fails(&["realize", "fused"]);
    assert!(err.contains("takes no sources and no phases"), "{err}");
}

/// `solid-zstd`: compiled modules not in `hot` go into zstd blocks after the other members
/// (spy-fuse's zipout.rs), data files are deflated; zipfile lists every member and the block
/// holds the module's bytes. The compression is part of the id and named in the manifest.
#[test]
fn solid_zstd_writes_unlisted_modules_into_zstd_blocks() {
    let f = fixture();
    let deflated = common::FUSE_FUSED.replace("[fuse]", "[fuse]\nhot = [\"pkg\"]\ncompression = \"deflated\"");
    f.write("graph/fused.toml", &deflated);
    let plain = id_of(&f, "fused");
    f.write("graph/fused.toml", &deflated.replace("\"deflated\"", "\"solid-zstd\""));
    let solid = id_of(&f, "fused");
    assert_ne!(solid, plain, "the compression changes the bytes, so the id");
    f.write(
        "graph/fused.toml",
        &deflated.replace("\"deflated\"", "\"solid-zstd\"\ndictionary = true"),
    );
    assert_ne!(id_of(&f, "fused"), solid, "a dictionary changes the bytes, so the id");
    f.write("graph/fused.toml", &deflated.replace("\"deflated\"", "\"solid-zstd\""));
    let (out, _) = f.ok(&["realize", "--no-out-link", "fused-x86_64"]);
    let entry = std::path::PathBuf::from(out.trim());
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import subprocess, sys, zipfile; z = zipfile.ZipFile(sys.argv[1])\n\
             print(' '.join('%s:%d' % (i.filename, i.compress_type) for i in z.infolist() if not i.is_dir()))\n\
             block = z.getinfo('.spy-solid/0000.zst'); z.fp.seek(block.header_offset + 30 + len(block.filename))\n\
             frame = z.fp.read(block.compress_size)\n\
             print(subprocess.run(['zstd', '-dc'], input=frame, capture_output=True, check=True).stdout.decode().strip())",
        ])
        .arg(entry.join("bin/fused-x86_64"))
        .output()
        .unwrap();
    // 0: stored, 8: deflated, 93: zstd, 0x7053 (28755): in a solid block.
    assert_eq!(
        common::ok(&o).trim(),
        "data.txt:8 pkg/__init__.pyc:0 .spy-solid/0000.zst:93 mod.pyc:28755\ncompiled mod"
    );
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["binary"]["stdlib_zip"]["compression"], "solid-zstd");
    assert_eq!(m["binary"]["stdlib_zip"]["hot"]["members"], 1);
    assert_eq!(m["binary"]["stdlib_zip"]["hot"]["written"], "stored");

    // `solid-lz4-zstd`: the hot module goes first, into an LZ4 block (method 0x704c, 28748).
    f.write("graph/fused.toml", &deflated.replace("\"deflated\"", "\"solid-lz4-zstd\""));
    let (out, _) = f.ok(&["realize", "--no-out-link", "fused-x86_64"]);
    let entry = std::path::PathBuf::from(out.trim());
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1])\n\
             print(' '.join('%s:%d' % (i.filename, i.compress_type) for i in z.infolist() if not i.is_dir()))",
        ])
        .arg(entry.join("bin/fused-x86_64"))
        .output()
        .unwrap();
    assert_eq!(
        common::ok(&o).trim(),
        "data.txt:8 .spy-solid/0000.lz4:28748 pkg/__init__.pyc:28755 .spy-solid/0001.zst:93 mod.pyc:28755"
    );
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["binary"]["stdlib_zip"]["compression"], "solid-lz4-zstd");
    assert_eq!(m["binary"]["stdlib_zip"]["hot"]["written"], "LZ4 blocks");
}

/// `hot` in a deflated ZIP: the listed paths are written uncompressed, the rest deflated; the
/// setting is part of the id, and the manifest lists it with the count of members it took.
#[test]
fn hot_members_skip_deflate_in_a_deflated_zip() {
    let f = fixture();
    let deflated = common::FUSE_FUSED.replace("[fuse]", "[fuse]\ncompression = \"deflated\"");
    f.write("graph/fused.toml", &deflated);
    let plain = id_of(&f, "fused");
    f.write(
        "graph/fused.toml",
        &deflated.replace("[fuse]", "[fuse]\nhot = [\"pkg\", \"data.txt\", \"not-there.pyc\"]"),
    );
    assert_ne!(id_of(&f, "fused"), plain, "what is stored changes the bytes, so the id");
    let (out, _) = f.ok(&["realize", "--no-out-link", "fused-x86_64"]);
    let entry = std::path::PathBuf::from(out.trim());
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None\n\
             print(' '.join('%s:%d' % (i.filename, i.compress_type) for i in z.infolist() if not i.is_dir()))",
        ])
        .arg(entry.join("bin/fused-x86_64"))
        .output()
        .unwrap();
    // 0: stored, 8: deflated.
    assert_eq!(common::ok(&o).trim(), "data.txt:0 mod.pyc:8 pkg/__init__.pyc:0");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).unwrap()).unwrap();
    let hot = &m["binary"]["stdlib_zip"]["hot"];
    assert_eq!(hot["members"], 2, "{hot}");
    assert_eq!(hot["paths"], serde_json::json!(["pkg", "data.txt", "not-there.pyc"]));
    // A path that is not a plain relative path is a recipe error.
    f.write(
        "graph/fused.toml",
        &deflated.replace("[fuse]", "[fuse]\nhot = [\"../../etc/passwd\"]"),
    );
    let e = f.fails(&["show", "fused"]);
    assert!(e.contains("fused.toml") && e.contains("hot"), "{e}");
}
