//! Binary caches on a fixture graph: push from one store, substitute into an empty one, from a
//! directory, from a real nginx with WebDAV (PUT) and from `spy serve`; and every way a substitute
//! must be refused (tampered archive, tampered metadata, untrusted key, unsigned, missing archive,
//! content that does not match, server down), each falling back to a build that leaves a correct,
//! verifiable entry.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Fixture, Server};

struct Cache {
    f: Fixture,
    key: PathBuf,
    public: String,
}

/// A fixture with libgreet and hello built in store A and a signing key.
fn setup() -> Cache {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    f.ok(&["realize", "hello"]);
    let (out, _) = f.ok(&["key", "generate", "test-cache-1", "--out-dir", "keys"]);
    Cache {
        key: f.root().join("keys/test-cache-1.secret"),
        public: out.trim().to_string(),
        f,
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

impl Cache {
    fn push(&self, url: &str, extra: &[&str]) -> String {
        let key = self.key.display().to_string();
        let mut args = vec!["push", "--to", url, "--sign", &key];
        args.extend_from_slice(extra);
        args.push("hello");
        self.f.ok(&args).1
    }

    /// Realizes hello into a new empty store with `url` as substituter; returns (store, stderr).
    fn realize_fresh(&self, name: &str, url: &str, trusted: &str) -> (PathBuf, String) {
        let store = self.f.root().join(name);
        let o = self
            .f
            .cmd_in(
                &store,
                &[
                    "realize",
                    "--no-out-link",
                    "hello",
                    "--substituter",
                    url,
                    "--trusted-public-key",
                    trusted,
                ],
            )
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "realize from {url} failed:\n{err}");
        // Whatever happened, the entry is complete and correct.
        let bin = PathBuf::from(out.trim()).join("bin/hello");
        let run = Command::new(&bin).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from libgreet 1.0\n");
        let v = self.f.cmd_in(&store, &["verify"]).output().unwrap();
        assert!(v.status.success(), "store {name} holds a corrupt entry: {}", text(&v).0);
        (store, err)
    }

    fn cache_dir(&self, name: &str) -> PathBuf {
        self.f.root().join(name)
    }

    fn meta_of(&self, cache: &Path, node: &str) -> PathBuf {
        let (id, _) = self.f.ok(&["show", node]);
        let id = id.lines().find_map(|l| l.strip_prefix("id:")).unwrap().trim().to_string();
        cache.join("meta").join(format!("{id}.json"))
    }
}

/// "built" lines, not counting the host-tools node (never substituted, always cheap).
fn built(err: &str) -> Vec<String> {
    common::built_lines(err).into_iter().filter(|l| !l.contains("stage0@")).collect()
}

fn substituted(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.starts_with("spy: substituted ")).collect()
}

#[test]
fn push_then_substitute_everything_from_a_directory() {
    let c = setup();
    let dir = c.cache_dir("cache");
    let url = format!("file://{}", dir.display());
    let err = c.push(&url, &[]);
    assert!(err.contains("pushed 2 entr(ies)"), "{err}");
    // The archive is written before its metadata, and both are there.
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(c.meta_of(&dir, "hello")).unwrap()).unwrap();
    assert!(dir.join(meta["archive"].as_str().unwrap()).is_file());
    assert_eq!(meta["signatures"].as_array().unwrap().len(), 1);
    // Pushing again uploads nothing.
    let again = c.push(&url, &[]);
    assert!(again.contains("pushed 0 entr(ies)") && again.contains("2 already there"), "{again}");

    let (_, err) = c.realize_fresh("store-b", &url, &c.public);
    assert!(built(&err).is_empty(), "nothing is built:\n{err}");
    // hello is substituted; libgreet is not needed by anything built, so it is not fetched.
    assert_eq!(substituted(&err).len(), 1, "{err}");
    assert!(err.contains("substituted hello@"), "{err}");
}

