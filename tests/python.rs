//! The python3.11 node: CPython built statically against the package set, every extension module
//! built in. Runs the interpreter straight from its store entry (stdlib beside it via PYTHONHOME;
//! the single-file step comes later) and checks what it is made of and that the modules work.

mod common;

use std::process::Command;

const CHECKS: &str = r#"
import sys, json
names = ("ssl _hashlib _sqlite3 readline zlib _bz2 _lzma _decimal _ctypes pyexpat _elementtree _json "
         "_socket select array math cmath unicodedata _posixsubprocess _multiprocessing termios fcntl "
         "grp pwd resource mmap binascii _datetime _struct _random _bisect _heapq _pickle _csv _md5 "
         "_sha1 _sha256 _sha512 _sha3 _blake2 _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp "
         "_codecs_kr _codecs_tw _multibytecodec _curses _curses_panel").split()
missing = [n for n in names if n not in sys.builtin_module_names and n != "ssl"]
assert not missing, missing
import ssl, hashlib, sqlite3, zlib, bz2, lzma, socket, subprocess, ctypes, decimal
assert hashlib.sha256(b"abc").hexdigest().startswith("ba7816bf")
db = sqlite3.connect(":memory:"); assert db.execute("select 40 + 2").fetchone() == (42,)
data = b"spy" * 1000
for m in (zlib, bz2, lzma):
    assert m.decompress(m.compress(data)) == data, m
ctx = ssl.create_default_context(); assert ctx.verify_mode == ssl.CERT_REQUIRED
a, b = socket.socketpair(); a.sendall(b"ping"); assert b.recv(4) == b"ping"
out = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout
assert out.strip() == "42", out
assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x * 2)(21) == 42
assert str(decimal.Decimal(1) / 8) == "0.125"
print(json.dumps({"version": sys.version.split()[0], "openssl": ssl.OPENSSL_VERSION, "builtins": len(sys.builtin_module_names)}))
"#;

fn check(node: &str, is_64: bool, machine: u16) {
    let out = common::realize_real(node, &[]);
    let bin = out.join("bin/python3.11");
    let bytes = std::fs::read(&bin).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    assert_eq!((elf.is_64, elf.header.e_machine), (is_64, machine));
    assert_eq!(elf.interpreter, None, "asks for a dynamic loader");
    assert!(elf.libraries.is_empty() && elf.dynamic.is_none(), "dynamic: {:?}", elf.libraries);
    let o = Command::new(&bin)
        .args(["-I", "-c", CHECKS])
        .env_clear()
        .env("PYTHONHOME", &out)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["version"], "3.11.2");
    assert!(v["openssl"].as_str().unwrap().starts_with("OpenSSL 3.0.20"), "{v}");
    assert!(v["builtins"].as_u64().unwrap() >= 90, "{v}");
    // The node says what is in and what is not, with reasons.
    let modules: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("modules.json")).unwrap()).unwrap();
    assert_eq!(modules["builtin"].as_array().unwrap().len() as u64, v["builtins"].as_u64().unwrap());
    assert!(modules["missing"]["_testcapi"].as_str().unwrap().contains("test-only"), "{modules}");
    assert!(modules["missing"]
        .as_object()
        .unwrap()
        .values()
        .all(|r| !r.as_str().unwrap().is_empty()));
}

#[test]
fn python3_11_x86_64_is_static_with_every_module_built_in() {
    check("python3.11-x86_64", true, goblin::elf::header::EM_X86_64);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python3_11_i686_is_static_with_every_module_built_in() {
    check("python3.11-i686", false, goblin::elf::header::EM_386);
}
