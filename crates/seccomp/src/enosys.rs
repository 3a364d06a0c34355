//! The `-ENOSYS` stub prepended to a compiled filter.
//!
//! A profile written for an older kernel does not mention syscalls added since. With a deny-by-
//! default profile those would get EPERM, and libc then believes the syscall exists but is
//! forbidden instead of falling back to an older one (glibc's `clone3` → `clone` fallback only
//! triggers on ENOSYS). So, as runc does, for every architecture of the filter we find the highest
//! syscall number the profile mentions and make anything above it return ENOSYS before the
//! libseccomp-generated program runs. Numbers at or below it go to the real filter unchanged.
//!
//! Known limits (shared with runc's approach): a syscall added out of order (a hole below the
//! highest mentioned number) still gets the default action; architectures without a table entry
//! in [`audit_arch`] (parisc, m68k, sh) get no stub and fall through to the filter.

use libseccomp::ScmpArch;

use crate::program::SockFilter;
use crate::Error;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

/// Offsets into `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch`. libseccomp's `SCMP_ARCH_*`
/// tokens equal these except for x32, which shares x86-64's value and is told apart by bit 30 of
/// the syscall number.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    const LE: u32 = 0x4000_0000;
    const B64: u32 = 0x8000_0000;
    Some(match arch {
        ScmpArch::X86 => 3 | LE,
        ScmpArch::X8664 | ScmpArch::X32 => 62 | B64 | LE,
        ScmpArch::Arm => 40 | LE,
        ScmpArch::Aarch64 => 183 | B64 | LE,
        ScmpArch::Mips => 8,
        ScmpArch::Mips64 => 8 | B64,
        ScmpArch::Mips64N32 => 8 | B64 | 0x2000_0000,
        ScmpArch::Mipsel => 8 | LE,
        ScmpArch::Mipsel64 => 8 | B64 | LE,
        ScmpArch::Mipsel64N32 => 8 | B64 | LE | 0x2000_0000,
        ScmpArch::Ppc => 20,
        ScmpArch::Ppc64 => 21 | B64,
        ScmpArch::Ppc64Le => 21 | B64 | LE,
        ScmpArch::S390 => 22,
        ScmpArch::S390X => 22 | B64,
        ScmpArch::Riscv64 => 243 | B64 | LE,
        ScmpArch::Loongarch64 => 258 | B64 | LE,
        _ => return None,
    })
}

/// Highest syscall number mentioned by the profile on one architecture of the filter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ArchMax {
    pub arch: ScmpArch,
    pub max_nr: u32,
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Label(usize),
}

/// A tiny forward-only assembler: jumps name labels, offsets are fixed up at the end.
struct Asm {
    insns: Vec<(u16, u32, Target, Target)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn new() -> Self {
        Asm {
            insns: Vec::new(),
            labels: Vec::new(),
        }
    }

    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn bind(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push((code, k, Target::Next, Target::Next));
    }

    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.insns.push((code, k, jt, jf));
    }

    fn ja(&mut self, to: usize) {
        // JA keeps its target in k; the label is resolved like a true-branch.
        self.insns
            .push((BPF_JMP_JA, 0, Target::Label(to), Target::Next));
    }

    fn finish(self) -> Result<Vec<SockFilter>, Error> {
        let resolve = |pc: usize, t: Target| -> Result<usize, Error> {
            match t {
                Target::Next => Ok(0),
                Target::Label(l) => {
                    let at = self.labels[l]
                        .ok_or_else(|| Error::Program("ENOSYS stub: unbound label".into()))?;
                    at.checked_sub(pc + 1)
                        .ok_or_else(|| Error::Program("ENOSYS stub: backward jump".into()))
                }
            }
        };
        let mut out = Vec::with_capacity(self.insns.len());
        for (pc, &(code, k, jt, jf)) in self.insns.iter().enumerate() {
            let t = resolve(pc, jt)?;
            let f = resolve(pc, jf)?;
            if code == BPF_JMP_JA {
                let k = u32::try_from(t)
                    .map_err(|_| Error::Program("ENOSYS stub: jump too long".into()))?;
                out.push(SockFilter::stmt(code, k));
                continue;
            }
            let (Ok(t), Ok(f)) = (u8::try_from(t), u8::try_from(f)) else {
                return Err(Error::Program(
                    "ENOSYS stub: conditional jump beyond 255 instructions".into(),
                ));
            };
            out.push(SockFilter::jump(code, k, t, f));
        }
        Ok(out)
    }
}

