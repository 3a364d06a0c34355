//! The persistent record of one container (`<data-root>/containers/<id>/container.json`) and
//! the JSON views the Engine API returns for it.

use super::types::{ContainerConfig, ContainerState, HostConfig, MountPoint, NetworkingConfig};
use crate::time;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The process: entrypoint + cmd as resolved at create.
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    #[serde(default)]
    pub networking_config: NetworkingConfig,
    /// `sha256:<hex>` of the image config.
    pub image_id: String,
    pub state: ContainerState,
    #[serde(default)]
    pub restart_count: u64,
    /// Set by `docker stop`/`kill`, so `unless-stopped` and `always` know not to restart
    /// after a daemon restart (Docker's HasBeenManuallyStopped).
    #[serde(default)]
    pub manually_stopped: bool,
    #[serde(default)]
    pub has_been_started: bool,
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    /// Anonymous volumes created for this container (removed by `rm -v`).
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// Network name → settings as inspect shows them (`IPAddress`, `Gateway`, ...).
    #[serde(default)]
    pub networks: BTreeMap<String, Value>,
    /// Published ports as connected: `80/tcp` → [{HostIp, HostPort}].
    #[serde(default)]
    pub ports: BTreeMap<String, Option<Vec<super::types::PortBinding>>>,
    #[serde(default)]
    pub log_path: String,
    #[serde(default)]
    pub hostname_path: String,
    #[serde(default)]
    pub hosts_path: String,
    #[serde(default)]
    pub resolv_conf_path: String,
    /// The runtime this container was started with (its name in the daemon's config).
    #[serde(default)]
    pub runtime: String,
    /// The OCI namespace path of its network when it has its own (`bridge` networks).
    #[serde(default)]
    pub netns_path: String,
}

impl Container {
    pub fn is_running(&self) -> bool {
        self.state.running
    }

    pub fn short_id(&self) -> &str {
        crate::ids::short(&self.id)
    }

    pub fn image_name(&self) -> &str {
        &self.config.image
    }

    /// Docker's `Status` column: "Up 3 seconds", "Exited (0) 5 minutes ago", "Created".
    pub fn status_text(&self) -> String {
        let st = &self.state;
        if st.running {
            let since = time::parse_rfc3339(&st.started_at);
            let up = since
                .map(human_since)
                .unwrap_or_else(|| "Less than a second".into());
            if st.paused {
                return format!("Up {up} (Paused)");
            }
            if st.restarting {
                return format!("Restarting ({}) {} ago", st.exit_code, up);
            }
            return match st.health.as_ref().map(|h| h.status.as_str()) {
                Some(super::health::STARTING) => format!("Up {up} (health: starting)"),
                Some(s @ (super::health::HEALTHY | super::health::UNHEALTHY)) => {
                    format!("Up {up} ({s})")
                }
                _ => format!("Up {up}"),
            };
        }
        match st.status.as_str() {
            "created" => "Created".into(),
            "restarting" => {
                let ago = time::parse_rfc3339(&st.finished_at)
                    .map(|t| format!("{} ago", human_since(t)))
                    .unwrap_or_default();
                format!("Restarting ({}) {}", st.exit_code, ago)
                    .trim_end()
                    .to_string()
            }
            "removing" => "Removal In Progress".into(),
            "dead" => "Dead".into(),
            _ => {
                let ago = time::parse_rfc3339(&st.finished_at)
                    .map(|t| format!("{} ago", human_since(t)))
                    .unwrap_or_default();
                format!("Exited ({}) {}", st.exit_code, ago)
                    .trim_end()
                    .to_string()
            }
        }
    }