#[test]
fn dependencies_come_from_the_cache_when_a_dependent_is_built() {
    let c = setup();
    let dir = c.cache_dir("cache");
    let url = format!("file://{}", dir.display());
    c.push(&url, &["--no-closure"]);
    // Only hello was pushed: remove it, push libgreet alone.
    std::fs::remove_dir_all(&dir).unwrap();
    let key = c.key.display().to_string();
    c.f.ok(&["push", "--to", &url, "--sign", &key, "libgreet"]);
    let (_, err) = c.realize_fresh("store-b", &url, &c.public);
    let built = built(&err);
    assert_eq!(built.len(), 1, "{err}");
    assert!(built[0].contains("hello@"), "{err}");
    assert!(err.contains("substituted libgreet@"), "{err}");
    let (s, b) = (err.find("substituted libgreet").unwrap(), err.find("building hello").unwrap());
    assert!(s < b, "the dependency is downloaded before its dependent builds:\n{err}");
}

#[test]
fn refused_substitutes_are_built_instead() {
    let c = setup();
    let good = c.cache_dir("cache");
    let url = |d: &Path| format!("file://{}", d.display());
    c.push(&url(&good), &[]);
    let copy = |name: &str| {
        let d = c.cache_dir(name);
        let o = Command::new("cp").arg("-a").arg(&good).arg(&d).status().unwrap();
        assert!(o.success());
        d
    };
    let archive_of = |d: &Path| {
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(c.meta_of(d, "hello")).unwrap()).unwrap();
        d.join(meta["archive"].as_str().unwrap())
    };

    // A flipped byte in the archive.
    let d = copy("tampered-archive");
    let a = archive_of(&d);
    let mut bytes = std::fs::read(&a).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&a, bytes).unwrap();
    let (_, err) = c.realize_fresh("b1", &url(&d), &c.public);
    assert!(err.contains("archive sha256 mismatch"), "{err}");
    assert!(
        err.contains("warning: not substituting hello@x86_64-linux-musl from file:") && err.contains("building it instead"),
        "{err}"
    );
    assert!(built(&err).iter().any(|l| l.contains("hello@")), "{err}");
    // Building hello needs libgreet, which the cache supplies.
    assert!(err.contains("substituted libgreet@"), "{err}");

    // Metadata changed after signing.
    let d = copy("tampered-meta");
    let m = c.meta_of(&d, "hello");
    let text = std::fs::read_to_string(&m).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["size"] = serde_json::json!(v["size"].as_u64().unwrap() + 1);
    std::fs::write(&m, serde_json::to_string(&v).unwrap()).unwrap();
    let (_, err) = c.realize_fresh("b2", &url(&d), &c.public);
    assert!(err.contains("does not match the metadata (tampered or corrupt)"), "{err}");
    assert!(built(&err).iter().any(|l| l.contains("hello@")), "{err}");

    // A key we do not trust.
    let (other, _) = c.f.ok(&["key", "generate", "someone-else", "--out-dir", "keys"]);
    let (_, err) = c.realize_fresh("b3", &url(&good), other.trim());
    assert!(err.contains("signed only by untrusted key(s) `test-cache-1`"), "{err}");
    assert_eq!(built(&err).len(), 2, "{err}");

    // The archive is gone.
    let d = copy("missing-archive");
    std::fs::remove_file(archive_of(&d)).unwrap();
    let (_, err) = c.realize_fresh("b4", &url(&d), &c.public);
    assert!(err.contains("is missing"), "{err}");
    assert!(built(&err).iter().any(|l| l.contains("hello@")), "{err}");

    // Unsigned entries.
    let unsigned = c.cache_dir("unsigned");
    c.f.ok(&["push", "--to", &url(&unsigned), "hello"]);
    let (_, err) = c.realize_fresh("b5", &url(&unsigned), &c.public);
    assert!(err.contains("is unsigned"), "{err}");
    assert_eq!(built(&err).len(), 2, "{err}");

    // Nobody listening.
    let port = free_port();
    let (_, err) = c.realize_fresh("b6", &format!("http://127.0.0.1:{port}/cache"), &c.public);
    assert!(err.contains("is unreachable"), "{err}");
    assert_eq!(err.matches("is unreachable").count(), 1, "said once:\n{err}");
    assert_eq!(built(&err).len(), 2, "{err}");
}

