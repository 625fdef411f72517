use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use spy_plan::{Source, SourcePin};
use spy_store::Store;

use super::{run_tool, Origin};
use crate::{Attempt, FetchError};

/// git repositories pinned by full commit: the commit's objects are brought into a fresh bare
/// repository, where git hashes every object it receives, and archived with `git archive` into
/// the cache (`Store::git_source_path`). Git's own hashing is what verifies the content.
///
/// With `mirror`, the repository is looked for as a clone inside that directory, named as the last
/// segment of the URL (`stackless` or `stackless.git`): how a git source is supplied offline
/// (`--mirror DIR`). A mirror may be partial: only the objects the archive needs are copied out
/// of it (the commit, its trees, and every blob but those of the pin's `exclude` paths), so a
/// clone lacking an excluded blob serves, where `git fetch` from it would fail.
///
/// A pin's `exclude` paths must exist in the commit's tree, and are left out of the archive with
/// git's `:(exclude)` pathspec; the archive is the same bytes whichever way the objects came.
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
        let (SourcePin::Git { url, commit, exclude }, Some(key)) = (&src.pin, src.pin.git_cache_key()) else {
            return Ok(Attempt::Missed("not a git source".into()));
        };
        let dir = store.staging_dir("git-")?;
        let repo = dir.path().join("repo");
        let git = |args: &[&str]| git_in(&repo, args);
        if let Err(e) = run_tool(Command::new("git").args(["init", "-q", "--bare"]).arg(&repo)) {
            return Ok(Attempt::Missed(format!("git init failed: {e}")));
        }
        let from = match &self.mirror {
            None => {
                log(&format!("git fetch {url} {commit}"));
                // Fetching one commit is cheap where the server allows it; otherwise everything.
                if run_tool(&mut git(&["fetch", "-q", "--depth", "1", url, commit])).is_err() {
                    if let Err(e) = run_tool(&mut git(&["fetch", "-q", url, "+refs/*:refs/remotes/origin/*"])) {
                        return Ok(Attempt::Missed(format!("cannot fetch {url}: {e}")));
                    }
                }
                url.clone()
            }
            Some(m) => {
                let name = repository_name(url);
                // The name comes from a recipe: one plain component, or nothing is looked up.
                if name.is_empty() || name == "." || name == ".." {
                    return Ok(Attempt::Missed(format!("`{url}` names no repository to look for")));
                }
                let Some(clone) = [m.join(name), m.join(format!("{name}.git"))].into_iter().find(|p| p.is_dir()) else {
                    return Ok(Attempt::Missed(format!("no clone named {name} or {name}.git there")));
                };
                log(&format!("git: copying {commit} out of {}", clone.display()));
                if let Err(why) = copy_commit_objects(&clone, &repo, commit, exclude) {
                    return Ok(Attempt::Missed(why));
                }
                clone.display().to_string()
            }
        };
        let spec = format!("{commit}^{{commit}}");
        match git(&["rev-parse", "--verify", "-q", &spec]).output() {
            Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == commit => {}
            _ => return Ok(Attempt::Missed(format!("commit {commit} is not in {from}"))),
        }
        for path in exclude {
            match git(&["ls-tree", "--name-only", commit, "--", path]).output() {
                Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim_end() == path => {}
                _ => {
                    return Err(FetchError::BadExclude {
                        file: src.file.clone(),
                        commit: commit.clone(),
                        path: path.clone(),
                    })
                }
            }
        }
        let mut tmp = store.staging_file()?;
        let out = tmp.as_file_mut().try_clone().map_err(|e| spy_store::StoreError::Io {
            path: tmp.path().into(),
            message: e.to_string(),
        })?;
        let mut args = vec!["archive".to_string(), "--format=tar".into(), commit.clone()];
        if !exclude.is_empty() {
            args.extend(["--".into(), ".".into()]);
            args.extend(exclude.iter().map(|p| format!(":(exclude,literal){p}")));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match git(&args).stdout(out).stderr(Stdio::piped()).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Ok(Attempt::Missed(format!(
                    "git archive of {commit} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )))
            }
            Err(e) => return Ok(Attempt::Missed(format!("cannot run git archive: {e}"))),
        }
        Ok(Attempt::Stored(store.add_git_source(tmp, &key)?))
    }
}

/// Copies the objects `git archive` needs for `commit` (minus the blobs of `exclude`) from the
/// clone `from` into the bare repository `to`: `pack-objects` in the clone only reads it,
/// `index-pack` in `to` hashes every object it stores, so nothing unverified is archived.
fn copy_commit_objects(from: &Path, to: &Path, commit: &str, exclude: &[String]) -> Result<(), String> {
    let in_clone = |args: &[&str]| git_in(from, args);
    let tree = in_clone(&["rev-parse", "--verify", "-q", &format!("{commit}^{{tree}}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .ok_or_else(|| format!("commit {commit} is not in {}", from.display()))?;
    // `ls-tree -r -t -z`: every tree and blob below the root, as `mode type id\tpath`.
    let listing = in_clone(&["ls-tree", "-r", "-t", "-z", "--full-tree", commit])
        .output()
        .map_err(|e| format!("cannot run git ls-tree: {e}"))?;
    if !listing.status.success() {
        return Err(format!(
            "git ls-tree {commit} failed in {}: {}",
            from.display(),
            String::from_utf8_lossy(&listing.stderr).trim()
        ));
    }
    let mut ids = vec![commit.to_string(), tree];
    for entry in listing.stdout.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, path)) = entry.split_once('\t') else { continue };
        let mut fields = meta.split(' ');
        let (_mode, kind, id) = (fields.next(), fields.next(), fields.next());
        let Some(id) = id else { continue };
        // Submodule entries ("commit") are not objects of this repository; git archive skips them.
        if kind == Some("commit") {
            continue;
        }
        let excluded = exclude.iter().any(|x| path == x || path.starts_with(&format!("{x}/")));
        if !(excluded && kind == Some("blob")) {
            ids.push(id.to_string());
        }
    }
    let mut pack = in_clone(&["pack-objects", "-q", "--stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git pack-objects: {e}"))?;
    let mut stdin = pack.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        for id in ids {
            if writeln!(stdin, "{id}").is_err() {
                break;
            }
        }
    });
    let packed = pack.stdout.take().expect("piped stdout");
    let index = git_in(to, &["index-pack", "--fsck-objects", "--stdin"])
        .stdin(packed)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run git index-pack: {e}"))?;
    let _ = writer.join();
    let packed = pack.wait_with_output().map_err(|e| format!("git pack-objects: {e}"))?;
    // pack-objects failing on its own (a missing object) is the cause; killed by SIGPIPE, it only
    // saw index-pack stop first.
    use std::os::unix::process::ExitStatusExt;
    let pack_broken_pipe = packed.status.signal() == Some(libc::SIGPIPE);
    if !packed.status.success() && !pack_broken_pipe {
        return Err(format!(
            "the clone {} lacks objects of {commit}: {}",
            from.display(),
            String::from_utf8_lossy(&packed.stderr).trim()
        ));
    }
    if !index.status.success() {
        return Err(format!(
            "objects of {commit} from {} failed git's verification: {}",
            from.display(),
            String::from_utf8_lossy(&index.stderr).trim()
        ));
    }
    if !packed.status.success() {
        return Err(format!("git pack-objects in {} failed: {}", from.display(), packed.status));
    }
    Ok(())
}

/// git run in `dir`, never prompting for credentials.
fn git_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir).args(args).env("GIT_TERMINAL_PROMPT", "0");
    c
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