/// Builds the stub that must run before the libseccomp program. The stub's last jump lands on
/// the instruction right after it, so the caller simply concatenates `stub ++ program`.
pub(crate) fn stub(maxes: &[ArchMax]) -> Result<Vec<SockFilter>, Error> {
    // Group by the kernel's arch value: x86-64 and x32 share one section.
    let mut groups: Vec<(u32, Vec<ArchMax>)> = Vec::new();
    for m in maxes {
        let Some(audit) = audit_arch(m.arch) else {
            tracing::debug!(arch = ?m.arch, "no ENOSYS stub for this architecture");
            continue;
        };
        match groups.iter_mut().find(|(a, _)| *a == audit) {
            Some((_, v)) => v.push(*m),
            None => groups.push((audit, vec![*m])),
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    groups.sort_by_key(|(a, _)| *a);

    let mut asm = Asm::new();
    let enosys = asm.label();
    let filter = asm.label();
    let sections: Vec<usize> = groups.iter().map(|_| asm.label()).collect();

    asm.stmt(BPF_LD_W_ABS, DATA_ARCH);
    for ((audit, _), &section) in groups.iter().zip(&sections) {
        asm.jump(BPF_JMP_JEQ_K, *audit, Target::Label(section), Target::Next);
    }
    // An architecture we did not list: the filter's bad-arch action decides.
    asm.ja(filter);

    for ((_, members), &section) in groups.iter().zip(&sections) {
        asm.bind(section);
        asm.stmt(BPF_LD_W_ABS, DATA_NR);
        let x8664 = members.iter().find(|m| m.arch == ScmpArch::X8664);
        let x32 = members.iter().find(|m| m.arch == ScmpArch::X32);
        if x8664.is_some() || x32.is_some() {
            let x32_part = asm.label();
            asm.jump(
                BPF_JMP_JSET_K,
                X32_SYSCALL_BIT,
                Target::Label(x32_part),
                Target::Next,
            );
            match x8664 {
                Some(m) => asm.jump(
                    BPF_JMP_JGT_K,
                    m.max_nr,
                    Target::Label(enosys),
                    Target::Label(filter),
                ),
                None => asm.ja(filter),
            }
            asm.bind(x32_part);
            match x32 {
                Some(m) => asm.jump(
                    BPF_JMP_JGT_K,
                    m.max_nr | X32_SYSCALL_BIT,
                    Target::Label(enosys),
                    Target::Label(filter),
                ),
                None => asm.ja(filter),
            }
            continue;
        }
        // s390 multiplexes large syscall numbers through setup(2) = 0 and leaves 0 in place
        // when the kernel does not know the real number: that is an unknown syscall too.
        if members
            .iter()
            .any(|m| matches!(m.arch, ScmpArch::S390 | ScmpArch::S390X))
        {
            asm.jump(BPF_JMP_JEQ_K, 0, Target::Label(enosys), Target::Next);
        }
        let max = members.iter().map(|m| m.max_nr).max().unwrap_or(0);
        asm.jump(
            BPF_JMP_JGT_K,
            max,
            Target::Label(enosys),
            Target::Label(filter),
        );
    }
    asm.bind(enosys);
    asm.stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    asm.bind(filter);
    asm.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_arch_layout() {
        let s = stub(&[ArchMax {
            arch: ScmpArch::Aarch64,
            max_nr: 300,
        }])
        .expect("stub");
        // ld arch; jeq aarch64; ja filter; ld nr; jgt 300; ret ENOSYS
        assert_eq!(s.len(), 6);
        assert_eq!(s[1].k, 0xc000_00b7);
        assert_eq!(s[1].jt, 1);
        assert_eq!((s[2].code, s[2].k), (BPF_JMP_JA, 3));
        assert_eq!(
            (s[4].code, s[4].k, s[4].jt, s[4].jf),
            (BPF_JMP_JGT_K, 300, 0, 1)
        );
        assert_eq!(s[5].k, SECCOMP_RET_ERRNO | 38);
    }

    #[test]
    fn x86_family_sections() {
        let s = stub(&[
            ArchMax {
                arch: ScmpArch::X8664,
                max_nr: 450,
            },
            ArchMax {
                arch: ScmpArch::X32,
                max_nr: 0x4000_0000 | 547,
            },
            ArchMax {
                arch: ScmpArch::X86,
                max_nr: 440,
            },
        ])
        .expect("stub");
        // Every jump must land inside the stub or exactly on its end (the real filter).
        for (pc, i) in s.iter().enumerate() {
            let targets: Vec<usize> = if i.code == BPF_JMP_JA {
                vec![pc + 1 + i.k as usize]
            } else if i.code & 0x07 == 0x05 {
                vec![pc + 1 + i.jt as usize, pc + 1 + i.jf as usize]
            } else {
                vec![]
            };
            for t in targets {
                assert!(t <= s.len(), "pc {pc} jumps to {t} beyond {}", s.len());
            }
        }
        assert!(s.iter().any(|i| i.code == BPF_JMP_JSET_K));
    }

    #[test]
    fn unknown_arches_yield_no_stub() {
        let s = stub(&[ArchMax {
            arch: ScmpArch::Parisc,
            max_nr: 10,
        }])
        .expect("stub");
        assert!(s.is_empty());
    }
}
