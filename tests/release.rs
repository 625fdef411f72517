//! Reproducibility and releases on fixture graphs: `spy check` rebuilds in a fresh store at another
//! path and compares, and names what differs (a node that writes the time is caught); `spy release`
//! writes binaries, manifests, SHA256SUMS and its signature.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Fixture;

#[test]
fn check_finds_deterministic_builds_identical() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    let (_, err) = f.ok(&["check", "hello"]);
    assert!(err.contains("1 node(s) rebuilt, all bit-for-bit identical"), "{err}");
    let (_, err) = f.ok(&["check", "--closure", "hello"]);
    assert!(err.contains("2 node(s) rebuilt, all bit-for-bit identical"), "{err}");
    // The fresh store is gone afterwards; the main store still has hello.
    assert!(std::fs::read_dir(f.store().join(".spy/check")).unwrap().next().is_none());
    f.ok(&["verify", "hello"]);
}

#[test]
fn check_names_a_node_that_writes_the_time_and_its_file() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    f.write(
        "graph/clock.toml",
        "name = \"clock\"\nversion = \"1\"\ndeps = [\"hello\"]\n[phases]\ninstall = \"\"\"\nmkdir -p $out/share\necho stable > $out/share/same.txt\ndate +%s%N > $out/share/built-at.txt\n\"\"\"\n",
    );
    let o = f.spy(&["check", "--closure", "clock"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "a difference fails the check\n{out}\n{err}");
    assert!(out.contains("DIFFERS clock@x86_64-linux-musl"), "{out}");
    assert!(out.contains("file share/built-at.txt"), "{out}");
    assert!(!out.contains("same.txt"), "only differing files are named:\n{out}");
    assert!(!out.contains("DIFFERS hello"), "{out}");
    assert!(err.contains("1 of 3 node(s) differ when rebuilt: clock@x86_64-linux-musl"), "{err}");
    // The rebuilt output is kept for inspection, at the path given.
    let kept = err
        .lines()
        .find_map(|l| l.strip_prefix("spy: the rebuilt outputs are kept in "))
        .unwrap();
    let kept = PathBuf::from(kept.split(" (").next().unwrap());
    assert!(kept.join("store").is_dir());
    if Command::new("diffoscope").arg("--version").output().is_ok() {
        assert!(out.contains("diffoscope:"), "{out}");
    }
}

#[test]
fn release_writes_binaries_manifests_sums_and_signature() {
    let f = Fixture::new();
    f.fuse_graph();
    let (public, _) = f.ok(&["key", "generate", "release-1", "--out-dir", "keys"]);
    let out = f.root().join("dist");
    f.ok(&["release", "fused", "--out", "dist", "--sign", "keys/release-1.secret"]);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "SHA256SUMS.sig",
            "fused-x86_64",
            "fused-x86_64.cdx.json",
            "fused-x86_64.manifest.json",
            "fused-x86_64.tar.gz",
            "fused-x86_64.tar.zst"
        ]
    );
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 5, "{sums}");
    // The SBOM's subject is the binary, by its sha256 (tests/reproducible.rs validates a real one).
    let bom: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("fused-x86_64.cdx.json")).unwrap()).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["metadata"]["component"]["name"], "fused-x86_64");
    common::sha256sums_check(&out);
    // The manifest's sha256 is the binary's.
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("fused-x86_64.manifest.json")).unwrap()).unwrap();
    assert!(sums.contains(manifest["binary"]["sha256"].as_str().unwrap()), "{sums}\n{manifest}");
    assert_eq!(bom["metadata"]["component"]["hashes"][0]["content"], manifest["binary"]["sha256"]);
    let (ok, _) = f.ok(&["key", "verify", "--key", public.trim(), "dist/SHA256SUMS"]);
    assert!(ok.contains("good signature by release-1"), "{ok}");
    std::fs::write(out.join("SHA256SUMS"), sums.replace("fused-x86_64\n", "fused-x86_64-2\n")).unwrap();
    let err = f.fails(&["key", "verify", "--key", public.trim(), "dist/SHA256SUMS"]);
    assert!(err.contains("BAD signature"), "{err}");
    // Only release (fuse) nodes are releases.
    let err = f.fails(&["release", "interp", "--out", "dist"]);
    assert!(err.contains("is not a release"), "{err}");
}
