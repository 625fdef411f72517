//! The Stackless single files (`stackless2.7`, `stacklessco2.7`, `stackless3.7`, `stacklessxl3.7`),
//! built from the pinned Stackless commits supplied by the git mirror in `../shared/sources` (or
//! `$SPY_TEST_SOURCES`), each run alone in an empty root: tasklets, channels, preemptive
//! scheduling, greenlet beside tasklets, TLS over a socket pair, gevent (co) and asyncio (3.7)
//! beside tasklets; a blocked tasklet pickled in one process and finished in another; and
//! Stackless's own unit tests (`Stackless/unittests`), whose failures must be exactly the ones
//! explained in docs/packages.md.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Flavor {
    /// The fuse node; the release is `<node>-<target short>`.
    node: &'static str,
    /// The Stackless interpreter node it is built on (its entry holds the stdlib's `test` package).
    interpreter: &'static str,
    stdlib: &'static str,
    commit: &'static str,
    /// Modules that must be built in.
    builtin: &'static [&'static str],
    /// Packages built in, as the manifest lists them (component, version): the newest greenlet
    /// and gevent that work on this Stackless (docs/packages.md).
    packages: &'static [(&'static str, &'static str)],
    /// gevent and the crypto module are in it (the co flavor).
    co: bool,
    /// Stackless unit test modules that fail, each for a reason written in docs/packages.md.
    expected_failures: &'static [&'static str],
    /// The overlay of the test-only variant the unit tests run on (test modules built in).
    test_overlay: Option<&'static str>,
}

const SL27_COMMIT: &str = "4de5ac6bbe87cebfecbc050443e1084e9472c5f8";
const SL37_COMMIT: &str = "f7925f2a0276f9f8f9a43d020f7f9d2f809918ec";

const STACKLESS27: Flavor = Flavor {
    node: "stackless2.7",
    interpreter: "slpython2.7",
    stdlib: "python2.7",
    commit: SL27_COMMIT,
    // (2.7's `stackless` module is made at start-up, not listed in sys.builtin_module_names.)
    builtin: &["greenlet._greenlet", "_ssl", "_hashlib", "_sqlite3", "zlib", "_ctypes"],
    packages: &[("greenlet-slp2.7", "2.0.2")],
    co: false,
    // test_shutdown calls ctypes.pythonapi.Py_Exit: a static 2.7 has no pythonapi (it cannot
    // dlopen itself, and spy-relink makes the _spy_symbols table ctypes falls back on for 3.x only).
    expected_failures: &["test_shutdown"],
    test_overlay: None,
};

const STACKLESSCO27: Flavor = Flavor {
    node: "stacklessco2.7",
    builtin: &[
        "greenlet._greenlet",
        "gevent.libev.corecext",
        "gevent._gevent_cgreenlet",
        "zope.interface._zope_interface_coptimizations",
        "Crypto.Cipher._AES",
        "_ssl",
        "_hashlib",
        "_sqlite3",
        "zlib",
        "_ctypes",
    ],
    packages: &[
        ("greenlet-slp2.7", "2.0.2"),
        ("gevent-slp2.7", "22.10.2"),
        ("zope.interface-slp2.7", "5.5.2"),
        ("zope.event-slp2.7", "4.6"),
        ("pycrypto-slp2.7", "2.6.1"),
    ],
    co: true,
    ..STACKLESS27
};

const STACKLESS37: Flavor = Flavor {
    node: "stackless3.7",
    interpreter: "slpython3.7",
    stdlib: "python3.7",
    commit: SL37_COMMIT,
    builtin: &[
        "_stackless",
        "greenlet._greenlet",
        "_ssl",
        "_hashlib",
        "_sqlite3",
        "zlib",
        "_ctypes",
        "_asyncio",
    ],
    packages: &[("greenlet-slp3.7", "3.1.1")],
    co: false,
    expected_failures: &[],
    // _teststackless and _testcapi, which most of 3.7's test modules import.
    test_overlay: Some("overlays/stackless-test-modules.toml"),
};

const STACKLESSXL37: Flavor = Flavor {
    node: "stacklessxl3.7",
    ..STACKLESS37
};

