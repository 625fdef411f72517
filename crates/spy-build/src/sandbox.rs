//! The Linux sandbox: a fresh user, mount, pid, network, UTS and IPC namespace, a tmpfs root that
//! holds only what the spec binds into it, and `pivot_root` into it.
//!
//! spy starts `spy __sandbox SPEC` (a fresh, single-threaded process, so forking after `unshare` is
//! safe); that process unshares, maps the caller's uid/gid to the build user, forks the namespace's
//! pid 1, waits for it and exits with its status. Both die with their parent (`PR_SET_PDEATHSIG`),
//! and the kernel kills everything in the pid namespace when its pid 1 dies, so a killed spy leaves
//! no stray build processes.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};

/// The uid and gid builds run as inside the sandbox.
pub const BUILD_UID: u32 = 1000;
pub const BUILD_GID: u32 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bind {
    pub src: PathBuf,
    pub dst: String,
    pub writable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// An empty host directory that becomes `/` (a tmpfs is mounted over it).
    pub root: PathBuf,
    pub binds: Vec<Bind>,
    /// (path inside, link target)
    pub symlinks: Vec<(String, String)>,
    /// (path inside, contents)
    pub files: Vec<(String, String)>,
    /// Directories to create (writable scratch on the root tmpfs is not offered: the root is
    /// made read-only once populated).
    pub dirs: Vec<String>,
    pub workdir: String,
    pub env: Vec<(String, String)>,
    pub argv: Vec<String>,
    pub hostname: String,
}

#[derive(Debug, thiserror::Error)]
#[error("sandbox setup: {step}: {message}")]
pub struct SandboxError {
    pub step: String,
    pub message: String,
}

fn err(step: impl Into<String>) -> impl FnOnce(nix::Error) -> SandboxError {
    let step = step.into();
    move |e| SandboxError {
        step,
        message: e.desc().to_string(),
    }
}
fn ioerr(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let step = step.into();
    move |e| SandboxError {
        step,
        message: e.to_string(),
    }
}

/// Whether this machine lets an unprivileged process create user namespaces (checked by running
/// `unshare` in a child, so the caller's namespaces are untouched).
pub fn available() -> Result<(), String> {
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let ok = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNET).is_ok();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            _ => Err("this kernel refuses to create user namespaces (see /proc/sys/kernel/unprivileged_userns_clone and /proc/sys/user/max_user_namespaces)".into()),
        },
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// Entry point of `spy __sandbox SPEC`: never returns normally.
pub fn enter(spec_path: &Path) -> ! {
    let code = match enter_inner(spec_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("spy: {e}");
            125
        }
    };
    std::process::exit(code)
}

fn enter_inner(spec_path: &Path) -> Result<i32, SandboxError> {
    let spec: SandboxSpec = serde_json::from_slice(&fs_err::read(spec_path).map_err(ioerr("read spec"))?).map_err(|e| SandboxError {
        step: "parse spec".into(),
        message: e.to_string(),
    })?;
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC,
    )
    .map_err(err("unshare"))?;
    fs_err::write("/proc/self/setgroups", "deny").map_err(ioerr("setgroups"))?;
    fs_err::write("/proc/self/uid_map", format!("{BUILD_UID} {uid} 1")).map_err(ioerr("uid_map"))?;
    fs_err::write("/proc/self/gid_map", format!("{BUILD_GID} {gid} 1")).map_err(ioerr("gid_map"))?;
    match unsafe { fork() }.map_err(err("fork"))? {
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, c)) => return Ok(c),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
                Ok(_) => continue,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(err("waitpid")(e)),
            }
        },
        ForkResult::Child => {
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let e = pid1(&spec);
            eprintln!("spy: {}", e.unwrap_err());
            unsafe { libc::_exit(125) }
        }
    }
}

