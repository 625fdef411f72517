//! Hash types of spy: node ids (blake3), source pins (sha256) and output tree hashes (blake3 of a
//! canonical walk). Each is its own newtype so a source hash can never be passed where a node id is
//! expected, and each has exactly one textual form (lowercase hex). It reads only the files and
//! trees it is asked to hash, and writes nothing.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("`{text}` is not a valid {what}: expected {len} lowercase hex digits")]
    BadHex { what: &'static str, text: String, len: usize },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: unsupported file type in an output tree (only files, directories and symlinks)")]
    FileType { path: PathBuf },
}

/// Lowercase hex (hot in id computation, hence not `hex::encode`'s char iterator).
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    write_hex(bytes, &mut out);
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// The two hex digits of each byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
        i += 1;
    }
    t
};

/// Writes the lowercase hex of `bytes` into `out`, which holds exactly twice as many bytes.
pub fn write_hex(bytes: &[u8], out: &mut [u8]) {
    assert_eq!(out.len(), bytes.len() * 2, "a hex buffer of the wrong size");
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[b as usize]);
    }
}

/// The value of each lowercase hex digit; 0xff for every other byte (uppercase too: digests are
/// written in lowercase, and one spelling per digest keeps recipes comparable).
const HEX_VALUES: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// The 32 bytes spelled by 64 lowercase hex digits (every pinned source is parsed on every
/// resolve: `hex::decode_to_slice` took 1,150 instructions a digest, this a fifth of that).
fn digest_from_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUES[pair[0] as usize], HEX_VALUES[pair[1] as usize]);
        if (hi | lo) == 0xff {
            return None;
        }
        *o = hi << 4 | lo;
    }
    Some(out)
}

macro_rules! digest_newtype {
    ($name:ident, $what:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }
            /// First `n` hex digits, used in store entry names.
            pub fn short(&self, n: usize) -> String {
                // Only the digits asked for (store names take 32 of 64).
                let n = n.min(64);
                let mut s = to_hex(&self.0[..n.div_ceil(2)]);
                s.truncate(n);
                s
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
        impl FromStr for $name {
            type Err = HashError;
            fn from_str(s: &str) -> Result<Self, HashError> {
                let bad = || HashError::BadHex {
                    what: $what,
                    text: s.to_string(),
                    len: 64,
                };
                digest_from_hex(s).map(Self).ok_or_else(bad)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_newtype!(NodeId, "node id (blake3)");
digest_newtype!(Sha256, "sha256");
digest_newtype!(TreeHash, "output tree hash (blake3)");
digest_newtype!(Blake3, "blake3 digest");

impl NodeId {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        NodeId(*blake3::hash(bytes).as_bytes())
    }
}

impl Blake3 {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Blake3(*blake3::hash(bytes).as_bytes())
    }
}

/// A reader adapter that feeds everything read through it into a sha256 hasher, so a download or
/// copy is hashed in the same pass that writes it.
pub struct Sha256Reader<R> {
    inner: R,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<R: Read> Sha256Reader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: sha2::Sha256::new(),
            bytes: 0,
        }
    }
    pub fn finish(self) -> (Sha256, u64) {
        (Sha256(self.hasher.finalize().into()), self.bytes)
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<Sha256, HashError> {
    let io_err = |source| HashError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io_err)?;
    let mut r = Sha256Reader::new(f);
    io::copy(&mut r, &mut io::sink()).map_err(io_err)?;
    Ok(r.finish().0)
}

/// Summary of an output tree: its canonical hash, the bytes of its regular files and their count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeSummary {
    pub hash: TreeHash,
    pub size: u64,
    pub files: u64,
}

/// Canonical hash of a directory tree.
///
/// The walk visits entries in byte order of their names and feeds, per entry, a tag (`d`, `f`, `x`
/// for executable files, `l`), the path relative to the root, and then the content length and
/// blake3 of the content (files) or the link target (symlinks). Timestamps, owners and permission
/// bits other than "executable" are not part of it, so a tree copied elsewhere hashes the same.
/// `docs/hashing.md` specifies it; a golden test pins it.
pub fn hash_tree(root: &Path) -> Result<TreeSummary, HashError> {
    let mut h = blake3::Hasher::new();
    h.update(b"spy-tree-v1\0");
    let mut size = 0u64;
    let mut files = 0u64;
    walk(root, Path::new(""), &mut h, &mut size, &mut files)?;
    Ok(TreeSummary {
        hash: TreeHash(*h.finalize().as_bytes()),
        size,
        files,
    })
}

fn walk(root: &Path, rel: &Path, h: &mut blake3::Hasher, size: &mut u64, files: &mut u64) -> Result<(), HashError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join(rel);
    let io_err = |p: &Path, source| HashError::Io {
        path: p.to_path_buf(),
        source,
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| io_err(&dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(&dir, e))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let rel_child = rel.join(&name);
        let path = root.join(&rel_child);
        let md = std::fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
        let ft = md.file_type();
        let rel_bytes = rel_child.as_os_str().as_bytes();
        if ft.is_dir() {
            h.update(b"d\0");
            h.update(rel_bytes);
            h.update(b"\0");
            walk(root, &rel_child, h, size, files)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| io_err(&path, e))?;
            h.update(b"l\0");
            h.update(rel_bytes);
            h.update(b"\0");
            h.update(target.as_os_str().as_bytes());
            h.update(b"\0");
        } else if ft.is_file() {
            let exec = md.permissions().mode() & 0o111 != 0;
            h.update(if exec { b"x\0" } else { b"f\0" });
            h.update(rel_bytes);
            h.update(b"\0");
            let mut content = blake3::Hasher::new();
            let mut f = std::fs::File::open(&path).map_err(|e| io_err(&path, e))?;
            let n = io::copy(&mut f, &mut content).map_err(|e| io_err(&path, e))?;
            h.update(&n.to_le_bytes());
            h.update(content.finalize().as_bytes());
            *size += n;
            *files += 1;
        } else {
            return Err(HashError::FileType { path });
        }
    }
    Ok(())
}

