//! The lock file: each sdist `--with` resolved, per package and Python version, with everything
//! the generated node needs, so that later runs (and `--offline` ones) make the same node ids
//! without asking the package index.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::WithError;

const FORMAT: u32 = 1;

const HEADER: &str = "\
# The PyPI sdists `spy realize --with` compiled into releases: one entry per package and Python
# version, resolved once on the package index and reused after (so the nodes keep their ids;
# `--with NAME==VERSION` for another version resolves it again, `--offline` reads only this file).
# Each sdist is checked against its sha256 before it is built. Written by spy; commit it.
";

/// One resolved sdist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    /// The normalized project name (PEP 503: lowercase, `-` for runs of `-_.`).
    pub name: String,
    /// The Python version it was resolved for (`3.11`): Requires-Python differs by release.
    pub python: String,
    pub version: String,
    /// The sdist's file name on the index.
    pub file: String,
    pub sha256: String,
    /// The licence its metadata states (an SPDX expression), `LicenseRef-unstated` if none.
    pub license: String,
    /// Whether it has C++ sources (the node then links libc++).
    pub cxx: bool,
    /// Build requirements of its pyproject.toml the graph has nodes for (`cython`: the node
    /// `cython-py3.11` joins the build).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graph_tools: Vec<String>,
    /// The other build requirements, and theirs, as pure-Python wheels (sources of the build).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wheels: Vec<Wheel>,
}

/// A pure-Python wheel a package's build needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wheel {
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    format: u32,
    #[serde(default)]
    sdist: Vec<Locked>,
}

/// The lock file's entries, and where it lives.
#[derive(Debug)]
pub struct Lock {
    pub path: PathBuf,
    entries: Vec<Locked>,
}

impl Lock {
    /// Reads `path`; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Lock, WithError> {
        let bad = |message: String| WithError::Lock {
            path: path.into(),
            message,
        };
        let text = match fs_err::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Lock {
                    path: path.into(),
                    entries: Vec::new(),
                })
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        let file: LockFile = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
        if file.format != FORMAT {
            return Err(bad(format!(
                "format {} is not supported (this spy reads format {FORMAT})",
                file.format
            )));
        }
        for e in &file.sdist {
            e.check()
                .map_err(|m| bad(format!("entry `{}` for Python {}: {m}", e.name, e.python)))?;
        }
        Ok(Lock {
            path: path.into(),
            entries: file.sdist,
        })
    }

    /// The entry for a package and Python version; with a version asked for, only that version.
    pub fn find(&self, name: &str, python: &str, version: Option<&str>) -> Option<&Locked> {
        self.entries
            .iter()
            .find(|e| e.name == name && e.python == python && version.is_none_or(|v| v == e.version))
    }

    /// Adds an entry, replacing the one for the same package and Python version.
    pub fn put(&mut self, entry: Locked) {
        self.entries.retain(|e| !(e.name == entry.name && e.python == entry.python));
        self.entries.push(entry);
        self.entries.sort_by(|a, b| (&a.name, &a.python).cmp(&(&b.name, &b.python)));
    }

    /// Writes the lock whole or not at all (a file beside it renamed over it).
    pub fn save(&self) -> Result<(), WithError> {
        let bad = |message: String| WithError::Lock {
            path: self.path.clone(),
            message,
        };
        let body = toml::to_string(&LockFile {
            format: FORMAT,
            sdist: self.entries.clone(),
        })
        .map_err(|e| bad(e.to_string()))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| bad(e.to_string()))?;
        use std::io::Write;
        tmp.write_all(HEADER.as_bytes())
            .and_then(|_| tmp.write_all(body.as_bytes()))
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| bad(e.to_string()))?;
        tmp.persist(&self.path).map_err(|e| bad(e.error.to_string()))?;
        Ok(())
    }
}

