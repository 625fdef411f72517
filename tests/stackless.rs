//! The Stackless single files (`stackless2.7`, `stacklessco2.7`, `stackless3.7`, `stacklessxl3.7`),
//! built from the pinned Stackless commits supplied by the git mirror in `../shared/sources` (or
//! `$SPY_TEST_SOURCES`), each run alone in an empty root: tasklets, channels, preemptive
//! scheduling, greenlet beside tasklets, TLS over a socket pair, gevent (co) and asyncio (3.7)
//! beside tasklets; a blocked tasklet pickled in one process and finished in another; and
//! Stackless's own unit tests (`Stackless/unittests`), whose failures must be exactly the ones
//! explained in docs/packages.md. For stacklessco2.7, StaticPython's coroutine stack (sources from
//! `staticpython/` in the same directory): Syncless's seed example, a TCP echo on tasklets and its
//! own `test/` directory; a Concurrence echo, msgpack, alo-aes and geventmysql.

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
        "syncless.coio",
        "concurrence._event",
        "concurrence.io._io",
        "concurrence.database.mysql._mysql",
        "msgpack._cmsgpack",
        "geventmysql._mysql",
        "aes._aes",
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
        ("syncless-slp2.7", "0.25"),
        ("concurrence-slp2.7", "0.3.1"),
        ("msgpack-slp2.7", "0.6.2"),
        ("geventmysql-slp2.7", "20110201"),
        ("alo-aes-slp2.7", "0.3"),
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
        "_decimal",
        "parser",
        "_crypt",
        "ossaudiodev",
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
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn stacklessco2_7_x86_64_with_compiles_a_c_extension_sdist() {
    common::with_compiles_a_c_extension_sdist("stacklessco2.7-x86_64", "slp2.7", "2.7", Some(&sources_mirror()));
}

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
    // One mirror: the Stackless clone is in it, and the packages StaticPython compiled into
    // stacklessco2.7 (Syncless, Concurrence...) in its subdirectory `staticpython/`, which a mirror
    // searches too.
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

/// What CPython's suite found in Stackless 3.7 (docs/packages.md): decimal is the C one (the
/// result is libmpdec's), a module name with a NUL is not found (3.7's zipimport cut it there),
/// zipimport reads its archive again after its caches are cleared (that imported the cp437 codec
/// from the archive being read: RecursionError), and faulthandler's stack-overflow helper
/// overflows instead of looping forever (GCC made a loop of its recursion).
const PY37_PROBE: &str = r#"
import decimal, resource, subprocess, sys, zipimport
decimal.getcontext().prec = 40
print("decimal", decimal.Decimal is __import__("_decimal").Decimal, decimal.Decimal(1) / decimal.Decimal(7))
try:
    __import__("string\x00")
    print("nul imported")
except ModuleNotFoundError as e:
    print("nul", type(e).__name__)
zipimport._zip_directory_cache.clear()
sys.path_importer_cache.clear()
for name in list(sys.modules):
    if name.startswith("encodings.") and name != "encodings.utf_8":
        del sys.modules[name]
import encodings.cp437, json.tool
print("zip reread", encodings.cp437.__name__, json.tool.__name__)
try:
    # An 8 MiB stack, as Linux gives by default: the helper gives up (RuntimeError) past 100 MiB.
    p = subprocess.run([sys.executable, "-c", "import faulthandler; faulthandler.enable(); faulthandler._stack_overflow()"],
                       stderr=subprocess.PIPE, timeout=60,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_STACK, (8 << 20, 8 << 20)))
    print("stack overflow", p.returncode, b"Fatal Python error" in p.stderr)
except subprocess.TimeoutExpired:
    print("stack overflow looped")
"#;

