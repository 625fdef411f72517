//! Hostile recipes and builds against the host (issue 15), through the real `spy` binary on fixture
//! graphs: each test is an attack that worked once, and asserts that the host is untouched.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A version or name with path syntax is refused when the graph loads, with file, line and key,
/// and the directories it aimed at (through `.spy/tmp/<entry>` and through `<store>/<entry>`)
/// survive. Before: setup created `<victim>/out`, the build failed, and cleanup removed the victim.
#[test]
fn path_syntax_in_a_name_or_version_is_refused_at_load() {
    let f = Fixture::new();
    f.ok(&["realize", "--no-out-link", "stage0"]);
    // `.spy/tmp/<id>-evil-1/../../victim` is `.spy/victim`; `<store>/<id>-evil-1/../../victim`
    // and `.spy/tmp/<id>-evil-1/../../../../victim` are the fixture's `victim`.
    let victims = [f.store().join(".spy/victim"), f.root().join("victim")];
    for v in &victims {
        std::fs::create_dir_all(v).unwrap();
        std::fs::write(v.join("precious"), "keep me\n").unwrap();
    }
    for version in ["1/../../victim", "1/../../../../victim", "..", "1/2", "/abs"] {
        f.write(
            "graph/evil.toml",
            &format!("name = \"evil\"\nversion = \"{version}\"\n[phases]\nbuild = \"exit 1\"\n"),
        );
        for args in [
            &["realize", "evil"][..],
            &["realize", "--no-sandbox", "evil"],
            &["list"],
            &["path", "stage0"],
        ] {
            let err = f.fails(args);
            assert!(
                err.contains("evil.toml:2") && err.contains("key `version`"),
                "{version} {args:?}: {err}"
            );
            assert!(err.contains(version), "{err}");
        }
        for v in &victims {
            assert_eq!(std::fs::read_to_string(v.join("precious")).unwrap(), "keep me\n", "{}", v.display());
        }
    }
    for name in ["a/b", "..", "../victim", ".hidden", "-rf", ""] {
        f.write("graph/evil.toml", &format!("version = \"1\"\nname = \"{name}\"\n"));
        let err = f.fails(&["realize", "stage0"]);
        assert!(err.contains("evil.toml:2") && err.contains("key `name`"), "{name}: {err}");
    }
    f.write("graph/evil.toml", "name = \"evil\"\nversion = \"1\"\n");
    // The same through an overlay's node name and a variant's name.
    f.write("overlays/o.toml", "[nodes.\"../victim\"]\nversion = \"1\"\n");
    let err = f.fails(&["list", "--overlay", "overlays/o.toml"]);
    assert!(err.contains("o.toml:1") && err.contains("../victim"), "{err}");
    f.write("graph/var.toml", "version = \"1\"\n[variants.\"x/../../victim\"]\n");
    let err = f.fails(&["list"]);
    assert!(err.contains("var.toml:2") && err.contains("x/../../victim"), "{err}");
    for v in &victims {
        assert!(v.join("precious").exists());
    }
}

