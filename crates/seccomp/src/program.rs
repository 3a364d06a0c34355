//! The compiled form of a profile: a classic-BPF program plus the `seccomp(2)` flags it must be
//! installed with. Everything here is plain data so that it can be built in the parent, cached on
//! disk, and handed to the forked child without any further allocation.

use crate::Error;

/// Kernel limit on the number of instructions of one classic-BPF filter (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

/// `SECCOMP_FILTER_FLAG_*` values from `<linux/seccomp.h>`; not all are in the libc crate.
pub mod flags {
    pub const TSYNC: u32 = 1 << 0;
    pub const LOG: u32 = 1 << 1;
    pub const SPEC_ALLOW: u32 = 1 << 2;
    pub const NEW_LISTENER: u32 = 1 << 3;
    pub const TSYNC_ESRCH: u32 = 1 << 4;
    pub const WAIT_KILLABLE_RECV: u32 = 1 << 5;
}

/// One classic-BPF instruction, laid out exactly like the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Size of one encoded instruction in bytes (what `seccomp_export_bpf` writes per instruction).
pub const INSN_LEN: usize = 8;

impl SockFilter {
    pub const fn stmt(code: u16, k: u32) -> Self {
        SockFilter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Self {
        SockFilter { code, jt, jf, k }
    }

    fn to_ne_bytes(self) -> [u8; INSN_LEN] {
        let mut b = [0u8; INSN_LEN];
        b[0..2].copy_from_slice(&self.code.to_ne_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..8].copy_from_slice(&self.k.to_ne_bytes());
        b
    }

    fn from_ne_bytes(b: &[u8]) -> Self {
        // Callers pass exact 8-byte chunks; indexing cannot fail.
        SockFilter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// A seccomp filter ready for [`crate::install`]: the BPF program and its install flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledFilter {
    program: Vec<SockFilter>,
    flags: u32,
}

impl CompiledFilter {
    /// Wraps an already-built program. Fails if the kernel could never accept it.
    pub fn new(program: Vec<SockFilter>, flags: u32) -> Result<Self, Error> {
        if program.is_empty() {
            return Err(Error::Program("empty program".into()));
        }
        if program.len() > BPF_MAXINSNS {
            return Err(Error::Program(format!(
                "{} instructions, the kernel accepts at most {BPF_MAXINSNS}; \
                 reduce the profile (fewer architectures or argument rules)",
                program.len()
            )));
        }
        Ok(CompiledFilter { program, flags })
    }

    /// Decodes a program in the format of `seccomp_export_bpf` (host-endian `sock_filter`s).
    pub fn from_bpf_bytes(bytes: &[u8], flags: u32) -> Result<Self, Error> {
        if !bytes.chunks_exact(INSN_LEN).remainder().is_empty() {
            return Err(Error::Program(format!(
                "{} bytes is not a whole number of instructions",
                bytes.len()
            )));
        }
        let program = bytes
            .chunks_exact(INSN_LEN)
            .map(SockFilter::from_ne_bytes)
            .collect();
        Self::new(program, flags)
    }

    /// The program as host-endian bytes, as the kernel and `seccomp_export_bpf` lay it out.
    pub fn to_bpf_bytes(&self) -> Vec<u8> {
        self.program.iter().flat_map(|i| i.to_ne_bytes()).collect()
    }

    pub fn program(&self) -> &[SockFilter] {
        &self.program
    }

    /// `SECCOMP_FILTER_FLAG_*` bits passed to `seccomp(SECCOMP_SET_MODE_FILTER)`.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// True when installing yields a listener fd (the profile uses `SCMP_ACT_NOTIFY`).
    pub fn uses_notify(&self) -> bool {
        self.flags & flags::NEW_LISTENER != 0
    }
}
