use std::process::Command;

use spy_plan::Source;
use spy_store::Store;

use super::{pick_matching, run_tool, sha_of, Origin};
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
        let python = std::env::var("SPY_PIP_PYTHON").unwrap_or_else(|_| "python3".into());
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
        let mut cmd = Command::new(&python);
        cmd.args(["-c", FETCH_WITHOUT_METADATA]).arg(dir.path()).arg(req);
        log(&format!(
            "pip download of {req} failed; fetching the sdist through pip's finder without building its metadata"
        ));
        match run_tool(&mut cmd) {
            Ok(()) => return pick_matching(store, dir.path(), src, &format!("pip's finder for {req}")),
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

/// Finds the best sdist for a requirement with pip's own finder and saves it, without preparing its
/// metadata. Uses pip internals that have been stable since pip 20; a failure is reported, never
/// hidden.
const FETCH_WITHOUT_METADATA: &str = r#"
import os, sys
from pip._internal.commands import create_command
from pip._internal.req.constructors import install_req_from_line
dest, req = sys.argv[1], sys.argv[2]
cmd = create_command("download")
opts, _ = cmd.parse_args(["--no-binary", ":all:", "--no-deps", "-d", dest, req])
session = cmd._build_session(opts)
finder = cmd._build_package_finder(options=opts, session=session)
ireq = install_req_from_line(req)
best = finder.find_best_candidate(ireq.name, ireq.specifier).best_candidate
if best is None or best.link.is_wheel:
    sys.exit("no sdist of %s" % req)
with session.get(best.link.url_without_fragment, stream=True) as r:
    r.raise_for_status()
    with open(os.path.join(dest, best.link.filename), "wb") as f:
        for chunk in r.iter_content(1 << 16):
            f.write(chunk)
"#;
