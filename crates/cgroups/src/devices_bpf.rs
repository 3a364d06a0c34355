//! cgroup v2 device control: v2 has no devices.allow/deny files; instead a BPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup decides each open/mknod. This module
//! turns the OCI rule list into such a program (the same shape runc emits: a prologue that
//! loads the request, one block per rule, a default verdict) and loads/attaches it with bpf(2).
//!
//! Rule semantics follow the v1 controller: a rule that is a full wildcard (`a *:* rwm`) resets
//! the list and sets the default; afterwards the last matching rule wins. An allow rule matches
//! when every requested access bit is allowed; a deny rule when any requested bit is denied.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::resources::{DevType, DeviceRule, ACC_ALL};

/// One eBPF instruction, in the kernel's `struct bpf_insn` layout.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl std::fmt::Debug for Insn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02x} r{} r{} {:+} {:#x}",
            self.code,
            self.regs & 0xf,
            self.regs >> 4,
            self.off,
            self.imm
        )
    }
}

// Opcode parts (linux/bpf_common.h, linux/bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU64: u8 = 0x07;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, where access_type is
// (access << 16) | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}
fn alu_k(op: u8, dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm)
}
fn mov_x(dst: u8, src: u8) -> Insn {
    insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
}
fn jmp_k(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    insn(BPF_JMP | op | BPF_K, dst, 0, off, imm)
}
fn exit() -> Insn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

/// Builds the program. Registers after the prologue: r2 = device type, r3 = requested access,
/// r4 = major, r5 = minor; r1 is scratch.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    // Only what follows the last full wildcard matters; that wildcard is the default. Without
    // one, a v1 cgroup would start from its parent's allow-all, and ancestors' programs still
    // apply on v2, so allow is the equivalent default.
    let (default_allow, rest) = match rules.iter().rposition(|r| r.is_wildcard()) {
        Some(i) => (rules[i].allow, &rules[i + 1..]),
        None => (true, rules),
    };
    let mut p = vec![
        ldx_w(2, 1, 0),
        alu_k(BPF_AND, 2, 0xffff),
        ldx_w(3, 1, 0),
        alu_k(BPF_RSH, 3, 16),
        ldx_w(4, 1, 4),
        ldx_w(5, 1, 8),
    ];
    // Last match wins, and the program stops at the first match: emit rules back to front.
    for r in rest.iter().rev() {
        // An allow rule with no access bits can never match; a deny one likewise.
        if r.access == 0 {
            continue;
        }
        let mut block: Vec<Insn> = Vec::with_capacity(8);
        // Jumps are emitted with off = 0 and patched once the block length is known.
        let mut jumps: Vec<usize> = Vec::new();
        match r.typ {
            DevType::All => {}
            DevType::Char | DevType::Block => {
                let t = if r.typ == DevType::Char {
                    DEV_CHAR
                } else {
                    DEV_BLOCK
                };
                jumps.push(block.len());
                block.push(jmp_k(BPF_JNE, 2, t, 0));
            }
        }
        if r.allow {
            if r.access != ACC_ALL {
                // Requested bits outside the allowed set → not this rule.
                block.push(mov_x(1, 3));
                block.push(alu_k(BPF_AND, 1, !(r.access as i32)));
                jumps.push(block.len());
                block.push(jmp_k(BPF_JNE, 1, 0, 0));
            }
        } else if r.access != ACC_ALL {
            // No requested bit in the denied set → not this rule.
            block.push(mov_x(1, 3));
            block.push(alu_k(BPF_AND, 1, r.access as i32));
            jumps.push(block.len());
            block.push(jmp_k(BPF_JEQ, 1, 0, 0));
        }
        if let Some(m) = r.major {
            jumps.push(block.len());
            block.push(jmp_k(BPF_JNE, 4, m as i32, 0));
        }
        if let Some(m) = r.minor {
            jumps.push(block.len());
            block.push(jmp_k(BPF_JNE, 5, m as i32, 0));
        }
        block.push(alu_k(BPF_MOV, 0, r.allow as i32));
        block.push(exit());
        let len = block.len();
        for j in jumps {
            // Offsets count from the instruction after the jump; land just past the block.
            block[j].off = (len - j - 1) as i16;
        }
        p.extend_from_slice(&block);
    }
    p.push(alu_k(BPF_MOV, 0, default_allow as i32));
    p.push(exit());
    p
}

