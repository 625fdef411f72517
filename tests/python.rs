//! The single-file Python (`python3.11`, a fuse node over `cpython3.11`): one static executable that
//! carries its standard library, run where nothing else exists — alone in an empty root directory
//! (new user and mount namespaces, chroot: no /proc, /etc, /usr, /dev), through a pseudo-terminal
//! without terminfo files, and against a subset of CPython's own test suite.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{empty_root, walk};

struct Target {
    short: &'static str,
    is_64: bool,
    machine: u16,
}

/// One Python of the graph: its single-file node, its interpreter node and what to expect of it.
struct Py {
    /// The fuse node (`python3.11`); the release is `<node>-<target short>`.
    node: &'static str,
    /// The interpreter node it fuses (holds `lib/<stdlib>/test`).
    interpreter: &'static str,
    stdlib: &'static str,
    version: &'static str,
    /// The modules the Python issue names, all built in.
    builtin: &'static str,
    /// Python-level modules to import as well.
    imports: &'static str,
    /// Stdlib members that must be in the ZIP.
    members: &'static [&'static str],
    /// Links in the manifest: (component, version, license).
    linked: &'static [(&'static str, &'static str, &'static str)],
    /// CPython's own tests run by `passes_a_cpython_test_subset`, and the cases left out (why: there).
    tests: &'static [&'static str],
    ignored_cases: &'static [&'static str],
    /// Whether the test-only variant (test modules built in) exists.
    test_variant: bool,
}

const X86_64: Target = Target {
    short: "x86_64",
    is_64: true,
    machine: goblin::elf::header::EM_X86_64,
};
const I686: Target = Target {
    short: "i686",
    is_64: false,
    machine: goblin::elf::header::EM_386,
};

const LINKED: &[(&str, &str, &str)] = &[
    ("openssl", "3.5.7", "Apache-2.0"),
    ("sqlite", "3.53.4", "blessing"),
    ("zlib", "1.3.2", "Zlib"),
    ("readline", "8.3", "GPL-3.0-or-later"),
    ("musl", "1.2.6", "MIT"),
];

const PY311: Py = Py {
    node: "python3.11",
    interpreter: "cpython3.11",
    stdlib: "python3.11",
    version: "3.11.2",
    builtin: "_ssl _hashlib _sqlite3 readline zlib _bz2 _lzma _decimal _ctypes pyexpat \
        _elementtree _json _socket select array math cmath unicodedata _posixsubprocess _multiprocessing \
        termios fcntl grp pwd resource mmap binascii _datetime _struct _random _bisect _heapq _pickle _csv \
        _md5 _sha1 _sha256 _sha512 _sha3 _blake2 _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp _codecs_kr \
        _codecs_tw _multibytecodec _curses _curses_panel",
    imports: "ssl hashlib sqlite3 zlib bz2 lzma socket subprocess ctypes decimal json curses readline uuid \
        xml.etree.ElementTree",
    members: &[
        "os.pyc",
        "encodings/__init__.pyc",
        "json/decoder.pyc",
        "ssl.pyc",
        "sqlite3/dbapi2.pyc",
    ],
    linked: LINKED,
    tests: &[
        "test_json",
        "test_sqlite3",
        "test_zlib",
        "test_bz2",
        "test_lzma",
        "test_hashlib",
        "test_decimal",
        "test_struct",
        "test_datetime",
        "test_re",
        "test_unicode",
        "test_subprocess",
        "test_ssl",
        "test_zipimport",
        "test_marshal",
        "test_tuple",
        "test_gc",
        "test_site",
        "test_ctypes",
        "test_csv",
        "test_pickle",
        "test_select",
        "test_os",
    ],
    // - test_fork re-runs the interpreter with -E, and test_gc's test_ast_fini with -I, which drop
    //   PYTHONPATH, where the test package is (the single file does not carry it);
    // - test_underpth_nosite_file writes a ._pth file, which replaces sys.path entirely, so a single
    //   file whose stdlib is its own executable finds no `encodings`;
    // - musl: fpathconf() does not check its descriptor; no single-byte locales, which the test_re
    //   locale cases switch to;
    // - OpenSSL 3.5 ends a refused handshake (an unknown CA, a required client certificate not
    //   sent) with another error than 3.11.2's test_ssl expects: "[SYS] unknown error" where it
    //   looks for "alert unknown ca|EOF occurred" or "certificate required|EOF occurred", depending
    //   on timing; 3.13's tests take it.
    ignored_cases: &[
        "test_fork",
        "test_ast_fini",
        "test_underpth_nosite_file",
        "test_fpathconf",
        "test_locale_caching",
        "test_locale_compiled",
        "test_wrong_cert_tls13",
        "test_pha_required_nocert",
    ],
    test_variant: true,
};

/// 3.13: the newest CPython 3 here (CI); 3.11 runs in tests/e2e/run.
const PY313: Py = Py {
    node: "python3.13",
    interpreter: "cpython3.13",
    stdlib: "python3.13",
    version: "3.13.15",
    // 3.12 merged _sha256 and _sha512 into _sha2.
    builtin: "_ssl _hashlib _sqlite3 readline zlib _bz2 _lzma _decimal _ctypes pyexpat \
        _elementtree _json _socket select array math cmath unicodedata _posixsubprocess _multiprocessing \
        termios fcntl grp pwd resource mmap binascii _datetime _struct _random _bisect _heapq _pickle _csv \
        _md5 _sha1 _sha2 _sha3 _blake2 _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp _codecs_kr \
        _codecs_tw _multibytecodec _curses _curses_panel",
    imports: PY311.imports,
    members: PY311.members,
    linked: LINKED,
    // 3.12 renamed test_unicode test_str.
    tests: &[
        "test_json",
        "test_sqlite3",
        "test_zlib",
        "test_bz2",
        "test_lzma",
        "test_hashlib",
        "test_decimal",
        "test_struct",
        "test_datetime",
        "test_re",
        "test_str",
        "test_subprocess",
        "test_ssl",
        "test_zipimport",
        "test_marshal",
        "test_tuple",
        "test_gc",
        "test_site",
        "test_ctypes",
        "test_csv",
        "test_pickle",
        "test_select",
        "test_os",
    ],
    // 3.11's, and:
    // - musl's fpathconf() does not check its descriptor (3.13's new negative-fd case);
    // - 3.13's test_ctypes (now in test/) loads real shared libraries (libc by name, a library
    //   built by the test, dlerror messages), which a static interpreter cannot dlopen, and reads
    //   data symbols of pythonapi with in_dll, which the static symbol table (_spy_symbols) does
    //   not resolve: it holds the C API's functions (docs/packages.md).
    ignored_cases: &[
        "test_fork",
        "test_ast_fini",
        "test_underpth_nosite_file",
        "test_fpathconf",
        "test_locale_caching",
        "test_locale_compiled",
        "test_pathconf_negative_fd_uses_fd_semantics",
        "test.test_ctypes.test_dlerror.*",
        "test.test_ctypes.test_errno.Test.test_open",
        "test.test_ctypes.test_values.*",
    ],
    test_variant: true,
};

const PY27: Py = Py {
    node: "python2.7",
    interpreter: "cpython2.7",
    stdlib: "python2.7",
    version: "2.7.18",
    builtin: "_ssl _hashlib _sqlite3 readline zlib bz2 _ctypes pyexpat _elementtree _json _socket select \
        array math cmath unicodedata _multiprocessing termios fcntl grp pwd resource mmap binascii datetime \
        _struct _random _bisect _heapq cPickle cStringIO _csv _md5 _sha _sha256 _sha512 _codecs_cn _codecs_hk \
        _codecs_iso2022 _codecs_jp _codecs_kr _codecs_tw _multibytecodec _curses _curses_panel _io itertools \
        operator _functools _collections strop crypt",
    imports: "ssl hashlib sqlite3 zlib bz2 socket subprocess ctypes decimal json curses readline uuid \
        xml.etree.ElementTree xml.etree.cElementTree",
    members: &[
        "os.pyc",
        "encodings/__init__.pyc",
        "json/decoder.pyc",
        "ssl.pyc",
        "sqlite3/dbapi2.pyc",
    ],
    linked: LINKED,
    // Left out of 2.7's subset, each for a reason outside the build: json, sqlite3 and ctypes keep
    // their tests inside the package (json.tests...), which the single file leaves out (the empty-root
    // test exercises those modules instead); test_ssl predates OpenSSL 3 (1024-bit test keys, 1.x
    // version checks); test_unicode, test_struct, test_array and test_codecs need _testcapi (no 2.7
    // test variant); test_subprocess looks for stdlib source lines in a traceback (the single file
    // carries .pyc only); test_os and test_re have the musl cases that 3.11's list ignores.
    tests: &[
        "test_zlib",
        "test_bz2",
        "test_hashlib",
        "test_decimal",
        "test_datetime",
        "test_zipimport",
        "test_csv",
        "test_cpickle",
        "test_pickle",
        "test_select",
        "test_math",
        "test_binascii",
        "test_float",
        "test_long",
        "test_dict",
        "test_builtin",
    ],
    ignored_cases: &[],
    test_variant: false,
};

