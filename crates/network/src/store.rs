//! Persistence: one JSON file per network in the state directory, replaced atomically
//! (temp file in the same directory, fsync, rename, fsync of the directory), so a crash
//! leaves either the old or the new record.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};
use crate::ipam::IpamV4;
use crate::types::{MacAddr, PortBinding};

/// What kind of network a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Driver {
    Bridge,
    Host,
    Null,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: Driver,
    pub created: String,
    /// One of "bridge", "host", "none": created by Berth itself, never removed.
    pub predefined: bool,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Present for bridge networks.
    pub ipam: Option<IpamV4>,
    /// Linux bridge name, for bridge networks.
    pub bridge: Option<String>,
    pub mtu: u32,
    /// Endpoints by container id; their addresses are the IPAM allocations.
    pub endpoints: BTreeMap<String, EndpointRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub endpoint_id: String,
    pub container_name: String,
    pub aliases: Vec<String>,
    pub netns_path: PathBuf,
    pub ifname: String,
    pub host_ifname: String,
    pub ipv4: Ipv4Addr,
    pub mac: MacAddr,
    pub default_route: bool,
    /// Published ports, with the host port actually bound.
    #[serde(default)]
    pub ports: Vec<PortBinding>,
}

fn file_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

pub(crate) fn load_all(dir: &Path) -> Result<Vec<NetworkRecord>> {
    std::fs::create_dir_all(dir).map_err(|e| NetError::io("create state dir", dir, e))?;
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| NetError::io("read state dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| NetError::io("read state dir", dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            // A write interrupted by a crash: the record it would have replaced is intact.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| NetError::io("read", &path, e))?;
        let rec: NetworkRecord =
            serde_json::from_slice(&bytes).map_err(|e| NetError::CorruptState {
                path: path.clone(),
                source: e,
            })?;
        out.push(rec);
    }
    out.sort_by(|a, b| a.created.cmp(&b.created));
    Ok(out)
}

pub(crate) fn save(dir: &Path, rec: &NetworkRecord) -> Result<()> {
    let path = file_of(dir, &rec.id);
    let tmp = dir.join(format!(".{}.json.tmp", rec.id));
    let bytes = serde_json::to_vec_pretty(rec).map_err(|e| NetError::CorruptState {
        path: path.clone(),
        source: e,
    })?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        NetError::io("write", &path, e)
    })
}

pub(crate) fn delete(dir: &Path, id: &str) -> Result<()> {
    let path = file_of(dir, id);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(NetError::io("remove", &path, e)),
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NetError::io("sync", dir, e))
}
