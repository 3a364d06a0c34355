//! Flags + daemon.json → the engine's configuration; then the daemon's life: lock, listen,
//! serve, shut down.

use crate::Flags;
use anyhow::{bail, Context, Result};
use berth_api::Listener;
use berth_engine::{Engine, EngineConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DaemonJson {
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    hosts: Option<Vec<String>>,
    pidfile: Option<PathBuf>,
    insecure_registries: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
    default_runtime: Option<String>,
    runtimes: Option<BTreeMap<String, RuntimeEntry>>,
    log_level: Option<String>,
    live_restore: Option<bool>,
    debug: Option<bool>,
    bridge: Option<String>,
    bip: Option<String>,
    default_address_pools: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct RuntimeEntry {
    path: PathBuf,
    #[serde(default, rename = "runtimeArgs")]
    args: Vec<String>,
}

pub struct Resolved {
    pub engine: EngineConfig,
    pub hosts: Vec<String>,
    pub pidfile: PathBuf,
    pub log_level: String,
}

/// A binary installed next to berthd, else on PATH.
fn sibling(name: &str) -> Option<PathBuf> {
    if let Ok(me) = std::env::current_exe() {
        if let Some(dir) = me.parent() {
            let p = dir.join(name);
            if p.exists() {
                return Some(p);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    })
}

pub fn resolve(flags: &Flags) -> Result<Resolved> {
    let dj: DaemonJson = match std::fs::read(&flags.config_file) {
        Ok(data) => {
            let de = &mut serde_json::Deserializer::from_slice(&data);
            serde_path_to_error_free(de).with_context(|| {
                format!(
                    "unable to configure the daemon with file {}",
                    flags.config_file.display()
                )
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DaemonJson::default(),
        Err(e) => return Err(e).context(format!("reading {}", flags.config_file.display())),
    };
    let data_root = flags
        .data_root
        .clone()
        .or(dj.data_root)
        .unwrap_or_else(|| "/var/lib/berth".into());
    let exec_root = flags
        .exec_root
        .clone()
        .or(dj.exec_root)
        .unwrap_or_else(|| "/run/berth".into());
    let mut engine = EngineConfig::new(absolute(&data_root)?, absolute(&exec_root)?);
    if let Some(rt) = sibling("berth-runtime") {
        engine.runtimes.insert("berth-runtime".into(), rt.clone());
        engine.runtimes.insert("berth".into(), rt);
    }
    for name in ["runc", "crun"] {
        if let Some(p) = sibling(name) {
            engine.runtimes.insert(name.into(), p);
        }
    }
    for (name, r) in dj.runtimes.unwrap_or_default() {
        if !r.args.is_empty() {
            engine.runtime_args.insert(name.clone(), r.args);
        }
        engine.runtimes.insert(name, r.path);
    }
    for a in &flags.add_runtimes {
        let (n, p) = a
            .split_once('=')
            .with_context(|| format!("--add-runtime {a:?}: expected NAME=PATH"))?;
        engine.runtimes.insert(n.into(), p.into());
    }
    engine.default_runtime = flags
        .default_runtime
        .clone()
        .or(dj.default_runtime)
        .unwrap_or_else(|| "berth-runtime".into());
    if !engine.runtimes.contains_key(&engine.default_runtime) {
        bail!(
            "the default runtime {:?} is not configured (known: {}); install berth-runtime next to berthd or add it with --add-runtime",
            engine.default_runtime,
            engine.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    engine.monitor =
        sibling("berth-monitor").context("berth-monitor not found next to berthd or on PATH")?;
    engine.insecure_registries = [
        flags.insecure_registries.clone(),
        dj.insecure_registries.unwrap_or_default(),
    ]
    .concat();
    engine.registry_mirrors = [
        flags.registry_mirrors.clone(),
        dj.registry_mirrors.unwrap_or_default(),
    ]
    .concat();
    engine.live_restore = flags.live_restore.or(dj.live_restore).unwrap_or(true);
    if let Some(b) = flags.bridge.clone().or(dj.bridge) {
        // Two daemons on one host must not share a bridge or a NAT table: each owns and
        // reconciles its own, so the table is named after the bridge.
        let safe: String = b
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        engine.nft_table = if b == "berth0" {
            "berth".to_string()
        } else {
            format!("berth_{safe}")
        };
        engine.bridge_name = b;
    }
    if let Some(b) = flags.bip.clone().or(dj.bip) {
        engine.default_bridge_subnet = b;
    }
    if let Some(p) = flags.default_address_pool.clone() {
        engine.default_address_pool = p;
    } else if let Some(pools) = dj.default_address_pools {
        if let Some(base) = pools
            .first()
            .and_then(|p| p.get("base"))
            .and_then(|b| b.as_str())
        {
            engine.default_address_pool = base.to_string();
        }
    }
    let mut hosts = flags.hosts.clone();
    if hosts.is_empty() {
        hosts = dj.hosts.unwrap_or_default();
    }
    if hosts.is_empty() {
        hosts.push("unix:///run/berth/berth.sock".into());
    }
    let log_level = if flags.debug || dj.debug == Some(true) {
        "debug".to_string()
    } else {
        flags
            .log_level
            .clone()
            .or(dj.log_level)
            .unwrap_or_else(|| "info".into())
    };
    if !matches!(
        log_level.as_str(),
        "debug" | "info" | "warn" | "error" | "fatal" | "trace"
    ) {
        bail!("unable to configure the daemon: invalid log level {log_level:?}");
    }
    let pidfile = flags
        .pidfile
        .clone()
        .or(dj.pidfile)
        .unwrap_or_else(|| engine.exec_root.join("berthd.pid"));
    Ok(Resolved {
        engine,
        hosts,
        pidfile,
        log_level,
    })
}

fn serde_path_to_error_free(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<DaemonJson> {
    DaemonJson::deserialize(de).map_err(|e| anyhow::anyhow!("{e}"))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

async fn listen(host: &str) -> Result<(Listener, Option<PathBuf>)> {
    if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // We hold the data-root lock, so a socket file here is a dead daemon's.
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path)
            .with_context(|| format!("listening on {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        if let Some(gid) = group_id("berth") {
            let _ = rustix::fs::chown(&path, None, Some(rustix::fs::Gid::from_raw(gid)));
        }
        return Ok((Listener::Unix(l), Some(path)));
    }
    if let Some(addr) = host.strip_prefix("tcp://") {
        let sa: std::net::SocketAddr = addr
            .parse()
            .with_context(|| format!("invalid tcp address {addr:?}"))?;
        if !sa.ip().is_loopback() {
            bail!("refusing to serve the Engine API without TLS on a non-loopback address {sa}");
        }
        let l = tokio::net::TcpListener::bind(sa)
            .await
            .with_context(|| format!("listening on {sa}"))?;
        return Ok((Listener::Tcp(l), None));
    }
    bail!("invalid host {host:?}: expected unix:///path or tcp://127.0.0.1:PORT")
}

fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

pub async fn run(cfg: Resolved) -> Result<()> {
    let root = &cfg.engine.data_root;
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let lock_path = root.join("berthd.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "another berthd is already running with data root {}",
            root.display()
        );
    }
    crate::exec_root::prepare(&cfg.engine.exec_root)?;
    if let Some(dir) = cfg.pidfile.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&cfg.pidfile, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", cfg.pidfile.display()))?;
    let engine = Engine::open(cfg.engine.clone())
        .await
        .context("opening the daemon's state")?;
    let mut listeners = Vec::new();
    let mut sockets = Vec::new();
    for h in &cfg.hosts {
        let (l, path) = listen(h).await?;
        listeners.push(l);
        sockets.extend(path);
        tracing::info!(host = %h, "API listening");
    }
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down; containers keep running");
    };
    berth_api::serve(engine.clone(), listeners, shutdown).await;
    engine.shutdown().await;
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
    let _ = std::fs::remove_file(&cfg.pidfile);
    let counts = engine.containers.counts();
    let exec_root = cfg.engine.exec_root.clone();
    let _ = tokio::task::spawn_blocking(move || {
        crate::exec_root::release(&exec_root, counts.running + counts.paused > 0)
    })
    .await;
    drop(lock);
    Ok(())
}
