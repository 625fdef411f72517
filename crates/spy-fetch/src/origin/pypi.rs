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
        log(&format!("pip download --no-binary :all: --no-deps {req}"));
        // Without build isolation pip prepares the sdist's metadata with the host's setuptools,
        // which is fast; packages with another build backend need the isolated (slower) way.
        let mut failures = Vec::new();
        for isolation in [false, true] {
            let mut cmd = Command::new(&python);
            cmd.args([
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--disable-pip-version-check",
                "-q",
                "-d",
            ])
            .arg(dir.path())
            .arg(req);
            if !isolation {
                cmd.arg("--no-build-isolation");
            }
            match run_tool(&mut cmd) {
                Ok(()) => return pick_matching(store, dir.path(), src, &format!("pip download {req}")),
                Err(e) => failures.push(e),
            }
        }
        Ok(Attempt::Missed(format!(
            "`pip download --no-binary :all: --no-deps {req}` failed: {}",
            failures.join("; then: ")
        )))
    }
}
