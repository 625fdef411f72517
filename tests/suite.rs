//! CPython's whole regression suite run by the release binary (benches/cpython-suite.sh): every
//! module that fails must be one docs/packages.md lists for that version with its cause, so a
//! new failure (a regression, or a cause nobody wrote down) fails this test. tests/e2e/run only:
//! a run takes 2 (2.7) to about 8 minutes on two cores after the test variant is built, and
//! Stackless 3.7's 27: two of its modules hang until the suite's 20-minute timeout (docs).

use std::path::PathBuf;
use std::process::Command;

mod common;

/// The module names of the table between `<!-- suite-VERSION` and `<!-- end suite-VERSION -->`.
fn documented(version: &str) -> Vec<String> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(repo.join("docs/packages.md")).unwrap();
    let start = doc
        .find(&format!("<!-- suite-{version}"))
        .unwrap_or_else(|| panic!("docs/packages.md has no table for the {version} suite"));
    let end = doc[start..]
        .find(&format!("<!-- end suite-{version} -->"))
        .expect("end of the table")
        + start;
    let mut names = Vec::new();
    for row in doc[start..end].lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        names.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    names
}

/// `version` is benches/cpython-suite.sh's argument, `table` the docs table its failures must be in.
fn suite_failures_are_documented(version: &str, table: &str) {
    let documented = documented(table);
    let log = tempfile::NamedTempFile::new().unwrap();
    let o = Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/cpython-suite.sh"))
        .arg(version)
        .env("SPY_STORE", common::e2e_store())
        .env("SUITE_LOG", log.path())
        .env_remove("SPY_OVERLAYS")
        .output()
        .unwrap();
    let summary = common::ok(&o);
    let text = std::fs::read_to_string(log.path()).unwrap();
    // Both regrtests (2.7's and 3.x's) end with "N tests OK." when anything passed.
    assert!(text.contains(" OK."), "the suite did not finish:\n{summary}");
    let failed: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains(" failed: ") && l.split(' ').next().is_some_and(|n| n.parse::<u32>().is_ok()))
        .flat_map(|l| l.split_once(": ").unwrap().1.split_whitespace())
        .collect();
    let new: Vec<&&str> = failed.iter().filter(|m| !documented.iter().any(|d| d == *m)).collect();
    assert!(
        new.is_empty(),
        "modules that fail without a documented cause (docs/packages.md, suite-{table}): {new:?}\n{summary}"
    );
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python3_13_suite_failures_are_documented() {
    suite_failures_are_documented("3.13", "3.13");
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python3_11_suite_failures_are_documented() {
    suite_failures_are_documented("3.11", "3.11");
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn python2_7_suite_failures_are_documented() {
    suite_failures_are_documented("2.7", "2.7");
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn stackless3_7_suite_failures_are_documented() {
    suite_failures_are_documented("stackless3.7", "stackless3.7");
}

#[test]
#[ignore = "e2e: tests/e2e/run"]
fn stackless2_7_suite_failures_are_documented() {
    // Stackless 2.7.17 fails the same cases of the same modules as 2.7.18 (docs/packages.md).
    suite_failures_are_documented("stackless2.7", "2.7");
}
