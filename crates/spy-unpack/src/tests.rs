//! Hostile archives against the unpacker. Every attack runs in a scratch directory laid out so that
//! the escape it tries WOULD reach a canary directory (`<scratch>/canary`, next to `d1/d2/out`, the
//! destination); each test snapshots the whole scratch directory outside the destination before and
//! after, so any file written, replaced, deleted or re-moded there fails it.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

// The hostile-archive kit the fuzz harnesses use (raw tar entries, the scratch directory with its
// canary and snapshot), shared by path: one writer of hostile tars for every test.
#[path = "../tests/support/hostile.rs"]
mod hostile;
use hostile::{tar_bytes, Raw, Scratch};

/// What every file entry of these archives holds.
const PWNED: &[u8] = b"pwned";

fn raw(s: &str) -> String {
    s.to_string()
}

fn write_tar_gz(path: &Path, entries: &[Raw]) {
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    gz.write_all(&tar_bytes(entries)).unwrap();
    gz.finish().unwrap();
}

/// Unpacks `entries` as a tar.gz into a fresh scratch destination with `opts`; the scratch
/// directory outside the destination must be unchanged whatever happened.
fn attack(entries: &[Raw], opts: &Options) -> (Scratch, Result<Summary, UnpackError>) {
    let s = Scratch::new();
    let p = s.root().join("d1/evil.tar.gz");
    write_tar_gz(&p, entries);
    let before = s.snapshot();
    let r = unpack_with(&p, &s.dest(), opts);
    let mut after = s.snapshot();
    after.remove(&p);
    let mut before = before;
    before.remove(&p);
    assert_eq!(before, after, "{entries:?} changed something outside the destination ({r:?})");
    (s, r)
}

/// `pkg/a -> .` and `pkg/a/a/a/up -> ../../../..`: the link's text stays inside, but written
/// through `pkg/a` it lands at `pkg/up` and points four levels above `pkg`, at the scratch root.
fn chain() -> Vec<Raw> {
    vec![
        Raw::Dir(raw("pkg/"), 0o755),
        Raw::Sym(raw("pkg/a"), raw(".")),
        Raw::Sym(raw("pkg/a/a/a/up"), raw("../../../..")),
    ]
}

#[test]
fn hostile_tars_are_refused_and_touch_nothing_outside() {
    let s = Scratch::new();
    let abs_canary = s.canary().join("file").display().to_string();
    let cases: Vec<(&str, Vec<Raw>)> = vec![
        ("dotdot", vec![Raw::File(raw("../../../canary/file"), 0o644, PWNED.to_vec())]),
        (
            "inner dotdot",
            vec![Raw::File(raw("pkg/../../../../canary/file"), 0o644, PWNED.to_vec())],
        ),
        ("absolute", vec![Raw::File(abs_canary.clone(), 0o644, PWNED.to_vec())]),
        ("absolute dir", vec![Raw::Dir(s.canary().join("new").display().to_string(), 0o755)]),
        ("symlink absolute", vec![Raw::Sym(raw("pkg/l"), abs_canary.clone())]),
        ("symlink up", vec![Raw::Sym(raw("pkg/l"), raw("../../../../canary/file"))]),
        ("symlink name then up", vec![Raw::Sym(raw("pkg/deep/l"), raw("x/../../.."))]),
        (
            "chain then file",
            [chain(), vec![Raw::File(raw("pkg/up/canary/file"), 0o644, PWNED.to_vec())]].concat(),
        ),
        (
            "chain then symlink",
            [chain(), vec![Raw::Sym(raw("pkg/up/canary/victim"), raw("x"))]].concat(),
        ),
        (
            "chain then dir",
            [chain(), vec![Raw::Dir(raw("pkg/up/canary/new/"), 0o755)]].concat(),
        ),
        (
            "through an inside link",
            vec![
                Raw::Dir(raw("pkg/sub/"), 0o755),
                Raw::Sym(raw("pkg/l"), raw("sub")),
                Raw::File(raw("pkg/l/x"), 0o644, PWNED.to_vec()),
            ],
        ),
        ("hard link absolute", vec![Raw::Hard(raw("pkg/h"), abs_canary.clone())]),
        ("hard link up", vec![Raw::Hard(raw("pkg/h"), raw("../../../canary/file"))]),
        (
            "hard link through a link",
            vec![
                Raw::File(raw("pkg/f"), 0o644, PWNED.to_vec()),
                Raw::Sym(raw("pkg/s"), raw(".")),
                Raw::Hard(raw("pkg/h"), raw("pkg/s/f")),
            ],
        ),
        (
            "hard link to a symlink",
            vec![
                Raw::Sym(raw("pkg/a/b/c/l"), raw("../../../x")),
                Raw::Hard(raw("top"), raw("pkg/a/b/c/l")),
            ],
        ),
        ("hard link to nothing", vec![Raw::Hard(raw("pkg/h"), raw("pkg/missing"))]),
        (
            "symlink over a dir",
            vec![
                Raw::Dir(raw("pkg/d/"), 0o755),
                Raw::File(raw("pkg/d/f"), 0o644, PWNED.to_vec()),
                Raw::Sym(raw("pkg/d"), raw(".")),
            ],
        ),
        (
            "file over a dir",
            vec![Raw::Dir(raw("pkg/d/"), 0o755), Raw::File(raw("pkg/d"), 0o644, PWNED.to_vec())],
        ),
        (
            "file under a file",
            vec![
                Raw::File(raw("pkg/f"), 0o644, PWNED.to_vec()),
                Raw::File(raw("pkg/f/g"), 0o644, PWNED.to_vec()),
            ],
        ),
    ];
    let n = cases.len();
    for (what, entries) in cases {
        let (_s, r) = attack(&entries, &Options::SOURCE);
        let e = r.expect_err(what);
        assert!(matches!(e, UnpackError::Escape { .. } | UnpackError::Invalid { .. }), "{what}: {e}");
        assert!(
            e.to_string().contains("evil.tar.gz") && e.to_string().contains("entry `"),
            "{what}: {e}"
        );
    }
    assert_eq!(n, 19);
}

