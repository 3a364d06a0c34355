//! Writing `linux.resources` into a cgroup v2 directory, enabling controllers down the tree,
//! and v2 freezing.

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::fsutil::{CgDir, NumBuf};
use crate::resources::*;
use crate::v1::{throttles, validate};

/// Makes every controller the root offers available to `leaf`, by adding it to
/// `cgroup.subtree_control` of each ancestor from the mount point down. Failures are not fatal
/// here: an ancestor that holds processes cannot enable controllers for its children (the "no
/// internal processes" rule) and the resources that need them will fail later with a precise
/// error.
pub(crate) fn enable_controllers(mount: &Path, leaf: &Path) -> Result<()> {
    let root = CgDir::open(mount)?;
    let avail = root.read_string("cgroup.controllers")?;
    let avail = avail.trim();
    if avail.is_empty() {
        return Ok(());
    }
    let mut line = String::with_capacity(avail.len() + 16);
    for c in avail.split_ascii_whitespace() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push('+');
        line.push_str(c);
    }
    let Ok(rel) = leaf.strip_prefix(mount) else {
        return Ok(());
    };
    let mut cur = mount.to_path_buf();
    let mut comps: Vec<_> = rel.components().collect();
    comps.pop(); // the leaf's own subtree_control stays empty: processes live in it
    let mut ancestors = vec![cur.clone()];
    for c in comps {
        cur.push(c);
        ancestors.push(cur.clone());
    }
    for a in &ancestors {
        let d = CgDir::open(a)?;
        if d.write("cgroup.subtree_control", line.as_bytes()).is_err() {
            // One unavailable controller fails the whole write; retry one at a time.
            for c in line.split(' ') {
                if let Err(e) = d.write("cgroup.subtree_control", c.as_bytes()) {
                    tracing::debug!(error = %e, "cannot enable controller");
                }
            }
        }
    }
    Ok(())
}

/// Controllers available in the cgroup (its `cgroup.controllers`).
pub(crate) struct Controllers(String);

impl Controllers {
    pub(crate) fn read(d: &CgDir<'_>) -> Result<Controllers> {
        Ok(Controllers(d.read_string("cgroup.controllers")?))
    }

    fn has(&self, c: &str) -> bool {
        self.0.split_ascii_whitespace().any(|x| x == c)
    }

    fn need(&self, c: &'static str, field: &'static str) -> Result<()> {
        if self.has(c) {
            Ok(())
        } else {
            Err(Error::ControllerUnavailable {
                field,
                controller: c.to_string(),
            })
        }
    }
}

/// runc's translation of the OCI (v1-style) memory+swap total into v2's swap-only limit.
pub(crate) fn swap_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    match (swap, limit) {
        // Lifting the memory limit without naming swap lifts swap too.
        (None, Some(-1)) => Ok(Some(-1)),
        (None, _) => Ok(None),
        (Some(-1), _) => Ok(Some(-1)),
        (Some(s), Some(-1)) => Ok(Some(s)),
        (Some(_), None) => Err(Error::invalid(
            F_MEM_SWAP,
            "a swap limit needs a memory limit on cgroup v2",
        )),
        (Some(s), Some(l)) if s < l => Err(Error::invalid(
            F_MEM_SWAP,
            format!("memory+swap limit {s} is below the memory limit {l}"),
        )),
        (Some(s), Some(l)) => Ok(Some(s - l)),
    }
}

fn write_max(d: &CgDir<'_>, file: &str, v: i64) -> Result<()> {
    if v < 0 {
        d.write(file, b"max")
    } else {
        d.write_num(file, v)
    }
}

