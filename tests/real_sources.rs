//! Real sources through the registry clients this machine has: the repository's own example graph
//! realized from a cold store (the source comes through `apt-get source`), and a PyPI sdist through
//! `pip download`. These need the deb-src entries and network access to the registries that
//! `.ci/run` sets up.

mod common;

use common::*;

#[test]
fn realizes_the_example_package_of_the_real_graph_from_a_cold_store() {
    let tmp = tempfile::tempdir().unwrap();
    let graph = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("graph");
    let o = std::process::Command::new(SPY)
        .args(["realize", "bzip2-example-x86_64"])
        .current_dir(tmp.path())
        .env("SPY_GRAPH", &graph)
        .env("SPY_STORE", tmp.path().join("store"))
        .env_remove("SPY_MIRRORS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("apt-get source"), "the source should come from Debian here:\n{err}");
    // The built bzip2 round-trips data and is a static executable.
    let bin = tmp.path().join("result/bin/bzip2");
    let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
    std::fs::write(tmp.path().join("data"), &data).unwrap();
    let st = std::process::Command::new(&bin)
        .args(["-k", "-9"])
        .arg(tmp.path().join("data"))
        .status()
        .unwrap();
    assert!(st.success());
    let back = std::process::Command::new(&bin)
        .arg("-dc")
        .arg(tmp.path().join("data.bz2"))
        .output()
        .unwrap();
    assert_eq!(back.stdout, data);
    let elf = std::fs::read(&bin).unwrap();
    let parsed = goblin::elf::Elf::parse(&elf).unwrap();
    assert!(parsed.is_64 && parsed.header.e_machine == goblin::elf::header::EM_X86_64);
    assert_eq!(parsed.interpreter, None, "bzip2 asks for a dynamic loader");
    assert!(parsed.libraries.is_empty(), "bzip2 needs {:?}", parsed.libraries);
}

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
