//! The realizers of `build` nodes ([`Builder`]) and `bootstrap` nodes ([`Bootstrap`]). A build
//! lays out its sources and patches in the transaction's build directory, writes the phase driver
//! script, and runs it with bash inside the sandbox (or, with `--no-sandbox`, directly on the
//! host), with the deterministic environment of `docs/architecture.md`.
//!
//! It touches only the store transaction's `Work` (output, build area, private directory, log) and
//! reads the store's entries and cached sources; it never decides what to build and never
//! registers anything: the scheduler does the one, the store's transaction the other.

pub mod sandbox;
pub mod seccomp;
mod version;

pub use version::BUILDER_VERSION;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use petgraph::graph::NodeIndex;
use spy_plan::{Plan, PlanNode, Realizer};
use spy_recipe::PHASES;
use spy_store::{Origin, Store, StoreName, Work};

/// Where the store appears inside every sandbox, whatever its host location.
pub const SANDBOX_STORE: &str = "/spy/store";
/// The build directory inside the sandbox.
pub const SANDBOX_BUILD: &str = "/build";
/// `SOURCE_DATE_EPOCH` unless a recipe sets one: 1980-01-01, the earliest time a ZIP can hold.
pub const DEFAULT_SOURCE_DATE_EPOCH: &str = "315532800";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{node}: {message}")]
    Setup { node: String, message: String },
    #[error("{node}: build failed ({status}); full log: {}", log.display())]
    Failed { node: String, status: String, log: PathBuf },
    #[error("{node}: cancelled")]
    Cancelled { node: String },
}

/// Realizes `build` nodes: lays out sources and patches, runs the phases in the sandbox (or, with
/// `sandbox: false`, on the host, in place at the entry's final path).
pub struct Builder<'a> {
    /// The store the inputs and cached sources are read from.
    pub store: &'a Store,
    pub sandbox: bool,
    /// `SPY_JOBS`, and the size of the jobserver's pool.
    pub jobs: usize,
    pub jobserver: Option<&'a jobserver::Client>,
    /// Set to stop a running build (it then fails with `BuildError::Cancelled`).
    pub cancel: &'a AtomicBool,
    /// The `spy` executable, re-run as the sandbox helper.
    pub spy_exe: PathBuf,
}

