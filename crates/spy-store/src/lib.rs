//! The store: one directory of read-only entries named `<id prefix>-<name>-<version>`, plus
//! `.spy/` with metadata, logs, locks, roots, the source cache and temporary build space.
//!
//! The protocol, written once here ([`Store::transact`], in `transact.rs`): take the node's lock,
//! re-check, build in `.spy/tmp/` (same filesystem), hash the output, make it read-only, rename it
//! into place, then write the metadata file by rename. An entry exists only when its metadata does;
//! a directory without metadata is debris of a crash and is removed the next time the node is
//! locked or by `spy gc`.
//!
//! This crate owns the layout under the store root: entry names ([`StoreName`]), entry, metadata
//! and log paths, locks, roots, staging and scratch space, the source cache and the host-tools
//! cache file. No other crate joins a path below `.spy/` or formats an entry name. It touches only
//! the store directory and the `result` links it is asked to make (and reads a second store for
//! `spy check`); it never reads recipes or plans.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use spy_hash::{NodeId, Sha256, TreeHash};

mod name;
mod transact;

use name::entry_prefix;
pub use name::StoreName;
pub use transact::{NewEntry, Origin, TransactError, Transacted, Work};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("store metadata {} is corrupt: {message}", path.display())]
    BadMeta { path: PathBuf, message: String },
    #[error(transparent)]
    Hash(#[from] spy_hash::HashError),
    #[error("{store_name}: unpacked tree hash {actual} differs from the expected {expected}; not registered")]
    TreeMismatch {
        store_name: String,
        expected: TreeHash,
        actual: TreeHash,
    },
    #[error("`{0}` is not a store entry name (`<32 hex digits>-<name>-<version>`, one path component)")]
    BadEntryName(String),
    #[error("source {file}: expected sha256 {expected}, got {actual} (from {origin})")]
    SourceMismatch {
        file: String,
        expected: Sha256,
        actual: Sha256,
        origin: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Removes a file that may not be there; any other failure is an error.
fn remove_file_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// The node an entry was made for: what a caller tells [`Store::transact`] and the metadata
/// records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryNode {
    pub id: NodeId,
    pub name: String,
    pub version: String,
    pub target: String,
    /// The recipe's license expression, for people browsing the store (`spy serve`); not part of
    /// the id, empty when the recipe names none or the entry predates it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub license: String,
}

/// What the store records about an entry (`.spy/meta/<entry>.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryMeta {
    pub format: u32,
    /// Written inline: `id`, `name`, `version`, `target`.
    #[serde(flatten)]
    pub node: EntryNode,
    pub store_name: StoreName,
    pub tree_hash: TreeHash,
    pub size: u64,
    pub files: u64,
    /// Store names of the entries this one was built from (its closure is what `gc` keeps).
    pub inputs: Vec<StoreName>,
    pub sources: Vec<String>,
    pub build_seconds: f64,
    /// Unix time of registration; metadata only, never part of the output.
    pub registered_at: u64,
    pub builder: String,
    pub sandboxed: bool,
    /// The binary cache the entry was substituted from, if it was not built here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substituted_from: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Entries a running `spy` uses, protected from `gc` until dropped (or the process dies).
pub struct TempRoots {
    _lock: Flock<File>,
    path: PathBuf,
}

impl Drop for TempRoots {
    fn drop(&mut self) {
        // A file left behind is unlocked, and gc removes it.
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => warn_left_behind(format_args!("{}: {e}", self.path.display())),
            _ => {}
        }
    }
}

/// For cleanups that cannot fail their caller (a drop, or what is left once an entry is
/// registered): what they could not remove is debris `spy gc` removes, so the failure is only
/// said, on stderr as spy's other warnings.
pub(crate) fn warn_left_behind(failure: impl std::fmt::Display) {
    eprintln!("spy: warning: {failure} (left behind; `spy gc` removes it)");
}

/// An exclusive lock on one node, released on drop (or when the process dies).
struct NodeLock {
    _lock: Flock<File>,
}

/// A staging directory in `.spy/tmp`, removed on drop; `gc` leaves it alone while it exists.
#[derive(Debug)]
pub struct StagingDir {
    // Removed first, then unlocked.
    dir: tempfile::TempDir,
    _lock: Flock<File>,
}

impl StagingDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Directories of the store's own beside its entries ([`Store::scratch_dir`]).
#[derive(Debug, Clone, Copy)]
pub enum Scratch {
    /// `spy check`'s fresh stores.
    Check,
    /// `spy serve`'s packed archives and metadata.
    Serve,
}

#[derive(Debug, Default)]
pub struct GcReport {
    /// The entries kept: those in the closure of a root (names a closure mentions that have no
    /// entry, such as bootstrap inputs, are not counted).
    pub live: BTreeSet<String>,
    /// Their total size, as recorded in their metadata.
    pub live_bytes: u64,
    pub removed: Vec<String>,
    pub freed_bytes: u64,
    pub stale_roots: Vec<PathBuf>,
}

#[derive(Debug)]
pub enum VerifyOutcome {
    Ok,
    Mismatch { expected: TreeHash, actual: TreeHash },
    Missing,
    Error(String),
}

