//! What an sdist is, read from the archive as it streams by (nothing is unpacked): whether spy's
//! package build can compile it (setuptools, no Rust, no Fortran), whether it has C++, and the
//! licence its metadata states.

use std::io::Read;
use std::path::Path;

use crate::WithError;

/// More entries than this is not an sdist spy will look through.
const MAX_ENTRIES: usize = 200_000;
/// The metadata files read whole are small; anything bigger is cut here.
const MAX_METADATA: u64 = 1 << 20;

/// What the build needs to know of an sdist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdistFacts {
    pub license: String,
    pub cxx: bool,
    /// `[build-system] requires` of its pyproject.toml, as written (PEP 508).
    pub build_requires: Vec<String>,
}

#[derive(Default)]
struct Seen {
    entries: usize,
    cargo: bool,
    fortran: Option<String>,
    cxx: bool,
    pkg_info: String,
    pyproject: Option<String>,
    setup_py: Option<String>,
    setup_cfg: bool,
}

impl Seen {
    fn name(&mut self, path: &str) {
        self.entries += 1;
        let base = path.rsplit('/').next().unwrap_or(path);
        let ext = base.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        if base == "Cargo.toml" {
            self.cargo = true;
        }
        if matches!(
            ext.to_ascii_lowercase().as_str(),
            "f" | "f77" | "f90" | "f95" | "f03" | "f08" | "for" | "ftn"
        ) && self.fortran.is_none()
        {
            self.fortran = Some(path.into());
        }
        if matches!(ext, "cc" | "cpp" | "cxx" | "c++") {
            self.cxx = true;
        }
    }

    /// Top-level metadata files (`NAME-VERSION/PKG-INFO`): the ones to read.
    fn wants(path: &str) -> Option<&'static str> {
        let mut parts = path.trim_end_matches('/').split('/');
        let (_top, file, rest) = (parts.next()?, parts.next()?, parts.next());
        if rest.is_some() {
            return None;
        }
        ["PKG-INFO", "pyproject.toml", "setup.py", "setup.cfg"]
            .into_iter()
            .find(|w| *w == file)
    }

    fn keep(&mut self, which: &str, text: String) {
        match which {
            "PKG-INFO" => self.pkg_info = text,
            "pyproject.toml" => self.pyproject = Some(text),
            "setup.py" => self.setup_py = Some(text),
            _ => self.setup_cfg = true,
        }
    }
}

fn read_small(r: impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.take(MAX_METADATA).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Reads the sdist at `path` (`file` is its name, for messages) and refuses what spy's package
/// build cannot compile, with the reason.
pub fn inspect(path: &Path, file: &str) -> Result<SdistFacts, WithError> {
    let archive_err = |message: String| WithError::Archive {
        file: file.into(),
        message,
    };
    let format = spy_unpack::detect(path).map_err(|e| archive_err(e.to_string()))?;
    let mut seen = Seen::default();
    let open = || fs_err::File::open(path).map_err(|e| archive_err(e.to_string()));
    let too_many = || archive_err(format!("more than {MAX_ENTRIES} entries"));
    match format {
        spy_unpack::Format::Zip => {
            let mut z = zip::ZipArchive::new(open()?).map_err(|e| archive_err(e.to_string()))?;
            for i in 0..z.len() {
                if seen.entries >= MAX_ENTRIES {
                    return Err(too_many());
                }
                let entry = z.by_index(i).map_err(|e| archive_err(e.to_string()))?;
                let name = entry.name().to_string();
                seen.name(&name);
                if let Some(which) = Seen::wants(&name) {
                    let text = read_small(entry).map_err(|e| archive_err(format!("{name}: {e}")))?;
                    seen.keep(which, text);
                }
            }
        }
        tar_format => {
            let raw = std::io::BufReader::new(open()?);
            let reader: Box<dyn Read> = match tar_format {
                spy_unpack::Format::TarGz => Box::new(flate2::read::MultiGzDecoder::new(raw)),
                spy_unpack::Format::TarXz => Box::new(xz2::read::XzDecoder::new(raw)),
                spy_unpack::Format::TarBz2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
                _ => Box::new(raw),
            };
            let mut tar = tar::Archive::new(reader);
            for entry in tar.entries().map_err(|e| archive_err(e.to_string()))? {
                if seen.entries >= MAX_ENTRIES {
                    return Err(too_many());
                }
                let entry = entry.map_err(|e| archive_err(e.to_string()))?;
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                seen.name(&name);
                if let (Some(which), tar::EntryType::Regular) = (Seen::wants(&name), entry.header().entry_type()) {
                    let text = read_small(entry).map_err(|e| archive_err(format!("{name}: {e}")))?;
                    seen.keep(which, text);
                }
            }
        }
    }
    judge(seen, file)
}

fn judge(seen: Seen, file: &str) -> Result<SdistFacts, WithError> {
    let refuse = |reason: String| WithError::Refused { file: file.into(), reason };
    let (backend, requires) = match &seen.pyproject {
        Some(text) => build_system(text).map_err(|e| refuse(format!("its pyproject.toml does not parse: {e}")))?,
        None => (None, Vec::new()),
    };
    let rust_requirement = requires.iter().find(|r| {
        matches!(
            crate::request::normalize(requirement_name(r)).as_str(),
            "maturin" | "setuptools-rust"
        )
    });
    let setup_py_rust = seen
        .setup_py
        .as_deref()
        .is_some_and(|t| t.contains("setuptools_rust") || t.contains("RustExtension"));
    if seen.cargo || rust_requirement.is_some() || backend.as_deref() == Some("maturin") || setup_py_rust {
        let how = match (rust_requirement, seen.cargo) {
            (Some(r), _) => format!("its build requires `{r}`"),
            (None, true) => "it has a Cargo.toml".into(),
            _ => "its setup.py builds Rust extensions".into(),
        };
        return Err(refuse(format!(
            "it has a Rust build ({how}); spy's package build compiles C and C++ only (a Rust toolchain for musl, i686 and darwin is not part of the graph)"
        )));
    }
    if let Some(f) = &seen.fortran {
        return Err(refuse(format!(
            "it has Fortran sources ({f}); the graph's toolchain (zig's clang) has no Fortran compiler"
        )));
    }
    if let Some(b) = backend.as_deref().filter(|b| !b.starts_with("setuptools.build_meta")) {
        return Err(refuse(format!(
            "it builds with `{b}`; spy's package build runs setuptools (setup.py); a package without C code installs with the single file's own pip"
        )));
    }
    if seen.setup_py.is_none() && seen.pyproject.is_none() && !seen.setup_cfg {
        return Err(refuse("it has no setup.py, setup.cfg or pyproject.toml at its top".into()));
    }
    if let Some(r) = requires.iter().find(|r| !requirement_ok(r)) {
        return Err(refuse(format!(
            "its build requirement `{}` is not one spy passes on to pip",
            r.escape_debug()
        )));
    }
    Ok(SdistFacts {
        license: license_of(&seen.pkg_info),
        cxx: seen.cxx,
        build_requires: requires,
    })
}

/// `[build-system]`'s backend and requirements (names lowercased).
fn build_system(text: &str) -> Result<(Option<String>, Vec<String>), String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let Some(bs) = doc.get("build-system").and_then(|v| v.as_table()) else {
        return Ok((None, Vec::new()));
    };
    let backend = bs.get("build-backend").and_then(|v| v.as_str()).map(|s| s.trim().to_string());
    let requires = bs
        .get("requires")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|r| r.as_str()).map(|r| r.trim().to_string()).collect())
        .unwrap_or_default();
    Ok((backend, requires))
}