#[test]
fn an_existing_symlink_in_the_destination_is_never_followed() {
    // Whatever planted it, a symlink already in the destination is not a way out.
    let s = Scratch::new();
    std::fs::create_dir_all(s.dest()).unwrap();
    std::os::unix::fs::symlink(s.root(), s.dest().join("up")).unwrap();
    // The attack would work if links were followed:
    assert_eq!(
        std::fs::canonicalize(s.dest().join("up/canary/file")).unwrap(),
        std::fs::canonicalize(s.canary().join("file")).unwrap()
    );
    let p = s.root().join("d1/evil.tar");
    std::fs::write(&p, tar_bytes(&[Raw::File(raw("up/canary/file"), 0o644, PWNED.to_vec())])).unwrap();
    let before = s.snapshot();
    let e = unpack(&p, &s.dest()).unwrap_err();
    assert!(matches!(e, UnpackError::Escape { .. }), "{e}");
    assert_eq!(before, s.snapshot());
    // A file entry replaces a symlink of its name instead of writing through it (`Any` lets the
    // link be absolute, as in store entries).
    let opts = Options {
        links: LinkTargets::Any,
        ..Options::SOURCE
    };
    let canary = s.canary().join("file").display().to_string();
    let (s, r) = attack(
        &[Raw::Sym(raw("pkg/f"), canary), Raw::File(raw("pkg/f"), 0o644, PWNED.to_vec())],
        &opts,
    );
    r.unwrap();
    assert_eq!(std::fs::read(s.dest().join("pkg/f")).unwrap(), b"pwned");
    assert!(!std::fs::symlink_metadata(s.dest().join("pkg/f")).unwrap().is_symlink());
}

#[test]
fn special_bits_devices_and_owners_never_land() {
    let entries = vec![
        Raw::File(raw("pkg/suid"), 0o4755, PWNED.to_vec()),
        Raw::File(raw("pkg/sgid"), 0o2644, PWNED.to_vec()),
        Raw::File(raw("pkg/world"), 0o777, PWNED.to_vec()),
        Raw::Dir(raw("pkg/sticky/"), 0o1777),
        Raw::Special(raw("pkg/null"), 0),
        Raw::Special(raw("pkg/disk"), 1),
        Raw::Special(raw("pkg/fifo"), 2),
    ];
    let (s, r) = attack(&entries, &Options::SOURCE);
    let sum = r.unwrap();
    assert_eq!((sum.files, sum.skipped), (3, 3), "{sum:?}");
    let mode = |p: &str| std::fs::symlink_metadata(s.dest().join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("pkg/suid"), 0o755);
    assert_eq!(mode("pkg/sgid"), 0o644);
    assert_eq!(mode("pkg/world"), 0o755);
    assert_eq!(mode("pkg/sticky") & 0o7000, 0);
    for p in ["pkg/null", "pkg/disk", "pkg/fifo"] {
        assert!(std::fs::symlink_metadata(s.dest().join(p)).is_err(), "{p} was materialized");
    }
    // Owned by whoever unpacked, not by the archive's uid 4242; the archive's mtime is kept.
    let md = std::fs::metadata(s.dest().join("pkg/suid")).unwrap();
    let me = std::fs::metadata(s.root()).unwrap();
    assert_eq!((md.uid(), md.gid()), (me.uid(), me.gid()));
    assert_eq!(md.mtime(), 1_000_000_000);
}