/// Applies everything except devices (see `devices_bpf`).
pub(crate) fn apply(dir: &Path, r: &LinuxResources) -> Result<()> {
    validate(r)?;
    let d = CgDir::open(dir)?;
    let ctl = Controllers::read(&d)?;

    if let Some(m) = r.memory() {
        let limit = mem_value(F_MEM_LIMIT, m.limit())?;
        let swap = swap_v2(mem_value(F_MEM_SWAP, m.swap())?, limit)?;
        let low = mem_value(F_MEM_RESERVATION, m.reservation())?;
        if limit.is_some() || swap.is_some() || low.is_some() {
            ctl.need("memory", F_MEM_LIMIT)?;
        }
        if let Some(s) = swap {
            if !d.exists("memory.swap.max") {
                return Err(Error::invalid(
                    F_MEM_SWAP,
                    "swap accounting is not enabled on this host",
                ));
            }
            write_max(&d, "memory.swap.max", s)?;
        }
        if let Some(l) = limit {
            write_max(&d, "memory.max", l)?;
        }
        if let Some(l) = low {
            write_max(&d, "memory.low", l)?;
        }
        // v1-only knobs with no v2 file; runc ignores them on v2 as well, and Docker sends
        // swappiness routinely.
        if m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true)
            || m.kernel_tcp().is_some()
        {
            tracing::debug!("memory swappiness/disableOOMKiller/kernelTCP have no cgroup v2 equivalent; ignored");
        }
    }

    if let Some(c) = r.cpu() {
        if c.realtime_period().is_some_and(|v| v != 0) {
            return Err(Error::Unsupported {
                field: F_CPU_RT_PERIOD,
                version: "v2",
            });
        }
        if c.realtime_runtime().is_some_and(|v| v != 0) {
            return Err(Error::Unsupported {
                field: F_CPU_RT_RUNTIME,
                version: "v2",
            });
        }
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            if !(2..=262144).contains(&s) {
                return Err(Error::invalid(
                    F_CPU_SHARES,
                    format!("{s} is outside [2, 262144]"),
                ));
            }
            ctl.need("cpu", F_CPU_SHARES)?;
            d.write_u64("cpu.weight", shares_to_weight(s))?;
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if quota.is_some() || period.is_some() {
            ctl.need("cpu", F_CPU_QUOTA)?;
            // "max" without a period keeps the current period, as runc writes it.
            let mut buf = [0u8; 48];
            let mut n = 0;
            let mut nb = NumBuf::new();
            let q: &[u8] = match quota {
                Some(q) if q > 0 => nb.fmt_i64(q),
                _ => b"max",
            };
            buf[..q.len()].copy_from_slice(q);
            n += q.len();
            if let Some(p) = period {
                buf[n] = b' ';
                n += 1;
                let p = nb.fmt_u64(p);
                buf[n..n + p.len()].copy_from_slice(p);
                n += p.len();
            }
            d.write("cpu.max", &buf[..n])?;
        }
        if let Some(b) = c.burst() {
            ctl.need("cpu", F_CPU_BURST)?;
            d.write_u64("cpu.max.burst", b)?;
        }
        if let Some(i) = c.idle() {
            ctl.need("cpu", F_CPU_IDLE)?;
            d.write_num("cpu.idle", i)?;
        }
        let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = c.mems().as_deref().filter(|s| !s.is_empty());
        if let Some(s) = cpus {
            ctl.need("cpuset", F_CPU_CPUS)?;
            d.write("cpuset.cpus", s.as_bytes())?;
        }
        if let Some(s) = mems {
            ctl.need("cpuset", F_CPU_MEMS)?;
            d.write("cpuset.mems", s.as_bytes())?;
        }
    }

    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            ctl.need("pids", F_PIDS)?;
            write_max(&d, "pids.max", p.limit())?;
        }
    }

    if let Some(b) = r.block_io() {
        apply_io(&d, &ctl, b)?;
    }

    if let Some(h) = r.hugepage_limits() {
        if !h.is_empty() {
            ctl.need("hugetlb", F_HUGETLB)?;
            for l in h {
                let file = format!("hugetlb.{}.max", l.page_size());
                if !d.exists(&file) {
                    return Err(Error::invalid(
                        F_HUGETLB,
                        format!("page size {} is not supported by this host", l.page_size()),
                    ));
                }
                write_max(&d, &file, l.limit())?;
            }
        }
    }

    if let Some(n) = r.network() {
        if n.class_id().is_some() {
            return Err(Error::Unsupported {
                field: F_NET_CLASSID,
                version: "v2",
            });
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::Unsupported {
                field: F_NET_PRIO,
                version: "v2",
            });
        }
    }

    if let Some(rdma) = r.rdma() {
        if !rdma.is_empty() {
            ctl.need("rdma", F_RDMA)?;
            crate::v1::write_rdma(&d, rdma)?;
        }
    }

    if let Some(u) = r.unified() {
        // Sorted so that the outcome does not depend on HashMap order.
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        for (k, v) in keys {
            if k.is_empty() || k.contains('/') || k.starts_with('.') {
                return Err(Error::invalid(
                    F_UNIFIED,
                    format!("{k:?} is not a cgroup file name"),
                ));
            }
            if !d.exists(k) {
                let ctrl = k.split('.').next().unwrap_or("");
                if ctrl != "cgroup" && !ctl.has(ctrl) {
                    return Err(Error::invalid(
                        F_UNIFIED,
                        format!("{k}: controller {ctrl:?} is not available"),
                    ));
                }
                return Err(Error::invalid(
                    F_UNIFIED,
                    format!("{k}: no such cgroup file"),
                ));
            }
            d.write(k, v.as_bytes())?;
        }
    }
    Ok(())
}