/// Run alone in the empty root: every module, real work with each, processes of itself.
const IN_EMPTY_ROOT: &str = r#"
from __future__ import print_function
import importlib, json, os, sys
names, imports = sys.argv[1].split(), sys.argv[2].split()
missing = [n for n in names if n not in sys.builtin_module_names]
assert not missing, missing
for n in names + imports:
    importlib.import_module(n)
import hashlib, sqlite3, zlib, bz2, ssl, socket, subprocess, ctypes, decimal, pwd
assert hashlib.sha256(b"abc").hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
db = sqlite3.connect(":memory:")
db.execute("create table t (x)"); db.executemany("insert into t values (?)", [(i,) for i in range(10)])
assert db.execute("select sum(x) from t").fetchone() == (45,)
data = b"spy" * 10000
codecs = [zlib, bz2]
if sys.version_info[0] >= 3:
    import lzma; codecs.append(lzma)
for m in codecs:
    assert m.decompress(m.compress(data)) == data, m
ctx = ssl.create_default_context()
assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
a, b = socket.socketpair(); a.sendall(b"ping"); assert b.recv(4) == b"ping"
p = subprocess.Popen([sys.executable, "-c", "import sys; print('%s %d' % (sys.executable, 6 * 7))"], stdout=subprocess.PIPE)
out = p.communicate()[0].decode()
assert p.returncode == 0 and out.split() == [sys.executable, "42"], out
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-c", "import sys, zlib; sys.exit(7)"])
status = os.waitpid(pid, 0)[1]
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7, status
assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x * 2)(21) == 42
assert str(decimal.Decimal(1) / 8) == "0.125"
try:
    root = pwd.getpwuid(0).pw_name
except KeyError:
    root = None
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix, "path": sys.path,
                  "root": root, "proc": os.path.exists("/proc/self"), "etc": os.path.exists("/etc"),
                  "version": sys.version.split()[0], "openssl": ssl.OPENSSL_VERSION}))
"#;

fn realize(py: &Py, t: &Target) -> (PathBuf, PathBuf, String) {
    let release = format!("{}-{}", py.node, t.short);
    let out = common::realize_real(&release, &[]);
    (out.join("bin").join(&release), out, release)
}

fn single_file_is_static_with_a_manifest(py: &Py, t: &Target) {
    let (bin, out, release) = realize(py, t);
    // The whole output: one executable and its manifest.
    let mut files: Vec<String> = walk(&out)
        .into_iter()
        .map(|p| p.strip_prefix(&out).unwrap().display().to_string())
        .collect();
    files.sort();
    assert_eq!(files, [format!("bin/{release}"), "manifest.json".to_string()]);
    let bytes = std::fs::read(&bin).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    assert_eq!((elf.is_64, elf.header.e_machine), (t.is_64, t.machine));
    assert_eq!(elf.interpreter, None, "asks for a dynamic loader");
    assert!(elf.libraries.is_empty() && elf.dynamic.is_none(), "dynamic: {:?}", elf.libraries);
    assert!(elf.syms.is_empty(), "not stripped: {} symbols", elf.syms.len());
    // C is compiled without unwind tables (graph/toolchain/toolchain.toml; they were 4-11 % of
    // each C library, docs/packages.md): what is left is the compiler runtime's (libgcc), 13.8 KB.
    let unwind: u64 = elf
        .section_headers
        .iter()
        .filter(|s| matches!(elf.shdr_strtab.get_at(s.sh_name), Some(".eh_frame" | ".eh_frame_hdr")))
        .map(|s| s.sh_size)
        .sum();
    assert!(unwind < 64 * 1024, "{unwind} bytes of unwind tables");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["release"], release.as_str());
    assert_eq!(m["interpreter"]["version"], py.version);
    assert_eq!(m["flavor"], "plain");
    assert_eq!(m["binary"]["sha256"], common::sha256(&bin).as_str());
    assert_eq!(m["binary"]["size"].as_u64(), Some(bytes.len() as u64));
    // The ZIP starts where the executable ends, and the archive reads from the file as it is.
    let zip_offset = m["binary"]["stdlib_zip"]["offset"].as_u64().unwrap() as usize;
    assert_eq!(&bytes[zip_offset..zip_offset + 4], b"PK\x03\x04");
    let listing = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        ])
        .arg(&bin)
        .output()
        .unwrap();
    let listing = common::ok(&listing);
    // Every member reads back whole. The cold modules are in zstd blocks (releases-3.toml's
    // `solid-zstd`, releases-2.7.toml's `solid-lz4-zstd`), which zipimport reads.
    let solid = members_read_back(&bin);
    assert!(solid > 400, "{solid} modules in zstd blocks");
    for member in py.members {
        assert!(listing.lines().any(|l| l == *member), "{member} missing from the stdlib ZIP");
    }
    for gone in ["test/", "idlelib/", "tkinter/", "lib-tk/", "turtle.pyc"] {
        assert!(!listing.lines().any(|l| l.starts_with(gone)), "{gone} should be excluded");
    }
    // ensurepip stays, with its wheels: venv and `-m ensurepip` install pip from them. Each is
    // recompressed whole (spy-pack-wheels.py): xz, zstd for 2.7; no plain wheel is left beside.
    let packed = if py.version.starts_with('2') { ".whl.zst" } else { ".whl.xz" };
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("ensurepip/_bundled/pip-") && l.ends_with(packed)),
        "no pip wheel ending in {packed}"
    );
    assert!(!listing.lines().any(|l| l.ends_with(".whl")), "a wheel left as it was");
    assert!(!listing.lines().any(|l| l.ends_with(".py")), "sources in the ZIP");
    // Modules: everything named is built in; what is not built is listed with a reason.
    let builtin = common::builtin_modules(&m);
    for name in py.builtin.split_whitespace() {
        assert!(builtin.contains(&name), "{name} not built in");
    }
    assert!(!builtin.contains(&"_testcapi"), "test modules in a release binary");
    let missing = m["modules"]["missing"].as_object().unwrap();
    assert!(missing.contains_key("_tkinter"), "{missing:?}");
    assert!(missing.values().all(|r| r.as_str().is_some_and(|r| r.len() > 5)));
    // Components: every library with version, license, role, node id and pinned sources.
    let comps = m["components"].as_array().unwrap();
    let comp = |name: &str| {
        comps
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no component {name}"))
    };
    for &(name, version, license) in py.linked {
        let c = comp(name);
        assert_eq!(
            (c["version"].as_str(), c["license"].as_str()),
            (Some(version), Some(license)),
            "{c}"
        );
        assert_eq!(c["id"].as_str().unwrap().len(), 64);
        assert_eq!(c["sources"][0]["sha256"].as_str().unwrap().len(), 64, "{c}");
    }
    assert_eq!(comp("openssl")["role"], "linked");
    // The binary's licence expression: GNU readline's GPL among its parts' licences.
    let license = m["license"].as_str().unwrap();
    assert!(
        license.contains("GPL-3.0-or-later") && license.contains("PSF-2.0") && license.contains("Apache-2.0"),
        "{license}"
    );
    // The release fuses the plain flavor's relinked interpreter; CPython's link kit went into it.
    assert_eq!(comp(&format!("{}-interp", py.node))["role"], "interpreter");
    assert_eq!(comp(py.interpreter)["role"], "linked");
    // The plain flavor's only package is tzdata (3.x), with nothing built in: data for zoneinfo.
    let packages = m["modules"]["packages"].as_object().unwrap();
    assert!(
        packages
            .iter()
            .all(|(name, modules)| name.starts_with("tzdata-py3.") && modules.as_array().is_some_and(|m| m.is_empty())),
        "packages in a plain release: {packages:?}"
    );
    assert_eq!(packages.len(), usize::from(py.version.starts_with('3')));
    assert_eq!(comp("linux-headers")["role"], "build");
    // The compiler is on record: the host's gcc among stage 0's tools, or (with
    // overlays/zig-toolchain.toml, which takes the host's compilers out of stage 0) the zig node.
    let host_gcc = m["build_tools"].as_array().unwrap().iter().any(|t| t["name"] == "gcc");
    let zig = m["components"].as_array().unwrap().iter().any(|c| c["name"] == "zig");
    assert!(host_gcc || zig, "no compiler in the manifest");
}

