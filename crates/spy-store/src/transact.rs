//! The per-entry protocol, the only way an entry comes to exist: take the node's lock; re-check
//! (another process may have made the entry while this one waited); make a fresh private directory
//! in `.spy/tmp/` (clearing debris of a crashed attempt); let the caller's work fill it and write
//! the entry's log; on success hash, make read-only, rename into place and write the metadata last;
//! on an error or a panic remove everything the attempt made. An entry exists only when its
//! metadata does, so a crash at any point leaves nothing that looks complete.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use spy_hash::{NodeId, TreeHash};

use crate::{
    io, link_or_copy_tree, normalize_tree, private_dir, remove_tree, warn_left_behind, EntryMeta, EntryNode, Store, StoreError, StoreName,
};

/// What the caller knows about an entry before it exists; the store adds the output's hash, size,
/// timing, registration time, and the entry's name (made from id, name and version: the store
/// owns its naming, see [`NewEntry::store_name`]).
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub node: EntryNode,
    /// Entries it is made from (their closure is what `gc` keeps with it).
    pub inputs: Vec<StoreName>,
    /// The source pins it was built from, as text.
    pub sources: Vec<String>,
    pub origin: Origin,
}

impl NewEntry {
    /// The entry's directory name; an error if the name and version cannot make one component.
    pub fn store_name(&self) -> Result<StoreName, StoreError> {
        StoreName::new(&self.node.id, &self.node.name, &self.node.version)
    }
}

/// Where an entry's output comes from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Made here. `in_place`: the work writes straight into the entry's final path (unsandboxed
    /// builds, which see host paths, so paths baked into outputs stay right); the entry still only
    /// exists once its metadata does.
    Built { sandboxed: bool, in_place: bool },
    /// Unpacked from a binary cache: registered only if the output hashes to the signed
    /// `tree_hash`, otherwise discarded.
    Substituted { from: String, tree_hash: TreeHash },
}

impl Origin {
    /// Made here, in the transaction's own directory (not in place).
    pub fn built(sandboxed: bool) -> Origin {
        Origin::Built {
            sandboxed,
            in_place: false,
        }
    }
}

/// What a transaction ended with.
#[derive(Debug)]
pub enum Transacted<T> {
    /// The work ran and its output is now the entry.
    Registered { meta: EntryMeta, value: T },
    /// The entry was complete once the lock was held (another process made it meanwhile, or it
    /// was there all along); the work did not run.
    AlreadyThere(EntryMeta),
}

#[derive(Debug, thiserror::Error)]
pub enum TransactError<E> {
    /// The store's part failed (lock, directories, hashing, registration, the log).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's work failed; nothing was registered.
    #[error(transparent)]
    Work(E),
}

/// The space of one transaction, handed to the work: its output directory, a working area, private
/// scratch space, and the entry's log. Dropped without registration (an error, a panic), it
/// removes everything it made.
#[derive(Debug)]
pub struct Work<'s> {
    store: &'s Store,
    name: StoreName,
    /// `.spy/tmp/<entry>/`, mode 0700.
    dir: PathBuf,
    out: PathBuf,
    build: PathBuf,
    log: Option<File>,
    registered: bool,
}

impl Work<'_> {
    pub fn store_name(&self) -> &StoreName {
        &self.name
    }
    /// Where the output goes (a build bind-mounts it as `$out`).
    pub fn out(&self) -> &Path {
        &self.out
    }
    /// The build's working area (`/build` in the sandbox).
    pub fn build_dir(&self) -> &Path {
        &self.build
    }
    /// The transaction's private directory (holds `out` and the build area); anything else the
    /// work makes here (a sandbox root, `/tmp`) goes with it.
    pub fn private_dir(&self) -> &Path {
        &self.dir
    }
    /// The entry's log file (`spy log NODE`); kept after a failure, for the error report.
    pub fn log_path(&self) -> PathBuf {
        self.store.log_path(&self.name)
    }
    /// The entry's log, created (empty) on first use.
    pub fn log(&mut self) -> Result<&File, StoreError> {
        if self.log.is_none() {
            let p = self.log_path();
            self.log = Some(File::create(&p).map_err(io(&p))?);
        }
        Ok(self.log.as_ref().expect("just opened"))
    }
    /// Appends `text` to the entry's log.
    pub fn write_log(&mut self, text: &str) -> Result<(), StoreError> {
        let p = self.log_path();
        let mut f = self.log()?;
        f.write_all(text.as_bytes()).map_err(io(&p))
    }
}