/// Every path of a tree with a short description of what it is (`dir`, `link -> T`, or the file's
/// mode class and blake3), in byte order: what `spy check` compares to name differing files.
pub fn tree_listing(root: &Path) -> Result<std::collections::BTreeMap<PathBuf, String>, HashError> {
    use std::os::unix::fs::PermissionsExt;
    fn go(root: &Path, rel: &Path, out: &mut std::collections::BTreeMap<PathBuf, String>) -> Result<(), HashError> {
        let dir = root.join(rel);
        let io_err = |p: &Path, source| HashError::Io {
            path: p.to_path_buf(),
            source,
        };
        for e in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let e = e.map_err(|e| io_err(&dir, e))?;
            let rel_child = rel.join(e.file_name());
            let path = root.join(&rel_child);
            let md = std::fs::symlink_metadata(&path).map_err(|e| io_err(&path, e))?;
            let what = if md.is_dir() {
                go(root, &rel_child, out)?;
                "dir".to_string()
            } else if md.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).map_err(|e| io_err(&path, e))?.display())
            } else {
                let mut h = blake3::Hasher::new();
                let mut f = std::fs::File::open(&path).map_err(|e| io_err(&path, e))?;
                let n = io::copy(&mut f, &mut h).map_err(|e| io_err(&path, e))?;
                let x = if md.permissions().mode() & 0o111 != 0 {
                    "executable"
                } else {
                    "file"
                };
                format!("{x}, {n} bytes, blake3 {}", &h.finalize().to_hex()[..16])
            };
            out.insert(rel_child, what);
        }
        Ok(())
    }
    let mut out = std::collections::BTreeMap::new();
    go(root, Path::new(""), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Every pair of bytes as the first two digits of a digest: accepted exactly when both are
    /// lowercase hex digits, with `hex`'s value; and every length but 64 is refused.
    #[test]
    fn digests_parse_as_lowercase_hex_only() {
        let rest = "0".repeat(62);
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let mut text = vec![a, b];
                text.extend_from_slice(rest.as_bytes());
                let Ok(text) = String::from_utf8(text) else { continue };
                let lower = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
                let expected = (lower(a) && lower(b)).then(|| hex::decode(&text).unwrap());
                let got = text.parse::<Sha256>().ok().map(|d| d.0.to_vec());
                assert_eq!(got, expected, "{text:?}");
            }
        }
        let id = NodeId(std::array::from_fn(|i| (i * 37) as u8));
        assert_eq!(id.to_hex().parse::<NodeId>().unwrap(), id);
        for n in [0, 1, 63, 65, 128] {
            assert!("a".repeat(n).parse::<Sha256>().is_err(), "{n} digits");
        }
        assert!(format!("{}é", "a".repeat(62)).parse::<Sha256>().is_err());
    }

    /// The table-driven hex is `hex`'s, for every byte value; `short` is a prefix of it.
    #[test]
    fn hex_is_lowercase_hex_of_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(to_hex(&all), hex::encode(&all));
        let id = NodeId(std::array::from_fn(|i| (i * 37) as u8));
        for n in [0, 1, 31, 32, 33, 64, 80] {
            assert_eq!(id.short(n), id.to_hex()[..n.min(64)]);
        }
    }

    #[test]
    fn hex_roundtrip_and_rejects_bad() {
        let id = NodeId::of_bytes(b"x");
        assert_eq!(id.to_hex().parse::<NodeId>().unwrap(), id);
        assert!("abc".parse::<Sha256>().is_err());
        assert!(id.to_hex().to_uppercase().parse::<NodeId>().is_err());
    }

    #[test]
    fn sha256_of_known_bytes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn make_tree(root: &Path) {
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("README"), b"hello").unwrap();
        std::os::unix::fs::symlink("bin/tool", root.join("link")).unwrap();
    }

    #[test]
    fn tree_hash_is_stable_and_sensitive() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        make_tree(&a);
        let s = hash_tree(&a).unwrap();
        // Golden value: changing it means changing docs/hashing.md and the tree format version.
        assert_eq!(s.hash.to_hex(), GOLDEN_TREE);
        assert_eq!((s.size, s.files), (15, 2));
        // Permissions other than x do not count.
        std::fs::set_permissions(a.join("README"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(hash_tree(&a).unwrap().hash, s.hash);
        // The executable bit does.
        std::fs::set_permissions(a.join("README"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_ne!(hash_tree(&a).unwrap().hash, s.hash);
        std::fs::set_permissions(a.join("README"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(a.join("README"), b"hellO").unwrap();
        assert_ne!(hash_tree(&a).unwrap().hash, s.hash);
    }

    const GOLDEN_TREE: &str = "d891d3eed926a9cf34dfc572879fdb4f4f398392be6a29b382385900002a3781";
}