impl Realizer for Builder<'_> {
    type Error = BuildError;

    fn origin(&self, _node: &PlanNode) -> Origin {
        Origin::Built {
            sandboxed: self.sandbox,
            in_place: !self.sandbox,
        }
    }

    fn realize(&self, plan: &Plan, n: NodeIndex, w: &mut Work) -> Result<(), BuildError> {
        let node = plan.node(n);
        let sources = node
            .sources
            .iter()
            .map(|s| {
                s.cached_in(self.store).ok_or_else(|| BuildError::Setup {
                    node: node.key.to_string(),
                    message: format!("source {} vanished from the store", s.file),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let job = BuildJob {
            node,
            inputs: node
                .deps
                .iter()
                .map(|&d| {
                    let dn = plan.node(d);
                    Input {
                        var: dn.var_name(),
                        store_name: dn.store_name(),
                        host_specific: dn.is_host_specific(),
                    }
                })
                .collect(),
            closure: plan.closure(&node.deps).into_iter().map(|d| plan.node(d).store_name()).collect(),
            sources,
            store: self.store,
            sandbox: self.sandbox,
            jobs: self.jobs,
            jobserver: self.jobserver,
            cancel: self.cancel,
            spy_exe: self.spy_exe.clone(),
        };
        run_build(&job, w)
    }
}

/// Realizes `bootstrap` nodes (`realize_bootstrap`).
pub struct Bootstrap {
    /// Recorded in the metadata as for the builds of the same run.
    pub sandboxed: bool,
}

impl Realizer for Bootstrap {
    type Error = BuildError;

    fn origin(&self, _node: &PlanNode) -> Origin {
        Origin::built(self.sandboxed)
    }

    fn realize(&self, plan: &Plan, n: NodeIndex, w: &mut Work) -> Result<(), BuildError> {
        realize_bootstrap(plan.node(n), w)
    }
}

/// A dependency as the build sees it.
#[derive(Debug, Clone)]
struct Input {
    var: String,
    store_name: StoreName,
    /// A host-specific input (`PlanNode::is_host_specific`): its tools come last on `PATH`.
    host_specific: bool,
}

/// One build, as `run_build` needs it.
struct BuildJob<'a> {
    node: &'a PlanNode,
    /// Direct dependencies (each becomes a variable).
    inputs: Vec<Input>,
    /// Every entry of the transitive closure of inputs (made visible in the sandbox).
    closure: Vec<StoreName>,
    /// Cached source files, parallel to `node.sources`.
    sources: Vec<PathBuf>,
    /// The store the inputs are read from (the output goes to the transaction's `Work`).
    store: &'a Store,
    sandbox: bool,
    jobs: usize,
    jobserver: Option<&'a jobserver::Client>,
    cancel: &'a AtomicBool,
    spy_exe: PathBuf,
}

impl BuildJob<'_> {
    fn setup_err(&self, message: impl std::fmt::Display) -> BuildError {
        BuildError::Setup {
            node: self.node.key.to_string(),
            message: message.to_string(),
        }
    }
}

/// Host-side paths of the build as seen from inside: (store dir, build dir, tmp dir).
fn visible_paths(job: &BuildJob, w: &Work) -> (String, String, String) {
    if job.sandbox {
        (SANDBOX_STORE.into(), SANDBOX_BUILD.into(), "/tmp".into())
    } else {
        (
            job.store.root().display().to_string(),
            w.build_dir().display().to_string(),
            w.private_dir().join("tmp").display().to_string(),
        )
    }
}

/// Realizes a bootstrap node: a `bin/` of symlinks to the host tools, and their identification.
pub fn realize_bootstrap(node: &PlanNode, w: &Work) -> Result<(), BuildError> {
    let e = |m: std::io::Error| BuildError::Setup {
        node: node.key.to_string(),
        message: m.to_string(),
    };
    let bin = w.out().join("bin");
    fs_err::create_dir_all(&bin).map_err(e)?;
    for t in &node.tools {
        std::os::unix::fs::symlink(&t.path, bin.join(&t.name)).map_err(e)?;
    }
    let json = serde_json::to_string_pretty(&node.tools).unwrap_or_default();
    fs_err::write(w.out().join("tools.json"), json + "\n").map_err(e)?;
    Ok(())
}

/// Runs a build node's phases. On success the output is in `w.out()`, ready for registration.
fn run_build(job: &BuildJob, w: &mut Work) -> Result<(), BuildError> {
    let log_path = w.log_path();
    let mut log = w
        .log()
        .and_then(|f| {
            f.try_clone().map_err(|e| spy_store::StoreError::Io {
                path: log_path.clone(),
                message: e.to_string(),
            })
        })
        .map_err(|e| job.setup_err(e))?;
    // What spy itself writes to the log; a failure to write it is an error like any other.
    let note = |log: &mut std::fs::File, text: std::fmt::Arguments| {
        writeln!(log, "{text}").map_err(|e| job.setup_err(format!("{}: {e}", log_path.display())))
    };
    let store_name = w.store_name().clone();
    note(
        &mut log,
        format_args!("spy: building {} ({store_name})\nspy: id {}", job.node.key, job.node.id),
    )?;
    let (store_in, build_in, tmp_in) = visible_paths(job, w);
    let work_dir = w.build_dir().to_path_buf();
    let spy_dir = work_dir.join(".spy");
    fs_err::create_dir_all(spy_dir.join("patches")).map_err(|e| job.setup_err(e))?;
    fs_err::create_dir_all(w.private_dir().join("tmp")).map_err(|e| job.setup_err(e))?;

    // Sources: the first unpacked one is the working directory.
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut workdir = build_in.clone();
    for (i, (src, path)) in job.node.sources.iter().zip(&job.sources).enumerate() {
        let visible = if src.unpack {
            let tmp = work_dir.join(format!(".unpack-{i}"));
            note(&mut log, format_args!("spy: unpacking {}", src.file))?;
            spy_unpack::unpack(path, &tmp).map_err(|e| job.setup_err(e))?;
            let entries: Vec<_> = fs_err::read_dir(&tmp).map_err(|e| job.setup_err(e))?.flatten().collect();
            let name = if entries.len() == 1 && entries[0].path().is_dir() {
                let name = entries[0].file_name().to_string_lossy().into_owned();
                fs_err::rename(entries[0].path(), work_dir.join(&name)).map_err(|e| job.setup_err(e))?;
                fs_err::remove_dir(&tmp).map_err(|e| job.setup_err(e))?;
                name
            } else {
                let name = format!("source-{i}");
                fs_err::rename(&tmp, work_dir.join(&name)).map_err(|e| job.setup_err(e))?;
                name
            };
            format!("{build_in}/{name}")
        } else {
            fs_err::copy(path, work_dir.join(&src.file)).map_err(|e| job.setup_err(e))?;
            format!("{build_in}/{}", src.file)
        };
        if i == 0 && src.unpack {
            workdir = visible.clone();
        }
        vars.push((src.var.clone(), visible));
    }
    let mut patch_lines = String::new();
    for (i, p) in job.node.patches.iter().enumerate() {
        let name = format!("{:02}-{}", i, p.name);
        fs_err::copy(&p.path, spy_dir.join("patches").join(&name)).map_err(|e| job.setup_err(e))?;
        patch_lines.push_str(&format!(
            "echo 'spy: applying {}'\npatch -p1 --forward --batch -i \"$SPY_BUILD_TOP/.spy/patches/{}\"\n",
            p.name, name
        ));
    }

    if !job.node.files.is_empty() {
        let files_dir = spy_dir.join("files");
        fs_err::create_dir_all(&files_dir).map_err(|e| job.setup_err(e))?;
        for f in &job.node.files {
            fs_err::copy(&f.path, files_dir.join(&f.name)).map_err(|e| job.setup_err(e))?;
        }
    }

    let script = driver_script(job.node, &patch_lines);
    fs_err::write(spy_dir.join("builder.sh"), script).map_err(|e| job.setup_err(e))?;

    // The environment: defaults, then the recipe's, then the reserved names.
    let out_visible = if job.sandbox {
        format!("{store_in}/{store_name}")
    } else {
        w.out().display().to_string()
    };
    // PATH: the `bin/` of every direct input that has one (a toolchain's compiler wrappers before
    // the host tools of stage 0), and nothing else.
    let mut path_dirs: Vec<String> = Vec::new();
    for host in [false, true] {
        for i in job.inputs.iter().filter(|i| i.host_specific == host) {
            if job.store.entry(&i.store_name).join("bin").is_dir() {
                path_dirs.push(format!("{store_in}/{}/bin", i.store_name));
            }
        }
    }
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            if path_dirs.is_empty() {
                "/path-not-set".into()
            } else {
                path_dirs.join(":")
            },
        ),
        ("HOME".into(), "/homeless-shelter".into()),
        ("TMPDIR".into(), tmp_in.clone()),
        ("TMP".into(), tmp_in.clone()),
        ("TEMP".into(), tmp_in.clone()),
        ("TZ".into(), "UTC".into()),
        ("LC_ALL".into(), "C".into()),
        ("LANG".into(), "C".into()),
        ("SOURCE_DATE_EPOCH".into(), DEFAULT_SOURCE_DATE_EPOCH.into()),
        ("TERM".into(), "dumb".into()),
        ("SHELL".into(), "/bin/bash".into()),
        ("USER".into(), "spy".into()),
    ];
    for (k, v) in &job.node.env {
        set(&mut env, k, v);
    }
    set(&mut env, "out", &out_visible);
    set(&mut env, "SPY_STORE", &store_in);
    set(&mut env, "SPY_BUILD_TOP", &build_in);
    set(&mut env, "SPY_SRC_DIR", &workdir);
    set(&mut env, "SPY_FILES", &format!("{build_in}/.spy/files"));
    set(&mut env, "SPY_TARGET", &job.node.key.target);
    set(&mut env, "SPY_NAME", &job.node.key.name);
    set(&mut env, "SPY_VERSION", &job.node.version);
    set(&mut env, "SPY_JOBS", &job.jobs.to_string());
    for (k, v) in &vars {
        set(&mut env, k, v);
    }
    for i in &job.inputs {
        set(&mut env, &i.var, &format!("{store_in}/{}", i.store_name));
    }
    if let Some(js) = job.jobserver {
        // GNU make finds the shared token pool here; `-j` without a number defers to it.
        let mut probe = Command::new("true");
        js.configure_make(&mut probe);
        if let Some(flags) = probe.get_envs().find(|(k, _)| *k == "MAKEFLAGS").and_then(|(_, v)| v) {
            set(&mut env, "MAKEFLAGS", &flags.to_string_lossy());
        }
    }

    let stdout = log.try_clone().map_err(|e| job.setup_err(e))?;
    let stderr = log.try_clone().map_err(|e| job.setup_err(e))?;
    note(
        &mut log,
        format_args!("spy: sandbox: {}", if job.sandbox { "namespaces" } else { "none (--no-sandbox)" }),
    )?;
    let mut cmd;
    let spy_pid = std::process::id() as libc::pid_t;
    // The sandbox's lifeline (see `sandbox`): this process holds the write end until the build is
    // over; its end-of-file, whenever spy dies or lets go, ends every process of the build.
    let mut lifeline_write: Option<std::os::fd::OwnedFd> = None;
    let mut lifeline_read: Option<std::os::fd::OwnedFd> = None;
    if job.sandbox {
        use std::os::fd::AsRawFd;
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| job.setup_err(format!("lifeline pipe: {e}")))?;
        let read_fd = read.as_raw_fd();
        (lifeline_read, lifeline_write) = (Some(read), Some(write));
        let mut spec = sandbox_spec(job, w, env.clone(), &workdir);
        spec.lifeline_fd = Some(read_fd);
        let spec_path = w.private_dir().join("sandbox.json");
        fs_err::write(&spec_path, serde_json::to_vec_pretty(&spec).unwrap_or_default()).map_err(|e| job.setup_err(e))?;
        fs_err::create_dir_all(&spec.root).map_err(|e| job.setup_err(e))?;
        cmd = Command::new(&job.spy_exe);
        cmd.arg("__sandbox").arg(&spec_path);
        // SAFETY: only async-signal-safe calls between fork and exec; the descriptor stays open in
        // this process until the child has started.
        unsafe {
            cmd.pre_exec(move || sandbox::helper_pre_exec(spy_pid, read_fd));
        }
    } else {
        cmd = Command::new("/bin/bash");
        cmd.arg(format!("{build_in}/.spy/builder.sh"))
            .current_dir(&work_dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)));
        // Its own session (no controlling terminal; its process group is its pid, for the kill
        // below) and death with spy.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != spy_pid {
                    libc::_exit(125);
                }
                Ok(())
            });
        }
    }
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    if let Some(js) = job.jobserver {
        js.configure(&mut cmd);
    }
    let spawned = cmd.spawn();
    // The read end belongs to the helper now: only pid 1 may hold it, or spy's death would go
    // unnoticed.
    drop(lifeline_read);
    let mut child = spawned.map_err(|e| job.setup_err(format!("cannot start the build: {e}")))?;
    let status = loop {
        if job.cancel.load(Ordering::Relaxed) {
            let pid = child.id() as i32;
            // Letting go of the lifeline ends the namespace; the helper is killed too.
            drop(lifeline_write.take());
            unsafe {
                if job.sandbox {
                    libc::kill(pid, libc::SIGKILL);
                } else {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
            return Err(BuildError::Cancelled {
                node: job.node.key.to_string(),
            });
        }
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(job.setup_err(e)),
        }
    };
    if !status.success() {
        return Err(BuildError::Failed {
            node: job.node.key.to_string(),
            status: status.to_string(),
            log: log_path.clone(),
        });
    }
    Ok(())
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    env.retain(|(key, _)| key != k);
    env.push((k.to_string(), v.to_string()));
}

