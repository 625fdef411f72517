//! Substitution from hostile caches: a tampered archive (oversize, a decompression bomb, other
//! bytes of the right size), a signed archive that unpacks past its signed size, an archive path
//! that the signature does not cover, a FIFO where the archive should be. Each checks how many
//! bytes were read and written before the refusal.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::*;
use crate::backend::FileBackend;

// The hostile-archive kit of spy-fetch's tests, shared by path.
#[path = "../../spy-unpack/tests/support/hostile.rs"]
mod hostile;
use hostile::bytes_under;

/// A directory cache that counts the bytes read from it.
struct Counting {
    inner: FileBackend,
    read: Arc<AtomicU64>,
}

struct CountingReader {
    inner: Box<dyn Read + Send>,
    read: Arc<AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

impl Backend for Counting {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn get(&self, path: &str) -> Result<Option<Box<dyn Read + Send>>, CacheError> {
        Ok(self.inner.get(path)?.map(|inner| {
            Box::new(CountingReader {
                inner,
                read: self.read.clone(),
            }) as Box<dyn Read + Send>
        }))
    }
    fn has(&self, path: &str) -> Result<bool, CacheError> {
        self.inner.has(path)
    }
    fn put(&self, path: &str, from: &Path) -> Result<(), CacheError> {
        self.inner.put(path, from)
    }
}

/// A zstd tar of one file `big` of `len` zero bytes, made as a stream (never held in memory).
pub(crate) fn zero_bomb(len: u64) -> Vec<u8> {
    let enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let mut b = tar::Builder::new(enc);
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(0o644);
    b.append_data(&mut h, "big", std::io::repeat(0).take(len)).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

struct Cache {
    dir: tempfile::TempDir,
    /// Metadata of a real 5000-byte entry whose archive the cache holds.
    meta: CacheMeta,
    read: Arc<AtomicU64>,
    subs: Substituters,
}

impl Cache {
    fn new() -> Cache {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("hello"), vec![b'x'; 5000]).unwrap();
        let sum = spy_hash::hash_tree(&tree).unwrap();
        let mut packed = Vec::new();
        archive::pack(&tree, Compression::Zstd, &mut packed).unwrap();
        let (sha, size) = {
            let mut r = spy_hash::Sha256Reader::new(&packed[..]);
            std::io::copy(&mut r, &mut std::io::sink()).unwrap();
            r.finish()
        };
        let meta = CacheMeta {
            format: CACHE_FORMAT,
            id: NodeId([1; 32]),
            store_name: "01-hello-1".into(),
            name: "hello".into(),
            version: "1".into(),
            target: "t".into(),
            tree_hash: sum.hash,
            size: sum.size,
            files: sum.files,
            archive: archive_path(&sha, Compression::Zstd),
            compression: Compression::Zstd,
            archive_sha256: sha,
            archive_size: size,
            references: vec![],
            signatures: vec![],
        };
        let root = dir.path().join("cache");
        std::fs::create_dir_all(root.join("archives")).unwrap();
        std::fs::write(root.join(&meta.archive), &packed).unwrap();
        let read = Arc::new(AtomicU64::new(0));
        let backend = Counting {
            inner: FileBackend::new("file:///cache", &root).unwrap(),
            read: read.clone(),
        };
        let subs = Substituters::from_backends(vec![Box::new(backend)], vec![]);
        Cache { dir, meta, read, subs }
    }

    fn archive(&self, meta: &CacheMeta) -> PathBuf {
        self.dir
            .path()
            .join("cache")
            .join(archive_path(&meta.archive_sha256, meta.compression))
    }

    /// Substitutes `meta` into a fresh `out` (inside a build directory, as the store makes it).
    fn fetch(&self, meta: &CacheMeta) -> (Result<(), CacheError>, PathBuf) {
        self.read.store(0, Ordering::SeqCst);
        let build = self.dir.path().join("build");
        // The previous fetch's directory, if any: any failure but its absence would leave it behind.
        if let Err(e) = std::fs::remove_dir_all(&build) {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{}: {e}", build.display());
        }
        std::fs::create_dir_all(&build).unwrap();
        let out = build.join("out");
        let found = Found {
            cache: 0,
            meta: meta.clone(),
        };
        (self.subs.fetch_into(&found, "hello@t", &out), out)
    }

    fn read(&self) -> u64 {
        self.read.load(Ordering::SeqCst)
    }
}

/// Which budget a refused unpacking went over.
fn over_budget(e: &CacheError) -> Option<&'static str> {
    match e {
        CacheError::BadArchive { source, .. } => match **source {
            spy_unpack::UnpackError::OverBudget { what, .. } => Some(what),
            _ => None,
        },
        _ => None,
    }
}

/// Nothing but `out` may remain in the build directory (the download is a temporary file).
fn no_download_left(out: &Path) {
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "out")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_genuine_archive_substitutes() {
    let c = Cache::new();
    let (r, out) = c.fetch(&c.meta);
    r.unwrap();
    assert_eq!(spy_hash::hash_tree(&out).unwrap().hash, c.meta.tree_hash);
    assert_eq!(c.read(), c.meta.archive_size);
    no_download_left(&out);
}

