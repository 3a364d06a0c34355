//! `create` and `run`: docker's flags turned into a ContainerCreate body
//! (Config + HostConfig + NetworkingConfig), pulling the image when missing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use clap::{ArgAction, Args};
use serde_json::{json, Map, Value};

use super::stdio::{self, StreamEnd, StreamOpts, DEFAULT_DETACH_KEYS};
use super::{image, out, Ctx, Fail};
use crate::client::{read_all, ClientError, Query};
use crate::format::units;
use crate::reference::Reference;

#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateOpts {
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container and its volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount a volume (SRC:DST[:OPTS] or DST)
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=,target=,readonly)
    #[arg(long)]
    pub mount: Vec<String>,
    /// Publish a container's port(s) to the host ([IP:][HOSTPORT:]PORT[/PROTO])
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Connect a container to a network
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:N])
    #[arg(long)]
    pub restart: Option<String>,
    /// Memory limit (e.g. 512m)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 for unlimited
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Mount a tmpfs directory (PATH[:OPTS])
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMS]])
    #[arg(long)]
    pub device: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Sysctl options (key=value)
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Write the container ID to the file
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Attach to STDIN, STDOUT or STDERR (default: STDOUT and STDERR, plus STDIN with -i)
    #[arg(short = 'a', long = "attach", value_parser = ["stdin", "stdout", "stderr"])]
    pub attach: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<PathBuf>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Image to create the container from
    pub image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub opts: CreateOpts,
}

fn kv_list(items: &[String]) -> Map<String, Value> {
    items
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), Value::String(v.to_string())),
            None => (l.to_string(), Value::String(String::new())),
        })
        .collect()
}

/// `-e KEY` takes KEY from our environment (dropped when unset), as docker does.
fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_string());
    }
    std::env::var(e).ok().map(|v| format!("{e}={v}"))
}

fn read_env_file(p: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(p).with_context(|| format!("open {}", p.display()))?;
    Ok(text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(env_entry)
        .collect())
}

/// `[ip:][hostPort:]containerPort[/proto]` → ("80/tcp", binding).
fn parse_publish(p: &str) -> anyhow::Result<(String, Value)> {
    let (spec, proto) = p.rsplit_once('/').unwrap_or((p, "tcp"));
    // IPv6 addresses come bracketed: [::1]:8080:80
    let (ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| anyhow!("invalid port spec {p:?}"))?;
        (ip.to_string(), r.to_string())
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), spec.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => bail!("invalid port spec {p:?}"),
        }
    };
    let (host_port, cport) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest),
    };
    if cport.is_empty() || !cport.chars().all(|c| c.is_ascii_digit() || c == '-') {
        bail!("invalid containerPort: {cport}");
    }
    Ok((
        format!("{cport}/{proto}"),
        json!({"HostIp": ip, "HostPort": host_port}),
    ))
}

fn parse_mount(spec: &str) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut typ = "volume".to_string();
    let mut bind = Map::new();
    let mut vol = Map::new();
    let mut tmpfs = Map::new();
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), v.to_string()),
            None => (field.trim().to_lowercase(), String::new()),
        };
        match k.as_str() {
            "type" => typ = v,
            "source" | "src" => {
                m.insert("Source".into(), Value::String(v));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), Value::String(v));
            }
            "readonly" | "ro" => {
                let ro = v.is_empty() || v == "true" || v == "1";
                m.insert("ReadOnly".into(), Value::Bool(ro));
            }
            "consistency" => {
                m.insert("Consistency".into(), Value::String(v));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), Value::String(v));
            }
            "volume-nocopy" => {
                vol.insert("NoCopy".into(), Value::Bool(v.is_empty() || v == "true"));
            }
            "volume-driver" => {
                vol.insert("DriverConfig".into(), json!({"Name": v}));
            }
            "tmpfs-size" => {
                let n = units::parse_ram(&v).ok_or_else(|| anyhow!("invalid tmpfs-size {v:?}"))?;
                tmpfs.insert("SizeBytes".into(), Value::from(n));
            }
            "tmpfs-mode" => {
                let n =
                    u32::from_str_radix(&v, 8).map_err(|_| anyhow!("invalid tmpfs-mode {v:?}"))?;
                tmpfs.insert("Mode".into(), Value::from(n));
            }
            _ => bail!("unexpected key '{k}' in '{field}'"),
        }
    }
    if !m.contains_key("Target") {
        bail!("target is required");
    }
    m.insert("Type".into(), Value::String(typ.clone()));
    match typ.as_str() {
        "bind" if !bind.is_empty() => {
            m.insert("BindOptions".into(), Value::Object(bind));
        }
        "volume" if !vol.is_empty() => {
            m.insert("VolumeOptions".into(), Value::Object(vol));
        }
        "tmpfs" if !tmpfs.is_empty() => {
            m.insert("TmpfsOptions".into(), Value::Object(tmpfs));
        }
        _ => {}
    }
    Ok(Value::Object(m))
}

