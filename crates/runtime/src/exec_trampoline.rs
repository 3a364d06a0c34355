//! A cheaper guard against CVE-2019-5736 for containers nothing can watch.
//!
//! The attack needs a container process to reach our binary through procfs:
//! either init's /proc/PID/exe while init prepares the container, or
//! `/proc/self/exe` named as the interpreter of the user's program, which the
//! kernel resolves at init's final execve. Re-executing from a protected view
//! ([`crate::exe_seal`]) closes both, at the price of starting the runtime a
//! second time on every create.
//!
//! When the container gets a pid namespace of its own, no container process
//! exists before that final execve, so only the second route is open. It is
//! closed by not executing the user's program from the runtime binary at all:
//! init executes this trampoline from a sealed memfd, and the trampoline
//! executes the program. At that moment /proc/self/exe names the sealed memfd.
//!
//! The trampoline is 112 bytes of x86-64 machine code in a hand-made static
//! ELF file. It refuses fewer than three arguments, so that naming it as an
//! interpreter (`#!/proc/self/exe`) fails instead of looping:
//!
//! ```text
//! _start: mov  rax, [rsp]              ; argc
//!         xor  r12d, r12d
//!         cmp  rax, 3
//!         jb   2f
//!         mov  rdi, [rsp+16]           ; argv[1]: the path to execute
//!         lea  rsi, [rsp+24]           ; &argv[2]: the program's own argv
//!         lea  rdx, [rsp+rax*8+16]     ; envp
//!         mov  eax, 59                 ; execve
//!         syscall
//!         mov  r12, rax
//! 2:      mov  edi, 2                  ; write(2, msg, 27)
//!         lea  rsi, [rip+msg]
//!         mov  edx, 27
//!         mov  eax, 1
//!         syscall
//!         mov  edi, 126                ; exit_group(ENOENT ? 127 : 126)
//!         cmp  r12, -2
//!         jne  1f
//!         mov  edi, 127
//! 1:      mov  eax, 231
//!         syscall
//! msg:    .ascii "berth-runtime: exec failed\n"
//! ```

use std::io;
use std::os::fd::OwnedFd;

use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccomp, LinuxSeccompAction, Spec};

#[cfg(target_arch = "x86_64")]
const CODE: [u8; 112] = [
    0x48, 0x8b, 0x04, 0x24, 0x45, 0x31, 0xe4, 0x48, 0x83, 0xf8, 0x03, 0x72, 0x19, 0x48, 0x8b, 0x7c,
    0x24, 0x10, 0x48, 0x8d, 0x74, 0x24, 0x18, 0x48, 0x8d, 0x54, 0xc4, 0x10, 0xb8, 0x3b, 0x00, 0x00,
    0x00, 0x0f, 0x05, 0x49, 0x89, 0xc4, 0xbf, 0x02, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x35, 0x23, 0x00,
    0x00, 0x00, 0xba, 0x1b, 0x00, 0x00, 0x00, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xbf, 0x7e,
    0x00, 0x00, 0x00, 0x49, 0x83, 0xfc, 0xfe, 0x75, 0x05, 0xbf, 0x7f, 0x00, 0x00, 0x00, 0xb8, 0xe7,
    0x00, 0x00, 0x00, 0x0f, 0x05, b'b', b'e', b'r', b't', b'h', b'-', b'r', b'u', b'n', b't', b'i',
    b'm', b'e', b':', b' ', b'e', b'x', b'e', b'c', b' ', b'f', b'a', b'i', b'l', b'e', b'd',
    b'\n',
];

/// argv[0] of the trampoline, as `ps` would show it for an instant.
pub const ARGV0: &std::ffi::CStr = c"berth-exec";

