//! The lazy code groups' link logic (graph/python/pyext/spy_lazy_link.py, run by spy-relink in
//! the sandbox) without building a Python: its unit tests, run by the host's Python. They choose
//! groups on made-up cross-reference tables and rewrite a small static program linked by the host's
//! gcc, which must still run.

use std::path::Path;
use std::process::Command;

#[test]
fn spy_lazy_link_unit_tests() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lazy_link/test_spy_lazy_link.py");
    let out = Command::new("/usr/bin/python3")
        .args(["-W", "error::ResourceWarning"])
        .arg(&script)
        .output()
        .expect("run /usr/bin/python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("\nOK"), "{stderr}");
}
