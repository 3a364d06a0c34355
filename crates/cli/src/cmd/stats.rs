//! `stats`: CPU, memory, network and block I/O per container, computed from
//! the daemon's raw cgroup figures as docker does.

use std::io::IsTerminal;

use clap::Args;
use serde_json::{json, Value};

use super::{out, Ctx};
use crate::client::Query;
use crate::format::{self, short_id, units};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    pub containers: Vec<String>,
}

const TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn header() -> Value {
    json!({"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
        "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"})
}

/// One table row from a stats sample.
pub fn row(container: &str, s: &Value, trunc: bool) -> Value {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let cpu_delta = f(&s["cpu_stats"]["cpu_usage"]["total_usage"])
        - f(&s["precpu_stats"]["cpu_usage"]["total_usage"]);
    let sys_delta =
        f(&s["cpu_stats"]["system_cpu_usage"]) - f(&s["precpu_stats"]["system_cpu_usage"]);
    let online = s["cpu_stats"]["online_cpus"]
        .as_f64()
        .filter(|n| *n > 0.0)
        .or_else(|| {
            s["cpu_stats"]["cpu_usage"]["percpu_usage"]
                .as_array()
                .map(|a| a.len() as f64)
        })
        .unwrap_or(1.0);
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    let usage = f(&mem["usage"]);
    // docker subtracts the page cache: v1 total_inactive_file, v2 inactive_file
    let cache = mem["stats"]["total_inactive_file"]
        .as_f64()
        .or_else(|| mem["stats"]["inactive_file"].as_f64())
        .unwrap_or(0.0);
    let used = if cache < usage { usage - cache } else { usage };
    let limit = f(&mem["limit"]);
    let mem_pct = if limit > 0.0 {
        used / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in s["networks"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += f(&n["rx_bytes"]);
        tx += f(&n["tx_bytes"]);
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_lowercase).as_deref() {
            Some("read") => rd += f(&e["value"]),
            Some("write") => wr += f(&e["value"]),
            _ => {}
        }
    }
    let id = s["id"].as_str().unwrap_or(container);
    let hs = |x: f64| units::human_size_prec(x, 3);
    json!({
        "BlockIO": format!("{} / {}", hs(rd), hs(wr)),
        "CPUPerc": format!("{cpu:.2}%"),
        "Container": container,
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "MemPerc": format!("{mem_pct:.2}%"),
        "MemUsage": format!("{} / {}", units::bytes_size(used), units::bytes_size(limit)),
        "Name": s["name"].as_str().unwrap_or("").trim_start_matches('/'),
        "NetIO": format!("{} / {}", hs(rx), hs(tx)),
        "PIDs": s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

async fn sample(ctx: &Ctx, a: &StatsArgs) -> anyhow::Result<Vec<Value>> {
    let names: Vec<String> = if a.containers.is_empty() {
        let list: Vec<Value> = ctx
            .client
            .get_json("/containers/json", &Query::new().flag("all", a.all))
            .await?;
        list.iter()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect()
    } else {
        a.containers.clone()
    };
    let mut rows = Vec::new();
    for n in names {
        let s: Value = ctx
            .client
            .get_json(
                &format!("/containers/{n}/stats"),
                &Query::new().set("stream", "false"),
            )
            .await?;
        rows.push(row(&n, &s, !a.no_trunc));
    }
    Ok(rows)
}

pub async fn stats(ctx: &Ctx, a: StatsArgs) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    loop {
        let rows = sample(ctx, &a).await?;
        let text = format::render_rows(a.format.as_deref(), TABLE, &header(), &rows)?;
        if a.no_stream {
            out(&text);
            return Ok(());
        }
        if terminal {
            out(&redraw(&text));
        } else {
            // A pipe or file gets each table as plain text, for grep and logs.
            out(&text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The table drawn over the previous one from the top-left corner: each line
/// erases what an older, longer line left, and the rest of the screen is
/// cleared, so the screen is never blank between two samples.
fn redraw(text: &str) -> String {
    let mut s = String::from("\x1b[H");
    for line in text.lines() {
        s.push_str(line);
        s.push_str("\x1b[K\n");
    }
    s.push_str("\x1b[J");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_as_docker_computes_them() {
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 2097152, "limit": 8388608, "stats": {"total_inactive_file": 1048576}},
            "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}, {"op": "Write", "value": 0}]},
            "pids_stats": {"current": 3}
        });
        let r = row("web", &s, true);
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "1MiB / 8MiB");
        assert_eq!(r["MemPerc"], "12.50%");
        assert_eq!(r["NetIO"], "1kB / 2kB");
        assert_eq!(r["BlockIO"], "4.1kB / 0B");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["ID"], "0123456789ab");
    }

    #[test]
    fn redraw_overwrites_in_place() {
        assert_eq!(
            redraw("A   B\nx   y\n"),
            "\x1b[HA   B\x1b[K\nx   y\x1b[K\n\x1b[J"
        );
    }
}