/// The bash script that applies patches and runs the phases, each as a function started from
/// the source directory.
fn driver_script(node: &PlanNode, patch_lines: &str) -> String {
    let mut s = String::from("# generated by spy\nset -eo pipefail\numask 022\ncd \"$SPY_SRC_DIR\"\n");
    s.push_str(patch_lines);
    for p in PHASES {
        if let Some(body) = node.phases.get(&p) {
            s.push_str(&format!(
                "spy_phase_{0}() {{\n{1}\n}}\necho 'spy: phase {0}'\ncd \"$SPY_SRC_DIR\"\nspy_phase_{0}\n",
                p.as_str(),
                body
            ));
        }
    }
    s.push_str("echo 'spy: phases done'\n");
    s
}

/// The sandbox root: the host's `/usr` and friends read-only (the bootstrap tools and the libraries
/// they run on), the closure of inputs read-only, `$out`, `/build` and `/tmp` writable, nothing else.
fn sandbox_spec(job: &BuildJob, w: &Work, env: Vec<(String, String)>, workdir: &str) -> sandbox::SandboxSpec {
    use sandbox::Bind;
    let mut binds = Vec::new();
    let mut symlinks = Vec::new();
    for top in ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let p = Path::new(top);
        match fs_err::symlink_metadata(p) {
            Ok(md) if md.is_symlink() => {
                if let Ok(t) = fs_err::read_link(p) {
                    symlinks.push((top.to_string(), t.display().to_string()));
                }
            }
            Ok(md) if md.is_dir() => binds.push(Bind {
                src: p.into(),
                dst: top.into(),
                writable: false,
                device: false,
            }),
            _ => {}
        }
    }
    for f in ["/etc/ld.so.cache", "/etc/ld.so.conf"] {
        if Path::new(f).is_file() {
            binds.push(Bind {
                src: f.into(),
                dst: f.into(),
                writable: false,
                device: false,
            });
        }
    }
    // No `/dev/tty`: a build has no terminal to talk to (or to type into).
    for dev in ["null", "zero", "full", "random", "urandom"] {
        binds.push(Bind {
            src: PathBuf::from("/dev").join(dev),
            dst: format!("/dev/{dev}"),
            writable: true,
            device: true,
        });
    }
    for name in &job.closure {
        binds.push(Bind {
            src: job.store.entry(name),
            dst: format!("{SANDBOX_STORE}/{name}"),
            writable: false,
            device: false,
        });
    }
    binds.push(Bind {
        src: w.out().to_path_buf(),
        dst: format!("{SANDBOX_STORE}/{}", w.store_name()),
        writable: true,
        device: false,
    });
    binds.push(Bind {
        src: w.build_dir().to_path_buf(),
        dst: SANDBOX_BUILD.into(),
        writable: true,
        device: false,
    });
    binds.push(Bind {
        src: w.private_dir().join("tmp"),
        dst: "/tmp".into(),
        writable: true,
        device: false,
    });
    for (l, t) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/ptmx", "pts/ptmx"),
    ] {
        symlinks.push((l.into(), t.into()));
    }
    let files = vec![
        ("/etc/passwd".into(), format!("root:x:0:0:root:/homeless-shelter:/bin/sh\nspy:x:{}:{}:spy build user:/homeless-shelter:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", sandbox::BUILD_UID, sandbox::BUILD_GID)),
        ("/etc/group".into(), format!("root:x:0:\nspy:x:{}:\nnogroup:x:65534:\n", sandbox::BUILD_GID)),
        ("/etc/hosts".into(), "127.0.0.1 localhost\n::1 localhost\n".into()),
    ];
    sandbox::SandboxSpec {
        root: w.private_dir().join("root"),
        binds,
        symlinks,
        files,
        dirs: vec![SANDBOX_STORE.into()],
        workdir: workdir.to_string(),
        env,
        argv: vec!["/bin/bash".into(), format!("{SANDBOX_BUILD}/.spy/builder.sh")],
        hostname: "localhost".into(),
        lifeline_fd: None,
    }
}