/// Each of `lines` is in a probe's output (which the panic prints whole).
fn assert_has_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

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
    assert_has_lines(
        &text,
        &[
            "stdlib /python/os.pyc",
            "pipeline 100",
            "preempted True [200000, 200000]",
            "greenlets [4, 8, 12, 16, 20]",
            "greenlet throw caught x [True]",
            "tls slt revo TLSv1.3",
        ],
    );
    if f.co {
        let text = run_probe(root.path(), CO_PROBE);
        assert!(text.contains("gevent True [0, 1, 2]"), "{text}");
        assert!(text.contains("gevent tls slt revo TLSv1.3"), "{text}");
        assert!(text.contains("aes sixteen byte msg"), "{text}");
    }
    if f.stdlib == "python3.7" {
        let text = run_probe(root.path(), ASYNCIO_PROBE);
        assert!(text.contains("asyncio [0, 1, 2] b'PING\\n' 3"), "{text}");
        let text = run_probe(root.path(), PY37_PROBE);
        assert_has_lines(
            &text,
            &[
                "decimal True 0.1428571428571428571428571428571428571429",
                "nul ModuleNotFoundError",
                "zip reread encodings.cp437 json.tool",
                "stack overflow -11 True",
            ],
        );
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

/// StaticPython's seed example and a Syncless TCP echo: 100 clients, each on its own tasklet, all
/// connected at once (every handler sleeps 0.1 s before answering, so serving them one after the
/// other would take 10 s).
const SYNCLESS_PROBE: &str = r#"
import time, socket, stackless
from syncless import coio
t0 = time.time()
coio.sleep(1.5)
print "slept %.2f" % (time.time() - t0)
N = 100
server = coio.nbsocket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(N)
addr = server.getsockname()
handlers = []
def handle(conn):
    handlers.append(stackless.getcurrent())
    f = conn.makefile()
    line = f.readline()
    coio.sleep(0.1)
    f.write(line.upper())
    f.flush()
    conn.close()
def accept_all():
    for _ in range(N):
        conn, _ = server.accept()
        stackless.tasklet(handle)(conn)
results = stackless.channel()
def client(i):
    c = coio.nbsocket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(addr)
    c.sendall("hello %d\n" % i)
    data = ""
    while not data.endswith("\n"):
        data += c.recv(100)
    c.close()
    results.send(data)
stackless.tasklet(accept_all)()
t0 = time.time()
for i in range(N):
    stackless.tasklet(client)(i)
replies = sorted(results.receive() for _ in range(N))
print "echo", replies == sorted("HELLO %d\n" % i for i in range(N)), len(set(handlers))
print "echo seconds %.2f" % (time.time() - t0)
"#;

/// Syncless's own TLS over 127.0.0.1 (docs/packages.md): an nbsocket server whose handlers, each on
/// its own tasklet, wrap what it accepts in an `nbsslsocket(server_side=True)` (the certificate of
/// the root); 30 `nbsslsocket` clients on tasklets, all connected at once (every handler sleeps
/// 0.1 s before answering); then one client through `sslwrap_simple` (nbsslobj), and a listening
/// `ssl_wrap_socket` whose accept() does the server handshake, read through `makefile_samefd()`.
const SYNCLESS_TLS_PROBE: &str = r#"
import time, socket, stackless
from syncless import coio
N = 30
server = coio.nbsocket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(N + 1)
addr = server.getsockname()
handlers = []
def handle(conn):
    handlers.append(stackless.getcurrent())
    s = coio.nbsslsocket(conn, server_side=True, certfile="/cert.pem", keyfile="/key.pem")
    data = ""
    while not data.endswith("\n"):
        data += s.recv(100)
    coio.sleep(0.1)
    s.sendall(data.upper())
    s.close()
def accept_all():
    for _ in range(N + 1):
        conn, _ = server.accept()
        stackless.tasklet(handle)(conn)
results = stackless.channel()
versions = set()
def client(i):
    c = coio.nbsslsocket(coio.nbsocket(socket.AF_INET, socket.SOCK_STREAM))
    c.connect(addr)
    versions.add(c.cipher()[1])
    c.sendall("hello %d\n" % i)
    data = ""
    while not data.endswith("\n"):
        data += c.recv(100)
    c.close()
    results.send(data)
stackless.tasklet(accept_all)()
t0 = time.time()
for i in range(N):
    stackless.tasklet(client)(i)
replies = sorted(results.receive() for _ in range(N))
print "tls echo", replies == sorted("HELLO %d\n" % i for i in range(N)), len(set(handlers)), sorted(versions)
print "tls seconds %.2f" % (time.time() - t0)
s = coio.nbsocket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(addr)
o = coio.sslwrap_simple(s)
o.write("simple\n")
print "sslwrap_simple", repr(o.read(100))
listener = coio.ssl_wrap_socket(coio.nbsocket(socket.AF_INET, socket.SOCK_STREAM),
                                certfile="/cert.pem", keyfile="/key.pem", server_side=True)
listener.bind(("127.0.0.1", 0))
listener.listen(1)
def serve_one():
    conn, _ = listener.accept()
    f = conn.makefile_samefd()
    f.write(f.readline().upper())
    f.flush()
    conn.close()
stackless.tasklet(serve_one)()
c = coio.nbsslsocket(coio.nbsocket(socket.AF_INET, socket.SOCK_STREAM))
c.settimeout(10)
c.connect(listener.getsockname())
f = c.makefile_samefd()
f.write("accepted\n")
f.flush()
print "ssl accept", repr(f.readline())
"#;

/// A Concurrence echo server and 50 clients on tasklets; a msgpack round trip of nested data;
/// alo-aes against the FIPS-197 AES-128 vector and a CBC round trip; geventmysql with no server.
const STACK_PROBE: &str = r#"
import binascii, socket, stackless
from concurrence import dispatch, quit, Tasklet
from concurrence.io import BufferedStream, Socket
N = 50
def handle(client):
    stream = BufferedStream(client)
    line = stream.reader.read_line()
    stream.writer.write_bytes(line.upper() + "\n")
    stream.writer.flush()
    stream.close()
def client(addr, i):
    stream = BufferedStream(Socket.connect(addr))
    stream.writer.write_bytes("hello %d\n" % i)
    stream.writer.flush()
    reply = stream.reader.read_line()
    stream.close()
    return reply
def main():
    server = Socket.new()
    server.bind(("127.0.0.1", 0))
    server.listen()
    addr = server.socket.getsockname()
    def accept_all():
        for _ in range(N):
            Tasklet.new(handle)(server.accept())
    Tasklet.new(accept_all)()
    clients = [Tasklet.new(client)(addr, i) for i in range(N)]
    replies = [Tasklet.join(c) for c in clients]
    print "concurrence", sorted(replies) == sorted("HELLO %d" % i for i in range(N)), isinstance(stackless.getcurrent(), stackless.tasklet)
    quit()
dispatch(main)
"#;

const DATA_PROBE: &str = r#"
import binascii, socket
import msgpack
data = {u"list": [1, -2, 2**40, -2**63, 2**64 - 1, 1.5, None, True, False],
        u"nested": {u"bytes": b"\x00\xff", u"text": u"\u00e9t\u00e9", u"deep": [[{u"k": [u"v"]}]]}}
packed = msgpack.packb(data, use_bin_type=True)
print "msgpack", msgpack.version, type(msgpack.Packer()).__module__, msgpack.unpackb(packed, raw=False) == data
import aes
key = aes.Keysetup(binascii.unhexlify("000102030405060708090a0b0c0d0e0f"))
ct = key.encrypt(binascii.unhexlify("00112233445566778899aabbccddeeff"))
iv, cbc = key.cbcencrypt(b"\0" * 16, b"sixteen byte msg" * 3)
print "aes", binascii.hexlify(ct), binascii.hexlify(key.decrypt(ct)), key.cbcdecrypt(b"\0" * 16, cbc)[1]
import geventmysql
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
try:
    geventmysql.connect(host="127.0.0.1", port=port, user="u", password="p", db="d")
except socket.error as e:
    print "geventmysql", geventmysql._mysql, e.errno
"#;

/// StaticPython's seed example and a Syncless TCP echo on tasklets, alone in an empty root (no
/// /etc/hosts, which syncless.coio reads when it is there).
fn syncless_seed_example_and_tcp_echo(short: &str) {
    let (bin, _, _) = release(&STACKLESSCO27, short);
    let root = root_with(&bin, &[]);
    let text = run_probe(root.path(), SYNCLESS_PROBE);
    let slept: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("slept "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sleep measured:\n{text}"));
    assert!((1.45..3.0).contains(&slept), "coio.sleep(1.5) took {slept} s:\n{text}");
    assert!(text.contains("echo True 100"), "{text}");
    let seconds: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("echo seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no echo time:\n{text}"));
    assert!(seconds < 5.0, "100 clients were not served at once ({seconds} s):\n{text}");
}

/// Syncless's own TLS (coio.nbsslsocket, sslwrap_simple, ssl_wrap_socket) between tasklets, alone
/// in an empty root.
fn syncless_tls_echo(short: &str) {
    let (bin, _, _) = release(&STACKLESSCO27, short);
    let root = root_with(&bin, &[]);
    let text = run_probe(root.path(), SYNCLESS_TLS_PROBE);
    assert!(text.contains("tls echo True 30 ['TLSv1.3']"), "{text}");
    let seconds: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tls seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no echo time:\n{text}"));
    assert!(seconds < 2.5, "30 TLS clients were not served at once ({seconds} s):\n{text}");
    assert!(text.contains("sslwrap_simple 'SIMPLE\\n'"), "{text}");
    assert!(text.contains("ssl accept 'ACCEPTED\\n'"), "{text}");
}

/// Syncless's test modules that fail, with the tests that fail in each (docs/packages.md says why:
/// greenlet 2 and Stackless 2.7 behave differently from the greenlet 0.3 and Stackless 2.6 they
/// were written against, and one assertion upstream's own comment says does not hold).
const SYNCLESS_EXPECTED_FAILURES: &[(&str, &[&str])] = &[
    (
        "greenlet_test.py",
        &[
            "testCircularCoroutineReferences",
            "testParentCatchOnKill",
            "testParentOnKill",
            "testParentOnKillWithGreenletExit",
            "testParentOnKillWithGreenletExitSubclass",
        ],
    ),
    ("greenlet_using_stackless_test.py", &["testCircularCoroutineReferences"]),
    (
        "stackless_test.py",
        &[
            "testLastChannel",
            "testLateBind",
            "testLateCall",
            "testRemoveCurrent",
            "testTaskletExitOnDelete",
        ],
    ),
];

/// Syncless's own `test/` directory (from the pinned sdist in the mirror) run by the single file in
/// an empty root, one process per module as its `setup.py test` does: every failing test must be
/// one explained in docs/packages.md.
fn syncless_own_tests(short: &str) {
    let (bin, _, name) = release(&STACKLESSCO27, short);
    let root = root_with(&bin, &[]);
    let tarball = sources_mirror().join("staticpython/syncless-0.25.tar.gz");
    let o = Command::new(common::host_tool("tar"))
        .args(["-xzf"])
        .arg(&tarball)
        .arg("-C")
        .arg(root.path())
        .args([
            "--no-same-owner",
            "--no-same-permissions",
            "--strip-components=1",
            "syncless-0.25/test",
        ])
        .output()
        .unwrap();
    common::ok(&o);
    let mut modules: Vec<String> = std::fs::read_dir(root.path().join("test"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with("_test.py"))
        .collect();
    modules.sort();
    assert_eq!(modules.len(), 12, "{modules:?}");
    let (mut ran, mut failed_total) = (0, 0);
    let mut report = String::new();
    for module in &modules {
        let o = common::run_in_root(root.path(), &[("HOME", "/")], &["/python", &format!("/test/{module}")]);
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        let n: u32 = out
            .lines()
            .find_map(|l| l.strip_prefix("Ran ").and_then(|r| r.split_whitespace().next()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{module} ran no tests:\n{out}"));
        let mut failed: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("ERROR: ").or_else(|| l.strip_prefix("FAIL: ")))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        failed.sort();
        failed.dedup();
        let expected = SYNCLESS_EXPECTED_FAILURES
            .iter()
            .find(|(m, _)| m == module)
            .map(|(_, t)| t.to_vec())
            .unwrap_or_default();
        assert_eq!(failed, expected, "unexpected failures in Syncless's {module}:\n{out}");
        assert_eq!(o.status.success(), expected.is_empty(), "{module}: status {}:\n{out}", o.status);
        ran += n;
        failed_total += failed.len() as u32;
        report.push_str(&format!("  {module}: {n} tests, failed {failed:?}\n"));
    }
    println!("{name}: Syncless test/: {} of {ran} tests pass\n{report}", ran - failed_total);
    assert!(ran >= 100, "too few Syncless tests ran:\n{report}");
}

/// A Concurrence tasklet echo, msgpack, alo-aes and geventmysql in an empty root; the manifest
/// lists each package with its version, license and source hash.
fn concurrence_msgpack_aes_geventmysql(short: &str) {
    let (bin, out, name) = release(&STACKLESSCO27, short);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let components = m["components"].as_array().expect("manifest components");
    for (package, version, license, sha256) in [
        (
            "syncless-slp2.7",
            "0.25",
            "Apache-2.0",
            "ae1476c483aebe4911d5e4931e8cff9d863c4210d188ab5201c39b4efc66e928",
        ),
        (
            "concurrence-slp2.7",
            "0.3.1",
            "BSD-3-Clause",
            "6a593dfecf0acfcd322268d13731ffa8fed42400da88b7db559267ed78e3e5a5",
        ),
        (
            "msgpack-slp2.7",
            "0.6.2",
            "Apache-2.0",
            "ea3c2f859346fcd55fc46e96885301d9c2f7a36d453f5d8f2967840efa1e1830",
        ),
        (
            "geventmysql-slp2.7",
            "20110201",
            "BSD-3-Clause",
            "f2631baaee95d36a807393e71c421b897f4c2093e51d3de9af38e6ad35e72d95",
        ),
        (
            "alo-aes-slp2.7",
            "0.3",
            "GPL-2.0-or-later",
            "eb20036b8182ef4c107d25920b80b6a19d644bdaa79a596975a9fcb7e0b15595",
        ),
        (
            "pyrex-py2.7",
            "0.9.9",
            "Apache-2.0",
            "5f87df06831d0b3412eb4bc9d3fc2ee7bfae1b913d7da8c23ab2bf5699fb6b50",
        ),
    ] {
        let c = components
            .iter()
            .find(|c| c["name"] == package)
            .unwrap_or_else(|| panic!("the manifest of {name} lists no {package}"));
        assert_eq!(
            (c["version"].as_str(), c["license"].as_str()),
            (Some(version), Some(license)),
            "{c}"
        );
        assert_eq!(c["role"], if package.starts_with("pyrex") { "build" } else { "package" }, "{c}");
        assert!(c["sources"].as_array().unwrap().iter().any(|s| s["sha256"] == sha256), "{c}");
    }
    let root = root_with(&bin, &[]);
    let text = run_probe(root.path(), STACK_PROBE);
    assert!(text.contains("concurrence True True"), "{text}");
    let text = run_probe(root.path(), DATA_PROBE);
    assert_has_lines(
        &text,
        &[
            "msgpack (0, 6, 2) msgpack._cmsgpack True",
            "aes 69c4e0d86a7b0430d8cdb78070b4c55a 00112233445566778899aabbccddeeff sixteen byte msgsixteen byte msgsixteen byte msg",
            "geventmysql <module 'geventmysql._mysql' (built-in)> 111",
        ],
    );
}

/// gevent's extensions (and libev inside them) stay compressed until gevent is imported: a lazy
/// code group of their own (graph/python/pyext/spy_lazy_link.py). Its hub then runs timers, which
/// read function pointers through the GOT into that code (the entries ld's NOLOAD left zero).
fn gevent_code_inflates_on_import(short: &str) {
    let (bin, _, _) = release(&STACKLESSCO27, short);
    let probe = "import gevent\ngevent.sleep(0.001)\nprint('ok' if gevent.spawn(lambda: 7).get() == 7 else 'wrong')";
    let segments = common::lazy_code_inflates_on_import(&bin, probe);
    // SQLite, readline and ncurses, expat, and each package but greenlet (C++ constructors):
    // text and constants apiece.
    assert!(segments >= 20, "{segments} lazy segments");
}

macro_rules! coroutine_stack_tests {
    ($module:ident, $short:literal $(, #[$attr:meta])?) => {
        /// StaticPython's coroutine stack in stacklessco2.7.
        mod $module {
            #[test] $(#[$attr])?
            fn syncless_seed_example_and_tcp_echo() {
                super::syncless_seed_example_and_tcp_echo($short);
            }
            #[test] $(#[$attr])?
            fn syncless_tls_echo() {
                super::syncless_tls_echo($short);
            }
            #[test] $(#[$attr])?
            fn syncless_own_tests() {
                super::syncless_own_tests($short);
            }
            #[test] $(#[$attr])?
            fn gevent_code_inflates_on_import() {
                super::gevent_code_inflates_on_import($short);
            }
            #[test] $(#[$attr])?
            fn concurrence_msgpack_aes_geventmysql() {
                super::concurrence_msgpack_aes_geventmysql($short);
            }
        }
    };
}

coroutine_stack_tests!(stacklessco2_7_x86_64_coroutines, "x86_64");
coroutine_stack_tests!(stacklessco2_7_i686_coroutines, "i686", #[ignore = "e2e: tests/e2e/run"]);

/// A Stackless flavor as Python users know it: its prefix, pip (and venv, 3.7), every stdlib data
/// file in its ZIP (the checks of tests/python.rs, in tests/common).
fn prefix_pip_and_data(f: &Flavor, short: &str) {
    let (bin, out, name) = release(f, short);
    let interp = realize(&format!("{}-interp-{short}", f.node));
    common::stdlib_data_is_in_the_zip(&bin, &out, &interp.join("lib").join(f.stdlib), &name);
    common::prefix_pip_and_venv(&bin, &name, f.stdlib, f.stdlib == "python2.7");
    common::tls_time_and_trace_as_upstream(&bin);
    if f.stdlib == "python3.7" {
        sources_in_pydoc_and_inspect(&name);
    }
}

/// With `--py-sources`, pydoc and inspect read a stdlib function's lines from the module its
/// relative file name stands for. pydoc of a class deriving from collections.abc.Mapping failed
/// with IndexError (Stackless 3.7, CPython's test_pydoc): linecache read collections/abc.py, the
/// module `__module__` names, for the methods of _collections_abc.
fn sources_in_pydoc_and_inspect(release: &str) {
    let mirror = sources_mirror().display().to_string();
    let out = common::realize_real_with(release, &[], &["--mirror", &mirror, "--py-sources"]);
    let root = root_with(&out.join("bin").join(release), &[]);
    let probe = "import collections.abc, inspect, pydoc\nclass C(collections.abc.Mapping):\n    pass\n\
        print(pydoc.render_doc(C, renderer=pydoc.plaintext).splitlines()[2])\n\
        print(inspect.getsource(collections.abc.Mapping.__contains__).splitlines()[0])\n";
    let text = run_probe(root.path(), probe);
    assert_eq!(
        text, "class C(collections.abc.Mapping)\n    def __contains__(self, key):\n",
        "{release}"
    );
}

/// unicodedata's database and the CJK codecs' mappings, inflated on first import, as upstream's
/// tests expect them ([`common::lazy_tables_inflate_as_upstream`]).
fn lazy_tables_inflate_as_upstream(f: &Flavor, short: &str) {
    let (bin, _, _) = release(f, short);
    let interpreter = realize(&format!("{}-{short}", f.interpreter));
    common::lazy_tables_inflate_as_upstream(&bin, &interpreter.join("lib").join(f.stdlib).join("test"));
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
            #[test] $(#[$attr])?
            fn prefix_pip_and_data() {
                super::prefix_pip_and_data(&$flavor, $short);
            }
            #[test] $(#[$attr])?
            fn lazy_tables_inflate_as_upstream() {
                super::lazy_tables_inflate_as_upstream(&$flavor, $short);
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
    #[test]
    #[ignore = "e2e: tests/e2e/run"]
    fn prefix_pip_and_data() {
        super::prefix_pip_and_data(&STACKLESS27, "i686");
    }
}
