//! The one writer of unpacked trees. Every operation names a single component below a directory
//! handle that was itself opened with `O_NOFOLLOW`, starting from the destination: a path is never
//! handed to the kernel whole, so neither `..`, nor an absolute path, nor a symlink (planted by an
//! earlier entry or already there) can lead a write outside the destination.

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, DirBuilder, DirBuilderExt, OpenOptions, OpenOptionsExt, Permissions, PermissionsExt};

use super::{LinkTargets, Options, UnpackError};

/// What an archive put in its destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Regular files (hard links included) and their bytes.
    pub files: u64,
    pub bytes: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Entries not materialized: device nodes, FIFOs, sockets, unknown kinds, pax globals.
    pub skipped: u64,
}

/// An entry's path: only normal components (`.` and empty ones dropped), never `..` or a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryPath {
    comps: Vec<OsString>,
}

impl EntryPath {
    /// `Ok(None)` for a path naming the destination itself (`./`); `Err(why)` for a path that
    /// would leave it.
    pub(crate) fn parse(raw: &[u8]) -> Result<Option<EntryPath>, &'static str> {
        if raw.first() == Some(&b'/') {
            return Err("absolute path");
        }
        if raw.contains(&0) {
            return Err("NUL in the name");
        }
        let mut comps = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err("`..` in the path"),
                c => comps.push(OsStr::from_bytes(c).to_os_string()),
            }
        }
        Ok((!comps.is_empty()).then_some(EntryPath { comps }))
    }

    fn parent(&self) -> &[OsString] {
        &self.comps[..self.comps.len() - 1]
    }

    fn name(&self) -> &OsStr {
        &self.comps[self.comps.len() - 1]
    }
}

/// Whether a symlink in a directory `depth` levels below the root, pointing at `target`, resolves
/// inside the root whatever other symlinks the tree holds: relative, `..` only as leading
/// components and no more of them than `depth`. (`a/../..` is refused: if `a` is a symlink, its
/// `..` is not the link's directory.)
pub(crate) fn link_stays_inside(depth: usize, target: &[u8]) -> bool {
    if target.is_empty() || target.first() == Some(&b'/') || target.contains(&0) {
        return false;
    }
    let (mut ups, mut named) = (0usize, false);
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if named => return false,
            b".." => ups += 1,
            _ => named = true,
        }
    }
    ups <= depth
}

fn shown(comps: &[OsString]) -> String {
    let parts: Vec<_> = comps.iter().map(|c| c.to_string_lossy()).collect();
    parts.join("/")
}

pub(crate) struct Tree {
    archive: PathBuf,
    root: Dir,
    opts: Options,
    /// The directory of the last entry, reused by the next one in the same directory.
    last: Option<(Vec<OsString>, Dir)>,
    pub(crate) summary: Summary,
}

impl Tree {
    /// Opens (creating it if needed) the destination; `archive` names the archive in errors.
    pub(crate) fn open(archive: &Path, dest: &Path, opts: &Options) -> Result<Tree, UnpackError> {
        let io = |e: std::io::Error| UnpackError::Io {
            archive: archive.into(),
            entry: None,
            message: format!("destination {}: {e}", dest.display()),
        };
        std::fs::create_dir_all(dest).map_err(io)?;
        let root = Dir::open_ambient_dir(dest, cap_std::ambient_authority()).map_err(io)?;
        Ok(Tree {
            archive: archive.into(),
            root,
            opts: *opts,
            last: None,
            summary: Summary::default(),
        })
    }

    pub(crate) fn archive(&self) -> &Path {
        &self.archive
    }

    pub(crate) fn io(&self, entry: &str, e: impl std::fmt::Display) -> UnpackError {
        UnpackError::io(&self.archive, Some(entry), e)
    }
    pub(crate) fn escape(&self, entry: &str, why: impl Into<String>) -> UnpackError {
        UnpackError::Escape {
            archive: self.archive.clone(),
            entry: entry.into(),
            why: why.into(),
        }
    }
    pub(crate) fn invalid(&self, entry: &str, why: impl Into<String>) -> UnpackError {
        UnpackError::Invalid {
            archive: self.archive.clone(),
            entry: entry.into(),
            why: why.into(),
        }
    }

