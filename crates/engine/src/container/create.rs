//! `POST /containers/create`: validate, merge the image's config in, and record the container.

use super::model::Container;
use super::types::{ContainerState, CreateRequest, HostConfig};
use super::{Containers, Entry, RunState};
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

const RESTART_POLICIES: &[&str] = &["", "no", "always", "unless-stopped", "on-failure"];

fn validate(req: &CreateRequest) -> Result<()> {
    let hc = &req.host_config;
    let rp = &hc.restart_policy;
    if !RESTART_POLICIES.contains(&rp.name.as_str()) {
        return Err(Error::invalid(format!("invalid restart policy: unknown policy '{}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", rp.name)));
    }
    if rp.maximum_retry_count < 0 {
        return Err(Error::invalid(
            "invalid restart policy: maximum retry count can't be negative",
        ));
    }
    if rp.maximum_retry_count > 0 && rp.name != "on-failure" {
        return Err(Error::invalid(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                .to_string(),
        ));
    }
    if hc.auto_remove && !matches!(rp.name.as_str(), "" | "no") {
        return Err(Error::invalid(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    match hc.network_mode.as_str() {
        "" | "default" | "bridge" | "none" | "host" => {}
        m if m.starts_with("container:") && m.len() > 10 => {}
        m if m.contains(':') => {
            return Err(Error::invalid(format!("invalid network mode: {m}")));
        }
        _ => {} // a user-defined network: checked when it is connected
    }
    for mode in [&hc.ipc_mode, &hc.pid_mode] {
        match mode.as_str() {
            "" | "private" | "shareable" | "host" => {}
            m if m.starts_with("container:") => {}
            m => return Err(Error::invalid(format!("invalid IPC/PID mode: {m}"))),
        }
    }
    if !matches!(hc.userns_mode.as_str(), "" | "host") {
        return Err(Error::invalid(format!(
            "invalid userns mode {:?}: only \"host\" is supported (user-namespace remapping is not configured)",
            hc.userns_mode
        )));
    }
    if !matches!(
        hc.log_config.kind.as_str(),
        "" | "json-file" | "none" | "local"
    ) {
        return Err(Error::invalid(format!(
            "logger: no log driver named '{}' is registered",
            hc.log_config.kind
        )));
    }
    for b in &hc.binds {
        super::mounts::parse_bind(b)?;
    }
    for (port, _) in hc.port_bindings.iter() {
        parse_port_key(port)?;
    }
    super::spec::capabilities(hc)?;
    super::spec::security_opts(hc)?;
    super::spec::check_limits(hc)?;
    Ok(())
}

/// Docker records what a container will get where the request left a setting out, and
/// inspect shows that: the runtime, the /dev/shm size, the IPC and cgroup namespace modes,
/// swap at twice the memory limit, the masked and read-only /proc and /sys paths.
fn record_effective_settings(hc: &mut HostConfig, runtime: &str) {
    hc.runtime = runtime.to_string();
    if hc.shm_size == 0 {
        hc.shm_size = 64 << 20;
    }
    if hc.ipc_mode.is_empty() {
        hc.ipc_mode = "private".into();
    }
    if hc.cgroupns_mode.is_empty() {
        hc.cgroupns_mode = if super::spec::cgroup_v2() {
            "private"
        } else {
            "host"
        }
        .into();
    }
    if hc.memory > 0 && hc.memory_swap == 0 && super::spec::swap_accounting() {
        hc.memory_swap = hc.memory * 2;
    }
    if !hc.privileged {
        let owned = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect();
        hc.masked_paths
            .get_or_insert_with(|| owned(super::spec::MASKED_PATHS));
        hc.readonly_paths
            .get_or_insert_with(|| owned(super::spec::READONLY_PATHS));
    }
}

/// `80/tcp` → (80, "tcp").
pub fn parse_port_key(key: &str) -> Result<(u16, String)> {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port: u16 = p
        .parse()
        .map_err(|_| Error::invalid(format!("invalid port specification: {key:?}")))?;
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(Error::invalid(format!("invalid proto: {proto}")));
    }
    Ok((port, proto.to_string()))
}

impl Containers {
    pub async fn create(
        self: &Arc<Self>,
        name: Option<&str>,
        mut req: CreateRequest,
    ) -> Result<(String, Vec<String>)> {
        validate(&req)?;
        let mut warnings = Vec::new();
        if req.config.image.is_empty() {
            return Err(Error::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        let images = self.images.svc.clone();
        let image_name = req.config.image.clone();
        let rec = tokio::task::spawn_blocking(move || -> Result<_> {
            let rec = images.images.resolve(&image_name)?;
            let cfg = images.config_of(&rec)?;
            Ok((rec, cfg))
        })
        .await
        .map_err(|e| Error::internal("resolving the image", e))?;
        let (image, image_cfg) = match rec {
            Ok(v) => v,
            Err(Error::NotFound(_)) => {
                return Err(Error::NotFound(format!(
                    "No such image: {}",
                    req.config.image
                )))
            }
            Err(e) => return Err(e),
        };
        let ic = image_cfg.container_config();

        // Docker records the merged config: the image's values where the request gave none.
        let c = &mut req.config;
        let ov = berth_image::spec::Overrides {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            ..Default::default()
        };
        let args = berth_image::spec::merge_args(ic.entrypoint.as_deref(), ic.cmd.as_deref(), &ov)
            .map_err(|_| Error::invalid("no command specified"))?;
        if c.entrypoint.is_none() {
            c.entrypoint = ic.entrypoint.clone();
        }
        if c.cmd.is_none()
            && ov
                .entrypoint
                .as_ref()
                .is_none_or(|e| e.is_empty() || e.len() == 1 && e[0].is_empty())
        {
            c.cmd = ic.cmd.clone();
        }
        c.env = berth_image::spec::merge_env(ic.env.as_deref().unwrap_or_default(), &c.env);
        if c.working_dir.is_empty() {
            c.working_dir = ic.working_dir.clone().unwrap_or_default();
        } else if !c.working_dir.starts_with('/') {
            return Err(Error::invalid(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                c.working_dir
            )));
        }
        if c.user.is_empty() {
            c.user = ic.user.clone().unwrap_or_default();
        }
        super::health::merge(&mut c.extra, ic.extra.get("Healthcheck"));
        super::health::validate(c)?;
        let mut labels = ic.labels.clone().unwrap_or_default();
        labels.extend(std::mem::take(&mut c.labels));
        c.labels = labels;
        if let Some(ports) = ic.exposed_ports.clone() {
            let mut all = ports;
            all.extend(c.exposed_ports.take().unwrap_or_default());
            c.exposed_ports = Some(all);
        }
        for key in req.host_config.port_bindings.keys() {
            c.exposed_ports
                .get_or_insert_with(Default::default)
                .entry(key.clone())
                .or_insert(serde_json::json!({}));
        }
        if let Some(v) = ic.volumes.clone() {
            let mut all = v;
            all.extend(c.volumes.take().unwrap_or_default());
            c.volumes = Some(all);
        }
        if c.stop_signal.is_none() {
            c.stop_signal = ic.stop_signal.clone();
        }
        if let Some(sig) = &c.stop_signal {
            berth_image::spec::parse_signal(sig)
                .map_err(|_| Error::invalid(format!("invalid signal: {sig}")))?;
        }
        if req.host_config.memory > 0
            && req.host_config.memory_swap == 0
            && !super::spec::swap_accounting()
        {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".to_string());
        }

        let id = crate::ids::new_id();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = crate::ids::validate_name(n)?;
                if let Some(other) = self.name_taken(&n) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => {
                let mut attempt = 0;
                loop {
                    let n = crate::ids::random_name(attempt);
                    if self.name_taken(&n).is_none() {
                        break n;
                    }
                    attempt += 1;
                }
            }
        };
        let dir = self.config.container_dir(&id);
        let (path, rest) = args
            .split_first()
            .map(|(p, r)| (p.clone(), r.to_vec()))
            .unwrap_or_default();
        let mut rec = Container {
            id: id.clone(),
            name,
            created: crate::time::now_rfc3339(),
            path,
            args: rest,
            config: req.config,
            host_config: req.host_config,
            networking_config: req.networking_config,
            image_id: image.id.to_string(),
            state: ContainerState {
                status: "created".into(),
                ..Default::default()
            },
            restart_count: 0,
            manually_stopped: false,
            has_been_started: false,
            mounts: Vec::new(),
            anonymous_volumes: Vec::new(),
            networks: Default::default(),
            ports: Default::default(),
            log_path: dir.join(format!("{id}-json.log")).display().to_string(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            runtime: String::new(),
            netns_path: String::new(),
        };
        if rec.host_config.network_mode.is_empty() {
            rec.host_config.network_mode = "bridge".into();
        }
        // Docker records the hostname it will use: the short ID, or the host's name when
        // the container shares the host's UTS namespace or network.
        if rec.config.hostname.is_empty() {
            rec.config.hostname =
                if rec.host_config.network_mode == "host" || rec.host_config.uts_mode == "host" {
                    rustix::system::uname()
                        .nodename()
                        .to_string_lossy()
                        .into_owned()
                } else {
                    rec.short_id().to_string()
                };
        }
        rec.runtime = if rec.host_config.runtime.is_empty() {
            self.config.default_runtime.clone()
        } else {
            rec.host_config.runtime.clone()
        };
        if self.config.runtime_path(Some(&rec.runtime)).is_none() {
            return Err(Error::invalid(format!(
                "unknown or invalid runtime name: {}",
                rec.runtime
            )));
        }
        record_effective_settings(&mut rec.host_config, &rec.runtime);
        self.prepare_mounts(&mut rec).await?;
        // As dockerd: a container on the host's network or on none is attached to that
        // predefined network from create on (ps shows it, inspect names its ID).
        let mode = rec.network_mode().to_string();
        if matches!(mode.as_str(), "none" | "host") {
            if let Ok(net) = self.networks.inspect(&mode).await {
                let settings = super::network_glue::endpoint_settings(
                    &net.id,
                    None,
                    serde_json::Value::Null,
                    serde_json::Value::Null,
                    serde_json::Value::Null,
                );
                rec.networks.insert(mode, settings);
            }
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("creating {}", dir.display()), e))?;
        let record = dir.join("container.json");
        if rec.host_config.auto_remove {
            // An --rm container does not outlive a power loss anyway (recovery removes it
            // once it is not running), so its record is only kept whole, not forced to disk:
            // two fsyncs were a tenth of `docker run --rm`. A record a power loss left
            // empty reads as a create that crashed half-way.
            crate::store::write_json_volatile(&record, &rec)?;
        } else {
            crate::store::write_json(&record, &rec)?;
        }
        let (run, _) = watch::channel(RunState::default());
        let entry = Arc::new(Entry {
            rec: Mutex::new(rec.clone()),
            run,
            op: tokio::sync::Mutex::new(()),
            pending_attach: Mutex::new(Vec::new()),
        });
        self.entries
            .write()
            .map_err(|_| Error::Internal("container table poisoned".into()))?
            .insert(id.clone(), entry);
        self.publish(&rec, "create", &[]);
        Ok((id, warnings))
    }
}
