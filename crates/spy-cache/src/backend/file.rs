//! A cache in a local directory (`file:///srv/spy-cache`).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::Backend;
use crate::CacheError;

pub struct FileBackend {
    url: String,
    root: PathBuf,
}

impl FileBackend {
    pub fn new(url: &str, root: &Path) -> Result<FileBackend, CacheError> {
        if !root.is_absolute() {
            return Err(CacheError::UnsupportedUrl {
                url: format!("{url} (a file cache needs an absolute path: file:///DIR)"),
            });
        }
        Ok(FileBackend {
            url: url.to_string(),
            root: root.to_path_buf(),
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn io(&self, p: &Path, e: impl std::fmt::Display) -> CacheError {
        CacheError::Io {
            path: p.to_path_buf(),
            message: e.to_string(),
        }
    }
}

impl Backend for FileBackend {
    fn url(&self) -> &str {
        &self.url
    }

    fn get(&self, rel: &str) -> Result<Option<Box<dyn Read + Send>>, CacheError> {
        let p = self.path(rel);
        match std::fs::File::open(&p) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.root.is_dir() {
                    Ok(None)
                } else {
                    Err(CacheError::Unreachable {
                        url: self.url.clone(),
                        message: format!("{} is not a directory", self.root.display()),
                    })
                }
            }
            Err(e) => Err(self.io(&p, e)),
        }
    }

    fn has(&self, rel: &str) -> Result<bool, CacheError> {
        Ok(self.path(rel).is_file())
    }

    fn put(&self, rel: &str, from: &Path) -> Result<(), CacheError> {
        let dest = self.path(rel);
        let dir = dest.parent().unwrap_or(&self.root);
        fs_err::create_dir_all(dir).map_err(|e| self.io(dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".upload-")
            .tempfile_in(dir)
            .map_err(|e| self.io(dir, e))?;
        let mut src = fs_err::File::open(from).map_err(|e| self.io(from, e))?;
        std::io::copy(&mut src, tmp.as_file_mut()).map_err(|e| self.io(&dest, e))?;
        tmp.as_file().sync_all().map_err(|e| self.io(&dest, e))?;
        // Cache files are readable by whoever serves the directory.
        let _ = std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644));
        tmp.persist(&dest).map_err(|e| self.io(&dest, e))?;
        Ok(())
    }
}
