//! What berthd tells the engine at start (flags and daemon.json, already merged).

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Persistent state: images, containers, volumes, networks (`--data-root`).
    pub data_root: PathBuf,
    /// Runtime state: monitors' sockets, runtime state, bundles (`--exec-root`).
    pub exec_root: PathBuf,
    /// OCI runtimes by name; `default_runtime` names the one used when a container asks none.
    pub runtimes: BTreeMap<String, PathBuf>,
    /// daemon.json's `runtimeArgs`: global options given before each runtime command.
    pub runtime_args: BTreeMap<String, Vec<String>>,
    pub default_runtime: String,
    /// The `berth-monitor` binary.
    pub monitor: PathBuf,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    /// Keep containers running while the daemon is down (Docker's live-restore; our default).
    pub live_restore: bool,
    /// Name of the default bridge interface and the pool user networks draw from.
    pub bridge_name: String,
    pub default_address_pool: String,
    pub default_bridge_subnet: String,
    /// Berth's own nftables table.
    pub nft_table: String,
}

impl EngineConfig {
    pub fn new(data_root: PathBuf, exec_root: PathBuf) -> EngineConfig {
        EngineConfig {
            data_root,
            exec_root,
            runtimes: BTreeMap::new(),
            runtime_args: BTreeMap::new(),
            default_runtime: "berth-runtime".to_string(),
            monitor: PathBuf::from("berth-monitor"),
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            live_restore: true,
            bridge_name: "berth0".to_string(),
            default_address_pool: "172.30.0.0/16".to_string(),
            default_bridge_subnet: "172.29.0.1/24".to_string(),
            nft_table: "berth".to_string(),
        }
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.data_root.join("containers")
    }
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }
    /// Per-container runtime state: monitor sockets, bundle, exit status.
    /// Kept short: unix socket paths inside it are limited to 107 bytes.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("c").join(id)
    }
    /// Per-exec monitor state (short for the same reason).
    pub fn exec_run_dir(&self, exec_id: &str) -> PathBuf {
        self.exec_root
            .join("x")
            .join(&exec_id[..exec_id.len().min(24)])
    }
    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }
    /// The runtime a container asking for `name` gets: that one, or the default.
    fn runtime_name<'a>(&'a self, name: Option<&'a str>) -> &'a str {
        name.filter(|n| !n.is_empty())
            .unwrap_or(&self.default_runtime)
    }
    pub fn runtime_path(&self, name: Option<&str>) -> Option<PathBuf> {
        self.runtimes.get(self.runtime_name(name)).cloned()
    }
    pub fn runtime_args(&self, name: Option<&str>) -> Vec<String> {
        self.runtime_args
            .get(self.runtime_name(name))
            .cloned()
            .unwrap_or_default()
    }
}
