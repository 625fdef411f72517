//! `spy check`: a reproducibility check. The nodes are realized in the store (substituted or
//! built if missing), then rebuilt in a fresh store beside it (same filesystem, so inputs are hard
//! links) at a path no earlier build saw, and the output trees are compared.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use petgraph::graph::NodeIndex;
use spy_hash::TreeHash;
use spy_plan::Plan;
use spy_sched::{Progress, RealizeOptions, SchedError};
use spy_store::{Scratch, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sched(#[from] SchedError),
    #[error(transparent)]
    Hash(#[from] spy_hash::HashError),
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{node} is missing from one of the stores after realizing it")]
    Missing { node: String },
}

/// One path whose kind or content differs, with what each side has there (`absent`, `dir`,
/// `link -> T`, or the file's mode class and hash).
#[derive(Debug, Clone, PartialEq)]
pub struct FileDiff {
    pub path: PathBuf,
    pub ours: String,
    pub theirs: String,
}

/// A node whose rebuilt output differs.
#[derive(Debug)]
pub struct Differs {
    pub node: NodeIndex,
    /// The entry in the store, and the rebuilt one.
    pub ours: (PathBuf, TreeHash),
    pub theirs: (PathBuf, TreeHash),
    pub files: Vec<FileDiff>,
}

impl Differs {
    /// The first differing regular file (or executable), the one worth a closer look.
    pub fn first_file(&self) -> Option<&FileDiff> {
        self.files
            .iter()
            .find(|f| f.ours.starts_with("file") || f.theirs.starts_with("file") || f.ours.starts_with("exec"))
    }
}

/// The outcome of a check. The fresh store is removed when this is dropped, unless kept.
#[derive(Debug)]
pub struct Checked {
    /// The nodes rebuilt and compared.
    pub rebuilt: Vec<NodeIndex>,
    pub differing: Vec<Differs>,
    fresh: tempfile::TempDir,
}

impl Checked {
    /// Keeps the fresh store (and its rebuilt outputs); returns the directory holding it.
    pub fn keep(self) -> PathBuf {
        self.fresh.keep()
    }
}

/// Realizes `roots` in `store`, rebuilds them (with `closure`: every node of their closures that
/// is not host-specific) in a fresh store without substituters, and compares the outputs.
pub fn check(
    store: &Store,
    plan: &Plan,
    roots: &[NodeIndex],
    closure: bool,
    opts: &RealizeOptions,
    quiet: bool,
) -> Result<Checked, CheckError> {
    // The reference outputs: whatever the store has, realized (substituted or built) if missing.
    let _temp_roots = spy_sched::realize_rooted(store, plan, roots, opts, &Progress::new(quiet))?;
    let ui = Progress::new(quiet);
    let rebuild: Vec<NodeIndex> = if closure {
        plan.closure(roots)
            .into_iter()
            .filter(|&n| !plan.node(n).is_host_specific())
            .collect()
    } else {
        roots.to_vec()
    };
    let parent = store.scratch_dir(Scratch::Check)?;
    let fresh_dir = tempfile::Builder::new()
        .prefix("check-")
        .tempdir_in(&parent)
        .map_err(|e| CheckError::Io {
            path: parent.clone(),
            message: e.to_string(),
        })?;
    let fresh = Store::open(&fresh_dir.path().join("store"))?;
    fresh.link_sources_from(store)?;
    for n in plan.closure(roots) {
        if rebuild.contains(&n) {
            continue;
        }
        // Inputs of what is rebuilt (and only those) must be present.
        if let Some(meta) = store.lookup(&plan.node(n).store_name())? {
            fresh.link_entry_from(store, &meta)?;
        }
    }
    ui.line(&format!(
        "rebuilding {} node(s) in {} to compare with {}",
        rebuild.len(),
        fresh.root().display(),
        store.root().display()
    ));
    let opts = RealizeOptions {
        substituters: None,
        ..opts.clone()
    };
    if closure {
        spy_sched::realize(&fresh, plan, roots, &opts, &ui)?;
    } else {
        // The scheduler starts a node once its direct dependencies are there, but a build may read
        // entries further down (a fuse node reads every library it links): a hard-linked input
        // between two rebuilt nodes would let the upper one start first. So the named nodes are
        // rebuilt in waves, each after the named nodes of its closure. (With --closure every
        // node in between is rebuilt too, and one realize keeps that order by itself.)
        // Each named node with the named nodes below it.
        let mut left: Vec<(NodeIndex, Vec<NodeIndex>)> = rebuild
            .iter()
            .map(|&n| {
                (
                    n,
                    plan.closure(&[n]).into_iter().filter(|d| *d != n && rebuild.contains(d)).collect(),
                )
            })
            .collect();
        let mut done: Vec<NodeIndex> = Vec::new();
        while !left.is_empty() {
            let wave: Vec<NodeIndex> = left
                .iter()
                .filter(|(_, below)| below.iter().all(|d| done.contains(d)))
                .map(|(n, _)| *n)
                .collect();
            spy_sched::realize(&fresh, plan, &wave, &opts, &ui)?;
            done.extend(&wave);
            left.retain(|(n, _)| !done.contains(n));
        }
    }

    let mut differing = Vec::new();
    for &n in &rebuild {
        let node = plan.node(n);
        let name = node.store_name();
        let (Some(a), Some(b)) = (store.lookup(&name)?, fresh.lookup(&name)?) else {
            return Err(CheckError::Missing {
                node: node.key.to_string(),
            });
        };
        if a.tree_hash != b.tree_hash {
            let (ours, theirs) = (store.entry(&name), fresh.entry(&name));
            let files = differing_files(&ours, &theirs)?;
            differing.push(Differs {
                node: n,
                ours: (ours, a.tree_hash),
                theirs: (theirs, b.tree_hash),
                files,
            });
        }
    }
    Ok(Checked {
        rebuilt: rebuild,
        differing,
        fresh: fresh_dir,
    })
}

/// Paths whose kind or content differ between two trees (a directory on our side only counts
/// through what differs below it).
pub fn differing_files(a: &Path, b: &Path) -> Result<Vec<FileDiff>, CheckError> {
    let (la, lb) = (spy_hash::tree_listing(a)?, spy_hash::tree_listing(b)?);
    let all: BTreeSet<&PathBuf> = la.keys().chain(lb.keys()).collect();
    let absent = || "absent".to_string();
    Ok(all
        .into_iter()
        .filter_map(|p| {
            let (x, y) = (la.get(p), lb.get(p));
            (x != y && x.map(String::as_str) != Some("dir")).then(|| FileDiff {
                path: p.clone(),
                ours: x.cloned().unwrap_or_else(absent),
                theirs: y.cloned().unwrap_or_else(absent),
            })
        })
        .collect())
}

/// The first lines of diffoscope's report on two files; `None` when diffoscope is not installed.
pub fn diffoscope(a: &Path, b: &Path) -> Option<Vec<String>> {
    let out = std::process::Command::new("diffoscope")
        .args(["--no-progress", "--text", "-", "--max-report-size", "200000"])
        .arg(a)
        .arg(b)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).lines().take(40).map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn differing_files_names_each_side() {
        let (_d, a, b) = crate::scratch("a", "b");
        for t in [&a, &b] {
            std::fs::create_dir_all(t.join("lib")).unwrap();
            std::fs::write(t.join("same"), "x").unwrap();
        }
        std::fs::write(a.join("lib/changed"), "1").unwrap();
        std::fs::write(b.join("lib/changed"), "2").unwrap();
        std::fs::write(a.join("only-ours"), "o").unwrap();
        std::fs::create_dir(b.join("only-theirs")).unwrap();
        std::fs::write(b.join("mode"), "m").unwrap();
        std::fs::write(a.join("mode"), "m").unwrap();
        std::fs::set_permissions(b.join("mode"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("same", a.join("link")).unwrap();
        std::os::unix::fs::symlink("other", b.join("link")).unwrap();
        let files = differing_files(&a, &b).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["lib/changed", "link", "mode", "only-ours", "only-theirs"]);
        let by = |p: &str| files.iter().find(|f| f.path == Path::new(p)).unwrap();
        assert_eq!(by("only-ours").theirs, "absent");
        assert_eq!(
            (by("only-theirs").ours.as_str(), by("only-theirs").theirs.as_str()),
            ("absent", "dir")
        );
        assert!(by("link").ours.contains("same") && by("link").theirs.contains("other"));
        assert_ne!(by("mode").ours, by("mode").theirs);
        // The file worth a closer look is the first regular one.
        let differs = Differs {
            node: NodeIndex::new(0),
            ours: (a.clone(), TreeHash([0; 32])),
            theirs: (b.clone(), TreeHash([1; 32])),
            files: files.clone(),
        };
        assert_eq!(differs.first_file().map(|f| f.path.clone()), Some(PathBuf::from("lib/changed")));
        assert!(differing_files(&a, &a).unwrap().is_empty());
    }
}
