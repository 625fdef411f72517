//! The example overlays of the repository change exactly what they should: the OpenSSL bump gives
//! new ids to openssl and to every node whose closure holds it, and to nothing else; the psutil
//! overlay adds its package nodes to the flavors without touching CPython or the libraries.
//! (No build: ids are computed from the graph.)

mod common;

use std::path::PathBuf;

fn spy(args: &[&str]) -> (bool, String) {
    let o = common::spy_on_repo(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("overlay-ids-store"), args);
    (o.status.success(), String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn path(node: &str, overlay: Option<&str>) -> String {
    let mut args = vec!["path"];
    if let Some(o) = overlay {
        args.extend(["--overlay", o]);
    }
    args.push(node);
    let (ok, out) = spy(&args);
    assert!(ok, "spy path {node} failed");
    out
}

fn x86_64_nodes(overlay: Option<&str>) -> Vec<String> {
    let mut args = vec!["list", "--target", "x86_64-linux-musl"];
    if let Some(o) = overlay {
        args.extend(["--overlay", o]);
    }
    let (ok, out) = spy(&args);
    assert!(ok);
    out.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
}

#[test]
fn openssl_bump_renews_exactly_its_dependents() {
    let overlay = "overlays/openssl-3.0.toml";
    let nodes = x86_64_nodes(None);
    assert!(nodes.len() > 30, "{nodes:?}");
    let mut changed = 0;
    for n in &nodes {
        let depends = n == "openssl-x86_64" || spy(&["why-depends", n, "openssl-x86_64"]).0;
        let renewed = path(n, None) != path(n, Some(overlay));
        assert_eq!(renewed, depends, "{n}: depends on openssl = {depends}, new id = {renewed}");
        changed += renewed as usize;
    }
    // The CPythons, the packages, the flavors and releases, and openssl itself; not the rest.
    assert!(changed >= 10 && changed < nodes.len() - 10, "{changed} of {}", nodes.len());
    assert!(path("openssl-x86_64", Some(overlay)).ends_with("-openssl-3.0.22"));
}

#[test]
fn psutil_overlay_adds_packages_and_keeps_cpython() {
    let overlay = "overlays/psutil.toml";
    let with = x86_64_nodes(Some(overlay));
    for n in ["psutil-py3.11-x86_64", "psutil-py2.7-x86_64"] {
        assert!(with.iter().any(|w| w == n), "{n} missing");
    }
    for kept in ["cpython3.11-x86_64", "cpython2.7-x86_64", "openssl-x86_64", "greenlet-py2.7-x86_64"] {
        assert_eq!(path(kept, None), path(kept, Some(overlay)), "{kept} changed");
    }
    for renewed in [
        "python3.11-interp-x86_64",
        "python3.11-x86_64",
        "pythonco2.7-x86_64",
        "python2.7-x86_64",
    ] {
        assert_ne!(path(renewed, None), path(renewed, Some(overlay)), "{renewed} kept its id");
        assert!(
            spy(&[
                "why-depends",
                "--overlay",
                overlay,
                renewed,
                &format!("psutil-py{}-x86_64", if renewed.contains("2.7") { "2.7" } else { "3.11" })
            ])
            .0
        );
    }
}

/// The bootstrap tools in `node`'s closure, by name, as `spy graph` reports them.
fn closure_host_tools(node: &str, overlay: Option<&str>) -> Vec<String> {
    let mut args = vec!["graph", "--format", "json"];
    if let Some(o) = overlay {
        args.extend(["--overlay", o]);
    }
    args.push(node);
    let (ok, out) = spy(&args);
    assert!(ok, "spy graph {node} failed");
    let graph: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut tools: Vec<String> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["tools"].as_array().cloned().unwrap_or_default())
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    tools.sort();
    tools.dedup();
    tools
}

/// overlays/zig-toolchain.toml: no host compiler is left in the Linux closures (so their ids no
/// longer carry the host's gcc version), zig and our musl are in them, and the darwin targets,
/// which keep their own stage 0, are untouched.
#[test]
fn zig_toolchain_overlay_takes_the_host_compiler_out_of_linux_ids() {
    let overlay = "overlays/zig-toolchain.toml";
    let compilers = ["gcc", "cc", "cpp", "g++", "c++"];
    for node in ["python3.11-x86_64", "python3.11-i686", "pythonco3.11-x86_64"] {
        let plain = closure_host_tools(node, None);
        assert!(
            plain.iter().any(|t| t == "gcc"),
            "{node} without the overlay uses the host's gcc: {plain:?}"
        );
        let zig = closure_host_tools(node, Some(overlay));
        let left: Vec<&String> = zig.iter().filter(|t| compilers.contains(&t.as_str())).collect();
        assert!(left.is_empty(), "{node} with the overlay still names host compilers: {left:?}");
        assert!(zig.iter().any(|t| t == "make"), "the other host tools stay: {zig:?}");
        assert_ne!(path(node, None), path(node, Some(overlay)));
        for (to, what) in [
            ("zig", "the compiler"),
            ("musl", "our libc"),
            ("zig-host-cc", "the build machine's compiler"),
        ] {
            let target = node.rsplit('-').next().unwrap();
            let (ok, chain) = spy(&["why-depends", "--overlay", overlay, node, &format!("{to}-{target}")]);
            assert!(ok && chain.contains(to), "{node} does not depend on {what} ({to}): {chain}");
        }
    }
    for node in ["python3.11-darwin-arm64", "cpython3.11-darwin-x86_64", "zig-cc-darwin-arm64"] {
        assert_eq!(path(node, None), path(node, Some(overlay)), "{node} changed");
    }
}

/// A misspelt node in an overlay is refused on the real graph too, by the commands that only read
/// it; and every overlay of the repository names nodes the graph has (or adds complete ones).
#[test]
fn an_overlay_for_a_node_the_graph_lacks_is_refused() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("overlay-typo");
    std::fs::create_dir_all(&dir).unwrap();
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[nodes.opensll.env]\nCFLAGS = \"-O3\"\n").unwrap();
    let typo = typo.to_str().unwrap();
    for args in [&["list", "--overlay", typo][..], &["path", "--overlay", typo, "openssl-x86_64"]] {
        let o = common::spy_on_repo(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("overlay-ids-store"), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("typo.toml:1") && err.contains("`opensll`"),
            "{args:?}: {err}"
        );
    }
    for overlay in std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("overlays"))
        .unwrap()
        .flatten()
    {
        if overlay.path().extension().is_some_and(|e| e == "toml") {
            let o = overlay.path();
            assert!(spy(&["list", "--overlay", o.to_str().unwrap()]).0, "{}", o.display());
        }
    }
}
