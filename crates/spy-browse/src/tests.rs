use super::*;
use spy_hash::NodeId;
use spy_store::{EntryNode, NewEntry, Origin, Transacted};

fn add(store: &Store, id: u8, name: &str, license: &str, inputs: Vec<StoreName>, files: &[(&str, &str)]) -> StoreName {
    add_with(store, id, name, license, inputs, |out| {
        for (f, text) in files {
            std::fs::write(out.join(f), text)?;
        }
        Ok(())
    })
}

/// An entry whose output `make` writes.
fn add_with(
    store: &Store,
    id: u8,
    name: &str,
    license: &str,
    inputs: Vec<StoreName>,
    make: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> StoreName {
    let entry = NewEntry {
        node: EntryNode {
            id: NodeId([id; 32]),
            name: name.into(),
            version: "1.0".into(),
            target: "x86_64-linux-musl".into(),
            license: license.into(),
        },
        inputs,
        sources: vec![],
        origin: Origin::Built {
            sandboxed: true,
            in_place: false,
        },
    };
    let sn = entry.store_name().unwrap();
    let r = store.transact(entry, || {}, |w| make(w.out())).unwrap();
    assert!(matches!(r, Transacted::Registered { .. }));
    sn
}

fn html(p: Option<Page>) -> String {
    match p {
        Some(Page::Html(s)) | Some(Page::Svg(s)) => s,
        Some(Page::File { .. }) => panic!("a file, not a page"),
        None => panic!("no page"),
    }
}

const MANIFEST: &str = r#"{"release": "app-x86_64", "interpreter": {"version": "1.0"}, "binary": {"size": 1234567},
  "components": [
    {"name": "lib", "version": "1.0", "license": "Zlib", "role": "linked", "id": "0202020202020202020202020202020202020202020202020202020202020202", "static_libraries": ["libz.a"], "sources": [{"file": "z.tar.gz", "sha256": "ab"}]},
    {"name": "cc", "version": "9", "license": "GPL-3.0-or-later", "role": "build", "id": "", "static_libraries": [], "sources": []},
    {"name": "app", "version": "1.0", "license": "MIT OR <b>evil</b>", "role": "interpreter", "id": "", "static_libraries": [], "sources": []}
  ]}"#;

fn store() -> (tempfile::TempDir, Store, StoreName, StoreName) {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&d.path().join("store")).unwrap();
    let lib = add(&store, 2, "lib", "<script>alert(1)</script>", vec![], &[("lib.a", "x")]);
    let app = add(&store, 1, "app", "MIT", vec![lib.clone()], &[("manifest.json", MANIFEST)]);
    std::fs::write(store.log_path(&app), "building <script>x</script>\n").unwrap();
    (d, store, app, lib)
}

#[test]
fn the_index_lists_releases_and_entries_with_every_string_escaped() {
    let (_d, store, app, lib) = store();
    let page = html(page(&store, "").unwrap());
    assert!(page.contains(&format!("href=\"/entry/{app}\"")) && page.contains(&format!("href=\"/entry/{lib}\"")));
    assert!(page.contains(">app-x86_64</a>"), "the release is listed by its release name");
    assert!(page.contains("1.2 MB"), "a release shows its binary's size");
    // The binary's licence is its parts', not its build tools'.
    assert!(page.contains("(MIT OR &lt;b&gt;evil&lt;/b&gt;) AND Zlib"), "{page}");
    assert!(!page.contains("GPL-3.0"));
    assert!(!page.contains("<script>") && page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("2 entries"));
}

#[test]
fn an_entry_page_has_its_inputs_users_graph_and_manifest() {
    let (_d, store, app, lib) = store();
    let page_app = html(page(&store, &format!("entry/{app}")).unwrap());
    assert!(page_app.contains(&format!("href=\"/entry/{lib}\"")), "its input");
    assert!(page_app.contains("<svg") && page_app.contains("&quot;release&quot;: &quot;app-x86_64&quot;"));
    assert!(page_app.contains(&format!("/entry/{app}/manifest.json")));
    let page_lib = html(page(&store, &format!("entry/{lib}")).unwrap());
    assert!(page_lib.contains("Used by") && page_lib.contains(&format!("href=\"/entry/{app}\"")));
    assert!(!page_lib.contains("manifest.json"), "only releases have one");
    let svg = html(page(&store, &format!("entry/{app}/graph.svg")).unwrap());
    assert_eq!(svg.matches("<rect").count(), 2);
    let closure = html(page(&store, &format!("entry/{app}/closure")).unwrap());
    assert!(closure.contains("In the binary") && closure.contains("libz.a") && closure.contains(&format!("href=\"/entry/{lib}\"")));
}

#[test]
fn logs_and_manifests_are_streamed_and_bad_paths_have_no_page() {
    let (_d, store, app, lib) = store();
    match page(&store, &format!("entry/{app}/log")).unwrap() {
        Some(Page::File { mut file, content_type }) => {
            assert!(content_type.starts_with("text/plain"));
            let mut s = String::new();
            file.read_to_string(&mut s).unwrap();
            assert_eq!(s, "building <script>x</script>\n");
        }
        _ => panic!("the log"),
    }
    assert!(matches!(
        page(&store, &format!("entry/{app}/manifest.json")).unwrap(),
        Some(Page::File {
            content_type: "application/json",
            ..
        })
    ));
    for bad in [
        format!("entry/{lib}/manifest.json"),
        format!("entry/{lib}/log"),
        format!("entry/{app}/nothing"),
        "entry/../../etc/passwd".into(),
        "entry/".into(),
        format!("entry/{}", app.as_str().replace('1', "3")),
        "etc/passwd".into(),
    ] {
        assert!(page(&store, &bad).unwrap().is_none(), "{bad}");
    }
}

#[test]
fn a_manifest_that_is_a_symlink_is_refused_not_followed() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&d.path().join("store")).unwrap();
    std::fs::write(d.path().join("secret"), "{\"release\": \"leaked\"}").unwrap();
    let secret = d.path().join("secret");
    let sn = add_with(&store, 5, "evil", "", vec![], |out| {
        std::os::unix::fs::symlink(&secret, out.join("manifest.json"))
    });
    let index = html(page(&store, "").unwrap());
    assert!(
        index.contains("Unreadable manifests") && index.contains(&format!("{sn}</a>: ")),
        "the index names the bad entry"
    );
    assert!(!index.contains("leaked"), "and shows nothing of the symlink's target");
    assert!(page(&store, &format!("entry/{sn}/manifest.json")).is_err());
    let entry = html(page(&store, &format!("entry/{sn}")).unwrap());
    assert!(entry.contains("Unreadable: ") && !entry.contains("leaked"), "{entry}");
}

#[test]
fn sizes_and_times_read_as_people_expect() {
    assert_eq!(size(999), "999 B");
    assert_eq!(size(21_163_156), "21.2 MB");
    assert_eq!(size(2_500_000_000), "2.50 GB");
    assert_eq!(when(1_796_212_697), "2026-12-02 11:58 UTC");
    // Forged metadata cannot crash a page.
    assert_eq!(when(u64::MAX), format!("{} (not a date)", u64::MAX));
    assert_eq!(when(253_402_300_799), "9999-12-31 23:59 UTC");
}