/// The static ELF executable: one read+execute segment holding the headers
/// and the code, which starts right after them.
#[cfg(target_arch = "x86_64")]
fn elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let total = HEADERS + CODE.len() as u64;
    let mut f = Vec::with_capacity(total as usize);
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\x00\0\0\0\0\0\0\0\0"); // 64-bit, LE, SysV
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    f.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // entry
    f.extend_from_slice(&64u64.to_le_bytes()); // program headers' offset
    f.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, sh*
    }
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    for v in [0, BASE, BASE, total, total, 0x1000] {
        f.extend_from_slice(&v.to_le_bytes()); // offset, vaddr, paddr, filesz, memsz, align
    }
    f.extend_from_slice(&CODE);
    f
}

/// A sealed memfd holding the trampoline, or an error where there is none
/// (another architecture; memfds not executable under vm.memfd_noexec).
pub fn create() -> io::Result<OwnedFd> {
    #[cfg(not(target_arch = "x86_64"))]
    {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    #[cfg(target_arch = "x86_64")]
    {
        use rustix::fs::MemfdFlags;
        const MFD_EXEC: u32 = 0x10;
        let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        // Kernels since 6.3 want executable memfds said so; older ones
        // refuse the flag.
        let fd = match rustix::fs::memfd_create(
            "berth-exec",
            base | MemfdFlags::from_bits_retain(MFD_EXEC),
        ) {
            Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create("berth-exec", base)?,
            r => r?,
        };
        let code = elf();
        let mut written = 0;
        while written < code.len() {
            written += rustix::io::write(&fd, &code[written..])?;
        }
        crate::exe_seal::seal_memfd(&fd)?;
        Ok(fd)
    }
}

/// Whether the trampoline is protection enough for this container: it gets
/// a new pid namespace (nothing of the container sees init before its
/// execve), no hook runs inside it before then, and its seccomp filter lets
/// init execute the trampoline with execveat.
pub fn suffices(spec: &Spec) -> bool {
    let linux = spec.linux().as_ref();
    let new_pidns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none())
        });
    let hooks_inside = spec.hooks().as_ref().is_some_and(|h| {
        h.create_container().as_ref().is_some_and(|v| !v.is_empty())
            || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
    });
    let seccomp_ok = linux
        .and_then(|l| l.seccomp().as_ref())
        .is_none_or(allows_execveat);
    new_pidns && !hooks_inside && seccomp_ok
}

fn allows_execveat(s: &LinuxSeccomp) -> bool {
    if s.default_action() == LinuxSeccompAction::ScmpActAllow {
        return true;
    }
    s.syscalls().as_ref().is_some_and(|rules| {
        rules.iter().any(|r| {
            r.action() == LinuxSeccompAction::ScmpActAllow
                && r.args().as_ref().is_none_or(|a| a.is_empty())
                && r.names().iter().any(|n| n == "execveat")
        })
    })
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::process::Command;

    fn run(args: &[&str]) -> std::process::Output {
        let fd = create().unwrap();
        let path = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
        let mut cmd = Command::new("/bin/sh");
        // The memfd is close-on-exec; the shell opens it through our /proc.
        cmd.arg("-c")
            .arg(format!("exec 9<{path}; exec /proc/self/fd/9 \"$@\""))
            .arg("sh")
            .args(args);
        cmd.output().unwrap()
    }

    #[test]
    fn executes_the_path_with_the_programs_own_argv() {
        let script = "tr '\\0' ' ' < /proc/$$/cmdline; echo; echo $0 $1";
        let out = run(&["/bin/sh", "custom-argv0", "-c", script, "zero", "one"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("custom-argv0 -c "), "{stdout}");
        assert!(stdout.ends_with("\nzero one\n"), "{stdout}");
        assert!(out.status.success());
    }

    #[test]
    fn failures_exit_127_for_a_missing_file_and_126_otherwise() {
        let out = run(&["/nonexistent", "x"]);
        assert_eq!(out.status.code(), Some(127));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "berth-runtime: exec failed\n"
        );
        let out = run(&["/etc/hostname", "x"]);
        assert_eq!(out.status.code(), Some(126));
        // As an interpreter it gets two arguments, and stops there.
        let out = run(&["/bin/true"]);
        assert_eq!(out.status.code(), Some(126));
    }
}