#[test]
fn links_inside_the_tree_still_work() {
    let entries = vec![
        Raw::File(raw("pkg/a.txt"), 0o644, PWNED.to_vec()),
        Raw::Sym(raw("pkg/link"), raw("a.txt")),
        Raw::Sym(raw("pkg/sub/up"), raw("../a.txt")),
        Raw::Sym(raw("pkg/sub/dot"), raw("./../a.txt")),
        Raw::Hard(raw("pkg/hard"), raw("pkg/a.txt")),
        Raw::Sym(raw("pkg/dangling"), raw("nowhere")),
        // Later entries win, as with tar(1).
        Raw::File(raw("pkg/link"), 0o755, PWNED.to_vec()),
    ];
    let (s, r) = attack(&entries, &Options::SOURCE);
    let sum = r.unwrap();
    let d = s.dest();
    assert_eq!(std::fs::read(d.join("pkg/sub/up")).unwrap(), b"pwned");
    assert_eq!(std::fs::read(d.join("pkg/hard")).unwrap(), b"pwned");
    assert_eq!(
        std::fs::metadata(d.join("pkg/hard")).unwrap().ino(),
        std::fs::metadata(d.join("pkg/a.txt")).unwrap().ino()
    );
    assert!(std::fs::symlink_metadata(d.join("pkg/link")).unwrap().is_file());
    assert_eq!(sum.symlinks, 4);
}

/// The attack of issue 15 as a zip, built with the zip crate: `pkg/a -> .`, then
/// `pkg/a/a/a/up -> ../../../..` (text inside, really `pkg/up` pointing at the scratch root), then
/// a file and a symlink under `pkg/up/canary/`.
fn chain_zip() -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        z.add_directory("pkg/", opts).unwrap();
        z.add_symlink("pkg/a", ".", opts).unwrap();
        z.add_symlink("pkg/a/a/a/up", "../../../..", opts).unwrap();
        z.start_file("pkg/up/canary/file", opts).unwrap();
        z.write_all(b"pwned").unwrap();
        z.add_symlink("pkg/up/canary/victim", "x", opts).unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn zip_link_chain_attack_is_refused() {
    let s = Scratch::new();
    // The chain's link, made by hand in a copy of the destination, really does reach the canary.
    let probe = s.root().join("d1/d2/probe/pkg");
    std::fs::create_dir_all(&probe).unwrap();
    std::os::unix::fs::symlink("../../../..", probe.join("up")).unwrap();
    assert_eq!(
        std::fs::canonicalize(probe.join("up/canary/file")).unwrap(),
        std::fs::canonicalize(s.canary().join("file")).unwrap()
    );
    let p = s.root().join("d1/evil.zip");
    std::fs::write(&p, chain_zip()).unwrap();
    let before = s.snapshot();
    let e = unpack(&p, &s.dest()).unwrap_err();
    let mut after = s.snapshot();
    after.remove(&p);
    let mut before = before;
    before.remove(&p);
    assert_eq!(before, after);
    assert!(matches!(e, UnpackError::Escape { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("evil.zip") && msg.contains("`pkg/a/a/a/up`") && msg.contains("`pkg/a` is a symlink"),
        "{msg}"
    );
    assert_eq!(std::fs::read(s.canary().join("file")).unwrap(), b"original");
    assert_eq!(std::fs::read(s.canary().join("victim")).unwrap(), b"keep me");
}

/// Sets the unix mode (high half of the external attributes) of the `index`th central-directory
/// record of a zip, as a hostile tool would.
fn set_zip_mode(bytes: &mut [u8], index: usize, mode: u32) {
    let mut at = 0;
    let mut seen = 0;
    while let Some(off) = bytes[at..].windows(4).position(|w| w == b"PK\x01\x02") {
        let rec = at + off;
        if seen == index {
            bytes[rec + 5] = 3; // made by unix
            let attrs = (mode << 16).to_le_bytes();
            bytes[rec + 38..rec + 42].copy_from_slice(&attrs);
            return;
        }
        seen += 1;
        at = rec + 4;
    }
    panic!("no record {index}");
}

#[test]
fn zip_special_modes_never_land() {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        for n in ["pkg/suid", "pkg/fifo", "pkg/dev"] {
            z.start_file(n, opts).unwrap();
            z.write_all(b"x").unwrap();
        }
        z.finish().unwrap();
    }
    let mut bytes = buf.into_inner();
    set_zip_mode(&mut bytes, 0, 0o106755);
    set_zip_mode(&mut bytes, 1, 0o010644);
    set_zip_mode(&mut bytes, 2, 0o020644);
    let s = Scratch::new();
    let p = s.root().join("d1/x.zip");
    std::fs::write(&p, bytes).unwrap();
    let sum = unpack_with(&p, &s.dest(), &Options::SOURCE).unwrap();
    assert_eq!((sum.files, sum.skipped), (1, 2));
    assert_eq!(std::fs::metadata(s.dest().join("pkg/suid")).unwrap().mode() & 0o7777, 0o755);
    assert!(!s.dest().join("pkg/fifo").exists() && !s.dest().join("pkg/dev").exists());
}

#[test]
fn budgets_stop_writing() {
    let entries: Vec<Raw> = (0..10).map(|i| Raw::File(format!("pkg/f{i}"), 0o644, PWNED.to_vec())).collect();
    // Ten files of five bytes each.
    for (limits, what) in [
        (
            Limits {
                bytes: Some(22),
                files: None,
            },
            "bytes",
        ),
        (
            Limits {
                bytes: None,
                files: Some(4),
            },
            "files",
        ),
    ] {
        let opts = Options { limits, ..Options::SOURCE };
        let (s, r) = attack(&entries, &opts);
        let e = r.unwrap_err();
        assert!(matches!(e, UnpackError::OverBudget { what: w, .. } if w == what), "{e}");
        let written: u64 = std::fs::read_dir(s.dest().join("pkg"))
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(written <= limits.bytes.unwrap_or(20), "{what}: {written} bytes written");
    }
    let opts = Options {
        limits: Limits {
            bytes: Some(50),
            files: Some(10),
        },
        ..Options::SOURCE
    };
    let (_, r) = attack(&entries, &opts);
    assert_eq!(r.unwrap().bytes, 50, "exactly the budget is fine");
}

#[test]
fn good_archive_unpacks() {
    let s = Scratch::new();
    let p = s.root().join("a.tar.gz");
    write_tar_gz(
        &p,
        &[
            Raw::File(raw("pkg/a.txt"), 0o644, PWNED.to_vec()),
            Raw::Sym(raw("pkg/link"), raw("a.txt")),
            Raw::Sym(raw("pkg/sub/up"), raw("../a.txt")),
        ],
    );
    unpack(&p, &s.dest()).unwrap();
    assert_eq!(std::fs::read(s.dest().join("pkg/a.txt")).unwrap(), b"pwned");
    assert_eq!(std::fs::read(s.dest().join("pkg/sub/up")).unwrap(), b"pwned");
}

/// A small tree as a plain tar, in memory.
fn plain_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, mode) in [("pkg/a.txt", &b"alpha"[..], 0o644), ("pkg/bin/run", &b"#!/bin/sh\n"[..], 0o755)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn check_tree(dest: &Path) {
    assert_eq!(std::fs::read(dest.join("pkg/a.txt")).unwrap(), b"alpha");
    let mode = std::fs::metadata(dest.join("pkg/bin/run")).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "executable bit lost: {mode:o}");
}

