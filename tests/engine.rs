//! The engine end to end: the real `spy` binary on fixture graphs made by each test.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn builds_a_library_and_a_program_that_links_it() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    let (out, err) = f.ok(&["realize", "hello-x86_64"]);
    let path = out.trim();
    assert!(path.starts_with(f.store().to_str().unwrap()), "{out}");
    assert!(err.contains("building libgreet@x86_64-linux-musl"), "{err}");
    // The result link points at the entry and the program runs.
    let link = std::fs::read_link(f.root().join("result")).unwrap();
    assert_eq!(link, Path::new(path));
    let run = std::process::Command::new(f.root().join("result/bin/hello")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "hello from libgreet 1.0");
    // Entries are read-only; `show` and `log` know the node.
    let md = std::fs::metadata(f.root().join("result/bin/hello")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(md.permissions().mode() & 0o777, 0o555);
    let (show, _) = f.ok(&["show", "hello"]);
    assert!(show.contains("state:       built"), "{show}");
    let (log, _) = f.ok(&["log", "hello-x86_64"]);
    assert!(log.contains("spy: phase build"), "{log}");
    // Realizing again does no work.
    let (out2, err2) = f.ok(&["realize", "hello-x86_64"]);
    assert_eq!(out2, out);
    assert!(!err2.contains("building"), "{err2}");
}

#[test]
fn a_dependency_change_rebuilds_exactly_its_dependents() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    f.ok(&["realize", "hello", "other"]);
    let before = f.entries();
    // Change one phase of the library.
    f.greet_graph("1.0", "[env]\nEXTRA = \"changed\"\n");
    let (_, err) = f.ok(&["realize", "hello", "other"]);
    let built = built_lines(&err);
    assert_eq!(built.len(), 2, "{err}");
    assert!(built.iter().any(|l| l.contains("libgreet@")), "{err}");
    assert!(built.iter().any(|l| l.contains("hello@")), "{err}");
    assert!(!err.contains("building other"), "{err}");
    assert!(!err.contains("building stage0"), "{err}");
    // Two results: result-hello-x86_64 and result-other-x86_64.
    assert!(f.root().join("result-hello-x86_64").exists());
    assert!(f.root().join("result-other-x86_64").exists());
    assert_eq!(f.entries().len(), before.len() + 2);
    // A new source version changes the ids too.
    f.greet_graph("1.1", "");
    let (_, err) = f.ok(&["realize", "hello"]);
    assert_eq!(built_lines(&err).len(), 2, "{err}");
    let run = std::process::Command::new(f.root().join("result/bin/hello")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "hello from libgreet 1.1");
}

#[test]
fn a_wrong_source_hash_names_both_hashes_and_the_origin_and_stores_nothing() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    let good = sha256(&f.mirror().join("libgreet-1.0.tar.gz"));
    let wrong = "0".repeat(64);
    let text = std::fs::read_to_string(f.root().join("graph/libgreet.toml"))
        .unwrap()
        .replace(&good, &wrong);
    f.write("graph/libgreet.toml", &text);
    let err = f.fails(&["realize", "hello"]);
    assert!(err.contains(&wrong) && err.contains(&good), "{err}");
    assert!(err.contains(f.mirror().join("libgreet-1.0.tar.gz").to_str().unwrap()), "{err}");
    assert!(err.contains("hint:"), "{err}");
    // Nothing was built, nothing was stored under either hash.
    assert!(f.entries().is_empty(), "{:?}", f.entries());
    let cached: Vec<_> = std::fs::read_dir(f.store().join(".spy/sources"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !cached
            .iter()
            .any(|n| n.to_string_lossy().contains(&good) || n.to_string_lossy().contains(&wrong)),
        "{cached:?}"
    );
}

