//! Version-independent checks and conversions of `linux.resources` values.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

pub(crate) const F_MEM_LIMIT: &str = "linux.resources.memory.limit";
pub(crate) const F_MEM_RESERVATION: &str = "linux.resources.memory.reservation";
pub(crate) const F_MEM_SWAP: &str = "linux.resources.memory.swap";
pub(crate) const F_MEM_KERNEL_TCP: &str = "linux.resources.memory.kernelTCP";
pub(crate) const F_MEM_SWAPPINESS: &str = "linux.resources.memory.swappiness";
pub(crate) const F_CPU_SHARES: &str = "linux.resources.cpu.shares";
pub(crate) const F_CPU_QUOTA: &str = "linux.resources.cpu.quota";
pub(crate) const F_CPU_PERIOD: &str = "linux.resources.cpu.period";
pub(crate) const F_CPU_BURST: &str = "linux.resources.cpu.burst";
pub(crate) const F_CPU_IDLE: &str = "linux.resources.cpu.idle";
pub(crate) const F_CPU_RT_RUNTIME: &str = "linux.resources.cpu.realtimeRuntime";
pub(crate) const F_CPU_RT_PERIOD: &str = "linux.resources.cpu.realtimePeriod";
pub(crate) const F_CPU_CPUS: &str = "linux.resources.cpu.cpus";
pub(crate) const F_CPU_MEMS: &str = "linux.resources.cpu.mems";
pub(crate) const F_PIDS: &str = "linux.resources.pids.limit";
pub(crate) const F_BLKIO_WEIGHT: &str = "linux.resources.blockIO.weight";
pub(crate) const F_BLKIO_LEAF_WEIGHT: &str = "linux.resources.blockIO.leafWeight";
pub(crate) const F_BLKIO_WEIGHT_DEVICE: &str = "linux.resources.blockIO.weightDevice";
pub(crate) const F_BLKIO_THROTTLE: &str = "linux.resources.blockIO.throttle*Device";
pub(crate) const F_HUGETLB: &str = "linux.resources.hugepageLimits";
pub(crate) const F_NET_CLASSID: &str = "linux.resources.network.classID";
pub(crate) const F_NET_PRIO: &str = "linux.resources.network.priorities";
pub(crate) const F_RDMA: &str = "linux.resources.rdma";
pub(crate) const F_UNIFIED: &str = "linux.resources.unified";
pub(crate) const F_DEVICES: &str = "linux.resources.devices";

/// A memory-style limit: `None` when unset (absent or 0, as runc treats 0), `Some(-1)` for
/// unlimited, otherwise the positive value.
pub(crate) fn mem_value(field: &'static str, v: Option<i64>) -> Result<Option<i64>> {
    match v {
        None | Some(0) => Ok(None),
        Some(-1) => Ok(Some(-1)),
        Some(x) if x > 0 => Ok(Some(x)),
        Some(x) => Err(Error::invalid(
            field,
            format!("{x} is negative (use -1 for unlimited)"),
        )),
    }
}

/// runc's mapping of cgroup v1 cpu.shares [2, 262144] onto cgroup v2 cpu.weight [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

/// runc's mapping of blkio.weight [10, 1000] onto io.weight [1, 10000].
pub fn blkio_weight_to_io_weight(w: u64) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w.saturating_sub(10) * 9999) / 990
}

pub(crate) fn check_blkio_weight(field: &'static str, w: u16) -> Result<()> {
    if w != 0 && !(10..=1000).contains(&w) {
        return Err(Error::invalid(field, format!("{w} is outside [10, 1000]")));
    }
    Ok(())
}

pub(crate) fn check_dev(field: &'static str, major: i64, minor: i64) -> Result<()> {
    if major < 0 || minor < 0 || major > u32::MAX as i64 || minor > u32::MAX as i64 {
        return Err(Error::invalid(
            field,
            format!("bad device number {major}:{minor}"),
        ));
    }
    Ok(())
}

/// A CPU or memory-node list such as `0-3,7`, as a bitmap.
pub(crate) fn parse_list(field: &'static str, s: &str) -> Result<Vec<u64>> {
    let mut bits: Vec<u64> = Vec::new();
    let s = s.trim();
    if s.is_empty() {
        return Ok(bits);
    }
    let bad = || Error::invalid(field, format!("{s:?} is not a list like \"0-3,5\""));
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        // No machine has this many CPUs; the cap keeps a hostile "0-4000000000" from
        // allocating gigabytes.
        if a > b || b >= 1 << 16 {
            return Err(bad());
        }
        if bits.len() <= b / 64 {
            bits.resize(b / 64 + 1, 0);
        }
        for i in a..=b {
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    Ok(bits)
}

/// Checks that every CPU (or node) in `want` is in the parent's `have`.
pub(crate) fn check_subset(field: &'static str, want: &str, have: &str) -> Result<()> {
    let w = parse_list(field, want)?;
    let h = parse_list(field, have).unwrap_or_default();
    for (i, word) in w.iter().enumerate() {
        let extra = word & !h.get(i).copied().unwrap_or(0);
        if extra != 0 {
            let bit = i * 64 + extra.trailing_zeros() as usize;
            return Err(Error::invalid(
                field,
                format!("{bit} is not in the parent cgroup's set {:?}", have.trim()),
            ));
        }
    }
    Ok(())
}

/// Hugepage sizes as cgroupfs spells them: `2MB`, `1GB`, `64KB`.
pub(crate) fn check_page_size(s: &str) -> Result<()> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB")
    {
        return Err(Error::invalid(
            F_HUGETLB,
            format!("page size {s:?} is not like \"2MB\""),
        ));
    }
    Ok(())
}