fn parse_restart(s: &str) -> anyhow::Result<Value> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (
            n,
            c.parse::<i64>().map_err(|_| {
                anyhow!("invalid restart policy format: maximum retry count must be an integer")
            })?,
        ),
        None => (s, 0),
    };
    match name {
        "no" | "" | "always" | "unless-stopped" | "on-failure" => {}
        _ => bail!("invalid restart policy format: unknown policy {name:?}"),
    }
    Ok(json!({"Name": if name.is_empty() { "no" } else { name }, "MaximumRetryCount": count}))
}

fn parse_ulimit(s: &str) -> anyhow::Result<Value> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid ulimit argument: {s}"))?;
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (a, b),
        None => (vals, vals),
    };
    let n = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| anyhow!("invalid ulimit argument: {s}"))
    };
    Ok(json!({"Name": name, "Soft": n(soft)?, "Hard": n(hard)?}))
}

fn parse_device(s: &str) -> Value {
    let parts: Vec<&str> = s.split(':').collect();
    let host = parts[0];
    let (cont, perms) = match parts.len() {
        1 => (host, "rwm"),
        2 if parts[1].chars().all(|c| "rwm".contains(c)) => (host, parts[1]),
        2 => (parts[1], "rwm"),
        _ => (parts[1], parts[2]),
    };
    json!({"PathOnHost": host, "PathInContainer": cont, "CgroupPermissions": perms})
}

/// Absolute host paths for `-v ./dir:/x` (docker resolves relative sources starting with `.`).
fn bind_source(v: &str) -> anyhow::Result<String> {
    if v.starts_with('.') {
        let (src, rest) = v.split_once(':').unwrap_or((v, ""));
        let abs = std::env::current_dir()?.join(src);
        let abs = abs.to_string_lossy().to_string();
        return Ok(if rest.is_empty() {
            abs
        } else {
            format!("{abs}:{rest}")
        });
    }
    Ok(v.to_string())
}

/// docker sends a seccomp profile's content, not its path.
fn security_opt(o: &str) -> anyhow::Result<String> {
    if let Some(p) = o
        .strip_prefix("seccomp=")
        .or_else(|| o.strip_prefix("seccomp:"))
    {
        if p != "unconfined" && p != "builtin" {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("opening seccomp profile ({p}) failed"))?;
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing seccomp profile {p}"))?;
            return Ok(format!("seccomp={v}"));
        }
    }
    Ok(o.to_string())
}

/// Which of stdin, stdout, stderr a foreground run attaches.
pub fn attached_streams(o: &CreateOpts) -> (bool, bool, bool) {
    if o.attach.is_empty() {
        return (o.interactive, true, true);
    }
    let has = |s: &str| o.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
    (has("stdin"), has("stdout"), has("stderr"))
}

fn go_duration_ns(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_ref()
        .map(|s| {
            units::parse_go_duration(s)
                .map(|secs| (secs * 1e9) as i64)
                .ok_or_else(|| {
                    anyhow!("invalid argument {s:?} for {flag}: expected a duration such as 30s")
                })
        })
        .transpose()
}

