//! Fixture graphs for the integration tests: a temporary project with `graph/`, a store, a mirror
//! directory, and tarballs of tiny C packages made on the spot.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SPY: &str = env!("CARGO_BIN_EXE_spy");
pub const TARGET: &str = "x86_64-linux-musl";

pub struct Fixture {
    pub dir: tempfile::TempDir,
}

pub const STAGE0: &str = r#"
name = "stage0"
version = "host"
kind = "bootstrap"
tools = ["bash", "sh", "gcc", "cc", "as", "ld", "ar", "ranlib", "make", "cat", "cp", "mkdir", "ls", "rm",
         "sleep", "date", "echo", "touch", "chmod", "mv", "ln", "sed", "grep", "patch", "head", "tail", "tee", "test", "true", "id", "wc", "rmdir", "sort"]
"#;

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("spy-test-").tempdir().expect("tempdir");
        let f = Fixture { dir };
        f.write("graph/spy.toml", "format = 1\ndefault_target = \"x86_64-linux-musl\"\nimplicit_deps = [\"stage0\"]\n[targets.x86_64-linux-musl]\nshort = \"x86_64\"\n[targets.i686-linux-musl]\nshort = \"i686\"\n");
        f.write("graph/stage0.toml", STAGE0);
        std::fs::create_dir_all(f.mirror()).unwrap();
        f
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn store(&self) -> PathBuf {
        self.root().join("store")
    }
    pub fn mirror(&self) -> PathBuf {
        self.root().join("mirror")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A `spy` command in the fixture project (cwd = project root, so `result` lands there),
    /// isolated from the caller's configuration ([`isolated_spy`]); the user config, if a test
    /// writes one, is `config/spy/config.toml`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = isolated_spy(&self.root().join("home"));
        c.args(args)
            .current_dir(self.root())
            .env("SPY_GRAPH", self.root().join("graph"))
            .env("SPY_STORE", self.store())
            .env("SPY_MIRRORS", self.mirror())
            .env("XDG_CONFIG_HOME", self.root().join("config"));
        c
    }

    /// `spy` with another store.
    pub fn cmd_in(&self, store: &Path, args: &[&str]) -> Command {
        let mut c = self.cmd(args);
        c.env("SPY_STORE", store);
        c
    }

    pub fn spy(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run spy")
    }

    /// Runs spy and insists on success, returning (stdout, stderr).
    pub fn ok(&self, args: &[&str]) -> (String, String) {
        let o = self.spy(args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(o.status.success(), "spy {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
        (out, err)
    }

    /// Runs spy and insists on failure, returning stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.spy(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "spy {args:?} should have failed\nstderr:\n{err}");
        err
    }

    /// Writes a tar.gz of `files` (path, contents, executable) into the mirror; returns its sha256.
    pub fn tarball(&self, name: &str, files: &[(&str, &str)]) -> String {
        let path = self.mirror().join(name);
        make_tar_gz(&path, files);
        sha256(&path)
    }

    /// The tiny C library + program used by most tests, as two tarballs in the mirror.
    /// Returns (lib sha256, app sha256).
    pub fn greet_sources(&self, lib_version: &str) -> (String, String) {
        let lib = self.tarball(
            &format!("libgreet-{lib_version}.tar.gz"),
            &[
                ("libgreet/greet.h", "const char *greet(void);\n"),
                ("libgreet/greet.c", &format!("#include \"greet.h\"\nconst char *greet(void) {{ return \"hello from libgreet {lib_version}\"; }}\n")),
                ("libgreet/Makefile", "libgreet.a: greet.o\n\tar rcs $@ greet.o\ngreet.o: greet.c greet.h\n\t$(CC) -O2 -c greet.c\ninstall: libgreet.a\n\tmkdir -p $(PREFIX)/lib $(PREFIX)/include\n\tcp libgreet.a $(PREFIX)/lib/\n\tcp greet.h $(PREFIX)/include/\n"),
            ],
        );
        let app = self.tarball(
            "hello-1.0.tar.gz",
            &[(
                "hello-1.0/hello.c",
                "#include <stdio.h>\n#include <greet.h>\nint main(void) { puts(greet()); return 0; }\n",
            )],
        );
        (lib, app)
    }

    /// Recipes for libgreet, hello (depends on libgreet) and an unrelated node.
    pub fn greet_graph(&self, lib_version: &str, lib_extra: &str) {
        let (lib_sha, app_sha) = self.greet_sources(lib_version);
        self.write(
            "graph/libgreet.toml",
            &format!(
                "name = \"libgreet\"\nversion = \"{lib_version}\"\n[[sources]]\nfile = \"libgreet-{lib_version}.tar.gz\"\nsha256 = \"{lib_sha}\"\n[phases]\nbuild = \"make CC=gcc\"\ninstall = \"make install PREFIX=$out\"\n{lib_extra}"
            ),
        );
        self.write(
            "graph/hello.toml",
            &format!(
                "name = \"hello\"\nversion = \"1.0\"\ndeps = [\"libgreet\"]\n[[sources]]\nfile = \"hello-1.0.tar.gz\"\nsha256 = \"{app_sha}\"\n[phases]\nbuild = \"gcc -static -I$libgreet/include -o hello hello.c -L$libgreet/lib -lgreet\"\ninstall = \"mkdir -p $out/bin && cp hello $out/bin/\"\n"
            ),
        );
        self.write(
            "graph/other.toml",
            "name = \"other\"\nversion = \"1\"\n[phases]\ninstall = \"echo other > $out/other.txt\"\n",
        );
    }

    /// Writes the fuse fixture's three recipes ([`FUSE_INTERP`], [`FUSE_LIBZ`], [`FUSE_FUSED`]).
    pub fn fuse_graph(&self) {
        self.write("graph/interp.toml", FUSE_INTERP);
        self.write("graph/libz.toml", FUSE_LIBZ);
        self.write("graph/fused.toml", FUSE_FUSED);
    }

    /// Store entry directories (not `.spy`).
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.store())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// The fuse fixture: a tiny static "interpreter" (`interp`, a C program with a fake stdlib), a
/// static library it depends on (`libz`) and the fuse node over it (`fused`).
pub const FUSE_INTERP: &str = r##"
name = "interp"
version = "0.1"
license = "PSF-2.0"
deps = ["libz"]
[phases]
build = "printf '#include <stdio.h>\nint main(void) { puts(\"interp runs\"); return 0; }\n' > main.c && gcc -static -o interp main.c"
install = """
mkdir -p $out/bin $out/lib/std/pkg $out/lib/std/test
cp interp $out/bin/
for f in mod pkg/__init__ test/test_mod; do echo "# $f" > $out/lib/std/$f.py; echo "compiled $f" > $out/lib/std/$f.pyc; done
echo data > $out/lib/std/data.txt
echo '{"builtin": ["sys"], "missing": {"_tkinter": "no GUI here"}}' > $out/modules.json
"""
"##;

