//! The real package set through caches and checks: `python3.11-x86_64` rebuilt in a fresh store
//! by `spy check` is bit-for-bit identical; pushed to a signed cache it is substituted into an
//! empty store with zero builds; `spy release` writes verifiable release files for it.

mod common;

use std::path::Path;
use std::process::Command;

fn ok_spy(store: &Path, args: &[&str]) -> (String, String) {
    let o = common::spy_on_repo(store, args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "spy {args:?} failed:\n{out}\n{err}");
    (out, err)
}

#[test]
fn python311_checks_identical_substitutes_and_releases() {
    let store = common::e2e_store();
    let built = common::realize_real("python3.11-x86_64", &[]);
    let release_name = "python3.11-x86_64";
    let (_, err) = ok_spy(&store, &["check", "-j2", release_name]);
    assert!(err.contains("1 node(s) rebuilt, all bit-for-bit identical"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().display().to_string();
    let (public, _) = ok_spy(&store, &["key", "generate", "e2e-1", "--out-dir", &t]);
    let key = format!("{t}/e2e-1.secret");
    let cache = format!("file://{t}/cache");
    ok_spy(&store, &["push", "--to", &cache, "--sign", &key, "--no-closure", release_name]);
    let store_b = tmp.path().join("store-b");
    let (out, err) = ok_spy(
        &store_b,
        &[
            "realize",
            "--no-out-link",
            "--substituter",
            &cache,
            "--trusted-public-key",
            public.trim(),
            release_name,
        ],
    );
    assert!(common::built_lines(&err).is_empty(), "zero builds:\n{err}");
    assert!(err.contains("substituted python3.11@x86_64-linux-musl"), "{err}");
    let bin_a = built.join("bin").join(release_name);
    let bin_b = Path::new(out.trim()).join("bin").join(release_name);
    assert_eq!(common::sha256(&bin_a), common::sha256(&bin_b));
    let run = Command::new(&bin_b)
        .args(["-c", "import ssl, sqlite3; print('ok')"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "ok\n");

    let dist = format!("{t}/dist");
    ok_spy(&store, &["release", release_name, "--out", &dist, "--sign", &key]);
    common::sha256sums_check(Path::new(&dist));
    let (v, _) = ok_spy(&store, &["key", "verify", "--key", public.trim(), &format!("{dist}/SHA256SUMS")]);
    assert!(v.contains("good signature"), "{v}");
    assert_eq!(common::sha256(&Path::new(&dist).join(release_name)), common::sha256(&bin_a));
}