impl Store {
    /// Opens the store a user named: an existing one, or a new one made in an existing directory,
    /// never along a mistyped path (`/srv/stroe/x` would otherwise make `/srv/stroe` too).
    pub fn open_named(root: &Path) -> Result<Store, StoreError> {
        if !root.exists() {
            let parent = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(StoreError::Io {
                    path: root.to_path_buf(),
                    message: format!(
                        "its parent directory {} does not exist (a new store is made only inside an existing directory)",
                        parent.display()
                    ),
                });
            }
        }
        Store::open(root)
    }

    /// Opens (and creates if needed) a store at `root`.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for sub in ["meta", "logs", "locks", "tmp", "sources", "roots", "temproots"] {
            let p = root.join(".spy").join(sub);
            fs_err::create_dir_all(&p).map_err(|e| StoreError::Io {
                path: p.clone(),
                message: e.to_string(),
            })?;
        }
        let root = fs_err::canonicalize(root).map_err(io(root))?;
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    fn spy(&self, sub: &str) -> PathBuf {
        self.root.join(".spy").join(sub)
    }
    /// Where an entry's output tree lives (whether or not it is complete: see [`Store::lookup`]).
    pub fn entry(&self, name: &StoreName) -> PathBuf {
        self.root.join(name.as_str())
    }
    fn meta_path(&self, name: &StoreName) -> PathBuf {
        self.spy("meta").join(format!("{name}.json"))
    }
    /// An entry's build log (written by its transaction; kept when the build fails).
    pub fn log_path(&self, name: &StoreName) -> PathBuf {
        self.spy("logs").join(format!("{name}.log"))
    }

    /// Opens `file_name`, a file at the top of entry `name` that a build wrote (its
    /// `manifest.json`), for reading: only a regular file, never through a symlink the build left
    /// there, never blocking on a FIFO. `None` if there is no such file.
    pub fn open_entry_file(&self, name: &StoreName, file_name: &str) -> Result<Option<File>, StoreError> {
        let path = self.entry(name).join(file_name);
        if file_name.is_empty() || file_name.contains('/') || file_name.starts_with('.') {
            return Err(StoreError::Io {
                path,
                message: "not a file name at the top of an entry".into(),
            });
        }
        open_regular_nofollow(&path)
    }

    /// Opens entry `name`'s build log for reading, if it is a regular file; `None` if it has none.
    pub fn open_log(&self, name: &StoreName) -> Result<Option<File>, StoreError> {
        open_regular_nofollow(&self.log_path(name))
    }
    /// `.spy/tmp`: build directories and staging files in progress.
    pub fn tmp_dir(&self) -> PathBuf {
        self.spy("tmp")
    }

    /// A directory of the store's own for `purpose`, created if needed, on the store's filesystem
    /// (so its files can be hard-linked with entries). Not collected by `gc`.
    pub fn scratch_dir(&self, purpose: Scratch) -> Result<PathBuf, StoreError> {
        let d = self.spy(match purpose {
            Scratch::Check => "check",
            Scratch::Serve => "serve",
        });
        fs_err::create_dir_all(&d).map_err(io(&d))?;
        Ok(d)
    }

    /// The saved host-tool identifications (`.spy/host-tools.json`), if there are any.
    pub fn host_tools(&self) -> Option<Vec<u8>> {
        fs_err::read(self.spy("host-tools.json")).ok()
    }

    /// Replaces the saved host-tool identifications, atomically (a staging file renamed over it).
    pub fn save_host_tools(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.save_state(&self.spy("host-tools.json"), bytes, 0o644)
    }

    /// The saved recipe cache of one graph directory (`.spy/recipes/<key>.jsonl`; `key`, lowercase
    /// hex, is the caller's hash of the directory), if there is one of at most `max` bytes.
    pub fn recipe_cache(&self, key: &str, max: u64) -> Option<Vec<u8>> {
        use std::io::Read;
        let p = self.recipe_cache_path(key)?;
        let file = open_regular_nofollow(&p).ok()??;
        if file.metadata().ok()?.len() > max {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(max).read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    /// Replaces one graph directory's recipe cache, atomically.
    pub fn save_recipe_cache(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let p = self.recipe_cache_path(key).ok_or_else(|| StoreError::BadEntryName(key.into()))?;
        let dir = self.spy("recipes");
        if !dir.is_dir() {
            private_dir(&dir)?;
        }
        // Owner only: the recipes of a private graph directory stay private.
        self.save_state(&p, bytes, 0o600)
    }

    /// Removes every saved recipe cache (`spy gc`): they are made again by the next load, and a
    /// store shared by many graph checkouts would otherwise keep one per checkout forever.
    fn drop_recipe_caches(&self) -> Result<(), StoreError> {
        let dir = self.spy("recipes");
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&dir)(e)),
            _ => Ok(()),
        }
    }

    fn recipe_cache_path(&self, key: &str) -> Option<PathBuf> {
        let hex = !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        hex.then(|| self.spy("recipes").join(format!("{key}.jsonl")))
    }

    /// Writes a state file of the store's own whole, with `mode`: a staging file renamed over it.
    fn save_state(&self, p: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        use std::io::Write;
        let mut tmp = self.staging_file_in(&self.tmp_dir(), "state-")?;
        tmp.write_all(bytes).map_err(io(p))?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io(p))?;
        tmp.persist(p).map_err(|e| StoreError::Io {
            path: p.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(())
    }

    /// The entry's metadata if the entry is complete; `None` if it does not exist (or is debris).
    pub fn lookup(&self, store_name: &StoreName) -> Result<Option<EntryMeta>, StoreError> {
        let p = self.meta_path(store_name);
        match fs_err::read(&p) {
            Ok(bytes) => {
                let meta: EntryMeta = serde_json::from_slice(&bytes).map_err(|e| StoreError::BadMeta {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                if self.entry(store_name).is_dir() {
                    Ok(Some(meta))
                } else {
                    Ok(None)
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io {
                path: p,
                message: e.to_string(),
            }),
        }
    }

    pub fn is_valid(&self, store_name: &StoreName) -> bool {
        matches!(self.lookup(store_name), Ok(Some(_)))
    }

    /// The names of the entries that have metadata, from one read of the metadata directory: a
    /// superset of the complete entries (an entry is complete when [`Store::lookup`] says so), so
    /// that a caller asking about thousands of names (`spy list`) makes one directory read instead
    /// of an open that fails for each name not built. Files whose names are not entry names were
    /// not written by this store; nothing refers to them.
    pub fn meta_names(&self) -> Result<Vec<StoreName>, StoreError> {
        let dir = self.spy("meta");
        let mut names = Vec::new();
        for e in fs_err::read_dir(&dir).map_err(io(&dir))? {
            let name = e.map_err(io(&dir))?.file_name().to_string_lossy().into_owned();
            if let Some(Ok(store_name)) = name.strip_suffix(".json").map(StoreName::parse) {
                names.push(store_name);
            }
        }
        Ok(names)
    }

    /// Blocks until this process holds the node's lock. `on_wait` is called once if another
    /// process holds it, so the caller can say why it is waiting.
    fn lock(&self, id: &NodeId, on_wait: impl FnOnce()) -> Result<NodeLock, StoreError> {
        let p = self.lock_path(id);
        match flock(&p, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(NodeLock { _lock: l }),
            Err(_) => {
                on_wait();
                Ok(NodeLock {
                    _lock: flock(&p, FlockArg::LockExclusive)?,
                })
            }
        }
    }

    /// The file whose flock is the node's lock (builds, substitution, gc).
    fn lock_path(&self, id: &NodeId) -> PathBuf {
        self.spy("locks").join(format!("{id}.lock"))
    }

    fn write_meta(&self, meta: &EntryMeta) -> Result<(), StoreError> {
        let p = self.meta_path(&meta.store_name);
        let mut tmp = tempfile::NamedTempFile::new_in(self.spy("meta")).map_err(io(&p))?;
        serde_json::to_writer_pretty(&mut tmp, meta).map_err(|e| StoreError::Io {
            path: p.clone(),
            message: e.to_string(),
        })?;
        tmp.as_file().sync_all().map_err(io(&p))?;
        tmp.persist(&p).map_err(|e| StoreError::Io {
            path: p.clone(),
            message: e.to_string(),
        })?;
        Ok(())
    }

    /// The complete entry of a node id, reading only the metadata whose name carries the id's
    /// prefix (entries are named `<id prefix>-name-version`).
    pub fn lookup_id(&self, id: &NodeId) -> Result<Option<EntryMeta>, StoreError> {
        let hex = id.to_hex();
        for store_name in self.meta_names()? {
            if hex.starts_with(store_name.id_prefix()) {
                if let Some(m) = self.lookup(&store_name)?.filter(|m| m.node.id == *id) {
                    return Ok(Some(m));
                }
            }
        }
        Ok(None)
    }

    /// Every complete entry.
    pub fn entries(&self) -> Result<Vec<EntryMeta>, StoreError> {
        let mut out = Vec::new();
        for store_name in self.meta_names()? {
            if let Some(m) = self.lookup(&store_name)? {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.store_name.cmp(&b.store_name));
        Ok(out)
    }

    /// Hard-links (or copies) every cached source of `other` into this store's source cache.
    pub fn link_sources_from(&self, other: &Store) -> Result<(), StoreError> {
        let from = other.spy("sources");
        for e in fs_err::read_dir(&from).map_err(io(&from))?.flatten() {
            let dest = self.spy("sources").join(e.file_name());
            if !dest.exists() && e.path().is_file() && std::fs::hard_link(e.path(), &dest).is_err() {
                fs_err::copy(e.path(), &dest).map_err(io(&dest))?;
            }
        }
        Ok(())
    }

    // ---- sources -------------------------------------------------------------------------

    /// Where a source with this sha256 lives once fetched.
    pub fn source_path(&self, sha: &Sha256) -> PathBuf {
        self.spy("sources").join(sha.to_hex())
    }
    /// Where a git source (archived at a commit) lives once fetched; `key` is the commit, or the
    /// commit and a digest of its excluded paths (`SourcePin::git_cache_key`).
    pub fn git_source_path(&self, key: &str) -> PathBuf {
        self.spy("sources").join(format!("git-{key}.tar"))
    }

    /// A temporary file in the store's filesystem for a download in progress (see
    /// [`Store::staging_file_in`]).
    pub fn staging_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        self.staging_file_in(&self.tmp_dir(), "fetch-")
    }

    /// A temporary file in `dir` (`.spy/tmp`, or a directory of the caller's), flock-held on its
    /// own descriptor for as long as that is open: `gc` removes from `.spy/tmp` exactly the staging
    /// files and directories whose lock is free, so a killed process's debris goes at the next
    /// `gc` and a live one's is never touched. Created under the shared GC lock, so a collection
    /// never sees one before its lock is taken.
    pub fn staging_file_in(&self, dir: &Path, prefix: &str) -> Result<tempfile::NamedTempFile, StoreError> {
        let _creating = flock(&self.spy("gc.lock"), FlockArg::LockShared)?;
        let tmp = tempfile::Builder::new().prefix(prefix).tempfile_in(dir).map_err(io(dir))?;
        hold_own_lock(tmp.as_file(), tmp.path())?;
        Ok(tmp)
    }

    /// A temporary directory in the store's filesystem (unpacking, git checkouts...), locked like
    /// [`Store::staging_file_in`] until dropped.
    pub fn staging_dir(&self, prefix: &str) -> Result<StagingDir, StoreError> {
        let d = self.tmp_dir();
        let _creating = flock(&self.spy("gc.lock"), FlockArg::LockShared)?;
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(&d).map_err(io(&d))?;
        let handle = File::open(dir.path()).map_err(io(dir.path()))?;
        let lock = Flock::lock(handle, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| StoreError::Io {
            path: dir.path().to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(StagingDir { dir, _lock: lock })
    }

    /// Moves a downloaded file into the source cache after checking its hash (`actual`, computed
    /// while it was written). A mismatch deletes the file and stores nothing.
    pub fn add_source(
        &self,
        tmp: tempfile::NamedTempFile,
        file: &str,
        expected: &Sha256,
        actual: &Sha256,
        origin: &str,
    ) -> Result<PathBuf, StoreError> {
        if expected != actual {
            drop(tmp);
            return Err(StoreError::SourceMismatch {
                file: file.into(),
                expected: *expected,
                actual: *actual,
                origin: origin.into(),
            });
        }
        let dest = self.source_path(expected);
        // Read-only, as every cached source: a source that could not be made so is not cached.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o444))
            .map_err(io(&dest))?;
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            message: e.to_string(),
        })?;
        Ok(dest)
    }

    /// Moves a finished git archive into the cache under its key (see [`Store::git_source_path`]).
    pub fn add_git_source(&self, tmp: tempfile::NamedTempFile, key: &str) -> Result<PathBuf, StoreError> {
        let dest = self.git_source_path(key);
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            message: e.to_string(),
        })?;
        Ok(dest)
    }

    // ---- roots, gc, verify ---------------------------------------------------------------

    /// Registers `names` as temporary roots of this process: `gc` keeps them (and their closures)
    /// while the returned guard lives. Taken under the shared GC lock, so a `gc` in progress
    /// finishes first and a later one sees these roots.
    pub fn add_temp_roots(&self, names: &[StoreName]) -> Result<TempRoots, StoreError> {
        let gc_lock = self.spy("gc.lock");
        let _shared = flock(&gc_lock, FlockArg::LockShared)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempfile_in(self.spy("temproots"))
            .map_err(io(&gc_lock))?;
        use std::io::Write;
        writeln!(tmp, "{}", names.iter().map(StoreName::as_str).collect::<Vec<_>>().join("\n")).map_err(io(tmp.path()))?;
        let (file, path) = tmp.keep().map_err(|e| StoreError::Io {
            path: gc_lock.clone(),
            message: e.to_string(),
        })?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| StoreError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(TempRoots { _lock: lock, path })
    }

    /// Entries named by temporary roots of live processes; files of dead ones are removed.
    fn temp_roots(&self) -> Result<BTreeSet<String>, StoreError> {
        let dir = self.spy("temproots");
        let mut live = BTreeSet::new();
        for e in fs_err::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let Ok(f) = File::options().write(true).open(e.path()) else {
                continue;
            };
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(_dead) => remove_file_if_present(&e.path())?,
                Err(_) => {
                    let text = fs_err::read_to_string(e.path()).unwrap_or_default();
                    live.extend(text.lines().filter(|l| !l.is_empty()).map(String::from));
                }
            }
        }
        Ok(live)
    }

    /// Points `link` at the entry and registers it as a GC root (like Nix's `gcroots/auto`).
    pub fn add_root(&self, link: &Path, store_name: &StoreName) -> Result<(), StoreError> {
        let target = self.entry(store_name);
        let tmp = link.with_file_name(format!(
            ".{}.tmp{}",
            link.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            std::process::id()
        ));
        remove_file_if_present(&tmp)?;
        std::os::unix::fs::symlink(&target, &tmp).map_err(io(&tmp))?;
        fs_err::rename(&tmp, link).map_err(io(link))?;
        let abs = std::path::absolute(link).map_err(io(link))?;
        let key = spy_hash::Blake3::of_bytes(abs.as_os_str().as_encoded_bytes()).short(32);
        let root = self.spy("roots").join(key);
        remove_file_if_present(&root)?;
        std::os::unix::fs::symlink(&abs, &root).map_err(io(&root))?;
        Ok(())
    }

    /// Entries named by live roots, and the roots whose link is gone or points elsewhere.
    fn roots(&self) -> Result<(BTreeSet<String>, Vec<PathBuf>), StoreError> {
        let dir = self.spy("roots");
        let mut live = BTreeSet::new();
        let mut stale = Vec::new();
        for e in fs_err::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let root = e.path();
            let resolved = fs_err::read_link(&root).ok().and_then(|link| fs_err::read_link(&link).ok());
            match resolved {
                Some(t) if t.parent() == Some(self.root.as_path()) => {
                    live.insert(t.file_name().unwrap_or_default().to_string_lossy().into_owned());
                }
                _ => stale.push(root),
            }
        }
        Ok((live, stale))
    }

    /// Removes every entry outside the closures of the roots, debris of crashed builds, and stale
    /// roots. Takes each victim's lock first so a running build is never collected.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport, StoreError> {
        let _exclusive = flock(&self.spy("gc.lock"), FlockArg::LockExclusive)?;
        let (mut roots, stale) = self.roots()?;
        roots.extend(self.temp_roots()?);
        let entries = self.entries()?;
        let by_name: std::collections::HashMap<&str, &EntryMeta> = entries.iter().map(|m| (m.store_name.as_str(), m)).collect();
        let mut live = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().collect();
        while let Some(n) = stack.pop() {
            if live.insert(n.clone()) {
                if let Some(m) = by_name.get(n.as_str()) {
                    stack.extend(m.inputs.iter().map(|i| i.to_string()));
                }
            }
        }
        let mut report = GcReport {
            stale_roots: stale.clone(),
            ..Default::default()
        };
        for m in &entries {
            if live.contains(m.store_name.as_str()) {
                report.live.insert(m.store_name.to_string());
                report.live_bytes += m.size;
                continue;
            }
            if !dry_run {
                // A node being rebuilt right now (its lock is held) is left alone, and not reported
                // as deleted.
                let Ok(_l) = flock(&self.lock_path(&m.node.id), FlockArg::LockExclusiveNonblock) else {
                    continue;
                };
                // Metadata first: from here on the entry no longer exists, even if removal is cut short.
                fs_err::remove_file(self.meta_path(&m.store_name)).map_err(io(&self.meta_path(&m.store_name)))?;
                remove_tree(&self.entry(&m.store_name))?;
                // An entry without a log (substituted, or its log already gone) is not an error.
                remove_file_if_present(&self.log_path(&m.store_name))?;
            }
            report.freed_bytes += m.size;
            report.removed.push(m.store_name.to_string());
        }
        // Debris: entry-like directories without metadata (an in-place build that died), and build
        // directories and downloads left in `.spy/tmp` by a killed spy. A build still running holds
        // its node's lock, so anything whose lock is taken is left alone.
        let mut debris: Vec<(String, PathBuf)> = Vec::new();
        for e in fs_err::read_dir(&self.root).map_err(io(&self.root))? {
            let e = e.map_err(io(&self.root))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.')
                && e.path().is_dir()
                && entry_prefix(&name).is_some()
                && !StoreName::parse(&name).is_ok_and(|n| self.meta_path(&n).exists())
            {
                debris.push((name, e.path()));
            }
        }
        let tmp = self.tmp_dir();
        for e in fs_err::read_dir(&tmp).map_err(io(&tmp))? {
            let e = e.map_err(io(&tmp))?;
            let name = e.file_name().to_string_lossy().into_owned();
            // Build directories go by their node's lock (below); staging files by their own.
            if entry_prefix(&name).is_some() || staging_abandoned(&e.path()) {
                debris.push((format!(".spy/tmp/{name}"), e.path()));
            }
        }
        for (name, path) in debris {
            let guard = match entry_prefix(path.file_name().unwrap_or_default().to_str().unwrap_or_default()) {
                Some(prefix) => match self.try_lock_prefix(prefix) {
                    Some(g) => g,
                    None => continue,
                },
                None => Vec::new(),
            };
            if !dry_run {
                // Staging files are files: `remove_tree` alone left them there. Debris that vanished
                // meanwhile (its owner finished with it) is gone all the same; any other failure is
                // reported, as for an entry, rather than counted as removed.
                match std::fs::symlink_metadata(&path) {
                    Ok(md) if md.is_dir() => remove_tree(&path)?,
                    Ok(_) => fs_err::remove_file(&path).map_err(io(&path))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(&path)(e)),
                }
            }
            report.removed.push(name);
            drop(guard);
        }
        if !dry_run {
            for r in &stale {
                remove_file_if_present(r)?;
            }
            self.drop_recipe_caches()?;
        }
        Ok(report)
    }

    /// Takes, without waiting, every node lock whose id starts with `prefix`; `None` if one is held.
    fn try_lock_prefix(&self, prefix: &str) -> Option<Vec<Flock<File>>> {
        let dir = self.spy("locks");
        let mut held = Vec::new();
        for e in fs_err::read_dir(&dir).ok()?.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                let f = File::options().write(true).open(e.path()).ok()?;
                held.push(Flock::lock(f, FlockArg::LockExclusiveNonblock).ok()?);
            }
        }
        Some(held)
    }

    /// Re-hashes entries (all, or those named) in parallel and compares with their metadata.
    pub fn verify(&self, only: Option<&[StoreName]>) -> Result<Vec<(EntryMeta, VerifyOutcome)>, StoreError> {
        use rayon::prelude::*;
        let mut entries = self.entries()?;
        if let Some(names) = only {
            entries.retain(|m| names.contains(&m.store_name));
        }
        Ok(entries
            .into_par_iter()
            .map(|m| {
                let p = self.entry(&m.store_name);
                let outcome = if !p.is_dir() {
                    VerifyOutcome::Missing
                } else {
                    match spy_hash::hash_tree(&p) {
                        Ok(s) if s.hash == m.tree_hash => VerifyOutcome::Ok,
                        Ok(s) => VerifyOutcome::Mismatch {
                            expected: m.tree_hash,
                            actual: s.hash,
                        },
                        Err(e) => VerifyOutcome::Error(e.to_string()),
                    }
                };
                (m, outcome)
            })
            .collect())
    }
}