impl Drop for Work<'_> {
    fn drop(&mut self) {
        if !self.registered {
            // A failed removal leaves debris without metadata: not an entry, and removed the next
            // time this node is locked or by `spy gc`.
            for tree in [&self.out, &self.dir] {
                if let Err(e) = remove_tree(tree) {
                    warn_left_behind(e);
                }
            }
        }
    }
}

impl Store {
    /// Makes the entry `entry` describes by running `work` under the protocol above; `on_wait` is
    /// called once if another process holds the node's lock (so the caller can say why it waits).
    pub fn transact<T, E>(
        &self,
        entry: NewEntry,
        on_wait: impl FnOnce(),
        work: impl FnOnce(&mut Work) -> Result<T, E>,
    ) -> Result<Transacted<T>, TransactError<E>> {
        let in_place = matches!(entry.origin, Origin::Built { in_place: true, .. });
        let (id, name) = (entry.node.id, entry.store_name()?);
        let locked_name = name.clone();
        self.run(&id, &locked_name, in_place, on_wait, work, |store, w, seconds| {
            let (sandboxed, substituted_from, expected, build_seconds) = match entry.origin {
                Origin::Built { sandboxed, .. } => (sandboxed, None, None, seconds),
                // The builder ran sandboxed, wherever it was; nothing was built here.
                Origin::Substituted { from, tree_hash } => (true, Some(from), Some(tree_hash), 0.0),
            };
            let meta = EntryMeta {
                format: 1,
                node: entry.node,
                store_name: name,
                tree_hash: TreeHash([0; 32]),
                size: 0,
                files: 0,
                inputs: entry.inputs,
                sources: entry.sources,
                build_seconds,
                registered_at: 0,
                builder: concat!("spy ", env!("CARGO_PKG_VERSION")).into(),
                sandboxed,
                substituted_from,
            };
            store.register(w, meta, expected)
        })
    }

    /// Makes `meta`'s entry of `other` an entry of this store too, with the same metadata: hard
    /// links where both stores share a filesystem, copies otherwise. Used by `spy check` to give a
    /// fresh store the inputs it is not asked to rebuild.
    pub fn link_entry_from(&self, other: &Store, meta: &EntryMeta) -> Result<(), StoreError> {
        let from = other.entry(&meta.store_name);
        let done = self.run(
            &meta.node.id,
            &meta.store_name,
            false,
            || {},
            |w| link_or_copy_tree(&from, w.out()),
            |store, w, _| store.register_as_is(w, meta.clone()),
        );
        match done {
            Ok(_) => Ok(()),
            Err(TransactError::Store(e) | TransactError::Work(e)) => Err(e),
        }
    }

    /// Lock, re-check, fresh directory, work, then `register` (or removal of the attempt).
    fn run<T, E>(
        &self,
        id: &NodeId,
        name: &StoreName,
        in_place: bool,
        on_wait: impl FnOnce(),
        work: impl FnOnce(&mut Work) -> Result<T, E>,
        register: impl FnOnce(&Store, Work, f64) -> Result<EntryMeta, StoreError>,
    ) -> Result<Transacted<T>, TransactError<E>> {
        // Declared first, so it is released last: after a failed attempt's directory is gone.
        let _lock = self.lock(id, on_wait)?;
        // Metadata that cannot be read is no entry (as for `is_valid`): the entry is made again and
        // its metadata replaced.
        if let Ok(Some(meta)) = self.lookup(name) {
            return Ok(Transacted::AlreadyThere(meta));
        }
        let mut w = self.begin(name, in_place)?;
        let t0 = Instant::now();
        let value = work(&mut w).map_err(TransactError::Work)?;
        let meta = register(self, w, t0.elapsed().as_secs_f64())?;
        Ok(Transacted::Registered { meta, value })
    }