/// Runs as pid 1 of the new namespaces: builds the root and execs the build.
fn pid1(spec: &SandboxSpec) -> Result<std::convert::Infallible, SandboxError> {
    nix::unistd::sethostname(&spec.hostname).map_err(err("sethostname"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).map_err(err("make / private"))?;
    let root = &spec.root;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(err("mount root tmpfs"))?;
    let inside = |p: &str| root.join(p.trim_start_matches('/'));
    for d in &spec.dirs {
        fs_err::create_dir_all(inside(d)).map_err(ioerr(format!("mkdir {d}")))?;
    }
    for b in &spec.binds {
        let target = inside(&b.dst);
        let md = fs_err::metadata(&b.src).map_err(ioerr(format!("bind source {}", b.src.display())))?;
        if md.is_dir() {
            fs_err::create_dir_all(&target).map_err(ioerr(format!("mkdir {}", b.dst)))?;
        } else {
            if let Some(p) = target.parent() {
                fs_err::create_dir_all(p).map_err(ioerr(format!("mkdir for {}", b.dst)))?;
            }
            fs_err::write(&target, "").map_err(ioerr(format!("create {}", b.dst)))?;
        }
        mount(
            Some(&b.src),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err(format!("bind {} -> {}", b.src.display(), b.dst)))?;
        if !b.writable {
            // Flags the kernel locked on the source mount (nosuid, nodev...) must be kept.
            let locked = nix::sys::statvfs::statvfs(&target)
                .map(|s| s.flags())
                .unwrap_or(nix::sys::statvfs::FsFlags::empty());
            let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            use nix::sys::statvfs::FsFlags as F;
            for (f, m) in [
                (F::ST_NOSUID, MsFlags::MS_NOSUID),
                (F::ST_NODEV, MsFlags::MS_NODEV),
                (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (F::ST_NOATIME, MsFlags::MS_NOATIME),
                (F::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (F::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if locked.contains(f) {
                    flags |= m;
                }
            }
            mount(None::<&str>, &target, None::<&str>, flags, None::<&str>).map_err(err(format!("read-only {}", b.dst)))?;
        }
    }
    for (path, contents) in &spec.files {
        let p = inside(path);
        if let Some(d) = p.parent() {
            fs_err::create_dir_all(d).map_err(ioerr(format!("mkdir for {path}")))?;
        }
        fs_err::write(&p, contents).map_err(ioerr(format!("write {path}")))?;
    }
    for (link, target) in &spec.symlinks {
        let p = inside(link);
        if let Some(d) = p.parent() {
            fs_err::create_dir_all(d).map_err(ioerr(format!("mkdir for {link}")))?;
        }
        std::os::unix::fs::symlink(target, &p).map_err(ioerr(format!("symlink {link}")))?;
    }
    let proc_dir = inside("/proc");
    fs_err::create_dir_all(&proc_dir).map_err(ioerr("mkdir /proc"))?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(err("mount /proc"))?;
    let shm = inside("/dev/shm");
    fs_err::create_dir_all(&shm).map_err(ioerr("mkdir /dev/shm"))?;
    mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(err("mount /dev/shm"))?;
    loopback_up();

    nix::unistd::chdir(root).map_err(err("chdir root"))?;
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detach old root"))?;
    nix::unistd::chdir("/").map_err(err("chdir /"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(err("read-only root"))?;
    nix::unistd::chdir(spec.workdir.as_str()).map_err(err(format!("chdir {}", spec.workdir)))?;

    let argv: Vec<CString> = spec.argv.iter().map(|a| CString::new(a.as_bytes()).unwrap_or_default()).collect();
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")).unwrap_or_default())
        .collect();
    let prog = argv.first().cloned().ok_or_else(|| SandboxError {
        step: "exec".into(),
        message: "empty argv".into(),
    })?;
    nix::unistd::execve(&prog, &argv, &env).map_err(err(format!("exec {}", spec.argv[0])))
}

/// Brings `lo` up in the new network namespace: builds may talk to themselves, never outside.
fn loopback_up() {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        libc::close(fd);
    }
}