/// Every other recipe value that becomes a path is checked too: a source's file name, a patch,
/// a local file, a host tool, a source variable, the paths of a fuse node.
#[test]
fn other_path_fields_are_refused_at_load() {
    let f = Fixture::new();
    let sha = "0".repeat(64);
    for (key, recipe) in [
        ("sources.file", format!("[[sources]]\nfile = \"../../escape.tar.gz\"\nsha256 = \"{sha}\"\n")),
        ("patches", "patches = [\"../../../etc/passwd\"]\n".to_string()),
        ("files", "files = [\"/etc/shadow\"]\n".to_string()),
        ("sources.var", format!("[[sources]]\nfile = \"a.tar.gz\"\nsha256 = \"{sha}\"\nvar = \"PATH=/x\"\n")),
        ("tools", "kind = \"bootstrap\"\ntools = [\"../../tmp/evil\"]\n".to_string()),
        (
            "fuse.executable",
            "kind = \"fuse\"\ndeps = [\"stage0\"]\n[fuse]\ninterpreter = \"stage0\"\nexecutable = \"../../../etc/shadow\"\nstdlib = \"lib\"\nflavor = \"x\"\n".to_string(),
        ),
        (
            "fuse.stdlib",
            "kind = \"fuse\"\ndeps = [\"stage0\"]\n[fuse]\ninterpreter = \"stage0\"\nexecutable = \"bin/x\"\nstdlib = \"/\"\nflavor = \"x\"\n".to_string(),
        ),
    ] {
        f.write("graph/evil.toml", &format!("name = \"evil\"\nversion = \"1\"\n{recipe}"));
        let err = f.fails(&["list"]);
        assert!(err.contains("evil.toml:") && err.contains(&format!("key `{key}`")), "{key}: {err}");
    }
}

/// The attack program: tries to type `touch CANARY` into every terminal it can reach, then probes
/// the seccomp filter through `/dev/null` (where an unfiltered TIOCSTI says ENOTTY), and reports.
const INJECT_C: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static char line[512];

static int inject(int fd) {
    for (char *c = line; *c; c++)
        if (ioctl(fd, TIOCSTI, c) < 0) return errno;
    return 0;
}

static const char *res(long r) { return r < 0 ? strerror(errno) : "ok"; }

int main(int argc, char **argv) {
    snprintf(line, sizeof line, "touch %s\n", argc > 1 ? argv[1] : "/tmp/spy-injected");
    int fd = open("/dev/tty", O_RDWR);
    printf("devtty=%s\n", fd < 0 ? strerror(errno) : "open");
    if (fd >= 0) printf("inject_devtty=%s\n", strerror(inject(fd)));
    for (int i = 0; i < 256; i++)
        if (isatty(i)) printf("tty_fd=%d inject=%s\n", i, strerror(inject(i)));
    if (argc > 2) return 0; /* control run: only the injection */
    int n = open("/dev/null", O_RDWR);
    char c = 'x';
    int one = 1;
    errno = 0; printf("null_tiocsti=%s\n", res(ioctl(n, TIOCSTI, &c)));
    errno = 0; printf("null_tioclinux=%s\n", res(ioctl(n, TIOCLINUX, &c)));
    errno = 0; printf("null_tiocsti_high_bits=%s\n", res(syscall(SYS_ioctl, n, 0x100000000UL | TIOCSTI, &c)));
    errno = 0; printf("null_fionbio=%s\n", res(ioctl(n, FIONBIO, &one)));
#ifdef __x86_64__
    static char c32 = 'x';
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(54), "b"(n), "c"(TIOCSTI), "d"(&c32) : "memory");
    printf("null_tiocsti_int80=%s\n", r < 0 ? strerror(-r) : "ok");
    r = syscall(0x40000000 + 514, n, TIOCSTI, &c);
    printf("null_tiocsti_x32=%s\n", res(r));
#endif
    char stdin_is[256] = {0};
    if (readlink("/proc/self/fd/0", stdin_is, sizeof stdin_is - 1) < 0) strcpy(stdin_is, strerror(errno));
    printf("stdin=%s\n", stdin_is);
    FILE *st = fopen("/proc/self/stat", "r");
    int tty_nr = -1;
    if (st && fscanf(st, "%*d %*s %*c %*d %*d %*d %d", &tty_nr) != 1) tty_nr = -2;
    printf("tty_nr=%d\n", tty_nr);
    return 0;
}
"#;

