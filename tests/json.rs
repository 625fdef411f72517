//! `--json` on list, show, path, realize, verify and gc: the schema docs/json.md documents, on a
//! fixture graph, with the real `spy` binary.

mod common;

use common::*;
use serde_json::Value;

fn json(f: &Fixture, args: &[&str]) -> Value {
    let (out, _) = f.ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("spy {args:?}: not JSON ({e}): {out}"))
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    k.sort();
    k
}

#[test]
fn every_json_output_has_its_documented_fields() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");

    let list = json(&f, &["list", "--json"]);
    let hello = list.as_array().unwrap().iter().find(|n| n["node"] == "hello-x86_64").unwrap();
    assert_eq!(keys(hello), ["built", "key", "kind", "name", "node", "path", "target", "version"]);
    assert_eq!(hello["key"], "hello@x86_64-linux-musl");
    assert_eq!(hello["built"], false);
    let targets = json(&f, &["list", "--targets", "--json"]);
    assert!(targets
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["target"] == "x86_64-linux-musl" && t["short"] == "x86_64"));

    let path = json(&f, &["path", "--json", "hello"]);
    assert_eq!(keys(&path), ["built", "key", "node", "path"]);
    assert_eq!(path["path"], hello["path"]);

    // realize: the results on stdout, nothing else there; the link made as without --json.
    let realized = json(&f, &["realize", "--json", "hello"]);
    let results = realized["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(keys(&results[0]), ["key", "link", "node", "path"]);
    assert_eq!(results[0]["path"], hello["path"]);
    assert_eq!(results[0]["link"], "result");
    assert!(f.root().join("result/bin/hello").is_file());
    let unlinked = json(&f, &["realize", "--json", "--no-out-link", "hello", "other"]);
    let results = unlinked["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r["link"].is_null()), "{unlinked}");

    let show = json(&f, &["show", "--json", "hello"]);
    for k in [
        "node", "key", "id", "path", "built", "deps", "sources", "patches", "env", "phases", "state", "recipe",
    ] {
        assert!(show.get(k).is_some(), "show --json lacks {k}: {show}");
    }
    assert_eq!(show["built"], true);
    // list --json streams its nodes: after the realize, the same document with hello built.
    let (text, _) = f.ok(&["list", "--json"]);
    let relisted: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        text,
        format!("{}\n", serde_json::to_string_pretty(&relisted).unwrap()),
        "the layout of one pretty array"
    );
    let hello_now = relisted.as_array().unwrap().iter().find(|n| n["node"] == "hello-x86_64").unwrap();
    assert_eq!(
        (hello_now["built"].clone(), hello_now["path"].clone()),
        (true.into(), hello["path"].clone())
    );
    assert_eq!(relisted.as_array().unwrap().len(), list.as_array().unwrap().len());
    assert_eq!(keys(&show["state"]), ["build_seconds", "files", "sandboxed", "size", "tree_hash"]);
    assert!(
        show["deps"].as_array().unwrap().iter().any(|d| d == "libgreet@x86_64-linux-musl"),
        "{show}"
    );

    let verify = json(&f, &["verify", "--json"]);
    assert_eq!(keys(&verify), ["entries", "problems"]);
    assert!(verify["entries"].as_u64().unwrap() >= 3, "{verify}");
    assert_eq!(verify["problems"], serde_json::json!([]));

    // gc: `result` keeps hello's closure; `other` (built, unrooted) goes.
    let gc = json(&f, &["gc", "--dry-run", "--json"]);
    assert_eq!(
        keys(&gc),
        ["dry_run", "freed_bytes", "live", "live_bytes", "removed", "stale_roots"]
    );
    assert_eq!(gc["dry_run"], true);
    let removed: Vec<&str> = gc["removed"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(removed.iter().any(|p| p.ends_with("-other-1")), "{gc}");
    assert!(!removed.iter().any(|p| p.contains("-hello-")), "{gc}");
    assert!(gc["live"].as_u64().unwrap() >= 2 && gc["live_bytes"].as_u64().unwrap() > 0, "{gc}");
}

#[test]
fn verify_json_names_a_modified_entry_and_fails() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    f.ok(&["realize", "hello"]);
    let path = json(&f, &["path", "--json", "hello"])["path"].as_str().unwrap().to_string();
    let bin = std::path::Path::new(&path).join("bin/hello");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(std::path::Path::new(&path).join("bin"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&bin, b"tampered").unwrap();
    let o = f.spy(&["verify", "--json", "hello"]);
    assert!(!o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert_eq!(problems[0]["problem"], "modified");
    assert_eq!(problems[0]["path"], path.as_str());
}
