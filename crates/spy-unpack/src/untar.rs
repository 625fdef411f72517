//! Tar streams, read entry by entry with the `tar` crate (which handles GNU long names and pax
//! headers) and written through [`Tree`]: the crate's own unpacking, which follows links on disk
//! and takes modes from the archive, is never used.

use std::io::Read;

use tar::EntryType;

use super::tree::{EntryPath, Tree};
use super::UnpackError;

pub(crate) fn unpack(t: &mut Tree, reader: impl Read) -> Result<(), UnpackError> {
    let mut ar = tar::Archive::new(reader);
    let entries = ar.entries().map_err(|e| UnpackError::io(t.archive(), None, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| UnpackError::io(t.archive(), None, e))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if !matches!(
            kind,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse | EntryType::Directory | EntryType::Symlink | EntryType::Link
        ) {
            // Device nodes, FIFOs, pax global headers, volume labels...: never materialized.
            t.skip();
            continue;
        }
        let path = match EntryPath::parse(&raw) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(why) => return Err(t.escape(&name, why)),
        };
        match kind {
            EntryType::Directory => t.dir(&path, &name)?,
            EntryType::Symlink | EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .ok_or_else(|| t.invalid(&name, "link without a target"))?;
                if kind == EntryType::Symlink {
                    t.symlink(&path, &name, &target)?;
                } else {
                    t.hard_link(&path, &name, &target)?;
                }
            }
            _ => {
                let mode = entry.header().mode().map_err(|e| t.io(&name, e))?;
                let mtime = entry.header().mtime().ok();
                t.file(&path, &name, &mut entry, mode, mtime)?;
            }
        }
    }
    Ok(())
}
