//! The real package set, part 1: for each static library of `graph/`, a tiny C program is built
//! with the target's toolchain (as a probe node added by an overlay, so it compiles inside the
//! sandbox like any package), run on this machine, and checked: the version it prints, and with an
//! ELF reader that it is static and of the target's class and machine.
//!
//! All tests share one store under the cargo target directory, so each library is built once per
//! run and concurrent tests coordinate through spy's own locks. The x86_64 set runs in CI; the
//! i686 set is `#[ignore]`d and run by `tests/e2e/run` (see there).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Target {
    short: &'static str,
    is_64: bool,
    machine: u16,
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

/// Builds a probe program for `lib` (and `extra_deps`) with the target's toolchain and returns
/// the path of the static binary in the store.
fn probe(lib: &str, extra_deps: &[&str], target: &Target, c_source: &str, link: &str) -> PathBuf {
    let name = format!("probe-{lib}");
    let mut deps = vec!["toolchain".to_string(), lib.to_string()];
    deps.extend(extra_deps.iter().map(|d| d.to_string()));
    let deps_list = deps.iter().map(|d| format!("\"{d}\"")).collect::<Vec<_>>().join(", ");
    let overlay = format!(
        "[nodes.{name}]\nversion = \"1\"\ndeps = [{deps_list}]\n[nodes.{name}.phases]\nbuild = '''\ncat > probe.c <<'C_SOURCE'\n{c_source}\nC_SOURCE\ngcc -O2 -o probe probe.c {link}\n'''\ninstall = '''\nmkdir -p $out/bin && cp probe $out/bin/\n'''\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let overlay_path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&overlay_path, overlay).unwrap();
    common::realize_real(&format!("{name}-{}", target.short), &[&overlay_path]).join("bin/probe")
}

/// Runs the probe and checks that it is a static ELF of the target's class and machine.
fn run_static(bin: &Path, target: &Target) -> String {
    let bytes = std::fs::read(bin).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    assert_eq!(elf.is_64, target.is_64, "{}: wrong ELF class", bin.display());
    assert_eq!(elf.header.e_machine, target.machine, "{}: wrong machine", bin.display());
    assert_eq!(elf.interpreter, None, "{}: asks for a dynamic loader", bin.display());
    assert!(
        elf.libraries.is_empty() && elf.dynamic.is_none(),
        "{}: dynamic: {:?}",
        bin.display(),
        elf.libraries
    );
    let o = Command::new(bin).env_clear().output().unwrap();
    assert!(
        o.status.success(),
        "{} failed: {}",
        bin.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn zlib(t: &Target) {
    let src = r#"#include <stdio.h>
#include <string.h>
#include <zlib.h>
int main(void) {
  unsigned char out[256], back[256]; uLongf n = sizeof out, m = sizeof back;
  const char *s = "spy spy spy spy spy spy spy spy";
  if (compress(out, &n, (const Bytef *)s, strlen(s) + 1) != Z_OK) return 1;
  if (uncompress(back, &m, out, n) != Z_OK || strcmp((char *)back, s)) return 2;
  printf("zlib %s\n", zlibVersion());
  return 0;
}"#;
    let bin = probe("zlib", &[], t, src, "-I$zlib/include -L$zlib/lib -lz");
    assert_eq!(run_static(&bin, t).trim(), "zlib 1.3.2");
}

fn openssl(t: &Target) {
    let src = r#"#include <stdio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
int main(void) {
  unsigned char md[32]; unsigned int n = 0;
  if (!EVP_Digest("abc", 3, md, &n, EVP_sha256(), NULL) || n != 32) return 1;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return 2;
  printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
  for (unsigned i = 0; i < n; i++) printf("%02x", md[i]);
  printf("\n%s\n", OpenSSL_version(OPENSSL_DIR));
  return 0;
}"#;
    let bin = probe("openssl", &[], t, src, "-I$openssl/include -L$openssl/lib -lssl -lcrypto -pthread");
    let out = run_static(&bin, t);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("OpenSSL 3.5.7 "), "{out}");
    assert_eq!(lines[1], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(lines[2], "OPENSSLDIR: \"/etc/ssl\"");
}

fn readline_version(t: &Target) -> PathBuf {
    let src = r#"#include <stdio.h>
#include <stdlib.h>
#include <readline/readline.h>
#include <curses.h>
#include <term.h>
int main(int argc, char **argv) {
  if (argc < 2) { printf("readline %s\n", rl_library_version); return 0; }
  int err = 0;
  /* $TERM must resolve without any terminfo file: only the compiled-in entries can answer. */
  printf("TERM %s\n", setupterm(NULL, 1, &err) == OK ? "found" : "missing");
  fflush(stdout);
  char *line = readline("> ");
  printf("\nGOT:%s:END\n", line ? line : "(eof)");
  fflush(stdout);
  free(line);
  return 0;
}"#;
    let bin = probe(
        "readline",
        &["ncurses"],
        t,
        src,
        "-I$readline/include -I$ncurses/include -L$readline/lib -L$ncurses/lib -lreadline -lncursesw",
    );
    assert_eq!(run_static(&bin, t).trim(), "readline 8.3");
    bin
}

fn ncurses(t: &Target) {
    let src = r#"#include <stdio.h>
#include <curses.h>
#include <term.h>
int main(void) {
  int err = 0;
  /* Built-in entries only: no terminfo database exists for it to read. */
  if (setupterm("xterm-256color", 1, &err) != OK) { printf("setupterm failed %d\n", err); return 1; }
  printf("%s colors=%d\n", curses_version(), tigetnum("colors"));
  return 0;
}"#;
    let bin = probe("ncurses", &[], t, src, "-I$ncurses/include -L$ncurses/lib -lncursesw");
    assert_eq!(run_static(&bin, t).trim(), "ncurses 6.6.20260608 colors=256");
}

fn bzip2(t: &Target) {
    let src = r#"#include <stdio.h>
#include <bzlib.h>
int main(void) { printf("bzip2 %s\n", BZ2_bzlibVersion()); return 0; }"#;
    let bin = probe("bzip2", &[], t, src, "-I$bzip2/include -L$bzip2/lib -lbz2");
    assert_eq!(run_static(&bin, t).trim(), "bzip2 1.0.8, 13-Jul-2019");
}

fn xz(t: &Target) {
    let src = r#"#include <stdio.h>
#include <lzma.h>
int main(void) { printf("xz %s\n", lzma_version_string()); return 0; }"#;
    let bin = probe("xz", &[], t, src, "-I$xz/include -L$xz/lib -llzma -pthread");
    assert_eq!(run_static(&bin, t).trim(), "xz 5.8.4");
}

fn sqlite(t: &Target) {
    let src = r#"#include <stdio.h>
#include <sqlite3.h>
static int row(void *u, int n, char **v, char **c) { (void)u; (void)n; (void)c; printf("%s\n", v[0]); return 0; }
int main(void) {
  sqlite3 *db;
  if (sqlite3_open(":memory:", &db)) return 1;
  printf("sqlite %s\n", sqlite3_libversion());
  if (sqlite3_exec(db, "create table t(x); insert into t values (40),(2); select sum(x) from t;", row, 0, 0)) return 2;
  return sqlite3_close(db);
}"#;
    let bin = probe("sqlite", &[], t, src, "-I$sqlite/include -L$sqlite/lib -lsqlite3 -pthread -lm");
    assert_eq!(run_static(&bin, t).trim(), "sqlite 3.53.4\n42");
}

fn libffi(t: &Target) {
    let src = r#"#include <stdio.h>
#include <ffi.h>
static int add(int a, int b) { return a + b; }
int main(void) {
  ffi_cif cif; ffi_type *args[2] = { &ffi_type_sint, &ffi_type_sint };
  int a = 2, b = 3; void *vals[2] = { &a, &b }; ffi_arg r;
  if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 2, &ffi_type_sint, args) != FFI_OK) return 1;
  ffi_call(&cif, FFI_FN(add), &r, vals);
  printf("libffi call %d\n", (int)r);
  return 0;
}"#;
    let bin = probe("libffi", &[], t, src, "-I$libffi/include -L$libffi/lib -lffi");
    assert_eq!(run_static(&bin, t).trim(), "libffi call 5");
}

fn expat(t: &Target) {
    let src = r#"#include <stdio.h>
#include <string.h>
#include <expat.h>
static int n;
static void start(void *u, const XML_Char *name, const XML_Char **a) { (void)u; (void)name; (void)a; n++; }
int main(void) {
  const char *doc = "<a><b/><c><d/></c></a>";
  XML_Parser p = XML_ParserCreate(NULL);
  XML_SetStartElementHandler(p, start);
  if (XML_Parse(p, doc, (int)strlen(doc), 1) != XML_STATUS_OK) return 1;
  printf("%s elements=%d\n", XML_ExpatVersion(), n);
  return 0;
}"#;
    let bin = probe("expat", &[], t, src, "-I$expat/include -L$expat/lib -lexpat");
    assert_eq!(run_static(&bin, t).trim(), "expat_2.8.3 elements=4");
}

fn libevent(t: &Target) {
    let src = r#"#include <stdio.h>
#include <event2/event.h>
static void fire(evutil_socket_t fd, short what, void *arg) { (void)fd; (void)what; *(int *)arg = 1; }
int main(void) {
  struct event_base *base = event_base_new();
  int fired = 0; struct timeval tv = { 0, 1000 };
  struct event *ev = evtimer_new(base, fire, &fired);
  evtimer_add(ev, &tv);
  event_base_dispatch(base);
  printf("libevent %s %s fired=%d\n", event_get_version(), event_base_get_method(base), fired);
  return 0;
}"#;
    let bin = probe("libevent", &[], t, src, "-I$libevent/include -L$libevent/lib -levent");
    let out = run_static(&bin, t);
    assert!(
        out.starts_with("libevent 2.1.13-stable ") && out.trim().ends_with("fired=1"),
        "{out}"
    );
}

/// Line editing through a pseudo-terminal (tmux), TERM=xterm, with the program alone in an empty
/// root directory (new user and mount namespace, chroot): no terminfo files exist at all.
fn readline_edits_a_line(t: &Target) {
    let bin = readline_version(t);
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&bin, root.path().join("rl")).unwrap();
    let pty = common::PtySession::start_in_root(&format!("rl-{}", t.short), root.path(), "/rl edit", 10);
    pty.wait_for(">");
    // abc, two steps left, X, two steps right, backspace, Z: "aXbZ". (Home/End are not in
    // readline's default bindings for the sequences tmux sends; Debian binds them in /etc/inputrc.)
    pty.send_keys(&[
        &["-l", "abc"],
        &["Left"],
        &["Left"],
        &["-l", "X"],
        &["Right"],
        &["Right"],
        &["BSpace"],
        &["-l", "Z"],
        &["Enter"],
    ]);
    let screen = pty.wait_for(":END");
    assert!(screen.contains("TERM found"), "{screen}");
    assert!(screen.contains("GOT:aXbZ:END"), "{screen}");
}