/// One file of 1 GiB of zeros, sparse in the store, packed by `spy push` into ~33 KB.
const BOMB: &str = r#"
name = "bomb"
version = "1"
[phases]
install = """
printf '#include <fcntl.h>\n#include <unistd.h>\nint main(int c, char **v) { int f = open(v[1], O_CREAT | O_WRONLY, 0644); return ftruncate(f, 1L << 30); }\n' > m.c
gcc -o m m.c && ./m $out/big
"""
"#;

#[test]
fn a_tampered_oversize_archive_is_refused_before_anything_is_unpacked() {
    let c = setup();
    let dir = c.cache_dir("cache");
    let url = format!("file://{}", dir.display());
    c.push(&url, &[]);
    // The tampered archive: a valid zstd tar that unpacks to 1 GiB (another entry's archive),
    // padded past the signed size of hello's archive, in its place.
    c.f.write("graph/bomb.toml", BOMB);
    c.f.ok(&["realize", "--no-out-link", "bomb"]);
    let bombs = c.cache_dir("bombs");
    c.f.ok(&["push", "--to", &format!("file://{}", bombs.display()), "bomb"]);
    let bomb = std::fs::read_dir(bombs.join("archives")).unwrap().next().unwrap().unwrap().path();
    let mut tampered = std::fs::read(&bomb).unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(c.meta_of(&dir, "hello")).unwrap()).unwrap();
    let signed = meta["archive_size"].as_u64().unwrap();
    let bomb_size = tampered.len() as u64;
    tampered.resize((signed + (1 << 20)).max(bomb_size) as usize, 0);
    std::fs::write(dir.join(meta["archive"].as_str().unwrap()), &tampered).unwrap();

    // No file of the realize may grow past 64 MiB (RLIMIT_FSIZE): unpacking the bomb would kill it.
    let store = c.f.root().join("b");
    let spy = c.f.cmd_in(
        &store,
        &[
            "realize",
            "--no-out-link",
            "hello",
            "--substituter",
            &url,
            "--trusted-public-key",
            &c.public,
        ],
    );
    let mut limited = Command::new("bash");
    limited
        .arg("-c")
        .arg("ulimit -f 65536 && exec \"$0\" \"$@\"")
        .arg(spy.get_program())
        .args(spy.get_args());
    limited.current_dir(c.f.root());
    for (k, v) in spy.get_envs() {
        match v {
            Some(v) => limited.env(k, v),
            None => limited.env_remove(k),
        };
    }
    let o = limited.output().unwrap();
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "realize under a 64 MiB file-size limit failed ({}):\n{err}",
        o.status
    );
    assert!(
        err.contains("archive size mismatch") && err.contains(&format!("refused after {} bytes", signed + 1)),
        "refused while downloading, one byte past the signed size:\n{err}"
    );
    assert!(built(&err).iter().any(|l| l.contains("hello@")), "built instead:\n{err}");
    let run = Command::new(PathBuf::from(out.trim()).join("bin/hello")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from libgreet 1.0\n");
    let v = c.f.cmd_in(&store, &["verify"]).output().unwrap();
    assert!(v.status.success(), "{}", text(&v).1);
    eprintln!(
        "tampered archive: {} bytes ({bomb_size} of them a zstd tar of 1 GiB), signed size {signed}; refused after {} bytes read, nothing unpacked",
        tampered.len(),
        signed + 1
    );
}

