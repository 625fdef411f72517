//! Where a cache's files live. One trait, one file per backend, chosen by the URL's scheme:
//! `file://` (or an absolute path) for a directory, `http://`/`https://` for a server that answers
//! GET (and PUT, to be pushed to: any WebDAV-capable server).

mod file;
mod http;

use std::io::Read;
use std::path::Path;

pub(crate) use file::open_regular;
pub use file::FileBackend;
pub use http::HttpBackend;

use crate::CacheError;

pub trait Backend: Send + Sync {
    /// The cache's URL, as the user wrote it (for messages).
    fn url(&self) -> &str;
    /// A file of the cache, streamed; `None` if the cache does not have it.
    fn get(&self, path: &str) -> Result<Option<Box<dyn Read + Send>>, CacheError>;
    /// Whether the cache has the file.
    fn has(&self, path: &str) -> Result<bool, CacheError>;
    /// Stores the local file `from` as `path`, replacing any earlier one. Readers never see a
    /// partial file where the backend allows (a directory: temp file and rename; WebDAV servers
    /// write PUT bodies aside and rename too).
    fn put(&self, path: &str, from: &Path) -> Result<(), CacheError>;
}

/// Refuses a cache path that is not relative and made of plain names (`meta/<id>.json`,
/// `archives/<sha256>.tar.zst`): nothing read or written may leave the cache.
pub(crate) fn check_rel(url: &str, rel: &str) -> Result<(), CacheError> {
    let plain = |c: &str| !c.is_empty() && c != "." && c != ".." && !c.contains('\\') && !c.contains('\0');
    if rel.split('/').all(plain) {
        Ok(())
    } else {
        Err(CacheError::BadPath {
            url: url.to_string(),
            path: rel.to_string(),
        })
    }
}

/// The backend for a cache URL.
pub fn open(url: &str) -> Result<Box<dyn Backend>, CacheError> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Box::new(FileBackend::new(url, Path::new(path))?));
    }
    if url.starts_with('/') {
        return Ok(Box::new(FileBackend::new(url, Path::new(url))?));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Box::new(HttpBackend::new(url)));
    }
    Err(CacheError::UnsupportedUrl { url: url.to_string() })
}