    /// The list's `Command`: arguments holding a space are single-quoted, as dockerd does.
    pub fn command_line(&self) -> String {
        let mut parts = vec![self.path.clone()];
        parts.extend(self.args.iter().map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        }));
        parts.join(" ")
    }

    pub fn network_mode(&self) -> &str {
        match self.host_config.network_mode.as_str() {
            "" | "default" => "bridge",
            m => m,
        }
    }

    fn network_settings(&self) -> Value {
        let nets: serde_json::Map<String, Value> = self.networks.clone().into_iter().collect();
        let primary = self.networks.values().next().cloned().unwrap_or(json!({}));
        let s = |k: &str| primary.get(k).cloned().unwrap_or(json!(""));
        json!({
            "Bridge": "",
            "SandboxID": if self.netns_path.is_empty() { "".to_string() } else { self.id.clone() },
            "SandboxKey": self.netns_path,
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": self.ports,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": s("EndpointID"),
            "Gateway": s("Gateway"),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": s("IPAddress"),
            "IPPrefixLen": primary.get("IPPrefixLen").cloned().unwrap_or(json!(0)),
            "IPv6Gateway": "",
            "MacAddress": s("MacAddress"),
            "Networks": nets,
        })
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, size: Option<(u64, u64)>) -> Value {
        let mut state = serde_json::to_value(&self.state).unwrap_or(json!({}));
        if let Some(o) = state.as_object_mut() {
            if o.get("StartedAt").and_then(Value::as_str) == Some("") {
                o.insert("StartedAt".into(), json!(time::ZERO));
            }
            if o.get("FinishedAt").and_then(Value::as_str) == Some("") {
                o.insert("FinishedAt".into(), json!(time::ZERO));
            }
        }
        let mut host_config = serde_json::to_value(&self.host_config).unwrap_or(json!({}));
        if let Some(o) = host_config.as_object_mut() {
            if o.get("NetworkMode").and_then(Value::as_str) == Some("") {
                o.insert("NetworkMode".into(), json!("bridge"));
            }
            let lc = o.entry("LogConfig").or_insert(json!({}));
            if lc
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                lc["Type"] = json!("json-file");
            }
        }
        let mut v = json!({
            "Id": self.id,
            "Created": self.created,
            "Path": self.path,
            "Args": self.args,
            "State": state,
            "Image": self.image_id,
            "ResolvConfPath": self.resolv_conf_path,
            "HostnamePath": self.hostname_path,
            "HostsPath": self.hosts_path,
            "LogPath": self.log_path,
            "Name": format!("/{}", self.name),
            "RestartCount": self.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": null,
            "HostConfig": host_config,
            "GraphDriver": { "Name": "overlay2", "Data": null },
            "Mounts": self.mounts,
            "Config": self.config,
            "NetworkSettings": self.network_settings(),
        });
        if let Some((rw, root)) = size {
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(root);
        }
        v
    }

    /// One entry of `GET /containers/json`.
    pub fn summary(&self) -> Value {
        let mut ports = Vec::new();
        for (key, bindings) in &self.ports {
            let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            let private: u16 = port.parse().unwrap_or(0);
            match bindings {
                Some(bs) if !bs.is_empty() => {
                    for b in bs {
                        ports.push(json!({
                            "IP": b.host_ip, "PrivatePort": private,
                            "PublicPort": b.host_port.parse::<u16>().unwrap_or(0), "Type": proto,
                        }));
                    }
                }
                _ => ports.push(json!({ "PrivatePort": private, "Type": proto })),
            }
        }
        let created = time::parse_rfc3339(&self.created)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        json!({
            "Id": self.id,
            "Names": [format!("/{}", self.name)],
            "Image": self.config.image,
            "ImageID": self.image_id,
            "Command": self.command_line(),
            "Created": created,
            "Ports": ports,
            "Labels": self.config.labels,
            "State": self.state.status,
            "Status": self.status_text(),
            "HostConfig": { "NetworkMode": self.network_mode() },
            "NetworkSettings": { "Networks": self.networks },
            "Mounts": self.mounts,
        })
    }
}

/// Docker's units.HumanDuration.
pub fn human_since(t: std::time::SystemTime) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    human_duration(secs)
}

pub fn human_duration(secs: u64) -> String {
    let mins = secs / 60;
    let hours = mins / 60;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if mins == 1 => "About a minute".into(),
        _ if mins < 60 => format!("{mins} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}