/// A PEP 508 requirement as pip takes it on its command line: printable, not an option.
fn requirement_ok(r: &str) -> bool {
    r.len() <= 200 && r.as_bytes().first().is_some_and(|c| c.is_ascii_alphanumeric()) && r.bytes().all(|c| (b' '..=b'~').contains(&c))
}

/// The project name a PEP 508 requirement starts with.
pub(crate) fn requirement_name(r: &str) -> &str {
    let end = r
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(r.len());
    &r[..end]
}

/// What a licence field may hold to be used as is: an SPDX expression's characters, short.
pub(crate) fn license_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || b".+-() ".contains(&c))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
}

const UNSTATED: &str = "LicenseRef-unstated";

/// The licence as core metadata states it: `License-Expression` (metadata 2.4), else a `License`
/// field that is already an SPDX identifier, else the one `License ::` classifier spy knows the
/// SPDX identifier of.
fn license_of(pkg_info: &str) -> String {
    let headers: Vec<(&str, &str)> = pkg_info
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let field = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
    if let Some(e) = field("License-Expression").filter(|e| license_ok(e)) {
        return e.to_string();
    }
    const SPDX_IDS: &[&str] = &[
        "MIT",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "Apache-2.0",
        "ISC",
        "PSF-2.0",
        "MPL-2.0",
        "Zlib",
        "0BSD",
        "Unlicense",
        "LGPL-2.1-or-later",
        "LGPL-3.0-or-later",
        "GPL-2.0-or-later",
        "GPL-3.0-or-later",
    ];
    if let Some(l) = field("License").and_then(|l| SPDX_IDS.iter().find(|id| id.eq_ignore_ascii_case(l))) {
        return l.to_string();
    }
    const CLASSIFIERS: &[(&str, &str)] = &[
        ("MIT License", "MIT"),
        ("Apache Software License", "Apache-2.0"),
        ("ISC License (ISCL)", "ISC"),
        ("Python Software Foundation License", "PSF-2.0"),
        ("Mozilla Public License 2.0 (MPL 2.0)", "MPL-2.0"),
        ("zlib/libpng License", "Zlib"),
    ];
    let classified: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Classifier"))
        .filter_map(|(_, v)| v.strip_prefix("License :: OSI Approved :: "))
        .collect();
    if let [one] = classified.as_slice() {
        if let Some((_, id)) = CLASSIFIERS.iter().find(|(c, _)| c == one) {
            return id.to_string();
        }
    }
    UNSTATED.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_gz(dir: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
        let path = dir.join("pkg-1.0.tar.gz");
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, text) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, text.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    fn check(files: &[(&str, &str)]) -> Result<SdistFacts, String> {
        let dir = tempfile::tempdir().unwrap();
        inspect(&tar_gz(dir.path(), files), "pkg-1.0.tar.gz").map_err(|e| e.to_string())
    }

    const SETUP: (&str, &str) = ("pkg-1.0/setup.py", "from setuptools import setup\nsetup()\n");

    #[test]
    fn a_c_package_passes_with_its_licence() {
        let facts = check(&[
            (
                "pkg-1.0/PKG-INFO",
                "Metadata-Version: 2.4\nName: pkg\nLicense-Expression: BSD-3-Clause\n\nbody",
            ),
            SETUP,
            ("pkg-1.0/src/a.c", "int x;"),
        ])
        .unwrap();
        assert_eq!(
            facts,
            SdistFacts {
                license: "BSD-3-Clause".into(),
                cxx: false,
                build_requires: vec![]
            }
        );
        let facts = check(&[
            (
                "pkg-1.0/PKG-INFO",
                "Name: pkg\nClassifier: License :: OSI Approved :: MIT License\n",
            ),
            SETUP,
            ("pkg-1.0/src/b.cpp", "int y;"),
        ])
        .unwrap();
        assert_eq!(
            facts,
            SdistFacts {
                license: "MIT".into(),
                cxx: true,
                build_requires: vec![]
            }
        );
        let facts = check(&[("pkg-1.0/PKG-INFO", "Name: pkg\nLicense: see LICENSE.txt <b>\n"), SETUP]).unwrap();
        assert_eq!(facts.license, UNSTATED);
        let facts = check(&[
            ("pkg-1.0/PKG-INFO", "Name: pkg\nLicense-Expression: MIT\n"),
            ("pkg-1.0/pyproject.toml", "[build-system]\nrequires = [\"setuptools>=61\", \"setuptools-scm[simple]>=9.2\"]\nbuild-backend = \"setuptools.build_meta\"\n"),
        ])
        .unwrap();
        assert_eq!(facts.license, "MIT");
        assert_eq!(facts.build_requires, ["setuptools>=61", "setuptools-scm[simple]>=9.2"]);
        assert_eq!(requirement_name(&facts.build_requires[1]), "setuptools-scm");
        let option = check(&[("pkg-1.0/pyproject.toml", "[build-system]\nrequires = [\"--index-url=http://x\"]\n")]).unwrap_err();
        assert!(option.contains("not one spy passes on"), "{option}");
    }

    #[test]
    fn rust_fortran_and_other_backends_are_refused_with_the_reason() {
        let rust = check(&[SETUP, ("pkg-1.0/rust/Cargo.toml", "[package]")]).unwrap_err();
        assert!(rust.contains("Rust build (it has a Cargo.toml)"), "{rust}");
        let maturin = check(&[(
            "pkg-1.0/pyproject.toml",
            "[build-system]\nrequires = [\"maturin>=1\"]\nbuild-backend = \"maturin\"\n",
        )])
        .unwrap_err();
        assert!(maturin.contains("requires `maturin>=1`"), "{maturin}");
        let srust = check(&[("pkg-1.0/setup.py", "from setuptools_rust import RustExtension\n")]).unwrap_err();
        assert!(srust.contains("Rust"), "{srust}");
        let fortran = check(&[SETUP, ("pkg-1.0/lib/solve.f90", "end")]).unwrap_err();
        assert!(fortran.contains("Fortran sources (pkg-1.0/lib/solve.f90)"), "{fortran}");
        let meson = check(&[("pkg-1.0/pyproject.toml", "[build-system]\nbuild-backend = \"mesonpy\"\n")]).unwrap_err();
        assert!(meson.contains("builds with `mesonpy`"), "{meson}");
        let nothing = check(&[("pkg-1.0/README", "hi")]).unwrap_err();
        assert!(nothing.contains("no setup.py"), "{nothing}");
        let broken = check(&[("pkg-1.0/pyproject.toml", "[build-system\n")]).unwrap_err();
        assert!(broken.contains("does not parse"), "{broken}");
    }

    #[test]
    fn zip_sdists_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pkg-1.0.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        z.start_file("pkg-1.0/setup.py", zip::write::SimpleFileOptions::default()).unwrap();
        z.write_all(b"setup()").unwrap();
        z.start_file("pkg-1.0/x.F90", zip::write::SimpleFileOptions::default()).unwrap();
        z.finish().unwrap();
        let e = inspect(&path, "pkg-1.0.zip").unwrap_err().to_string();
        assert!(e.contains("Fortran"), "{e}");
        let junk = dir.path().join("junk.tar.gz");
        std::fs::write(&junk, b"not an archive at all").unwrap();
        let e = inspect(&junk, "junk.tar.gz").unwrap_err().to_string();
        assert!(e.contains("junk.tar.gz"), "{e}");
    }
}
