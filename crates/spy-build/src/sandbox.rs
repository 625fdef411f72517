//! The Linux sandbox: a fresh user, mount, pid, network, UTS and IPC namespace, a tmpfs root that
//! holds only what the spec binds into it, and `pivot_root` into it.
//!
//! spy starts `spy __sandbox SPEC` (a fresh, single-threaded process, so forking after `unshare` is
//! safe) in a session of its own, with no controlling terminal and stdin from `/dev/null`; that
//! process closes every descriptor it inherited but stdio, the jobserver's pipe and the lifeline
//! (below), unshares, maps the caller's uid/gid to the build user and forks the namespace's pid 1.
//! Pid 1 builds the root, forks the build (pid 2: `no_new_privs`, the seccomp filter of
//! [`crate::seccomp`], then `execve`), reaps every process of the namespace, and exits with the
//! build's status.
//!
//! Ending with spy, at any moment: spy holds the write end of a pipe (the lifeline) for as long as
//! the build may run, and pid 1 watches the read end. The kernel closes the write end when spy
//! dies, however it dies, so pid 1 reads end-of-file and exits, and the kernel kills everything
//! left in the pid namespace. Nothing depends on when a process managed to ask for a signal: if
//! spy died before pid 1 existed, the pipe is already at end-of-file when pid 1 first looks. The
//! helper itself asks for `PR_SET_PDEATHSIG` before it execs and then checks that spy is still its
//! parent (spy may have died just before the request).

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
    /// A device node (`/dev/null`...): mounted without `nodev`. Every bind is `nosuid`, and every
    /// other one `nodev`.
    #[serde(default)]
    pub device: bool,
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
    /// The read end of spy's lifeline pipe, as inherited by the helper (see the module comment).
    #[serde(default)]
    pub lifeline_fd: Option<i32>,
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

/// What spy does in the helper's process between `fork` and `exec` (only async-signal-safe calls):
/// a session of its own (no controlling terminal, so no `/dev/tty` and no terminal signals), death
/// with spy (`spy_pid`, the caller), and the lifeline's read end kept across `exec`.
///
/// # Safety
/// Call only in a freshly forked child (`Command::pre_exec`).
pub unsafe fn helper_pre_exec(spy_pid: libc::pid_t, lifeline: libc::c_int) -> std::io::Result<()> {
    if libc::setsid() < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // spy may have died between the fork and the request: then nobody would send the signal.
    if libc::getppid() != spy_pid {
        libc::_exit(125);
    }
    if libc::fcntl(lifeline, libc::F_SETFD, 0) < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
    // The lifeline stays with pid 1 (forked, not exec'd); the build must not hold it.
    if let Some(fd) = spec.lifeline_fd {
        set_cloexec(fd).map_err(ioerr("lifeline"))?;
    }
    let mut keep = jobserver_fds(&spec.env);
    keep.extend(spec.lifeline_fd);
    close_inherited_fds(&keep).map_err(ioerr("close inherited descriptors"))?;
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
            let code = match pid1(&spec) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("spy: {e}");
                    125
                }
            };
            unsafe { libc::_exit(code) }
        }
    }
}

