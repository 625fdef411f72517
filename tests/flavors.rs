//! Flavors with built-in packages from sdists (graph/python/flavors.toml, graph/python/packages):
//! the co flavor of 2.7 — greenlet, gevent on libevent, PyCrypto compiled into the interpreter —
//! run alone in an empty root; psutil added to any flavor by `overlays/psutil.toml`; and a flavor
//! whose source cannot be obtained stopping before any build. The stackless flavors themselves are
//! tested in tests/stackless.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn release(node: &str, overlays: &[&Path]) -> (PathBuf, serde_json::Value) {
    let out = common::realize_real(node, overlays);
    let m = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    (out.join("bin").join(node), m)
}

/// greenlet, gevent (1,000 greenlets, a TCP echo over 127.0.0.1, TLS over a socket pair) and AES,
/// all from the single file. Python 2 and 3 syntax.
const CO_PROBE: &str = r#"
import sys
import greenlet, gevent, gevent.socket, gevent.ssl
from gevent import socket
main = greenlet.getcurrent()
def child(x):
    return main.switch(x + 1) * 2
g = greenlet.greenlet(child)
assert g.switch(1) == 2 and g.switch(5) == 10 and g.dead
done = []
gevent.joinall([gevent.spawn(done.append, i) for i in range(1000)])
assert sorted(done) == list(range(1000))
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(5)
def echo():
    c, _ = srv.accept()
    c.sendall(c.recv(100).upper())
    c.close()
server = gevent.spawn(echo)
cl = socket.create_connection(srv.getsockname())
cl.sendall(b"hello, gevent")
assert cl.recv(100) == b"HELLO, GEVENT"
server.join()
a, b = socket.socketpair()
def tls_server():
    s = gevent.ssl.wrap_socket(a, keyfile="/key.pem", certfile="/cert.pem", server_side=True)
    s.sendall(s.recv(100)[::-1])
tls = gevent.spawn(tls_server)
c = gevent.ssl.wrap_socket(b)
c.sendall(b"over tls")
assert c.recv(100) == b"slt revo"
tls.join()
from Crypto.Cipher import AES
key, iv = b"k" * 16, b"i" * 16
data = b"sixteen byte blk" * 3
enc = AES.new(key, AES.MODE_CBC, iv).encrypt(data)
assert enc != data and AES.new(key, AES.MODE_CBC, iv).decrypt(enc) == data
print("ok " + gevent.__version__ + " " + greenlet.__version__)
"#;

fn coroutines_tls_and_crypto_in_an_empty_root(node: &str, gevent: &str, greenlet: &str) {
    let (bin, _) = release(node, &[]);
    let root = common::root_with_certificate(&bin);
    let out = common::ok(&common::run_in_root(root.path(), &[], &["/python", "-c", CO_PROBE]));
    assert_eq!(out.trim(), format!("ok {gevent} {greenlet}"));
}

/// (component, version, license, one of its modules, whether that module is importable: a ctypes
/// library is linked in but not a module).
type Package<'a> = (&'a str, &'a str, &'a str, &'a str, bool);

fn manifest_lists_every_package(node: &str, packages: &[Package]) {
    let (_, m) = release(node, &[]);
    assert_eq!(m["flavor"], "co");
    let comps = m["components"].as_array().unwrap();
    let builtin = common::builtin_modules(&m);
    for &(name, version, license, module, importable) in packages {
        let c = comps
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no component {name}"));
        assert_eq!(
            (c["version"].as_str(), c["license"].as_str(), c["role"].as_str()),
            (Some(version), Some(license), Some("package")),
            "{c}"
        );
        assert!(c["modules"].as_array().unwrap().iter().any(|v| v == module), "{c}");
        assert_eq!(builtin.contains(&module), importable, "{module} among the built-in modules");
        assert_eq!(c["sources"][0]["sha256"].as_str().unwrap().len(), 64);
    }
    if node.contains("2.7") {
        assert!(comps.iter().any(|c| c["name"] == "libevent" && c["role"] == "linked"));
    }
}

