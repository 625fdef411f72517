//! The darwin libraries, cross-built on Linux with zig (docs/darwin.md): every object of every
//! static library is a Mach-O object for the target's CPU. End-to-end (`tests/e2e/run`): about ten
//! minutes of builds per target.

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
    use goblin::mach::load_command::CommandVariant;
    let out = common::realize_real(&format!("cpython3.11-{short}"), &[]);
    let bytes = std::fs::read(out.join("bin/python3.11")).unwrap();
    let m = goblin::mach::MachO::parse(&bytes, 0).unwrap();
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