#[test]
fn cycles_missing_dependencies_unknown_keys_and_targets_are_load_errors() {
    let f = Fixture::new();
    f.write("graph/a.toml", "name = \"a\"\nversion = \"1\"\ndeps = [\"b\"]\n");
    f.write("graph/b.toml", "name = \"b\"\nversion = \"1\"\ndeps = [\"a\"]\n");
    let err = f.fails(&["realize", "a"]);
    assert!(err.contains("cycle") && err.contains("a -> b -> a"), "{err}");

    f.write("graph/b.toml", "name = \"b\"\nversion = \"1\"\ndeps = [\"nothere\"]\n");
    let err = f.fails(&["realize", "a"]);
    assert!(
        err.contains("b.toml:3") && err.contains("nothere") && err.contains("`deps`"),
        "{err}"
    );

    f.write("graph/b.toml", "name = \"b\"\nversion = \"1\"\nsauces = []\n");
    let err = f.fails(&["list"]);
    assert!(err.contains("b.toml:3") && err.contains("sauces"), "{err}");

    f.write(
        "graph/b.toml",
        "name = \"b\"\nversion = \"1\"\n[target.mips-linux.env]\nA = \"1\"\n",
    );
    let err = f.fails(&["list"]);
    assert!(err.contains("b.toml:3") && err.contains("mips-linux"), "{err}");

    f.write("graph/b.toml", "name = \"b\"\nversion = \"1\"\n");
    let err = f.fails(&["realize", "b@sparc-linux"]);
    assert!(err.contains("sparc-linux"), "{err}");
    let err = f.fails(&["realize", "nosuchnode"]);
    assert!(err.contains("nosuchnode") && err.contains("spy list"), "{err}");

    // A node whose recipe limits its targets: asked for another target on the command line, the
    // error is about the command line; needed by a recipe for that target, about the recipe.
    f.write("graph/b.toml", "name = \"b\"\nversion = \"1\"\ntargets = [\"x86_64-linux-musl\"]\n");
    f.write("graph/a.toml", "name = \"a\"\nversion = \"1\"\ndeps = [\"b\"]\n");
    let err = f.fails(&["realize", "b-i686"]);
    assert!(
        err.contains("`b` is not made for target `i686-linux-musl`: its recipe is for x86_64-linux-musl"),
        "{err}"
    );
    assert!(
        err.contains("hint: `spy list --target i686-linux-musl`") && !err.contains("fix the recipe"),
        "{err}"
    );
    let err = f.fails(&["realize", "a-i686"]);
    assert!(
        err.contains("a.toml: `a` depends on `b`, which is not made for target `i686-linux-musl`"),
        "{err}"
    );
    assert!(err.contains("fix the recipe"), "{err}");
}

#[test]
fn a_failing_build_shows_its_log_tail_and_registers_nothing() {
    let f = Fixture::new();
    f.write("graph/bad.toml", "name = \"bad\"\nversion = \"1\"\n[phases]\nbuild = \"\"\"\necho partial > $out/partial\necho 'the compiler said no' >&2\nexit 3\n\"\"\"\n");
    let err = f.fails(&["realize", "bad"]);
    assert!(err.contains("the compiler said no"), "{err}");
    assert!(err.contains("full log: ") && err.contains(".log"), "{err}");
    assert!(err.contains("bad@x86_64-linux-musl"), "{err}");
    let entries = f.entries();
    assert!(entries.iter().all(|e| e.contains("-stage0-")), "{entries:?}");
    assert!(!f.root().join("result").exists());
    let (log, _) = f.ok(&["log", "bad"]);
    assert!(log.contains("the compiler said no"), "{log}");
}