/// The directory holding upstream sources no registry carries (a git clone of Stackless).
fn sources_mirror() -> PathBuf {
    let dir = std::env::var_os("SPY_TEST_SOURCES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/sources"));
    assert!(
        dir.join("stackless.git").is_dir(),
        "{} holds no stackless.git: set SPY_TEST_SOURCES to the directory with the Stackless clone",
        dir.display()
    );
    dir
}

/// Realizes a node of the repository's graph into the shared e2e store, with the Stackless mirror.
fn realize(node: &str) -> PathBuf {
    realize_with(node, None)
}

fn realize_with(node: &str, overlay: Option<&str>) -> PathBuf {
    let mirror = sources_mirror().display().to_string();
    let mut args = vec!["--mirror", &mirror, "realize", "--no-out-link", "-j2"];
    let overlay = overlay.map(|o| Path::new(env!("CARGO_MANIFEST_DIR")).join(o).display().to_string());
    if let Some(o) = &overlay {
        args.extend(["--overlay", o.as_str()]);
    }
    args.push(node);
    let o = common::spy_on_repo(&common::e2e_store(), &args);
    assert!(
        o.status.success(),
        "realizing {node} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// The release `<node>-<short>`: its entry and the binary in it.
fn release(f: &Flavor, short: &str) -> (PathBuf, PathBuf, String) {
    let name = format!("{}-{short}", f.node);
    let out = realize(&name);
    (out.join("bin").join(&name), out, name)
}

/// An empty root holding the binary at `/python`, a certificate made now by the host's openssl
/// (`/cert.pem`, `/key.pem`) and `files`.
fn root_with(bin: &Path, files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = common::root_with_certificate(bin);
    for (rel, text) in files {
        std::fs::write(root.path().join(rel), text).unwrap();
    }
    root
}

/// Tasklets, channels, preemptive scheduling, greenlet beside tasklets and TLS over a socket pair,
/// in syntax both 2.7 and 3.7 read. Prints one line per check.
const PROBE: &str = r#"
from __future__ import print_function
import sys, os, socket, ssl, threading
import stackless, greenlet
assert not hasattr(stackless, "__file__") or stackless.__file__.startswith("/python/"), stackless.__file__
assert not os.path.exists("/proc/self") and not os.path.exists("/usr"), "not an empty root"
assert sys.path[-1] == sys.executable == "/python", (sys.path, sys.executable)
print("stdlib", sys.modules["os"].__file__)

# Channels between tasklets: a pipeline of 100 tasklets.
first = ch = stackless.channel()
def stage(inp, out):
    out.send(inp.receive() + 1)
for i in range(100):
    nxt = stackless.channel()
    stackless.tasklet(stage)(ch, nxt)
    ch = nxt
stackless.tasklet(first.send)(0)
print("pipeline", ch.receive())

# Preemptive scheduling: stackless.run(100) interrupts busy tasklets that never yield.
counts = [0, 0]
def busy(i, n):
    for _ in range(n):
        counts[i] += 1
for i in range(2):
    stackless.tasklet(busy)(i, 200000)
switches = 0
while stackless.getruncount() > 1:
    t = stackless.run(100)
    if t is not None:
        switches += 1
        t.insert()
print("preempted", switches > 10, counts)

# greenlet beside tasklets: each tasklet switches its own greenlets.
results = []
def with_greenlets(n):
    parent = greenlet.getcurrent()
    def child(x):
        while True:
            x = parent.switch(x * 2)
    g = greenlet.greenlet(child)
    v = g.switch(n)
    stackless.schedule()
    results.append(g.switch(v))
for n in range(1, 6):
    stackless.tasklet(with_greenlets)(n)
stackless.run()
print("greenlets", sorted(results))
# Exceptions through greenlets: throw() into a suspended one, GreenletExit when one is dropped.
def suspended():
    try:
        greenlet.getcurrent().parent.switch()
    except ValueError as e:
        return "caught %s" % e
g = greenlet.greenlet(suspended)
g.switch()
exited = []
def dropped():
    try:
        greenlet.getcurrent().parent.switch()
    except greenlet.GreenletExit:
        exited.append(True)
        raise
d = greenlet.greenlet(dropped)
d.switch()
del d
print("greenlet throw", g.throw(ValueError("x")), exited)

# TLS over a socket pair, the server in a thread.
a, b = socket.socketpair()
if sys.version_info[0] == 2:  # 2.7's socketpair gives bare _socket objects
    a, b = socket.socket(_sock=a), socket.socket(_sock=b)
def tls_server():
    s = ssl.wrap_socket(a, keyfile="/key.pem", certfile="/cert.pem", server_side=True)
    s.sendall(s.recv(100)[::-1])
    s.close()
th = threading.Thread(target=tls_server)
th.start()
c = ssl.wrap_socket(b)
c.sendall(b"over tls")
print("tls", c.recv(100).decode(), c.version())
th.join()
"#;

/// gevent beside tasklets (co flavor): a TCP echo over 127.0.0.1 served by greenlets, and AES.
const CO_PROBE: &str = r#"
from __future__ import print_function
import stackless, gevent
from gevent import socket
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(50)
def handle(c):
    c.sendall(c.recv(100).upper())
    c.close()
def serve(n):
    for _ in range(n):
        c, _ = srv.accept()
        gevent.spawn(handle, c)
server = gevent.spawn(serve, 20)
def client(i):
    cl = socket.create_connection(srv.getsockname())
    cl.sendall(b"hello %d" % i)
    return cl.recv(100)
jobs = [gevent.spawn(client, i) for i in range(20)]
gevent.joinall(jobs)
server.join()
ticks = []
def tasklet_ticker():
    for i in range(3):
        ticks.append(i)
        stackless.schedule()
stackless.tasklet(tasklet_ticker)()
stackless.run()
print("gevent", sorted(j.value for j in jobs) == sorted(b"HELLO %d" % i for i in range(20)), ticks)
# TLS with gevent's ssl over a socket pair, both ends greenlets.
import gevent.ssl
a, b = socket.socketpair()
def tls_server():
    s = gevent.ssl.wrap_socket(a, keyfile="/key.pem", certfile="/cert.pem", server_side=True)
    s.sendall(s.recv(100)[::-1])
tls = gevent.spawn(tls_server)
c = gevent.ssl.wrap_socket(b)
c.sendall(b"over tls")
print("gevent tls", c.recv(100).decode(), c.version())
tls.join()
from Crypto.Cipher import AES
key = b"0123456789abcdef"
print("aes", AES.new(key, AES.MODE_ECB).decrypt(AES.new(key, AES.MODE_ECB).encrypt(b"sixteen byte msg")))
"#;

/// asyncio beside tasklets (3.7): an event loop runs in the main tasklet while other tasklets run.
const ASYNCIO_PROBE: &str = r#"
import asyncio, stackless
log = []
def worker(ch):
    for i in range(3):
        log.append("tasklet %d" % i)
        ch.send(i)
async def main():
    ch = stackless.channel()
    ch.preference = 1
    stackless.tasklet(worker)(ch)
    got = []
    for _ in range(3):
        await asyncio.sleep(0.01)
        got.append(ch.receive())
    r, w = await asyncio.open_connection(*server.sockets[0].getsockname())
    w.write(b"ping\n")
    line = await r.readline()
    w.close()
    return got, line
async def echo(r, w):
    w.write((await r.readline()).upper())
    await w.drain()
    w.close()
loop = asyncio.new_event_loop()
server = loop.run_until_complete(asyncio.start_server(echo, "127.0.0.1", 0))
got, line = loop.run_until_complete(main())
print("asyncio", got, line, len(log))
"#;

fn run_probe(root: &Path, script: &str) -> String {
    let path = root.join("probe.py");
    std::fs::write(&path, script).unwrap();
    let o = common::run_in_root(root, &[("HOME", "/")], &["/python", "/probe.py"]);
    common::ok(&o)
}

fn features_in_an_empty_root(f: &Flavor, short: &str) {
    let (bin, out, name) = release(f, short);
    // The manifest names Stackless, its repository and commit, and the built-in modules.
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let text = m.to_string();
    assert!(
        text.contains("https://github.com/stackless-dev/stackless") && text.contains(f.commit),
        "the manifest names no Stackless commit: {text}"
    );
    let builtin = common::builtin_modules(&m);
    for module in f.builtin {
        assert!(builtin.contains(module), "{module} is not built into {name}: {builtin:?}");
    }
    let components = m["components"].as_array().expect("manifest components");
    for (package, version) in f.packages {
        assert!(
            components
                .iter()
                .any(|c| c["name"] == *package && c["version"] == *version && c["role"] == "package"),
            "the manifest of {name} lists no package {package} {version}: {text}"
        );
    }
    let root = root_with(&bin, &[]);
    let text = run_probe(root.path(), PROBE);
    for line in [
        "stdlib /python/os.pyc",
        "pipeline 100",
        "preempted True [200000, 200000]",
        "greenlets [4, 8, 12, 16, 20]",
        "greenlet throw caught x [True]",
        "tls slt revo TLSv1.3",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    if f.co {
        let text = run_probe(root.path(), CO_PROBE);
        assert!(text.contains("gevent True [0, 1, 2]"), "{text}");
        assert!(text.contains("gevent tls slt revo TLSv1.3"), "{text}");
        assert!(text.contains("aes sixteen byte msg"), "{text}");
    }
    if f.stdlib == "python3.7" {
        let text = run_probe(root.path(), ASYNCIO_PROBE);
        assert!(text.contains("asyncio [0, 1, 2] b'PING\\n' 3"), "{text}");
    }
}

/// A tasklet blocked on a channel is pickled by one process of the single file, unpickled by a
/// fresh one, and finishes there with the state it had.
fn pickled_blocked_tasklet_finishes_in_a_fresh_process(f: &Flavor, short: &str) {
    let (bin, _, _) = release(f, short);
    let root = root_with(
        &bin,
        &[
            (
                "freeze.py",
                r#"
import stackless, pickle
def worker(ch, tag):
    total = 0
    while True:
        v = ch.receive()
        if v is None:
            break
        total += v
    open("/out.txt", "w").write("%s %d" % (tag, total))
ch = stackless.channel()
t = stackless.tasklet(worker)(ch, "resumed")
ch.send(1)
ch.send(2)
assert t.blocked
open("/state.pkl", "wb").write(pickle.dumps((t, ch), 2))
print("frozen")
"#,
            ),
            (
                "thaw.py",
                r#"
import stackless, pickle
t, ch = pickle.loads(open("/state.pkl", "rb").read())
assert t.blocked and ch.balance == -1
ch.send(39)
ch.send(None)
print(open("/out.txt").read())
"#,
            ),
        ],
    );
    let o = common::run_in_root(root.path(), &[("HOME", "/")], &["/python", "/freeze.py"]);
    assert!(common::ok(&o).contains("frozen"));
    assert!(!root.path().join("out.txt").exists());
    let o = common::run_in_root(root.path(), &[("HOME", "/")], &["/python", "/thaw.py"]);
    assert_eq!(common::ok(&o).trim(), "resumed 42");
}

/// Stackless's own unit tests (from the pinned commit, via the mirror's clone) run by the single
/// file (for 3.7 its test-only variant, with _teststackless and _testcapi) in an empty root; CPython's `test` package (regrtest, support), which the release leaves
/// out, is copied from the interpreter entry beside them, and /dev/null is bound in.
fn passes_stackless_unittests(f: &Flavor, short: &str) {
    let name = format!("{}-{short}", f.node);
    let bin = realize_with(&name, f.test_overlay).join("bin").join(&name);
    let interpreter = realize_with(&format!("{}-{short}", f.interpreter), f.test_overlay);
    let root = root_with(&bin, &[]);
    let archive = Command::new("git")
        .arg("-C")
        .arg(sources_mirror().join("stackless.git"))
        .args(["archive", "--format=tar", f.commit, "Stackless/unittests"])
        .output()
        .unwrap();
    assert!(archive.status.success(), "{}", String::from_utf8_lossy(&archive.stderr));
    let mut tar = Command::new("tar")
        .args(["-x", "-C"])
        .arg(root.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(tar.stdin.as_mut().unwrap(), &archive.stdout).unwrap();
    assert!(tar.wait().unwrap().success());
    // Beside the tests, where their own subprocesses (started with -E, which drops PYTHONPATH)
    // find it too.
    let o = Command::new("cp")
        .arg("-R")
        .arg(interpreter.join("lib").join(f.stdlib).join("test"))
        .arg(root.path().join("Stackless/unittests/test"))
        .status()
        .unwrap();
    assert!(o.success());
    // test_miscell writes to /dev/null: the one device bound into the otherwise empty root.
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    std::fs::write(root.path().join("dev/null"), "").unwrap();
    let o = Command::new(common::host_tool("unshare"))
        .args(["--user", "--map-root-user", "--mount", &common::host_tool("sh"), "-c"])
        .arg("mount --bind /dev/null \"$1/dev/null\" && exec \"$2\" \"$1\" /python /Stackless/unittests/runAll.py")
        .args(["sh", &root.path().display().to_string(), &common::host_tool("chroot")])
        .env_clear()
        .env("HOME", "/")
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let failed = failed_tests(&out);
    let mut expected: Vec<String> = f.expected_failures.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(failed, expected, "unexpected set of failing Stackless tests:\n{out}");
    let ok = out
        .lines()
        .find_map(|l| l.trim().strip_suffix(" tests OK.").or_else(|| l.trim().strip_suffix(" test OK.")))
        .map(|n| n.trim_start_matches("All ").to_string())
        .unwrap_or_default();
    println!("{}-{short}: {ok} Stackless test modules OK, failed: {failed:?}", f.node);
    assert!(
        ok.parse::<u32>().map(|n| n >= 15).unwrap_or(false),
        "too few modules passed:\n{out}"
    );
}

/// The test modules regrtest reports as failed (`N tests failed:` followed by their names).
fn failed_tests(out: &str) -> Vec<String> {
    let mut failed = Vec::new();
    let mut lines = out.lines();
    while let Some(l) = lines.next() {
        let l = l.trim();
        if l.ends_with("failed:") && (l.contains(" test") || l.starts_with("test")) {
            for next in lines.by_ref() {
                if next.trim().is_empty() {
                    break;
                }
                failed.extend(next.split_whitespace().map(String::from));
            }
        }
    }
    failed.sort();
    failed.dedup();
    failed
}

macro_rules! flavor_tests {
    ($module:ident, $flavor:ident, $short:literal $(, #[$attr:meta])?) => {
        mod $module {
            use super::*;
            #[test] $(#[$attr])?
            fn features_in_an_empty_root() {
                super::features_in_an_empty_root(&$flavor, $short);
            }
            #[test] $(#[$attr])?
            fn pickled_blocked_tasklet_finishes_in_a_fresh_process() {
                super::pickled_blocked_tasklet_finishes_in_a_fresh_process(&$flavor, $short);
            }
            #[test] $(#[$attr])?
            fn passes_stackless_unittests() {
                super::passes_stackless_unittests(&$flavor, $short);
            }
        }
    };
}

flavor_tests!(stackless2_7_x86_64, STACKLESS27, "x86_64");
flavor_tests!(stacklessco2_7_x86_64, STACKLESSCO27, "x86_64");
flavor_tests!(stackless3_7_x86_64, STACKLESS37, "x86_64");
flavor_tests!(stacklessxl3_7_x86_64, STACKLESSXL37, "x86_64");
flavor_tests!(stacklessco2_7_i686, STACKLESSCO27, "i686", #[ignore = "e2e: tests/e2e/run"]);
flavor_tests!(stackless3_7_i686, STACKLESS37, "i686", #[ignore = "e2e: tests/e2e/run"]);
flavor_tests!(stacklessxl3_7_i686, STACKLESSXL37, "i686", #[ignore = "e2e: tests/e2e/run"]);

/// The one i686 Stackless check that CI runs (the rest of i686 is in tests/e2e/run).
mod stackless2_7_i686 {
    use super::*;
    #[test]
    fn features_in_an_empty_root() {
        super::features_in_an_empty_root(&STACKLESS27, "i686");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn pickled_blocked_tasklet_finishes_in_a_fresh_process() {
        super::pickled_blocked_tasklet_finishes_in_a_fresh_process(&STACKLESS27, "i686");
    }
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn passes_stackless_unittests() {
        super::passes_stackless_unittests(&STACKLESS27, "i686");
    }
}
