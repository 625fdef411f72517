use std::path::{Path, PathBuf};

use spy_plan::Source;
use spy_store::Store;

use super::{sha_of, Origin};
use crate::{Attempt, FetchError};

/// A local directory holding sources by file name or by sha256 (`--mirror DIR`, `SPY_MIRRORS`),
/// directly or in one of its subdirectories (one level: `../shared/sources/staticpython/`), so one
/// mirror directory can keep sources grouped by where they came from. What is found is only a
/// candidate: its bytes must hash to the pin.
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
        for candidate in candidate_dirs(&self.dir)
            .iter()
            .flat_map(|d| [d.join(&src.file), d.join(expected.to_hex())])
        {
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
        Ok(Attempt::Missed(format!(
            "no {} or {} there or in its subdirectories",
            src.file, expected
        )))
    }
}

/// The mirror directory, then its subdirectories in name order (hidden ones and a git clone's
/// own directories left out: they hold no source files).
fn candidate_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && !name.ends_with(".git")
        })
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    std::iter::once(dir.to_path_buf()).chain(subdirs).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_itself_comes_first_then_its_subdirectories_in_order() {
        let d = tempfile::tempdir().unwrap();
        for sub in ["b", "a", ".hidden", "clone.git"] {
            std::fs::create_dir(d.path().join(sub)).unwrap();
        }
        std::fs::write(d.path().join("file"), "x").unwrap();
        let got = candidate_dirs(d.path());
        assert_eq!(got, vec![d.path().to_path_buf(), d.path().join("a"), d.path().join("b")]);
        assert_eq!(candidate_dirs(&d.path().join("missing")), vec![d.path().join("missing")]);
    }
}