#[test]
fn keep_going_builds_what_does_not_depend_on_the_failure() {
    let f = Fixture::new();
    f.write("graph/bad.toml", "name = \"bad\"\nversion = \"1\"\n[phases]\nbuild = \"exit 1\"\n");
    f.write("graph/above.toml", "name = \"above\"\nversion = \"1\"\ndeps = [\"bad\"]\n");
    f.write(
        "graph/fine.toml",
        "name = \"fine\"\nversion = \"1\"\n[phases]\nbuild = \"sleep 1; echo ok > $out/ok\"\n",
    );
    let o = f.spy(&["realize", "-j1", "--keep-going", "above", "fine"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("built fine@"), "{err}");
    assert!(err.contains("1 dependent node(s) were not built"), "{err}");
}

#[test]
fn sigkill_mid_build_leaves_no_partial_entry_and_the_next_realize_completes() {
    let f = Fixture::new();
    f.write("graph/slow.toml", "name = \"slow\"\nversion = \"1\"\n[phases]\nbuild = \"\"\"\necho half > $out/half\necho started-slow-build\nsleep 4\necho done > $out/done\n\"\"\"\n");
    f.ok(&["realize", "stage0"]);
    let mut child = f
        .cmd(&["realize", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the build is really running (its log says so), then kill spy outright.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = std::fs::read_dir(f.store().join(".spy/logs"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("-slow-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        if logs.contains("started-slow-build") {
            break;
        }
        assert!(Instant::now() < deadline, "build never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The killed build's directory is debris that gc will collect (its lock is free now).
    let (dry, _) = f.ok(&["gc", "--dry-run"]);
    assert!(dry.lines().any(|l| l.contains(".spy/tmp/") && l.contains("-slow-1")), "{dry}");
    // No entry for `slow` counts as built, and `path` says so.
    let (_, err) = f.ok(&["path", "slow"]);
    assert!(err.contains("not built"), "{err}");
    let (show, _) = f.ok(&["show", "slow"]);
    assert!(show.contains("state:       not built"), "{show}");
    // The sandboxed build died with spy: nothing writes into the old build directory any more.
    let (_, err) = f.ok(&["realize", "slow"]);
    assert!(err.contains("built slow@"), "{err}");
    let done = std::fs::read_to_string(f.root().join("result/done")).unwrap();
    assert_eq!(done.trim(), "done");
    let (_, verify) = f.ok(&["verify"]);
    assert!(verify.contains("0 problem(s)"), "{verify}");
}

#[test]
fn two_concurrent_realizes_build_once_and_both_succeed() {
    let f = Fixture::new();
    f.write(
        "graph/shared.toml",
        "name = \"shared\"\nversion = \"1\"\n[phases]\nbuild = \"sleep 2; date +%s%N > $out/stamp\"\n",
    );
    f.ok(&["realize", "stage0"]);
    let a = f
        .cmd(&["realize", "--no-out-link", "shared"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let b = f
        .cmd(&["realize", "--no-out-link", "shared"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(oa.status.success() && ob.status.success());
    assert_eq!(oa.stdout, ob.stdout, "both print the same path");
    let (ea, eb) = (String::from_utf8_lossy(&oa.stderr), String::from_utf8_lossy(&ob.stderr));
    let builds = built_lines(&ea).len() + built_lines(&eb).len();
    assert_eq!(builds, 1, "A:\n{ea}\nB:\n{eb}");
    assert!(
        ea.contains("made by another spy process") || eb.contains("made by another spy process"),
        "A:\n{ea}\nB:\n{eb}"
    );
}

#[test]
fn gc_keeps_rooted_closures_and_removes_the_rest() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    f.ok(&["realize", "hello"]);
    f.ok(&["realize", "--no-out-link", "other"]);
    let all = f.entries();
    assert_eq!(all.len(), 4, "{all:?}"); // stage0, libgreet, hello, other
    let (dry, _) = f.ok(&["gc", "--dry-run"]);
    assert!(dry.contains("-other-1") && dry.lines().count() == 1, "{dry}");
    assert_eq!(f.entries(), all, "a dry run deletes nothing");
    f.ok(&["gc"]);
    let left = f.entries();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|e| !e.contains("-other-")));
    // `spy list` tells built from removed (it reads the metadata directory once, then checks the
    // entries found there).
    let (list, _) = f.ok(&["list"]);
    let state = |node: &str| {
        let line = list.lines().find(|l| l.split_whitespace().next() == Some(node));
        line.and_then(|l| l.split_whitespace().last()).unwrap_or_default().to_string()
    };
    assert_eq!(
        (state("hello-x86_64"), state("other-x86_64"), state("hello-i686")),
        ("built".to_string(), "-".to_string(), "-".to_string()),
        "{list}"
    );
    std::process::Command::new(f.root().join("result/bin/hello")).status().unwrap();
    // Without the root, everything goes.
    std::fs::remove_file(f.root().join("result")).unwrap();
    f.ok(&["gc"]);
    assert!(f.entries().is_empty(), "{:?}", f.entries());
    let (list, _) = f.ok(&["list"]);
    assert!(!list.contains("built"), "{list}");
}

#[test]
fn the_sandbox_blocks_network_and_writes_outside_out() {
    let f = Fixture::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_dir = f.root().join("host-visible");
    std::fs::create_dir_all(&host_dir).unwrap();
    let script = format!(
        r#"
try() {{ if ( eval "$2" ) 2>/dev/null; then echo "$1=allowed"; else echo "$1=blocked"; fi >> $out/report; }}
try net 'exec 3<>/dev/tcp/127.0.0.1/{port}'
try usr 'touch /usr/spy-sandbox-test'
try etc 'touch /etc/spy-sandbox-test'
try root 'touch /spy-sandbox-test'
try dep 'touch $stage0/spy-sandbox-test'
try home 'touch $HOME/x'
try host 'touch {host}/escaped'
try proc_host 'test -e /proc/1/root{host}'
try out 'touch $out/written'
try build 'touch /build/scratch'
try tmp 'touch /tmp/scratch'
echo "uid=$(id -u) path=$PATH" >> $out/report
"#,
        host = host_dir.display()
    );
    f.write(
        "graph/probe.toml",
        &format!("name = \"probe\"\nversion = \"1\"\n[phases]\nbuild = '''{script}'''\n"),
    );
    f.ok(&["realize", "probe"]);
    let report = std::fs::read_to_string(f.root().join("result/report")).unwrap();
    for blocked in ["net", "usr", "etc", "root", "dep", "home", "host", "proc_host"] {
        assert!(report.contains(&format!("{blocked}=blocked")), "{blocked}:\n{report}");
    }
    for allowed in ["out", "build", "tmp"] {
        assert!(report.contains(&format!("{allowed}=allowed")), "{allowed}:\n{report}");
    }
    assert!(report.contains("uid=1000"), "{report}");
    assert!(listener.accept().is_err(), "the build reached the host's loopback");
    assert!(!host_dir.join("escaped").exists());
    assert!(!Path::new("/usr/spy-sandbox-test").exists());
}

#[test]
fn no_sandbox_must_be_asked_for_and_says_so() {
    let f = Fixture::new();
    f.write(
        "graph/plain.toml",
        "name = \"plain\"\nversion = \"1\"\n[phases]\nbuild = \"echo hi > $out/hi\"\n",
    );
    let (_, err) = f.ok(&["realize", "--no-sandbox", "plain"]);
    assert!(err.contains("without a sandbox"), "{err}");
    assert_eq!(std::fs::read_to_string(f.root().join("result/hi")).unwrap(), "hi\n");
    let (show, _) = f.ok(&["show", "plain"]);
    assert!(show.contains("unsandboxed"), "{show}");
}

#[test]
fn archives_with_escaping_entries_are_refused() {
    // Archives are unpacked in `<store>/.spy/tmp/<entry>/build/.unpack-0`: six `..` reach the
    // fixture's root, where a canary waits; an absolute name aims at a canary directly. An escape
    // would overwrite it (the build directory itself is removed after the failure, so an escape
    // that stayed inside it would prove nothing).
    for (name, canary, absolute) in [("dotdot", "canary-dotdot", false), ("abs", "canary-abs", true)] {
        let f = Fixture::new();
        let target = f.root().join(canary);
        std::fs::write(&target, "untouched\n").unwrap();
        let evil = if absolute {
            target.display().to_string()
        } else {
            format!("../../../../../../{canary}")
        };
        let path = f.mirror().join(format!("{name}.tar.gz"));
        common::raw_tar_gz(&path, &[(evil.as_str(), None, 0o644)], b"evil");
        let sha = sha256(&path);
        f.write(
            "graph/evil.toml",
            &format!("name = \"evil\"\nversion = \"1\"\n[[sources]]\nfile = \"{name}.tar.gz\"\nsha256 = \"{sha}\"\n"),
        );
        let err = f.fails(&["realize", "evil"]);
        assert!(err.contains("escapes the destination"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "untouched\n",
            "{evil} reached {}",
            target.display()
        );
        // Nor anywhere on the way up.
        for up in [f.store().join(".spy/tmp"), f.store().join(".spy"), f.store()] {
            assert!(!up.join(canary).exists(), "{}", up.display());
        }
    }
    let f = Fixture::new();
    let path = f.mirror().join("link.tar.gz");
    common::raw_tar_gz(&path, &[("pkg/passwd", Some("/etc/passwd"), 0o644)], b"evil");
    let sha = sha256(&path);
    f.write(
        "graph/evil.toml",
        &format!("name = \"evil\"\nversion = \"1\"\n[[sources]]\nfile = \"link.tar.gz\"\nsha256 = \"{sha}\"\n"),
    );
    let err = f.fails(&["realize", "evil"]);
    assert!(err.contains("symlink to /etc/passwd"), "{err}");
    let path = f.mirror().join("link2.tar.gz");
    common::raw_tar_gz(&path, &[("pkg/up", Some("../../.."), 0o644)], b"evil");
    let sha = sha256(&path);
    f.write(
        "graph/evil.toml",
        &format!("name = \"evil\"\nversion = \"1\"\n[[sources]]\nfile = \"link2.tar.gz\"\nsha256 = \"{sha}\"\n"),
    );
    let err = f.fails(&["realize", "evil"]);
    assert!(err.contains("escapes the destination"), "{err}");
}

#[test]
fn verify_detects_a_modified_file() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    f.ok(&["realize", "hello"]);
    let (_, err) = f.ok(&["verify"]);
    assert!(err.contains("0 problem(s)"), "{err}");
    let file = std::fs::canonicalize(f.root().join("result/bin/hello")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.push(0);
    std::fs::write(&file, bytes).unwrap();
    let o = f.spy(&["verify"]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("MODIFIED") && out.contains("-hello-1.0"), "{out}");
    assert_eq!(out.lines().count(), 1, "only the modified entry: {out}");
}

#[test]
fn builds_share_one_jobserver_and_run_in_parallel() {
    let f = Fixture::new();
    for n in ["left", "right"] {
        f.write(&format!("graph/{n}.toml"), &format!("name = \"{n}\"\nversion = \"1\"\n[phases]\nbuild = \"\"\"\necho \"$MAKEFLAGS\" > $out/makeflags\nprintf 'all:\\n\\t@echo made-$(MAKEFLAGS)\\n' > Makefile\nmake > $out/make.txt\nsleep 2\n\"\"\"\n"));
    }
    f.write("graph/top.toml", "name = \"top\"\nversion = \"1\"\ndeps = [\"left\", \"right\"]\n");
    let (_, err) = f.ok(&["realize", "-j2", "top"]);
    let flags = std::fs::read_to_string(
        f.store()
            .join(
                std::fs::read_dir(f.store())
                    .unwrap()
                    .flatten()
                    .find(|e| e.file_name().to_string_lossy().contains("-left-"))
                    .unwrap()
                    .file_name(),
            )
            .join("makeflags"),
    )
    .unwrap();
    assert!(flags.contains("--jobserver-auth="), "{flags}");
    // Both leaves started before either finished.
    let lines: Vec<&str> = err.lines().collect();
    let pos = |p: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no `{p}` in\n{err}"))
    };
    let first_built = pos("spy: built left").min(pos("spy: built right"));
    assert!(
        pos("spy: building left") < first_built && pos("spy: building right") < first_built,
        "{err}"
    );
    assert!(pos("spy: built top") > first_built);
}

#[test]
fn add_source_and_offline_realize() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    let elsewhere = f.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for n in ["libgreet-1.0.tar.gz", "hello-1.0.tar.gz"] {
        std::fs::rename(f.mirror().join(n), elsewhere.join(n)).unwrap();
    }
    let err = f.fails(&["realize", "--offline", "hello"]);
    assert!(
        err.contains("could not be obtained") && err.contains("libgreet-1.0.tar.gz") && err.contains("add-source"),
        "{err}"
    );
    let (out, _) = f.ok(&[
        "add-source",
        elsewhere.join("libgreet-1.0.tar.gz").to_str().unwrap(),
        elsewhere.join("hello-1.0.tar.gz").to_str().unwrap(),
    ]);
    assert_eq!(out.lines().count(), 2);
    f.ok(&["realize", "--offline", "hello"]);
}

#[test]
fn file_urls_and_mirror_by_hash() {
    let f = Fixture::new();
    let sha = f.tarball("pkg-1.tar.gz", &[("pkg-1/data.txt", "data\n")]);
    let elsewhere = f.root().join("srv");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(f.mirror().join("pkg-1.tar.gz"), elsewhere.join("pkg-1.tar.gz")).unwrap();
    f.write("graph/pkg.toml", &format!("name = \"pkg\"\nversion = \"1\"\n[[sources]]\nurls = [\"file://{}/pkg-1.tar.gz\"]\nsha256 = \"{sha}\"\n[phases]\ninstall = \"cp data.txt $out/\"\n", elsewhere.display()));
    f.ok(&["realize", "pkg"]);
    assert_eq!(std::fs::read_to_string(f.root().join("result/data.txt")).unwrap(), "data\n");
    // A mirror may hold a file under its sha256.
    let g = Fixture::new();
    std::fs::copy(elsewhere.join("pkg-1.tar.gz"), g.mirror().join(&sha)).unwrap();
    g.write("graph/pkg.toml", &format!("name = \"pkg\"\nversion = \"1\"\n[[sources]]\nfile = \"pkg-1.tar.gz\"\nsha256 = \"{sha}\"\n[phases]\ninstall = \"cp data.txt $out/\"\n"));
    g.ok(&["realize", "pkg"]);
}

/// Runs git in `repo` with a fixed identity; returns its trimmed stdout.

#[test]
fn git_sources_are_pinned_by_full_commit() {
    let f = Fixture::new();
    let repo = f.root().join("repo");
    let git = |args: &[&str]| common::git_in(&repo, args);
    std::fs::create_dir_all(&repo).unwrap();
    git(&["init", "-q"]);
    std::fs::write(repo.join("file.txt"), "first\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    let first = git(&["rev-parse", "HEAD"]);
    std::fs::write(repo.join("file.txt"), "second\n").unwrap();
    git(&["commit", "-qam", "two"]);
    let recipe = |commit: &str| {
        format!("name = \"fromgit\"\nversion = \"1\"\n[[sources]]\ngit = {{ url = \"{}\", commit = \"{commit}\" }}\n[phases]\ninstall = \"cp file.txt $out/\"\n", repo.display())
    };
    f.write("graph/fromgit.toml", &recipe(&first));
    f.ok(&["realize", "fromgit"]);
    assert_eq!(std::fs::read_to_string(f.root().join("result/file.txt")).unwrap(), "first\n");
    // A commit that is not in the repository.
    f.write("graph/fromgit.toml", &recipe(&"1".repeat(40)));
    let err = f.fails(&["realize", "fromgit"]);
    assert!(err.contains("is not in") && err.contains(&"1".repeat(40)), "{err}");
    // A prefix is not a pin.
    f.write("graph/fromgit.toml", &recipe(&first[..12]));
    let err = f.fails(&["realize", "fromgit"]);
    assert!(err.contains("full 40-digit"), "{err}");
}

/// A git source whose URL cannot be reached is supplied by a clone in a mirror directory, named as
/// the URL's last segment; a clone without the pinned commit is refused, and the error says how to
/// supply the source.
#[test]
fn git_sources_come_from_a_clone_in_a_mirror() {
    let f = Fixture::new();
    let repo = f.mirror().join("widget.git");
    let git = |args: &[&str]| common::git_in(&repo, args);
    std::fs::create_dir_all(&repo).unwrap();
    git(&["init", "-q"]);
    std::fs::write(repo.join("file.txt"), "mirrored\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    let commit = git(&["rev-parse", "HEAD"]);
    // The URL's host does not resolve (`.invalid`), as GitHub does not from this build machine.
    let recipe = |commit: &str| {
        format!("name = \"fromgit\"\nversion = \"1\"\n[[sources]]\ngit = {{ url = \"https://example.invalid/o/widget\", commit = \"{commit}\" }}\n[phases]\ninstall = \"cp file.txt $out/\"\n")
    };
    f.write("graph/fromgit.toml", &recipe(&"2".repeat(40)));
    let mirror = f.mirror().display().to_string();
    let err = f.fails(&["realize", "--mirror", &mirror, "fromgit"]);
    assert!(err.contains("is not in") && err.contains("nothing was built"), "{err}");
    assert!(err.contains("`widget` or `widget.git`") && err.contains("--mirror DIR"), "{err}");
    f.write("graph/fromgit.toml", &recipe(&commit));
    f.ok(&["realize", "--mirror", &mirror, "fromgit"]);
    assert_eq!(std::fs::read_to_string(f.root().join("result/file.txt")).unwrap(), "mirrored\n");
}

#[test]
fn overlays_change_exactly_the_nodes_they_touch_and_their_dependents() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    let ids = |extra: &[&str]| {
        let mut args = vec!["graph", "--format", "json"];
        args.extend_from_slice(extra);
        args.push("hello");
        let (out, _) = f.ok(&args);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["name"].as_str().unwrap().to_string(), n["id"].as_str().unwrap().to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let base = ids(&[]);
    f.write("overlays/lib-flags.toml", "[nodes.libgreet.env]\nCFLAGS = \"-O3\"\n");
    let over = ids(&["--overlay", "overlays/lib-flags.toml"]);
    assert_ne!(base["libgreet"], over["libgreet"]);
    assert_ne!(base["hello"], over["hello"]);
    assert_eq!(base["stage0"], over["stage0"]);
    let (out, _) = f.ok(&["why-depends", "hello", "stage0"]);
    assert!(out.contains("hello@") && out.contains("stage0@"), "{out}");
    let (dot, _) = f.ok(&["graph", "hello"]);
    assert!(
        dot.starts_with("digraph") && dot.contains("\"hello@x86_64-linux-musl\" -> \"libgreet@x86_64-linux-musl\""),
        "{dot}"
    );
}

/// An overlay table for a node the graph does not have, and without the `version` that would add
/// one, is a misspelt name: every command refuses it, naming the file, line and name. Before,
/// `realize` built as if the overlay said nothing (only `list` noticed).
#[test]
fn an_overlay_naming_a_missing_node_is_an_error_for_every_command() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    f.write("overlays/typo.toml", "# faster\n[nodes.libgret.env]\nCFLAGS = \"-O3\"\n");
    for cmd in [
        &["realize", "hello"][..],
        &["show", "hello"],
        &["path", "hello"],
        &["list"],
        &["graph", "hello"],
    ] {
        let mut args = vec!["--overlay", "overlays/typo.toml"];
        args.extend_from_slice(cmd);
        let err = f.fails(&args);
        assert!(err.contains("typo.toml:2") && err.contains("`libgret`"), "{cmd:?}: {err}");
        // The same through SPY_OVERLAYS.
        let o = f
            .cmd(cmd)
            .env("SPY_OVERLAYS", f.root().join("overlays/typo.toml"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("`libgret`"), "{cmd:?}: {err}");
    }
    assert!(f.entries().is_empty(), "{:?}", f.entries());
    // With a version it adds a node, as documented.
    f.write("overlays/new.toml", "[nodes.libgret]\nversion = \"1\"\n");
    let (list, _) = f.ok(&["list", "--overlay", "overlays/new.toml"]);
    assert!(list.contains("libgret-x86_64"), "{list}");
}

#[test]
fn help_lists_the_commands() {
    let o = std::process::Command::new(SPY).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for c in [
        "realize",
        "list",
        "show",
        "path",
        "log",
        "graph",
        "why-depends",
        "gc",
        "verify",
        "add-source",
        "fetch",
    ] {
        assert!(help.contains(c), "{c} missing from --help:\n{help}");
    }
    assert!(!help.contains("__sandbox"));
}

#[test]
fn make_inside_a_build_takes_its_extra_jobs_from_the_shared_budget() {
    let f = Fixture::new();
    f.write(
        "graph/par.toml",
        r#"name = "par"
version = "1"
[phases]
build = '''
cat > Makefile <<'MK'
all: a b c d e f
a b c d e f:
	@mkdir lock-$@; ls -d lock-* | wc -l >> counts; sleep 0.5; rmdir lock-$@
MK
make
sort -n counts | tail -1 > $out/max
'''
"#,
    );
    for j in ["2", "3"] {
        f.ok(&["realize", "-j", j, "--no-out-link", "stage0"]);
        let (out, _) = f.ok(&["realize", "-j", j, "par"]);
        let max = std::fs::read_to_string(format!("{}/max", out.trim())).unwrap();
        assert_eq!(max.trim(), j, "with -j{j} make ran {max} jobs at once");
        // Force a rebuild with the other budget: ids do not depend on -j.
        let entry = out.trim().rsplit('/').next().unwrap().to_string();
        std::fs::remove_file(f.store().join(".spy/meta").join(format!("{entry}.json"))).unwrap();
    }
}

#[test]
fn gc_leaves_a_running_build_alone() {
    let f = Fixture::new();
    for (name, mode) in [("insandbox", ""), ("inplace", "--no-sandbox")] {
        f.write(
            &format!("graph/{name}.toml"),
            &format!("name = \"{name}\"\nversion = \"1\"\n[phases]\nbuild = \"echo started-{name}; sleep 2; echo done > $out/done\"\n"),
        );
        f.ok(&["realize", "--no-out-link", "stage0"]);
        let mut args = vec!["realize", name];
        if !mode.is_empty() {
            args.insert(1, mode);
        }
        let child = f
            .cmd(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_dir(f.store().join(".spy/logs")).unwrap().flatten().any(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains(&format!("started-{name}"))
        }) {
            assert!(Instant::now() < deadline, "build never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (gone, _) = f.ok(&["gc"]);
        assert!(!gone.contains("-stage0-"), "gc deleted an input of a running build:\n{gone}");
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(std::fs::read_to_string(f.root().join("result/done")).unwrap(), "done\n");
    }
}

/// A one-file HTTP server on 127.0.0.1 for the duration of a test: answers every GET with `body`.
fn serve_once(body: Vec<u8>, requests: usize) -> (u16, std::thread::JoinHandle<usize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        for _ in 0..requests {
            let Ok((stream, _)) = listener.accept() else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let mut w = stream;
            let _ = write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = w.write_all(&body);
            served += 1;
        }
        served
    });
    (port, handle)
}

#[test]
fn http_urls_are_streamed_and_verified() {
    let f = Fixture::new();
    let sha = f.tarball("web-1.tar.gz", &[("web-1/index.txt", "from http\n")]);
    let bytes = std::fs::read(f.mirror().join("web-1.tar.gz")).unwrap();
    std::fs::remove_file(f.mirror().join("web-1.tar.gz")).unwrap();
    let (port, server) = serve_once(bytes, 1);
    f.write("graph/web.toml", &format!("name = \"web\"\nversion = \"1\"\n[[sources]]\nurls = [\"http://127.0.0.1:{port}/dl/web-1.tar.gz\"]\nsha256 = \"{sha}\"\n[phases]\ninstall = \"cp index.txt $out/\"\n"));
    let (_, err) = f.ok(&["realize", "web"]);
    assert!(err.contains(&format!("fetching http://127.0.0.1:{port}/dl/web-1.tar.gz")), "{err}");
    assert_eq!(server.join().unwrap(), 1);
    assert_eq!(std::fs::read_to_string(f.root().join("result/index.txt")).unwrap(), "from http\n");

    // The server now hands out other bytes: refused, named, nothing stored.
    let g = Fixture::new();
    let (port, server) = serve_once(b"not the tarball".to_vec(), 1);
    g.write(
        "graph/web.toml",
        &format!(
            "name = \"web\"\nversion = \"1\"\n[[sources]]\nurls = [\"http://127.0.0.1:{port}/dl/web-1.tar.gz\"]\nsha256 = \"{sha}\"\n"
        ),
    );
    let err = g.fails(&["realize", "web"]);
    server.join().unwrap();
    assert!(
        err.contains(&sha) && err.contains(&format!("http://127.0.0.1:{port}/dl/web-1.tar.gz")),
        "{err}"
    );
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"not the tarball"));
    assert!(err.contains(&actual), "{err}");
    assert_eq!(std::fs::read_dir(g.store().join(".spy/sources")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(g.store().join(".spy/tmp")).unwrap().count(),
        0,
        "no download left behind"
    );
}

#[test]
fn verify_of_an_unbuilt_node_and_a_store_along_a_missing_path_are_errors() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    // Nothing built: verifying the node is an error naming it, not "0 problems".
    let err = f.fails(&["verify", "hello"]);
    assert!(err.contains("not built, nothing to verify") && err.contains("-hello-1.0"), "{err}");
    f.ok(&["realize", "hello"]);
    let (_, err) = f.ok(&["verify", "hello"]);
    assert!(err.contains("verified 1 entr(ies), 0 problem(s)"), "{err}");
    // --store along a path whose parent does not exist: refused, and nothing is made there.
    let missing = f.root().join("no/such/dir/store");
    let err = f.fails(&["--store", missing.to_str().unwrap(), "list"]);
    assert!(err.contains("parent directory") && err.contains("does not exist"), "{err}");
    assert!(!f.root().join("no").exists());
    // A new store inside an existing directory is made where asked.
    let fresh = f.root().join("fresh-store");
    f.ok(&["--store", fresh.to_str().unwrap(), "list"]);
    assert!(fresh.join(".spy").is_dir());
}

/// spy keeps the parsed recipes in the store (`.spy/recipes/`), keyed by each file's identity: an
/// edit is seen at the next command, and a damaged or hostile cache file is only a slower load.
#[test]
fn the_recipe_cache_never_hides_an_edit() {
    let f = Fixture::new();
    f.greet_graph("1.0", "");
    // Files changed in the last two seconds are not recorded (their stamp may not move yet).
    std::thread::sleep(Duration::from_millis(2100));
    let (list, _) = f.ok(&["list"]);
    assert!(list.contains("libgreet-x86_64") && list.contains("1.0"), "{list}");
    let caches: Vec<_> = std::fs::read_dir(f.store().join(".spy/recipes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(caches.len(), 1, "{caches:?}");
    let cache = std::fs::read_to_string(&caches[0]).unwrap();
    assert_eq!(cache.lines().count(), 1 + 4, "a header and a line per recipe file:\n{cache}");
    let (show_cached, _) = f.ok(&["show", "hello"]);

    // An edit made right after: the next command sees it.
    f.greet_graph("1.1", "");
    let (list, _) = f.ok(&["list"]);
    let libgreet = list.lines().find(|l| l.starts_with("libgreet-x86_64")).unwrap();
    assert!(libgreet.contains("1.1"), "{list}");
    let (show, _) = f.ok(&["show", "hello"]);
    assert_ne!(show, show_cached, "hello's id follows its dependency's new version");

    // A cache file that lies about a recipe (same stamps, another table) is believed only when it
    // passes the recipe checks; one that fails them, or is garbage, is ignored line by line.
    std::thread::sleep(Duration::from_millis(2100));
    f.ok(&["list"]);
    let cache = std::fs::read_to_string(&caches[0]).unwrap();
    assert!(cache.contains("\"deps\":[\"libgreet\"]"), "{cache}");
    std::fs::write(
        &caches[0],
        cache.replace("\"deps\":[\"libgreet\"]", "\"deps\":[\"../../../etc/passwd\"]"),
    )
    .unwrap();
    let (again, _) = f.ok(&["show", "hello"]);
    assert_eq!(again, show);
    std::fs::write(&caches[0], b"\x00\xffnot a cache\n").unwrap();
    let (again, _) = f.ok(&["show", "hello"]);
    assert_eq!(again, show);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&caches[0]).unwrap().permissions().mode() & 0o777,
        0o600,
        "recipes stay private"
    );

    // `spy gc` drops the caches; SPY_RECIPE_CACHE=0 neither reads nor writes one.
    f.ok(&["gc"]);
    assert!(!f.store().join(".spy/recipes").exists());
    let o = f.cmd(&["list"]).env("SPY_RECIPE_CACHE", "0").output().unwrap();
    assert!(o.status.success());
    assert!(!f.store().join(".spy/recipes").exists());
}