/// `overlays/psutil.toml` on a flavor: with the host's /proc psutil sees this process; in an empty
/// root (no /proc) it raises a Python exception instead of crashing.
fn psutil_with_and_without_proc(node: &str) {
    let overlay = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("overlays/psutil.toml");
    let (bin, m) = release(node, &[&overlay]);
    assert!(m["components"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"].as_str().unwrap().starts_with("psutil-") && c["role"] == "package" && c["license"] == "BSD-3-Clause"));
    let o = Command::new(&bin)
        .args([
            "-c",
            "import os, psutil; assert psutil.Process().pid == os.getpid(); assert psutil.cpu_count() >= 1; print(psutil.__version__)",
        ])
        .output()
        .unwrap();
    common::ok(&o);
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&bin, root.path().join("python")).unwrap();
    let probe = "import psutil\ntry:\n    psutil.virtual_memory()\nexcept Exception as e:\n    print('raised ' + type(e).__name__)\n";
    let out = common::ok(&common::run_in_root(root.path(), &[], &["/python", "-c", probe]));
    assert!(out.starts_with("raised "), "{out}");
}

/// The C API through ctypes in a static interpreter (the symbol table spy-relink links in), and
/// pycryptodome's ctypes libraries found by their dotted names.
fn ctypes_finds_linked_in_symbols(node: &str, version: &str) {
    let (bin, _) = release(node, &[]);
    let probe = "import ctypes, sys\n\
        f = ctypes.pythonapi.Py_GetVersion\n\
        f.restype = ctypes.c_char_p\n\
        assert f().decode().split()[0] == sys.argv[1], f()\n\
        lib = ctypes.CDLL('Crypto.Cipher._raw_aes')\n\
        assert lib.AES_start_operation\n\
        try:\n    lib.no_such_symbol\nexcept AttributeError as e:\n    print('missing:', e)\n\
        try:\n    ctypes.CDLL('libnotlinked.so')\nexcept OSError as e:\n    print('not linked:', e)\n";
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&bin, root.path().join("python")).unwrap();
    let out = common::ok(&common::run_in_root(root.path(), &[], &["/python", "-c", probe, version]));
    assert!(
        out.contains("missing:") && out.contains("no_such_symbol") && out.contains("not linked:"),
        "{out}"
    );
}

/// A flavor as Python users know it: its prefix and pip (and venv, 3.x), every stdlib data file
/// in its ZIP (the checks of tests/python.rs, in tests/common).
fn prefix_pip_and_data(node: &str, stdlib: &str) {
    let (bin, _) = release(node, &[]);
    let out = bin.parent().unwrap().parent().unwrap().to_path_buf();
    let (flavor, short) = node.rsplit_once('-').unwrap();
    let interp = common::realize_real(&format!("{flavor}-interp-{short}"), &[]);
    common::stdlib_data_is_in_the_zip(&bin, &out, &interp.join("lib").join(stdlib), node);
    common::prefix_pip_and_venv(&bin, node, stdlib, stdlib == "python2.7");
    common::tls_time_and_trace_as_upstream(&bin);
}

mod pythonco2_7_x86_64 {
    #[test]
    fn prefix_pip_and_data() {
        super::prefix_pip_and_data("pythonco2.7-x86_64", "python2.7");
    }
    #[test]
    fn coroutines_tls_and_crypto_in_an_empty_root() {
        super::coroutines_tls_and_crypto_in_an_empty_root("pythonco2.7-x86_64", "0.13.8", "1.1.3");
    }
    #[test]
    fn manifest_lists_every_package() {
        super::manifest_lists_every_package(
            "pythonco2.7-x86_64",
            &[
                ("greenlet-py2.7", "1.1.3", "MIT AND PSF-2.0", "greenlet._greenlet", true),
                ("gevent-py2.7", "0.13.8", "MIT", "gevent.core", true),
                (
                    "pycrypto-py2.7",
                    "2.6.1",
                    "LicenseRef-PyCrypto-Public-Domain",
                    "Crypto.Cipher._AES",
                    true,
                ),
            ],
        );
    }
    #[test]
    fn psutil_with_and_without_proc() {
        super::psutil_with_and_without_proc("pythonco2.7-x86_64");
    }
}