#[test]
fn x86_64_zlib() {
    zlib(&X86_64);
}
#[test]
fn x86_64_openssl() {
    openssl(&X86_64);
}
#[test]
fn x86_64_readline_edits_a_line_without_terminfo() {
    readline_edits_a_line(&X86_64);
}
#[test]
fn x86_64_ncurses() {
    ncurses(&X86_64);
}
#[test]
fn x86_64_bzip2() {
    bzip2(&X86_64);
}
#[test]
fn x86_64_xz() {
    xz(&X86_64);
}
#[test]
fn x86_64_sqlite() {
    sqlite(&X86_64);
}
#[test]
fn x86_64_libffi() {
    libffi(&X86_64);
}
#[test]
fn x86_64_expat() {
    expat(&X86_64);
}
#[test]
fn x86_64_libevent() {
    libevent(&X86_64);
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_zlib() {
    zlib(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_openssl() {
    openssl(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_readline_edits_a_line_without_terminfo() {
    readline_edits_a_line(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_ncurses() {
    ncurses(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_bzip2() {
    bzip2(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_xz() {
    xz(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_sqlite() {
    sqlite(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_libffi() {
    libffi(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_expat() {
    expat(&I686);
}
#[test]
#[ignore = "e2e: tests/e2e/run"]
fn i686_libevent() {
    libevent(&I686);
}
