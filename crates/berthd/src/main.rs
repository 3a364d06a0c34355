//! berthd: the Berth daemon. Serves the Docker Engine API on a unix socket (and loopback TCP
//! if asked) and owns images, containers, networks and volumes.

mod config;
mod exec_root;

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "berthd",
    version,
    about = "The Berth daemon: a Docker Engine API server"
)]
pub struct Flags {
    /// Where to listen: unix:///path.sock or tcp://127.0.0.1:PORT (repeatable).
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Root of persistent state (images, containers, volumes, networks).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Root of runtime state (sockets, monitors, runtime state).
    #[arg(long)]
    pub exec_root: Option<PathBuf>,
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,
    /// daemon.json with data-root, insecure-registries, registry-mirrors, default-runtime,
    /// runtimes, log-level, live-restore.
    #[arg(long, default_value = "/etc/berth/daemon.json")]
    pub config_file: PathBuf,
    /// debug, info, warn, error, fatal.
    #[arg(short = 'l', long)]
    pub log_level: Option<String>,
    #[arg(short = 'D', long)]
    pub debug: bool,
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    #[arg(long)]
    pub default_runtime: Option<String>,
    /// NAME=PATH, repeatable: another OCI runtime (runc, crun) selectable per container.
    #[arg(long = "add-runtime")]
    pub add_runtimes: Vec<String>,
    /// Keep containers running while the daemon is down (the default).
    #[arg(long)]
    pub live_restore: Option<bool>,
    /// Name of the default bridge.
    #[arg(long)]
    pub bridge: Option<String>,
    /// CIDR user-defined networks take their subnets from.
    #[arg(long)]
    pub default_address_pool: Option<String>,
    /// Subnet of the default bridge network.
    #[arg(long)]
    pub bip: Option<String>,
}

fn main() -> Result<()> {
    let flags = Flags::parse();
    let cfg = config::resolve(&flags)?;
    let level = cfg.log_level.clone();
    let filter = match level.as_str() {
        "fatal" => "error",
        l => l,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTHD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let res = rt.block_on(config::run(cfg));
    // Threads blocked on monitors (waiting for container exits) must not keep the daemon
    // alive: the containers and their monitors live on without it.
    rt.shutdown_background();
    res
}
