//! Writing `linux.resources` into cgroup v1 hierarchies, and v1 freezing.

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::fsutil::{CgDir, NumBuf};
use crate::resources::*;

/// Finds the directory of the hierarchy that carries a controller.
pub(crate) trait V1Dirs {
    fn dir(&self, controller: &str) -> Option<&Path>;
}

/// Opens the controller's directory, or explains which field needed it.
fn need<'a, D: V1Dirs + ?Sized>(
    dirs: &'a D,
    controller: &'static str,
    field: &'static str,
) -> Result<CgDir<'a>> {
    match dirs.dir(controller) {
        Some(p) => CgDir::open(p),
        None => Err(Error::ControllerUnavailable {
            field,
            controller: controller.to_string(),
        }),
    }
}

/// Checks what can be checked without touching the filesystem, so that obviously bad input
/// fails before any directory is created.
pub(crate) fn validate(r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        let limit = mem_value(F_MEM_LIMIT, m.limit())?;
        let swap = mem_value(F_MEM_SWAP, m.swap())?;
        mem_value(F_MEM_RESERVATION, m.reservation())?;
        mem_value(F_MEM_KERNEL_TCP, m.kernel_tcp())?;
        if let (Some(l), Some(s)) = (limit, swap) {
            if l > 0 && s > 0 && s < l {
                return Err(Error::invalid(
                    F_MEM_SWAP,
                    format!("memory+swap limit {s} is below the memory limit {l}"),
                ));
            }
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(Error::invalid(
                    F_MEM_SWAPPINESS,
                    format!("{s} is above 100"),
                ));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(q) = c.quota() {
            if q < -1 {
                return Err(Error::invalid(
                    F_CPU_QUOTA,
                    format!("{q} is negative (use -1 for unlimited)"),
                ));
            }
        }
        if let Some(p) = c.period() {
            if p != 0 && !(1000..=1_000_000).contains(&p) {
                return Err(Error::invalid(
                    F_CPU_PERIOD,
                    format!("{p} is outside [1000, 1000000] microseconds"),
                ));
            }
        }
        if let Some(cpus) = c.cpus() {
            parse_list(F_CPU_CPUS, cpus)?;
        }
        if let Some(mems) = c.mems() {
            parse_list(F_CPU_MEMS, mems)?;
        }
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            check_blkio_weight(F_BLKIO_WEIGHT, w)?;
        }
        if let Some(w) = b.leaf_weight() {
            check_blkio_weight(F_BLKIO_LEAF_WEIGHT, w)?;
        }
        for wd in b.weight_device().iter().flatten() {
            check_dev(F_BLKIO_WEIGHT_DEVICE, wd.major(), wd.minor())?;
            if let Some(w) = wd.weight() {
                check_blkio_weight(F_BLKIO_WEIGHT_DEVICE, w)?;
            }
        }
        for t in throttles(b) {
            for d in t.2 {
                check_dev(F_BLKIO_THROTTLE, d.major(), d.minor())?;
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        check_page_size(h.page_size())?;
        if h.limit() < -1 {
            return Err(Error::invalid(
                F_HUGETLB,
                format!("limit {} for {} is negative", h.limit(), h.page_size()),
            ));
        }
    }
    if let Some(d) = r.devices() {
        device_rules(d)?;
    }
    Ok(())
}

pub(crate) type Throttle<'a> = (
    &'static str,
    &'static str,
    &'a [oci_spec::runtime::LinuxThrottleDevice],
);

/// (v1 file, v2 io.max key, devices) for the four throttle lists.
pub(crate) fn throttles(b: &oci_spec::runtime::LinuxBlockIo) -> [Throttle<'_>; 4] {
    [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            b.throttle_read_bps_device().as_deref().unwrap_or(&[]),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            b.throttle_write_bps_device().as_deref().unwrap_or(&[]),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            b.throttle_read_iops_device().as_deref().unwrap_or(&[]),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            b.throttle_write_iops_device().as_deref().unwrap_or(&[]),
        ),
    ]
}