#[test]
fn signed_content_that_does_not_match_is_not_registered() {
    let c = setup();
    // An entry modified in the pushing store: its archive then differs from its recorded tree hash.
    let (path, _) = c.f.ok(&["path", "hello"]);
    let bin = PathBuf::from(path.trim()).join("bin/hello");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut bytes = std::fs::read(&bin).unwrap();
    let original = bytes.clone();
    // Same size, other bytes: caught by the tree hash.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&bin, &bytes).unwrap();
    let dir = c.cache_dir("cache");
    c.push(&format!("file://{}", dir.display()), &[]);
    let (_, err) = c.realize_fresh("b", &format!("file://{}", dir.display()), &c.public);
    assert!(err.contains("differs from the expected"), "{err}");
    assert!(built(&err).iter().any(|l| l.contains("hello@")), "{err}");
    // Bigger than recorded: unpacking stops at the signed size, naming the entry.
    let mut longer = original;
    longer.extend_from_slice(b"junk");
    std::fs::write(&bin, longer).unwrap();
    let dir = c.cache_dir("cache-2");
    c.push(&format!("file://{}", dir.display()), &[]);
    let (_, err) = c.realize_fresh("b2", &format!("file://{}", dir.display()), &c.public);
    assert!(err.contains("entry `bin/hello` goes over the budget of"), "{err}");
    assert!(built(&err).iter().any(|l| l.contains("hello@")), "{err}");
}

#[test]
fn config_files_name_substituters_and_keys() {
    let c = setup();
    let dir = c.cache_dir("cache");
    let url = format!("file://{}", dir.display());
    c.push(&url, &[]);
    // The user's config.
    c.f.write(
        "config/spy/config.toml",
        &format!("substituters = [\"{url}\"]\ntrusted-public-keys = [\"{}\"]\n", c.public),
    );
    let store = c.f.root().join("b1");
    let (_, err) = text(&c.f.cmd_in(&store, &["realize", "--no-out-link", "hello"]).output().unwrap());
    assert!(err.contains("substituted hello@"), "{err}");
    // --no-substitute wins.
    let store = c.f.root().join("b2");
    let (_, err) = text(
        &c.f.cmd_in(&store, &["realize", "--no-out-link", "--no-substitute", "hello"])
            .output()
            .unwrap(),
    );
    assert_eq!(built(&err).len(), 2, "{err}");
    // The graph's spy.toml.
    std::fs::remove_file(c.f.root().join("config/spy/config.toml")).unwrap();
    let config = std::fs::read_to_string(c.f.root().join("graph/spy.toml")).unwrap();
    c.f.write(
        "graph/spy.toml",
        &format!("substituters = [\"{url}\"]\ntrusted-public-keys = [\"{}\"]\n{config}", c.public),
    );
    let store = c.f.root().join("b3");
    let (_, err) = text(&c.f.cmd_in(&store, &["realize", "--no-out-link", "hello"]).output().unwrap());
    assert!(err.contains("substituted hello@"), "{err}");
    // A bad key in a config is an error naming it.
    c.f.write("config/spy/config.toml", "trusted-public-keys = [\"nonsense\"]\n");
    let err = c.f.fails(&["realize", "hello"]);
    assert!(err.contains("nonsense") && err.contains("NAME:BASE64"), "{err}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing listens on port {port}");
}

/// nginx serving `root` with WebDAV PUT on 127.0.0.1, as a single foreground process.
fn nginx(dir: &Path, root: &Path) -> (Server, u16) {
    let port = free_port();
    std::fs::create_dir_all(root).unwrap();
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
events {{ worker_connections 64; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  server {{\n    listen 127.0.0.1:{port};\n    root {};\n    client_max_body_size 0;\n\
    location / {{ dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw group:r all:r; }}\n  }}\n}}\n",
            root.display()
        ),
    )
    .unwrap();
    let child = Command::new(common::host_tool("nginx"))
        .args(["-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed by scripts/setup-host.sh");
    let s = Server(child);
    wait_listening(port);
    (s, port)
}