/// A build cannot type commands into the user's terminal (TIOCSTI): spy runs under an interactive
/// shell on a pseudo-terminal, the build tries every terminal it can reach, and the shell runs
/// nothing afterwards. The same program run by the user (outside spy) does inject, which shows
/// that the harness would see an injection. Before: `/dev/tty` was bound into the sandbox and the
/// build stayed in spy's session, so the line ran as the user once spy exited.
#[test]
fn a_build_cannot_type_into_the_users_terminal() {
    let f = Fixture::new();
    f.write("graph/inject.c", INJECT_C);
    f.write(
        "graph/injector.toml",
        "name = \"injector\"\nversion = \"1\"\nfiles = [\"inject.c\"]\n[phases]\nbuild = \"gcc -static -O1 -o inject $SPY_FILES/inject.c\"\ninstall = \"mkdir -p $out/bin && cp inject $out/bin/\"\n",
    );
    let injected = f.root().join("INJECTED-BY-BUILD");
    f.write(
        "graph/attack.toml",
        &format!(
            "name = \"attack\"\nversion = \"1\"\ndeps = [\"injector\"]\n[phases]\nbuild = '''\n$injector/bin/inject {} > $out/report 2>&1\ngrep NoNewPrivs /proc/self/status >> $out/report\nsleep 1\n'''\n",
            injected.display()
        ),
    );
    let (out, _) = f.ok(&["realize", "--no-out-link", "injector"]);
    let inject = PathBuf::from(out.trim()).join("bin/inject");
    // spy as the user starts it from the shell, with the fixture's environment.
    let script = f.root().join("run-spy.sh");
    let env = |c: &Command| {
        c.get_envs()
            .map(|(k, v)| match v {
                Some(v) => format!("export {}='{}'\n", k.to_string_lossy(), v.to_string_lossy()),
                None => format!("unset {}\n", k.to_string_lossy()),
            })
            .collect::<String>()
    };
    let cmd = f.cmd(&[]);
    std::fs::write(
        &script,
        format!("{}cd '{}'\n'{SPY}' realize --no-out-link attack\n", env(&cmd), f.root().display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let pty = PtySession::shell("tiocsti", f.root());
    pty.wait_for("$");
    // Control: the user's own program does type into the terminal.
    let control = f.root().join("INJECTED-BY-CONTROL");
    pty.type_line(&format!("{} {} control", inject.display(), control.display()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !control.exists() {
        assert!(
            Instant::now() < deadline,
            "the control injection did not work: this kernel refuses TIOCSTI (dev.tty.legacy_tiocsti?), so the test proves nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // (The quotes keep the echoed command line from matching what the screen is searched for.)
    pty.type_line(&format!("{}; echo \"SPY\"\"-EXIT=$?\"", script.display()));
    let screen = pty.wait_for_within("SPY-EXIT=", 300);
    assert!(screen.contains("SPY-EXIT=0"), "{screen}");
    // Anything typed into the terminal during the build reaches the shell now.
    pty.type_line("echo \"SHELL\"\"-READ-ALL\"");
    pty.wait_for("SHELL-READ-ALL");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!injected.exists(), "the build typed a command that the user's shell ran");
    let (path, _) = f.ok(&["path", "attack"]);
    let report = std::fs::read_to_string(Path::new(path.trim()).join("report")).unwrap();
    assert!(
        report.contains("devtty=No such file or directory"),
        "/dev/tty is in the sandbox:\n{report}"
    );
    assert!(!report.contains("tty_fd="), "the build holds a terminal:\n{report}");
    assert!(report.contains("tty_nr=0"), "the build has a controlling terminal:\n{report}");
    assert!(report.contains("stdin=/dev/null"), "{report}");
    // The seccomp filter: TIOCSTI and TIOCLINUX are refused whatever the fd, whatever the high
    // bits of the argument, through the 32-bit entry too; other ioctls work.
    for probe in ["null_tiocsti", "null_tioclinux", "null_tiocsti_high_bits"] {
        assert!(report.contains(&format!("{probe}=Operation not permitted")), "{probe}:\n{report}");
    }
    for compat in ["null_tiocsti_int80", "null_tiocsti_x32"] {
        if let Some(line) = report.lines().find(|l| l.starts_with(compat)) {
            assert!(
                line.ends_with("Operation not permitted") || line.ends_with("Function not implemented"),
                "{line}"
            );
        }
    }
    assert!(report.contains("null_fionbio=ok"), "{report}");
    assert!(report.contains("NoNewPrivs:\t1"), "{report}");
}

/// A descriptor that the caller of spy left open (not close-on-exec, as a careless shell or a
/// terminal multiplexer may) does not reach the build: the sandbox passes on only stdin, stdout,
/// stderr and the jobserver's pipe.
#[test]
fn a_descriptor_leaked_to_spy_does_not_reach_the_build() {
    let f = Fixture::new();
    f.write(
        "graph/fds.toml",
        "name = \"fds\"\nversion = \"1\"\n[phases]\nbuild = \"ls -l /proc/self/fd/ > $out/fds 2>&1\"\n",
    );
    // Descriptor 7: left open by the caller (a terminal, in the attack; /dev/null here).
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").unwrap();
    use std::os::fd::AsRawFd;
    let raw = tty.as_raw_fd();
    let mut cmd = f.cmd(&["realize", "fds"]);
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || nix::unistd::dup2(raw, 7).map(|_| ()).map_err(std::io::Error::from));
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fds = std::fs::read_to_string(f.root().join("result/fds")).unwrap();
    let numbers: Vec<&str> = fds
        .lines()
        .filter_map(|l| l.split(" -> ").next()?.split_whitespace().last())
        .collect();
    assert!(!numbers.contains(&"7"), "the leaked descriptor reached the build:\n{fds}");
}

/// A build starts with every signal at its default action and none blocked, however spy was
/// started: here as `nohup` and a script's background job start it (SIGHUP, SIGINT, SIGQUIT
/// ignored) and with SIGUSR1 blocked. Inherited, they changed what a profile-guided CPython
/// counted, so its build was not the same as a rebuild started from a terminal.
#[test]
fn signals_ignored_or_blocked_by_spys_caller_do_not_reach_the_build() {
    let f = Fixture::new();
    f.write(
        "graph/sigs.toml",
        "name = \"sigs\"\nversion = \"1\"\n[phases]\nbuild = \"grep -E '^Sig(Ign|Blk)' /proc/self/status > $out/sigs\"\n",
    );
    let mut cmd = f.cmd(&["realize", "sigs"]);
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            use nix::sys::signal::{signal, SigHandler, SigSet, Signal};
            for s in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT] {
                signal(s, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            }
            let mut blocked = SigSet::empty();
            blocked.add(Signal::SIGUSR1);
            blocked.thread_block().map_err(std::io::Error::from)
        });
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sigs = std::fs::read_to_string(f.root().join("result/sigs")).unwrap();
    // grep: SigIgn and SigBlk of the grep process, which the build's shell started.
    assert_eq!(sigs, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n", "{sigs}");
}

const EUID_C: &str = r#"
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("euid=%d\n", (int)geteuid()); return 0; }
"#;

/// Runs `argv` as `nobody` (uid and gid 65534, no groups); returns (success, stdout + stderr).
/// Through `sh`, so that the program's path is looked up as nobody (setpriv itself resolves it
/// before it drops root).
fn as_nobody(argv: &[&Path]) -> (bool, String) {
    let o = Command::new(host_tool("setpriv"))
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "/bin/sh",
            "-c",
            "exec \"$@\"",
            "sh",
        ])
        .args(argv)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

/// Waits until the log of the build whose entry name contains `entry_part` holds `needle`;
/// returns the entry's store name.
fn wait_for_log(f: &Fixture, entry_part: &str, needle: &str, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for e in std::fs::read_dir(f.store().join(".spy/logs")).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(entry_part) && std::fs::read_to_string(e.path()).unwrap_or_default().contains(needle) {
                return name.trim_end_matches(".log").to_string();
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("spy ended ({status}) before the build said {needle:?}");
        }
        assert!(Instant::now() < deadline, "the build never said {needle:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A build that makes setuid and setgid files: while it runs they sit in a directory only the
/// builder can enter, on mounts that ignore the bits (nosuid, nodev), and the store entry carries
/// none of them. The build itself runs with no_new_privs. Before: `nobody` ran the build's
/// setuid-root file from `.spy/tmp/<entry>/out` with euid 0.
#[test]
fn setuid_files_of_a_build_are_unreachable_and_stripped() {
    let f = Fixture::new();
    let root = nix::unistd::geteuid().is_root();
    // The fixture's directory is private (a tempdir); the store of a real user is not.
    std::fs::set_permissions(f.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    f.write("graph/euid.c", EUID_C);
    f.write(
        "graph/suid.toml",
        r#"name = "suid"
version = "1"
files = ["euid.c"]
[phases]
build = '''
gcc -static -o euid $SPY_FILES/euid.c
mkdir -p $out/bin $out/shared
cp euid $out/bin/euid-suid && chmod 4755 $out/bin/euid-suid
cp euid $out/bin/euid-sgid && chmod 2755 $out/bin/euid-sgid
chmod 3777 $out/shared
cp euid /build/euid-suid && chmod 4755 /build/euid-suid
cp euid /tmp/euid-suid && chmod 4755 /tmp/euid-suid
grep -E " (/build|/tmp|$out) " /proc/self/mounts > $out/mounts
grep NoNewPrivs /proc/self/status > $out/status
echo suid-build-waiting
while [ ! -e /tmp/go ]; do sleep 0.05; done
'''
"#,
    );
    f.ok(&["realize", "--no-out-link", "stage0"]);
    let mut child = f
        .cmd(&["realize", "suid"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let entry = wait_for_log(&f, "-suid-", "suid-build-waiting", &mut child);
    let dir = f.store().join(".spy/tmp").join(&entry);
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "{} is {mode:o} while the build runs", dir.display());
    let suid = dir.join("out/bin/euid-suid");
    assert_eq!(
        std::fs::metadata(&suid).unwrap().permissions().mode() & 0o4000,
        0o4000,
        "the build made it setuid"
    );
    if root {
        for file in [&suid, &dir.join("build/euid-suid"), &dir.join("tmp/euid-suid")] {
            let (ok, out) = as_nobody(&[file]);
            assert!(!ok && out.contains("Permission denied"), "nobody ran {}: {out}", file.display());
        }
        let (ok, out) = as_nobody(&[Path::new("/bin/ls"), &dir]);
        assert!(!ok, "nobody listed the build directory: {out}");
    }
    std::fs::write(dir.join("tmp/go"), "").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let entry_dir = std::fs::canonicalize(f.root().join("result")).unwrap();
    let mut special = Vec::new();
    walk(&entry_dir, &mut |p, mode| {
        if mode & 0o7000 != 0 {
            special.push(format!("{} {mode:o}", p.display()));
        }
    });
    assert!(special.is_empty(), "setuid/setgid/sticky bits in the store: {special:?}");
    if root {
        let (ok, out) = as_nobody(&[&entry_dir.join("bin/euid-suid")]);
        assert!(ok && out.contains("euid=65534"), "{out}");
    }
    let mounts = std::fs::read_to_string(entry_dir.join("mounts")).unwrap();
    assert_eq!(mounts.lines().count(), 3, "{mounts}");
    for line in mounts.lines() {
        let opts = line.split_whitespace().nth(3).unwrap_or_default();
        assert!(opts.contains("nosuid") && opts.contains("nodev"), "{line}");
    }
    let status = std::fs::read_to_string(entry_dir.join("status")).unwrap();
    assert_eq!(status.trim(), "NoNewPrivs:\t1");
}

fn walk(p: &Path, each: &mut dyn FnMut(&Path, u32)) {
    let md = std::fs::symlink_metadata(p).unwrap();
    each(p, md.permissions().mode() & 0o7777);
    if md.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            walk(&e.path(), each);
        }
    }
}

/// Processes whose environment holds `marker` (every process of the build) or whose command line
/// names `dir` (the sandbox helper and pid 1 of the namespace: `spy __sandbox <dir>/...`).
fn survivors(marker: &str, dir: &Path) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let dir = dir.as_os_str().as_encoded_bytes();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        if has(&environ, marker.as_bytes()) || (has(&cmdline, b"__sandbox") && has(&cmdline, dir)) {
            out.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    out
}

/// A small xorshift: the kill delays need spread, not quality.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// When the log of a running `sleeper` build says `needle`, measured from `t0`.
fn log_time(f: &Fixture, needle: &str, t0: Instant, child: &mut Child) -> Option<Duration> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(rd) = std::fs::read_dir(f.store().join(".spy/logs")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().contains("-sleeper-")
                    && std::fs::read_to_string(e.path()).unwrap_or_default().contains(needle)
                {
                    return Some(t0.elapsed());
                }
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// SIGKILL of `spy realize` at random moments around the start of the sandbox leaves no process
/// of the build behind (docs/architecture.md: the whole tree ends with spy). 20 kills, or
/// `SPY_KILL_LOOP` (tests/e2e/run: 100). Before: 7 of 30 targeted kills left the build running.
#[test]
fn killing_spy_as_the_sandbox_starts_leaves_no_build_process() {
    let kills: usize = std::env::var("SPY_KILL_LOOP").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let f = Fixture::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let marker = format!("spy-kill-marker-{}-{seed}", std::process::id());
    f.write(
        "graph/sleeper.toml",
        &format!("name = \"sleeper\"\nversion = \"1\"\n[env]\nSPY_KILL_MARKER = \"{marker}\"\n[phases]\nbuild = \"echo sleeper-started; sleep 1000\"\n"),
    );
    f.ok(&["realize", "--no-out-link", "stage0"]);
    // Each spy starts from an empty log directory, so what the logs say is about this run.
    let spawn = || {
        for e in std::fs::read_dir(f.store().join(".spy/logs")).unwrap().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        f.cmd(&["realize", "--no-out-link", "sleeper"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let kill = |child: &mut Child| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    };
    // Drains survivors (killing them after `grace`); returns how many there were.
    let reap = |grace: Duration| -> usize {
        let deadline = Instant::now() + grace;
        loop {
            let left = survivors(&marker, f.root());
            if left.is_empty() {
                return 0;
            }
            if Instant::now() > deadline {
                eprintln!("survivors: {left:?}");
                for (pid, _) in &left {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(200));
                return left.len();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Calibration: when spy starts the sandbox (its log line is written just before) and when the
    // build's first command runs, from the spawn of spy.
    let mut sandbox_at = Vec::new();
    let mut started_at = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut child = spawn();
        let s = log_time(&f, "spy: sandbox: namespaces", t0, &mut child).expect("sandbox line");
        let b = log_time(&f, "sleeper-started", t0, &mut child).expect("build start");
        kill(&mut child);
        assert_eq!(
            reap(Duration::from_secs(10)),
            0,
            "a kill long after the start left the build running"
        );
        sandbox_at.push(s);
        started_at.push(b);
    }
    sandbox_at.sort();
    started_at.sort();
    let (s, b) = (sandbox_at[1], started_at[1]);
    let margin = (b.saturating_sub(s)).max(Duration::from_millis(20));
    let lo = s.saturating_sub(margin);
    let hi = b + margin;
    let mut rng = Rng(seed);
    // Half the kills anywhere in the window, half between the sandbox's start and the build's.
    let (mut stages, mut survived) = ([0usize; 3], 0);
    for i in 0..kills {
        let (from, to) = if i % 2 == 0 {
            (lo, hi)
        } else {
            (s, b.max(s + Duration::from_millis(1)))
        };
        let delay = from + Duration::from_micros(rng.below((to - from).as_micros() as u64));
        let t0 = Instant::now();
        let mut child = spawn();
        std::thread::sleep(delay.saturating_sub(t0.elapsed()));
        kill(&mut child);
        let log: String = std::fs::read_dir(f.store().join(".spy/logs"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("-sleeper-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        stages[usize::from(log.contains("spy: sandbox: namespaces")) + usize::from(log.contains("sleeper-started"))] += 1;
        survived += usize::from(reap(Duration::from_secs(3)) > 0);
    }
    eprintln!(
        "kill loop: {kills} kills between {lo:?} and {hi:?} after spawn (sandbox at {s:?}, build at {b:?}): \
         {} before spy started the sandbox, {} while it started, {} once the build ran; \
         {survived} left the build running (seed {seed})",
        stages[0], stages[1], stages[2]
    );
    assert_eq!(survived, 0, "{survived} of {kills} kills left the build running");
    // A killed build leaves its directory private.
    for e in std::fs::read_dir(f.store().join(".spy/tmp")).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains("-sleeper-") {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", e.path().display());
        }
    }
}

/// The processes whose parent is `parent` (from /proc/*/stat).
fn children_of(parent: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// The race itself, made wide: `strace` delays every `prctl` by 300 ms, so the sandbox helper and
/// pid 1 sit for that long before (and while) asking to die with their parent, and spy is killed
/// in that window, at several depths of the sandbox's start. Before: 5 of 5 such kills left the
/// build running (nothing signals a process whose parent died before it asked). Needs `strace`;
/// without it the test says so and passes.
#[test]
fn killing_spy_before_the_sandbox_asks_to_die_with_it_leaves_no_build_process() {
    let Some(strace) = ["/usr/bin/strace", "/bin/strace"].into_iter().find(|p| Path::new(p).exists()) else {
        eprintln!("strace is not installed: the widened race is not tested");
        return;
    };
    let f = Fixture::new();
    let marker = format!("spy-race-marker-{}", std::process::id());
    f.write(
        "graph/sleeper.toml",
        &format!("name = \"sleeper\"\nversion = \"1\"\n[env]\nSPY_KILL_MARKER = \"{marker}\"\n[phases]\nbuild = \"echo sleeper-started; sleep 1000\"\n"),
    );
    f.ok(&["realize", "--no-out-link", "stage0"]);
    let template = f.cmd(&["realize", "--no-out-link", "sleeper"]);
    let mut survived = Vec::new();
    for after_ms in [50u64, 350, 650, 950, 1250] {
        for e in std::fs::read_dir(f.store().join(".spy/logs")).unwrap().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let mut cmd = Command::new(strace);
        cmd.args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=prctl",
            "-e",
            "inject=prctl:delay_enter=300000",
        ])
        .arg(SPY)
        .args(template.get_args())
        .current_dir(f.root())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        for (k, v) in template.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut tracer = cmd.spawn().unwrap();
        log_time(&f, "spy: sandbox: namespaces", Instant::now(), &mut tracer).expect("the sandbox line");
        std::thread::sleep(Duration::from_millis(after_ms));
        let spy = *children_of(tracer.id()).first().expect("spy runs under strace");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(spy), nix::sys::signal::Signal::SIGKILL).unwrap();
        // Pid 1 notices the lifeline once its own delayed calls are done.
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut left = survivors(&marker, f.root());
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = survivors(&marker, f.root());
        }
        if !left.is_empty() {
            survived.push((after_ms, left.clone()));
            for (pid, _) in &left {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = tracer.kill();
        let _ = tracer.wait();
    }
    assert!(
        survived.is_empty(),
        "builds that outlived spy (kill time after the sandbox line, processes): {survived:?}"
    );
}