#[test]
fn a_tampered_oversize_archive_is_refused_before_anything_is_unpacked() {
    let c = Cache::new();
    // 1 GiB of zeros in ~33 KB, where the signed archive is a few hundred bytes.
    let bomb = zero_bomb(1 << 30);
    std::fs::write(c.archive(&c.meta), &bomb).unwrap();
    let (r, out) = c.fetch(&c.meta);
    let e = r.unwrap_err();
    assert!(matches!(e, CacheError::Mismatch { what: "archive size", .. }), "{e}");
    let limit = c.meta.archive_size + 1;
    assert!(e.to_string().contains(&format!("refused after {limit} bytes")), "{e}");
    assert!(c.read() <= limit, "read {} bytes of a {}-byte archive", c.read(), limit - 1);
    assert!(!out.exists(), "nothing is unpacked from unverified bytes");
    no_download_left(&out);
    eprintln!(
        "tampered archive of {} bytes (unpacks to {} bytes): {} bytes read and 0 unpacked before refusal (signed size {})",
        bomb.len(),
        1u64 << 30,
        c.read(),
        c.meta.archive_size
    );
}

#[test]
fn a_tampered_archive_of_the_signed_size_is_refused_before_anything_is_unpacked() {
    let c = Cache::new();
    let p = c.archive(&c.meta);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&p, bytes).unwrap();
    let (r, out) = c.fetch(&c.meta);
    assert!(
        matches!(
            r,
            Err(CacheError::Mismatch {
                what: "archive sha256",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(!out.exists());
    no_download_left(&out);
    // Shorter than signed: refused too.
    std::fs::write(&p, b"short").unwrap();
    let (r, out) = c.fetch(&c.meta);
    assert!(matches!(r, Err(CacheError::Mismatch { what: "archive size", .. })), "{r:?}");
    assert!(!out.exists());
}

#[test]
fn a_signed_archive_that_unpacks_past_its_signed_size_stops_at_the_budget() {
    // Whoever signed it lied about `size` (or `files`): the archive matches its signed hash, but
    // unpacking stops the moment the signed size is passed.
    let c = Cache::new();
    let bomb = zero_bomb(64 << 20);
    let mut meta = c.meta.clone();
    let mut r = spy_hash::Sha256Reader::new(&bomb[..]);
    std::io::copy(&mut r, &mut std::io::sink()).unwrap();
    (meta.archive_sha256, meta.archive_size) = r.finish();
    meta.archive = archive_path(&meta.archive_sha256, meta.compression);
    std::fs::write(c.archive(&meta), &bomb).unwrap();
    let (r, out) = c.fetch(&meta);
    let e = r.unwrap_err();
    assert_eq!(over_budget(&e), Some("bytes"), "{e}");
    assert!(e.to_string().contains("`big`"), "the entry is named: {e}");
    let written = bytes_under(&out);
    assert!(written <= meta.size, "{written} bytes written past a budget of {}", meta.size);
    eprintln!(
        "signed bomb: {written} bytes written of {} before refusal (signed size {})",
        64 << 20,
        meta.size
    );
    no_download_left(&out);

    // More files than signed.
    let tree = c.dir.path().join("many");
    std::fs::create_dir_all(&tree).unwrap();
    for i in 0..5 {
        std::fs::write(tree.join(format!("f{i}")), b"x").unwrap();
    }
    let mut packed = Vec::new();
    archive::pack(&tree, Compression::Zstd, &mut packed).unwrap();
    let mut r = spy_hash::Sha256Reader::new(&packed[..]);
    std::io::copy(&mut r, &mut std::io::sink()).unwrap();
    (meta.archive_sha256, meta.archive_size) = r.finish();
    (meta.size, meta.files) = (5, 2);
    std::fs::write(c.archive(&meta), &packed).unwrap();
    let (r, out) = c.fetch(&meta);
    let e = r.unwrap_err();
    assert_eq!(over_budget(&e), Some("files"), "{e}");
    assert!(std::fs::read_dir(&out).unwrap().count() <= 2);
}

#[test]
fn the_archive_path_is_the_one_the_signature_implies() {
    let c = Cache::new();
    let good = serde_json::to_vec(&c.meta).unwrap();
    assert_eq!(CacheMeta::parse(&good).unwrap(), c.meta);
    for bad in [
        "../../../etc/passwd",
        "/tmp/fifo",
        "archives/../meta/x.json",
        "archives/0000.tar.zst",
        &c.meta.archive.replace(".tar.zst", ".tar.xz"),
    ] {
        let mut m = c.meta.clone();
        m.archive = bad.to_string();
        let e = CacheMeta::parse(&serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert!(e.contains("not the signed one"), "{bad}: {e}");
    }
    // Even metadata that skipped parsing is read from the derived path only.
    let mut m = c.meta.clone();
    m.archive = "archives/elsewhere".into();
    std::fs::write(c.dir.path().join("cache/archives/elsewhere"), b"decoy").unwrap();
    let (r, _) = c.fetch(&m);
    r.unwrap();
}

#[test]
fn a_fifo_in_place_of_the_archive_is_refused_quickly() {
    let c = Cache::new();
    let p = c.archive(&c.meta);
    std::fs::remove_file(&p).unwrap();
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let t0 = std::time::Instant::now();
    let (r, out) = c.fetch(&c.meta);
    let took = t0.elapsed();
    let e = r.unwrap_err();
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(!out.exists());
    eprintln!("FIFO archive refused in {took:?}");
}