/// Opens (creating if needed) a lock file and takes a flock on it.
fn flock(path: &Path, arg: FlockArg) -> Result<Flock<File>, StoreError> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    Flock::lock(f, arg).map_err(|(_, e)| StoreError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Takes an exclusive flock on `file`'s own descriptor (not a duplicate), so it lasts exactly as
/// long as that descriptor: a `NamedTempFile` keeps its lock until it is persisted or dropped.
pub fn hold_own_lock(file: &File, path: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    // `Flock` owns its file and would unlock on drop; the lock must live with the caller's.
    #[allow(deprecated)]
    nix::fcntl::flock(file.as_raw_fd(), FlockArg::LockExclusiveNonblock).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        message: format!("cannot lock: {e}"),
    })
}

/// Whether a staging file or directory (in `.spy/tmp`, or a cache's `.upload-*`) was left by a
/// process that is gone: nobody holds its lock. Anything that cannot be opened as ours (a symlink,
/// a FIFO) is debris too.
pub fn staging_abandoned(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    match opened {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file() || m.is_dir()) => Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok(),
        _ => true,
    }
}

/// Whether [`open_regular`] follows a symlink in the path's last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    Follow,
    Refuse,
}

/// Opens `path` for reading if it is a regular file. `O_NONBLOCK` keeps a FIFO from blocking the
/// open itself; `fstat` then refuses anything but a regular file, which ignores the flag. With
/// [`Symlinks::Refuse`], a symlink in the last component is an error (`O_NOFOLLOW`).
pub fn open_regular(path: &Path, symlinks: Symlinks) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let nofollow = if symlinks == Symlinks::Refuse { nix::libc::O_NOFOLLOW } else { 0 };
    let f = File::options()
        .read(true)
        .custom_flags(nofollow | nix::libc::O_NONBLOCK)
        .open(path)?;
    let kind = f.metadata()?.file_type();
    if !kind.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({kind:?}); refusing to read it"),
        ));
    }
    Ok(f)
}

