//! Binary caches: per node id, a signed metadata file (`meta/<id>.json`) and a compressed archive
//! of the store entry (`archives/<sha256>.tar.zst`), in a directory or behind an HTTP server.
//!
//! Push writes the archive before the metadata, so a reader that finds metadata finds its archive.
//! Substitution trusts nothing it has not checked: the metadata must describe the node asked for
//! and carry a valid signature by a trusted key; the archive's sha256 and size must match the
//! signed ones; the unpacked tree's hash must match the signed tree hash before the store registers
//! it. Anything else is refused with a reason, and the caller builds the node instead.
//! [`Substitution`] is the realizer the scheduler runs in a store transaction for a substituted
//! node. Push and `spy serve` only read entries; they write staging files (through the store) and
//! `spy serve`'s directory of packed archives.
//! `docs/caches.md` describes the format.

pub mod archive;
pub mod backend;
pub mod config;
pub mod keys;
pub mod serve;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use spy_hash::{NodeId, Sha256, TreeHash};
use spy_store::{EntryMeta, Store, StoreError};

pub use archive::Compression;
pub use backend::{open, Backend};
pub use keys::{FileSignature, PublicKey, SecretKey};

pub const CACHE_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("cache {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("`{url}` is not a cache URL: use file:///DIR, http:// or https://")]
    UnsupportedUrl { url: String },
    #[error("{url}: `{path}` is not a path inside the cache")]
    BadPath { url: String, path: String },
    #[error("key {key}: {message}")]
    BadKey { key: String, message: String },
    #[error("{node} in {url}: metadata is unreadable: {message}")]
    BadMeta { node: String, url: String, message: String },
    #[error("{node} in {url} is unsigned")]
    Unsigned { node: String, url: String },
    #[error("{node} in {url} is signed only by untrusted key(s) {keys}")]
    Untrusted { node: String, url: String, keys: String },
    #[error("{node} in {url}: the signature by `{key}` does not match the metadata (tampered or corrupt)")]
    BadSignature { node: String, url: String, key: String },
    #[error("{node} in {url}: its archive {archive} is missing")]
    MissingArchive { node: String, url: String, archive: String },
    #[error("{node} from {url}: {what} mismatch (expected {expected}, got {actual})")]
    Mismatch {
        node: String,
        url: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{node} from {url}: the archive does not unpack: {source}")]
    BadArchive {
        node: String,
        url: String,
        source: Box<spy_unpack::UnpackError>,
    },
    #[error("{node} is not built in this store; `spy realize {node}` first")]
    NotBuilt { node: String },
    #[error("pushing {node}: {source}")]
    Push { node: String, source: Box<CacheError> },
    #[error("{} already exists; not overwriting a key", path.display())]
    KeyExists { path: PathBuf },
    #[error("user config {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The metadata file of one cached entry. Everything but `signatures` is covered by them (see
/// `fingerprint`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheMeta {
    pub format: u32,
    pub id: NodeId,
    pub store_name: String,
    pub name: String,
    pub version: String,
    pub target: String,
    /// The entry's tree hash, as its store records it.
    pub tree_hash: TreeHash,
    /// Bytes and count of regular files once unpacked.
    pub size: u64,
    pub files: u64,
    /// Path of the archive, relative to the cache root.
    pub archive: String,
    pub compression: Compression,
    pub archive_sha256: Sha256,
    pub archive_size: u64,
    /// Store names of the entries it was built from.
    pub references: Vec<String>,
    #[serde(default)]
    pub signatures: Vec<String>,
}

impl CacheMeta {
    /// What a signature signs: every field that decides what lands in the store.
    pub fn fingerprint(&self) -> Vec<u8> {
        format!(
            "spy-cache-{};{};{};{};{};{};{};{};{};{};{}",
            self.format,
            self.id,
            self.store_name,
            self.target,
            self.tree_hash,
            self.size,
            self.files,
            self.compression.as_str(),
            self.archive_sha256,
            self.archive_size,
            self.references.join(",")
        )
        .into_bytes()
    }

    pub fn sign(&mut self, key: &SecretKey) {
        let sig = key.sign(&self.fingerprint());
        self.signatures.retain(|s| !s.starts_with(&format!("{}:", key.name)));
        self.signatures.push(sig);
        self.signatures.sort();
    }

    /// Ok if a trusted key signed this metadata; otherwise why not.
    pub fn check_trust(&self, trusted: &[PublicKey], node: &str, url: &str) -> Result<(), CacheError> {
        let node = node.to_string();
        if self.signatures.is_empty() {
            return Err(CacheError::Unsigned { node, url: url.into() });
        }
        let fp = self.fingerprint();
        let mut bad_key = None;
        for key in trusted {
            for sig in &self.signatures {
                match key.verify(&fp, sig) {
                    Some(true) => return Ok(()),
                    Some(false) => bad_key = Some(key.name.clone()),
                    None => {}
                }
            }
        }
        if let Some(key) = bad_key {
            return Err(CacheError::BadSignature {
                node,
                url: url.into(),
                key,
            });
        }
        let names: Vec<String> = self
            .signatures
            .iter()
            .map(|s| format!("`{}`", s.split(':').next().unwrap_or_default()))
            .collect();
        Err(CacheError::Untrusted {
            node,
            url: url.into(),
            keys: names.join(", "),
        })
    }
}

impl CacheMeta {
    /// Parses a metadata file, refusing anything but this spy's format and an `archive` path that
    /// is exactly the one the signed fields name (`archives/<archive_sha256>.<extension>`): the
    /// path is not signed itself, so it may not say anything the signature does not.
    pub fn parse(bytes: &[u8]) -> Result<CacheMeta, String> {
        let meta: CacheMeta = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if meta.format != CACHE_FORMAT {
            return Err(format!("format {} (this spy reads {CACHE_FORMAT})", meta.format));
        }
        let expected = archive_path(&meta.archive_sha256, meta.compression);
        if meta.archive != expected {
            return Err(format!("its archive path `{}` is not the signed one (`{expected}`)", meta.archive));
        }
        Ok(meta)
    }
}

pub fn meta_path(id: &NodeId) -> String {
    format!("meta/{id}.json")
}

/// Where a cache keeps the archive of this sha256 and compression: derived from signed fields only.
pub fn archive_path(sha: &Sha256, compression: Compression) -> String {
    format!("archives/{sha}.{}", compression.extension())
}

fn read_meta(cache: &dyn Backend, id: &NodeId, node: &str) -> Result<Option<CacheMeta>, CacheError> {
    let Some(mut r) = cache.get(&meta_path(id))? else {
        return Ok(None);
    };
    let bad = |message: String| CacheError::BadMeta {
        node: node.to_string(),
        url: cache.url().to_string(),
        message,
    };
    // Metadata is small; anything past 1 MiB is not ours.
    let mut text = Vec::new();
    (&mut r).take(1 << 20).read_to_end(&mut text).map_err(|e| bad(e.to_string()))?;
    CacheMeta::parse(&text).map(Some).map_err(bad)
}

// ---- push ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pushed {
    /// Archive and metadata uploaded; the archive's compressed size.
    Uploaded { archive_size: u64 },
    /// The cache already had it (signed by the key, if one was given); nothing uploaded.
    Present,
    /// The cache had it; only the metadata was uploaded again, with the new signature.
    Signed,
}

