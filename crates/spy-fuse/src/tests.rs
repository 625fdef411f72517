use super::*;

fn spec(exclude: &[&str]) -> FuseSpec {
    FuseSpec {
        interpreter: "cpython".into(),
        executable: "bin/python".into(),
        stdlib: "lib/python".into(),
        modules: None,
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        compression: ZipCompression::Stored,
        flavor: "plain".into(),
    }
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn members_keep_pyc_and_data_drop_sources_caches_and_excluded_paths() {
    let t = tree(&[
        ("os.py", "src"),
        ("os.pyc", "pyc"),
        ("json/__init__.py", ""),
        ("json/__init__.pyc", "pyc"),
        ("json/__pycache__/x.cpython-311.pyc", "cached"),
        ("lib2to3/Grammar.txt", "data"),
        ("test/test_os.pyc", "excluded"),
        ("testing.pyc", "kept: `test` excludes a path, not a prefix of a name"),
        ("turtle.pyc", "excluded file"),
        ("doctest.py", "excluded source"),
        ("doctest.pyc", "its compiled form goes with it"),
    ]);
    let names: Vec<String> = stdlib_members(t.path(), &spec(&["test", "turtle.pyc", "doctest.py"]))
        .ok()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        [
            "json/",
            "json/__init__.pyc",
            "lib2to3/",
            "lib2to3/Grammar.txt",
            "os.pyc",
            "testing.pyc"
        ]
    );
}

#[test]
fn a_source_without_its_pyc_is_an_error() {
    let t = tree(&[("os.py", "src"), ("abc.py", "src"), ("abc.pyc", "pyc")]);
    match stdlib_members(t.path(), &spec(&[])) {
        Err((p, MemberError::Uncompiled)) => assert!(p.ends_with("os.py")),
        _ => panic!("an uncompiled module went unnoticed"),
    }
}

#[test]
fn the_zip_follows_the_executable_with_absolute_offsets_and_fixed_metadata() {
    let t = tree(&[
        ("lib/os.pyc", "os bytecode"),
        ("lib/json/__init__.pyc", "json bytecode"),
        ("exe", "\x7fELF pretend executable"),
    ]);
    let members = stdlib_members(&t.path().join("lib"), &spec(&[])).ok().unwrap();
    let dest = t.path().join("fused");
    let (exe_size, total) = write_binary(&t.path().join("exe"), &members, ZipCompression::Stored, &dest).unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    assert_eq!(bytes.len() as u64, total);
    assert_eq!(&bytes[..exe_size as usize], b"\x7fELF pretend executable");
    // End of central directory, no comment: what the interpreter's getpath looks for.
    assert_eq!(&bytes[bytes.len() - 22..bytes.len() - 18], b"PK\x05\x06");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&dest).unwrap()).unwrap();
    // Offsets count from the start of the file: the archive needs no prefix correction.
    assert_eq!(archive.offset(), 0);
    let mut f = archive.by_name("os.pyc").unwrap();
    assert_eq!(f.compression(), zip::CompressionMethod::Stored);
    assert_eq!(f.last_modified(), Some(zip::DateTime::default()));
    assert_eq!(f.unix_mode(), Some(0o100644));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).unwrap();
    assert_eq!(text, "os bytecode");
    drop(f);
    // Same inputs, same bytes.
    let again = t.path().join("again");
    write_binary(&t.path().join("exe"), &members, ZipCompression::Stored, &again).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), bytes);
}