fn runs_alone_in_an_empty_root(py: &Py, t: &Target) {
    let (bin, _, release) = realize(py, t);
    let exe = format!("/{release}");
    let root = empty_root(&bin, &release, &[("lib/spy_probe.py", b"WHERE = 'PYTHONPATH'\n")]);
    let o = common::run_in_root(root.path(), &[], &[&exe, "-c", IN_EMPTY_ROOT, py.builtin, py.imports]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_str(common::ok(&o).trim()).unwrap();
    // Nothing but itself: no /proc, no /etc; it still knows where it is and where its stdlib is.
    assert_eq!((v["proc"].as_bool(), v["etc"].as_bool()), (Some(false), Some(false)));
    assert_eq!(v["executable"], exe.as_str());
    assert_eq!(v["prefix"], "/");
    assert_eq!(v["path"], serde_json::json!(["", exe]));
    assert_eq!(v["version"], py.version);
    assert!(v["openssl"].as_str().unwrap().starts_with("OpenSSL 3.5.7"), "{v}");
    // pwd without /etc/passwd: a clean KeyError, not a crash.
    assert_eq!(v["root"], serde_json::Value::Null);
    assert!(stderr.is_empty(), "warnings on stderr: {stderr}");

    // With /etc/passwd, pwd works.
    let root2 = empty_root(&bin, &release, &[("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")]);
    let o = common::run_in_root(root2.path(), &[], &[&exe, "-c", "import pwd; print(pwd.getpwuid(0).pw_name)"]);
    assert_eq!(common::ok(&o).trim(), "root");

    // Found by name through PATH (no /proc to ask), and by a relative argv[0].
    let o = common::run_in_root(
        root.path(),
        &[("PATH", "/nowhere:/")],
        &[&release, "-c", "import sys, json; print(sys.executable)"],
    );
    assert_eq!(common::ok(&o).trim(), exe);

    // PYTHONPATH comes first; -E and -I ignore it; -S skips site; the stdlib stays found.
    let probe =
        "import sys\ntry:\n import spy_probe; print(spy_probe.WHERE)\nexcept ImportError: print('none')\nprint('site' in sys.modules)";
    let env = [("PYTHONPATH", "/lib")];
    assert_eq!(
        common::ok(&common::run_in_root(root.path(), &env, &[&exe, "-c", probe]))
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["PYTHONPATH", "True"]
    );
    assert_eq!(
        common::ok(&common::run_in_root(root.path(), &env, &[&exe, "-E", "-c", probe]))
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["none", "True"]
    );
    if py.version.starts_with('3') {
        assert_eq!(
            common::ok(&common::run_in_root(root.path(), &env, &[&exe, "-I", "-c", probe]))
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["none", "True"]
        );
    }
    assert_eq!(
        common::ok(&common::run_in_root(root.path(), &env, &[&exe, "-S", "-c", probe]))
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["PYTHONPATH", "False"]
    );
}

fn finds_itself_with_an_empty_argv0(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    // argv[0] says nothing; /proc/self/exe (mounted here) says where the stdlib is.
    let o = Command::new(&bin)
        .arg0("")
        .args(["-c", "import sys, json; print(sys.executable)"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(Path::new(common::ok(&o).trim()), bin.canonicalize().unwrap());
    // argv[0] naming another Python: the kernel's answer wins.
    let o = Command::new(&bin)
        .arg0("/usr/bin/python3")
        .args(["-c", "import sys, json; print('%s %s' % (sys.executable, json.__file__))"])
        .env_clear()
        .output()
        .unwrap();
    let text = common::ok(&o);
    assert!(text.starts_with(&format!("{} ", bin.canonicalize().unwrap().display())), "{text}");
}

fn finds_each_distributions_ca_bundle(py: &Py, t: &Target) {
    let (bin, _, release) = realize(py, t);
    let exe = format!("/{release}");
    let certs = tempfile::tempdir().unwrap();
    let make_ca = |name: &str| -> Vec<u8> {
        let (key, pem) = (certs.path().join(format!("{name}.key")), certs.path().join(format!("{name}.pem")));
        let o = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
            .arg(format!("/CN={name}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&pem)
            .output()
            .expect("openssl (installed by scripts/setup-host.sh)");
        common::ok(&o);
        std::fs::read(pem).unwrap()
    };
    let (one, two) = (make_ca("spy-test-ca-1"), make_ca("spy-test-ca-2"));
    let both = [one.clone(), two.clone()].concat();
    let count = "import ssl; print(ssl.create_default_context().cert_store_stats()['x509_ca'])";
    for path in [
        "etc/ssl/cert.pem",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/pki/tls/certs/ca-bundle.crt",
        "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "etc/ssl/ca-bundle.pem",
    ] {
        let root = empty_root(&bin, &release, &[(path, &one)]);
        assert_eq!(
            common::ok(&common::run_in_root(root.path(), &[], &[&exe, "-c", count])).trim(),
            "1",
            "bundle at /{path}"
        );
    }
    // SSL_CERT_FILE wins over the distribution's bundle.
    let root = empty_root(&bin, &release, &[("etc/ssl/certs/ca-certificates.crt", &one), ("mine.pem", &both)]);
    assert_eq!(
        common::ok(&common::run_in_root(
            root.path(),
            &[("SSL_CERT_FILE", "/mine.pem")],
            &[&exe, "-c", count]
        ))
        .trim(),
        "2"
    );
    // Nothing anywhere: an empty store, no error.
    let root = empty_root(&bin, &release, &[]);
    assert_eq!(common::ok(&common::run_in_root(root.path(), &[], &[&exe, "-c", count])).trim(), "0");
}

/// The interactive prompt through a pseudo-terminal (tmux), TERM=xterm, alone in an empty root:
/// no terminfo file exists; readline edits the line with ncurses' compiled-in entries.
fn prompt_edits_a_line_without_terminfo(py: &Py, t: &Target) {
    let (bin, _, release) = realize(py, t);
    let root = empty_root(&bin, &release, &[]);
    let pty = common::PtySession::start_in_root(&format!("{}-{}", py.node, t.short), root.path(), &format!("/{release}"), 12);
    edit_a_line(&pty);
}

/// At the prompt: "6*9", two steps left, backspace (the 6 goes), 7: 7*9 = 63. Then Up recalls it.
fn edit_a_line(pty: &common::PtySession) {
    pty.wait_for(">>>");
    pty.send_keys(&[
        &["-l", "6*9"],
        &["Left"],
        &["Left"],
        &["BSpace"],
        &["-l", "7"],
        &["Enter"],
        &["-l", "print('edited' "],
        &["Up"],
    ]);
    let screen = pty.wait_for("63");
    assert!(screen.contains(">>> 7*9"), "{screen}");
    // History: Up replaced the partial line with the previous one.
    let screen2 = pty.wait_for(">>> 7*9\n63\n>>> 7*9");
    assert!(!screen2.contains("edited"), "{screen2}");
}

/// A terminal description made by the host's tic for a terminal no library knows (`spyterm`), and
/// an `xterm` that says 99 columns where the compiled-in one says 80: a directory for `tic -o`.
fn terminfo_dir(dir: &Path) {
    let src = dir.join("spyterm.src");
    std::fs::write(
        &src,
        "spyterm|spy test terminal,\n\tam, cols#77, lines#21, clear=\\E[SPY, cup=\\E[%i%p1%d;%p2%dH,\n\
         xterm|an xterm of this machine,\n\tam, cols#99, lines#24, clear=\\E[H\\E[2J, cup=\\E[%i%p1%d;%p2%dH,\n",
    )
    .unwrap();
    let o = Command::new(common::host_tool("tic"))
        .arg("-o")
        .arg(dir.join("ti"))
        .arg(&src)
        .output()
        .unwrap();
    common::ok(&o);
}

/// curses (and readline, through ncurses) read the machine's terminfo database the usual ways, and
/// use the compiled-in entries only for a terminal no directory has.
fn curses_reads_the_machines_terminfo(py: &Py, t: &Target) {
    let (bin, _, release) = realize(py, t);
    let exe = format!("/{release}");
    let made = tempfile::tempdir().unwrap();
    terminfo_dir(made.path());
    let files: Vec<(String, Vec<u8>)> = walk(&made.path().join("ti"))
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(made.path().join("ti")).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    let probe = "import curses\ntry:\n curses.setupterm()\n print('%s %r' % (curses.tigetnum('cols'), curses.tigetstr('clear')))\nexcept curses.error as e:\n print('error')";
    let run = |dir: &str, env: &[(&str, &str)]| -> String {
        let placed: Vec<(String, &[u8])> = files.iter().map(|(r, b)| (format!("{dir}/{r}"), &b[..])).collect();
        let refs: Vec<(&str, &[u8])> = placed.iter().map(|(r, b)| (r.as_str(), *b)).collect();
        let root = empty_root(&bin, &release, if dir.is_empty() { &[] } else { &refs });
        common::ok(&common::run_in_root(root.path(), env, &[&exe, "-c", probe]))
            .trim()
            .to_string()
    };
    let spy = "77 b'\\x1b[SPY'";
    let spy = if py.version.starts_with('2') { "77 '\\x1b[SPY'" } else { spy };
    // Nowhere: spyterm is unknown, xterm is compiled in.
    assert_eq!(run("", &[("TERM", "spyterm")]), "error");
    assert!(run("", &[("TERM", "xterm")]).starts_with("80 "));
    // $TERMINFO, $TERMINFO_DIRS, ~/.terminfo and each system directory.
    assert_eq!(run("mine", &[("TERM", "spyterm"), ("TERMINFO", "/mine")]), spy);
    assert_eq!(run("mine", &[("TERM", "spyterm"), ("TERMINFO_DIRS", "/nowhere:/mine")]), spy);
    assert_eq!(run("home/.terminfo", &[("TERM", "spyterm"), ("HOME", "/home")]), spy);
    for system in ["etc/terminfo", "lib/terminfo", "usr/share/terminfo"] {
        assert_eq!(run(system, &[("TERM", "spyterm")]), spy, "{system}");
    }
    // The machine's entry wins over the compiled-in one of the same name.
    assert!(run("usr/share/terminfo", &[("TERM", "xterm")]).starts_with("99 "));

    // Line editing on a terminal only the machine knows: TERM=ansi, with the host's entry.
    let ansi = ["/usr/share/terminfo/a/ansi", "/lib/terminfo/a/ansi"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| std::fs::read(p).unwrap())
        .expect("the host's ansi terminfo entry (ncurses-base)");
    let root = empty_root(&bin, &release, &[("usr/share/terminfo/a/ansi", &ansi)]);
    let o = common::run_in_root(
        root.path(),
        &[("TERM", "ansi")],
        &[&exe, "-c", "import curses; curses.setupterm(); print(curses.tigetnum('cols'))"],
    );
    assert_eq!(common::ok(&o).trim(), "80");
    let pty = common::PtySession::start_in_root_as(&format!("{}-{}-ansi", py.node, t.short), root.path(), &exe, 12, "ansi");
    edit_a_line(&pty);
}

/// The prefix, venv and pip ([`common::prefix_pip_and_venv`]).
fn venv_and_pip_install_a_wheel(py: &Py, t: &Target) {
    let (bin, _, release) = realize(py, t);
    common::prefix_pip_and_venv(&bin, &release, py.stdlib, py.version.starts_with('2'));
}

/// Every data file of the stdlib in the ZIP or excluded ([`common::stdlib_data_is_in_the_zip`]).
fn stdlib_data_is_in_the_zip(py: &Py, t: &Target) {
    let (bin, out, release) = realize(py, t);
    let interp = common::realize_real(&format!("{}-interp-{}", py.node, t.short), &[]);
    common::stdlib_data_is_in_the_zip(&bin, &out, &interp.join("lib").join(py.stdlib), &release);
}

/// zoneinfo in an empty root: no /usr/share/zoneinfo, the tzdata package built in answers.
fn zoneinfo_works_in_an_empty_root(py: &Py, t: &Target) {
    let (bin, _, release) = realize(py, t);
    let root = empty_root(&bin, &release, &[]);
    let probe = "import zoneinfo, datetime, tzdata\nassert not any(__import__('os').path.exists(p) for p in zoneinfo.TZPATH)\n\
        z = zoneinfo.ZoneInfo('Europe/Paris')\nprint(datetime.datetime(2026, 7, 1, tzinfo=z).utcoffset(), datetime.datetime(2026, 1, 1, tzinfo=z).utcoffset(), len(zoneinfo.available_timezones()) > 400)";
    let o = common::run_in_root(root.path(), &[], &[&format!("/{release}"), "-c", probe]);
    assert_eq!(common::ok(&o).trim(), "2:00:00 1:00:00 True");
}

/// zipimport's directory of the stdlib ZIP comes from the built-in `_spy_zipdir` (issue 19: the
/// Python loop was an eighth of `-c pass`) and answers as the dict zipimport's Python code reads:
/// the same names in the same order, the same entries, `in`, `get`, KeyError, equality. It makes
/// no object per entry until asked (the dict's 1,351 names, paths and tuples were half a
/// millisecond of every start-up). The directories the C code leaves to Python (a cp437 name, a
/// local header offset past the directory) give upstream's answers, and so do hundreds of damaged
/// directories, repeated names included.
fn zip_directory_parsed_in_c_as_in_python(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let probe = r#"
import os, sys, tempfile, zipfile, zipimport
import _spy_zipdir
fast = zipimport._read_directory(sys.executable)
sys.modules['_spy_zipdir'] = None  # `import _spy_zipdir` fails: zipimport's own code
slow = zipimport._read_directory(sys.executable)
del sys.modules['_spy_zipdir']
print('stdlib', len(fast) > 1000 and fast == slow, type(fast).__name__, type(slow).__name__)
print('answers', list(fast) == list(slow), len(fast) == len(slow), fast.keys() == slow.keys(),
      all(k in fast and fast[k] == v and fast.get(k) == v for k, v in slow.items()),
      'nope' not in fast, fast.get('nope', 1), fast.get(b'encodings/'), '\udcff' in fast)
try:
    fast['nope']
except KeyError as e:
    print('missing', e)
try:
    fast[(1, 2)]
except KeyError as e:
    print('tuple key', e.args == ((1, 2),))
blocks = sys.getallocatedblocks()
again = zipimport._read_directory(sys.executable)
print('lazy', sys.getallocatedblocks() - blocks < 50)
import random, warnings
random.seed(0)
def read(path, with_c):
    if not with_c:
        sys.modules['_spy_zipdir'] = None
    try:
        files = zipimport._read_directory(path)
        return 'ok', len(files), list(files), [files[k] for k in files]
    except Exception as e:  # zipimport's Python code lets UnicodeDecodeError out, for one
        return 'error', type(e).__name__, str(e)
    finally:
        sys.modules.pop('_spy_zipdir', None)
d0 = tempfile.mkdtemp()
z0 = os.path.join(d0, 'fuzz.zip')
with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # zipfile warns of the repeated name
    with zipfile.ZipFile(z0, 'w') as f:
        for i in range(40):
            f.writestr(f'p{i % 3}/m{i}.py', 'x' * i)
        f.writestr('p1/m1.py', 'again')
        f.writestr('p2/', '')
clean = open(z0, 'rb').read()
start = clean.index(b'PK\x01\x02')
same = 0
for trial in range(300):
    data = bytearray(clean)
    for _ in range(random.randint(1, 6)):
        data[random.randrange(start, len(data) - 22)] = random.randrange(256)
    open(z0, 'wb').write(data)
    same += read(z0, True) == read(z0, False)
print('damaged', same)
d = tempfile.mkdtemp()
z = os.path.join(d, 'names.zip')
with zipfile.ZipFile(z, 'w') as f:
    f.writestr('plain.py', 'x = 1')
    f.writestr('cafX.py', 'y = 2')
data = open(z, 'rb').read().replace(b'cafX', b'caf\x82')  # no UTF-8 flag: cp437
open(z, 'wb').write(data)
print('cp437', sorted(zipimport._read_directory(z)))
central = data.rindex(b'PK\x01\x02')
bad = data[:central + 42] + b'\xff\xff\xff\x7f' + data[central + 46:]
open(z, 'wb').write(bad)
try:
    zipimport._read_directory(z)
    print('offset accepted')
except zipimport.ZipImportError as e:
    print('offset', str(e).split(':')[0])
"#;
    let o = Command::new(&bin).args(["-c", probe]).output().unwrap();
    assert_eq!(
        common::ok(&o),
        "stdlib True Directory dict\nanswers True True True True True 1 None False\n\
         missing 'nope'\ntuple key True\nlazy True\ndamaged 300\n\
         cp437 ['caf\u{e9}.py', 'plain.py']\noffset bad local header offset\n",
        "{}",
        py.node
    );
}

/// zipimport reads each member with one positional read of the archive it opens for that read
/// (spy-solid-zip.patch), as upstream opens it, or, for the single file's own ZIP, through a
/// mapping of the whole file: no descriptor stays open on the ZIP (a child interpreter has none
/// that upstream's test_subprocess would see), a program that closes every descriptor (a daemon's
/// `os.closerange`) and opens others still imports from the ZIP, after
/// `importlib.invalidate_caches()` too, and `get_data` on a compiled module gives bytes (zipimport
/// itself reads it as a view). A file put in the place of the running one is read, not mapped.
fn zipimport_keeps_no_descriptor_and_survives_closerange(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let probe = r#"
import importlib, os, subprocess, sys, zipimport
import selectors  # read from the ZIP
def zip_fds():
    return [fd for fd in map(int, os.listdir('/proc/self/fd'))
            if os.path.realpath('/proc/self/fd/%d' % fd) == os.path.realpath(sys.executable)]
print(len(zip_fds()))
child = subprocess.run(['/bin/ls', '-l', '/proc/self/fd'], capture_output=True, text=True).stdout
print(os.path.realpath(sys.executable) in child)
os.closerange(3, 1024)
pipes = [os.pipe() for _ in range(4)]  # the freed numbers, the ZIP's among them
import tarfile, csv, gettext  # cold modules, from zstd blocks
print(tarfile.TarFile.__name__, csv.excel.delimiter, len(zip_fds()))
importlib.invalidate_caches()
import statistics
print(statistics.median([1, 3, 5]))
mapped = zipimport._spy_map
print(mapped[0] == sys._stdlib_dir, len(mapped[2]) == os.path.getsize(sys._stdlib_dir))
imp = zipimport.zipimporter(sys.executable)
print(type(imp.get_data(sys.executable + '/tarfile.pyc')).__name__)
import tempfile, zipfile  # another ZIP on sys.path: the same
other = os.path.join(tempfile.mkdtemp(), 'other.zip')
with zipfile.ZipFile(other, 'w') as z:
    z.writestr('spy_other.py', 'V = 1\n')
sys.path.insert(0, other)
import spy_other
print(spy_other.V, [fd for fd in os.listdir('/proc/self/fd') if os.path.realpath('/proc/self/fd/' + fd) == other])
"#;
    let o = Command::new(&bin).args(["-c", probe]).output().unwrap();
    assert_eq!(common::ok(&o), "0\nFalse\nTarFile , 0\n3\nTrue True\nbytes\n1 []\n", "{}", py.node);

    // Another file (here a copy) renamed over the running executable: a new inode, which nothing
    // keeps anyone from truncating, so it is read with pread once its directory is read again.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(bin.file_name().unwrap());
    std::fs::copy(&bin, &copy).unwrap();
    let replaced = r#"
import importlib, os, shutil, sys, zipimport
import selectors
print(zipimport._spy_map[0] == sys._stdlib_dir)
shutil.copyfile(sys.executable, sys.executable + '.new')
os.rename(sys.executable + '.new', sys.executable)
importlib.invalidate_caches()
import tarfile
print(zipimport._spy_map[0], tarfile.TarFile.__name__)
"#;
    let o = Command::new(&copy).args(["-c", replaced]).output().unwrap();
    assert_eq!(common::ok(&o), "True\nNone TarFile\n", "{}", py.node);

    // The same before anything was read through the mapping (3.13's start-up reads nothing from
    // the ZIP), then that other file truncated: it is not the running executable, so it was never
    // mapped, and a read past its end is an error, not a SIGBUS.
    std::fs::copy(&bin, &copy).unwrap();
    // Only frozen and built-in modules before the rename (shutil would come from the ZIP).
    let truncated = r#"
import os, sys
with open(sys.executable, 'rb') as src, open(sys.executable + '.new', 'wb') as dst:
    dst.write(src.read())
os.rename(sys.executable + '.new', sys.executable)
import json, zipimport
print(json.dumps([1]), 'mapped' if zipimport._spy_map[0] else 'read')
os.truncate(sys.executable, 0)
try:
    import tarfile, csv, gettext
except (ImportError, EOFError):  # upstream's zipimport says EOFError for a cut local header
    pass
print('survived')
"#;
    // 3.11 reads its encodings from the ZIP at start-up: the running file was mapped by then.
    let how = if py.version.starts_with("3.11") { "mapped" } else { "read" };
    let o = Command::new(&copy).args(["-c", truncated]).output().unwrap();
    assert_eq!(common::ok(&o), format!("[1] {how}\nsurvived\n"), "{}", py.node);
}

/// What `-c pass` imports beyond upstream's start-up (issue 19): not `_struct` (the directory of
/// the stdlib ZIP comes from `_spy_zipdir`), and in 3.13 the encodings start-up needs and
/// linecache are frozen, not read from the ZIP; a codec that is not frozen still comes from it.
/// And each module imported from the ZIP is unmarshalled once (zipimport's get_filename, which
/// the spec asks for, loaded the code that get_code then loaded again).
fn start_up_imports_only_what_it_needs(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let probe = "import sys\n\
        print('_struct' in sys.modules, sys.modules['encodings'].__spec__.origin, sys.modules.get('linecache') and sys.modules['linecache'].__spec__.origin)\n\
        import encodings.cp437\nprint(type(encodings.cp437.__loader__).__name__)\n\
        import marshal\nreal, calls = marshal.loads, []\nmarshal.loads = lambda data: calls.append(1) or real(data)\n\
        before = set(sys.modules)\nimport json.tool, email.parser\n\
        loaded = [m for m in set(sys.modules) - before if type(sys.modules[m].__loader__).__name__ == 'zipimporter']\n\
        print('unmarshalled', len(calls) == len(loaded) > 5)";
    let o = Command::new(&bin).args(["-c", probe]).output().unwrap();
    let expected = if py.version.starts_with("3.13") {
        "False frozen frozen\nzipimporter\nunmarshalled True\n".to_string()
    } else {
        // 3.11 imports no linecache at start-up, and its encodings come from the ZIP.
        format!(
            "False {}/encodings/__init__.pyc None\nzipimporter\nunmarshalled True\n",
            bin.display()
        )
    };
    let text = common::ok(&o);
    assert!(text.starts_with(&expected), "{}: {text}", py.node);
}

/// Reads every member of a release's ZIP with the release itself, checking each against its
/// CRC-32: solid ones (in zstd blocks, spy-fuse's zipout.rs) through its zipimport, the rest
/// through zipfile; the blocks themselves (ZIP method 93, which zipfile cannot read before 3.14,
/// and spy's LZ4 blocks, 0x704c) are read through their members. Returns how many were solid.
fn members_read_back(bin: &Path) -> usize {
    let probe = "import sys, zipfile, zipimport, zlib\n\
        z = zipfile.ZipFile(sys.executable)\n\
        importer = zipimport.zipimporter(sys.executable)\n\
        solid = 0\n\
        for i in z.infolist():\n\
        \x20   if i.filename.endswith('/') or i.compress_type in (93, 0x704c): continue\n\
        \x20   if i.compress_type == 0x7053:\n\
        \x20       data = importer.get_data(i.filename); solid += 1\n\
        \x20   else:\n\
        \x20       data = z.read(i.filename)\n\
        \x20   assert zlib.crc32(data) & 0xffffffff == i.CRC and len(data) == i.file_size, i.filename\n\
        print(solid)";
    let o = Command::new(bin).args(["-c", probe]).output().unwrap();
    common::ok(&o).trim().parse().unwrap()
}

/// Cold imports from the zstd blocks (releases-3.toml's `solid-zstd`): modules from many blocks,
/// one after another and back (the block kept changes each time), then the import set.
fn cold_imports_read_zstd_blocks(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    cold_imports_read_zstd_blocks_of(&bin);
}

fn cold_imports_read_zstd_blocks_of(bin: &Path) {
    let probe = "import argparse, csv, logging.handlers, sqlite3, tarfile, tomllib, unittest, xml.dom.minidom, zipfile\n\
        import asyncio, email.parser, http.client, json, decimal\n\
        print(type(argparse.__loader__).__name__, argparse.ArgumentParser(prog='p').prog, csv.excel.delimiter)";
    let o = Command::new(bin).args(["-c", probe]).output().unwrap();
    assert_eq!(common::ok(&o), "zipimporter p ,\n");
}

/// Every module start-up and the import set of issue 19 read from the ZIP is a hot member
/// (`hot` in graph/python/releases-3.toml), written as the manifest says: stored (inflating them
/// cost a quarter of the import set's time), or with `solid-lz4-zstd` in LZ4 blocks (each decoded
/// once). The other compiled modules are in zstd blocks, asyncio's Windows event loops among them.
fn import_set_reads_hot_members(py: &Py, t: &Target) {
    let (_, out, _) = realize(py, t);
    import_set_reads_hot_members_of(&out);
}

/// Python (2 and 3) defining `how(name)`: how the member `name` of the ZIP `z` is written, its
/// method, or for a member of a block (0x7053) its block's.
const HOW_WRITTEN: &str = r#"def how(name):
    i = z.getinfo(name)
    if i.compress_type != 0x7053:
        return {0: 'stored', 8: 'deflated'}[i.compress_type]
    z.fp.seek(i.header_offset); h = z.fp.read(30)
    n, e = struct.unpack('<HH', h[26:30]); z.fp.seek(i.header_offset + 30 + n)
    back = struct.unpack('<I', z.fp.read(e)[4:8])[0]
    z.fp.seek(i.header_offset - back); b = z.fp.read(30)
    return {93: 'zstd', 0x704c: 'lz4'}[struct.unpack('<H', b[8:10])[0]]
"#;

fn import_set_reads_hot_members_of(out: &Path) {
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let bin = out.join(manifest["binary"]["path"].as_str().unwrap());
    let written = manifest["binary"]["stdlib_zip"]["hot"]["written"].as_str().unwrap();
    let expected = match written {
        "stored" => "stored",
        "LZ4 blocks" => "lz4",
        w => panic!("hot members written as {w}"),
    };
    let probe = format!(
        r#"
import struct, sys
import asyncio, email.parser, http.client, json, decimal
read = sorted(m.__spec__.origin.split(sys.executable + '/', 1)[1] for m in list(sys.modules.values())
              if type(getattr(m, '__loader__', None)).__name__ == 'zipimporter')
import zipfile
z = zipfile.ZipFile(sys.executable)
{HOW_WRITTEN}print(len(read) > 100, sorted(set(how(name) for name in read)))
print(how('asyncio/windows_events.pyc'))
"#
    );
    let o = Command::new(&bin).args(["-c", &probe]).output().unwrap();
    assert_eq!(common::ok(&o), format!("True ['{expected}']\nzstd\n"), "{}", bin.display());
}

/// The frozen modules start-up runs are deep-frozen (issue 19): static code objects, not marshal
/// data unmarshalled at each start (3.11 upstream; 3.13 by python3.13-deepfreeze.patch). In 3.13
/// each equals, nested code objects included, what its marshal data (which `_imp` still exposes;
/// 3.11 keeps none) unmarshals to; the one difference, upstream 3.11's too, is a frozenset
/// constant kept as a tuple of its items (`x in {...}` on hashable `x` alike). A 3.13 subinterpreter unmarshals them instead
/// (classes are numbered per interpreter there, and specialized code remembers those numbers).
fn frozen_start_up_modules_are_deep_frozen(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let probe = r#"
import _imp, marshal, sys, types
ATTRS = ('co_name', 'co_qualname', 'co_filename', 'co_argcount', 'co_posonlyargcount',
         'co_kwonlyargcount', 'co_nlocals', 'co_stacksize', 'co_flags', 'co_firstlineno',
         'co_code', 'co_names', 'co_varnames', 'co_cellvars', 'co_freevars', 'co_linetable',
         'co_exceptiontable')
def differs(a, b, where):
    for attr in ATTRS:
        if getattr(a, attr) != getattr(b, attr):
            return where + '.' + attr
    if len(a.co_consts) != len(b.co_consts):
        return where + ' co_consts'
    for i, (x, y) in enumerate(zip(a.co_consts, b.co_consts)):
        if isinstance(y, types.CodeType):
            if not isinstance(x, types.CodeType):
                return where + ' const %d' % i
            d = differs(x, y, where + '/' + y.co_name)
            if d:
                return d
        elif isinstance(y, frozenset):
            if x != y and not (type(x) is tuple and frozenset(x) == y and len(x) == len(y)):
                return where + ' const %d' % i
        elif type(x) is not type(y) or (x != y and x == x):
            return where + ' const %d' % i
    return None
names = [n for n in _imp._frozen_module_names() if not n.startswith(('__hello', '__phello')) and n != 'os.path']
bad = []
for n in names:
    code = _imp.get_frozen_object(n)
    if code is not _imp.get_frozen_object(n):
        bad.append(n + ' unmarshalled')
    data = _imp.find_frozen(n, withdata=True)[0]
    # 3.11 keeps no marshal data for a deep-frozen module (an empty view).
    d = len(data) > 0 and differs(code, marshal.loads(data), n)
    if d:
        bad.append(d)
print(len(names) >= 17, 'os' in names and 'site' in names, bad)
if sys.version_info >= (3, 13):
    import _interpreters
    sub = _interpreters.create()
    print(_interpreters.exec(sub, 'import _imp\nassert _imp.get_frozen_object("os") is not _imp.get_frozen_object("os")\nimport json, asyncio\nassert json.dumps([1]) == "[1]"'))
    _interpreters.destroy(sub)
else:
    print(None)
"#;
    let o = Command::new(&bin).args(["-c", probe]).output().unwrap();
    assert_eq!(common::ok(&o), "True True []\nNone\n", "{}", py.node);
}

/// The stdlib in the ZIP is compiled without the columns of PEP 657 (no traceback through it can
/// show carets: the single file has no sources), code compiled at run time keeps them, and a
/// traceback through the stdlib still names its file and line.
fn stdlib_code_has_no_column_positions(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let probe = "import json, traceback\n\
        print({p[2:] for p in json.decoder.JSONDecoder.raw_decode.__code__.co_positions()})\n\
        print(all(p[2] is not None for p in compile('x = 1 + 2', 's', 'exec').co_positions()))\n\
        try:\n    json.loads('{')\nexcept ValueError as e:\n    print(traceback.extract_tb(e.__traceback__)[-1][1] > 0)";
    let o = Command::new(&bin).args(["-c", probe]).output().unwrap();
    assert_eq!(common::ok(&o), "{(None, None)}\nTrue\nTrue\n", "{}", py.node);
}

/// Recursion through C code (repr, json, pickle, deepcopy of a 100,000-deep list) stops with
/// RecursionError (2.7: RuntimeError) at the default limits, in the main thread and in others:
/// musl gives threads 128 KiB of stack unless told otherwise, and 3.12's C recursion limit
/// (10,000) needs the 8 MiB glibc gives them (a 1 MiB stack crashed 3.13 in `repr`).
fn deep_recursion_raises_in_threads(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let probe = r#"
import copy, json, pickle, sys, threading
error = RecursionError if sys.version_info[0] > 2 else RuntimeError
deep = []
cur = deep
for _ in range(100000):
    nxt = []
    cur.append(nxt)
    cur = nxt
seen = []
def each():
    for f in (repr, json.dumps, pickle.dumps, copy.deepcopy):
        try:
            f(deep)
            seen.append(f.__name__ + " returned")
        except error:
            seen.append("ok")
each()
t = threading.Thread(target=each)
t.start()
t.join()
print(" ".join(seen))
"#;
    let o = Command::new(&bin).args(["-c", probe]).output().unwrap();
    assert_eq!(common::ok(&o).trim(), ["ok"; 8].join(" "));
}

/// SQLite has the compile-time options of the host's (Debian's) SQLite, but for those a static
/// binary cannot or need not have (graph/libs/sqlite.toml), and they work.
fn sqlite_has_debians_options(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let options = "import sqlite3\nprint(' '.join(r[0] for r in sqlite3.connect(':memory:').execute('pragma compile_options')))";
    let host = common::ok(&Command::new("/usr/bin/python3").args(["-c", options]).output().unwrap());
    let ours = common::ok(&Command::new(&bin).args(["-c", options]).output().unwrap());
    let ours: Vec<&str> = ours.split_whitespace().collect();
    for opt in host
        .split_whitespace()
        .filter(|o| o.starts_with("ENABLE_") || *o == "SECURE_DELETE" || *o == "SOUNDEX")
    {
        if ["ENABLE_SESSION", "ENABLE_PREUPDATE_HOOK", "ENABLE_LOAD_EXTENSION"].contains(&opt) {
            continue;
        }
        assert!(ours.contains(&opt), "{opt} is in the host's SQLite, not in ours: {ours:?}");
    }
    let work = "import sqlite3\ndb = sqlite3.connect(':memory:')\n\
        db.execute('create virtual table f using fts5(body)'); db.execute(\"insert into f values ('static single file python')\")\n\
        db.execute('create virtual table f4 using fts4(body)')\n\
        db.execute('create virtual table r using rtree(id, x0, x1)'); db.execute('insert into r values (1, 0, 10)')\n\
        print('%d %d %r' % (db.execute(\"select count(*) from f where f match 'single'\").fetchone()[0], db.execute('select id from r where x0 < 5').fetchone()[0],\n\
        db.execute(\"select json_extract('{\\\"a\\\": 7}', '$.a'), sqrt(16)\").fetchone()))";
    assert_eq!(
        common::ok(&Command::new(&bin).args(["-c", work]).output().unwrap()).trim(),
        "1 1 (7, 4.0)"
    );
}

/// With `--py-sources` the stdlib's sources are in the ZIP: a traceback through `json` shows the
/// line that raised, alone in an empty root, and `inspect.getsource` works; without, neither.
fn sources_show_in_tracebacks(py: &Py, t: &Target) {
    let release = format!("{}-{}", py.node, t.short);
    let with = common::realize_real_with(&release, &[], &["--py-sources"])
        .join("bin")
        .join(&release);
    let (without, _, _) = realize(py, t);
    let probe = "import json, inspect, sys\ntry:\n    json.loads('{')\nexcept ValueError:\n    import traceback; traceback.print_exc(file=sys.stdout)\n\
        try:\n    print(len(inspect.getsource(json.loads)) > 100)\nexcept (OSError, IOError, TypeError):\n    print('no source')";
    let run = |bin: &Path| {
        let root = empty_root(bin, &release, &[]);
        common::ok(&common::run_in_root(root.path(), &[], &[&format!("/{release}"), "-c", probe]))
    };
    // The line under the frame in json/decoder.py: its source line, if the traceback has one.
    let source_line = |text: &str| -> Option<String> {
        let mut lines = text
            .lines()
            .skip_while(|l| !(l.trim_start().starts_with("File ") && l.contains("decoder.py")));
        lines.next()?;
        lines
            .next()
            .filter(|l| l.starts_with("    ") && !l.trim_start().starts_with("File "))
            .map(str::to_string)
    };
    let text = run(&with);
    assert!(source_line(&text).is_some(), "{text}");
    assert!(text.trim_end().ends_with("True"), "{text}");
    let text = run(&without);
    assert!(text.contains("decoder.py") && source_line(&text).is_none(), "{text}");
    assert!(text.trim_end().ends_with("no source"), "{text}");
    let (a, b) = (std::fs::metadata(&with).unwrap().len(), std::fs::metadata(&without).unwrap().len());
    eprintln!("{release}: {b} bytes, with sources {a} (+{:.1} MB)", (a - b) as f64 / 1e6);
}

/// With overlays/libedit.toml the readline module is libedit's: the manifest has libedit
/// (BSD-3-Clause) and no GNU readline, and the prompt edits a line in an empty root.
fn libedit_replaces_readline(py: &Py, t: &Target) {
    let overlay = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlays/libedit.toml");
    let release = format!("{}-{}", py.node, t.short);
    let out = common::realize_real(&release, &[&overlay]);
    let bin = out.join("bin").join(&release);
    common::manifest_says_libedit_not_readline(&out);
    let o = Command::new(&bin)
        .args([
            "-c",
            "import readline; print('libedit' in (readline.__doc__ or '') or getattr(readline, 'backend', '') == 'editline')",
        ])
        .output()
        .unwrap();
    assert_eq!(common::ok(&o).trim(), "True");
    let root = empty_root(&bin, &release, &[]);
    let pty = common::PtySession::start_in_root(&format!("{release}-libedit"), root.path(), &format!("/{release}"), 12);
    edit_a_line(&pty);
}

/// The tests from CPython's own `Lib/test` (shipped in the cpython3.11 entry, not in the binary)
/// run by the single-file binary, workers included (`-j2` starts it again as subprocesses).
fn passes_a_cpython_test_subset(py: &Py, t: &Target) {
    // The test-only variant, where there is one: the same graph with CPython's test modules
    // (_testcapi...) built in (overlays/cpython-test-modules.toml).
    let overlay = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlays/cpython-test-modules.toml");
    let overlays: Vec<&Path> = if py.test_variant { vec![&overlay] } else { vec![] };
    let release = format!("{}-{}", py.node, t.short);
    let bin = common::realize_real(&release, &overlays).join("bin").join(&release);
    let cpython = common::realize_real(&format!("{}-{}", py.interpreter, t.short), &overlays);
    let tests_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(cpython.join("lib").join(py.stdlib).join("test"), tests_dir.path().join("test")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut c = Command::new(&bin);
    // --timeout (3.x): a hung test fails the run instead of the CI clock. (test_socket is left out:
    // its AF_VSOCK cases wait forever for a peer on virtual machines that have vsock.)
    c.args(["-m", "test.regrtest", "-j2"]);
    if py.version.starts_with('3') {
        c.args(["-q", "-u", "none", "--timeout", "600"]);
    }
    for case in py.ignored_cases {
        c.args(["-i", case]);
    }
    let o = c
        .args(py.tests)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", work.path())
        .env("PYTHONPATH", tests_dir.path())
        .current_dir(work.path())
        .output()
        .unwrap();
    let text = common::ok(&o);
    let passed = if py.version.starts_with('3') {
        text.contains("Tests result: SUCCESS")
    } else {
        text.contains(&format!("{} tests OK.", py.tests.len())) || text.contains("All ") && text.contains(" tests OK.")
    };
    assert!(passed, "{text}");
}

/// unicodedata's database and the CJK codecs' mappings, inflated on first import, as upstream's
/// tests expect them ([`common::lazy_tables_inflate_as_upstream`]).
fn lazy_tables_inflate_as_upstream(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let cpython = common::realize_real(&format!("{}-{}", py.interpreter, t.short), &[]);
    common::lazy_tables_inflate_as_upstream(&bin, &cpython.join("lib").join(py.stdlib).join("test"));
}

/// SQLite's code stays compressed until `sqlite3` is imported (graph/python/pyext/lazy-code.json),
/// and readline's and expat's stay sealed after that import.
fn lazy_code_inflates_on_import(py: &Py, t: &Target) {
    let (bin, _, _) = realize(py, t);
    let probe = "import sqlite3\nprint('ok' if sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0] == 42 else 'wrong')";
    common::lazy_code_inflates_on_import(&bin, probe);
}

/// The checks for one Python on one target, as a module of tests (`python3_11_x86_64::...`).
macro_rules! checks {
    ($module:ident, $py:ident, $target:ident $(, #[$attr:meta])?) => {
        mod $module {
            use super::*;
            #[test] $(#[$attr])?
            fn single_file_is_static_with_a_manifest() {
                super::single_file_is_static_with_a_manifest(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn runs_alone_in_an_empty_root() {
                super::runs_alone_in_an_empty_root(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn finds_itself_with_an_empty_argv0() {
                super::finds_itself_with_an_empty_argv0(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn finds_each_distributions_ca_bundle() {
                super::finds_each_distributions_ca_bundle(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn prompt_edits_a_line_without_terminfo() {
                super::prompt_edits_a_line_without_terminfo(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn passes_a_cpython_test_subset() {
                super::passes_a_cpython_test_subset(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn lazy_code_inflates_on_import() {
                super::lazy_code_inflates_on_import(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn lazy_tables_inflate_as_upstream() {
                super::lazy_tables_inflate_as_upstream(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn curses_reads_the_machines_terminfo() {
                super::curses_reads_the_machines_terminfo(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn stdlib_data_is_in_the_zip() {
                super::stdlib_data_is_in_the_zip(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn sqlite_has_debians_options() {
                super::sqlite_has_debians_options(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn sources_show_in_tracebacks() {
                super::sources_show_in_tracebacks(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn venv_and_pip_install_a_wheel() {
                super::venv_and_pip_install_a_wheel(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn deep_recursion_raises_in_threads() {
                super::deep_recursion_raises_in_threads(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn tls_time_and_trace_as_upstream() {
                let (bin, _, _) = super::realize(&$py, &$target);
                common::tls_time_and_trace_as_upstream(&bin);
            }
        }
    };
}

checks!(python3_13_x86_64, PY313, X86_64);

/// The checks only CPython 3 has a subject for (zoneinfo; zipimport in Python, with its
/// directory parsed in C), per Python and target (`python3_13_x86_64_py3::...`).
macro_rules! checks3 {
    ($module:ident, $py:ident, $target:ident $(, #[$attr:meta])?) => {
        mod $module {
            use super::*;
            #[test] $(#[$attr])?
            fn zoneinfo_works_in_an_empty_root() {
                super::zoneinfo_works_in_an_empty_root(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn zip_directory_parsed_in_c_as_in_python() {
                super::zip_directory_parsed_in_c_as_in_python(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn zipimport_keeps_no_descriptor_and_survives_closerange() {
                super::zipimport_keeps_no_descriptor_and_survives_closerange(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn start_up_imports_only_what_it_needs() {
                super::start_up_imports_only_what_it_needs(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn import_set_reads_hot_members() {
                super::import_set_reads_hot_members(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn frozen_start_up_modules_are_deep_frozen() {
                super::frozen_start_up_modules_are_deep_frozen(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn stdlib_code_has_no_column_positions() {
                super::stdlib_code_has_no_column_positions(&$py, &$target);
            }
            #[test] $(#[$attr])?
            fn cold_imports_read_zstd_blocks() {
                super::cold_imports_read_zstd_blocks(&$py, &$target);
            }
        }
    };
}
checks3!(python3_13_x86_64_py3, PY313, X86_64);

/// python3.13 fused with its hot modules in LZ4 blocks (`solid-lz4-zstd`, python3.11's setting,
/// which CI does not build) and its zstd blocks sharing a dictionary (`dictionary`, Python 2.7's):
/// the interpreter reads them (Modules/_spy_lz4.c, _spy_zstd.c), and they are where the fuse step
/// put them. A fuse node of its own, over the same interpreter.
#[test]
fn python3_13_x86_64_reads_lz4_blocks_and_a_zstd_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("lz4.toml");
    std::fs::write(
        &overlay,
        "[nodes.\"python3.13\".fuse]\ncompression = \"solid-lz4-zstd\"\ndictionary = true\n",
    )
    .unwrap();
    let out = common::realize_real("python3.13-x86_64", &[&overlay]);
    import_set_reads_hot_members_of(&out);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["binary"]["stdlib_zip"]["dictionary"], true);
    let bin = out.join(manifest["binary"]["path"].as_str().unwrap());
    assert!(members_read_back(&bin) > 400, "modules in zstd blocks");
    cold_imports_read_zstd_blocks_of(&bin);
}

/// Python 2.7's hot modules (releases-2.7.toml's `hot`: start-up's and a common import set's)
/// come from LZ4 blocks and the other compiled modules from zstd blocks sharing a dictionary, all
/// read by its C zipimport (python2.7-solid-zip.patch).
#[test]
fn python2_7_x86_64_reads_hot_modules_from_lz4_blocks() {
    let (bin, out, _) = realize(&PY27, &X86_64);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["binary"]["stdlib_zip"]["dictionary"], true);
    let probe = format!(
        r#"
import struct, sys
import socket, threading, json, email.parser, httplib, decimal
prefix = sys.executable + '/'
# Modules only: email's lazy importers of its 2.x names would import what they stand for.
read = sorted(m.__file__[len(prefix):] for m in list(sys.modules.values())
              if type(m).__name__ == 'module' and type(getattr(m, '__loader__', None)).__name__ == 'zipimporter')
import zipfile
z = zipfile.ZipFile(sys.executable)
{HOW_WRITTEN}print len(read) > 60, sorted(set(how(name) for name in read))
import asyncore, zipimport
print how('asyncore.pyc'), type(asyncore.__loader__).__name__
try:
    zipfile.ZipFile(sys.executable).read('asyncore.pyc')
except NotImplementedError:
    print 'zipfile refuses it'
"#
    );
    let o = Command::new(&bin).args(["-c", &probe]).output().unwrap();
    assert_eq!(common::ok(&o), "True ['lz4']\nzstd zipimporter\nzipfile refuses it\n");
}

/// `spy realize --with` ([`common::with_compiles_a_c_extension_sdist`]).
#[test]
fn python3_13_x86_64_with_compiles_a_c_extension_sdist() {
    common::with_compiles_a_c_extension_sdist("python3.13-x86_64", "py3.13", "3.13", None);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python2_7_x86_64_with_compiles_a_c_extension_sdist() {
    common::with_compiles_a_c_extension_sdist("python2.7-x86_64", "py2.7", "2.7", None);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python3_13_i686_with_compiles_a_c_extension_sdist() {
    common::with_compiles_a_c_extension_sdist("python3.13-i686", "py3.13", "3.13", None);
}

// Another profile-guided CPython 3.13 build (its readline module is compiled into libpython):
// tests/e2e/run, to keep CI's cold run under an hour.
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python3_13_x86_64_libedit_replaces_readline() {
    libedit_replaces_readline(&PY313, &X86_64);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python3_11_x86_64_libedit_replaces_readline() {
    libedit_replaces_readline(&PY311, &X86_64);
}
checks3!(python3_13_i686_py3, PY313, I686, #[ignore = "e2e: tests/e2e/run"]);
checks3!(python3_11_x86_64_py3, PY311, X86_64, #[ignore = "e2e: tests/e2e/run"]);
checks3!(python3_11_i686_py3, PY311, I686, #[ignore = "e2e: tests/e2e/run"]);
checks!(python3_13_i686, PY313, I686, #[ignore = "e2e: tests/e2e/run"]);
checks!(python3_11_x86_64, PY311, X86_64, #[ignore = "e2e: tests/e2e/run"]);
checks!(python3_11_i686, PY311, I686, #[ignore = "e2e: tests/e2e/run"]);
checks!(python2_7_x86_64, PY27, X86_64);
checks!(python2_7_i686, PY27, I686, #[ignore = "e2e: tests/e2e/run"]);

/// 3.11 is upstream 3.11.2 with Debian 12's security fixes and the tarfile extraction filter: the
/// two findings of the issue that asked for them, and the manifest naming each patch applied.
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python3_11_x86_64_has_the_security_fixes_of_later_releases() {
    let (bin, out, _) = realize(&PY311, &X86_64);
    let probe = r#"
import tarfile, io, os, tempfile
from urllib.parse import urlsplit
# CVE-2023-24329: leading blanks no longer hide the scheme (and so bypass a blocklist).
assert urlsplit(" https://x/").scheme == "https", urlsplit(" https://x/")
# PEP 706: the 'data' filter refuses a member outside the destination.
data = io.BytesIO()
with tarfile.open(fileobj=data, mode="w") as tar:
    info = tarfile.TarInfo("../evil"); info.size = 4
    tar.addfile(info, io.BytesIO(b"evil"))
data.seek(0)
with tempfile.TemporaryDirectory() as d, tarfile.open(fileobj=data) as tar:
    try:
        tar.extractall(os.path.join(d, "x"), filter="data")
    except tarfile.OutsideDestinationError:
        print("refused")
    assert not os.path.exists(os.path.join(d, "evil"))
"#;
    let o = std::process::Command::new(&bin).args(["-c", probe]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "refused");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let cpython = manifest["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cpython3.11")
        .unwrap();
    let patches: Vec<&str> = cpython["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "CVE-2023-24329-strip-control-chars-urlsplit.patch",
        "CVE-2026-4519-3.patch",
        "python3.11-tarfile-filter.patch",
    ] {
        assert!(patches.contains(&p), "{p} not in {patches:?}");
    }
    for p in &cpython["patches"].as_array().unwrap()[..] {
        assert_eq!(p["blake3"].as_str().unwrap().len(), 64, "{p}");
    }
}
