use std::process::Command;

use spy_plan::Source;
use spy_store::Store;

use super::{pick_matching, run_tool, run_tool_output, sha_of, Origin};
use crate::{Attempt, FetchError};

/// PyPI sdists through pip: `pip download --no-binary :all: --no-deps NAME==VERSION`.
pub struct PypiOrigin;

impl Origin for PypiOrigin {
    fn name(&self) -> String {
        "pip download".into()
    }
    fn applies(&self, src: &Source) -> bool {
        sha_of(src).is_some() && src.pypi.is_some()
    }
    fn fetch(&self, store: &Store, src: &Source, log: &dyn Fn(&str)) -> Result<Attempt, FetchError> {
        let Some(req) = &src.pypi else {
            return Ok(Attempt::Missed("no PyPI requirement named".into()));
        };
        let dir = store.staging_dir("pip-")?;
        let python = pip_python();
        // A pinned wheel (a tool shipped as one, like ziglang): pip picks the file for this host;
        // the pinned hash decides whether it is the one.
        if src.file.ends_with(".whl") {
            log(&format!("pip download --only-binary :all: --no-deps {req}"));
            let mut cmd = pip_download(&python, "--only-binary", dir.path(), req);
            return match run_tool(&mut cmd) {
                Ok(()) => pick_matching(store, dir.path(), src, &format!("pip download {req}")),
                Err(e) => Ok(Attempt::Missed(format!(
                    "`pip download --only-binary :all: --no-deps {req}` failed: {e}"
                ))),
            };
        }
        log(&format!("pip download --no-binary :all: --no-deps {req}"));
        // Without build isolation pip prepares the sdist's metadata with the host's setuptools,
        // which is fast; packages with another build backend need the isolated (slower) way.
        let mut failures = Vec::new();
        for isolation in [false, true] {
            let mut cmd = pip_download(&python, "--no-binary", dir.path(), req);
            if !isolation {
                cmd.arg("--no-build-isolation");
            }
            match run_tool(&mut cmd) {
                Ok(()) => return pick_matching(store, dir.path(), src, &format!("pip download {req}")),
                Err(e) => failures.push(e),
            }
        }
        // `pip download` always prepares an sdist's metadata, which runs its setup.py with the
        // host's Python 3: a Python-2-only sdist (gevent 0.13.8) can never get through that. pip's
        // own finder and session still locate and fetch it (same index, certificates, proxies).
        log(&format!(
            "pip download of {req} failed; fetching the sdist through pip's finder without building its metadata"
        ));
        match run_finder(&python, dir.path(), req, None) {
            Ok(_) => return pick_matching(store, dir.path(), src, &format!("pip's finder for {req}")),
            Err(e) => failures.push(format!("pip's finder: {e}")),
        }
        Ok(Attempt::Missed(format!(
            "`pip download --no-binary :all: --no-deps {req}` failed: {}",
            failures.join("; then: ")
        )))
    }
}

/// `python -m pip download <which> :all: --no-deps -q -d DIR REQ`: `which` is `--no-binary`
/// (sdists) or `--only-binary` (wheels).
fn pip_download(python: &str, which: &str, dir: &std::path::Path, req: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "download",
        which,
        ":all:",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        "-d",
    ])
    .arg(dir)
    .arg(req);
    cmd
}

/// Downloads pure-Python wheels (tagged `none-any`) of `requirements` and of everything they
/// require, as pip resolves them for `python_version`, into `dir`; returns the wheel files there.
/// These are a package's build requirements (setuptools-scm...), which a build without network
/// gets as sources.
pub fn download_pure_wheels(
    dir: &std::path::Path,
    requirements: &[String],
    python_version: &str,
) -> Result<Vec<std::path::PathBuf>, String> {
    let mut cmd = Command::new(pip_python());
    cmd.args([
        "-m",
        "pip",
        "download",
        "--only-binary",
        ":all:",
        "--platform",
        "any",
        "--abi",
        "none",
    ])
    .args(["--python-version", python_version, "--disable-pip-version-check", "-q", "-d"])
    .arg(dir)
    .arg("--")
    .args(requirements);
    run_tool(&mut cmd).map_err(|e| format!("`pip download` of pure-Python wheels failed: {e}"))?;
    let mut wheels: Vec<std::path::PathBuf> = fs_err::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "whl"))
        .collect();
    wheels.sort();
    Ok(wheels)
}

