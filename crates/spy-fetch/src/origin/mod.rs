//! The places a source can come from, one file each.

mod debian;
mod git;
mod mirror;
mod pypi;
mod url;

use std::path::{Path, PathBuf};

use spy_plan::{Source, SourcePin};
use spy_store::Store;

pub use debian::DebianOrigin;
pub(crate) use git::repository_name;
pub use git::GitOrigin;
pub use mirror::MirrorOrigin;
pub use pypi::{download_pure_wheels, find_sdist, FoundSdist, PypiOrigin};
pub use url::{FileUrlOrigin, HttpOrigin};

use crate::{Attempt, FetchError, FetchOptions};

pub trait Origin: Send + Sync {
    /// Short description for messages: `mirror /srv/src`, `apt-get source`.
    fn name(&self) -> String;
    /// Whether this origin can say anything about the source at all.
    fn applies(&self, src: &Source) -> bool;
    fn fetch(&self, store: &Store, src: &Source, log: &dyn Fn(&str)) -> Result<Attempt, FetchError>;
}

/// The origins in the order they are tried: local ones first, then the network ones.
pub fn default_origins(opts: &FetchOptions) -> Vec<Box<dyn Origin>> {
    let mut v: Vec<Box<dyn Origin>> = opts
        .mirrors
        .iter()
        .map(|m| Box::new(MirrorOrigin::new(m.clone())) as Box<dyn Origin>)
        .collect();
    v.extend(opts.mirrors.iter().map(|m| {
        Box::new(GitOrigin {
            offline: opts.offline,
            mirror: Some(m.clone()),
        }) as Box<dyn Origin>
    }));
    v.push(Box::new(FileUrlOrigin));
    v.push(Box::new(GitOrigin {
        offline: opts.offline,
        mirror: None,
    }));
    if !opts.offline {
        v.push(Box::new(HttpOrigin::new()));
        v.push(Box::new(DebianOrigin));
        v.push(Box::new(PypiOrigin));
    }
    v
}

pub(crate) fn sha_of(src: &Source) -> Option<&spy_hash::Sha256> {
    match &src.pin {
        SourcePin::Sha256(h) => Some(h),
        SourcePin::Git { .. } => None,
    }
}

/// Looks through the files a tool downloaded into `dir` for the one with the pinned hash.
pub(crate) fn pick_matching(store: &Store, dir: &Path, src: &Source, origin: &str) -> Result<Attempt, FetchError> {
    let Some(expected) = sha_of(src) else {
        return Ok(Attempt::Missed("not a sha256 source".into()));
    };
    let mut seen: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> = fs_err::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let actual = spy_hash::sha256_file(&f).map_err(spy_store::StoreError::from)?;
        let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if &actual == expected {
            let file = fs_err::File::open(&f).map_err(|e| spy_store::StoreError::Io {
                path: f.clone(),
                message: e.to_string(),
            })?;
            return Ok(Attempt::Stored(crate::store_stream(
                store,
                file,
                &src.file,
                expected,
                &format!("{origin}: {name}"),
            )?));
        }
        seen.push(format!("{name} (sha256 {actual})"));
    }
    if seen.is_empty() {
        Ok(Attempt::Missed("downloaded nothing".into()))
    } else {
        Ok(Attempt::Missed(format!(
            "no file with sha256 {expected} among: {}",
            seen.join(", ")
        )))
    }
}

/// Runs a command, returning the last lines of its stderr on failure.
pub(crate) fn run_tool(cmd: &mut std::process::Command) -> Result<(), String> {
    run_tool_output(cmd).map(|_| ())
}

/// [`run_tool`], returning what the tool printed on stdout.
pub(crate) fn run_tool_output(cmd: &mut std::process::Command) -> Result<Vec<u8>, String> {
    match cmd.stdin(std::process::Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(o.stdout),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = tail[tail.len().saturating_sub(2)..].join(" / ");
            Err(format!("{} ({})", o.status, tail))
        }
        Err(e) => Err(format!("cannot run {:?}: {e}", cmd.get_program())),
    }
}
