//! Real sources through the registry clients this machine has: a Debian source package through
//! `apt-get source` (picked by the pinned hash among the versions apt knows) and a PyPI sdist through
//! `pip download`. These need the deb-src entries and network access to the registries that
//! `scripts/setup-host.sh` sets up. (The whole real graph is realized by tests/libraries.rs.)

mod common;

use common::*;

#[test]
fn fetches_a_pypi_sdist_through_pip_and_refuses_a_wrong_pin() {
    let f = Fixture::new();
    let sha = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926";
    f.write(
        "graph/six.toml",
        &format!(
            "name = \"six\"\nversion = \"1.16.0\"\n[[sources]]\nfile = \"six-1.16.0.tar.gz\"\nsha256 = \"{sha}\"\npypi = \"six==1.16.0\"\n"
        ),
    );
    let (_, err) = f.ok(&["fetch", "six"]);
    assert!(err.contains("pip download"), "{err}");
    assert!(f.store().join(".spy/sources").join(sha).is_file());
    let wrong = "2".repeat(64);
    f.write("graph/six.toml", &format!("name = \"six\"\nversion = \"1.16.0\"\n[[sources]]\nfile = \"six-1.16.0.tar.gz\"\nsha256 = \"{wrong}\"\npypi = \"six==1.16.0\"\n"));
    let err = f.fails(&["fetch", "six"]);
    assert!(err.contains(&format!("no file with sha256 {wrong}")) && err.contains(sha), "{err}");
    assert!(!f.store().join(".spy/sources").join(&wrong).exists());
}

#[test]
fn fetches_a_debian_source_by_its_pinned_hash_and_refuses_a_wrong_pin() {
    let f = Fixture::new();
    // bzip2's Debian orig is byte-identical to upstream; no URL here, so only apt can supply it.
    let sha = "ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269";
    f.write(
        "graph/bz.toml",
        &format!(
            "name = \"bz\"\nversion = \"1.0.8\"\n[[sources]]\nfile = \"bzip2-1.0.8.tar.gz\"\nsha256 = \"{sha}\"\ndebian = \"bzip2\"\n"
        ),
    );
    let (_, err) = f.ok(&["fetch", "bz"]);
    assert!(err.contains("apt-get source --download-only bzip2="), "{err}");
    assert!(f.store().join(".spy/sources").join(sha).is_file());
    let wrong = "3".repeat(64);
    f.write(
        "graph/bz.toml",
        &format!(
            "name = \"bz\"\nversion = \"1.0.8\"\n[[sources]]\nfile = \"bzip2-1.0.8.tar.gz\"\nsha256 = \"{wrong}\"\ndebian = \"bzip2\"\n"
        ),
    );
    let err = f.fails(&["fetch", "bz"]);
    assert!(
        err.contains(&format!(
            "no version of Debian source package `bzip2` known to apt ships a file with sha256 {wrong}"
        )),
        "{err}"
    );
    assert!(err.contains("add-source"), "{err}");
}

#[test]
fn fetches_python_2_7_from_the_bullseye_sources() {
    // scripts/setup-host.sh adds Debian 11's deb-src entry: the last release with Python 2.7.18.
    let f = Fixture::new();
    let sha = "da3080e3b488f648a3d7a4560ddee895284c3380b11d6de75edb986526b9a814";
    f.write("graph/py27.toml", &format!("name = \"py27\"\nversion = \"2.7.18\"\n[[sources]]\nfile = \"Python-2.7.18.tgz\"\nsha256 = \"{sha}\"\ndebian = \"python2.7\"\n"));
    let (_, err) = f.ok(&["fetch", "py27"]);
    assert!(err.contains("apt-get source --download-only python2.7=2.7.18"), "{err}");
    assert!(f.store().join(".spy/sources").join(sha).is_file());
}

#[test]
fn takes_the_pinned_file_when_apt_fails_on_another_file_of_the_package() {
    // sid's zlib 1:1.3.dfsg+really1.3.2-4: its orig tarball is in the archive, its .dsc was not
    // (apt-get source exits non-zero). scripts/setup-host.sh adds sid's deb-src entry.
    let f = Fixture::new();
    let sha = "7b6903eb019983987b7112eccf90f1703f1c6c0e0cede36564bf611d19ca579d";
    f.write(
        "graph/z.toml",
        &format!("name = \"z\"\nversion = \"1.3.2\"\n[[sources]]\nfile = \"zlib_1.3.dfsg+really1.3.2.orig.tar.gz\"\nsha256 = \"{sha}\"\ndebian = \"zlib\"\n"),
    );
    let (_, err) = f.ok(&["fetch", "z"]);
    assert!(err.contains("apt-get source --download-only zlib="), "{err}");
    assert!(f.store().join(".spy/sources").join(sha).is_file());
}
