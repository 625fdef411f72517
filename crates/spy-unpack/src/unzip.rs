//! Zip archives, entry by entry in central-directory order, written through [`Tree`]. A symlink
//! entry (unix mode `S_IFLNK`) holds its target as data; other special kinds are skipped.

use std::io::{Read, Seek};

use super::tree::{EntryPath, Tree};
use super::UnpackError;

/// Longest symlink target read from an entry (Linux's PATH_MAX).
const MAX_LINK: u64 = 4096;

pub(crate) fn unpack(t: &mut Tree, file: impl Read + Seek) -> Result<(), UnpackError> {
    let mut z = zip::ZipArchive::new(file).map_err(|e| UnpackError::io(t.archive(), None, e))?;
    for i in 0..z.len() {
        let mut f = z
            .by_index(i)
            .map_err(|e| UnpackError::io(t.archive(), None, format!("entry {i}: {e}")))?;
        let name = f.name().to_string();
        let path = match EntryPath::parse(name.as_bytes()) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(why) => return Err(t.escape(&name, why)),
        };
        let mode = f.unix_mode();
        match mode.map(|m| m & 0o170000) {
            Some(0o040000) => t.dir(&path, &name)?,
            _ if name.ends_with('/') => t.dir(&path, &name)?,
            Some(0o120000) => {
                let mut target = Vec::new();
                (&mut f).take(MAX_LINK + 1).read_to_end(&mut target).map_err(|e| t.io(&name, e))?;
                if target.len() as u64 > MAX_LINK {
                    return Err(t.invalid(&name, "symlink target longer than 4096 bytes"));
                }
                t.symlink(&path, &name, &target)?;
            }
            None | Some(0o100000) | Some(0) => t.file(&path, &name, &mut f, mode.unwrap_or(0o644), None)?,
            Some(_) => t.skip(),
        }
    }
    Ok(())
}
