//! Hostile archives for the fuzz harnesses of spy-unpack (tar, zip) and spy-cache (cache
//! archives): raw entries written byte by byte (names with `..`, absolute paths, link chains,
//! setuid modes, device nodes), proptest strategies over them, a scratch directory with a canary
//! that an escape would reach, and the checks every unpacked tree must pass. Shared by path
//! (`#[path]`), not published: it is test code.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

/// One raw archive entry.
#[derive(Debug, Clone)]
pub enum Raw {
    File(String, u32, Vec<u8>),
    Dir(String, u32),
    Sym(String, String),
    Hard(String, String),
    /// 0: character device, 1: block device, 2: FIFO.
    Special(String, u8),
}

fn put(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// A tar stream of `entries`, headers written byte by byte (no name checks).
pub fn tar_bytes(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(4242);
        h.set_gid(4242);
        h.set_mtime(1_000_000_000);
        let (name, link, data): (&str, Option<&str>, &[u8]) = match e {
            Raw::File(n, mode, data) => {
                h.set_mode(*mode);
                (n, None, data)
            }
            Raw::Dir(n, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                (n, None, b"")
            }
            Raw::Sym(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                (n, Some(t), b"")
            }
            Raw::Hard(n, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                (n, Some(t), b"")
            }
            Raw::Special(n, k) => {
                h.set_entry_type([tar::EntryType::Char, tar::EntryType::Block, tar::EntryType::Fifo][*k as usize % 3]);
                h.set_mode(0o6666);
                let _ = h.set_device_major(1);
                let _ = h.set_device_minor(3);
                (n, None, b"")
            }
        };
        h.set_size(data.len() as u64);
        let gnu = h.as_gnu_mut().expect("gnu header");
        put(&mut gnu.name, name);
        if let Some(t) = link {
            put(&mut gnu.linkname, t);
        }
        h.set_cksum();
        b.append(&h, data).expect("in memory");
    }
    b.into_inner().expect("in memory")
}

/// A zip of `entries` (hard links become files); special kinds and odd modes are patched into the
/// central directory as a hostile tool would.
pub fn zip_bytes(entries: &[Raw]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut modes = Vec::new();
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        for e in entries {
            let made = match e {
                Raw::File(n, mode, data) => z
                    .start_file(n.as_str(), opts)
                    .and_then(|()| z.write_all(data).map_err(Into::into))
                    .map(|()| Some(0o100000 | (mode & 0o7777))),
                Raw::Hard(n, _) => z
                    .start_file(n.as_str(), opts)
                    .and_then(|()| z.write_all(b"hard").map_err(Into::into))
                    .map(|()| Some(0o100644)),
                Raw::Dir(n, mode) => z.add_directory(n.as_str(), opts).map(|()| Some(0o040000 | (mode & 0o7777))),
                Raw::Sym(n, t) => z.add_symlink(n.as_str(), t.as_str(), opts).map(|()| None),
                Raw::Special(n, k) => {
                    let kind = [0o020000, 0o060000, 0o010000][*k as usize % 3];
                    z.start_file(n.as_str(), opts).map(|()| Some(kind | 0o6644))
                }
            };
            if let Ok(mode) = made {
                modes.push(mode);
            }
        }
        let _ = z.finish();
    }
    let mut bytes = buf.into_inner();
    // Central-directory records in order: set the unix mode (high half of external attributes).
    let mut at = 0;
    let mut i = 0;
    while let Some(off) = bytes[at..].windows(4).position(|w| w == b"PK\x01\x02") {
        let rec = at + off;
        if let Some(Some(mode)) = modes.get(i) {
            if rec + 42 <= bytes.len() {
                bytes[rec + 5] = 3;
                bytes[rec + 38..rec + 42].copy_from_slice(&(mode << 16).to_le_bytes());
            }
        }
        i += 1;
        at = rec + 4;
    }
    bytes
}