fn healthcheck(o: &CreateOpts) -> anyhow::Result<Option<Value>> {
    let tuned = o.health_interval.is_some()
        || o.health_timeout.is_some()
        || o.health_retries.is_some()
        || o.health_start_period.is_some();
    if o.no_healthcheck {
        if o.health_cmd.is_some() || tuned {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(Some(json!({"Test": ["NONE"]})));
    }
    if o.health_cmd.is_none() && !tuned {
        return Ok(None);
    }
    let mut h = Map::new();
    if let Some(c) = &o.health_cmd {
        h.insert("Test".into(), json!(["CMD-SHELL", c]));
    }
    for (flag, v, key) in [
        ("--health-interval", &o.health_interval, "Interval"),
        ("--health-timeout", &o.health_timeout, "Timeout"),
        (
            "--health-start-period",
            &o.health_start_period,
            "StartPeriod",
        ),
    ] {
        if let Some(ns) = go_duration_ns(flag, v)? {
            h.insert(key.into(), json!(ns));
        }
    }
    if let Some(r) = o.health_retries {
        h.insert("Retries".into(), json!(r));
    }
    Ok(Some(Value::Object(h)))
}

fn read_label_files(files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("open {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(out)
}

/// The ContainerCreate body docker would send for these flags.
pub fn create_body(o: &CreateOpts, attach: bool) -> anyhow::Result<Value> {
    let (att_in, att_out, att_err) = attached_streams(o);
    let mut env = Vec::new();
    for f in &o.env_file {
        env.extend(read_env_file(f)?);
    }
    env.extend(o.env.iter().filter_map(|e| env_entry(e)));

    let mut exposed = Map::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in &o.publish {
        let (port, b) = parse_publish(p)?;
        exposed.insert(port.clone(), json!({}));
        bindings.entry(port).or_default().push(b);
    }
    for e in &o.expose {
        let port = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        exposed.insert(port, json!({}));
    }

    let mut binds = Vec::new();
    let mut volumes = Map::new();
    for v in &o.volume {
        if v.contains(':') {
            binds.push(bind_source(v)?);
        } else {
            volumes.insert(v.clone(), json!({}));
        }
    }
    let mounts = o
        .mount
        .iter()
        .map(|m| parse_mount(m))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let tmpfs: Map<String, Value> = o
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((p, opts)) => (p.to_string(), Value::String(opts.to_string())),
            None => (t.clone(), Value::String(String::new())),
        })
        .collect();

    let entrypoint = o.entrypoint.as_ref().map(|e| {
        if e.is_empty() {
            vec![String::new()]
        } else {
            vec![e.clone()]
        }
    });
    let network = o.network.clone().unwrap_or_else(|| "default".to_string());
    let security_opt = o
        .security_opt
        .iter()
        .map(|s| security_opt(s))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut config = json!({
        "Hostname": o.hostname.clone().unwrap_or_default(),
        "Domainname": o.domainname.clone().unwrap_or_default(),
        "User": o.user.clone().unwrap_or_default(),
        "AttachStdin": attach && att_in,
        "AttachStdout": attach && att_out,
        "AttachStderr": attach && att_err,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": attach && att_in,
        "Env": env,
        "Cmd": if o.command.is_empty() { Value::Null } else { json!(o.command) },
        "Image": o.image,
        "Volumes": if volumes.is_empty() { Value::Null } else { Value::Object(volumes) },
        "WorkingDir": o.workdir.clone().unwrap_or_default(),
        "Entrypoint": entrypoint,
        "Labels": kv_list(&[read_label_files(&o.label_file)?, o.label.clone()].concat()),
    });
    if !exposed.is_empty() {
        config["ExposedPorts"] = Value::Object(exposed);
    }
    if let Some(s) = &o.stop_signal {
        config["StopSignal"] = json!(s);
    }
    if let Some(h) = healthcheck(o)? {
        config["Healthcheck"] = h;
    }
    if let Some(t) = o.stop_timeout {
        config["StopTimeout"] = json!(t);
    }

    let mut host = json!({
        "Binds": binds,
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": parse_restart(o.restart.as_deref().unwrap_or("no"))?,
        "AutoRemove": o.rm,
        "CapAdd": o.cap_add,
        "CapDrop": o.cap_drop,
        "Dns": o.dns,
        "DnsOptions": o.dns_option,
        "DnsSearch": o.dns_search,
        "ExtraHosts": o.add_host,
        "GroupAdd": o.group_add,
        "Privileged": o.privileged,
        "PublishAllPorts": o.publish_all,
        "ReadonlyRootfs": o.read_only,
        "SecurityOpt": security_opt,
        "Tmpfs": tmpfs,
        "Mounts": mounts,
        "Ulimits": o.ulimit.iter().map(|u| parse_ulimit(u)).collect::<anyhow::Result<Vec<_>>>()?,
        "Devices": o.device.iter().map(|d| parse_device(d)).collect::<Vec<_>>(),
        "Sysctls": kv_list(&o.sysctl),
        "LogConfig": {"Type": o.log_driver.clone().unwrap_or_default(), "Config": kv_list(&o.log_opt)},
    });
    let h = host
        .as_object_mut()
        .ok_or_else(|| anyhow!("internal: host config"))?;
    if o.init {
        h.insert("Init".into(), json!(true));
    }
    if let Some(m) = &o.memory {
        h.insert(
            "Memory".into(),
            json!(units::parse_ram(m).ok_or_else(|| anyhow!("invalid memory {m:?}"))?),
        );
    }
    if let Some(m) = &o.memory_swap {
        let v = if m == "-1" {
            -1
        } else {
            units::parse_ram(m).ok_or_else(|| anyhow!("invalid memory-swap {m:?}"))?
        };
        h.insert("MemorySwap".into(), json!(v));
    }
    if let Some(c) = o.cpus {
        h.insert("NanoCpus".into(), json!((c * 1e9).round() as i64));
    }
    if let Some(m) = &o.memory_reservation {
        let v = units::parse_ram(m).ok_or_else(|| anyhow!("invalid memory-reservation {m:?}"))?;
        h.insert("MemoryReservation".into(), json!(v));
    }
    if let Some(p) = o.cpu_period {
        h.insert("CpuPeriod".into(), json!(p));
    }
    if let Some(q) = o.cpu_quota {
        h.insert("CpuQuota".into(), json!(q));
    }
    if o.oom_kill_disable {
        h.insert("OomKillDisable".into(), json!(true));
    }
    if let Some(c) = o.cpu_shares {
        h.insert("CpuShares".into(), json!(c));
    }
    if let Some(c) = &o.cpuset_cpus {
        h.insert("CpusetCpus".into(), json!(c));
    }
    if let Some(p) = o.pids_limit {
        h.insert("PidsLimit".into(), json!(p));
    }
    if let Some(s) = &o.shm_size {
        h.insert(
            "ShmSize".into(),
            json!(units::parse_ram(s).ok_or_else(|| anyhow!("invalid shm-size {s:?}"))?),
        );
    }
    for (flag, key) in [
        (&o.pid, "PidMode"),
        (&o.ipc, "IpcMode"),
        (&o.uts, "UTSMode"),
        (&o.userns, "UsernsMode"),
        (&o.cgroupns, "CgroupnsMode"),
        (&o.cgroup_parent, "CgroupParent"),
        (&o.runtime, "Runtime"),
    ] {
        if let Some(v) = flag {
            h.insert(key.into(), json!(v));
        }
    }

    let mut endpoints = Map::new();
    if !o.network_alias.is_empty() || o.ip.is_some() {
        let mut ep = json!({"Aliases": o.network_alias});
        if let Some(ip) = &o.ip {
            ep["IPAMConfig"] = json!({"IPv4Address": ip});
        }
        endpoints.insert(network.clone(), ep);
    }

    let mut body = config;
    body["HostConfig"] = host;
    body["NetworkingConfig"] = json!({"EndpointsConfig": endpoints});
    Ok(body)
}

