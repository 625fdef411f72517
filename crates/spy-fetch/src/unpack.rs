//! Unpacks tar (plain, gzip, xz, bzip2) and zip archives, detected by their first bytes, refusing
//! any entry that would land outside the destination: absolute paths, `..`, and symlinks or hard
//! links whose target leaves the tree. Everything is streamed from the file.

use std::io::{BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{}: cannot read: {message}", archive.display())]
    Io { archive: PathBuf, message: String },
    #[error("{}: entry `{entry}` escapes the destination ({why}); refusing the archive", archive.display())]
    Escape { archive: PathBuf, entry: String, why: String },
    #[error("{}: not a tar, tar.gz, tar.xz, tar.bz2 or zip archive", archive.display())]
    UnknownFormat { archive: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    TarXz,
    TarBz2,
    Zip,
}

pub fn detect(path: &Path) -> Result<Format, UnpackError> {
    let io = |e: std::io::Error| UnpackError::Io {
        archive: path.into(),
        message: e.to_string(),
    };
    let mut f = fs_err::File::open(path).map_err(io)?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..]).map_err(io)?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let h = &head[..n];
    Ok(if h.starts_with(&[0x1f, 0x8b]) {
        Format::TarGz
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Format::TarXz
    } else if h.starts_with(b"BZh") {
        Format::TarBz2
    } else if h.starts_with(b"PK\x03\x04") || h.starts_with(b"PK\x05\x06") {
        Format::Zip
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Format::Tar
    } else {
        return Err(UnpackError::UnknownFormat { archive: path.into() });
    })
}

/// Unpacks `archive` into `dest` (created if missing).
pub fn unpack(archive: &Path, dest: &Path) -> Result<(), UnpackError> {
    let io = |e: std::io::Error| UnpackError::Io {
        archive: archive.into(),
        message: e.to_string(),
    };
    fs_err::create_dir_all(dest).map_err(io)?;
    let format = detect(archive)?;
    let file = BufReader::new(fs_err::File::open(archive).map_err(io)?);
    match format {
        Format::Tar => unpack_tar(archive, file, dest),
        Format::TarGz => unpack_tar(archive, flate2::read::MultiGzDecoder::new(file), dest),
        Format::TarXz => unpack_tar(archive, xz2::read::XzDecoder::new_multi_decoder(file), dest),
        Format::TarBz2 => unpack_tar(archive, bzip2::read::MultiBzDecoder::new(file), dest),
        Format::Zip => unpack_zip(archive, file.into_inner(), dest),
    }
}

/// A relative path made only of normal components, or `None`.
fn safe_relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Whether a symlink at `entry` (relative to the root) pointing at `target` stays inside the root.
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = entry
        .parent()
        .map(|p| p.components().filter(|c| matches!(c, Component::Normal(_))).count() as i64)
        .unwrap_or(0);
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::CurDir => {}
            _ => return false,
        }
    }
    true
}

fn unpack_tar(archive: &Path, reader: impl Read, dest: &Path) -> Result<(), UnpackError> {
    let io = |e: std::io::Error| UnpackError::Io {
        archive: archive.into(),
        message: e.to_string(),
    };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    for entry in ar.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let raw = entry.path().map_err(io)?.into_owned();
        let escape = |why: &str| UnpackError::Escape {
            archive: archive.into(),
            entry: raw.display().to_string(),
            why: why.into(),
        };
        let Some(rel) = safe_relative(&raw) else {
            return Err(escape("absolute path or `..`"));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry.link_name().map_err(io)?.ok_or_else(|| escape("symlink without target"))?;
            if !link_stays_inside(&rel, &target) {
                return Err(escape(&format!("symlink to {}", target.display())));
            }
        } else if kind.is_hard_link() {
            let target = entry.link_name().map_err(io)?.ok_or_else(|| escape("hard link without target"))?;
            if safe_relative(&target).is_none() {
                return Err(escape(&format!("hard link to {}", target.display())));
            }
        }
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() {
            continue;
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        // unpack_in re-checks containment against the real filesystem (symlinked parents).
        if !entry.unpack_in(dest).map_err(io)? {
            return Err(escape("path leaves the destination"));
        }
    }
    Ok(())
}

