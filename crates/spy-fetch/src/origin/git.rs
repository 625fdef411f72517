use std::path::PathBuf;
use std::process::Command;

use spy_plan::{Source, SourcePin};
use spy_store::Store;

use super::{run_tool, Origin};
use crate::{Attempt, FetchError};

/// git repositories pinned by full commit: the commit is fetched (or the repository cloned), checked
/// to exist as a commit, and archived with `git archive` into the cache under its id. Git's own
/// hashing is what verifies the content.
///
/// With `mirror`, the repository is looked for as a clone inside that directory, named as the last
/// segment of the URL (`stackless` or `stackless.git`): how a git source is supplied offline
/// (`--mirror DIR`).
pub struct GitOrigin {
    pub offline: bool,
    pub mirror: Option<PathBuf>,
}

impl Origin for GitOrigin {
    fn name(&self) -> String {
        match &self.mirror {
            Some(m) => format!("git clone in mirror {}", m.display()),
            None => "git".into(),
        }
    }
    fn applies(&self, src: &Source) -> bool {
        match &src.pin {
            SourcePin::Git { url, .. } => self.mirror.is_some() || !self.offline || is_local(url),
            _ => false,
        }
    }
    fn fetch(&self, store: &Store, src: &Source, log: &dyn Fn(&str)) -> Result<Attempt, FetchError> {
        let SourcePin::Git { url, commit } = &src.pin else {
            return Ok(Attempt::Missed("not a git source".into()));
        };
        let url = match &self.mirror {
            None => url.clone(),
            Some(m) => {
                let name = repository_name(url);
                let found = [m.join(name), m.join(format!("{name}.git"))].into_iter().find(|p| p.is_dir());
                match found {
                    Some(p) => p.display().to_string(),
                    None => return Ok(Attempt::Missed(format!("no clone named {name} or {name}.git there"))),
                }
            }
        };
        let url = &url;
        let dir = store.staging_dir("git-")?;
        let repo = dir.path().join("repo");
        log(&format!("git fetch {url} {commit}"));
        let git = |args: &[&str]| {
            let mut c = Command::new("git");
            c.arg("-C").arg(&repo).args(args).env("GIT_TERMINAL_PROMPT", "0");
            c
        };
        if let Err(e) = run_tool(Command::new("git").args(["init", "-q", "--bare"]).arg(&repo)) {
            return Ok(Attempt::Missed(format!("git init failed: {e}")));
        }
        // Fetching one commit is cheap where the server allows it; otherwise fall back to everything.
        if run_tool(&mut git(&["fetch", "-q", "--depth", "1", url, commit])).is_err() {
            if let Err(e) = run_tool(&mut git(&["fetch", "-q", url, "+refs/*:refs/remotes/origin/*"])) {
                return Ok(Attempt::Missed(format!("cannot fetch {url}: {e}")));
            }
        }
        let spec = format!("{commit}^{{commit}}");
        match git(&["rev-parse", "--verify", "-q", &spec]).output() {
            Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == commit => {}
            _ => return Ok(Attempt::Missed(format!("commit {commit} is not in {url}"))),
        }
        let mut tmp = store.staging_file()?;
        let out = git(&["archive", "--format=tar", commit])
            .stdout(tmp.as_file_mut().try_clone().map_err(|e| spy_store::StoreError::Io {
                path: tmp.path().into(),
                message: e.to_string(),
            })?)
            .status();
        match out {
            Ok(s) if s.success() => {}
            other => return Ok(Attempt::Missed(format!("git archive failed: {other:?}"))),
        }
        Ok(Attempt::Stored(store.add_git_source(tmp, commit)?))
    }
}

/// The name a clone of `url` goes by in a mirror directory: its last path segment without `.git`.
pub(crate) fn repository_name(url: &str) -> &str {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".git")
}

fn is_local(url: &str) -> bool {
    url.starts_with('/') || url.starts_with("file://")
}