impl Locked {
    /// An entry is data a user (or an attacker) can edit: each field must be what spy would have
    /// written, since it becomes a node's name, source and licence.
    fn check(&self) -> Result<(), String> {
        if !crate::request::is_normalized(&self.name) {
            return Err(format!("`{}` is not a normalized project name", self.name.escape_debug()));
        }
        if !crate::is_python_version(&self.python) {
            return Err(format!("`{}` is not a Python version like 3.11", self.python.escape_debug()));
        }
        if !crate::request::version_ok(&self.version) {
            return Err(format!(
                "`{}` is not a version spy can name a node with",
                self.version.escape_debug()
            ));
        }
        if !crate::sdist::license_ok(&self.license) {
            return Err(format!("`{}` is not a licence expression", self.license.escape_debug()));
        }
        check_source(&self.file, &self.sha256)?;
        for t in &self.graph_tools {
            if !crate::request::is_normalized(t) {
                return Err(format!("build tool `{}` is not a normalized project name", t.escape_debug()));
            }
        }
        for w in &self.wheels {
            if !crate::request::is_normalized(&w.name) || !crate::request::version_ok(&w.version) || !w.file.ends_with(".whl") {
                return Err(format!(
                    "wheel `{}` {} ({}) is not one spy would have recorded",
                    w.name.escape_debug(),
                    w.version.escape_debug(),
                    w.file.escape_debug()
                ));
            }
            check_source(&w.file, &w.sha256)?;
        }
        Ok(())
    }
}

fn check_source(file: &str, sha256: &str) -> Result<(), String> {
    if !spy_recipe::FileName::is_valid(file) {
        return Err(format!("`{}` is not a plain file name", file.escape_debug()));
    }
    if sha256.parse::<spy_hash::Sha256>().is_err() {
        return Err(format!("`{}` is not a sha256", sha256.escape_debug()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, python: &str, version: &str) -> Locked {
        Locked {
            name: name.into(),
            python: python.into(),
            version: version.into(),
            file: format!("{name}-{version}.tar.gz"),
            sha256: "ab".repeat(32),
            license: "MIT".into(),
            cxx: false,
            graph_tools: vec![],
            wheels: vec![],
        }
    }

    #[test]
    fn round_trips_sorted_and_replaces_per_python() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spy.lock");
        let mut lock = Lock::load(&path).unwrap();
        lock.put(entry("ujson", "3.13", "5.10.0"));
        lock.put(entry("psutil", "3.11", "7.2.2"));
        lock.put(entry("ujson", "3.13", "5.11.0"));
        lock.put(entry("ujson", "2.7", "2.0.3"));
        lock.save().unwrap();
        let again = Lock::load(&path).unwrap();
        let names: Vec<_> = again
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.python.as_str(), e.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [("psutil", "3.11", "7.2.2"), ("ujson", "2.7", "2.0.3"), ("ujson", "3.13", "5.11.0")]
        );
        assert!(again.find("ujson", "3.13", None).is_some());
        assert!(again.find("ujson", "3.13", Some("5.10.0")).is_none());
        assert!(again.find("ujson", "3.11", None).is_none());
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("# The PyPI sdists"));
    }

    #[test]
    fn hostile_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spy.lock");
        for (field, value) in [
            ("name", "\"../../etc\""),
            ("name", "\"UJSON\""),
            ("python", "\"3.11\\\"]\""),
            ("version", "\"1.0 ; rm -rf /\""),
            ("file", "\"../x.tar.gz\""),
            ("sha256", "\"zz\""),
            ("license", "\"MIT\\n[nodes.x]\""),
        ] {
            let mut fields = [
                ("name", "\"ujson\""),
                ("python", "\"3.13\""),
                ("version", "\"5.11.0\""),
                ("file", "\"ujson-5.11.0.tar.gz\""),
                ("sha256", "\"abababababababababababababababababababababababababababababababab\""),
                ("license", "\"BSD-3-Clause\""),
                ("cxx", "true"),
            ];
            for f in fields.iter_mut() {
                if f.0 == field {
                    f.1 = value;
                }
            }
            let body: String = fields.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
            std::fs::write(&path, format!("format = 1\n[[sdist]]\n{body}")).unwrap();
            let err = Lock::load(&path).unwrap_err().to_string();
            assert!(err.contains("spy.lock"), "{field}: {err}");
        }
        std::fs::write(&path, "format = 2\n").unwrap();
        assert!(Lock::load(&path).unwrap_err().to_string().contains("format 2"));
    }
}