pub(crate) fn apply<D: V1Dirs + ?Sized>(dirs: &D, r: &LinuxResources) -> Result<()> {
    validate(r)?;
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::Unsupported {
            field: F_UNIFIED,
            version: "v1",
        });
    }
    if let Some(devs) = r.devices() {
        if !devs.is_empty() {
            let d = need(dirs, "devices", F_DEVICES)?;
            apply_devices(&d, &device_rules(devs)?)?;
        }
    }
    if let Some(m) = r.memory() {
        apply_memory(dirs, m)?;
    }
    if let Some(c) = r.cpu() {
        apply_cpu(dirs, c)?;
    }
    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            let d = need(dirs, "pids", F_PIDS)?;
            if p.limit() > 0 {
                d.write_num("pids.max", p.limit())?;
            } else {
                d.write("pids.max", b"max")?;
            }
        }
    }
    if let Some(b) = r.block_io() {
        apply_blkio(dirs, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        if !h.is_empty() {
            let d = need(dirs, "hugetlb", F_HUGETLB)?;
            for l in h {
                let file = format!("hugetlb.{}.limit_in_bytes", l.page_size());
                if !d.exists(&file) {
                    return Err(Error::invalid(
                        F_HUGETLB,
                        format!("page size {} is not supported by this host", l.page_size()),
                    ));
                }
                d.write_num(&file, l.limit())?;
            }
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            let d = need(dirs, "net_cls", F_NET_CLASSID)?;
            d.write_u64("net_cls.classid", id as u64)?;
        }
        if let Some(prios) = n.priorities() {
            if !prios.is_empty() {
                let d = need(dirs, "net_prio", F_NET_PRIO)?;
                for p in prios {
                    d.write(
                        "net_prio.ifpriomap",
                        format!("{} {}", p.name(), p.priority()).as_bytes(),
                    )?;
                }
            }
        }
    }
    if let Some(rdma) = r.rdma() {
        if !rdma.is_empty() {
            let d = need(dirs, "rdma", F_RDMA)?;
            write_rdma(&d, rdma)?;
        }
    }
    Ok(())
}

pub(crate) fn write_rdma(
    d: &CgDir<'_>,
    rdma: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>,
) -> Result<()> {
    for (dev, lim) in rdma {
        if dev.contains(char::is_whitespace) || dev.is_empty() {
            return Err(Error::invalid(F_RDMA, format!("bad device name {dev:?}")));
        }
        let mut line = dev.clone();
        if let Some(h) = lim.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = lim.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        d.write("rdma.max", line.as_bytes())?;
    }
    Ok(())
}

fn apply_memory<D: V1Dirs + ?Sized>(dirs: &D, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
    let limit = mem_value(F_MEM_LIMIT, m.limit())?;
    let mut swap = mem_value(F_MEM_SWAP, m.swap())?;
    // As runc: lifting the memory limit without naming swap lifts swap too, or the old memsw
    // limit would keep capping memory.
    if limit == Some(-1) && swap.is_none() {
        swap = Some(-1);
    }
    let reservation = mem_value(F_MEM_RESERVATION, m.reservation())?;
    let ktcp = mem_value(F_MEM_KERNEL_TCP, m.kernel_tcp())?;
    #[allow(deprecated)]
    let kernel = m.kernel();
    let touches = limit.is_some()
        || swap.is_some()
        || reservation.is_some()
        || ktcp.is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true);
    if !touches {
        if kernel.is_some_and(|k| k != 0) {
            tracing::warn!("linux.resources.memory.kernel is obsolete and ignored");
        }
        return Ok(());
    }
    let d = need(dirs, "memory", F_MEM_LIMIT)?;
    if swap.is_some() && !d.exists("memory.memsw.limit_in_bytes") {
        return Err(Error::invalid(
            F_MEM_SWAP,
            "swap accounting is not enabled on this host",
        ));
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: raising both
            // needs memsw first, lowering both needs the limit first. Try the common order and
            // fall back instead of reading the current values.
            match d.write_num("memory.limit_in_bytes", l) {
                Ok(()) => d.write_num("memory.memsw.limit_in_bytes", s)?,
                Err(e) if e.is_errno(libc::EINVAL) => {
                    d.write_num("memory.memsw.limit_in_bytes", s)?;
                    d.write_num("memory.limit_in_bytes", l)?;
                }
                Err(e) => return Err(e),
            }
        }
        (Some(l), None) => d.write_num("memory.limit_in_bytes", l)?,
        (None, Some(s)) => d.write_num("memory.memsw.limit_in_bytes", s)?,
        (None, None) => {}
    }
    if let Some(r) = reservation {
        d.write_num("memory.soft_limit_in_bytes", r)?;
    }
    if let Some(k) = ktcp {
        d.write_num("memory.kmem.tcp.limit_in_bytes", k)?;
    }
    if let Some(s) = m.swappiness() {
        d.write_u64("memory.swappiness", s)?;
    }
    if m.disable_oom_killer() == Some(true) {
        d.write("memory.oom_control", b"1")?;
    }
    Ok(())
}