    /// The directory holding `path`, opened component by component without following links,
    /// creating missing ones if `create`.
    fn parent(&mut self, path: &EntryPath, entry: &str, create: bool) -> Result<Dir, UnpackError> {
        let parent = path.parent();
        if let Some((p, d)) = &self.last {
            if p.as_slice() == parent {
                return d.try_clone().map_err(|e| self.io(entry, e));
            }
        }
        let mut dir = self.root.try_clone().map_err(|e| self.io(entry, e))?;
        for i in 0..parent.len() {
            dir = self.step(&dir, &parent[..=i], entry, create)?;
        }
        self.last = Some((parent.to_vec(), dir.try_clone().map_err(|e| self.io(entry, e))?));
        Ok(dir)
    }

    /// Opens (or creates) the last component of `so_far` in `dir`, which holds the others.
    fn step(&mut self, dir: &Dir, so_far: &[OsString], entry: &str, create: bool) -> Result<Dir, UnpackError> {
        let name = &so_far[so_far.len() - 1];
        match dir.open_dir_nofollow(name) {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == ErrorKind::NotFound && create => {
                dir.create_dir_with(name, DirBuilder::new().mode(0o755))
                    .map_err(|e| self.io(entry, e))?;
                self.summary.dirs += 1;
                dir.open_dir_nofollow(name).map_err(|e| self.io(entry, e))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(self.invalid(entry, format!("`{}` is not in the archive before it", shown(so_far))))
            }
            Err(e) => Err(match dir.symlink_metadata(name) {
                Ok(md) if md.is_symlink() => {
                    self.escape(entry, format!("`{}` is a symlink; nothing is unpacked through one", shown(so_far)))
                }
                Ok(_) => self.invalid(entry, format!("`{}` is not a directory", shown(so_far))),
                Err(_) => self.io(entry, e),
            }),
        }
    }

    /// Makes room for a new non-directory entry: removes a file or symlink of that name (never
    /// following it); a directory stays and the entry is refused.
    fn clear(&self, dir: &Dir, name: &OsStr, entry: &str) -> Result<(), UnpackError> {
        match dir.symlink_metadata(name) {
            Ok(md) if md.is_dir() => Err(self.invalid(entry, "a directory of that name is already unpacked")),
            Ok(_) => dir.remove_file_or_symlink(name).map_err(|e| self.io(entry, e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(entry, e)),
        }
    }

    fn count_file(&mut self, entry: &str) -> Result<(), UnpackError> {
        if let Some(limit) = self.opts.limits.files {
            if self.summary.files >= limit {
                return Err(UnpackError::OverBudget {
                    archive: self.archive.clone(),
                    entry: entry.into(),
                    what: "files",
                    limit,
                });
            }
        }
        self.summary.files += 1;
        Ok(())
    }

    pub(crate) fn dir(&mut self, path: &EntryPath, entry: &str) -> Result<(), UnpackError> {
        let parent = self.parent(path, entry, true)?;
        let mut so_far = path.parent().to_vec();
        so_far.push(path.name().to_os_string());
        self.step(&parent, &so_far, entry, true).map(|_| ())
    }

    /// A regular file with `reader`'s bytes: mode 0755 if `mode` has an executable bit, else 0644;
    /// `mtime` (seconds since the epoch) if the options keep them.
    pub(crate) fn file(
        &mut self,
        path: &EntryPath,
        entry: &str,
        reader: &mut dyn Read,
        mode: u32,
        mtime: Option<u64>,
    ) -> Result<(), UnpackError> {
        let dir = self.parent(path, entry, true)?;
        self.clear(&dir, path.name(), entry)?;
        self.count_file(entry)?;
        let mut f = dir
            .open_with(path.name(), OpenOptions::new().write(true).create_new(true).mode(0o600))
            .map_err(|e| self.io(entry, e))?;
        // The final mode at once (not subject to the umask), so a file cut short by an error is no
        // different.
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        f.set_permissions(Permissions::from_mode(mode)).map_err(|e| self.io(entry, e))?;
        let allowed = match self.opts.limits.bytes {
            Some(limit) => limit.saturating_sub(self.summary.bytes),
            None => u64::MAX,
        };
        let n = std::io::copy(&mut reader.take(allowed), &mut f).map_err(|e| self.io(entry, e))?;
        self.summary.bytes += n;
        if let Some(limit) = self.opts.limits.bytes.filter(|_| n == allowed) {
            // The budget is spent: one more byte (read, never written) is one too many.
            let mut probe = [0u8; 1];
            if reader.read(&mut probe).map_err(|e| self.io(entry, e))? > 0 {
                return Err(UnpackError::OverBudget {
                    archive: self.archive.clone(),
                    entry: entry.into(),
                    what: "bytes",
                    limit,
                });
            }
        }
        if let Some(t) = mtime.filter(|_| self.opts.mtimes) {
            // A time the filesystem cannot hold is not worth refusing a source for.
            if let Some(t) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(t.min(i64::MAX as u64))) {
                let _ = f.into_std().set_modified(t);
            }
        }
        Ok(())
    }