    /// A fresh private directory for an entry, clearing debris of earlier crashed attempts. The
    /// node's lock is held.
    fn begin(&self, name: &StoreName, in_place: bool) -> Result<Work<'_>, StoreError> {
        let final_path = self.entry(name);
        if final_path.exists() && !self.meta_path(name).exists() {
            remove_tree(&final_path)?;
        }
        let dir = self.tmp_dir().join(name.as_str());
        if dir.exists() {
            remove_tree(&dir)?;
        }
        let out = if in_place { final_path.clone() } else { dir.join("out") };
        let build = dir.join("build");
        // Private to the builder while the build runs, and afterwards if a killed build leaves it
        // behind: a build may make set-user-ID files, and no other user may reach them. (An
        // in-place build's output is private until registration makes it read-only for all.)
        let w = Work {
            store: self,
            name: name.clone(),
            dir,
            out,
            build,
            log: None,
            registered: false,
        };
        private_dir(&w.dir)?;
        if in_place {
            private_dir(&w.out)?;
        }
        for d in [&w.out, &w.build] {
            fs_err::create_dir_all(d).map_err(io(d))?;
        }
        Ok(w)
    }

    /// Hash, make read-only, rename into place, write the metadata last. `meta`'s hash, size and
    /// name fields are filled in here. With `expected`, any other tree hash discards the output.
    fn register(&self, w: Work, mut meta: EntryMeta, expected: Option<TreeHash>) -> Result<EntryMeta, StoreError> {
        normalize_tree(&w.out)?;
        let sum = spy_hash::hash_tree(&w.out)?;
        if let Some(expected) = expected.filter(|e| *e != sum.hash) {
            return Err(StoreError::TreeMismatch {
                store_name: w.name.to_string(),
                expected,
                actual: sum.hash,
            });
        }
        meta.tree_hash = sum.hash;
        meta.size = sum.size;
        meta.files = sum.files;
        meta.store_name = w.name.clone();
        meta.registered_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.register_as_is(w, meta)
    }

    /// Renames the output into place and writes `meta` as it is.
    fn register_as_is(&self, mut w: Work, meta: EntryMeta) -> Result<EntryMeta, StoreError> {
        let dest = self.entry(&w.name);
        if w.out != dest {
            if dest.exists() {
                remove_tree(&dest)?;
            }
            fs_err::rename(&w.out, &dest).map_err(io(&dest))?;
        }
        self.write_meta(&meta)?;
        w.registered = true;
        // Only the build area and scratch are left; if removal fails they are debris that `gc`
        // removes (the node's lock is free then), never part of the entry.
        if let Err(e) = remove_tree(&w.dir) {
            warn_left_behind(e);
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn new_entry(id: u8, name: &str, origin: Origin) -> NewEntry {
        NewEntry {
            node: EntryNode {
                id: NodeId([id; 32]),
                name: name.into(),
                version: "1".into(),
                target: "t".into(),
                license: String::new(),
            },
            inputs: vec![],
            sources: vec![],
            origin,
        }
    }

    fn built() -> Origin {
        Origin::Built {
            sandboxed: true,
            in_place: false,
        }
    }

    fn scratch_store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("store")).unwrap();
        (d, store)
    }

    /// Everything under the store except the lock files and logs.
    fn debris(store: &Store) -> Vec<String> {
        let mut out = Vec::new();
        for dir in [store.root().to_path_buf(), store.tmp_dir(), store.root().join(".spy/meta")] {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n != ".spy" {
                    out.push(format!("{}/{n}", dir.display()));
                }
            }
        }
        out
    }

    #[test]
    fn a_transaction_registers_its_output_and_log() {
        let (_d, store) = scratch_store();
        let e = new_entry(1, "a", built());
        let sn = e.store_name().unwrap();
        let r = store
            .transact(
                e,
                || panic!("nobody else holds the lock"),
                |w| {
                    assert_eq!(std::fs::metadata(w.private_dir()).unwrap().permissions().mode() & 0o7777, 0o700);
                    std::fs::write(w.out().join("file"), "a").unwrap();
                    w.write_log("made a\n")?;
                    Ok::<_, StoreError>(7)
                },
            )
            .unwrap();
        let Transacted::Registered { meta, value: 7 } = r else {
            panic!("{r:?}")
        };
        assert_eq!(store.lookup(&sn).unwrap(), Some(meta.clone()));
        assert_eq!((meta.files, meta.sandboxed, meta.store_name.clone()), (1, true, sn.clone()));
        assert_eq!(std::fs::read_to_string(store.log_path(&sn)).unwrap(), "made a\n");
        assert_eq!(
            debris(&store),
            vec![
                format!("{}", store.entry(&sn).display()),
                format!("{}/{sn}.json", store.root().join(".spy/meta").display())
            ]
        );
        // A second transaction finds it and does not run its work.
        let again = store
            .transact(
                new_entry(1, "a", built()),
                || {},
                |_| -> Result<(), StoreError> { panic!("work ran again") },
            )
            .unwrap();
        assert!(matches!(again, Transacted::AlreadyThere(m) if m == meta));
    }

    #[test]
    fn an_error_or_a_panic_leaves_no_entry_and_no_debris() {
        let (_d, store) = scratch_store();
        for in_place in [false, true] {
            let origin = Origin::Built {
                sandboxed: false,
                in_place,
            };
            let e = new_entry(2, "b", origin.clone());
            let sn = e.store_name().unwrap();
            let r = store.transact(
                e,
                || {},
                |w| {
                    std::fs::write(w.out().join("half"), "x").unwrap();
                    w.write_log("failing\n").unwrap();
                    Err::<(), _>("the build failed")
                },
            );
            assert!(matches!(r, Err(TransactError::Work("the build failed"))));
            assert_eq!(store.lookup(&sn).unwrap(), None);
            assert!(debris(&store).is_empty(), "{:?}", debris(&store));
            // The log stays, for the report.
            assert_eq!(std::fs::read_to_string(store.log_path(&sn)).unwrap(), "failing\n");

            let e = new_entry(2, "b", origin);
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = store.transact(
                    e,
                    || {},
                    |w| -> Result<(), StoreError> {
                        std::fs::write(w.out().join("half"), "x").unwrap();
                        panic!("the builder panicked")
                    },
                );
            }));
            assert!(panicked.is_err());
            assert_eq!(store.lookup(&sn).unwrap(), None);
            assert!(debris(&store).is_empty(), "{:?}", debris(&store));
            // The lock was released: the node can be made now.
            let ok = store.transact(
                new_entry(2, "b", built()),
                || panic!("lock still held"),
                |w| std::fs::write(w.out().join("f"), "b"),
            );
            assert!(matches!(ok, Ok(Transacted::Registered { .. })));
            std::fs::remove_file(store.meta_path(&sn)).unwrap();
        }
    }

    #[test]
    fn unreadable_metadata_is_no_entry_and_is_replaced() {
        let (_d, store) = scratch_store();
        let e = new_entry(6, "f", built());
        let sn = e.store_name().unwrap();
        store.transact(e, || {}, |w| std::fs::write(w.out().join("f"), "1")).unwrap();
        std::fs::write(store.meta_path(&sn), "{not json").unwrap();
        assert!(!store.is_valid(&sn));
        let r = store.transact(new_entry(6, "f", built()), || {}, |w| std::fs::write(w.out().join("f"), "2"));
        assert!(matches!(r, Ok(Transacted::Registered { .. })), "{r:?}");
        assert_eq!(std::fs::read_to_string(store.entry(&sn).join("f")).unwrap(), "2");
        assert!(store.is_valid(&sn));
    }

    #[test]
    fn a_substitute_with_another_tree_hash_is_not_registered() {
        let (_d, store) = scratch_store();
        let origin = Origin::Substituted {
            from: "file:///cache".into(),
            tree_hash: TreeHash([9; 32]),
        };
        let e = new_entry(3, "c", origin);
        let sn = e.store_name().unwrap();
        let r = store.transact(e, || {}, |w| std::fs::write(w.out().join("f"), "c"));
        assert!(matches!(r, Err(TransactError::Store(StoreError::TreeMismatch { .. }))), "{r:?}");
        assert_eq!(store.lookup(&sn).unwrap(), None);
        assert!(debris(&store).is_empty(), "{:?}", debris(&store));
    }

    #[test]
    fn a_waiting_transaction_rechecks_and_reuses_what_the_other_made() {
        let (_d, store) = scratch_store();
        let e = new_entry(4, "d", built());
        let sn = e.store_name().unwrap();
        let (holding_tx, holding_rx) = std::sync::mpsc::channel();
        let (waited_tx, waited_rx) = std::sync::mpsc::channel();
        let store = &store;
        std::thread::scope(|s| {
            // The other "process" (a lock taken through another open file conflicts the same way).
            let other = s.spawn(move || {
                store
                    .transact(
                        new_entry(4, "d", built()),
                        || {},
                        |w| {
                            holding_tx.send(()).unwrap();
                            // Hold the lock until the second transaction says it waits.
                            waited_rx.recv().unwrap();
                            std::fs::write(w.out().join("f"), "made by the other")
                        },
                    )
                    .unwrap()
            });
            holding_rx.recv().unwrap();
            let mine = store
                .transact(
                    e,
                    || waited_tx.send(()).unwrap(),
                    |_| -> Result<(), StoreError> { panic!("work ran although the entry exists") },
                )
                .unwrap();
            let Transacted::Registered { meta: theirs, .. } = other.join().unwrap() else {
                panic!("the other did not build")
            };
            assert!(matches!(mine, Transacted::AlreadyThere(m) if m == theirs));
        });
        assert_eq!(std::fs::read_to_string(store.entry(&sn).join("f")).unwrap(), "made by the other");
    }

    #[test]
    fn crash_debris_is_cleared_and_linked_entries_keep_their_metadata() {
        let d = tempfile::tempdir().unwrap();
        let a = Store::open(&d.path().join("a")).unwrap();
        let b = Store::open(&d.path().join("b")).unwrap();
        let r = a.transact(
            new_entry(5, "e", built()),
            || {},
            |w| {
                std::fs::create_dir(w.out().join("sub"))?;
                std::fs::write(w.out().join("sub/f"), "e")
            },
        );
        let Ok(Transacted::Registered { meta, .. }) = r else {
            panic!("{r:?}")
        };
        // Debris of a crashed attempt in b: an entry directory without metadata, a build directory.
        std::fs::create_dir_all(b.entry(&meta.store_name).join("stale")).unwrap();
        std::fs::create_dir_all(b.tmp_dir().join(meta.store_name.as_str()).join("out")).unwrap();
        b.link_entry_from(&a, &meta).unwrap();
        assert_eq!(b.lookup(&meta.store_name).unwrap(), Some(meta.clone()));
        assert!(!b.entry(&meta.store_name).join("stale").exists());
        assert!(!b.tmp_dir().join(meta.store_name.as_str()).exists());
        assert_eq!(std::fs::read_to_string(b.entry(&meta.store_name).join("sub/f")).unwrap(), "e");
        // Linking again is a no-op.
        b.link_entry_from(&a, &meta).unwrap();
    }
}