/// What [`push_nodes`] did, in all.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PushSummary {
    /// Entries uploaded, and those the cache had (perhaps given a new signature).
    pub uploaded: usize,
    pub present: usize,
    /// Unpacked bytes of the uploaded entries, and the size of their archives.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One node's outcome in [`push_nodes`], as it happens.
#[derive(Debug)]
pub enum PushEvent<'a> {
    /// Not in the store (a dependency that was substituted away, say): skipped.
    Skipped(&'a spy_plan::NodeKey),
    Done {
        node: &'a spy_plan::NodeKey,
        /// The entry's unpacked size.
        size: u64,
        pushed: Pushed,
        seconds: f64,
    },
}

/// Pushes the store entries of `roots` (with `closure`, of their whole closures) to `cache`, each
/// as [`push`] does; host-specific entries (`PlanNode::is_host_specific`) mean nothing elsewhere
/// and are never shared. Every root must be in the store. `report` hears about each node.
#[allow(clippy::too_many_arguments)]
pub fn push_nodes(
    store: &Store,
    plan: &spy_plan::Plan,
    roots: &[petgraph::graph::NodeIndex],
    closure: bool,
    cache: &dyn Backend,
    key: Option<&SecretKey>,
    compression: Compression,
    report: impl Fn(PushEvent),
) -> Result<PushSummary, CacheError> {
    if let Some(&r) = roots.iter().find(|&&r| !store.is_valid(&plan.node(r).store_name())) {
        return Err(CacheError::NotBuilt {
            node: plan.node(r).key.to_string(),
        });
    }
    let nodes = if closure { plan.closure(roots) } else { roots.to_vec() };
    let mut sum = PushSummary::default();
    for n in nodes {
        let node = plan.node(n);
        if node.is_host_specific() {
            continue;
        }
        let Some(entry) = store.lookup(&node.store_name())? else {
            report(PushEvent::Skipped(&node.key));
            continue;
        };
        let t = std::time::Instant::now();
        let pushed = push(store, &entry, cache, key, compression, &store.tmp_dir()).map_err(|e| CacheError::Push {
            node: node.key.to_string(),
            source: Box::new(e),
        })?;
        match pushed {
            Pushed::Uploaded { archive_size } => {
                sum.uploaded += 1;
                sum.bytes_in += entry.size;
                sum.bytes_out += archive_size;
            }
            Pushed::Signed | Pushed::Present => sum.present += 1,
        }
        report(PushEvent::Done {
            node: &node.key,
            size: entry.size,
            pushed,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    Ok(sum)
}

/// Uploads one store entry: the archive first, then its metadata. With `key`, the metadata is
/// signed; an entry already present gets the signature added. Archives are packed into temporary
/// files in `staging` (the store itself is only read).
pub fn push(
    store: &Store,
    entry: &EntryMeta,
    cache: &dyn Backend,
    key: Option<&SecretKey>,
    compression: Compression,
    staging: &Path,
) -> Result<Pushed, CacheError> {
    if let Some(mut existing) = read_meta(cache, &entry.node.id, entry.store_name.as_str()).ok().flatten() {
        if existing.tree_hash == entry.tree_hash && cache.has(&archive_path(&existing.archive_sha256, existing.compression))? {
            let Some(key) = key else { return Ok(Pushed::Present) };
            let fp = existing.fingerprint();
            if existing.signatures.iter().any(|s| key.public().verify(&fp, s) == Some(true)) {
                return Ok(Pushed::Present);
            }
            existing.sign(key);
            upload_meta(store, staging, cache, &existing)?;
            return Ok(Pushed::Signed);
        }
    }
    let meta = pack_entry(store, entry, compression, staging, |tmp, meta| cache.put(&meta.archive, tmp))?;
    let mut meta = meta;
    if let Some(k) = key {
        meta.sign(k);
    }
    upload_meta(store, staging, cache, &meta)?;
    Ok(Pushed::Uploaded {
        archive_size: meta.archive_size,
    })
}

/// Packs an entry into a temporary file, hands it to `upload` and returns the (unsigned) metadata.
pub fn pack_entry(
    store: &Store,
    entry: &EntryMeta,
    compression: Compression,
    staging: &Path,
    upload: impl FnOnce(&Path, &CacheMeta) -> Result<(), CacheError>,
) -> Result<CacheMeta, CacheError> {
    let src = store.entry(&entry.store_name);
    let mut tmp = store.staging_file_in(staging, "push-")?;
    let io = |p: &Path, e: std::io::Error| CacheError::Io {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    archive::pack(&src, compression, std::io::BufWriter::new(tmp.as_file_mut())).map_err(|e| io(&src, e))?;
    let archive_size = tmp.as_file().metadata().map_err(|e| io(tmp.path(), e))?.len();
    let sha = spy_hash::sha256_file(tmp.path()).map_err(StoreError::from)?;
    let meta = CacheMeta {
        format: CACHE_FORMAT,
        id: entry.node.id,
        store_name: entry.store_name.to_string(),
        name: entry.node.name.clone(),
        version: entry.node.version.clone(),
        target: entry.node.target.clone(),
        tree_hash: entry.tree_hash,
        size: entry.size,
        files: entry.files,
        archive: archive_path(&sha, compression),
        compression,
        archive_sha256: sha,
        archive_size,
        references: entry.inputs.iter().map(|i| i.to_string()).collect(),
        signatures: Vec::new(),
    };
    upload(tmp.path(), &meta)?;
    Ok(meta)
}

/// Uploads the metadata through a temporary file in `staging` (flock-held, so a `gc` of the store
/// leaves it alone while this process lives and removes it once it is gone).
fn upload_meta(store: &Store, staging: &Path, cache: &dyn Backend, meta: &CacheMeta) -> Result<(), CacheError> {
    let tmp = store.staging_file_in(staging, "push-")?;
    serde_json::to_writer_pretty(tmp.as_file(), meta).map_err(|e| CacheError::Io {
        path: tmp.path().to_path_buf(),
        message: e.to_string(),
    })?;
    cache.put(&meta_path(&meta.id), tmp.path())
}

// ---- substitution ----------------------------------------------------------------------------

/// Realizes a node from a trusted entry `found` in one of `subs`: downloads, checks and unpacks
/// it into the transaction's output ([`Substituters::fetch_into`]), and says where it came from in
/// the entry's log. The store registers it only if it hashes to the signed tree hash.
pub struct Substitution<'a> {
    pub subs: &'a Substituters,
    pub found: &'a Found,
}

impl spy_plan::Realizer for Substitution<'_> {
    type Error = CacheError;

    fn origin(&self, _node: &spy_plan::PlanNode) -> spy_store::Origin {
        spy_store::Origin::Substituted {
            from: self.subs.url(self.found.cache).to_string(),
            tree_hash: self.found.meta.tree_hash,
        }
    }

    fn realize(&self, plan: &spy_plan::Plan, n: petgraph::graph::NodeIndex, w: &mut spy_store::Work) -> Result<(), CacheError> {
        let t0 = std::time::Instant::now();
        self.subs.fetch_into(self.found, &plan.node(n).key.to_string(), w.out())?;
        let m = &self.found.meta;
        w.write_log(&format!(
            "substituted from {}: {} ({} bytes, sha256 {}), tree hash {}, in {:.1}s\n",
            self.subs.url(self.found.cache),
            m.archive,
            m.archive_size,
            m.archive_sha256,
            m.tree_hash,
            t0.elapsed().as_secs_f64()
        ))?;
        Ok(())
    }
}

/// The caches to substitute from, in order of preference, and the keys trusted to sign for them.
pub struct Substituters {
    caches: Vec<Box<dyn Backend>>,
    trusted: Vec<PublicKey>,
    /// Caches that were unreachable once: not asked again in this process.
    down: Mutex<Vec<bool>>,
}

/// A trusted entry found in a cache.
#[derive(Debug, Clone)]
pub struct Found {
    pub cache: usize,
    pub meta: CacheMeta,
}

impl Substituters {
    pub fn new(urls: &[String], trusted: Vec<PublicKey>) -> Result<Substituters, CacheError> {
        let caches = urls.iter().map(|u| backend::open(u)).collect::<Result<Vec<_>, _>>()?;
        Ok(Substituters {
            down: Mutex::new(vec![false; caches.len()]),
            caches,
            trusted,
        })
    }

    /// Substituters over backends already opened (tests, or a caller with its own backend).
    pub fn from_backends(caches: Vec<Box<dyn Backend>>, trusted: Vec<PublicKey>) -> Substituters {
        Substituters {
            down: Mutex::new(vec![false; caches.len()]),
            caches,
            trusted,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.caches.is_empty()
    }

    pub fn url(&self, cache: usize) -> &str {
        self.caches[cache].url()
    }

    fn is_down(&self, i: usize) -> bool {
        self.down.lock().map(|d| d[i]).unwrap_or(true)
    }

    fn mark_down(&self, i: usize) -> bool {
        let mut d = self.down.lock().expect("substituter state");
        !std::mem::replace(&mut d[i], true)
    }

    /// Asks the caches in order for a trusted entry of the node (`label` names it in messages);
    /// each refusal (and an unreachable cache, once) goes to `warn`.
    pub fn query(&self, id: &NodeId, store_name: &spy_store::StoreName, label: &str, warn: &dyn Fn(&str)) -> Option<Found> {
        for (i, cache) in self.caches.iter().enumerate() {
            if self.is_down(i) {
                continue;
            }
            let checked = read_meta(cache.as_ref(), id, label).and_then(|m| match m {
                None => Ok(None),
                Some(m) if m.id != *id || m.store_name != store_name.as_str() => Err(CacheError::BadMeta {
                    node: label.to_string(),
                    url: cache.url().to_string(),
                    message: format!("it describes {} instead", m.store_name),
                }),
                Some(m) => m.check_trust(&self.trusted, label, cache.url()).map(|()| Some(m)),
            });
            match checked {
                Ok(Some(meta)) => return Some(Found { cache: i, meta }),
                Ok(None) => {}
                Err(e @ CacheError::Unreachable { .. }) => {
                    if self.mark_down(i) {
                        warn(&format!("warning: {e}; not asking it again in this run"));
                    }
                }
                Err(e) => warn(&format!("warning: not substituting {e}")),
            }
        }
        None
    }

    /// Downloads the archive of `found` and unpacks it into `out` (`label` names the node in
    /// errors). Nothing unverified is unpacked: the archive is read from the path its signed sha256
    /// names, streamed through the hasher into a temporary file beside `out` and cut off one byte
    /// past the signed size; only if size and sha256 match is it unpacked, with the signed
    /// unpacked size and file count as the budget. The caller registers `out` against
    /// `found.meta.tree_hash` and discards it on error.
    pub fn fetch_into(&self, found: &Found, label: &str, out: &Path) -> Result<(), CacheError> {
        let cache = &self.caches[found.cache];
        let meta = &found.meta;
        let url = cache.url().to_string();
        let node = label.to_string();
        let rel = archive_path(&meta.archive_sha256, meta.compression);
        let Some(body) = cache.get(&rel)? else {
            return Err(CacheError::MissingArchive { node, url, archive: rel });
        };
        let staging = out.parent().unwrap_or(out);
        let io = |p: &Path, e: std::io::Error| CacheError::Io {
            path: p.to_path_buf(),
            message: e.to_string(),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(staging)
            .map_err(|e| io(staging, e))?;
        // One byte more than promised is enough to know it is too long.
        let mut hashed = spy_hash::Sha256Reader::new(body.take(meta.archive_size + 1));
        std::io::copy(&mut hashed, tmp.as_file_mut()).map_err(|e| CacheError::Http {
            url: format!("{}/{rel}", url.trim_end_matches('/')),
            message: format!("download cut short: {e}"),
        })?;
        let (sha, size) = hashed.finish();
        if size != meta.archive_size {
            return Err(CacheError::Mismatch {
                node,
                url,
                what: "archive size",
                expected: meta.archive_size.to_string(),
                actual: if size > meta.archive_size {
                    format!("more (refused after {size} bytes)")
                } else {
                    size.to_string()
                },
            });
        }
        if sha != meta.archive_sha256 {
            return Err(CacheError::Mismatch {
                node,
                url,
                what: "archive sha256",
                expected: meta.archive_sha256.to_string(),
                actual: sha.to_string(),
            });
        }
        use std::io::Seek;
        tmp.as_file_mut().rewind().map_err(|e| io(tmp.path(), e))?;
        let limits = spy_unpack::Limits {
            bytes: Some(meta.size),
            files: Some(meta.files),
        };
        archive::unpack(
            Path::new(&rel),
            std::io::BufReader::new(tmp.as_file()),
            meta.compression,
            out,
            limits,
        )
        .map(|_| ())
        .map_err(|e| CacheError::BadArchive {
            node,
            url,
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod fetch_tests;
#[cfg(test)]
mod push_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CacheMeta {
        CacheMeta {
            format: CACHE_FORMAT,
            id: NodeId([1; 32]),
            store_name: "0101-x-1".into(),
            name: "x".into(),
            version: "1".into(),
            target: "t".into(),
            tree_hash: TreeHash([2; 32]),
            size: 3,
            files: 1,
            archive: "archives/a.tar.zst".into(),
            compression: Compression::Zstd,
            archive_sha256: Sha256([4; 32]),
            archive_size: 5,
            references: vec!["0000-dep-1".into()],
            signatures: vec![],
        }
    }

    #[test]
    fn trust_needs_a_valid_signature_by_a_trusted_key() {
        let (k1, k2) = (SecretKey::generate("k1").unwrap(), SecretKey::generate("k2").unwrap());
        let mut m = meta();
        assert!(matches!(m.check_trust(&[k1.public()], "x", "u"), Err(CacheError::Unsigned { .. })));
        m.sign(&k1);
        assert!(m.check_trust(&[k1.public()], "x", "u").is_ok());
        let e = m.check_trust(&[k2.public()], "x", "u").unwrap_err().to_string();
        assert!(e.contains("untrusted key(s) `k1`"), "{e}");
        // Every signed field counts.
        for change in [
            |m: &mut CacheMeta| m.tree_hash = TreeHash([9; 32]),
            |m: &mut CacheMeta| m.archive_size += 1,
            |m: &mut CacheMeta| m.references.clear(),
            |m: &mut CacheMeta| m.compression = Compression::Xz,
        ] {
            let mut t = m.clone();
            change(&mut t);
            assert!(matches!(
                t.check_trust(&[k1.public()], "x", "u"),
                Err(CacheError::BadSignature { .. })
            ));
        }
        // Two trusted keys of one name: the one that verifies wins.
        let other_k1 = SecretKey::generate("k1").unwrap();
        assert!(m.check_trust(&[other_k1.public(), k1.public()], "x", "u").is_ok());
        // Signing again with the same key replaces its signature.
        m.sign(&k1);
        m.sign(&k2);
        assert_eq!(m.signatures.len(), 2);
    }
}
