//! `docker top` and `docker stats`, read from the container's cgroup and /proc.

use super::Containers;
use crate::error::{Error, Result};
use serde_json::{json, Value};

impl Containers {
    fn cgroup_of(&self, id: &str, parent: &str) -> Result<berth_cgroups::Cgroup> {
        let path = format!(
            "{}/{}",
            if parent.is_empty() { "/berth" } else { parent },
            id
        );
        berth_cgroups::Cgroup::for_container(Some(&path), id)
            .map_err(|e| Error::internal("locating the container's cgroup", e))
    }

    /// `GET /containers/{id}/top`: `ps` on the host, rows limited to the container's pids.
    pub async fn top(&self, name_or_id: &str, ps_args: &str) -> Result<Value> {
        let c = self.get(name_or_id)?.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let cg = self.cgroup_of(&c.id, &c.host_config.cgroup_parent)?;
        let pids: Vec<i32> = cg
            .pids()
            .map_err(|e| Error::internal("reading the container's pids", e))?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.split_whitespace().map(str::to_string).collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| Error::internal("running ps", e))?;
        if !out.status.success() {
            return Err(Error::invalid(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or("");
        let titles: Vec<&str> = header.split_whitespace().collect();
        let pid_col = titles
            .iter()
            .position(|t| *t == "PID")
            .ok_or_else(|| Error::invalid("Couldn't find PID field in ps output"))?;
        let mut procs = Vec::new();
        for l in lines {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() < titles.len() {
                continue;
            }
            let Ok(pid) = fields[pid_col].parse::<i32>() else {
                continue;
            };
            if !pids.contains(&pid) {
                continue;
            }
            // The last column (the command) keeps its spaces.
            let mut row: Vec<String> = fields[..titles.len() - 1]
                .iter()
                .map(|s| s.to_string())
                .collect();
            row.push(fields[titles.len() - 1..].join(" "));
            procs.push(row);
        }
        Ok(json!({ "Titles": titles, "Processes": procs }))
    }

    /// One sample of `GET /containers/{id}/stats` (Docker's field names; v1 and v2 cgroups).
    pub fn stats_sample(&self, name_or_id: &str, pre: Option<&Value>) -> Result<Value> {
        let c = self.get(name_or_id)?.snapshot();
        let now = crate::time::now_rfc3339();
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let empty_pre = json!({ "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 }, "system_cpu_usage": 0, "online_cpus": ncpu, "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 } });
        if !c.state.running {
            return Ok(json!({
                "name": format!("/{}", c.name), "id": c.id, "read": crate::time::ZERO, "preread": crate::time::ZERO,
                "pids_stats": {}, "blkio_stats": {}, "num_procs": 0, "storage_stats": {},
                "cpu_stats": empty_pre.clone(), "precpu_stats": empty_pre, "memory_stats": {},
            }));
        }
        let cg = self.cgroup_of(&c.id, &c.host_config.cgroup_parent)?;
        let s = cg
            .stats()
            .map_err(|e| Error::internal("reading cgroup stats", e))?;
        let system = system_cpu_usage();
        let io: Vec<Value> = s
            .io
            .iter()
            .map(|e| json!({ "major": e.major, "minor": e.minor, "op": e.op, "value": e.bytes }))
            .collect();
        let cpu = json!({
            "cpu_usage": {
                "total_usage": s.cpu.usage_total,
                "percpu_usage": s.cpu.per_cpu,
                "usage_in_kernelmode": s.cpu.usage_kernel,
                "usage_in_usermode": s.cpu.usage_user,
            },
            "system_cpu_usage": system,
            "online_cpus": ncpu,
            "throttling_data": { "periods": s.cpu.periods, "throttled_periods": s.cpu.throttled_periods, "throttled_time": s.cpu.throttled_time },
        });
        let host_mem = host_mem_total();
        let (pre_cpu, preread) = match pre {
            Some(p) => (
                p.get("cpu_stats").cloned().unwrap_or(empty_pre.clone()),
                p.get("read").cloned().unwrap_or(json!(crate::time::ZERO)),
            ),
            None => (empty_pre, json!(crate::time::ZERO)),
        };
        let mut sample = json!({
            "name": format!("/{}", c.name),
            "id": c.id,
            "read": now,
            "preread": preread,
            "pids_stats": { "current": s.pids.current, "limit": s.pids.limit },
            "blkio_stats": { "io_service_bytes_recursive": io, "io_serviced_recursive": null, "io_queue_recursive": null,
                             "io_service_time_recursive": null, "io_wait_time_recursive": null, "io_merged_recursive": null,
                             "io_time_recursive": null, "sectors_recursive": null },
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": cpu,
            "precpu_stats": pre_cpu,
            "memory_stats": {
                "usage": s.memory.usage,
                "max_usage": s.memory.max_usage,
                "failcnt": s.memory.failcnt,
                "stats": s.memory.stat,
                "limit": s.memory.limit.filter(|l| *l < host_mem).unwrap_or(host_mem),
            },
        });
        // A container in the host's network namespace reports no networks, as in Docker.
        if c.network_mode() != "host" {
            if let Some(nets) = std::fs::read_to_string(format!("/proc/{}/net/dev", c.state.pid))
                .ok()
                .map(|t| net_dev(&t))
                .filter(|n| !n.is_empty())
            {
                sample["networks"] = Value::Object(nets);
            }
        }
        Ok(sample)
    }
}

/// `networks` of a stats sample from /proc/PID/net/dev, which shows the namespace of PID:
/// each interface but loopback, with Docker's counter names.
fn net_dev(text: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let v: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if name == "lo" || v.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
            }),
        );
    }
    out
}

/// Host CPU time in nanoseconds, as Docker computes it from /proc/stat.
fn system_cpu_usage() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = s.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    let hz = 100u64; // USER_HZ on Linux
    ticks * (1_000_000_000 / hz)
}

fn host_mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn net_dev_counters_by_interface_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    1070      12    1    2    0     0          0         0      336       4    3    4    0     0       0          0
";
        let n = super::net_dev(text);
        assert_eq!(n.len(), 1);
        assert_eq!(n["eth0"]["rx_bytes"], 1070);
        assert_eq!(n["eth0"]["rx_dropped"], 2);
        assert_eq!(n["eth0"]["tx_bytes"], 336);
        assert_eq!(n["eth0"]["tx_dropped"], 4);
    }
}
