//! The seccomp filter of every sandboxed build, written by hand as classic BPF (a dozen
//! instructions; no libseccomp, no crate): `ioctl(fd, TIOCSTI, ...)` (push a character into a
//! terminal's input, the way a build would type commands into the user's shell) and
//! `ioctl(fd, TIOCLINUX, ...)` (the same through the Linux console's selection paste) fail with
//! EPERM, whatever the descriptor; every other system call is allowed. Nix's sandbox refuses the
//! same two.
//!
//! The filter checks the architecture of each call first: a 64-bit x86 process can also make
//! 32-bit (`int $0x80`, AUDIT_ARCH_I386) and x32 calls, each with its own `ioctl` number, so each
//! has its own test, and a call of an architecture the filter does not know fails with ENOSYS.
//! The request is compared on its low 32 bits only: the kernel reads it as an `unsigned int`, so
//! high bits set by the caller must not hide it (flatpak's CVE-2017-5226 was this check done on
//! all 64).

use libc::{sock_filter, BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};

/// `linux/audit.h`: the ELF machine, with the 64-bit and little-endian flags (each machine uses
/// its own; the tests use them all).
#[allow(dead_code)]
mod audit {
    pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    pub const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
    pub const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;
    pub const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;
    pub const AUDIT_ARCH_RISCV64: u32 = 243 | 0x8000_0000 | 0x4000_0000;
    /// x32 system calls are the x86-64 table's numbers with this bit set.
    pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
}
use audit::*;

/// The architectures a process of this machine can call the kernel with, and the number of `ioctl`
/// in each calling convention.
#[cfg(target_arch = "x86_64")]
const ARCHES: &[(u32, &[u32])] = &[(AUDIT_ARCH_X86_64, &[16, X32_SYSCALL_BIT | 514]), (AUDIT_ARCH_I386, &[54])];
#[cfg(target_arch = "aarch64")]
const ARCHES: &[(u32, &[u32])] = &[(AUDIT_ARCH_AARCH64, &[29]), (AUDIT_ARCH_ARM, &[54])];
#[cfg(target_arch = "riscv64")]
const ARCHES: &[(u32, &[u32])] = &[(AUDIT_ARCH_RISCV64, &[29])];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
compile_error!("the build sandbox's seccomp filter knows x86_64, aarch64 and riscv64 only");

/// The refused `ioctl` requests.
pub const REFUSED_IOCTLS: [u32; 2] = [libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

/// `struct seccomp_data`: `nr` at 0, `arch` at 4, `args[6]` (64 bits each) from 16.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// The low half of `args[1]` (the `ioctl` request).
const OFF_ARG1_LOW: u32 = if cfg!(target_endian = "little") { 16 + 8 } else { 16 + 8 + 4 };

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: usize, jf: usize) -> sock_filter {
    sock_filter {
        code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
        jt: u8::try_from(jt).expect("short filter"),
        jf: u8::try_from(jf).expect("short filter"),
        k,
    }
}

/// The filter program for this machine's architectures.
pub fn program() -> Vec<sock_filter> {
    program_for(ARCHES)
}

fn program_for(arches: &[(u32, &[u32])]) -> Vec<sock_filter> {
    let load = |off: u32| stmt(BPF_LD | BPF_W | BPF_ABS, off);
    // Layout: load arch; one jump per arch to its block; ENOSYS; the blocks (load nr, one test per
    // ioctl number jumping to CHECK, ALLOW); CHECK (load the request, one test per refused
    // request jumping to DENY, ALLOW); DENY.
    let block_len = |nrs: &[u32]| 2 + nrs.len();
    let mut p = vec![load(OFF_ARCH)];
    let blocks_start = 1 + arches.len() + 1;
    let mut block_at = blocks_start;
    for (i, (arch, nrs)) in arches.iter().enumerate() {
        // From instruction 1 + i, a jump of n lands on 1 + i + 1 + n.
        p.push(jeq(*arch, block_at - (1 + i + 1), 0));
        block_at += block_len(nrs);
    }
    p.push(stmt(BPF_RET | BPF_K, RET_ENOSYS));
    let check = block_at;
    for (_, nrs) in arches {
        p.push(load(OFF_NR));
        for nr in nrs.iter() {
            let here = p.len();
            p.push(jeq(*nr, check - (here + 1), 0));
        }
        p.push(stmt(BPF_RET | BPF_K, RET_ALLOW));
    }
    debug_assert_eq!(p.len(), check);
    p.push(load(OFF_ARG1_LOW));
    let deny = check + 1 + REFUSED_IOCTLS.len() + 1;
    for req in REFUSED_IOCTLS {
        let here = p.len();
        p.push(jeq(req, deny - (here + 1), 0));
    }
    p.push(stmt(BPF_RET | BPF_K, RET_ALLOW));
    p.push(stmt(BPF_RET | BPF_K, RET_EPERM));
    p
}

