//! Network set-up around a container's start and exit. `none`, `host` and `container:` are
//! handled here; bridge networks through berth-network.

use super::model::Container;
use super::spec::NetNs;
use super::{Containers, Entry};
use crate::error::Result;
use std::sync::Arc;

pub struct NetSetup {
    pub netns: NetNs,
    pub ip: Option<String>,
    pub nameserver: Option<String>,
    pub hosts: Option<String>,
}

impl Containers {
    pub(crate) async fn setup_network(&self, entry: &Arc<Entry>) -> Result<NetSetup> {
        let rec = entry.snapshot();
        let mode = rec.network_mode().to_string();
        let netns = match mode.as_str() {
            "host" => NetNs::Host,
            m if m.starts_with("container:") => {
                let other = self.get(&m["container:".len()..])?.snapshot();
                if !other.state.running {
                    return Err(crate::Error::Conflict(format!(
                        "cannot join network namespace of a non running container: {}",
                        other.id
                    )));
                }
                NetNs::Path(format!("/proc/{}/ns/net", other.state.pid).into())
            }
            // Until bridge networks are wired, bridge containers get a private namespace with
            // loopback only, as `none`.
            _ => NetNs::New,
        };
        Ok(NetSetup {
            netns,
            ip: None,
            nameserver: None,
            hosts: None,
        })
    }

    pub(crate) async fn teardown_network(&self, entry: &Arc<Entry>) {
        let _ = entry;
    }

    pub(crate) async fn forget_network(&self, rec: &Container) {
        let _ = rec;
    }

    pub(crate) async fn reconnect_network(&self, entry: &Arc<Entry>) {
        let _ = entry;
    }
}