pub const FUSE_LIBZ: &str = r##"
name = "libz"
version = "9.9"
license = "Zlib"
[phases]
install = """
mkdir -p $out/lib
printf 'int z(void) { return 1; }\n' > z.c && gcc -c z.c && ar rcs $out/lib/libz.a z.o
"""
"##;

pub const FUSE_FUSED: &str = r##"
name = "fused"
version = "0.1"
kind = "fuse"
license = "PSF-2.0"
deps = ["interp"]
[fuse]
interpreter = "interp"
executable = "bin/interp"
stdlib = "lib/std"
modules = "modules.json"
flavor = "plain"
exclude = ["test"]
"##;

pub fn make_tar_gz(path: &Path, files: &[(&str, &str)]) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_000_000_000);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

/// Runs `sha256sum -c SHA256SUMS` in `dir` (release files) and insists that it passes.
pub fn sha256sums_check(dir: &Path) {
    let o = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

/// Lines of spy's plain progress output that say a node was built.
pub fn built_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("spy: built "))
        .map(|l| l.to_string())
        .collect()
}

/// The store shared by the end-to-end tests: `target/tmp/e2e-store`, or `$SPY_E2E_STORE`.
pub fn e2e_store() -> PathBuf {
    std::env::var_os("SPY_E2E_STORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-store"))
}

/// The `spy` binary with nothing of the caller's configuration: no `SPY_CONFIG`, `SPY_OVERLAYS`,
/// `SPY_MIRRORS`, `SPY_GRAPH` or `SPY_STORE`, and `HOME` and `XDG_CONFIG_HOME` pointing into
/// `home` (created empty if missing), so a cache, overlay or mirror configured on this machine
/// cannot change what a test tests. A test that wants one sets it on the returned command.
pub fn isolated_spy(home: &Path) -> Command {
    std::fs::create_dir_all(home).expect("test home");
    let mut c = Command::new(SPY);
    for var in ["SPY_CONFIG", "SPY_OVERLAYS", "SPY_MIRRORS", "SPY_GRAPH", "SPY_STORE"] {
        c.env_remove(var);
    }
    c.env("HOME", home).env("XDG_CONFIG_HOME", home.join(".config"));
    c
}

/// Runs the real `spy` on the repository's own graph (`graph/`, `overlays/`) with `store`, isolated
/// from the caller's configuration ([`isolated_spy`]: no user overlays, mirrors or caches).
pub fn spy_on_repo(store: &Path, args: &[&str]) -> Output {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    isolated_spy(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("spy-test-home"))
        .args(args)
        .current_dir(&repo)
        .env("SPY_GRAPH", repo.join("graph"))
        .env("SPY_STORE", store)
        .output()
        .unwrap()
}

/// Realizes a node of the repository's own graph into the store shared by the end-to-end tests
/// ([`e2e_store`]), with optional overlays; returns its store path.
pub fn realize_real(node: &str, overlays: &[&Path]) -> PathBuf {
    realize_real_with(node, overlays, &[])
}