/// Creates the container, pulling the image first when the daemon lacks it
/// (or always with `--pull always`). Returns the new ID.
pub async fn create(ctx: &Ctx, o: &CreateOpts, attach: bool) -> anyhow::Result<String> {
    let body = create_body(o, attach).map_err(|e| Fail {
        code: 125,
        msg: format!("{e:#}"),
    })?;
    let reference = Reference::parse(&o.image).map_err(|e| Fail {
        code: 125,
        msg: e.to_string(),
    })?;
    let query = Query::new()
        .opt("name", o.name.clone())
        .opt("platform", o.platform.clone());
    if o.pull == "always" {
        pull_for_run(ctx, o, &reference).await?;
    }
    let mut result = ctx
        .client
        .post_json::<Value>("/containers/create", &query, Some(&body))
        .await;
    if let Err(e) = &result {
        if e.is_not_found() && o.pull != "never" && is_missing_image(e) {
            eprintln!("Unable to find image '{}' locally", display_ref(&reference));
            pull_for_run(ctx, o, &reference).await?;
            result = ctx
                .client
                .post_json::<Value>("/containers/create", &query, Some(&body))
                .await;
        }
    }
    let created = result.map_err(daemon_fail)?;
    for w in created
        .get("Warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    let id = created
        .get("Id")
        .and_then(Value::as_str)
        .ok_or_else(|| Fail {
            code: 125,
            msg: "the daemon returned no container ID".into(),
        })?
        .to_string();
    if let Some(p) = &o.cidfile {
        std::fs::write(p, &id).map_err(|e| Fail {
            code: 125,
            msg: format!("failed to write the container ID to {}: {e}", p.display()),
        })?;
    }
    Ok(id)
}

fn is_missing_image(e: &ClientError) -> bool {
    match e {
        ClientError::Daemon { message, .. } => {
            let m = message.to_lowercase();
            m.contains("no such image") || m.contains("not found")
        }
        _ => false,
    }
}

/// `busybox:latest` as docker names it in "Unable to find image".
fn display_ref(r: &Reference) -> String {
    match &r.digest {
        Some(d) => format!("{}@{d}", r.familiar_repo()),
        None => format!(
            "{}:{}",
            r.familiar_repo(),
            r.tag.as_deref().unwrap_or("latest")
        ),
    }
}

async fn pull_for_run(ctx: &Ctx, o: &CreateOpts, r: &Reference) -> anyhow::Result<()> {
    image::pull(
        ctx,
        r,
        o.platform.as_deref(),
        o.quiet,
        crate::progress::Target::Stderr,
    )
    .await
    .map_err(|e| {
        Fail {
            code: 125,
            msg: super::error_line(&e),
        }
        .into()
    })
}

pub fn daemon_fail(e: ClientError) -> anyhow::Error {
    Fail {
        code: 125,
        msg: e.to_string(),
    }
    .into()
}

pub async fn create_cmd(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<()> {
    let id = create(ctx, &a.opts, false).await?;
    out(&format!("{id}\n"));
    Ok(())
}

/// docker's exit status for a failed start: 126 cannot invoke, 127 not found.
fn start_fail(e: ClientError) -> anyhow::Error {
    let msg = e.to_string();
    let lower = msg.to_lowercase();
    let code = if lower.contains("executable file not found")
        || lower.contains("no such file or directory")
        || lower.contains("not found in $path")
    {
        127
    } else if lower.contains("permission denied")
        || lower.contains("cannot execute")
        || lower.contains("exec format error")
    {
        126
    } else {
        125
    };
    Fail { code, msg }.into()
}

pub async fn run(ctx: &Ctx, a: RunArgs) -> anyhow::Result<()> {
    let o = &a.opts;
    let detach_keys_str = a
        .detach_keys
        .clone()
        .unwrap_or_else(|| DEFAULT_DETACH_KEYS.to_string());
    let detach_keys = crate::tty::parse_detach_keys(&detach_keys_str).map_err(|e| Fail {
        code: 125,
        msg: e.to_string(),
    })?;
    if a.detach {
        let id = create(ctx, o, false).await?;
        ctx.client
            .post(&format!("/containers/{id}/start"), &Query::new(), None)
            .await
            .map_err(start_fail)?;
        out(&format!("{id}\n"));
        return Ok(());
    }
    if o.tty && o.interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Fail {
            code: 1,
            msg: "the input device is not a TTY".into(),
        }
        .into());
    }
    let id = create(ctx, o, true).await?;
    let client = &ctx.client;

    let (att_in, att_out, att_err) = attached_streams(o);
    let mut q = Query::new()
        .set("stream", "1")
        .flag("stdout", att_out)
        .flag("stderr", att_err)
        .flag("stdin", att_in);
    if a.detach_keys.is_some() {
        q = q.set("detachKeys", detach_keys_str.clone());
    }
    let io = client
        .hijack(&format!("/containers/{id}/attach"), &q, None)
        .await
        .map_err(daemon_fail)?;

    // Registered before start so a fast exit is not missed.
    let condition = if o.rm { "removed" } else { "next-exit" };
    let wait = client
        .post(
            &format!("/containers/{id}/wait"),
            &Query::new().set("condition", condition),
            None,
        )
        .await
        .map_err(daemon_fail)?;

    let raw = if o.tty && o.interactive {
        crate::tty::RawGuard::stdin()?
    } else {
        None
    };
    if let Err(e) = client
        .post(&format!("/containers/{id}/start"), &Query::new(), None)
        .await
    {
        drop(raw);
        if o.rm {
            let _ = client
                .delete(
                    &format!("/containers/{id}"),
                    &Query::new().set("force", "1"),
                )
                .await;
        }
        return Err(start_fail(e));
    }
    let resizer = o
        .tty
        .then(|| stdio::spawn_resizer(client.clone(), format!("/containers/{id}/resize")));
    let proxy = (a.sig_proxy && !o.tty).then(|| stdio::spawn_sig_proxy(client.clone(), id.clone()));
    let opts = StreamOpts {
        tty: o.tty,
        stdin: att_in,
        detach_keys,
    };
    let end = stdio::pump(io, &opts).await;
    if let Some(r) = resizer {
        r.abort();
    }
    drop(raw);
    let end = end?;
    if end != StreamEnd::Eof {
        if let Some(p) = proxy {
            p.abort();
        }
        return end.early_result();
    }
    let status = wait_status(read_all(wait).await.map_err(daemon_fail)?)?;
    if let Some(p) = proxy {
        p.abort();
    }
    if status != 0 {
        return Err(Fail::exit(status));
    }
    Ok(())
}

