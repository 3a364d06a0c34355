//! `docker update`: new resource limits or restart policy for a container, applied at once
//! to a running one through the runtime's `update`.

use super::types::HostConfig;
use super::Containers;
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// The fields of Docker's UpdateConfig that Berth applies; others (KernelMemory, device
/// rules, ulimits) are not updatable here, as in current Docker for most of them.
const UPDATABLE: &[&str] = &[
    "BlkioWeight",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "Memory",
    "MemoryReservation",
    "MemorySwap",
    "NanoCpus",
    "PidsLimit",
];

/// The container's host config with the request's non-zero fields in: Docker treats a
/// zero as "unchanged".
fn merged(current: &HostConfig, req: &Map<String, Value>) -> Result<HostConfig> {
    let mut hc = serde_json::to_value(current)
        .map_err(|e| Error::internal("encoding the host config", e))?;
    for key in UPDATABLE {
        let Some(v) = req.get(*key) else { continue };
        let unchanged = v.is_null() || v.as_i64() == Some(0) || v.as_str() == Some("");
        if !unchanged {
            hc[*key] = v.clone();
        }
    }
    if let Some(p) = req.get("RestartPolicy") {
        if p.get("Name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
        {
            hc["RestartPolicy"] = p.clone();
        }
    }
    serde_json::from_value(hc).map_err(|e| Error::invalid(format!("invalid update: {e}")))
}

impl Containers {
    /// `POST /containers/{id}/update`: returns Docker's warnings (none).
    pub async fn update_resources(
        &self,
        name_or_id: &str,
        req: &Map<String, Value>,
    ) -> Result<Vec<String>> {
        let entry = self.get(name_or_id)?;
        let _op = entry.op.lock().await;
        let rec = entry.snapshot();
        let hc = merged(&rec.host_config, req)?;
        let policy = hc.restart_policy.name.as_str();
        if hc.auto_remove && !matches!(policy, "" | "no") {
            return Err(Error::invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        if !matches!(
            policy,
            "" | "no" | "always" | "unless-stopped" | "on-failure"
        ) {
            return Err(Error::invalid(format!("invalid restart policy '{policy}'")));
        }
        if rec.state.running {
            // `resources` makes create's limit checks first.
            let mut resources = super::spec::resources(&hc)?;
            // Device rules stay as created; the runtime replaces what it is given.
            if let Some(o) = resources.as_object_mut() {
                o.remove("devices");
            }
            let path = self.run_dir(&rec.id).join("update.json");
            crate::store::write_json_volatile(&path, &resources)?;
            let path_arg = path.display().to_string();
            let done = super::lifecycle::run_runtime(
                self,
                &rec,
                &["update", "--resources", &path_arg, &rec.id],
            )
            .await;
            let _ = std::fs::remove_file(&path);
            done.map_err(|e| Error::invalid(format!("Cannot update container {}: {e}", rec.id)))?;
        } else {
            super::spec::check_limits(&hc)?;
        }
        self.update(&entry, |c| c.host_config = hc)?;
        self.publish(&rec, "update", &[]);
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zeros_leave_fields_as_they_are() {
        let hc = HostConfig {
            memory: 64 << 20,
            cpu_shares: 512,
            ..Default::default()
        };
        let req =
            json!({"Memory": 0, "CpuShares": 1024, "PidsLimit": 20, "RestartPolicy": {"Name": ""}});
        let got = merged(&hc, req.as_object().unwrap()).unwrap();
        assert_eq!(got.memory, 64 << 20);
        assert_eq!(got.cpu_shares, 1024);
        assert_eq!(got.pids_limit, Some(20));
        assert_eq!(got.restart_policy.name, "");
        let req = json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}});
        let got = merged(&hc, req.as_object().unwrap()).unwrap();
        assert_eq!(got.restart_policy.maximum_retry_count, 2);
    }
}