/// The Python whose pip fetches from PyPI: `$SPY_PIP_PYTHON`, else `python3`.
fn pip_python() -> String {
    std::env::var("SPY_PIP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// What pip's finder chose for a requirement: the sdist's file name (a plain name, checked) and
/// its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSdist {
    pub file: String,
    pub version: String,
}

/// Resolves a requirement (`NAME`, `NAME==VERSION`) to the newest sdist on the package index pip
/// is configured for whose Requires-Python admits `python_version` (`3.11`), and downloads it
/// into `dir`. Nothing is built: no metadata is prepared.
pub fn find_sdist(dir: &std::path::Path, req: &str, python_version: &str) -> Result<FoundSdist, String> {
    run_finder(&pip_python(), dir, req, Some(python_version))
}

fn run_finder(python: &str, dir: &std::path::Path, req: &str, python_version: Option<&str>) -> Result<FoundSdist, String> {
    let mut cmd = Command::new(python);
    cmd.args(["-c", FIND_SDIST]).arg(dir).arg(req).arg(python_version.unwrap_or(""));
    let stdout = run_tool_output(&mut cmd).map_err(|e| format!("pip's finder failed: {e}"))?;
    let text = String::from_utf8_lossy(&stdout);
    let line = text.lines().last().unwrap_or("");
    let (file, version) = line
        .split_once('\t')
        .ok_or_else(|| format!("pip's finder printed no result for {req}"))?;
    // The name comes from the index: it is only ever a plain file name in `dir`.
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file.len() <= 255
        && file.bytes().all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(&c));
    if !plain || !dir.join(file).is_file() {
        return Err(format!("pip's finder named an unusable sdist file `{}`", file.escape_debug()));
    }
    Ok(FoundSdist {
        file: file.into(),
        version: version.into(),
    })
}

/// Finds the best sdist for a requirement with pip's own finder (for a target Python version when
/// one is given) and saves it, without preparing its metadata; prints `FILE<TAB>VERSION`. Uses pip
/// internals that have been stable since pip 20; a failure is reported, never hidden.
const FIND_SDIST: &str = r#"
import os, sys
from pip._internal.commands import create_command
from pip._internal.req.constructors import install_req_from_line
dest, req, pyver = sys.argv[1], sys.argv[2], sys.argv[3]
args = ["--no-binary", ":all:", "--no-deps", "-d", dest, req]
if pyver:
    args[:0] = ["--python-version", pyver]
cmd = create_command("download")
opts, _ = cmd.parse_args(args)
session = cmd._build_session(opts)
kw = {}
if pyver:
    from pip._internal.cli.cmdoptions import make_target_python
    kw["target_python"] = make_target_python(opts)
finder = cmd._build_package_finder(options=opts, session=session, **kw)
ireq = install_req_from_line(req)
best = finder.find_best_candidate(ireq.name, ireq.specifier).best_candidate
if best is None or best.link.is_wheel:
    sys.exit("no sdist of %s%s on the package index" % (req, " for Python " + pyver if pyver else ""))
name = best.link.filename
if os.sep in name or name.startswith(".") or "\t" in name or "\n" in name:
    sys.exit("the index names an unusable file %r" % name)
with session.get(best.link.url_without_fragment, stream=True) as r:
    r.raise_for_status()
    with open(os.path.join(dest, name), "xb") as f:
        for chunk in r.iter_content(1 << 16):
            f.write(chunk)
print("%s\t%s" % (name, best.version))
"#;