fn apply_cpu<D: V1Dirs + ?Sized>(dirs: &D, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
    let shares = c.shares().filter(|s| *s != 0);
    let period = c.period().filter(|p| *p != 0);
    let quota = c.quota().filter(|q| *q != 0);
    let burst = c.burst();
    let rt_period = c.realtime_period().filter(|p| *p != 0);
    let rt_runtime = c.realtime_runtime().filter(|r| *r != 0);
    if shares.is_some()
        || period.is_some()
        || quota.is_some()
        || burst.is_some()
        || rt_period.is_some()
        || rt_runtime.is_some()
        || c.idle().is_some()
    {
        let field = if shares.is_some() {
            F_CPU_SHARES
        } else {
            F_CPU_QUOTA
        };
        let d = need(dirs, "cpu", field)?;
        if let Some(s) = shares {
            d.write_u64("cpu.shares", s)?;
        }
        match (period, quota) {
            (Some(p), Some(q)) => {
                // A new period shorter than the current quota is refused, and vice versa.
                match d.write_u64("cpu.cfs_period_us", p) {
                    Ok(()) => d.write_num("cpu.cfs_quota_us", q)?,
                    Err(e) if e.is_errno(libc::EINVAL) => {
                        d.write_num("cpu.cfs_quota_us", q)?;
                        d.write_u64("cpu.cfs_period_us", p)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            (Some(p), None) => d.write_u64("cpu.cfs_period_us", p)?,
            (None, Some(q)) => d.write_num("cpu.cfs_quota_us", q)?,
            (None, None) => {}
        }
        if let Some(b) = burst {
            if !d.exists("cpu.cfs_burst_us") {
                return Err(Error::invalid(
                    F_CPU_BURST,
                    "the kernel has no cpu.cfs_burst_us",
                ));
            }
            d.write_u64("cpu.cfs_burst_us", b)?;
        }
        // The runtime may only be raised after the period that bounds it is set.
        if let Some(p) = rt_period {
            d.write_u64("cpu.rt_period_us", p)?;
        }
        if let Some(r) = rt_runtime {
            d.write_num("cpu.rt_runtime_us", r)?;
        }
        if let Some(i) = c.idle() {
            if !d.exists("cpu.idle") {
                return Err(Error::invalid(F_CPU_IDLE, "the kernel has no cpu.idle"));
            }
            d.write_num("cpu.idle", i)?;
        }
    }
    let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = c.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_some() || mems.is_some() {
        let d = need(
            dirs,
            "cpuset",
            if cpus.is_some() {
                F_CPU_CPUS
            } else {
                F_CPU_MEMS
            },
        )?;
        if let Some(s) = cpus {
            d.write("cpuset.cpus", s.as_bytes())?;
        }
        if let Some(s) = mems {
            d.write("cpuset.mems", s.as_bytes())?;
        }
    }
    Ok(())
}

fn apply_blkio<D: V1Dirs + ?Sized>(dirs: &D, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
    let weight = b.weight().filter(|w| *w != 0);
    let leaf = b.leaf_weight().filter(|w| *w != 0);
    let wdev = b.weight_device().as_deref().unwrap_or(&[]);
    let thr = throttles(b);
    if weight.is_none() && leaf.is_none() && wdev.is_empty() && thr.iter().all(|t| t.2.is_empty()) {
        return Ok(());
    }
    let d = need(dirs, "blkio", F_BLKIO_WEIGHT)?;
    // CFQ is gone from current kernels; BFQ exposes the same knobs with a prefix.
    let bfq = !d.exists("blkio.weight") && d.exists("blkio.bfq.weight");
    let (wfile, wdfile) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = weight {
        if !d.exists(wfile) {
            return Err(Error::invalid(
                F_BLKIO_WEIGHT,
                "no blkio weight support (no CFQ or BFQ scheduler)",
            ));
        }
        d.write_u64(wfile, w as u64)?;
    }
    if let Some(w) = leaf {
        if !d.exists("blkio.leaf_weight") {
            return Err(Error::invalid(
                F_BLKIO_LEAF_WEIGHT,
                "the kernel has no blkio.leaf_weight",
            ));
        }
        d.write_u64("blkio.leaf_weight", w as u64)?;
    }
    for wd in wdev {
        if let Some(w) = wd.weight() {
            d.write(
                wdfile,
                format!("{}:{} {}", wd.major(), wd.minor(), w).as_bytes(),
            )?;
        }
        if let Some(w) = wd.leaf_weight() {
            d.write(
                "blkio.leaf_weight_device",
                format!("{}:{} {}", wd.major(), wd.minor(), w).as_bytes(),
            )?;
        }
    }
    for (file, _, devs) in thr {
        for t in devs {
            d.write(
                file,
                format!("{}:{} {}", t.major(), t.minor(), t.rate()).as_bytes(),
            )?;
        }
    }
    Ok(())
}

/// v1 device cgroup rules map directly onto devices.allow / devices.deny writes, with one
/// trap: the kernel reads any rule of type 'a' as "everything", whatever its numbers and
/// access, so a partial wildcard-type rule has to be split into a char and a block rule.
fn apply_devices(d: &CgDir<'_>, rules: &[DeviceRule]) -> Result<()> {
    let (mut allow, mut deny) = (None, None);
    for r in rules {
        let (slot, name) = if r.allow {
            (&mut allow, "devices.allow")
        } else {
            (&mut deny, "devices.deny")
        };
        let file = match slot {
            Some(f) => f,
            None => slot.insert(d.open_file(name)?),
        };
        if r.is_wildcard() {
            file.write(b"a")?;
            continue;
        }
        let types: &[u8] = match r.typ {
            DevType::All => b"cb",
            DevType::Char => b"c",
            DevType::Block => b"b",
        };
        for t in types {
            let mut line = [0u8; 64];
            let n = format_v1_rule(&mut line, *t, r);
            file.write(&line[..n])?;
        }
    }
    Ok(())
}

/// "c 1:3 rwm" into a stack buffer.
fn format_v1_rule(buf: &mut [u8; 64], typ: u8, r: &DeviceRule) -> usize {
    let mut n = 0;
    let mut push = |b: &[u8]| {
        buf[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    let mut nb = NumBuf::new();
    push(&[typ, b' ']);
    match r.major {
        Some(m) => push(nb.fmt_u64(m as u64)),
        None => push(b"*"),
    }
    push(b":");
    match r.minor {
        Some(m) => push(nb.fmt_u64(m as u64)),
        None => push(b"*"),
    }
    push(b" ");
    if r.access & ACC_READ != 0 {
        push(b"r");
    }
    if r.access & ACC_WRITE != 0 {
        push(b"w");
    }
    if r.access & ACC_MKNOD != 0 {
        push(b"m");
    }
    n
}

/// Writes FROZEN/THAWED and waits until the kernel reports the state. Freezing a cgroup goes
/// through FREEZING while tasks reach a safe point; a task that never does (stuck in D state)
/// keeps it there, so give up after `timeout` and thaw again rather than leave it half frozen.
pub(crate) fn set_freezer(dir: &Path, freeze: bool, timeout: Duration) -> Result<()> {
    let d = CgDir::open(dir)?;
    let want: &[u8] = if freeze { b"FROZEN" } else { b"THAWED" };
    d.write("freezer.state", want)?;
    let start = Instant::now();
    let mut buf = Vec::with_capacity(16);
    let mut i = 0u32;
    loop {
        d.read_into("freezer.state", &mut buf)?;
        if buf.trim_ascii() == want {
            return Ok(());
        }
        if start.elapsed() > timeout {
            if freeze {
                let _ = d.write("freezer.state", b"THAWED");
            }
            return Err(Error::Timeout {
                path: d.file_path("freezer.state"),
                state: if freeze { "FROZEN" } else { "THAWED" },
            });
        }
        i += 1;
        // Re-issuing the write nudges tasks that were forking while the freeze started.
        if i % 16 == 0 {
            d.write("freezer.state", want)?;
        }
        std::thread::sleep(Duration::from_micros(if i < 10 { 100 } else { 1000 }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_rule_text() {
        let mut buf = [0u8; 64];
        let r = DeviceRule {
            allow: true,
            typ: DevType::Char,
            major: Some(136),
            minor: None,
            access: ACC_READ | ACC_WRITE,
        };
        let n = format_v1_rule(&mut buf, b'c', &r);
        assert_eq!(&buf[..n], b"c 136:* rw");
    }
}
