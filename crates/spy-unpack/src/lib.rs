//! Unpacks tar (plain, gzip, xz, bzip2) and zip archives, detected by their first bytes, so that
//! nothing an archive says can touch anything outside the destination.
//!
//! The guarantee is by construction, not by checking names: every entry is written through a
//! directory handle (`cap_std::fs::Dir`), one path component at a time, opening each directory with
//! `O_NOFOLLOW` ([`tree`]). An entry whose path would pass through a symlink (even one pointing
//! inside the tree) is refused, files are created with `O_CREAT|O_EXCL` after unlinking whatever
//! was there, and hard links may only name regular files already unpacked. On top of that,
//! source archives may not hold symlinks that point outside the tree (so later tools that follow
//! them stay inside too), modes are reduced to 0755/0644 (no setuid, setgid or sticky bit),
//! device nodes, FIFOs and sockets are skipped, and ownership is never taken from the archive.
//!
//! Everything streams from the file; zip reads its central directory by seeking.
//!
//! Its own crate so that the users of unpacking (builds unpack sources, spy-cache unpacks cache
//! archives) need nothing else of fetching. It writes only below the destination it is given.

mod tree;
mod untar;
mod unzip;

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

pub use tree::Summary;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{}{}: {message}", archive.display(), at(entry))]
    Io {
        archive: PathBuf,
        entry: Option<String>,
        message: String,
    },
    #[error("{}: entry `{entry}` escapes the destination ({why}); refusing the archive", archive.display())]
    Escape { archive: PathBuf, entry: String, why: String },
    #[error("{}: entry `{entry}` cannot be unpacked ({why}); refusing the archive", archive.display())]
    Invalid { archive: PathBuf, entry: String, why: String },
    #[error("{}: entry `{entry}` goes over the budget of {limit} {what}; refusing the archive", archive.display())]
    OverBudget {
        archive: PathBuf,
        entry: String,
        what: &'static str,
        limit: u64,
    },
    #[error("{}: not a tar, tar.gz, tar.xz, tar.bz2 or zip archive", archive.display())]
    UnknownFormat { archive: PathBuf },
}

fn at(entry: &Option<String>) -> String {
    entry.as_ref().map(|e| format!(", entry `{e}`")).unwrap_or_default()
}

impl UnpackError {
    pub(crate) fn io(archive: &Path, entry: Option<&str>, e: impl std::fmt::Display) -> UnpackError {
        UnpackError::Io {
            archive: archive.into(),
            entry: entry.map(String::from),
            message: e.to_string(),
        }
    }
}

/// Where symlinks in the archive may point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTargets {
    /// Relative targets that stay inside the tree: `../` only at the start, no deeper than the
    /// link's own directory (source archives).
    Contained,
    /// Any target (store entries from a signed cache archive, whose tree hash covers them: they
    /// may point at `/spy/store/...`). Entries are still never created through a symlink.
    Any,
}

/// How much an archive may write; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of regular files.
    pub bytes: Option<u64>,
    /// Regular files and hard links.
    pub files: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub links: LinkTargets,
    pub limits: Limits,
    /// Keep the archive's modification times on regular files (autotools compares them).
    pub mtimes: bool,
}

impl Options {
    /// Source archives: contained links, no budget, mtimes kept.
    pub const SOURCE: Options = Options {
        links: LinkTargets::Contained,
        limits: Limits { bytes: None, files: None },
        mtimes: true,
    };
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
    let mut f = fs_err::File::open(path).map_err(|e| UnpackError::io(path, None, e))?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..]).map_err(|e| UnpackError::io(path, None, e))?;
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

/// Unpacks the source archive `archive` into `dest` (created if missing) with [`Options::SOURCE`].
pub fn unpack(archive: &Path, dest: &Path) -> Result<(), UnpackError> {
    unpack_with(archive, dest, &Options::SOURCE).map(|_| ())
}

/// Unpacks `archive` into `dest` (created if missing).
pub fn unpack_with(archive: &Path, dest: &Path, opts: &Options) -> Result<Summary, UnpackError> {
    let format = detect(archive)?;
    // The error carries the archive's path, so std's File is enough here.
    let file = BufReader::new(std::fs::File::open(archive).map_err(|e| UnpackError::io(archive, None, e))?);
    match format {
        Format::Tar => unpack_tar_stream(archive, file, dest, opts),
        Format::TarGz => unpack_tar_stream(archive, flate2::read::MultiGzDecoder::new(file), dest, opts),
        Format::TarXz => unpack_tar_stream(archive, xz2::read::XzDecoder::new_multi_decoder(file), dest, opts),
        Format::TarBz2 => unpack_tar_stream(archive, bzip2::read::MultiBzDecoder::new(file), dest, opts),
        Format::Zip => {
            let mut t = tree::Tree::open(archive, dest, opts)?;
            unzip::unpack(&mut t, file.into_inner())?;
            Ok(t.summary)
        }
    }
}

/// Unpacks an uncompressed tar stream into `dest` (created if missing); `name` names the archive
/// in errors.
pub fn unpack_tar_stream(name: &Path, reader: impl Read, dest: &Path, opts: &Options) -> Result<Summary, UnpackError> {
    let mut t = tree::Tree::open(name, dest, opts)?;
    untar::unpack(&mut t, reader)?;
    Ok(t.summary)
}

#[cfg(test)]
mod tests;