/// A file a build or spy wrote, opened as [`open_regular`] never through a symlink; `None` if
/// there is none.
fn open_regular_nofollow(path: &Path) -> Result<Option<File>, StoreError> {
    match open_regular(path, Symlinks::Refuse) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        other => other.map(Some).map_err(io(path)),
    }
}

/// Creates `d` (its parent exists) with mode 0700, whatever the umask.
fn private_dir(d: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(d).map_err(io(d))?;
    fs_err::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(io(d))
}

/// Read-only store entries: directories 0555, files 0444 or 0555 (executables). The modes are set,
/// not masked: set-user-ID, set-group-ID and sticky bits a build (or an archive) left are gone, so
/// no entry ever carries them.
fn normalize_tree(root: &Path) -> Result<(), StoreError> {
    fn walk(p: &Path) -> Result<(), StoreError> {
        let md = fs_err::symlink_metadata(p).map_err(io(p))?;
        if md.is_symlink() {
            return Ok(());
        }
        if md.is_dir() {
            for e in fs_err::read_dir(p).map_err(io(p))? {
                walk(&e.map_err(io(p))?.path())?;
            }
            fs_err::set_permissions(p, std::fs::Permissions::from_mode(0o555)).map_err(io(p))?;
        } else {
            let mode = if md.permissions().mode() & 0o111 != 0 { 0o555 } else { 0o444 };
            fs_err::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(io(p))?;
        }
        Ok(())
    }
    walk(root)
}