mod pythonco2_7_i686 {
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn prefix_pip_and_data() {
        super::prefix_pip_and_data("pythonco2.7-i686", "python2.7");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn coroutines_tls_and_crypto_in_an_empty_root() {
        super::coroutines_tls_and_crypto_in_an_empty_root("pythonco2.7-i686", "0.13.8", "1.1.3");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn psutil_with_and_without_proc() {
        super::psutil_with_and_without_proc("pythonco2.7-i686");
    }
}

mod pythonco3_13_x86_64 {
    #[test]
    fn prefix_pip_and_data() {
        super::prefix_pip_and_data("pythonco3.13-x86_64", "python3.13");
    }
    #[test]
    fn coroutines_tls_and_crypto_in_an_empty_root() {
        super::coroutines_tls_and_crypto_in_an_empty_root("pythonco3.13-x86_64", "26.9.0", "3.5.6");
    }
    #[test]
    fn manifest_lists_every_package() {
        super::manifest_lists_every_package(
            "pythonco3.13-x86_64",
            &[
                ("greenlet-py3.13", "3.5.6", "MIT AND PSF-2.0", "greenlet._greenlet", true),
                ("gevent-py3.13", "26.9.0", "MIT", "gevent.libev.corecext", true),
                (
                    "zope.interface-py3.13",
                    "8.7",
                    "ZPL-2.1",
                    "zope.interface._zope_interface_coptimizations",
                    true,
                ),
                (
                    "pycryptodome-py3.13",
                    "4.4.0",
                    "BSD-2-Clause AND Unlicense",
                    "Crypto.Cipher._raw_aes",
                    false,
                ),
            ],
        );
    }
    #[test]
    fn ctypes_finds_linked_in_symbols() {
        super::ctypes_finds_linked_in_symbols("pythonco3.13-x86_64", "3.13.15");
    }
}

mod pythonco3_13_i686 {
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn prefix_pip_and_data() {
        super::prefix_pip_and_data("pythonco3.13-i686", "python3.13");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn coroutines_tls_and_crypto_in_an_empty_root() {
        super::coroutines_tls_and_crypto_in_an_empty_root("pythonco3.13-i686", "26.9.0", "3.5.6");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn ctypes_finds_linked_in_symbols() {
        super::ctypes_finds_linked_in_symbols("pythonco3.13-i686", "3.13.15");
    }
}

mod pythonco3_11_x86_64 {
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn prefix_pip_and_data() {
        super::prefix_pip_and_data("pythonco3.11-x86_64", "python3.11");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn coroutines_tls_and_crypto_in_an_empty_root() {
        super::coroutines_tls_and_crypto_in_an_empty_root("pythonco3.11-x86_64", "26.9.0", "3.5.6");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn manifest_lists_every_package() {
        super::manifest_lists_every_package(
            "pythonco3.11-x86_64",
            &[
                ("greenlet-py3.11", "3.5.6", "MIT AND PSF-2.0", "greenlet._greenlet", true),
                ("gevent-py3.11", "26.9.0", "MIT", "gevent.libev.corecext", true),
                (
                    "zope.interface-py3.11",
                    "8.7",
                    "ZPL-2.1",
                    "zope.interface._zope_interface_coptimizations",
                    true,
                ),
                (
                    "pycryptodome-py3.11",
                    "4.4.0",
                    "BSD-2-Clause AND Unlicense",
                    "Crypto.Cipher._raw_aes",
                    false,
                ),
            ],
        );
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn ctypes_finds_linked_in_symbols() {
        super::ctypes_finds_linked_in_symbols("pythonco3.11-x86_64", "3.11.2");
    }
}

mod pythonco3_11_i686 {
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn prefix_pip_and_data() {
        super::prefix_pip_and_data("pythonco3.11-i686", "python3.11");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn coroutines_tls_and_crypto_in_an_empty_root() {
        super::coroutines_tls_and_crypto_in_an_empty_root("pythonco3.11-i686", "26.9.0", "3.5.6");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn ctypes_finds_linked_in_symbols() {
        super::ctypes_finds_linked_in_symbols("pythonco3.11-i686", "3.11.2");
    }
}

mod python3_13_x86_64 {
    #[test]
    fn psutil_with_and_without_proc() {
        super::psutil_with_and_without_proc("python3.13-x86_64");
    }
}

mod python3_11_x86_64 {
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn psutil_with_and_without_proc() {
        super::psutil_with_and_without_proc("python3.11-x86_64");
    }
}

/// A git source that cannot be obtained anywhere (an overlay points slpython2.7 at a host under
/// `.invalid`, which never resolves, and at a commit no repository has): realize stops before
/// building anything, names the source, what it tried and how to supply it, and registers nothing.
/// Independent of the network: nothing can answer for that host.
#[test]
fn stacklessco2_7_without_its_source_fails_before_building() {
    let store = common::e2e_store();
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("nowhere.toml");
    let commit = "0badc0de".repeat(5);
    std::fs::write(
        &overlay,
        format!("[nodes.\"slpython2.7\"]\nsources = [{{ file = \"stackless-nowhere.tar\", git = {{ url = \"https://stackless.invalid/nowhere/stackless\", commit = \"{commit}\" }} }}]\n"),
    )
    .unwrap();
    let overlay = overlay.display().to_string();
    let o = common::spy_on_repo(
        &store,
        &["realize", "--no-out-link", "--overlay", &overlay, "stacklessco2.7-x86_64"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let pin = format!("https://stackless.invalid/nowhere/stackless at {commit}");
    for needle in [
        "could not be obtained; nothing was built",
        "stackless-nowhere.tar",
        pin.as_str(),
        "tried:",
        "--mirror DIR",
        "`stackless`",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
    assert!(!stderr.contains("spy: building"), "something was built:\n{stderr}");
    // Nothing of the overlaid closure was registered (other tests may register their own nodes in
    // this shared store meanwhile, so the check is by path, not by a count of entries).
    for node in ["slpython2.7-x86_64", "stacklessco2.7-interp-x86_64", "stacklessco2.7-x86_64"] {
        let p = common::ok(&common::spy_on_repo(&store, &["path", "--overlay", &overlay, node]));
        assert!(!Path::new(p.trim()).exists(), "{p} was registered");
    }
}

/// `overlays/psutil.toml` reaches every flavor: each `-interp` node of the graph depends on a
/// psutil package with the overlay, and on none without it.
#[test]
fn psutil_overlay_reaches_every_flavor() {
    let store = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("flavor-list-store");
    let spy = |args: &[&str]| common::ok(&common::spy_on_repo(&store, args));
    let list = spy(&["list"]);
    let flavors: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.ends_with("-interp-x86_64"))
        .collect();
    assert!(flavors.len() >= 10, "{flavors:?}");
    for f in flavors {
        let graph = spy(&["graph", "--overlay", "overlays/psutil.toml", f]);
        assert!(graph.contains("psutil-"), "{f} has no psutil with the overlay");
        let graph = spy(&["graph", f]);
        assert!(!graph.contains("psutil-"), "{f} has psutil without the overlay");
    }
}
