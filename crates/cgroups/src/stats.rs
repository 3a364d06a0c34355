//! Resource usage, for `runc events --stats` and the Engine API's container stats. Missing
//! files (a controller not mounted, an old kernel) leave fields at zero/None instead of failing:
//! stats are read from cgroups whose processes may be exiting under us.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::CgDir;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub memory: MemoryStats,
    pub cpu: CpuStats,
    pub pids: PidsStats,
    /// Bytes and operations per device and direction.
    pub io: Vec<IoEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Current usage in bytes (v1 memory.usage_in_bytes, v2 memory.current).
    pub usage: u64,
    /// Peak usage (v1 memory.max_usage_in_bytes, v2 memory.peak when the kernel has it).
    pub max_usage: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
    /// Times the limit was hit (v1 memory.failcnt, v2 memory.events `max`).
    pub failcnt: u64,
    /// v1: memory+swap usage (memsw); v2: swap only (memory.swap.current).
    pub swap_usage: u64,
    pub swap_limit: Option<u64>,
    /// OOM kills in this cgroup (v1 memory.oom_control `oom_kill`, v2 memory.events).
    pub oom_kills: u64,
    /// memory.stat as key → value (cache, rss, anon, file, ...); Docker computes "usage minus
    /// cache" from it.
    pub stat: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Nanoseconds of CPU time, total and split.
    pub usage_total: u64,
    pub usage_user: u64,
    pub usage_kernel: u64,
    /// v1 only (cpuacct.usage_percpu); empty on v2.
    pub per_cpu: Vec<u64>,
    pub periods: u64,
    pub throttled_periods: u64,
    /// Nanoseconds.
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoEntry {
    pub major: u64,
    pub minor: u64,
    /// "Read", "Write", ... (v1 spelling; v2 rbytes/wbytes map to Read/Write bytes, rios/wios
    /// to the `ios` entries).
    pub op: String,
    pub bytes: u64,
    pub ios: u64,
}

/// Key/value files: memory.stat, cpu.stat, memory.events, memory.oom_control.
pub(crate) fn parse_kv(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn opt_dir(p: Option<&Path>) -> Option<CgDir<'_>> {
    p.and_then(|p| CgDir::open(p).ok())
}

// v1 reports "unlimited" as a huge page-aligned number (PAGE_COUNTER_MAX * page size).
fn v1_limit(v: u64) -> Option<u64> {
    if v >= 0x7fff_ffff_ffff_f000 {
        None
    } else {
        Some(v)
    }
}

pub(crate) fn read_v1(
    memory: Option<&Path>,
    cpu: Option<&Path>,
    cpuacct: Option<&Path>,
    pids: Option<&Path>,
    blkio: Option<&Path>,
) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = opt_dir(memory) {
        let m = &mut s.memory;
        m.usage = d.read_u64("memory.usage_in_bytes").unwrap_or(0);
        m.max_usage = d.read_u64("memory.max_usage_in_bytes").unwrap_or(0);
        m.limit = d.read_u64("memory.limit_in_bytes").ok().and_then(v1_limit);
        m.failcnt = d.read_u64("memory.failcnt").unwrap_or(0);
        m.swap_usage = d.read_u64("memory.memsw.usage_in_bytes").unwrap_or(0);
        m.swap_limit = d
            .read_u64("memory.memsw.limit_in_bytes")
            .ok()
            .and_then(v1_limit);
        if let Ok(t) = d.read_string("memory.oom_control") {
            m.oom_kills = parse_kv(&t).get("oom_kill").copied().unwrap_or(0);
        }
        if let Ok(t) = d.read_string("memory.stat") {
            m.stat = parse_kv(&t);
        }
    }
    if let Some(d) = opt_dir(cpuacct) {
        let c = &mut s.cpu;
        c.usage_total = d.read_u64("cpuacct.usage").unwrap_or(0);
        // cpuacct.usage_user/_sys are in ns (cpuacct.stat would be in USER_HZ ticks).
        c.usage_user = d.read_u64("cpuacct.usage_user").unwrap_or(0);
        c.usage_kernel = d.read_u64("cpuacct.usage_sys").unwrap_or(0);
        if let Ok(t) = d.read_string("cpuacct.usage_percpu") {
            c.per_cpu = t
                .split_ascii_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
        }
    }
    if let Some(d) = opt_dir(cpu) {
        if let Ok(t) = d.read_string("cpu.stat") {
            let kv = parse_kv(&t);
            s.cpu.periods = kv.get("nr_periods").copied().unwrap_or(0);
            s.cpu.throttled_periods = kv.get("nr_throttled").copied().unwrap_or(0);
            s.cpu.throttled_time = kv.get("throttled_time").copied().unwrap_or(0);
        }
    }
    if let Some(d) = opt_dir(pids) {
        s.pids.current = d.read_u64("pids.current").unwrap_or(0);
        s.pids.limit = d.read_u64_or_max("pids.max").ok().flatten();
    }
    if let Some(d) = opt_dir(blkio) {
        let bytes = d
            .read_string("blkio.throttle.io_service_bytes_recursive")
            .unwrap_or_default();
        let ios = d
            .read_string("blkio.throttle.io_serviced_recursive")
            .unwrap_or_default();
        s.io = parse_blkio(&bytes, &ios);
    }
    s
}

