//! Hostile source archives through the real `spy realize`: the zip link chain of issue 15
//! (`pkg/a -> .`, then `pkg/a/a/.../up` whose text stays inside but which, written through
//! `pkg/a`, lands at `pkg/up` pointing at the project root, then a file and a symlink under
//! `pkg/up/canary/`), the same chain as a tar, and setuid/device entries. Each must fail the
//! realize with a clear error (or, for special bits, land without them) and leave the canary —
//! in the directory the escape would reach — untouched.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::{sha256, Fixture};

/// `.spy/tmp/<entry>/build/.unpack-0/pkg` is seven levels below the project root, where the
/// canary lives.
const UPS: usize = 7;

fn canary(f: &Fixture) -> PathBuf {
    let c = f.root().join("canary");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("file"), "original").unwrap();
    std::fs::write(c.join("victim"), "keep me").unwrap();
    c
}

fn canary_intact(c: &Path) {
    assert_eq!(std::fs::read_to_string(c.join("file")).unwrap(), "original");
    assert_eq!(std::fs::read_to_string(c.join("victim")).unwrap(), "keep me");
    assert!(!std::fs::symlink_metadata(c.join("victim")).unwrap().is_symlink());
    assert_eq!(std::fs::read_dir(c).unwrap().count(), 2);
}

/// The chain's link, made by hand where the unpacker would have made it, reaches the canary: the
/// attack is aimed right.
fn chain_is_aimed_at(f: &Fixture, canary: &Path) {
    let probe = f.store().join(".spy/tmp/probe-entry/build/.unpack-0/pkg");
    std::fs::create_dir_all(&probe).unwrap();
    std::os::unix::fs::symlink([".."; UPS].join("/"), probe.join("up")).unwrap();
    assert_eq!(
        std::fs::canonicalize(probe.join("up/canary/file")).unwrap(),
        std::fs::canonicalize(canary.join("file")).unwrap()
    );
    std::fs::remove_dir_all(f.store().join(".spy/tmp/probe-entry")).unwrap();
}

/// `pkg/a` then `UPS - 1` more `a`s: the link's directory is `UPS` levels deep as text.
fn chain_entry() -> String {
    format!("pkg/{}up", "a/".repeat(UPS - 1))
}

fn recipe(f: &Fixture, file: &str) {
    let sha = sha256(&f.mirror().join(file));
    f.write(
        "graph/evil.toml",
        &format!("name = \"evil\"\nversion = \"1\"\n[[sources]]\nfile = \"{file}\"\nsha256 = \"{sha}\"\n[phases]\ninstall = \"ls -la > $out/listing\"\n"),
    );
}

#[test]
fn the_zip_link_chain_is_refused_by_realize() {
    let f = Fixture::new();
    let canary = canary(&f);
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        z.add_directory("pkg/", opts).unwrap();
        z.add_symlink("pkg/a", ".", opts).unwrap();
        z.add_symlink(chain_entry(), [".."; UPS].join("/"), opts).unwrap();
        z.start_file("pkg/up/canary/file", opts).unwrap();
        z.write_all(b"pwned").unwrap();
        z.add_symlink("pkg/up/canary/victim", "x", opts).unwrap();
        z.finish().unwrap();
    }
    std::fs::write(f.mirror().join("evil.zip"), buf.into_inner()).unwrap();
    recipe(&f, "evil.zip");
    chain_is_aimed_at(&f, &canary);
    let err = f.fails(&["realize", "evil"]);
    assert!(err.contains("evil.zip"), "names the archive: {err}");
    assert!(
        err.contains(&format!("entry `{}` escapes the destination", chain_entry())) && err.contains("`pkg/a` is a symlink"),
        "{err}"
    );
    canary_intact(&canary);
    assert!(
        f.entries().iter().all(|e| !e.contains("-evil-")),
        "nothing registered: {:?}",
        f.entries()
    );
}

#[test]
fn the_tar_link_chain_is_refused_by_realize() {
    let f = Fixture::new();
    let canary = canary(&f);
    let ups = [".."; UPS].join("/");
    let entry = chain_entry();
    common::raw_tar_gz(
        &f.mirror().join("evil.tar.gz"),
        &[
            ("pkg/a", Some("."), 0o777),
            (&entry, Some(&ups), 0o777),
            ("pkg/up/canary/file", None, 0o644),
        ],
        b"pwned",
    );
    recipe(&f, "evil.tar.gz");
    chain_is_aimed_at(&f, &canary);
    let err = f.fails(&["realize", "evil"]);
    assert!(err.contains("evil.tar.gz") && err.contains("`pkg/a` is a symlink"), "{err}");
    canary_intact(&canary);
}

#[test]
fn setuid_bits_never_reach_the_build() {
    let f = Fixture::new();
    common::raw_tar_gz(
        &f.mirror().join("suid.tar.gz"),
        &[("pkg/run", None, 0o4755), ("pkg/grp", None, 0o2644)],
        b"pwned",
    );
    let sha = sha256(&f.mirror().join("suid.tar.gz"));
    f.write(
        "graph/suid.toml",
        &format!(
            "name = \"suid\"\nversion = \"1\"\n[[sources]]\nfile = \"suid.tar.gz\"\nsha256 = \"{sha}\"\n[phases]\ninstall = \"stat -c '%a %n' run grp > $out/modes\"\n"
        ),
    );
    f.write("graph/stage0.toml", &common::STAGE0.replace("\"sort\"]", "\"sort\", \"stat\"]"));
    f.ok(&["realize", "suid"]);
    assert_eq!(
        std::fs::read_to_string(f.root().join("result/modes")).unwrap(),
        "755 run\n644 grp\n"
    );
}
