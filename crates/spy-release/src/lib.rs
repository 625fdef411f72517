//! What `spy check` and `spy release` do, beyond realizing: [`check`] rebuilds nodes in a fresh
//! store at another path and compares their outputs with the store's; [`release`] writes the
//! files of a release (binaries, manifests, CycloneDX SBOMs, deterministic `.tar.gz`/`.tar.zst`
//! archives of each, `SHA256SUMS` and its signature).
//!
//! It reads the store's entries, makes `spy check`'s fresh stores in the store's scratch space
//! (through the store and the scheduler, like any realize), and writes only into the release
//! directory it is given. It prints nothing but progress lines: the CLI reports the results.

mod archive;
mod check;
mod release;

pub use archive::{cyclonedx, write_archives};
pub use check::{check, differing_files, diffoscope, CheckError, Checked, Differs, FileDiff};
pub use release::{releasable, release, release_files, write_sums, ReleaseError, Released};

/// A scratch directory with two (not yet created) paths in it, for the unit tests.
#[cfg(test)]
fn scratch(a: &str, b: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = tempfile::tempdir().expect("scratch directory");
    let (a, b) = (d.path().join(a), d.path().join(b));
    (d, a, b)
}