/// Marks a descriptor close-on-exec.
fn set_cloexec(fd: i32) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor number; an invalid one is an error, not undefined behaviour.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The descriptors of the jobserver named in `MAKEFLAGS` (`--jobserver-auth=R,W`, or the older
/// `--jobserver-fds=R,W`; a `fifo:PATH` names none).
pub fn jobserver_fds(env: &[(String, String)]) -> Vec<i32> {
    let Some((_, flags)) = env.iter().find(|(k, _)| k == "MAKEFLAGS") else {
        return Vec::new();
    };
    flags
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--jobserver-auth=").or_else(|| w.strip_prefix("--jobserver-fds=")))
        .flat_map(|v| v.split(',').filter_map(|n| n.parse::<i32>().ok()))
        .collect()
}

/// Closes every descriptor above stderr except `keep`: the build gets stdin, stdout, stderr and
/// the jobserver, not whatever the caller of spy left open (a terminal, a socket).
fn close_inherited_fds(keep: &[i32]) -> std::io::Result<()> {
    let open: Vec<i32> = fs_err::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // The directory's own descriptor is among them and already closed: EBADF is fine.
            // SAFETY: closing a descriptor number this process owns no Rust object for.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// Runs as pid 1 of the new namespaces: builds the root, starts the build and waits for it (and
/// for spy's lifeline); returns the build's exit code.
fn pid1(spec: &SandboxSpec) -> Result<i32, SandboxError> {
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
        // A set-user-ID file made by the build (or found in an input) runs as its owner nowhere in
        // the sandbox, and no device node appears outside /dev. Flags the kernel locked on the
        // source mount (read-only, noexec...) must be kept, or the remount is refused.
        let locked = nix::sys::statvfs::statvfs(&target)
            .map(|s| s.flags())
            .unwrap_or(nix::sys::statvfs::FsFlags::empty());
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID;
        if !b.device {
            flags |= MsFlags::MS_NODEV;
        }
        if !b.writable {
            flags |= MsFlags::MS_RDONLY;
        }
        use nix::sys::statvfs::FsFlags as F;
        for (f, m) in [
            (F::ST_RDONLY, MsFlags::MS_RDONLY),
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
        mount(None::<&str>, &target, None::<&str>, flags, None::<&str>).map_err(err(format!("remount {} nosuid", b.dst)))?;
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

    // SIGCHLD is read from a signalfd, so it is blocked from before the fork (none is lost); the
    // build starts with every signal at its default and none blocked (default_signals).
    let mut chld = nix::sys::signal::SigSet::empty();
    chld.add(nix::sys::signal::Signal::SIGCHLD);
    chld.thread_block().map_err(err("block SIGCHLD"))?;
    let sigfd = nix::sys::signalfd::SignalFd::with_flags(
        &chld,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    )
    .map_err(err("signalfd"))?;
    match unsafe { fork() }.map_err(err("fork the build"))? {
        ForkResult::Child => {
            if let Err(e) = default_signals() {
                eprintln!("spy: {e}");
                unsafe { libc::_exit(125) }
            }
            let e = exec_build(spec);
            eprintln!("spy: {}", e.unwrap_err());
            unsafe { libc::_exit(125) }
        }
        ForkResult::Parent { child } => supervise(child, spec.lifeline_fd, &sigfd),
    }
}

/// Pid 1's loop: reaps every process that ends in the namespace (orphans come to pid 1) until the
/// build itself ends, or until spy's lifeline reads end-of-file (spy is gone: return, and the
/// kernel ends the namespace).
fn supervise(build: nix::unistd::Pid, lifeline: Option<i32>, sigfd: &nix::sys::signalfd::SignalFd) -> Result<i32, SandboxError> {
    use std::os::fd::AsRawFd;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: lifeline.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on an array it owns.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ioerr("poll")(e));
        }
        if fds[1].revents != 0 {
            let mut byte = 0u8;
            // SAFETY: a one-byte read into a local.
            let r = unsafe { libc::read(fds[1].fd, (&mut byte as *mut u8).cast(), 1) };
            if r <= 0 {
                // End-of-file (or an error): spy is gone, and so must the build be.
                return Ok(128 + libc::SIGKILL);
            }
        }
        if fds[0].revents != 0 {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            loop {
                match waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, c)) if pid == build => return Ok(c),
                    Ok(WaitStatus::Signaled(pid, s, _)) if pid == build => return Ok(128 + s as i32),
                    Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => break,
                    Ok(_) => continue,
                    Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(err("waitpid")(e)),
                }
            }
        }
    }
}

/// Every signal back to its default action and none blocked, whatever spy inherited: `nohup` or
/// a background job of a script starts spy with SIGHUP, SIGINT and SIGQUIT ignored, which `exec`
/// keeps, and what a build's programs find there can change its output (CPython's signal module
/// records the handlers it starts with; a profile-guided build then counted other branches:
/// cpython3.13 built in the background differed from its rebuild in `spy check`).
fn default_signals() -> Result<(), SandboxError> {
    // The kernel's struct sigaction (x86): libc's sigaction() refuses the signals it reserves for
    // itself (32 and 33 in glibc), which a caller can still have left ignored.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signo in 1..=64 {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction with a valid struct and no old action, in the single-threaded child
        // before exec.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signo,
                &default as *const KernelSigaction,
                std::ptr::null::<u8>(),
                8usize,
            )
        };
        if r != 0 {
            return Err(ioerr(format!("default action of signal {signo}"))(std::io::Error::last_os_error()));
        }
    }
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(err("empty signal mask"))
}

/// Pid 2: the build, with no way to gain privileges and the seccomp filter, as the spec says.
fn exec_build(spec: &SandboxSpec) -> Result<std::convert::Infallible, SandboxError> {
    nix::unistd::chdir(spec.workdir.as_str()).map_err(err(format!("chdir {}", spec.workdir)))?;
    crate::seccomp::install().map_err(ioerr("no_new_privs and the seccomp filter"))?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn jobserver_descriptors_come_from_makeflags() {
        let env = |v: &str| vec![("PATH".to_string(), "/x".to_string()), ("MAKEFLAGS".to_string(), v.to_string())];
        assert_eq!(super::jobserver_fds(&env(" -j --jobserver-auth=3,4")), [3, 4]);
        assert_eq!(super::jobserver_fds(&env("--jobserver-fds=7,8 -j")), [7, 8]);
        assert!(super::jobserver_fds(&env("-j --jobserver-auth=fifo:/tmp/x")).is_empty());
        assert!(super::jobserver_fds(&[]).is_empty());
    }
}