/// Where a fuzz run unpacks: `<root>/d1/d2/out`, three levels below `<root>/canary/{file,victim}`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let canary = dir.path().join("canary");
        std::fs::create_dir_all(&canary).unwrap();
        std::fs::write(canary.join("file"), b"original").unwrap();
        std::fs::write(canary.join("victim"), b"keep me").unwrap();
        std::fs::create_dir_all(dir.path().join("d1/d2")).unwrap();
        Scratch { dir }
    }
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn dest(&self) -> PathBuf {
        self.root().join("d1/d2/out")
    }
    pub fn canary(&self) -> PathBuf {
        self.root().join("canary")
    }
    /// Kind, contents, mode, owner, and (but for directories) link count and mtime of everything
    /// outside the destination (a hard link made to the canary changes its count).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(p: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                let path = e.path();
                if path == skip || path.file_name().is_some_and(|n| n == "archive") {
                    continue;
                }
                let md = std::fs::symlink_metadata(&path).unwrap();
                let what = if md.is_symlink() {
                    format!("link {}", std::fs::read_link(&path).unwrap().display())
                } else if md.is_dir() {
                    walk(&path, skip, out);
                    "dir".to_string()
                } else {
                    format!("file {:?}", std::fs::read(&path).unwrap())
                };
                // A directory's mtime and link count change when the destination is made inside
                // it; a directory made elsewhere shows up as an entry of its own.
                let (nlink, mtime) = if md.is_dir() { (0, 0) } else { (md.nlink(), md.mtime()) };
                out.insert(
                    path,
                    format!("{what} mode {:o} uid {} nlink {nlink} mtime {mtime}", md.mode(), md.uid()),
                );
            }
        }
        let mut out = BTreeMap::new();
        walk(self.root(), &self.dest(), &mut out);
        out
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// What an unpacked tree (complete or cut short by a refusal) may hold: regular files of mode
/// 0644/0755 and directories without special bits, owned by us; symlinks, which with `contained`
/// must not resolve outside `dest`. Nothing else.
pub fn check_tree(dest: &Path, contained: bool) -> Result<(), String> {
    let Ok(real_dest) = std::fs::canonicalize(dest) else {
        return Ok(());
    };
    let me = std::fs::metadata(dest.parent().unwrap()).unwrap().uid();
    fn walk(p: &Path, real_dest: &Path, me: u32, contained: bool) -> Result<(), String> {
        for e in std::fs::read_dir(p).map_err(|e| e.to_string())?.flatten() {
            let path = e.path();
            let md = std::fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
            if md.uid() != me {
                return Err(format!("{} is owned by {}", path.display(), md.uid()));
            }
            let mode = md.mode() & 0o7777;
            if md.is_symlink() {
                if contained {
                    if let Ok(t) = std::fs::canonicalize(&path) {
                        if !t.starts_with(real_dest) {
                            return Err(format!("{} resolves to {}", path.display(), t.display()));
                        }
                    }
                }
            } else if md.is_dir() {
                if mode & 0o7000 != 0 {
                    return Err(format!("{} has mode {mode:o}", path.display()));
                }
                walk(&path, real_dest, me, contained)?;
            } else if md.is_file() {
                if mode != 0o644 && mode != 0o755 {
                    return Err(format!("{} has mode {mode:o}", path.display()));
                }
            } else {
                return Err(format!("{} is a {:?}", path.display(), md.file_type()));
            }
        }
        Ok(())
    }
    walk(dest, &real_dest, me, contained)
}

/// Path components an attack would use, `..` and the canary's names among them.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("pkg"),
        3 => Just("a"),
        2 => Just("up"),
        2 => Just("canary"),
        2 => Just("file"),
        1 => Just("victim"),
        2 => Just("x"),
        1 => Just(".."),
        1 => Just("."),
        1 => Just(""),
    ]
    .prop_map(String::from)
}

/// An entry name or link target: relative or (rarely) absolute, or the canary's absolute path.
pub fn path(canary: String) -> BoxedStrategy<String> {
    prop_oneof![
        8 => (prop::collection::vec(component(), 1..7), prop::bool::weighted(0.05)).prop_map(|(c, abs)| {
            let p = c.join("/");
            if abs { format!("/{p}") } else { p }
        }),
        1 => Just(format!("{canary}/file")),
        1 => (0usize..6).prop_map(|n| format!("{}canary/file", "../".repeat(n))),
    ]
    .boxed()
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0o644u32),
        Just(0o755),
        Just(0o4755),
        Just(0o2755),
        Just(0o1777),
        Just(0o7777),
        Just(0),
        any::<u32>(),
    ]
}

pub fn entry(canary: String) -> BoxedStrategy<Raw> {
    let p = path(canary.clone());
    let t = path(canary);
    prop_oneof![
        4 => (p.clone(), mode(), prop::collection::vec(any::<u8>(), 0..48)).prop_map(|(n, m, d)| Raw::File(n, m, d)),
        2 => (p.clone(), mode()).prop_map(|(n, m)| Raw::Dir(n, m)),
        3 => (p.clone(), t.clone()).prop_map(|(n, t)| Raw::Sym(n, t)),
        2 => (p.clone(), t).prop_map(|(n, t)| Raw::Hard(n, t)),
        1 => (p, 0u8..3).prop_map(|(n, k)| Raw::Special(n, k)),
    ]
    .boxed()
}