#[test]
fn every_supported_format_unpacks() {
    let d = tempfile::tempdir().unwrap();
    let tar = plain_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&tar).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&tar).unwrap();
    let mut zipped = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut zipped);
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
        z.start_file("pkg/a.txt", opts).unwrap();
        z.write_all(b"alpha").unwrap();
        z.start_file("pkg/bin/run", opts.unix_permissions(0o755)).unwrap();
        z.write_all(b"#!/bin/sh\n").unwrap();
        z.finish().unwrap();
    }
    for (name, bytes, format) in [
        ("x.tar", tar.clone(), Format::Tar),
        ("x.tar.gz", gz.finish().unwrap(), Format::TarGz),
        ("x.tar.xz", xz.finish().unwrap(), Format::TarXz),
        ("x.tar.bz2", bz.finish().unwrap(), Format::TarBz2),
        ("x.zip", zipped.into_inner(), Format::Zip),
    ] {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(detect(&p).unwrap(), format, "{name}");
        let dest = d.path().join(format!("out-{name}"));
        unpack(&p, &dest).unwrap();
        check_tree(&dest);
    }
}

#[test]
fn zip_escapes_are_refused() {
    let s = Scratch::new();
    for (entry, link) in [
        ("../../../canary/file", None),
        ("pkg/l", Some("/etc/passwd")),
        ("pkg/l", Some("../../x")),
    ] {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            match link {
                Some(t) => z.add_symlink(entry, t, opts).unwrap(),
                None => {
                    z.start_file(entry, opts).unwrap();
                    z.write_all(b"x").unwrap();
                }
            }
            z.finish().unwrap();
        }
        let p = s.root().join("d1/e.zip");
        std::fs::write(&p, buf.into_inner()).unwrap();
        let e = unpack(&p, &s.dest()).unwrap_err();
        assert!(matches!(e, UnpackError::Escape { .. }), "{entry} -> {link:?}: {e}");
    }
    assert_eq!(std::fs::read(s.canary().join("file")).unwrap(), b"original");
}

#[test]
fn unknown_format() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x");
    std::fs::write(&p, b"hello").unwrap();
    assert!(matches!(unpack(&p, d.path()), Err(UnpackError::UnknownFormat { .. })));
}