fn unpack_zip(archive: &Path, file: impl Read + Seek, dest: &Path) -> Result<(), UnpackError> {
    use std::os::unix::fs::PermissionsExt;
    let zerr = |e: zip::result::ZipError| UnpackError::Io {
        archive: archive.into(),
        message: e.to_string(),
    };
    let io = |e: std::io::Error| UnpackError::Io {
        archive: archive.into(),
        message: e.to_string(),
    };
    let mut z = zip::ZipArchive::new(file).map_err(zerr)?;
    for i in 0..z.len() {
        let mut f = z.by_index(i).map_err(zerr)?;
        let name = f.name().to_string();
        let escape = |why: &str| UnpackError::Escape {
            archive: archive.into(),
            entry: name.clone(),
            why: why.into(),
        };
        let Some(rel) = f.enclosed_name().and_then(|p| safe_relative(&p)) else {
            return Err(escape("absolute path or `..`"));
        };
        let out = dest.join(&rel);
        let mode = f.unix_mode();
        if f.is_dir() {
            fs_err::create_dir_all(&out).map_err(io)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs_err::create_dir_all(parent).map_err(io)?;
        }
        if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
            let mut target = String::new();
            f.read_to_string(&mut target).map_err(io)?;
            if !link_stays_inside(&rel, Path::new(&target)) {
                return Err(escape(&format!("symlink to {target}")));
            }
            let _ = fs_err::remove_file(&out);
            std::os::unix::fs::symlink(&target, &out).map_err(io)?;
            continue;
        }
        let mut w = fs_err::File::create(&out).map_err(io)?;
        std::io::copy(&mut f, &mut w).map_err(io)?;
        if let Some(m) = mode {
            fs_err::set_permissions(&out, std::fs::Permissions::from_mode(m & 0o777)).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, Option<&str>)]) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.tar.gz");
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, link) in entries {
            let mut h = tar::Header::new_gnu();
            match link {
                Some(t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    // set_path/set_link_name refuse `..`; write the raw bytes like a hostile tool.
                    let gnu = h.as_gnu_mut().unwrap();
                    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                    gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
                    h.set_cksum();
                    b.append(&h, std::io::empty()).unwrap();
                }
                None => {
                    h.set_size(2);
                    h.set_mode(0o644);
                    let gnu = h.as_gnu_mut().unwrap();
                    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                    h.set_cksum();
                    b.append(&h, &b"hi"[..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap().finish().unwrap();
        (d, p)
    }

    #[test]
    fn good_archive_unpacks() {
        let (d, p) = tar_with(&[("pkg/a.txt", None), ("pkg/link", Some("a.txt")), ("pkg/sub/up", Some("../a.txt"))]);
        let dest = d.path().join("out");
        unpack(&p, &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("pkg/a.txt")).unwrap(), b"hi");
        assert_eq!(std::fs::read(dest.join("pkg/sub/up")).unwrap(), b"hi");
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            vec![("pkg/../../evil", None)],
            vec![("/etc/evil", None)],
            vec![("pkg/link", Some("/etc/passwd"))],
            vec![("pkg/link", Some("../../outside"))],
        ] {
            let (d, p) = tar_with(&bad);
            let dest = d.path().join("out");
            let e = unpack(&p, &dest).unwrap_err();
            assert!(matches!(e, UnpackError::Escape { .. }), "{bad:?}: {e}");
            assert!(!d.path().join("evil").exists());
        }
    }

    /// A small tree as a plain tar, in memory.
    fn plain_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data, mode) in [("pkg/a.txt", &b"alpha"[..], 0o644), ("pkg/bin/run", &b"#!/bin/sh\n"[..], 0o755)] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_path(name).unwrap();
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn check_tree(dest: &Path) {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::read(dest.join("pkg/a.txt")).unwrap(), b"alpha");
        let mode = std::fs::metadata(dest.join("pkg/bin/run")).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "executable bit lost: {mode:o}");
    }

    #[test]
    fn every_supported_format_unpacks() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let tar = plain_tar();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&tar).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&tar).unwrap();
        let mut zipped = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut zipped);
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
            z.start_file("pkg/a.txt", opts).unwrap();
            z.write_all(b"alpha").unwrap();
            z.start_file("pkg/bin/run", opts.unix_permissions(0o755)).unwrap();
            z.write_all(b"#!/bin/sh\n").unwrap();
            z.finish().unwrap();
        }
        for (name, bytes, format) in [
            ("x.tar", tar.clone(), Format::Tar),
            ("x.tar.gz", gz.finish().unwrap(), Format::TarGz),
            ("x.tar.xz", xz.finish().unwrap(), Format::TarXz),
            ("x.tar.bz2", bz.finish().unwrap(), Format::TarBz2),
            ("x.zip", zipped.into_inner(), Format::Zip),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(detect(&p).unwrap(), format, "{name}");
            let dest = d.path().join(format!("out-{name}"));
            unpack(&p, &dest).unwrap();
            check_tree(&dest);
        }
    }

    #[test]
    fn zip_escapes_are_refused() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        for (entry, link) in [("../evil", None), ("pkg/l", Some("/etc/passwd")), ("pkg/l", Some("../../x"))] {
            let mut buf = std::io::Cursor::new(Vec::new());
            {
                let mut z = zip::ZipWriter::new(&mut buf);
                let opts = zip::write::SimpleFileOptions::default();
                match link {
                    Some(t) => z.add_symlink(entry, t, opts).unwrap(),
                    None => {
                        z.start_file(entry, opts).unwrap();
                        z.write_all(b"x").unwrap();
                    }
                }
                z.finish().unwrap();
            }
            let p = d.path().join("e.zip");
            std::fs::write(&p, buf.into_inner()).unwrap();
            let e = unpack(&p, &d.path().join("out")).unwrap_err();
            assert!(matches!(e, UnpackError::Escape { .. }), "{entry} -> {link:?}: {e}");
        }
        assert!(!d.path().join("evil").exists());
    }

    #[test]
    fn unknown_format() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(unpack(&p, d.path()), Err(UnpackError::UnknownFormat { .. })));
    }
}