/// A line of build output as it may reach the user's terminal: every control character (the escape
/// sequences a hostile build could write to its log, carriage returns, tabs) becomes a space.
/// Failure reports (`log_tail`) and the live progress line both show build output through it.
pub fn terminal_safe(line: &str) -> String {
    line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Last `n` lines of a log, for failure reports, made [`terminal_safe`].
pub fn log_tail(log: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    // Only the end of the file is read (logs can be large), and each line is cut short: a compiler
    // command line can be thousands of characters, which would bury the error.
    const WINDOW: u64 = 64 * 1024;
    const WIDTH: usize = 300;
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(WINDOW)));
        let _ = f.read_to_end(&mut bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| {
            let l = terminal_safe(l);
            match l.char_indices().nth(WIDTH) {
                Some((i, _)) => format!("{} […]", &l[..i]),
                None => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_tail_keeps_the_last_lines_and_cuts_long_ones() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str(&"gcc -I/very/long ".repeat(500));
        text.push_str("\nerror: the real cause\n");
        std::fs::write(&log, text).unwrap();
        let tail = super::log_tail(&log, 3);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "line 9999");
        assert!(lines[1].ends_with(" […]") && lines[1].chars().count() < 320, "{}", lines[1]);
        assert_eq!(lines[2], "error: the real cause");
        assert_eq!(super::log_tail(&dir.path().join("missing.log"), 3), "");
        // A build's escape sequences are not passed on to the terminal.
        std::fs::write(&log, "ok\n\x1b]0;title\x07\x1b[2Jerror\n").unwrap();
        assert_eq!(super::log_tail(&log, 1), " ]0;title  [2Jerror");
    }
}