    pub(crate) fn symlink(&mut self, path: &EntryPath, entry: &str, target: &[u8]) -> Result<(), UnpackError> {
        let shown_target = String::from_utf8_lossy(target);
        if target.is_empty() || target.contains(&0) {
            return Err(self.invalid(entry, "symlink without a target"));
        }
        if self.opts.links == LinkTargets::Contained && !link_stays_inside(path.parent().len(), target) {
            return Err(self.escape(entry, format!("symlink to {shown_target}")));
        }
        let dir = self.parent(path, entry, true)?;
        self.clear(&dir, path.name(), entry)?;
        let target = OsStr::from_bytes(target);
        let made = match self.opts.links {
            // cap-std refuses absolute targets too.
            LinkTargets::Contained => dir.symlink(target, path.name()),
            LinkTargets::Any => dir.symlink_contents(target, path.name()),
        };
        made.map_err(|e| self.io(entry, e))?;
        self.summary.symlinks += 1;
        Ok(())
    }

    /// A hard link to `target`, a regular file unpacked earlier (never a symlink or directory).
    pub(crate) fn hard_link(&mut self, path: &EntryPath, entry: &str, target: &[u8]) -> Result<(), UnpackError> {
        let shown_target = String::from_utf8_lossy(target).into_owned();
        let t = match EntryPath::parse(target) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(self.invalid(entry, "hard link to the destination itself")),
            Err(why) => return Err(self.escape(entry, format!("hard link to {shown_target}: {why}"))),
        };
        if &t == path {
            return Err(self.invalid(entry, "hard link to itself"));
        }
        let from = self.parent(&t, entry, false)?;
        match from.symlink_metadata(t.name()) {
            Ok(md) if md.is_file() => {}
            Ok(md) if md.is_symlink() => return Err(self.escape(entry, format!("hard link to the symlink {shown_target}"))),
            Ok(_) => return Err(self.invalid(entry, format!("hard link to {shown_target}, which is not a regular file"))),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(self.invalid(entry, format!("hard link to {shown_target}, which is not unpacked before it")))
            }
            Err(e) => return Err(self.io(entry, e)),
        }
        let dir = self.parent(path, entry, true)?;
        self.clear(&dir, path.name(), entry)?;
        self.count_file(entry)?;
        from.hard_link(t.name(), &dir, path.name()).map_err(|e| self.io(entry, e))
    }

    pub(crate) fn skip(&mut self) {
        self.summary.skipped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        let p = |s: &str| EntryPath::parse(s.as_bytes()).map(|o| o.map(|e| shown(&e.comps)));
        assert_eq!(p("pkg/./a//b"), Ok(Some("pkg/a/b".into())));
        assert_eq!(p("./"), Ok(None));
        assert!(p("/etc/passwd").is_err());
        assert!(p("pkg/../../x").is_err());
        assert!(p("..").is_err());
    }

    #[test]
    fn contained_links() {
        assert!(link_stays_inside(1, b"../a.txt"));
        assert!(link_stays_inside(0, b"a/b"));
        assert!(link_stays_inside(2, b"../../x/y"));
        assert!(!link_stays_inside(1, b"../../x"));
        assert!(
            !link_stays_inside(3, b"a/../.."),
            "`..` after a name could climb out of a symlinked `a`"
        );
        assert!(!link_stays_inside(3, b"/etc"));
        assert!(!link_stays_inside(3, b""));
    }
}
