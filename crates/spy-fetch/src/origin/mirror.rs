use std::path::PathBuf;

use spy_plan::Source;
use spy_store::Store;

use super::{sha_of, Origin};
use crate::{Attempt, FetchError};

/// A local directory holding sources by file name or by sha256 (`--mirror DIR`, `SPY_MIRRORS`).
pub struct MirrorOrigin {
    dir: PathBuf,
}

impl MirrorOrigin {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl Origin for MirrorOrigin {
    fn name(&self) -> String {
        format!("mirror {}", self.dir.display())
    }
    fn applies(&self, src: &Source) -> bool {
        sha_of(src).is_some()
    }
    fn fetch(&self, store: &Store, src: &Source, _log: &dyn Fn(&str)) -> Result<Attempt, FetchError> {
        let Some(expected) = sha_of(src) else {
            return Ok(Attempt::Missed("not a sha256 source".into()));
        };
        for candidate in [self.dir.join(&src.file), self.dir.join(expected.to_hex())] {
            if candidate.is_file() {
                let f = fs_err::File::open(&candidate).map_err(|e| spy_store::StoreError::Io {
                    path: candidate.clone(),
                    message: e.to_string(),
                })?;
                return Ok(Attempt::Stored(crate::store_stream(
                    store,
                    f,
                    &src.file,
                    expected,
                    &candidate.display().to_string(),
                )?));
            }
        }
        Ok(Attempt::Missed(format!("no {} or {} there", src.file, expected)))
    }
}
