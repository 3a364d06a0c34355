//! `update`: runc's resource flags, or a LinuxResources JSON document.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use oci_spec::runtime::{LinuxPids, LinuxResources};

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// LinuxResources JSON file, or - for stdin; flags override it.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU shares (runc spells it --cpu-share).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long, allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

/// Parses `64m`, `1g`, `1024` (bytes), `-1` (unlimited).
pub fn parse_size(s: &str) -> anyhow::Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}: negative");
    }
    Ok((n * mult as f64) as i64)
}

impl UpdateArgs {
    pub fn resources(&self) -> anyhow::Result<LinuxResources> {
        let mut r: LinuxResources = match &self.resources {
            Some(p) => {
                let mut data = Vec::new();
                if p.as_os_str() == "-" {
                    std::io::stdin().read_to_end(&mut data)?;
                } else {
                    data = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
                }
                let de = &mut serde_json::Deserializer::from_slice(&data);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    anyhow::anyhow!("invalid resources: {}: {}", e.path(), e.inner())
                })?
            }
            None => LinuxResources::default(),
        };
        if self.memory.is_some() || self.memory_reservation.is_some() || self.memory_swap.is_some()
        {
            let mut m = r.memory().unwrap_or_default();
            if let Some(v) = &self.memory {
                m.set_limit(Some(parse_size(v)?));
            }
            if let Some(v) = &self.memory_reservation {
                m.set_reservation(Some(parse_size(v)?));
            }
            if let Some(v) = &self.memory_swap {
                m.set_swap(Some(parse_size(v)?));
            }
            r.set_memory(Some(m));
        }
        if self.cpu_shares.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_rt_period.is_some()
            || self.cpu_rt_runtime.is_some()
            || self.cpu_period.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
        {
            let mut c = r.cpu().clone().unwrap_or_default();
            if let Some(v) = self.cpu_shares {
                c.set_shares(Some(v));
            }
            if let Some(v) = self.cpu_quota {
                c.set_quota(Some(v));
            }
            if let Some(v) = self.cpu_period {
                c.set_period(Some(v));
            }
            if let Some(v) = self.cpu_rt_period {
                c.set_realtime_period(Some(v));
            }
            if let Some(v) = self.cpu_rt_runtime {
                c.set_realtime_runtime(Some(v));
            }
            if let Some(v) = &self.cpuset_cpus {
                c.set_cpus(Some(v.clone()));
            }
            if let Some(v) = &self.cpuset_mems {
                c.set_mems(Some(v.clone()));
            }
            r.set_cpu(Some(c));
        }
        if let Some(v) = self.pids_limit {
            let mut p = LinuxPids::default();
            p.set_limit(v);
            r.set_pids(Some(p));
        }
        if let Some(w) = self.blkio_weight {
            let mut b = r.block_io().clone().unwrap_or_default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-5m").is_err());
    }
}