#[test]
fn push_to_nginx_webdav_and_substitute_over_http() {
    let c = setup();
    let ngx = c.f.root().join("nginx");
    std::fs::create_dir_all(&ngx).unwrap();
    let (_server, port) = nginx(&ngx, &ngx.join("www"));
    let url = format!("http://127.0.0.1:{port}/spy/");
    let err = c.push(&url, &[]);
    assert!(err.contains("pushed 2 entr(ies)"), "{err}");
    // What nginx wrote is what a directory cache holds: archive and metadata.
    assert!(c.meta_of(&ngx.join("www/spy"), "hello").is_file());
    let (_, err) = c.realize_fresh("b", &url, &c.public);
    assert!(built(&err).is_empty(), "{err}");
    assert!(err.contains(&format!("substituted hello@x86_64-linux-musl from {url}")), "{err}");
    // A tampered archive on the server is refused there too.
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(c.meta_of(&ngx.join("www/spy"), "hello")).unwrap()).unwrap();
    let a = ngx.join("www/spy").join(meta["archive"].as_str().unwrap());
    std::fs::write(&a, b"not an archive").unwrap();
    let (_, err) = c.realize_fresh("b2", &url, &c.public);
    assert!(err.contains("archive size mismatch"), "{err}");
    assert!(built(&err).iter().any(|l| l.contains("hello@")), "{err}");
}

/// `spy serve` on store A; returns the server and its URL.
fn spy_serve(c: &Cache, extra: &[&str]) -> (Server, String) {
    let key = c.key.display().to_string();
    let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    if !extra.contains(&"--no-sign") {
        args.extend(["--sign", &key]);
    }
    args.retain(|a| *a != "--no-sign");
    common::start_spy_serve(c.f.cmd(&args))
}

#[test]
fn substitute_from_spy_serve() {
    let c = setup();
    let (_server, url) = spy_serve(&c, &[]);
    let (_, err) = c.realize_fresh("b", &url, &c.public);
    assert!(built(&err).is_empty(), "{err}");
    assert!(err.contains("substituted hello@"), "{err}");
    // The same entry served twice is the same bytes (packed once, deterministically).
    let (_, err2) = c.realize_fresh("b2", &url, &c.public);
    assert!(err2.contains("substituted hello@"), "{err2}");
    // Read-only: a push (of a node the served store lacks) is refused by the server.
    let key = c.key.display().to_string();
    let other_store = c.f.root().join("store-c");
    let o = c.f.cmd_in(&other_store, &["realize", "--no-out-link", "other"]).output().unwrap();
    assert!(o.status.success());
    let o =
        c.f.cmd_in(&other_store, &["push", "--to", &url, "--sign", &key, "other"])
            .output()
            .unwrap();
    let (_, perr) = text(&o);
    assert!(!o.status.success() && perr.contains("405"), "{perr}");
    // Without --sign, spy serve's entries are refused as unsigned.
    let (_s2, url2) = spy_serve(&c, &["--no-sign", "--cache-dir", "unsigned-serve"]);
    let (_, err) = c.realize_fresh("b3", &url2, &c.public);
    assert!(err.contains("is unsigned"), "{err}");
}

#[test]
fn key_and_push_errors_are_clear() {
    let c = setup();
    let err = c.f.fails(&["key", "generate", "test-cache-1", "--out-dir", "keys"]);
    assert!(err.contains("already exists"), "{err}");
    let err = c.f.fails(&["push", "--to", "ftp://x", "hello"]);
    assert!(err.contains("not a cache URL"), "{err}");
    let err = c.f.fails(&["push", "--to", "file:///tmp/x", "other"]);
    assert!(err.contains("not built") && err.contains("spy realize"), "{err}");
    let public = c.f.root().join("keys/test-cache-1.public").display().to_string();
    let err = c.f.fails(&["push", "--to", "file:///tmp/x", "--sign", &public, "hello"]);
    assert!(err.contains("64 bytes"), "{err}");
}