/// Byte flips (position as a fraction of the length, xor mask) and an optional cut.
#[derive(Debug, Clone)]
pub struct Damage {
    pub flips: Vec<(f64, u8)>,
    pub cut: Option<f64>,
}

pub fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage { flips: vec![], cut: None }),
        1 => (prop::collection::vec((0.0f64..1.0, 1u8..=255), 1..8), prop::option::of(0.0f64..1.0))
            .prop_map(|(flips, cut)| Damage { flips, cut }),
    ]
}

impl Damage {
    pub fn apply(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        if bytes.is_empty() {
            return bytes;
        }
        for (at, x) in &self.flips {
            let i = ((*at * bytes.len() as f64) as usize).min(bytes.len() - 1);
            bytes[i] ^= x;
        }
        if let Some(c) = self.cut {
            bytes.truncate((c * bytes.len() as f64) as usize);
        }
        bytes
    }
}

/// Counts of one fuzz run.
#[derive(Debug, Default)]
pub struct Counts {
    pub inputs: u64,
    pub panics: u64,
    pub refused: u64,
    pub accepted: u64,
}

/// Cases from `SPY_FUZZ_CASES` (default `default`), seed from `SPY_FUZZ_SEED` (default 0, so a
/// normal test run is deterministic).
pub fn config(default: u32) -> Config {
    let cases = std::env::var("SPY_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let seed = std::env::var("SPY_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

/// Runs `unpack` (which returns whether the archive was accepted) on every generated input inside
/// one scratch directory: a panic is counted (and fails the run at the end, with its input);
/// anything changed outside the destination, or a tree breaking [`check_tree`], fails the case
/// at once (proptest then shrinks it). Prints `fuzz-unpack NAME: N inputs, P panics, ...`.
/// `strategy` is given the canary directory's absolute path (targets for absolute escapes).
pub fn run<S: Strategy>(
    name: &str,
    default_cases: u32,
    contained: bool,
    strategy: impl FnOnce(String) -> S,
    unpack: impl Fn(&S::Value, &Path, &Path) -> bool,
) where
    S::Value: std::fmt::Debug,
{
    let scratch = Scratch::new();
    let strategy = strategy(scratch.canary().display().to_string());
    let archive = scratch.root().join("d1/archive");
    let before = scratch.snapshot();
    let counts = std::cell::RefCell::new(Counts::default());
    let first_panic = std::cell::RefCell::new(None::<String>);
    let mut runner = TestRunner::new(config(default_cases));
    let result = runner.run(&strategy, |input| {
        let dest = scratch.dest();
        remove_if_there(&dest);
        counts.borrow_mut().inputs += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| unpack(&input, &archive, &dest)));
        match outcome {
            Err(p) => {
                counts.borrow_mut().panics += 1;
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                first_panic.borrow_mut().get_or_insert_with(|| format!("{msg:?} on {input:?}"));
            }
            Ok(true) => counts.borrow_mut().accepted += 1,
            Ok(false) => counts.borrow_mut().refused += 1,
        }
        check_tree(&dest, contained).map_err(TestCaseError::fail)?;
        // The destination itself goes (its parent's link count counts it).
        remove_if_there(&dest);
        let after = scratch.snapshot();
        if after != before {
            return Err(TestCaseError::fail(format!(
                "outside the destination changed: {before:?} -> {after:?}"
            )));
        }
        Ok(())
    });
    let c = counts.into_inner();
    println!(
        "fuzz-unpack {name}: {} inputs, {} panics, {} refused, {} accepted",
        c.inputs, c.panics, c.refused, c.accepted
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    assert_eq!(c.panics, 0, "{name}: first panic: {}", first_panic.into_inner().unwrap_or_default());
}

/// Compresses `bytes` with codec `k` (0 none, 1 gzip, 2 xz, 3 bzip2).
pub fn compress(k: u8, bytes: &[u8]) -> Vec<u8> {
    match k % 4 {
        0 => bytes.to_vec(),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        2 => {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 0);
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
    }
}

/// Bytes under `dir` (0 if it does not exist): the length of every entry but directories, so a
/// budget check counts whatever an unpacker left there.
pub fn bytes_under(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                bytes_under(&e.path())
            } else {
                md.len()
            }
        })
        .sum()
}

/// Removes a destination tree; its absence is fine, any other failure would let one case's files
/// leak into the next, so it fails the run.
fn remove_if_there(dest: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dest) {
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{}: {e}", dest.display());
    }
}
