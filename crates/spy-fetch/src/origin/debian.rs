use std::process::Command;

use spy_plan::Source;
use spy_store::Store;

use super::{pick_matching, run_tool, sha_of, Origin};
use crate::{Attempt, FetchError};

/// Debian source packages: `apt-get source --download-only PKG` (needs deb-src entries), then the
/// downloaded file whose sha256 is the pinned one (usually the `.orig` tarball).
pub struct DebianOrigin;

impl Origin for DebianOrigin {
    fn name(&self) -> String {
        "apt-get source".into()
    }
    fn applies(&self, src: &Source) -> bool {
        sha_of(src).is_some() && src.debian.is_some()
    }
    fn fetch(&self, store: &Store, src: &Source, log: &dyn Fn(&str)) -> Result<Attempt, FetchError> {
        let Some(pkg) = &src.debian else {
            return Ok(Attempt::Missed("no debian package named".into()));
        };
        let dir = store.staging_dir("apt-")?;
        log(&format!("apt-get source --download-only {pkg}"));
        let mut cmd = Command::new("apt-get");
        cmd.args(["source", "--download-only", "-qq", pkg]).current_dir(dir.path());
        if let Err(e) = run_tool(&mut cmd) {
            return Ok(Attempt::Missed(format!(
                "`apt-get source --download-only {pkg}` failed: {e} (are deb-src entries configured and `apt-get update` run?)"
            )));
        }
        pick_matching(store, dir.path(), src, &format!("apt-get source {pkg}"))
    }
}
