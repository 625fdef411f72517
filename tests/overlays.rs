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
    let overlay = "overlays/openssl-3.0.22.toml";
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
