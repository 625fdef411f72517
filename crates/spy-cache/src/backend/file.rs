//! A cache in a local directory (`file:///srv/spy-cache`).
//!
//! Reads open only regular files (`O_NONBLOCK`, then `fstat`), so a FIFO or device planted in the
//! cache cannot hang or feed a substitution. Writes go to `.upload-*` temporary files beside their
//! destination, each flock-held by its pusher until renamed into place; a pusher that dies leaves
//! its file unlocked, and the next push to the directory removes it ([`FileBackend::sweep_uploads`]).
//! Temporary files are created under a shared lock on `.spy-cache.lock`, which the sweep holds
//! exclusively, so a sweep never sees one before its lock is taken.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{Flock, FlockArg};

use super::{check_rel, Backend};
use crate::CacheError;

/// Prefixes of temporary files in a directory cache: uploads, and `spy serve`'s packing.
const TEMP_PREFIXES: [&str; 2] = [".upload-", "push-"];

pub struct FileBackend {
    url: String,
    root: PathBuf,
    swept: AtomicBool,
}

impl FileBackend {
    pub fn new(url: &str, root: &Path) -> Result<FileBackend, CacheError> {
        if !root.is_absolute() {
            return Err(CacheError::UnsupportedUrl {
                url: format!("{url} (a file cache needs an absolute path: file:///DIR)"),
            });
        }
        Ok(FileBackend {
            url: url.to_string(),
            root: root.to_path_buf(),
            swept: AtomicBool::new(false),
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn io(&self, p: &Path, e: impl std::fmt::Display) -> CacheError {
        CacheError::Io {
            path: p.to_path_buf(),
            message: e.to_string(),
        }
    }

    /// The cache's lock file: shared while a temporary file is created, exclusive while swept.
    fn lock(&self, arg: FlockArg) -> Result<Flock<File>, CacheError> {
        let p = self.root.join(".spy-cache.lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| self.io(&p, e))?;
        Flock::lock(f, arg).map_err(|(_, e)| self.io(&p, e))
    }

    /// Removes the temporary files of pushers that are gone (their flock is free) from the cache's
    /// root, `meta/` and `archives/`; returns them. Live pushers' files are left alone.
    pub fn sweep_uploads(&self) -> Result<Vec<PathBuf>, CacheError> {
        if !self.root.is_dir() {
            return Ok(Vec::new());
        }
        let _exclusive = self.lock(FlockArg::LockExclusive)?;
        let mut removed = Vec::new();
        for dir in [self.root.clone(), self.root.join("meta"), self.root.join("archives")] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if TEMP_PREFIXES.iter().any(|p| name.starts_with(p)) && spy_store::staging_abandoned(&e.path()) {
                    fs_err::remove_file(e.path()).map_err(|err| self.io(&e.path(), err))?;
                    removed.push(e.path());
                }
            }
        }
        Ok(removed)
    }
}

/// Opens `p` for reading if it is a regular file ([`spy_store::open_regular`]; a symlink is
/// followed here, as it always was).
pub(crate) fn open_regular(p: &Path) -> std::io::Result<File> {
    spy_store::open_regular(p, spy_store::Symlinks::Follow)
}

impl Backend for FileBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn get(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>, CacheError> {
        check_rel(&self.url, rel)?;
        let p = self.path(rel);
        match open_regular(&p) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.root.is_dir() {
                    Ok(None)
                } else {
                    Err(CacheError::Unreachable {
                        url: self.url.clone(),
                        message: format!("{} is not a directory", self.root.display()),
                    })
                }
            }
            Err(e) => Err(self.io(&p, e)),
        }
    }

    fn has(&self, rel: &str) -> Result<bool, CacheError> {
        check_rel(&self.url, rel)?;
        Ok(self.path(rel).is_file())
    }