// bpf(2) commands and constants.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

// `union bpf_attr` members we use. Each is padded with zeroes to 128 bytes: the kernel accepts
// any size as long as bytes it does not know are zero, and a newer kernel may write back
// fields beyond the ones declared here (query.revision, for one).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _pad: [u64; 8],
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _pad: [u32; 27],
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: [u32; 25],
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
    _pad: [u32; 29],
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, properly laid out bpf_attr member of size_of::<T>() bytes; any
    // pointers inside it point at buffers that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_from(r: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// Loads the program into the kernel; the fd keeps it alive until it is attached.
pub fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..5].copy_from_slice(b"berth");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(fd_from(fd)),
        Err(source) => {
            // Load again with the verifier log only on failure, to explain it.
            let mut log = vec![0u8; 64 * 1024];
            let mut attr = ProgLoadAttr {
                prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
                insn_cnt: insns.len() as u32,
                insns: insns.as_ptr() as u64,
                license: license.as_ptr() as u64,
                log_level: 1,
                log_size: log.len() as u32,
                log_buf: log.as_mut_ptr() as u64,
                ..Default::default()
            };
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err(Error::Bpf {
                op: "BPF_PROG_LOAD",
                source,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
    }
}

/// Ids of the device programs attached to the cgroup.
fn query(cgroup: &impl AsFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|source| Error::Bpf {
        op: "BPF_PROG_QUERY",
        source,
        log: String::new(),
    })?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Attaches `prog` to the cgroup and then detaches the device programs that were there before,
/// so an `update` swaps the filter without a window where no filter applies. ALLOW_MULTI lets
/// ours coexist with a parent's (systemd puts one on every unit); all must allow an access.
pub fn attach_replacing(cgroup: &impl AsFd, prog: &OwnedFd) -> Result<()> {
    let old = query(cgroup).unwrap_or_default();
    let cg = cgroup.as_fd().as_raw_fd() as u32;
    let mut attr = AttachAttr {
        target_fd: cg,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| Error::Bpf {
        op: "BPF_PROG_ATTACH",
        source,
        log: String::new(),
    })?;
    for id in old {
        let mut g = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut g) {
            Ok(fd) => fd_from(fd),
            Err(e) => {
                tracing::warn!(id, error = %e, "cannot open old device program");
                continue;
            }
        };
        let mut d = AttachAttr {
            target_fd: cg,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        if let Err(source) = bpf(BPF_PROG_DETACH, &mut d) {
            return Err(Error::Bpf {
                op: "BPF_PROG_DETACH",
                source,
                log: String::new(),
            });
        }
    }
    Ok(())
}

/// Number of device programs attached directly to the cgroup (for tests and diagnostics).
pub fn attached_count(cgroup: &impl AsFd) -> Result<usize> {
    Ok(query(cgroup)?.len())
}

/// Compiles, loads and attaches the rules to the cgroup directory.
pub fn apply(cgroup: &impl AsFd, rules: &[DeviceRule]) -> Result<()> {
    let prog = load(&program(rules))?;
    attach_replacing(cgroup, &prog)
}

/// Runs the rules against one request, the way the kernel would run the program. Tests use it
/// to check the generated instructions, not just their shape.
pub fn simulate(insns: &[Insn], typ: DevType, access: u8, major: u32, minor: u32) -> Option<bool> {
    let t = match typ {
        DevType::Char => DEV_CHAR,
        DevType::Block => DEV_BLOCK,
        DevType::All => return None,
    } as u32;
    let ctx = [((access as u32) << 16) | t, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..10_000 {
        let i = insns.get(pc)?;
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            0x61 => r[dst] = ctx[(i.off / 4) as usize] as u64, // src is always r1 = ctx
            0x57 => r[dst] &= i.imm as i64 as u64,
            0x77 => r[dst] >>= i.imm,
            0xbf => r[dst] = r[src],
            0xb7 => r[dst] = i.imm as i64 as u64,
            0x55 if r[dst] != i.imm as i64 as u64 => pc = (pc as i64 + i.off as i64) as usize,
            0x15 if r[dst] == i.imm as i64 as u64 => pc = (pc as i64 + i.off as i64) as usize,
            0x55 | 0x15 => {}
            0x95 => return Some(r[0] == 1),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{ACC_MKNOD, ACC_READ, ACC_WRITE};

    fn rule(
        allow: bool,
        typ: DevType,
        major: Option<u32>,
        minor: Option<u32>,
        access: u8,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            typ,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn exact_instructions_for_one_rule() {
        let p = program(&[
            rule(false, DevType::All, None, None, ACC_ALL),
            rule(true, DevType::Char, Some(1), Some(3), ACC_READ | ACC_WRITE),
        ]);
        let want = vec![
            ldx_w(2, 1, 0),
            alu_k(BPF_AND, 2, 0xffff),
            ldx_w(3, 1, 0),
            alu_k(BPF_RSH, 3, 16),
            ldx_w(4, 1, 4),
            ldx_w(5, 1, 8),
            // c 1:3 rw
            jmp_k(BPF_JNE, 2, DEV_CHAR, 7),
            mov_x(1, 3),
            alu_k(BPF_AND, 1, !((ACC_READ | ACC_WRITE) as i32)),
            jmp_k(BPF_JNE, 1, 0, 4),
            jmp_k(BPF_JNE, 4, 1, 3),
            jmp_k(BPF_JNE, 5, 3, 2),
            alu_k(BPF_MOV, 0, 1),
            exit(),
            // default deny
            alu_k(BPF_MOV, 0, 0),
            exit(),
        ];
        assert_eq!(p, want);
        // Encoding as the kernel sees it: 8 bytes, little-endian fields.
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(p[0].code, 0x61);
        assert_eq!(p[0].regs, 0x12);
        assert_eq!(p[6].code, 0x55);
    }

    #[test]
    fn semantics() {
        let rules = vec![
            rule(false, DevType::All, None, None, ACC_ALL),
            rule(true, DevType::Char, None, None, ACC_MKNOD),
            rule(true, DevType::Block, None, None, ACC_MKNOD),
            rule(true, DevType::Char, Some(1), Some(3), ACC_ALL),
            rule(true, DevType::Char, Some(136), None, ACC_ALL),
            rule(true, DevType::Char, Some(10), Some(200), ACC_ALL),
            // Later deny of write on tun wins over the allow above.
            rule(false, DevType::Char, Some(10), Some(200), ACC_WRITE),
        ];
        let p = program(&rules);
        let run = |t, a, ma, mi| simulate(&p, t, a, ma, mi).unwrap();
        assert!(run(DevType::Char, ACC_READ | ACC_WRITE, 1, 3));
        assert!(run(DevType::Char, ACC_READ, 136, 7));
        assert!(!run(DevType::Char, ACC_READ, 137, 7));
        assert!(run(DevType::Char, ACC_MKNOD, 8, 1));
        assert!(run(DevType::Block, ACC_MKNOD, 8, 1));
        assert!(!run(DevType::Block, ACC_READ, 8, 1));
        assert!(!run(DevType::Block, ACC_READ, 1, 3));
        assert!(run(DevType::Char, ACC_READ, 10, 200));
        assert!(!run(DevType::Char, ACC_READ | ACC_WRITE, 10, 200));
        assert!(!run(DevType::Char, ACC_MKNOD | ACC_READ, 5, 1));

        // Allow-all default with one deny.
        let p = program(&[
            rule(true, DevType::All, None, None, ACC_ALL),
            rule(false, DevType::All, Some(8), None, ACC_READ),
        ]);
        assert!(simulate(&p, DevType::Char, ACC_WRITE, 8, 0).unwrap());
        assert!(!simulate(&p, DevType::Block, ACC_READ, 8, 0).unwrap());
        assert!(simulate(&p, DevType::Block, ACC_READ, 9, 0).unwrap());

        // Rules before a full wildcard are dropped.
        let p = program(&[
            rule(true, DevType::Char, Some(1), Some(3), ACC_ALL),
            rule(false, DevType::All, None, None, ACC_ALL),
        ]);
        assert_eq!(p.len(), 8);
        assert!(!simulate(&p, DevType::Char, ACC_READ, 1, 3).unwrap());
    }

    #[test]
    fn no_wildcard_means_allow_by_default() {
        let p = program(&[]);
        assert!(simulate(&p, DevType::Char, ACC_READ, 1, 3).unwrap());
        let p = program(&[rule(false, DevType::Block, None, None, ACC_ALL)]);
        assert!(!simulate(&p, DevType::Block, ACC_READ, 1, 3).unwrap());
        assert!(simulate(&p, DevType::Char, ACC_READ, 1, 3).unwrap());
    }
}
