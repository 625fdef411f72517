use std::process::Command;

use spy_plan::Source;
use spy_store::Store;

use super::{pick_matching, run_tool, sha_of, Origin};
use crate::{Attempt, FetchError};

/// Debian source packages through apt (needs deb-src entries). The recipe names the package
/// (`debian = "openssl"`, or `"openssl=3.0.20-1~deb12u2"` to insist on one version); apt's source
/// index says which versions ship a file with the pinned sha256, and those are downloaded in turn
/// (`apt-get source --download-only --tar-only PKG=VERSION`) until one is still in the archive:
/// security updates replace versions, and a pin that no version offers any more fails clearly.
pub struct DebianOrigin;

impl Origin for DebianOrigin {
    fn name(&self) -> String {
        "apt-get source".into()
    }
    fn applies(&self, src: &Source) -> bool {
        sha_of(src).is_some() && src.debian.is_some()
    }
    fn fetch(&self, store: &Store, src: &Source, log: &dyn Fn(&str)) -> Result<Attempt, FetchError> {
        let (Some(spec), Some(sha)) = (&src.debian, sha_of(src)) else {
            return Ok(Attempt::Missed("no debian package named".into()));
        };
        let (pkg, versions) = match spec.split_once('=') {
            Some((p, v)) => (p.to_string(), vec![v.to_string()]),
            None => {
                let (matching, known) = match versions_with_file(spec, &sha.to_hex()) {
                    Ok(v) => v,
                    Err(e) => return Ok(Attempt::Missed(e)),
                };
                if matching.is_empty() {
                    return Ok(Attempt::Missed(format!(
                        "no version of Debian source package `{spec}` known to apt ships a file with sha256 {sha} (apt knows: {}); are deb-src entries configured and `apt-get update` run?",
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    )));
                }
                (spec.clone(), matching)
            }
        };
        let mut failures = Vec::new();
        for v in versions {
            let dir = store.staging_dir("apt-")?;
            let what = format!("{pkg}={v}");
            log(&format!("apt-get source --download-only {what}"));
            let mut cmd = Command::new("apt-get");
            cmd.args(["source", "--download-only", "--tar-only", "-qq", &what])
                .current_dir(dir.path());
            // apt fails the whole command when any file of the package is gone from the archive
            // (a .dsc or debian.tar of a superseded upload: seen for zlib and xz in sid), yet
            // keeps each file it did fetch whole. The pinned file is taken if it is among them:
            // its sha256 is checked as always.
            let ran = run_tool(&mut cmd);
            match (pick_matching(store, dir.path(), src, &format!("apt-get source {what}"))?, ran) {
                (Attempt::Stored(p), _) => return Ok(Attempt::Stored(p)),
                (Attempt::Missed(why), Ok(())) => failures.push(format!("{what}: {why}")),
                (Attempt::Missed(why), Err(e)) => failures.push(format!("{what}: {e}; {why}")),
            }
        }
        Ok(Attempt::Missed(format!(
            "`apt-get source --download-only` failed: {}",
            failures.join("; ")
        )))
    }
}

/// Versions of a source package whose file list has `sha256`, and every version apt knows.
fn versions_with_file(pkg: &str, sha256: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let out = Command::new("apt-cache")
        .args(["showsrc", "--only-source", pkg])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run apt-cache: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut matching, mut known) = (Vec::new(), Vec::new());
    let mut version = String::new();
    let mut in_sums = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Version: ") {
            version = v.trim().to_string();
            if !known.contains(&version) {
                known.push(version.clone());
            }
        }
        if line.starts_with("Checksums-Sha256:") {
            in_sums = true;
            continue;
        }
        if !line.starts_with(' ') {
            in_sums = false;
        }
        if in_sums && line.split_whitespace().next() == Some(sha256) && !matching.contains(&version) {
            matching.push(version.clone());
        }
    }
    Ok((matching, known))
}