/// Installs the filter on the calling thread (inherited by every child, kept across `execve`).
/// Needs `PR_SET_NO_NEW_PRIVS` (set here too): an unprivileged process may install a filter only
/// once it can never gain privileges.
pub fn install() -> std::io::Result<()> {
    let mut prog = program();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: prctl with valid arguments; `fprog` points at `prog`, alive across the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program on one `seccomp_data`, as the kernel would (the subset used).
    fn run(p: &[sock_filter], nr: u32, arch: u32, arg1: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        data[24..32].copy_from_slice(&arg1.to_ne_bytes());
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &p[pc];
            match i.code as u32 {
                c if c == BPF_LD | BPF_W | BPF_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                c if c == BPF_JMP | BPF_JEQ | BPF_K => pc += 1 + if acc == i.k { i.jt } else { i.jf } as usize,
                c if c == BPF_RET | BPF_K => return i.k,
                c => panic!("unexpected instruction {c:#x}"),
            }
        }
    }

    #[test]
    #[allow(clippy::unnecessary_cast)] // `libc::Ioctl` is `c_ulong` with glibc, `c_int` with musl
    fn refuses_tiocsti_and_tioclinux_on_every_entry_and_nothing_else() {
        let all: &[(u32, &[u32])] = &[
            (AUDIT_ARCH_X86_64, &[16, X32_SYSCALL_BIT | 514]),
            (AUDIT_ARCH_I386, &[54]),
            (AUDIT_ARCH_AARCH64, &[29]),
        ];
        let p = program_for(all);
        let sti = libc::TIOCSTI as u64;
        let linux = libc::TIOCLINUX as u64;
        for (arch, nr) in [
            (AUDIT_ARCH_X86_64, 16),
            (AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 514),
            (AUDIT_ARCH_I386, 54),
            (AUDIT_ARCH_AARCH64, 29),
        ] {
            assert_eq!(run(&p, nr, arch, sti), RET_EPERM, "{arch:#x} {nr}");
            assert_eq!(run(&p, nr, arch, linux), RET_EPERM);
            // High bits the kernel ignores do not hide the request.
            assert_eq!(run(&p, nr, arch, sti | 0xdead_0000_0000), RET_EPERM);
            // Other requests, and the same numbers in other calls, pass.
            assert_eq!(run(&p, nr, arch, libc::FIONBIO as u64), RET_ALLOW);
            assert_eq!(run(&p, nr, arch, libc::TCGETS as u64), RET_ALLOW);
            assert_eq!(run(&p, nr + 1, arch, sti), RET_ALLOW);
        }
        // `ioctl`'s number under another convention is another call (x86-64's 54 is setsockopt).
        assert_eq!(run(&p, 54, AUDIT_ARCH_X86_64, sti), RET_ALLOW);
        assert_eq!(run(&p, 16, AUDIT_ARCH_I386, sti), RET_ALLOW);
        // An architecture the filter does not know gets nothing.
        assert_eq!(run(&p, 29, AUDIT_ARCH_RISCV64, 0), RET_ENOSYS);
        assert_eq!(run(&program(), 0, 0x1234, 0), RET_ENOSYS);
    }

    #[test]
    fn installed_it_refuses_tiocsti_with_eperm() {
        let null = std::ffi::CString::new("/dev/null").unwrap();
        // In a child: a filter cannot be removed.
        // SAFETY: the child only makes system calls and exits.
        match unsafe { libc::fork() } {
            0 => unsafe {
                let code = (|| {
                    if install().is_err() {
                        return 2;
                    }
                    let fd = libc::open(null.as_ptr(), libc::O_RDWR);
                    let c = b'x';
                    if libc::ioctl(fd, libc::TIOCSTI, &c) != -1 || *libc::__errno_location() != libc::EPERM {
                        return 3;
                    }
                    let one: libc::c_int = 1;
                    if libc::ioctl(fd, libc::FIONBIO, &one) != 0 {
                        return 4;
                    }
                    if libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 {
                        return 5;
                    }
                    0
                })();
                libc::_exit(code)
            },
            pid => {
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(libc::WIFEXITED(status), "{status}");
                assert_eq!(
                    libc::WEXITSTATUS(status),
                    0,
                    "1: install, 3: TIOCSTI passed, 4: FIONBIO refused, 5: NNP"
                );
            }
        }
    }
}
