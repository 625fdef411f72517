//! Fixed-output sources. A source is pinned by sha256 (or a git commit); this crate finds bytes that
//! match the pin through a list of origins (store cache, mirror directories, URLs, Debian source
//! packages, PyPI sdists, git), streams them into the store's source cache with the hash computed
//! on the way. (Unpacking them is spy-unpack's.)
//!
//! It writes only through the store's API (staging files, the source cache). Every origin is one file under `origin/`, implementing [`Origin`]. A mismatching file is never
//! stored: it is reported (expected and actual hash, origin) and the next origin is tried.

mod origin;

use std::io::Read;
use std::path::{Path, PathBuf};

use spy_hash::{Sha256, Sha256Reader};
use spy_plan::{Source, SourcePin};
use spy_store::Store;

pub use origin::{
    default_origins, download_pure_wheels, find_sdist, DebianOrigin, FileUrlOrigin, FoundSdist, GitOrigin, HttpOrigin, MirrorOrigin,
    Origin, PypiOrigin,
};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("source {file} ({}) could not be obtained; tried:\n{}", pin, attempts.iter().map(|a| format!("  - {a}")).collect::<Vec<_>>().join("\n"))]
    NotFound {
        file: String,
        pin: SourcePin,
        attempts: Vec<String>,
    },
    #[error("source {file}: git `exclude` path `{path}` is not in the tree of commit {commit}")]
    BadExclude { file: String, commit: String, path: String },
    #[error(transparent)]
    Store(#[from] spy_store::StoreError),
}

/// What to tell a user whose source could not be obtained.
pub const MISSING_SOURCE_HINT: &str = "put the file in a directory and pass `--mirror DIR` (or SPY_MIRRORS), or run `spy add-source FILE`";

impl FetchError {
    /// How to supply the missing source: a file for a sha256 pin, a clone for a git pin.
    pub fn hint(&self) -> String {
        match self {
            FetchError::NotFound {
                pin: SourcePin::Git { url, .. },
                ..
            } => {
                let name = origin::repository_name(url);
                format!(
                    "clone {url} where it can be reached, put the clone (a directory named `{name}` or `{name}.git` that holds the pinned commit) in a directory and pass `--mirror DIR` (or SPY_MIRRORS)"
                )
            }
            _ => MISSING_SOURCE_HINT.into(),
        }
    }
}

/// What one origin did with one source.
pub enum Attempt {
    /// The bytes matched and are now in the store at this path.
    Stored(PathBuf),
    /// This origin has nothing (the reason goes into the error's list).
    Missed(String),
}

/// Settings shared by origins.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    pub mirrors: Vec<PathBuf>,
    /// Skip network origins (URLs over HTTP, apt, pip, remote git).
    pub offline: bool,
}

/// Makes sure the source is in the store's cache and returns its path there.
pub fn ensure(store: &Store, src: &Source, origins: &[Box<dyn Origin>], log: &dyn Fn(&str)) -> Result<PathBuf, FetchError> {
    if let Some(p) = src.cached_in(store) {
        return Ok(p);
    }
    let mut attempts = Vec::new();
    for o in origins {
        if !o.applies(src) {
            continue;
        }
        match o.fetch(store, src, log) {
            Ok(Attempt::Stored(p)) => {
                if !attempts.is_empty() {
                    log(&format!("{}: obtained from {} after: {}", src.file, o.name(), attempts.join("; ")));
                }
                return Ok(p);
            }
            Ok(Attempt::Missed(why)) => attempts.push(format!("{}: {why}", o.name())),
            Err(e) => {
                if matches!(e, FetchError::Store(spy_store::StoreError::SourceMismatch { .. })) {
                    log(&format!("warning: {e}"));
                }
                attempts.push(format!("{}: {e}", o.name()));
            }
        }
    }
    if attempts.is_empty() {
        attempts.push("no origin applies (no URL, mirror, debian, pypi or git given)".into());
    }
    Err(FetchError::NotFound {
        file: src.file.clone(),
        pin: src.pin.clone(),
        attempts,
    })
}

/// Streams `reader` into the store's cache if its sha256 equals `expected`; nothing is stored
/// otherwise (the error names both hashes and the origin).
pub fn store_stream(store: &Store, reader: impl Read, file: &str, expected: &Sha256, origin: &str) -> Result<PathBuf, FetchError> {
    let mut tmp = store.staging_file()?;
    let mut r = Sha256Reader::new(reader);
    std::io::copy(&mut r, tmp.as_file_mut()).map_err(|e| spy_store::StoreError::Io {
        path: PathBuf::from(origin),
        message: e.to_string(),
    })?;
    let (actual, _) = r.finish();
    Ok(store.add_source(tmp, file, expected, &actual, origin)?)
}

/// `spy add-source`: copies a local file into the cache under its own sha256.
pub fn add_file(store: &Store, path: &Path) -> Result<(Sha256, PathBuf), FetchError> {
    let actual = spy_hash::sha256_file(path).map_err(spy_store::StoreError::from)?;
    let f = fs_err::File::open(path).map_err(|e| spy_store::StoreError::Io {
        path: path.into(),
        message: e.to_string(),
    })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let p = store_stream(store, f, &name, &actual, &path.display().to_string())?;
    Ok((actual, p))
}