    fn put(&self, rel: &str, from: &Path) -> Result<(), CacheError> {
        check_rel(&self.url, rel)?;
        let dest = self.path(rel);
        let dir = dest.parent().unwrap_or(&self.root);
        fs_err::create_dir_all(dir).map_err(|e| self.io(dir, e))?;
        if !self.swept.swap(true, Ordering::SeqCst) {
            self.sweep_uploads()?;
        }
        // Dropped on any error below, which deletes it: a failed push leaves nothing behind.
        let mut tmp = {
            let _creating = self.lock(FlockArg::LockShared)?;
            let tmp = tempfile::Builder::new()
                .prefix(".upload-")
                .tempfile_in(dir)
                .map_err(|e| self.io(dir, e))?;
            spy_store::hold_own_lock(tmp.as_file(), tmp.path())?;
            tmp
        };
        let mut src = fs_err::File::open(from).map_err(|e| self.io(from, e))?;
        std::io::copy(&mut src, tmp.as_file_mut()).map_err(|e| self.io(&dest, e))?;
        tmp.as_file().sync_all().map_err(|e| self.io(&dest, e))?;
        // Cache files are readable by whoever serves the directory. Through the open file, not
        // its path, and an upload whose mode cannot be set is an error, not a file left private.
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(|e| self.io(&dest, e))?;
        tmp.persist(&dest).map_err(|e| self.io(&dest, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let b = FileBackend::new("file:///x", d.path()).unwrap();
        std::fs::create_dir(d.path().join("archives")).unwrap();
        let fifo = d.path().join("archives/f.tar.zst");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let t0 = std::time::Instant::now();
        let e = b.get("archives/f.tar.zst").err().expect("a FIFO is not read");
        assert!(t0.elapsed() < std::time::Duration::from_secs(1), "took {:?}", t0.elapsed());
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // Nor a directory, nor a path leaving the cache.
        assert!(b.get("archives").is_err());
        for bad in ["../etc/passwd", "/etc/passwd", "archives/../../x", "archives//x", "./meta/x"] {
            assert!(matches!(b.get(bad), Err(CacheError::BadPath { .. })), "{bad}");
            assert!(matches!(b.put(bad, &fifo), Err(CacheError::BadPath { .. })), "{bad}");
        }
    }

    #[test]
    fn uploads_of_dead_pushers_are_swept_and_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cache");
        std::fs::create_dir_all(root.join("archives")).unwrap();
        std::fs::create_dir_all(root.join("meta")).unwrap();
        // A pusher killed mid-upload: its file is there, its lock is gone.
        let dead = [
            root.join("archives/.upload-dead1"),
            root.join("meta/.upload-dead2"),
            root.join("push-dead3"),
        ];
        for p in &dead {
            std::fs::write(p, b"partial").unwrap();
        }
        // A pusher still running (this process, another descriptor): kept.
        let live = tempfile::Builder::new()
            .prefix(".upload-")
            .tempfile_in(root.join("archives"))
            .unwrap();
        spy_store::hold_own_lock(live.as_file(), live.path()).unwrap();
        // Not ours: kept.
        std::fs::write(root.join("archives/keep.tar.zst"), b"x").unwrap();
        let b = FileBackend::new("file:///x", &root).unwrap();
        let src = d.path().join("src");
        std::fs::write(&src, b"archive").unwrap();
        b.put("archives/new.tar.zst", &src).unwrap();
        for p in &dead {
            assert!(!p.exists(), "{} survived", p.display());
        }
        assert!(live.path().exists());
        assert!(root.join("archives/keep.tar.zst").exists());
        assert_eq!(std::fs::read(root.join("archives/new.tar.zst")).unwrap(), b"archive");
        // A failed upload (the source vanished) leaves no temporary file.
        assert!(b.put("archives/other.tar.zst", &d.path().join("missing")).is_err());
        let left: Vec<_> = std::fs::read_dir(root.join("archives"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload-"))
            .collect();
        assert_eq!(left.len(), 1, "only the live pusher's: {left:?}");
    }
}