/// Recreates the tree at `from` under `to` (an existing directory), hard-linking files.
fn link_or_copy_tree(from: &Path, to: &Path) -> Result<(), StoreError> {
    for e in fs_err::read_dir(from).map_err(io(from))? {
        let e = e.map_err(io(from))?;
        let (src, dest) = (e.path(), to.join(e.file_name()));
        let md = fs_err::symlink_metadata(&src).map_err(io(&src))?;
        if md.is_symlink() {
            let target = fs_err::read_link(&src).map_err(io(&src))?;
            std::os::unix::fs::symlink(target, &dest).map_err(io(&dest))?;
        } else if md.is_dir() {
            fs_err::create_dir(&dest).map_err(io(&dest))?;
            link_or_copy_tree(&src, &dest)?;
            fs_err::set_permissions(&dest, md.permissions()).map_err(io(&dest))?;
        } else if std::fs::hard_link(&src, &dest).is_err() {
            fs_err::copy(&src, &dest).map_err(io(&dest))?;
        }
    }
    Ok(())
}

/// Removes a tree even if it was made read-only.
pub fn remove_tree(p: &Path) -> Result<(), StoreError> {
    // Directories are opened to their owner only (0700, not 0755): a removal cut short (spy
    // killed while it clears a killed build's directory) leaves what remains as private as the
    // build directory was, set-user-ID files of the build included.
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::ffi::OsStrExt;
    // The first failure is the error (a mode that could not be set would otherwise surface as
    // remove_dir_all's less telling one). Each directory is opened below its parent's descriptor
    // without following links, and its mode set and its entries read through its own: a link put
    // where a directory was, at any depth, is not followed (`shown` only names it in errors).
    fn writable(parent: Option<RawFd>, name: &Path, shown: &Path) -> Result<(), StoreError> {
        use nix::fcntl::{openat, OFlag};
        use nix::sys::stat::{fchmod, Mode};
        let fd = match openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Gone, or not a directory (a file, or a link: O_NOFOLLOW refuses it).
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP) => return Ok(()),
            Err(e) => return Err(io(shown)(e.into())),
        };
        // Owns fd from here, and closes it on every path.
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| io(shown)(e.into()))?;
        fchmod(dir.as_raw_fd(), Mode::from_bits_truncate(0o700)).map_err(|e| io(shown)(e.into()))?;
        let mut names = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(|e| io(shown)(e.into()))?;
            let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push(PathBuf::from(name));
            }
        }
        for name in names {
            writable(Some(dir.as_raw_fd()), &name, &shown.join(&name))?;
        }
        Ok(())
    }
    if !p.exists() && std::fs::symlink_metadata(p).is_err() {
        return Ok(());
    }
    writable(None, p, p)?;
    std::fs::remove_dir_all(p).map_err(io(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_tree_removes_read_only_trees_and_follows_no_link() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o555)).unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        for dir in ["a/b", "a", ""] {
            std::fs::set_permissions(tree.join(dir), std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        remove_tree(&tree).unwrap();
        assert!(std::fs::symlink_metadata(&tree).is_err());
        let mode = std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o555, "the link's target was changed");
        // Gone already: nothing to do, no error.
        remove_tree(&tree).unwrap();
    }

    #[test]
    fn a_named_store_is_made_only_inside_an_existing_directory() {
        let d = tempfile::tempdir().unwrap();
        let typo = d.path().join("stroe").join("s");
        let e = Store::open_named(&typo).unwrap_err().to_string();
        assert!(e.contains("parent directory") && e.contains("stroe"), "{e}");
        assert!(!d.path().join("stroe").exists());
        let fresh = d.path().join("s");
        Store::open_named(&fresh).unwrap();
        assert!(fresh.join(".spy/meta").is_dir());
        // An existing store opens wherever it is.
        Store::open_named(&fresh).unwrap();
    }

    fn build(store: &Store, id: u8, name: &str, inputs: Vec<StoreName>) -> StoreName {
        build_with(store, id, name, inputs, |out| std::fs::write(out.join("file"), name))
    }

    fn build_with(store: &Store, id: u8, name: &str, inputs: Vec<StoreName>, make: impl FnOnce(&Path) -> std::io::Result<()>) -> StoreName {
        let sn = StoreName::new(&NodeId([id; 32]), name, "1").unwrap();
        let entry = NewEntry {
            node: EntryNode {
                id: NodeId([id; 32]),
                name: name.into(),
                version: "1".into(),
                target: "t".into(),
                license: String::new(),
            },
            inputs,
            sources: vec![],
            origin: Origin::Built {
                sandboxed: false,
                in_place: false,
            },
        };
        let r = store.transact(entry, || {}, |w| make(w.out())).unwrap();
        assert!(matches!(r, Transacted::Registered { .. }));
        sn
    }

    #[test]
    fn gc_removes_abandoned_staging_at_once_and_keeps_held_ones() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("store")).unwrap();
        let tmp = store.tmp_dir();
        // Held by this process (a second descriptor's flock conflicts as another process's would).
        let live_file = store.staging_file().unwrap();
        let live_dir = store.staging_dir("git-").unwrap();
        let live_push = store.staging_file_in(&tmp, "push-").unwrap();
        // Left by processes that are gone: brand new, so an age rule would keep them.
        let (_, dead_file) = store.staging_file().unwrap().keep().unwrap();
        let dead_dir = store.staging_dir("apt-").unwrap().dir.keep();
        std::fs::write(dead_dir.join("partial"), b"x").unwrap();
        std::fs::write(tmp.join("fetch-never-locked"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tmp.join("pip-link")).unwrap();
        nix::unistd::mkfifo(&tmp.join("fetch-fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let r = store.gc(false).unwrap();
        let removed: BTreeSet<String> = r.removed.iter().cloned().collect();
        for gone in [
            &dead_file,
            &dead_dir,
            &tmp.join("fetch-never-locked"),
            &tmp.join("pip-link"),
            &tmp.join("fetch-fifo"),
        ] {
            assert!(
                std::fs::symlink_metadata(gone).is_err(),
                "{} survived gc: {removed:?}",
                gone.display()
            );
            let name = format!(".spy/tmp/{}", gone.file_name().unwrap().to_string_lossy());
            assert!(removed.contains(&name), "{name} not reported: {removed:?}");
        }
        assert!(std::fs::metadata("/etc/passwd").is_ok());
        for kept in [live_file.path(), live_dir.path(), live_push.path()] {
            assert!(kept.exists(), "{} (held) was removed", kept.display());
        }
        // Still usable, and gone once dropped.
        let (dir_path, file_path) = (live_dir.path().to_path_buf(), live_file.path().to_path_buf());
        drop((live_file, live_dir, live_push));
        assert!(!dir_path.exists() && !file_path.exists());
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn registration_strips_special_bits() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("store")).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        let sn = build_with(&store, 9, "suid", vec![], |out| {
            for (name, m) in [("suid", 0o4755), ("sgid", 0o2755), ("plain", 0o644)] {
                let f = out.join(name);
                std::fs::write(&f, name)?;
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m))?;
            }
            let shared = out.join("shared");
            std::fs::create_dir(&shared)?;
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o3777))
        });
        let e = store.entry(&sn);
        assert_eq!(
            [
                mode(&e.join("suid")),
                mode(&e.join("sgid")),
                mode(&e.join("plain")),
                mode(&e.join("shared"))
            ],
            [0o555, 0o555, 0o444, 0o555]
        );
        // An in-place build's output and its build directory are private until registered.
        let entry = NewEntry {
            node: EntryNode {
                id: NodeId([8; 32]),
                name: "inplace".into(),
                version: "1".into(),
                target: "t".into(),
                license: String::new(),
            },
            inputs: vec![],
            sources: vec![],
            origin: Origin::Built {
                sandboxed: false,
                in_place: true,
            },
        };
        store
            .transact(
                entry,
                || {},
                |w| {
                    assert_eq!((mode(w.out()), mode(w.private_dir())), (0o700, 0o700));
                    assert_eq!(w.out(), store.entry(w.store_name()));
                    Ok::<_, StoreError>(())
                },
            )
            .unwrap();
    }

    #[test]
    fn metadata_keeps_its_format_on_disk() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("store")).unwrap();
        let sn = build(&store, 5, "m", vec![]);
        let text = std::fs::read_to_string(store.meta_path(&sn)).unwrap();
        // Top-level keys, in the order they are written (the node's fields inline, as always).
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim_start().trim_start_matches('"').split('"').next().unwrap())
            .collect();
        let expected = [
            "format",
            "id",
            "name",
            "version",
            "target",
            "store_name",
            "tree_hash",
            "size",
            "files",
            "inputs",
            "sources",
            "build_seconds",
            "registered_at",
            "builder",
            "sandboxed",
        ];
        assert_eq!(keys, expected, "{text}");
        let meta = store.lookup(&sn).unwrap().unwrap();
        assert_eq!((meta.node.name.as_str(), meta.node.id), ("m", NodeId([5; 32])));
    }

    #[test]
    fn register_gc_verify() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("store")).unwrap();
        let a = build(&store, 1, "a", vec![]);
        let b = build(&store, 2, "b", vec![a.clone()]);
        let c = build(&store, 3, "c", vec![]);
        assert!(store.is_valid(&a) && store.is_valid(&b));
        let mode = std::fs::metadata(store.entry(&a).join("file")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
        store.add_root(&d.path().join("result"), &b).unwrap();
        // Debris of a crash: an entry directory without metadata.
        std::fs::create_dir(store.root().join(format!("{}-d-1", NodeId([4; 32]).short(32)))).unwrap();
        let r = store.gc(true).unwrap();
        assert_eq!(r.removed.len(), 2);
        assert!(store.is_valid(&c));
        // What is kept is counted in entries that exist, with their recorded sizes; kept and
        // removed add up to the store.
        assert_eq!(r.live, [a.to_string(), b.to_string()].into_iter().collect());
        let size = |n: &StoreName| store.entries().unwrap().iter().find(|m| &m.store_name == n).unwrap().size;
        assert_eq!(r.live_bytes, size(&a) + size(&b));
        assert_eq!(r.live.len() + 1, store.entries().unwrap().len());
        let r = store.gc(false).unwrap();
        assert_eq!(r.removed.len(), 2, "{r:?}");
        assert!(store.is_valid(&a) && store.is_valid(&b) && !store.is_valid(&c));
        // verify
        let v = store.verify(None).unwrap();
        assert!(v.iter().all(|(_, o)| matches!(o, VerifyOutcome::Ok)), "{v:?}");
        let f = store.entry(&a).join("file");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&f, "tampered").unwrap();
        let v = store.verify(None).unwrap();
        assert_eq!(v.iter().filter(|(_, o)| matches!(o, VerifyOutcome::Mismatch { .. })).count(), 1);
        // Removing the root link frees everything.
        std::fs::remove_file(d.path().join("result")).unwrap();
        let r = store.gc(false).unwrap();
        assert_eq!(r.removed.len(), 2);
        assert_eq!(r.stale_roots.len(), 1);
    }

    #[test]
    fn gc_reports_only_what_it_deleted_and_leaves_an_entry_whose_lock_is_held() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("store")).unwrap();
        let a = build(&store, 1, "a", vec![]);
        let b = build(&store, 2, "b", vec![]);
        // Another spy is rebuilding b: its node lock is held.
        let _held = flock(&store.lock_path(&NodeId([2; 32])), FlockArg::LockExclusiveNonblock).unwrap();
        assert_eq!(store.gc(true).unwrap().removed.len(), 2, "a dry run names every dead entry");
        let size_a = store.entries().unwrap().iter().find(|m| m.store_name == a).unwrap().size;
        let r = store.gc(false).unwrap();
        assert_eq!(r.removed, [a.to_string()]);
        assert_eq!(r.freed_bytes, size_a, "{r:?}");
        assert!(!store.is_valid(&a) && store.is_valid(&b));
    }

    #[test]
    fn an_entry_file_is_opened_only_as_a_regular_file_not_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(&d.path().join("store")).unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, "root's secret").unwrap();
        let e = build_with(&store, 1, "e", vec![], |out| {
            std::fs::write(out.join("manifest.json"), "{}")?;
            std::os::unix::fs::symlink(&secret, out.join("evil.json"))?;
            std::fs::create_dir(out.join("dir"))
        });
        let mut text = String::new();
        std::io::Read::read_to_string(&mut store.open_entry_file(&e, "manifest.json").unwrap().unwrap(), &mut text).unwrap();
        assert_eq!(text, "{}");
        assert!(store.open_entry_file(&e, "missing.json").unwrap().is_none());
        assert!(store.open_entry_file(&e, "evil.json").is_err(), "a symlink is never followed");
        assert!(store
            .open_entry_file(&e, "dir")
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(store.open_entry_file(&e, "../e/manifest.json").is_err());
        assert!(store.open_log(&e).unwrap().is_none(), "no builder ran, so no log");
        std::os::unix::fs::symlink(&secret, store.log_path(&e)).unwrap();
        assert!(store.open_log(&e).is_err(), "a symlink is never followed");
    }
}
