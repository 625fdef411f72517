//! Archives of store entries: a tar stream with entries in byte order of their paths, owner 0,
//! time 0 and modes reduced to 0755/0644, compressed with zstd or xz. The same entry always packs
//! to the same bytes. Packing and unpacking stream; nothing holds a whole file. Unpacking goes
//! through `spy_unpack`, the one writer of unpacked trees.

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use spy_unpack::{unpack_tar_stream, Limits, LinkTargets, Options, Summary, UnpackError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Xz,
}

impl Compression {
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "tar.zst",
            Compression::Xz => "tar.xz",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zstd" => Ok(Compression::Zstd),
            "xz" => Ok(Compression::Xz),
            other => Err(format!("unknown compression `{other}` (zstd or xz)")),
        }
    }
}

// zstd level 9 and xz preset 3 keep the encoder's memory well under spy's 100 MiB budget (xz's
// default preset 6 alone takes 94 MiB).
const ZSTD_LEVEL: i32 = 9;
const XZ_PRESET: u32 = 3;

/// Writes the compressed archive of the tree at `root` to `out`, compressing on up to two cores
/// (each zstd worker holds its own job and window: two keep spy under its 100 MiB budget).
pub fn pack(root: &Path, compression: Compression, out: impl Write) -> io::Result<()> {
    let workers = std::thread::available_parallelism().map(|n| n.get().min(2)).unwrap_or(1);
    pack_with_workers(root, compression, out, workers as u32)
}

/// zstd's job size in multi-threaded mode: part of the format of our archives (it decides where
/// jobs are cut), fixed so that the bytes do not depend on zstd's default.
const ZSTD_JOB_SIZE: u32 = 4 << 20;

/// `pack` with a given number of zstd workers. zstd's multi-threaded mode writes the same bytes for
/// any number of workers from 1 up (but not the bytes of its single-threaded mode), so archives do
/// not depend on the packing machine.
pub fn pack_with_workers(root: &Path, compression: Compression, out: impl Write, workers: u32) -> io::Result<()> {
    match compression {
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
            enc.multithread(workers.max(1))?;
            enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
            let enc = write_tar(root, enc)?;
            enc.finish()?.flush()
        }
        Compression::Xz => {
            let enc = xz2::write::XzEncoder::new(out, XZ_PRESET);
            let enc = write_tar(root, enc)?;
            enc.finish()?.flush()
        }
    }
}

fn write_tar<W: Write>(root: &Path, out: W) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    walk(root, Path::new(""), &mut b)?;
    b.into_inner()
}

/// A tar header that says nothing about where or when it was made: mtime 0, owner 0 (spy-release's
/// archives use it too).
pub fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn walk<W: Write>(root: &Path, rel: &Path, b: &mut tar::Builder<W>) -> io::Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let rel_child = rel.join(&name);
        let path = root.join(&rel_child);
        let md = std::fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        if ft.is_dir() {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, &rel_child, io::empty())?;
            walk(root, &rel_child, b)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, &rel_child, &target)?;
        } else if ft.is_file() {
            let mode = if md.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
            let mut h = header(tar::EntryType::Regular, mode, md.len());
            b.append_data(&mut h, &rel_child, std::fs::File::open(&path)?)?;
        } else {
            return Err(io::Error::other(format!("{}: not a file, directory or symlink", path.display())));
        }
    }
    Ok(())
}

/// Unpacks a compressed archive read from `input` into `dest` through spy-fetch's tree writer: no
/// entry is written outside `dest` or through a symlink, modes are 0755/0644, special files are
/// skipped, and the regular files may hold at most `limits` (the signed size and file count).
/// `name` names the archive in errors. Callers hand it bytes whose sha256 they already checked.
pub fn unpack(name: &Path, input: impl Read, compression: Compression, dest: &Path, limits: Limits) -> Result<Summary, UnpackError> {
    let opts = Options {
        // Store entries may hold absolute links (`/spy/store/...`): the tree hash covers them.
        links: LinkTargets::Any,
        limits,
        mtimes: false,
    };
    match compression {
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::new(input).map_err(|e| UnpackError::Io {
                archive: name.into(),
                entry: None,
                message: e.to_string(),
            })?;
            unpack_tar_stream(name, dec, dest, &opts)
        }
        Compression::Xz => unpack_tar_stream(name, xz2::read::XzDecoder::new(input), dest, &opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("share/empty")).unwrap();
        std::fs::write(root.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(root.join("bin/tool"), std::fs::Permissions::from_mode(0o555)).unwrap();
        std::fs::write(root.join("README"), vec![b'x'; 100_000]).unwrap();
        std::os::unix::fs::symlink("bin/tool", root.join("link")).unwrap();
        let long = "d".repeat(120);
        std::fs::create_dir_all(root.join(&long)).unwrap();
        std::fs::write(root.join(&long).join("f"), b"deep").unwrap();
    }

    #[test]
    fn pack_is_deterministic_and_roundtrips() {
        for c in [Compression::Zstd, Compression::Xz] {
            let d = tempfile::tempdir().unwrap();
            let a = d.path().join("a");
            tree(&a);
            if c == Compression::Zstd {
                // Enough incompressible data for zstd to cut several jobs between its workers.
                let mut noise = Vec::with_capacity(12 << 20);
                let mut x: u64 = 1;
                while noise.len() < 12 << 20 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    noise.extend_from_slice(&x.to_le_bytes());
                }
                std::fs::write(a.join("noise"), noise).unwrap();
            }
            let mut one = Vec::new();
            pack_with_workers(&a, c, &mut one, 1).unwrap();
            let mut two = Vec::new();
            pack_with_workers(&a, c, &mut two, 3).unwrap();
            assert_eq!(one, two, "{c:?}: same tree, same bytes, whatever the number of workers");
            let b = d.path().join("b");
            std::fs::create_dir(&b).unwrap();
            unpack(Path::new("one"), &one[..], c, &b, Limits::default()).unwrap();
            assert_eq!(spy_hash::hash_tree(&a).unwrap(), spy_hash::hash_tree(&b).unwrap());
            // A damaged stream is an error, not a partial success.
            let mut bad = one.clone();
            let mid = bad.len() / 2;
            bad.truncate(mid);
            let c2 = d.path().join("c");
            std::fs::create_dir(&c2).unwrap();
            assert!(unpack(Path::new("bad"), &bad[..], c, &c2, Limits::default()).is_err(), "{c:?}");
        }
    }
}
