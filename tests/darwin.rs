//! The darwin targets, cross-built on Linux with zig (docs/darwin.md), checked structurally (there
//! is no Mac here): the libraries' objects, the interpreter, and the signed single-file release.
//! They build the real darwin closures (about ten minutes per target on two cores, in parallel),
//! so they run in tests/e2e/run, not in CI: CI builds the newest of each family for x86_64 and one
//! i686 smoke test, and these closures (OpenSSL, ncurses and CPython 3.11 twice) were a quarter of
//! its cold time.

mod common;

use std::path::Path;

const LIBRARIES: &[&str] = &["zlib", "bzip2", "xz", "expat", "libffi", "sqlite", "openssl", "ncurses", "readline"];

fn archives(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            archives(&p, out);
        } else if p.extension().is_some_and(|x| x == "a") && !p.is_symlink() {
            out.push(p);
        }
    }
}

fn libraries_are_mach_o_for(short: &str, cpu: u32) {
    for lib in LIBRARIES {
        let out = common::realize_real(&format!("{lib}-{short}"), &[]);
        let mut found = Vec::new();
        archives(&out.join("lib"), &mut found);
        assert!(!found.is_empty(), "{lib}-{short} installs no static library");
        for a in found {
            let bytes = std::fs::read(&a).unwrap();
            let ar = goblin::archive::Archive::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
            let mut objects = 0;
            for name in ar.members() {
                if !name.ends_with(".o") {
                    continue;
                }
                let data = ar.extract(name, &bytes).unwrap();
                let m = goblin::mach::MachO::parse(data, 0).unwrap_or_else(|e| panic!("{}({name}): not Mach-O: {e}", a.display()));
                assert_eq!(m.header.cputype(), cpu, "{}({name})", a.display());
                objects += 1;
            }
            assert!(objects > 0, "{} holds no objects", a.display());
        }
    }
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_x86_64_libraries_are_mach_o() {
    libraries_are_mach_o_for("darwin-x86_64", goblin::mach::cputype::CPU_TYPE_X86_64);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_arm64_libraries_are_mach_o() {
    libraries_are_mach_o_for("darwin-arm64", goblin::mach::cputype::CPU_TYPE_ARM64);
}

/// The darwin interpreter (before any fuse step): a Mach-O executable for the target's CPU whose
/// only dylib is libSystem, built for macOS 11.0 at the least, with a main-thread stack of at
/// least 8 MiB (zig reads `-stack_size` as decimal: a bare 1000000 would give less than 1 MiB).
fn interpreter_is_a_libsystem_only_mach_o(short: &str, cpu: u32) {
    let out = common::realize_real(&format!("cpython3.11-{short}"), &[]);
    let bytes = std::fs::read(out.join("bin/python3.11")).unwrap();
    assert_libsystem_only_macos11_executable(&goblin::mach::MachO::parse(&bytes, 0).unwrap(), cpu);
}

/// The facts every darwin executable must have, before and after the fuse step.
fn assert_libsystem_only_macos11_executable(m: &goblin::mach::MachO, cpu: u32) {
    use goblin::mach::load_command::CommandVariant;
    assert_eq!(m.header.cputype(), cpu);
    assert_eq!(m.header.filetype, goblin::mach::header::MH_EXECUTE);
    let libs: Vec<&str> = m.libs.iter().copied().filter(|l| *l != "self").collect();
    assert_eq!(libs, ["/usr/lib/libSystem.B.dylib"]);
    let mut minos = None;
    let mut stack = None;
    for lc in &m.load_commands {
        match &lc.command {
            CommandVariant::BuildVersion(b) => minos = Some(b.minos),
            CommandVariant::Main(e) => stack = Some(e.stacksize),
            _ => {}
        }
    }
    assert_eq!(minos, Some(11 << 16), "LC_BUILD_VERSION minos is 11.0");
    assert!(stack.unwrap_or(0) >= 8 << 20, "main stack {stack:?}");
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_arm64_interpreter_is_a_libsystem_only_mach_o() {
    interpreter_is_a_libsystem_only_mach_o("darwin-arm64", goblin::mach::cputype::CPU_TYPE_ARM64);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_x86_64_interpreter_is_a_libsystem_only_mach_o() {
    interpreter_is_a_libsystem_only_mach_o("darwin-x86_64", goblin::mach::cputype::CPU_TYPE_X86_64);
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// The ad-hoc signature of a signed Mach-O, read the way the kernel validates it: the SuperBlob at
/// LC_CODE_SIGNATURE's offset holds a CodeDirectory whose SHA-256 slots are the hashes of every
/// 4 KiB page before the signature. Returns (signature offset, CodeDirectory identifier).
fn verify_code_signature(bytes: &[u8], m: &goblin::mach::MachO) -> (usize, String) {
    use goblin::mach::load_command::CommandVariant;
    let (off, size) = m
        .load_commands
        .iter()
        .find_map(|lc| match &lc.command {
            CommandVariant::CodeSignature(c) => Some((c.dataoff as usize, c.datasize as usize)),
            _ => None,
        })
        .expect("an LC_CODE_SIGNATURE");
    assert!(off + size <= bytes.len());
    let sb = &bytes[off..off + size];
    assert_eq!(be32(sb, 0), 0xfade0cc0, "an embedded-signature SuperBlob");
    let cd_at = (0..be32(sb, 8))
        .find(|i| be32(sb, 12 + 8 * i) == 0)
        .map(|i| be32(sb, 16 + 8 * i))
        .expect("a CodeDirectory slot");
    let cd = &sb[cd_at..];
    assert_eq!(be32(cd, 0), 0xfade0c02);
    assert_eq!(cd[37], 2, "SHA-256");
    let page = 1usize << cd[39];
    let (hashes, slots, limit) = (be32(cd, 16), be32(cd, 28), be32(cd, 32));
    assert_eq!(limit, off, "the signature covers every byte before it");
    assert_eq!(slots, limit.div_ceil(page));
    for (i, chunk) in bytes[..limit].chunks(page).enumerate() {
        use sha2::Digest;
        assert_eq!(
            &cd[hashes + 32 * i..hashes + 32 * (i + 1)],
            sha2::Sha256::digest(chunk).as_slice(),
            "page {i}"
        );
    }
    let ident = &cd[be32(cd, 20)..];
    let ident = String::from_utf8(ident[..ident.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap();
    (off, ident)
}

/// The single-file release for a darwin target, checked structurally (nothing here can run it):
/// the Mach-O facts of the interpreter still hold, `__LINKEDIT` and the new ad-hoc signature reach
/// the end of the file and the signature's hashes match every page, the ZIP inside is well formed
/// with offsets from the start of the file and ends where the signature begins, the manifest says
/// so and lists built-in and missing modules; and the interpreter's own zipimport (the darwin
/// patch, run here by the host's Python 3.11) imports from the file.
fn release_is_a_signed_single_file(short: &str, cpu: u32) {
    use goblin::mach::load_command::CommandVariant;
    let release = format!("python3.11-{short}");
    let out = common::realize_real(&release, &[]);
    let bin = out.join("bin").join(&release);
    let bytes = std::fs::read(&bin).unwrap();
    let m = goblin::mach::MachO::parse(&bytes, 0).unwrap();
    assert_libsystem_only_macos11_executable(&m, cpu);
    let linkedit_end = m
        .load_commands
        .iter()
        .find_map(|lc| match &lc.command {
            CommandVariant::Segment64(s) if s.segname.starts_with(b"__LINKEDIT\0") => Some(s.fileoff + s.filesize),
            _ => None,
        })
        .expect("a __LINKEDIT segment");
    assert_eq!(linkedit_end, bytes.len() as u64, "__LINKEDIT reaches the end of the file");
    let (sig_at, ident) = verify_code_signature(&bytes, &m);
    assert_eq!(ident, release);
    // The string table spans the ZIP: every byte of __LINKEDIT before the signature belongs to a
    // load command (what `codesign --strict` asks).
    let symtab = m
        .load_commands
        .iter()
        .find_map(|lc| match &lc.command {
            CommandVariant::Symtab(s) => Some(*s),
            _ => None,
        })
        .unwrap();
    assert_eq!((symtab.stroff + symtab.strsize) as usize, sig_at);

    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let b = &manifest["binary"];
    assert_eq!(b["size"], bytes.len() as u64);
    assert_eq!(b["sha256"], common::sha256(&bin));
    let (zip_off, zip_size) = (
        b["stdlib_zip"]["offset"].as_u64().unwrap(),
        b["stdlib_zip"]["size"].as_u64().unwrap(),
    );
    assert_eq!((zip_off + zip_size) as usize, sig_at, "the ZIP ends where the signature begins");
    assert_eq!(b["code_signature"]["offset"], sig_at as u64);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..sig_at])).unwrap();
    assert_eq!(zip.offset(), 0, "central directory offsets count from the start of the file");
    // The manifest counts the stdlib's members; the ZIP also holds the zstd blocks of the cold
    // modules (releases-3.toml's `solid-zstd`).
    let blocks = zip.file_names().filter(|n| n.starts_with(".spy-solid/")).count() as u64;
    assert!(blocks > 10, "{blocks} zstd blocks");
    assert_eq!(zip.len() as u64, b["stdlib_zip"]["entries"].as_u64().unwrap() + blocks);
    let first = (0..zip.len()).map(|i| zip.by_index_raw(i).unwrap().header_start()).min().unwrap();
    assert_eq!(first, zip_off, "the first member starts at the ZIP's offset");
    // os and zipimport are in zstd blocks, which the zip crate cannot read: present, and the
    // stored modules start with 3.11's magic number.
    for name in ["os.pyc", "zipimport.pyc"] {
        assert!(zip.index_for_name(name).is_some(), "{name} missing");
    }
    for name in ["encodings/__init__.pyc", "ssl.pyc", "json/decoder.pyc"] {
        let mut f = zip.by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut magic = [0u8; 4];
        std::io::Read::read_exact(&mut f, &mut magic).unwrap();
        assert_eq!(magic, [0xa7, 0x0d, 0x0d, 0x0a], "{name}: CPython 3.11 bytecode");
    }
    let modules = &manifest["modules"];
    let builtin: Vec<&str> = modules["builtin"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for name in [
        "_ssl", "_hashlib", "_sqlite3", "readline", "_curses", "_ctypes", "zlib", "_bz2", "_lzma", "pyexpat", "_decimal", "_socket",
        "posix",
    ] {
        assert!(builtin.contains(&name), "{name} not built in: {builtin:?}");
    }
    let missing = modules["missing"].as_object().unwrap();
    assert!(missing["_scproxy"].as_str().unwrap().contains("CoreFoundation"), "{missing:?}");
    assert!(missing.values().all(|why| !why.as_str().unwrap().is_empty()));
    assert_eq!(
        manifest["target"],
        if cpu == goblin::mach::cputype::CPU_TYPE_ARM64 {
            "aarch64-darwin"
        } else {
            "x86_64-darwin"
        }
    );

    // The interpreter's zipimport (as patched for darwin) finds the ZIP inside the signed file
    // (stored modules; the host Python running it has no zstd decoder for the blocks).
    // (-B everywhere: the tests run as root, who could write __pycache__ into the read-only store
    // entry; `spy check` caught one.)
    let interp = common::realize_real(&format!("cpython3.11-{short}"), &[]);
    let probe = format!(
        r#"
import importlib.util, sys
spec = importlib.util.spec_from_file_location("spy_zipimport", "{}/lib/python3.11/zipimport.py")
zi = importlib.util.module_from_spec(spec); spec.loader.exec_module(zi)
imp = zi.zipimporter("{bin}")
code = imp.get_code("selectors")
assert code.co_filename.endswith("selectors.py"), code.co_filename
sub = zi.zipimporter("{bin}/json").get_code("json.decoder")
assert sub.co_filename.endswith("json/decoder.py"), sub.co_filename
exec(code, {{"__name__": "spy_selectors_from_the_zip"}})
# os is in a zstd block: this Python has no _spy_zstd to decode it, and says so.
try:
    imp.get_code("os")
except zi.ZipImportError as e:
    assert "_spy_zstd" in str(e), e
else:
    raise AssertionError("os read without a zstd decoder")
print(len(zi._zip_directory_cache["{bin}"]), imp.get_filename("encodings"))
"#,
        interp.display(),
        bin = bin.display(),
    );
    let o = std::process::Command::new("/usr/bin/python3.11")
        .args(["-I", "-B", "-c", &probe])
        .output()
        .unwrap();
    let text = common::ok(&o);
    assert!(text.contains("encodings/__init__.pyc"), "{text}");
    // And getpath's C half: its hasappendedzip(), compiled here from the interpreter's own
    // getpath.c, sees the ZIP in the release and none in the bare interpreter.
    let getpath = std::fs::read_to_string(interp.join("share/spy/getpath.c")).unwrap();
    let start = getpath
        .find("static PyObject *\ngetpath_hasappendedzip")
        .expect("hasappendedzip in getpath.c");
    let len = getpath[start..].find("\n}\n").unwrap() + 3;
    let dir = tempfile::tempdir().unwrap();
    let module = format!(
        "#include <Python.h>\n#include <stdint.h>\n#include <wchar.h>\n\
         /* _Py_wfopen is internal to libpython: the same open, for this harness. */\n\
         static FILE *_Py_wfopen(const wchar_t *path, const wchar_t *mode) {{\n\
           char p[4096]; (void)mode;\n\
           return wcstombs(p, path, sizeof p) < sizeof p ? fopen(p, \"rb\") : NULL;\n}}\n{}\n\
         static PyMethodDef methods[] = {{{{\"hasappendedzip\", getpath_hasappendedzip, METH_VARARGS, NULL}}, {{NULL, NULL, 0, NULL}}}};\n\
         static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, \"spy_getpath\", NULL, -1, methods}};\n\
         PyMODINIT_FUNC PyInit_spy_getpath(void) {{ return PyModule_Create(&def); }}\n",
        &getpath[start..start + len]
    );
    std::fs::write(dir.path().join("spy_getpath.c"), module).unwrap();
    let cc = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-I/usr/include/python3.11", "-o"])
        .arg(dir.path().join("spy_getpath.so"))
        .arg(dir.path().join("spy_getpath.c"))
        .output()
        .unwrap();
    common::ok(&cc);
    let check = format!(
        "import sys\nsys.path.insert(0, {:?})\nimport spy_getpath\n\
         print(spy_getpath.hasappendedzip({:?}), spy_getpath.hasappendedzip({:?}))",
        dir.path().display().to_string(),
        bin.display().to_string(),
        interp.join("bin/python3.11").display().to_string()
    );
    let o = std::process::Command::new("/usr/bin/python3.11")
        .args(["-I", "-B", "-c", &check])
        .output()
        .unwrap();
    assert_eq!(
        common::ok(&o).trim(),
        "True False",
        "hasappendedzip(release), hasappendedzip(interpreter)"
    );

    // And its Python half, getpath.py, in CPython's own mock of the platform: tests/darwin_getpath.py.
    let o = std::process::Command::new("/usr/bin/python3.11")
        .args(["-I", "-B"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/darwin_getpath.py"))
        .arg(&interp)
        .output()
        .unwrap();
    assert!(common::ok(&o).contains("darwin getpath: ok"));
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_arm64_release_is_a_signed_single_file() {
    release_is_a_signed_single_file("darwin-arm64", goblin::mach::cputype::CPU_TYPE_ARM64);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_x86_64_release_is_a_signed_single_file() {
    release_is_a_signed_single_file("darwin-x86_64", goblin::mach::cputype::CPU_TYPE_X86_64);
}

/// Our signer against zig's linker: re-signing the linker's output with the linker's identifier
/// gives the linker's bytes.
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_arm64_signature_matches_the_linkers() {
    let interp = common::realize_real("cpython3.11-darwin-arm64", &[]);
    let original = std::fs::read(interp.join("bin/python3.11")).unwrap();
    let m = goblin::mach::MachO::parse(&original, 0).unwrap();
    let (_, ident) = verify_code_signature(&original, &m);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("python3.11");
    std::fs::write(&copy, &original).unwrap();
    spy_fuse::macho::resign(&copy, &ident).unwrap();
    assert!(std::fs::read(&copy).unwrap() == original, "our signature differs from zig's");
}

/// overlays/libedit.toml on darwin: the cross-built interpreter's readline module is over libedit
/// (its version string is libedit's), GNU readline is not linked, no part is GPL only, and the
/// release is still a signed, libSystem-only single file.
fn libedit_replaces_readline(short: &str, cpu: u32) {
    let overlay = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlays/libedit.toml");
    let release = format!("python3.11-{short}");
    let out = common::realize_real(&release, &[&overlay]);
    let bytes = std::fs::read(out.join("bin").join(&release)).unwrap();
    let m = goblin::mach::MachO::parse(&bytes, 0).unwrap();
    assert_libsystem_only_macos11_executable(&m, cpu);
    let (_, ident) = verify_code_signature(&bytes, &m);
    assert_eq!(ident, release);
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"EditLine wrapper"), "libedit's rl_library_version is linked in");
    common::manifest_says_libedit_not_readline(&out);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_arm64_libedit_replaces_readline() {
    libedit_replaces_readline("darwin-arm64", goblin::mach::cputype::CPU_TYPE_ARM64);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn darwin_x86_64_libedit_replaces_readline() {
    libedit_replaces_readline("darwin-x86_64", goblin::mach::cputype::CPU_TYPE_X86_64);
}