/// [`realize_real`] with more of spy's flags (`--py-sources`).
pub fn realize_real_with(node: &str, overlays: &[&Path], flags: &[&str]) -> PathBuf {
    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    args.extend(["realize", "--no-out-link", "-j2"].map(String::from));
    for o in overlays {
        args.extend(["--overlay".to_string(), o.display().to_string()]);
    }
    args.push(node.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = spy_on_repo(&e2e_store(), &args);
    assert!(
        o.status.success(),
        "realizing {node} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// Runs `argv` (resolved inside the root) chrooted into `root` as root of a new user namespace,
/// with exactly `env`: nothing but what the test put there (no /proc, /etc, /usr, /dev); the
/// loopback interface is the host's.
pub fn run_in_root(root: &Path, env: &[(&str, &str)], argv: &[&str]) -> Output {
    let mut c = Command::new(host_tool("unshare"));
    c.args(["--user", "--map-root-user", "--mount", &host_tool("chroot")])
        .arg(root)
        .args(argv)
        .env_clear();
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The stdout of a process that must have succeeded (else a failure showing both streams).
pub fn ok(o: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "status {}\nstdout:\n{stdout}\nstderr:\n{stderr}", o.status);
    stdout.into_owned()
}

/// A host tool by absolute path (tests run commands with a cleared or foreign `PATH`).
pub fn host_tool(name: &str) -> String {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("{name} is not installed (scripts/setup-host.sh installs it)"))
}

/// A program alone in an empty root directory (`unshare --user --mount` + chroot, `TERM=xterm`, no
/// other variable), run on a pseudo-terminal by a private tmux server; the server is killed on drop.
pub struct PtySession {
    socket: String,
}

impl PtySession {
    /// Starts `argv` (paths inside `root`) in a `height`-line window; `name` keeps sockets apart.
    pub fn start_in_root(name: &str, root: &Path, argv: &str, height: u32) -> PtySession {
        Self::start_in_root_as(name, root, argv, height, "xterm")
    }

    /// [`PtySession::start_in_root`] with another `TERM`.
    pub fn start_in_root_as(name: &str, root: &Path, argv: &str, height: u32, term: &str) -> PtySession {
        let s = PtySession {
            socket: format!("spy-{name}-{}", std::process::id()),
        };
        let cmd = format!(
            "env -i TERM={term} {} --user --map-root-user --mount {} {} {argv}; sleep 30",
            host_tool("unshare"),
            host_tool("chroot"),
            root.display()
        );
        s.tmux(&["new-session", "-d", "-s", "pty", "-x", "100", "-y", &height.to_string(), &cmd]);
        s
    }

    /// An interactive `bash` (no rc files, `TERM=xterm`, `PATH=/usr/bin:/bin`, `HOME=home`) on a
    /// pseudo-terminal: what a user types commands into, and what a build must not type into.
    pub fn shell(name: &str, home: &Path) -> PtySession {
        let s = PtySession {
            socket: format!("spy-{name}-{}", std::process::id()),
        };
        let cmd = format!(
            "env -i TERM=xterm PATH=/usr/bin:/bin HOME={} PS1='$ ' bash --norc --noprofile -i",
            home.display()
        );
        s.tmux(&["new-session", "-d", "-s", "pty", "-x", "200", "-y", "50", &cmd]);
        s
    }

    /// Types `line` and Enter, as a user would.
    pub fn type_line(&self, line: &str) {
        self.tmux(&["send-keys", "-t", "pty", "-l", line]);
        self.tmux(&["send-keys", "-t", "pty", "Enter"]);
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux is installed by scripts/setup-host.sh");
        assert!(o.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The screen once it contains `needle` (fails after 20 s, showing the screen).
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_within(needle, 20)
    }

    /// The screen once it contains `needle` (fails after `secs` seconds, showing the screen).
    pub fn wait_for_within(&self, needle: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let screen = self.tmux(&["capture-pane", "-p", "-t", "pty"]);
            if screen.contains(needle) {
                return screen;
            }
            assert!(std::time::Instant::now() < deadline, "never saw {needle:?}; screen:\n{screen}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Sends each key group (tmux `send-keys` arguments: `["-l", "text"]`, `["Left"]`...) in turn,
    /// pausing after each so the program sees them as separate keystrokes.
    pub fn send_keys(&self, groups: &[&[&str]]) {
        for keys in groups {
            let mut args = vec!["send-keys", "-t", "pty"];
            args.extend_from_slice(keys);
            self.tmux(&args);
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

/// A root holding the binary at `/python` and a self-signed certificate made now by the host's
/// openssl (`/cert.pem`, `/key.pem`).
pub fn root_with_certificate(bin: &Path) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(bin, root.path().join("python")).unwrap();
    let o = Command::new(host_tool("openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(root.path().join("key.pem"))
        .arg("-out")
        .arg(root.path().join("cert.pem"))
        .output()
        .unwrap();
    ok(&o);
    root
}

/// What CPython's own suite found wrong in a single file, as a user meets it: `%Z` of a time tuple
/// names the zone (musl prints nothing for a NULL tm_zone; 2.7), DER certificates load as cadata
/// (OpenSSL 3.2+; 2.7, 3.7, 3.11), a TLS peer that closes without close_notify is an EOF (OpenSSL
/// 3; 2.7, 3.7) and one that resets is an OSError on a read or a write, not SSLError "[SYS]" or
/// "unknown error" (2.7, 3.7, 3.11), a password callback that fails raises its own exception
/// (OpenSSL 3 calls it again: SystemError in 3.7), and `python -m trace --count` writes its report
/// although the standard library has no files (3.x).
pub fn tls_time_and_trace_as_upstream(bin: &Path) {
    let root = root_with_certificate(bin);
    let dir = root.path();
    let probe = r#"
import errno, socket, ssl, struct, sys, threading, time
cert, key = sys.argv[1], sys.argv[2]
out = [time.strftime('%Z', time.localtime(0))]
if hasattr(ssl, 'PROTOCOL_TLS_CLIENT'):
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
else:
    client = ssl.SSLContext(ssl.PROTOCOL_SSLv23)
    client.verify_mode = ssl.CERT_REQUIRED
    client.check_hostname = True
    server = ssl.SSLContext(ssl.PROTOCOL_SSLv23)
try:
    client.load_verify_locations(cadata=ssl.PEM_cert_to_DER_cert(open(cert).read()))
    out.append('der:%d' % client.cert_store_stats()['x509'])
except ssl.SSLError as e:
    out.append('der:%s' % e)
    client.load_verify_locations(cafile=cert)
def too_long():
    return 'x' * 2000
def raises():
    raise KeyError('from the callback')
for password in (too_long, raises):
    try:
        server.load_cert_chain(cert, sys.argv[3], password=password)
        out.append('pw:loaded')
    except Exception as e:
        out.append('pw:%s' % type(e).__name__)
server.load_cert_chain(cert, sys.argv[3], password=lambda: 'secret')
listener = socket.socket()
listener.bind(('127.0.0.1', 0))
listener.listen(2)
def serve(how):
    conn, _ = listener.accept()
    s = server.wrap_socket(conn, server_side=True)
    s.sendall(b'hi')
    s.recv(1)
    if how != 'eof':
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    else:
        s.shutdown(socket.SHUT_RDWR)
    s.close()
for how in ('eof', 'reset', 'send'):
    t = threading.Thread(target=serve, args=(how,))
    t.start()
    c = client.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname='localhost')
    assert c.recv(2) == b'hi'
    c.sendall(b'!')
    t.join()
    try:
        if how == 'send':
            for _ in range(100):
                c.sendall(b'x' * 65536)
            rest = 'sent'
        else:
            rest = c.recv(10)
        out.append('%s:%s' % (how, 'empty' if rest == b'' else rest))
    except ssl.SSLEOFError:
        out.append('%s:SSLEOFError' % how)
    except ssl.SSLError as e:
        out.append('%s:SSLError %s' % (how, e))
    except (OSError, IOError) as e:
        reset = e.errno in (errno.ECONNRESET, errno.EPIPE)
        out.append('%s:OSError %s' % (how, 'reset' if reset else errno.errorcode.get(e.errno)))
    c.close()
print(' | '.join(out))
"#;
    std::fs::write(dir.join("probe.py"), probe).unwrap();
    let o = Command::new(host_tool("openssl"))
        .args(["pkey", "-aes128", "-passout", "pass:secret", "-in"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("protected.pem"))
        .output()
        .unwrap();
    ok(&o);
    let o = Command::new(bin)
        .arg(dir.join("probe.py"))
        .arg(dir.join("cert.pem"))
        .arg(dir.join("key.pem"))
        .arg(dir.join("protected.pem"))
        .env("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
        .output()
        .unwrap();
    let out = ok(&o);
    let parts: Vec<&str> = out.trim().split(" | ").collect();
    assert_eq!(parts[..5], ["CET", "der:1", "pw:ValueError", "pw:KeyError", "eof:empty"], "{out}");
    // A read from a reset connection: OSError from errno, or (3.11, as with OpenSSL 3.0, which its
    // tests expect) the EOF of a connection gone, suppressed; a write to it: OSError, or (3.11)
    // SSLEOFError. Never SSLError "[SYS] unknown error" or "unknown error".
    assert!(["reset:OSError reset", "reset:empty"].contains(&parts[5]), "{out}");
    assert!(["send:OSError reset", "send:SSLEOFError"].contains(&parts[6]), "{out}");
    assert_eq!(parts.len(), 7, "{out}");

    std::fs::write(dir.join("traced.py"), "import json\nprint(json.dumps([1]))\n").unwrap();
    let o = Command::new(bin)
        .current_dir(dir)
        .args(["-m", "trace", "--count", "-C", "coverage", "traced.py"])
        .output()
        .unwrap();
    assert_eq!(ok(&o).trim(), "[1]");
    let report = std::fs::read_to_string(dir.join("coverage/traced.cover")).unwrap();
    assert!(report.contains("import json"), "{report}");
}

/// Runs git in `repo` with a fixed author and committer; returns its trimmed stdout.
pub fn git_in(repo: &std::path::Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .env("GIT_AUTHOR_DATE", "2001-02-03T04:05:06Z")
        .env("GIT_COMMITTER_DATE", "2001-02-03T04:05:06Z")
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A release made with overlays/libedit.toml, by its manifest: libedit is linked, GNU readline is
/// not, and no part of the binary is GPL only.
pub fn manifest_says_libedit_not_readline(out: &Path) {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let comps = m["components"].as_array().unwrap();
    assert!(comps
        .iter()
        .any(|c| c["name"] == "libedit" && c["license"] == "BSD-3-Clause" && c["role"] == "linked"));
    assert!(!comps.iter().any(|c| c["name"] == "readline"), "GNU readline is still linked");
    let license = m["license"].as_str().unwrap();
    // zstd (graph/libs/zstd.toml) is offered under either licence: BSD-3-Clause is the choice
    // that keeps the binary permissive; no part is GPL only.
    let permissive = license.replace("(BSD-3-Clause OR GPL-2.0-only)", "BSD-3-Clause");
    assert!(license.contains("BSD-3-Clause") && !permissive.contains("GPL"), "{license}");
    assert!(builtin_modules(&m).contains(&"readline"));
}

/// The `modules.builtin` list of a release manifest.
pub fn builtin_modules(manifest: &serde_json::Value) -> Vec<&str> {
    manifest["modules"]["builtin"]
        .as_array()
        .expect("the manifest lists its built-in modules")
        .iter()
        .map(|v| v.as_str().expect("a module name"))
        .collect()
}

/// A tar.gz of raw entries `(name, symlink target, mode)`, each file holding `data`, written byte
/// by byte as a hostile tool would (the tar crate's own setters refuse such names).
pub fn raw_tar_gz(path: &Path, entries: &[(&str, Option<&str>, u32)], data: &[u8]) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, link, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        let data: &[u8] = if link.is_some() { b"" } else { data };
        h.set_size(data.len() as u64);
        if link.is_some() {
            h.set_entry_type(tar::EntryType::Symlink);
        }
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            g.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// A pure-Python wheel made here (`spyhello`), for pip to install offline.
pub fn make_wheel(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("spyhello-1.0-py2.py3-none-any.whl");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for (name, text) in [
        ("spyhello/__init__.py", "GREETING = 'hello from a wheel'\n"),
        (
            "spyhello-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: spyhello\nVersion: 1.0\n",
        ),
        (
            "spyhello-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: spy-test\nRoot-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n",
        ),
        (
            "spyhello-1.0.dist-info/RECORD",
            "spyhello/__init__.py,,\nspyhello-1.0.dist-info/METADATA,,\nspyhello-1.0.dist-info/WHEEL,,\nspyhello-1.0.dist-info/RECORD,,\n",
        ),
    ] {
        z.start_file(name, opts).unwrap();
        z.write_all(text.as_bytes()).unwrap();
    }
    z.finish().unwrap();
    path
}

/// The prefix, venv and pip as python-build-standalone's users know them. The single file at
/// `<dir>/py/bin/` has `<dir>/py` as its prefix, and site, sysconfig and pip agree; `-m ensurepip
/// --user` installs pip from the bundled wheel and `pip install --user` puts a wheel made here in
/// the usual user site, offline. 3.x: `-m venv` makes a venv whose python is the single file and
/// whose pip installs the wheel into the venv.
pub fn prefix_pip_and_venv(bin: &Path, release: &str, stdlib: &str, py2: bool) {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("py/bin")).unwrap();
    let python = dir.join("py/bin").join(release);
    std::fs::copy(bin, &python).unwrap();
    let wheel = make_wheel(dir);
    let wheel = wheel.to_str().unwrap();
    let home = dir.join("home");
    let run = |exe: &Path, args: &[&str]| {
        let o = Command::new(exe)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_INDEX", "1")
            .current_dir(dir)
            .output()
            .unwrap();
        ok(&o)
    };
    let layout = run(
        &python,
        &[
            "-c",
            "import sys, sysconfig, site; print(sys.prefix); print(sysconfig.get_paths()['purelib']); print(site.getusersitepackages())",
        ],
    );
    let user_site = home.join(".local/lib").join(stdlib).join("site-packages");
    let expected = [
        dir.join("py").display().to_string(),
        dir.join("py/lib").join(stdlib).join("site-packages").display().to_string(),
        user_site.display().to_string(),
    ];
    assert_eq!(layout.lines().collect::<Vec<_>>(), expected);

    let show = "import spyhello, sys; print(spyhello.GREETING); print(spyhello.__file__)";
    run(&python, &["-m", "ensurepip", "--user"]);
    // pip from the bundled wheel, which the ZIP carries recompressed (spy-pack-wheels.py).
    let bundled = run(&python, &["-c", "import ensurepip; print(ensurepip.version())"]);
    let installed = run(&python, &["-m", "pip", "--version"]);
    assert!(
        installed.starts_with(&format!("pip {} from {}", bundled.trim(), home.display())),
        "bundled pip {bundled}, installed {installed}"
    );
    run(&python, &["-m", "pip", "install", "--user", wheel]);
    let text = run(&python, &["-c", show]);
    assert!(
        text.starts_with("hello from a wheel\n") && text.contains(&user_site.join("spyhello").display().to_string()),
        "{text}"
    );
    c_extension_build_says_what_to_do(&python, release, stdlib, dir, &home);
    std::fs::remove_dir_all(&home).unwrap();
    if py2 {
        return;
    }

    run(&python, &["-m", "venv", "v"]);
    let vpy = dir.join("v/bin/python");
    // The activation scripts come out of the ZIP.
    let activate = std::fs::read_to_string(dir.join("v/bin/activate")).expect("v/bin/activate");
    assert!(activate.contains(&dir.join("v").display().to_string()), "{activate}");
    assert_eq!(
        std::fs::canonicalize(&vpy).unwrap(),
        python.canonicalize().unwrap(),
        "the venv's python is the single file"
    );
    // With copies (venv.create's default) the venv's python, named `python`, is a copy of the
    // single file that no file in `home` is named like; it still finds its standard library.
    run(&python, &["-m", "venv", "--copies", "--without-pip", "vc"]);
    let prefixes = run(
        &dir.join("vc/bin/python"),
        &["-c", "import sys, json; print(sys.prefix); print(sys.base_prefix)"],
    );
    assert_eq!(
        prefixes.lines().collect::<Vec<_>>(),
        [dir.join("vc").display().to_string(), dir.join("py").display().to_string()]
    );
    let pip = run(&dir.join("v/bin/pip"), &["--version"]);
    assert!(
        pip.starts_with("pip ") && pip.contains(&dir.join("v").display().to_string()),
        "{pip}"
    );
    run(&dir.join("v/bin/pip"), &["install", wheel]);
    let text = run(&vpy, &["-c", show]);
    let site = dir.join("v/lib").join(stdlib).join("site-packages/spyhello");
    assert!(
        text.starts_with("hello from a wheel\n") && text.contains(&site.display().to_string()),
        "{text}"
    );
    // Only the venv has it.
    let o = Command::new(&python)
        .args(["-c", "import spyhello"])
        .env_clear()
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(!o.status.success());
}

/// The sources of `spamext` 1.0 (in `dir/spamext-1.0`, returned): a C extension module
/// `spamext` (`add`, and `greeting`, which returns the GREETING of the `spyhello` wheel as the
/// build found it: a build requirement in its pyproject.toml), and a pure module `spamext_util`.
pub fn c_extension_sdist(dir: &Path) -> PathBuf {
    let top = dir.join("spamext-1.0");
    std::fs::create_dir_all(&top).unwrap();
    for (name, text) in [
        (
            "PKG-INFO",
            "Metadata-Version: 2.1\nName: spamext\nVersion: 1.0\nLicense-Expression: MIT\n",
        ),
        (
            "setup.py",
            r#"try:
    from setuptools import setup, Extension
except ImportError:
    from distutils.core import setup, Extension
try:
    import spyhello
    greeting = spyhello.GREETING
except ImportError:
    greeting = "no spyhello"
setup(name="spamext", version="1.0", py_modules=["spamext_util"],
      ext_modules=[Extension("spamext", ["spam.c"], define_macros=[("GREETING", '"%s"' % greeting)])])
"#,
        ),
        ("spamext_util.py", "def twice(x):\n    return 2 * x\n"),
        (
            "spam.c",
            r#"#include <Python.h>
static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}
static PyObject *greeting(PyObject *self, PyObject *args) { return PyUnicode_FromString(GREETING); }
static PyMethodDef methods[] = {
    {"add", add, METH_VARARGS, NULL}, {"greeting", greeting, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
#if PY_MAJOR_VERSION >= 3
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "spamext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_spamext(void) { return PyModule_Create(&module); }
#else
PyMODINIT_FUNC initspamext(void) { Py_InitModule("spamext", methods); }
#endif
"#,
        ),
    ] {
        std::fs::write(top.join(name), text).unwrap();
    }
    top
}

/// pip's build of a C extension for the single file fails with one message that says why and
/// gives the `spy realize --with` command for the release and the package's version.
/// setuptools comes from `ensurepip --user` (already run, in `home`), or, for Pythons whose
/// ensurepip has none (3.12 and later), from the graph's setuptools node.
fn c_extension_build_says_what_to_do(python: &Path, release: &str, stdlib: &str, dir: &Path, home: &Path) {
    let sdist = c_extension_sdist(dir);
    let env = |c: &mut Command| {
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .current_dir(dir);
    };
    let mut probe = Command::new(python);
    probe.args(["-c", "import setuptools"]);
    env(&mut probe);
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "install", "--user", "--no-build-isolation", "--no-index"])
        .arg(&sdist);
    env(&mut cmd);
    if !probe.output().unwrap().status.success() {
        let tools = realize_real(&format!("setuptools-py{}", stdlib.trim_start_matches("python")), &[]);
        cmd.env("PYTHONPATH", tools.join("python-tools"));
    }
    let o = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("cannot load C extension modules") && text.contains(&format!("spy realize {release} --with spamext==1.0")),
        "{text}"
    );
}

/// `spy realize RELEASE --with`: a C-extension sdist made here, on a package index made here
/// (pip's own settings point at it), is resolved with its build requirement (a pure-Python wheel),
/// recorded in the lock file, compiled in and run in an empty root; `--offline` then makes the same
/// release from the lock alone; an sdist with a Rust build is refused with the reason. `suffix` is
/// what the graph's package nodes for the release's interpreter end in; `mirror`, a source mirror
/// the release needs (the Stackless clone).
pub fn with_compiles_a_c_extension_sdist(release: &str, suffix: &str, python: &str, mirror: Option<&Path>) {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let index = dir.join("index");
    std::fs::create_dir_all(&index).unwrap();
    let top = c_extension_sdist(dir);
    std::fs::write(
        top.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools\", \"spyhello\"]\nbuild-backend = \"setuptools.build_meta\"\n",
    )
    .unwrap();
    let files: Vec<(String, String)> = ["PKG-INFO", "setup.py", "spamext_util.py", "spam.c", "pyproject.toml"]
        .iter()
        .map(|f| (format!("spamext-1.0/{f}"), std::fs::read_to_string(top.join(f)).unwrap()))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    make_tar_gz(&index.join("spamext-1.0.tar.gz"), &files);
    make_wheel(&index);
    let lock = dir.join("spy.lock");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let spy_cmd = |args: &[&str]| {
        let mut c = isolated_spy(&dir.join("home"));
        c.current_dir(&repo)
            .env("SPY_GRAPH", repo.join("graph"))
            .env("SPY_STORE", e2e_store())
            .args(["realize", "--no-out-link", "-j2", release])
            .args(args);
        if let Some(m) = mirror {
            c.arg("--mirror").arg(m);
        }
        c
    };
    // The release as the graph has it first, with pip's usual index for any source not cached yet
    // (tzdata's and setuptools' sdists): below, pip sees only the index made here.
    ok(&spy_cmd(&[]).output().unwrap());
    let spy = |args: &[&str], index: Option<&Path>| {
        let mut c = spy_cmd(args);
        c.arg("--lock")
            .arg(&lock)
            .env("PIP_NO_INDEX", "1")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
        if let Some(i) = index {
            c.env("PIP_FIND_LINKS", i);
        }
        c.output().unwrap()
    };

    let o = spy(&["--with", "spamext"], Some(&index));
    let out = PathBuf::from(ok(&o).trim());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("spamext: build requirement spyhello-1.0-py2.py3-none-any.whl"),
        "{stderr}"
    );
    let locked = std::fs::read_to_string(&lock).unwrap();
    let python_line = format!("python = \"{python}\"");
    for line in [
        "name = \"spamext\"",
        &python_line,
        "version = \"1.0\"",
        "license = \"MIT\"",
        "name = \"spyhello\"",
    ] {
        assert!(locked.contains(line), "{line} in:\n{locked}");
    }
    let root = empty_root(&out.join("bin").join(release), release, &[]);
    // One string printed, so that 2.7's print statement shows what 3's function does.
    let probe = "import sys, spamext, spamext_util\nprint('%s %s %s %s' % (spamext.add(2, 3), spamext.greeting(), spamext_util.twice(4), 'spamext' in sys.builtin_module_names))";
    let o = run_in_root(root.path(), &[], &[&format!("/{release}"), "-c", probe]);
    assert_eq!(ok(&o).trim(), "5 hello from a wheel 8 True");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let node = format!("spamext-{suffix}");
    let component = m["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == node.as_str())
        .expect("spamext in the manifest");
    assert_eq!(
        (component["version"].as_str(), component["license"].as_str()),
        (Some("1.0"), Some("MIT"))
    );

    // The index is gone: the lock alone makes the same release.
    std::fs::remove_dir_all(&index).unwrap();
    let o = spy(&["--offline", "--with", "spamext"], None);
    assert_eq!(PathBuf::from(ok(&o).trim()), out);
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("spamext 1.0 for Python {python}: from")));
    let o = spy(&["--offline", "--with", "spamext==2.0"], None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("spamext==2.0 for Python {python} is not in the lock file")),
        "{stderr}"
    );

    std::fs::create_dir_all(&index).unwrap();
    make_tar_gz(
        &index.join("rusty-1.0.tar.gz"),
        &[
            ("rusty-1.0/setup.py", "from setuptools import setup\nsetup()\n"),
            ("rusty-1.0/Cargo.toml", "[package]\n"),
        ],
    );
    let o = spy(&["--with", "rusty"], Some(&index));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("rusty-1.0.tar.gz cannot be compiled in: it has a Rust build"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        locked,
        "a refused package leaves the lock as it was"
    );
}

/// Every data file of the standard library is in the ZIP or left out on purpose (the manifest's
/// `excluded`, documented in graph/python/releases-*.toml), nothing patch left behind is; lib2to3,
/// which reads its grammars as data, works alone in an empty root.
/// `stdlib` is the interpreter node's standard library directory, `out` the release's entry.
pub fn stdlib_data_is_in_the_zip(bin: &Path, out: &Path, stdlib: &Path, release: &str) {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let excluded: Vec<&str> = m["binary"]["stdlib_zip"]["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let zip = zip::ZipArchive::new(std::fs::File::open(bin).unwrap()).unwrap();
    let members: std::collections::BTreeSet<&str> = zip.file_names().collect();
    let mut data = 0;
    for p in walk(stdlib) {
        let rel = p.strip_prefix(stdlib).unwrap().display().to_string();
        if rel.ends_with(".py") || rel.ends_with(".pyc") || rel.contains("__pycache__/") {
            continue;
        }
        let left_out = excluded.iter().any(|e| rel == *e || rel.starts_with(&format!("{e}/")));
        assert!(
            left_out || members.contains(rel.as_str()),
            "{rel}: a data file of the stdlib, neither in the ZIP nor excluded"
        );
        data += usize::from(!left_out);
    }
    assert!(data > 5, "only {data} data files");
    assert!(
        !members.iter().any(|n| n.ends_with(".orig") || n.ends_with(".rej")),
        "patch leftovers in the ZIP"
    );
    if stdlib.join("lib2to3").is_dir() {
        let pickles = members
            .iter()
            .filter(|n| n.starts_with("lib2to3/") && n.ends_with(".pickle"))
            .count();
        assert_eq!(pickles, 2, "lib2to3's grammar pickles");
        let root = empty_root(bin, release, &[]);
        let fix = "from lib2to3 import refactor\nt = refactor.RefactoringTool(['lib2to3.fixes.fix_print'])\nprint(str(t.refactor_string(u'print \"hi\"\\n', '<s>')).strip())";
        let o = run_in_root(root.path(), &[], &[&format!("/{release}"), "-W", "ignore", "-c", fix]);
        assert_eq!(ok(&o).trim(), "print(\"hi\")");
    }
    // pydoc reads its stylesheet, and knows the stdlib's modules (for their documentation's
    // address), inside the ZIP (patched in 3.7, 3.11 and 3.13: CPython's test_pydoc found both).
    if ["python3.7", "python3.11", "python3.13"].iter().any(|v| stdlib.ends_with(v)) {
        let root = empty_root(bin, release, &[]);
        let probe = "import pydoc, json\nprint(pydoc.TextDoc().getdocloc(json))\nprint('CSS file for pydoc' in pydoc._url_handler('pydoc_data/_pydoc.css', 'text/css'))";
        let o = run_in_root(root.path(), &[], &[&format!("/{release}"), "-c", probe]);
        let text = ok(&o);
        let version = stdlib.file_name().unwrap().to_str().unwrap().trim_start_matches("python");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.len() == 2 && lines[0].starts_with(&format!("https://docs.python.org/{version}/library/json")) && lines[1] == "True",
            "{text}"
        );
    }
}

/// A root directory holding only the binary (at `/<release>`) and `files`.
pub fn empty_root(bin: &Path, release: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(bin, root.path().join(release)).unwrap();
    for (rel, bytes) in files {
        let p = root.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    root
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A process a test started (a server), killed and reaped when dropped.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `spy serve` (`cmd`, with its arguments) and returns it with the URL it says it listens at
/// (`http://HOST:PORT/`). Its request log is read in the background so that it never blocks.
pub fn start_spy_serve(mut cmd: Command) -> (Server, String) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let server = Server(child);
    let url = loop {
        let line = lines.next().expect("spy serve says where it listens").unwrap();
        if let Some(rest) = line.split(" at ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (server, url)
}

/// unicodedata's database and the CJK codecs' mappings stay deflated in the binary until their
/// module's first import (graph/python/cpython-tools/spy-lazy-tables.pl). Upstream's own tests of
/// them, from the interpreter node's `Lib/test`: the database's checksums over every code point (run
/// by unittest, under which their `cpu` resource is on) and each codec's round trips
/// (test_multibytecodec is left out: one of its cases needs `_testcapi`, which no release has).
/// `test` is the interpreter node's `Lib/test` (the single file leaves it out).
pub fn lazy_tables_inflate_as_upstream(bin: &Path, test: &Path) {
    let tests_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(test, tests_dir.path().join("test")).unwrap();
    let mut c = Command::new(bin);
    c.args(["-m", "unittest", "-v"]);
    for class in ["UnicodeMethodsTest", "UnicodeFunctionsTest", "UnicodeMiscTest"] {
        c.arg(format!("test.test_unicodedata.{class}"));
    }
    for codecs in ["cn", "hk", "iso2022", "jp", "kr", "tw"] {
        c.arg(format!("test.test_codecencodings_{codecs}"));
    }
    let o = c
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PYTHONPATH", tests_dir.path())
        .current_dir(tests_dir.path())
        .output()
        .unwrap();
    ok(&o);
    let text = String::from_utf8_lossy(&o.stderr);
    for checksum in ["test_method_checksum", "test_function_checksum"] {
        assert!(
            text.lines().any(|l| l.starts_with(checksum) && l.ends_with(" ok")),
            "{checksum} did not run and pass:\n{text}"
        );
    }
    assert!(text.contains("\nOK"), "{text}");
}

/// The lazy code groups (graph/python/pyext/spy_lazy_link.py): segments the file holds no bytes
/// of, sealed (no access at all) until a module of their group is imported. Runs `probe` (Python
/// 2 or 3, it prints `ok` when the module works) in a fresh process and checks the segments'
/// protections before and after: all sealed at first; after, code executable, constants readable
/// and data writable for the probed group, and the other groups still sealed. Returns the number
/// of lazy segments.
pub fn lazy_code_inflates_on_import(bin: &Path, probe: &str) -> usize {
    let bytes = std::fs::read(bin).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let lazy: Vec<String> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD && p.p_filesz == 0 && p.p_memsz > 0)
        .map(|p| format!("{}:{}", p.p_vaddr, p.p_memsz))
        .collect();
    assert!(lazy.len() >= 4, "{} lazy segments in {}", lazy.len(), bin.display());
    let script = format!(
        "import sys\n\
         def prot():\n\
         \x20   maps = [l.split() for l in open('/proc/self/maps')]\n\
         \x20   out = []\n\
         \x20   for r in sys.argv[1:]:\n\
         \x20       lo = int(r.split(':')[0])\n\
         \x20       out.append([m[1][:3] for m in maps if int(m[0].split('-')[0], 16) <= lo < int(m[0].split('-')[1], 16)][0])\n\
         \x20   return ' '.join(out)\n\
         print(prot())\n\
         {probe}\n\
         print(prot())\n"
    );
    let out = ok(&Command::new(bin).arg("-c").arg(&script).args(&lazy).output().unwrap());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].split(' ').all(|p| p == "---"), "not sealed at start-up: {}", lines[0]);
    assert_eq!(lines[1], "ok");
    let after: Vec<&str> = lines[2].split(' ').collect();
    assert!(after.contains(&"r-x") && after.contains(&"r--"), "nothing inflated: {}", lines[2]);
    assert!(after.contains(&"---"), "every group inflated by one import: {}", lines[2]);
    // Code executable, constants read-only, data read-write: never written code.
    assert!(after.iter().all(|p| ["---", "r-x", "r--", "rw-"].contains(p)), "{}", lines[2]);
    lazy.len()
}