fn apply_io(d: &CgDir<'_>, ctl: &Controllers, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
    let weight = b.weight().filter(|w| *w != 0);
    let wdev = b.weight_device().as_deref().unwrap_or(&[]);
    let thr = throttles(b);
    if b.leaf_weight().is_some_and(|w| w != 0) {
        return Err(Error::Unsupported {
            field: F_BLKIO_LEAF_WEIGHT,
            version: "v2",
        });
    }
    if weight.is_none() && wdev.is_empty() && thr.iter().all(|t| t.2.is_empty()) {
        return Ok(());
    }
    ctl.need("io", F_BLKIO_WEIGHT)?;
    // With BFQ the weight keeps its v1 range; io.weight (the cost model) wants the converted one.
    let bfq = d.exists("io.bfq.weight");
    if let Some(w) = weight {
        if bfq {
            d.write_u64("io.bfq.weight", w as u64)?;
        } else {
            d.write_u64("io.weight", blkio_weight_to_io_weight(w as u64))?;
        }
    }
    for wd in wdev {
        if let Some(w) = wd.weight() {
            let (file, w) = if bfq {
                ("io.bfq.weight", w as u64)
            } else {
                ("io.weight", blkio_weight_to_io_weight(w as u64))
            };
            d.write(
                file,
                format!("{}:{} {}", wd.major(), wd.minor(), w).as_bytes(),
            )?;
        }
    }
    for (_, key, devs) in thr {
        for t in devs {
            // In io.max, 0 is not "no I/O" but unset; say max.
            let line = if t.rate() == 0 {
                format!("{}:{} {}=max", t.major(), t.minor(), key)
            } else {
                format!("{}:{} {}={}", t.major(), t.minor(), key, t.rate())
            };
            d.write("io.max", line.as_bytes())?;
        }
    }
    Ok(())
}

/// Freezes or thaws through cgroup.freeze and waits for cgroup.events to agree.
pub(crate) fn set_freeze(dir: &Path, freeze: bool, timeout: Duration) -> Result<()> {
    let d = CgDir::open(dir)?;
    d.write("cgroup.freeze", if freeze { b"1" } else { b"0" })?;
    let want: &[u8] = if freeze { b"frozen 1" } else { b"frozen 0" };
    let start = Instant::now();
    let mut buf = Vec::with_capacity(64);
    let mut i = 0u32;
    loop {
        d.read_into("cgroup.events", &mut buf)?;
        if buf.split(|b| *b == b'\n').any(|l| l == want) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            if freeze {
                let _ = d.write("cgroup.freeze", b"0");
            }
            return Err(Error::Timeout {
                path: d.file_path("cgroup.events"),
                state: if freeze { "frozen" } else { "thawed" },
            });
        }
        i += 1;
        std::thread::sleep(Duration::from_micros(if i < 10 { 100 } else { 1000 }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_v2(None, None).unwrap(), None);
        assert_eq!(swap_v2(None, Some(100)).unwrap(), None);
        assert_eq!(swap_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_v2(Some(-1), Some(100)).unwrap(), Some(-1));
        assert_eq!(swap_v2(Some(300), Some(100)).unwrap(), Some(200));
        assert_eq!(swap_v2(Some(100), Some(100)).unwrap(), Some(0));
        assert!(swap_v2(Some(50), Some(100)).is_err());
        assert!(swap_v2(Some(50), None).is_err());
    }
}
