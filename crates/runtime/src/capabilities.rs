//! The five capability sets as bitmasks, computed in the parent and applied
//! in the child with raw prctl/capset calls (no allocation after fork).

use std::io;
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask(set: &Option<Capabilities>, field: &str) -> Result<u64> {
    let mut m = 0u64;
    for cap in set.iter().flatten() {
        let name = format!("CAP_{cap}");
        let c = caps::Capability::from_str(&name)
            .map_err(|_| Error::config(field, format!("unknown capability {name}")))?;
        m |= 1u64 << c.index();
    }
    Ok(m)
}

impl CapSets {
    /// None when the spec leaves capabilities alone (keep what we have).
    pub fn from_spec(c: Option<&LinuxCapabilities>, field: &str) -> Result<Option<Self>> {
        let Some(c) = c else { return Ok(None) };
        Ok(Some(CapSets {
            bounding: mask(c.bounding(), &format!("{field}.bounding"))?,
            effective: mask(c.effective(), &format!("{field}.effective"))?,
            permitted: mask(c.permitted(), &format!("{field}.permitted"))?,
            inheritable: mask(c.inheritable(), &format!("{field}.inheritable"))?,
            ambient: mask(c.ambient(), &format!("{field}.ambient"))?,
        }))
    }

    /// Drops from the bounding set every capability not in it. Must run
    /// while we still hold CAP_SETPCAP, before changing uid.
    pub fn drop_bounding(&self, last_cap: u32) -> io::Result<()> {
        for cap in 0..=last_cap.min(63) {
            if self.bounding & (1 << cap) == 0 {
                // SAFETY: plain prctl.
                let r =
                    unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    // EINVAL: the kernel does not know this capability.
                    if e.raw_os_error() != Some(libc::EINVAL) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets effective, permitted and inheritable, then raises the ambient
    /// ones (which must be permitted and inheritable to stick).
    pub fn apply(&self, last_cap: u32) -> io::Result<()> {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        let hdr = Header {
            version: VERSION_3,
            pid: 0,
        };
        let lo = |m: u64| m as u32;
        let hi = |m: u64| (m >> 32) as u32;
        let data = [
            Data {
                effective: lo(self.effective),
                permitted: lo(self.permitted),
                inheritable: lo(self.inheritable),
            },
            Data {
                effective: hi(self.effective),
                permitted: hi(self.permitted),
                inheritable: hi(self.inheritable),
            },
        ];
        // SAFETY: header and two data structs as capset(2) v3 expects.
        let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain prctl.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        };
        for cap in 0..=last_cap.min(63) {
            if self.ambient & (1 << cap) != 0 {
                // SAFETY: plain prctl. Failure (cap not inheritable) is
                // ignored as runc does: ambient is best effort.
                unsafe {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE,
                        cap as libc::c_ulong,
                        0,
                        0,
                    )
                };
            }
        }
        Ok(())
    }
}

pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}
