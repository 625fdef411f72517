//! The live progress line on a terminal: each running build's phase and the last line of its log,
//! as nix shows them (spy in a pseudo-terminal, on a fixture graph).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

#[test]
fn a_terminal_shows_the_phase_and_the_last_log_line_of_a_running_build() {
    let f = Fixture::new();
    // The build phase writes a line, then waits for the test to have seen it (a file the test
    // makes), so the screen is read while the build is surely running.
    let seen = f.root().join("SEEN");
    f.write(
        "graph/slow.toml",
        &format!(
            "name = \"slow\"\nversion = \"1\"\n[phases]\nconfigure = \"echo configuring\"\nbuild = '''\necho 'compiling part one of two'\nn=0; while [ ! -e {seen} ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done\n'''\ninstall = \"echo done > $out/done\"\n",
            seen = seen.display()
        ),
    );
    let script = f.root().join("run-spy.sh");
    let cmd: Command = f.cmd(&[]);
    let env: String = cmd
        .get_envs()
        .map(|(k, v)| match v {
            Some(v) => format!("export {}='{}'\n", k.to_string_lossy(), v.to_string_lossy()),
            None => format!("unset {}\n", k.to_string_lossy()),
        })
        .collect();
    std::fs::write(
        &script,
        format!(
            "{env}cd '{}'\n'{SPY}' realize --no-sandbox --no-out-link slow\n",
            f.root().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let pty = PtySession::shell("progress", f.root());
    pty.wait_for("$");
    pty.type_line(&format!("{}; echo \"SPY\"\"-EXIT=$?\"", script.display()));
    let screen = pty.wait_for_within("building slow@x86_64-linux-musl [build] compiling part one of two", 120);
    std::fs::write(&seen, b"").unwrap();
    let screen_after = pty.wait_for_within("SPY-EXIT=", 120);
    assert!(screen_after.contains("SPY-EXIT=0"), "{screen}\n---\n{screen_after}");
    // The live line is gone once the realize is done.
    assert!(!screen_after.contains("[build] compiling"), "{screen_after}");
}