/// Device types as the kernel's device controller understands them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevType {
    All,
    Char,
    Block,
}

pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One validated `linux.resources.devices` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub typ: DevType,
    /// `None` is the wildcard.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bitmask of `ACC_*`.
    pub access: u8,
}

impl DeviceRule {
    /// `a *:* rwm`: resets everything before it.
    pub fn is_wildcard(&self) -> bool {
        self.typ == DevType::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

/// Validates `linux.resources.devices` into rules for [`crate::devices_bpf::program`].
pub fn device_rules(list: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::with_capacity(list.len());
    for d in list {
        let typ = match d.typ() {
            None | Some(LinuxDeviceType::A) => DevType::All,
            // 'u' is an unbuffered character device, which the kernel treats as char.
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => DevType::Char,
            Some(LinuxDeviceType::B) => DevType::Block,
            // FIFOs are not subject to the device controller: nothing to allow or deny.
            Some(LinuxDeviceType::P) => continue,
        };
        let num = |v: Option<i64>| -> Result<Option<u32>> {
            match v {
                None | Some(-1) => Ok(None),
                Some(x) if (0..=u32::MAX as i64).contains(&x) => Ok(Some(x as u32)),
                Some(x) => Err(Error::invalid(F_DEVICES, format!("bad device number {x}"))),
            }
        };
        let mut access = 0u8;
        match d.access().as_deref() {
            None | Some("") => access = ACC_ALL,
            Some(a) => {
                for c in a.chars() {
                    access |= match c {
                        'r' => ACC_READ,
                        'w' => ACC_WRITE,
                        'm' => ACC_MKNOD,
                        _ => {
                            return Err(Error::invalid(
                                F_DEVICES,
                                format!("access {a:?} may only contain r, w and m"),
                            ))
                        }
                    };
                }
            }
        }
        out.push(DeviceRule {
            allow: d.allow(),
            typ,
            major: num(d.major())?,
            minor: num(d.minor())?,
            access,
        });
    }
    Ok(out)
}

/// The device rules runc adds to every container on top of the spec's own list (the spec's
/// `linux.devices` entries still need their own allow rules, which the runtime adds): deny
/// all, then the standard character devices and ptys. Docker relies on runc doing this, so the
/// runtime should append these to `linux.resources.devices` (after the spec's rules).
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    // (type, major, minor, access); None = wildcard.
    let rules: [(LinuxDeviceType, Option<i64>, Option<i64>, &str); 11] = [
        (LinuxDeviceType::C, None, None, "m"),
        (LinuxDeviceType::B, None, None, "m"),
        (LinuxDeviceType::C, Some(1), Some(3), "rwm"), // /dev/null
        (LinuxDeviceType::C, Some(1), Some(8), "rwm"), // /dev/random
        (LinuxDeviceType::C, Some(1), Some(7), "rwm"), // /dev/full
        (LinuxDeviceType::C, Some(5), Some(0), "rwm"), // /dev/tty
        (LinuxDeviceType::C, Some(1), Some(5), "rwm"), // /dev/zero
        (LinuxDeviceType::C, Some(1), Some(9), "rwm"), // /dev/urandom
        (LinuxDeviceType::C, Some(136), None, "rwm"),  // /dev/pts/*
        (LinuxDeviceType::C, Some(5), Some(2), "rwm"), // /dev/ptmx
        (LinuxDeviceType::C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ];
    rules
        .iter()
        .map(|(t, maj, min, acc)| {
            let mut d = LinuxDeviceCgroup::default();
            d.set_allow(true);
            d.set_typ(Some(*t));
            d.set_major(*maj);
            d.set_minor(*min);
            d.set_access(Some((*acc).to_string()));
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10000);
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("f", "0-3,5").unwrap(), vec![0b101111]);
        assert_eq!(parse_list("f", "64").unwrap(), vec![0, 1]);
        assert!(parse_list("f", "3-1").is_err());
        assert!(parse_list("f", "a").is_err());
        assert!(parse_list("f", "0-99999999").is_err());
        check_subset("f", "0-1", "0-3").unwrap();
        let e = check_subset(F_CPU_CPUS, "0,4", "0-1").unwrap_err();
        match e {
            Error::InvalidResource { field, reason } => {
                assert_eq!(field, "linux.resources.cpu.cpus");
                assert!(reason.starts_with("4 "), "{reason}");
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn mem_values() {
        assert_eq!(mem_value("f", None).unwrap(), None);
        assert_eq!(mem_value("f", Some(0)).unwrap(), None);
        assert_eq!(mem_value("f", Some(-1)).unwrap(), Some(-1));
        assert_eq!(mem_value("f", Some(5)).unwrap(), Some(5));
        assert!(mem_value("f", Some(-2)).is_err());
    }

    #[test]
    fn page_sizes() {
        check_page_size("2MB").unwrap();
        check_page_size("1GB").unwrap();
        assert!(check_page_size("2M").is_err());
        assert!(check_page_size("MB").is_err());
        assert!(check_page_size("../x").is_err());
    }

    #[test]
    fn device_rule_parsing() {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(false);
        d.set_access(Some("rwm".into()));
        let r = device_rules(&[d.clone()]).unwrap();
        assert!(r[0].is_wildcard() && !r[0].allow);
        d.set_access(Some("rx".into()));
        assert!(device_rules(&[d.clone()]).is_err());
        d.set_access(None);
        d.set_major(Some(-5));
        assert!(device_rules(&[d]).is_err());
        assert_eq!(device_rules(&default_device_rules()).unwrap().len(), 11);
    }
}