/// v1 blkio files: `8:0 Read 4096` lines, plus a `Total` line we drop.
fn parse_blkio(bytes: &str, ios: &str) -> Vec<IoEntry> {
    let mut out: Vec<IoEntry> = Vec::new();
    let mut add = |text: &str, is_bytes: bool| {
        for l in text.lines() {
            let mut f = l.split_ascii_whitespace();
            let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Some((ma, mi)) = dev.split_once(':') else {
                continue;
            };
            let (Ok(ma), Ok(mi), Ok(v)) = (ma.parse(), mi.parse(), v.parse::<u64>()) else {
                continue;
            };
            let e = match out
                .iter_mut()
                .find(|e| e.major == ma && e.minor == mi && e.op == op)
            {
                Some(e) => e,
                None => {
                    out.push(IoEntry {
                        major: ma,
                        minor: mi,
                        op: op.to_string(),
                        ..Default::default()
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            if is_bytes {
                e.bytes = v;
            } else {
                e.ios = v;
            }
        }
    };
    add(bytes, true);
    add(ios, false);
    out
}

pub(crate) fn read_v2(dir: &Path) -> Stats {
    let mut s = Stats::default();
    let Ok(d) = CgDir::open(dir) else { return s };
    let m = &mut s.memory;
    m.usage = d.read_u64("memory.current").unwrap_or(0);
    m.max_usage = d.read_u64("memory.peak").unwrap_or(0);
    m.limit = d.read_u64_or_max("memory.max").ok().flatten();
    m.swap_usage = d.read_u64("memory.swap.current").unwrap_or(0);
    m.swap_limit = d.read_u64_or_max("memory.swap.max").ok().flatten();
    if let Ok(t) = d.read_string("memory.events") {
        let kv = parse_kv(&t);
        m.failcnt = kv.get("max").copied().unwrap_or(0);
        m.oom_kills = kv.get("oom_kill").copied().unwrap_or(0);
    }
    if let Ok(t) = d.read_string("memory.stat") {
        m.stat = parse_kv(&t);
    }
    if let Ok(t) = d.read_string("cpu.stat") {
        let kv = parse_kv(&t);
        let g = |k: &str| kv.get(k).copied().unwrap_or(0);
        s.cpu.usage_total = g("usage_usec") * 1000;
        s.cpu.usage_user = g("user_usec") * 1000;
        s.cpu.usage_kernel = g("system_usec") * 1000;
        s.cpu.periods = g("nr_periods");
        s.cpu.throttled_periods = g("nr_throttled");
        s.cpu.throttled_time = g("throttled_usec") * 1000;
    }
    s.pids.current = d.read_u64("pids.current").unwrap_or(0);
    s.pids.limit = d.read_u64_or_max("pids.max").ok().flatten();
    if let Ok(t) = d.read_string("io.stat") {
        s.io = parse_io_stat(&t);
    }
    s
}

/// v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
fn parse_io_stat(text: &str) -> Vec<IoEntry> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut f = l.split_ascii_whitespace();
        let Some((ma, mi)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        let kv: BTreeMap<&str, u64> = f
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        let g = |k: &str| kv.get(k).copied().unwrap_or(0);
        for (op, b, i) in [
            ("Read", "rbytes", "rios"),
            ("Write", "wbytes", "wios"),
            ("Discard", "dbytes", "dios"),
        ] {
            if kv.contains_key(b) || kv.contains_key(i) {
                out.push(IoEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    bytes: g(b),
                    ios: g(i),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_v1() {
        let e = parse_blkio(
            "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n",
            "8:0 Read 1\n8:0 Write 2\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            IoEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                bytes: 4096,
                ios: 1
            }
        );
        assert_eq!(e[1].bytes, 8192);
        assert_eq!(e[1].ios, 2);
    }

    #[test]
    fn io_v2() {
        let e = parse_io_stat("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1],
            IoEntry {
                major: 259,
                minor: 0,
                op: "Write".into(),
                bytes: 20,
                ios: 2
            }
        );
    }

    #[test]
    fn kv() {
        let kv = parse_kv("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
        assert_eq!(kv["oom_kill"], 3);
    }
}