/// The exit status in a wait answer (`{"StatusCode":N,"Error":{...}}`).
pub fn wait_status(body: bytes::Bytes) -> anyhow::Result<i32> {
    let v: Value = serde_json::from_slice(&body).map_err(|e| Fail {
        code: 125,
        msg: format!("cannot decode wait result: {e}"),
    })?;
    if let Some(m) = v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
    {
        if !m.is_empty() {
            return Err(Fail {
                code: 125,
                msg: m.to_string(),
            }
            .into());
        }
    }
    Ok(v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        o: CreateOpts,
    }

    fn body(args: &[&str]) -> Value {
        let mut v = vec!["x"];
        v.extend_from_slice(args);
        create_body(&T::parse_from(v).o, true).unwrap()
    }

    #[test]
    fn flags_map_to_create_body() {
        let b = body(&[
            "--name",
            "n",
            "-e",
            "A=1",
            "-p",
            "127.0.0.1:8080:80",
            "-p",
            "53/udp",
            "-v",
            "/h:/c:ro",
            "-v",
            "/anon",
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--pids-limit",
            "10",
            "--restart",
            "on-failure:3",
            "--rm",
            "-h",
            "hn",
            "-l",
            "k=v",
            "--tmpfs",
            "/run:size=1m",
            "--network",
            "none",
            "--network-alias",
            "a",
            "--init",
            "-it",
            "busybox",
            "sh",
            "-c",
            "echo hi",
        ]);
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Tty"], true);
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["Hostname"], "hn");
        assert_eq!(b["Labels"], json!({"k": "v"}));
        assert_eq!(b["Volumes"], json!({"/anon": {}}));
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        let h = &b["HostConfig"];
        assert_eq!(
            h["PortBindings"]["80/tcp"],
            json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}])
        );
        assert_eq!(
            h["PortBindings"]["53/udp"],
            json!([{"HostIp": "", "HostPort": ""}])
        );
        assert_eq!(h["Binds"], json!(["/h:/c:ro"]));
        assert_eq!(h["Memory"], 64 * 1024 * 1024);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(h["PidsLimit"], 10);
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(h["AutoRemove"], true);
        assert_eq!(h["Tmpfs"], json!({"/run": "size=1m"}));
        assert_eq!(h["NetworkMode"], "none");
        assert_eq!(h["Init"], true);
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"]["none"]["Aliases"],
            json!(["a"])
        );
    }

    #[test]
    fn health_attach_and_cpu_flags() {
        let b = body(&[
            "--health-cmd",
            "true",
            "--health-interval",
            "5s",
            "--health-retries",
            "2",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "--memory-reservation",
            "32m",
            "-a",
            "stderr",
            "img",
        ]);
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64, "Retries": 2})
        );
        assert_eq!(b["HostConfig"]["CpuQuota"], 50000);
        assert_eq!(b["HostConfig"]["CpuPeriod"], 100000);
        assert_eq!(b["HostConfig"]["MemoryReservation"], 32 * 1024 * 1024);
        assert_eq!(
            (b["AttachStdout"].clone(), b["AttachStderr"].clone()),
            (json!(false), json!(true))
        );
        assert_eq!(
            body(&["--no-healthcheck", "img"])["Healthcheck"],
            json!({"Test": ["NONE"]})
        );
        assert!(create_body(
            &T::parse_from(["x", "--no-healthcheck", "--health-cmd", "x", "img"]).o,
            true
        )
        .is_err());
    }

    #[test]
    fn mounts_and_entrypoint() {
        let b = body(&[
            "--mount",
            "type=bind,source=/a,target=/b,readonly",
            "--entrypoint",
            "",
            "img",
        ]);
        assert_eq!(
            b["HostConfig"]["Mounts"],
            json!([{"Source": "/a", "Target": "/b", "ReadOnly": true, "Type": "bind"}])
        );
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(b["Cmd"], Value::Null);
        assert!(parse_mount("type=bind,source=/a").is_err());
        assert!(parse_restart("sometimes").is_err());
    }
}
