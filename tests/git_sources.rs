//! Git source pins with `exclude` (docs/recipes.md): a partial clone in a mirror serves a commit
//! whose excluded blob it lacks, and gives the same bytes as a full clone fetched by URL; a path not
//! in the tree is an error.

mod common;

use std::path::Path;

use common::Fixture;

fn git(repo: &Path, args: &[&str]) -> String {
    common::git_in(repo, args)
}

fn recipe(url: &str, commit: &str, exclude: &str) -> String {
    format!(
        "name = \"widget\"\nversion = \"1\"\n[[sources]]\nfile = \"widget.tar\"\ngit = {{ url = \"{url}\", commit = \"{commit}\"{exclude} }}\n[phases]\ninstall = \"test ! -e Misc/svnmap.txt && test -e Misc/NEWS && cp file.txt $out/\"\n"
    )
}

/// The source cache's git archives (name, bytes).
fn git_archives(store: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(store.join(".spy/sources"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("git-"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn git_exclude_gives_the_same_bytes_from_a_full_and_a_partial_clone() {
    let f = Fixture::new();
    // Upstream: a full repository, reached by URL.
    let upstream = f.root().join("upstream/widget");
    std::fs::create_dir_all(upstream.join("Misc")).unwrap();
    git(&upstream, &["init", "-q"]);
    std::fs::write(upstream.join("file.txt"), "from git\n").unwrap();
    std::fs::write(upstream.join("Misc/NEWS"), "news\n").unwrap();
    std::fs::write(upstream.join("Misc/svnmap.txt"), "r1 abc\nr2 def\n".repeat(1000)).unwrap();
    git(&upstream, &["add", "."]);
    git(&upstream, &["commit", "-qm", "one"]);
    let commit = git(&upstream, &["rev-parse", "HEAD"]);
    let blob = git(&upstream, &["rev-parse", "HEAD:Misc/svnmap.txt"]);

    // The mirror: a bare copy of it that lacks the svnmap blob (loose objects: delete one file).
    let partial = f.mirror().join("widget.git");
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(upstream.join(".git"))
        .arg(&partial)
        .status()
        .unwrap();
    assert!(o.success());
    std::fs::remove_file(partial.join("objects").join(&blob[..2]).join(&blob[2..])).unwrap();
    let missing = std::process::Command::new("git")
        .arg("-C")
        .arg(&partial)
        .args(["cat-file", "-e", &blob])
        .status()
        .unwrap();
    assert!(!missing.success(), "the mirror should lack the blob");

    let url = format!("file://{}", upstream.display());
    let exclude = ", exclude = [\"Misc/svnmap.txt\"]";

    // Without `exclude`, the partial mirror cannot serve, and nothing else can either (the URL's
    // repository is moved away for this step).
    let away = f.root().join("upstream/away");
    std::fs::rename(&upstream, &away).unwrap();
    f.write("graph/widget.toml", &recipe(&url, &commit, ""));
    let err = f.fails(&["realize", "widget"]);
    assert!(err.contains("widget.git lacks objects") && err.contains(&commit), "{err}");

    // With it, the partial mirror serves (the URL is still unreachable).
    f.write("graph/widget.toml", &recipe(&url, &commit, exclude));
    f.ok(&["realize", "widget"]);
    assert_eq!(std::fs::read_to_string(f.root().join("result/file.txt")).unwrap(), "from git\n");
    let from_mirror = git_archives(&f.store());
    assert_eq!(from_mirror.len(), 1, "{:?}", from_mirror.iter().map(|a| &a.0).collect::<Vec<_>>());
    assert!(from_mirror[0].0.starts_with(&format!("git-{commit}-x")), "{}", from_mirror[0].0);

    // A full clone by URL (no mirror) gives the same archive, byte for byte, and the same node.
    std::fs::rename(&away, &upstream).unwrap();
    let other_store = f.root().join("store2");
    let no_mirror = f.root().join("empty-mirror");
    std::fs::create_dir_all(&no_mirror).unwrap();
    let o = f
        .cmd_in(&other_store, &["realize", "-o", "result2", "widget"])
        .env("SPY_MIRRORS", &no_mirror)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("git fetch {url}")), "{err}");
    assert_eq!(git_archives(&other_store), from_mirror);
    assert_eq!(
        std::fs::read_link(f.root().join("result2")).unwrap().file_name(),
        std::fs::read_link(f.root().join("result")).unwrap().file_name()
    );
    // The full archive of the same commit holds the excluded file; the cache keeps both apart.
    let full = std::process::Command::new("git")
        .arg("-C")
        .arg(&upstream)
        .args(["archive", "--format=tar", &commit])
        .output()
        .unwrap();
    assert!(full.status.success());
    assert_ne!(full.stdout, from_mirror[0].1);
    let has_svnmap = |tar: &[u8]| tar.windows(7).any(|w| w == b"r2 def\n");
    assert!(has_svnmap(&full.stdout) && !has_svnmap(&from_mirror[0].1));
}

#[test]
fn a_git_exclude_path_missing_from_the_tree_is_an_error() {
    let f = Fixture::new();
    let repo = f.mirror().join("widget");
    std::fs::create_dir_all(repo.join("Misc")).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("file.txt"), "x\n").unwrap();
    std::fs::write(repo.join("Misc/NEWS"), "news\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "one"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    f.write(
        "graph/widget.toml",
        &recipe("https://example.invalid/o/widget", &commit, ", exclude = [\"Misc/svnmap.text\"]"),
    );
    let err = f.fails(&["realize", "widget"]);
    assert!(
        err.contains("`Misc/svnmap.text` is not in the tree of commit") && err.contains("nothing was built"),
        "{err}"
    );
    // A path that could name something outside the tree is refused when the graph loads.
    f.write(
        "graph/widget.toml",
        &recipe("https://example.invalid/o/widget", &commit, ", exclude = [\"../x\"]"),
    );
    let err = f.fails(&["show", "widget"]);
    assert!(err.contains("widget.toml") && err.contains("`../x`"), "{err}");
}
