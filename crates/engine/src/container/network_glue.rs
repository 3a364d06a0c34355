//! Network set-up around a container's start and exit. `host` shares the host's namespace,
//! `none` gets a private one with loopback only, `container:X` joins X's, and `bridge` or a
//! user-defined network gets a pinned namespace wired by berth-network.

use super::model::Container;
use super::spec::NetNs;
use super::{Containers, Entry};
use crate::error::{Error, Result};
use berth_network::{files, EndpointRequest, PortBinding, Proto};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

pub struct NetSetup {
    pub netns: NetNs,
    pub ip: Option<String>,
    pub nameserver: Option<String>,
    pub hosts: Option<String>,
}

/// `--add-host name:ip` entries; `host-gateway` is the gateway of the first network.
pub(crate) fn extra_hosts(
    rec: &Container,
    gateway: Option<Ipv4Addr>,
) -> Result<Vec<(String, IpAddr)>> {
    let mut extra = Vec::new();
    for h in &rec.host_config.extra_hosts {
        let Some((name, addr)) = h.split_once(':').or_else(|| h.split_once('=')) else {
            return Err(Error::invalid(format!(
                "invalid add-host {h:?}: expected name:ip"
            )));
        };
        let ip: IpAddr = if addr == "host-gateway" {
            IpAddr::V4(gateway.unwrap_or(Ipv4Addr::LOCALHOST))
        } else {
            addr.parse()
                .map_err(|_| Error::invalid(format!("invalid IP address in add-host: {addr:?}")))?
        };
        extra.push((name.to_string(), ip));
    }
    Ok(extra)
}

/// The container's resolv.conf: `--dns*` flags, the embedded server, or the host's.
pub(crate) fn resolv_conf(rec: &Container, embedded: Option<Ipv4Addr>) -> Result<String> {
    let hc = &rec.host_config;
    let host =
        files::ResolvConf::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let servers = hc
        .dns
        .iter()
        .map(|d| {
            d.parse()
                .map_err(|_| Error::invalid(format!("invalid DNS server {d:?}")))
        })
        .collect::<Result<Vec<IpAddr>>>()?;
    let user = files::DnsSettings {
        servers,
        search: hc.dns_search.clone(),
        options: hc.dns_options.clone(),
    };
    Ok(files::render_resolv_conf(&host, &user, embedded))
}

pub fn net_err(e: berth_network::NetError) -> Error {
    use berth_network::NetError as N;
    match &e {
        N::NotFound(_) => Error::NotFound(e.to_string()),
        N::DuplicateName(_)
        | N::ActiveEndpoints { .. }
        | N::AlreadyConnected { .. }
        | N::AddressInUse { .. } => Error::Conflict(e.to_string()),
        N::Predefined(_) => Error::Forbidden(e.to_string()),
        N::Netlink { .. } | N::NetlinkConnection(_) | N::Nft(_) => Error::Internal(e.to_string()),
        _ => Error::InvalidParameter(e.to_string()),
    }
}

impl Containers {
    fn netns_path(&self, id: &str) -> PathBuf {
        self.config
            .exec_root
            .join("netns")
            .join(&id[..id.len().min(24)])
    }

    /// The networks a container joins at start: its network mode first, then the others it
    /// was connected to.
    fn wanted_networks(rec: &Container) -> Vec<String> {
        let primary = rec.network_mode().to_string();
        let mut v = vec![primary.clone()];
        for k in rec.networking_config.endpoints_config.keys() {
            let k = if k == "default" {
                "bridge".to_string()
            } else {
                k.clone()
            };
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    }

    fn port_bindings(rec: &Container) -> Result<Vec<PortBinding>> {
        let hc = &rec.host_config;
        let mut out = Vec::new();
        let mut keys: Vec<String> = hc.port_bindings.keys().cloned().collect();
        if hc.publish_all_ports {
            for k in rec.config.exposed_ports.clone().unwrap_or_default().keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        for key in keys {
            let (port, proto) = super::create::parse_port_key(&key)?;
            let proto: Proto = proto.parse().map_err(net_err)?;
            let bindings = hc
                .port_bindings
                .get(&key)
                .cloned()
                .flatten()
                .unwrap_or_default();
            let bindings = if bindings.is_empty() {
                vec![Default::default()]
            } else {
                bindings
            };
            for b in bindings {
                let b: super::types::PortBinding = b;
                let host_ip: Ipv4Addr = match b.host_ip.as_str() {
                    "" | "0.0.0.0" => Ipv4Addr::UNSPECIFIED,
                    ip => ip.parse().map_err(|_| {
                        Error::invalid(format!("invalid host IP {ip:?} (IPv4 only)"))
                    })?,
                };
                let host_port: u16 = match b.host_port.as_str() {
                    "" => 0,
                    p => p
                        .split('-')
                        .next()
                        .unwrap_or(p)
                        .parse()
                        .map_err(|_| Error::invalid(format!("invalid host port {p:?}")))?,
                };
                out.push(PortBinding {
                    proto,
                    host_ip,
                    host_port,
                    container_port: port,
                });
            }
        }
        Ok(out)
    }

    pub(crate) async fn setup_network(&self, entry: &Arc<Entry>) -> Result<NetSetup> {
        let rec = entry.snapshot();
        let mode = rec.network_mode().to_string();
        match mode.as_str() {
            "host" => {
                return Ok(NetSetup {
                    netns: NetNs::Host,
                    ip: None,
                    nameserver: None,
                    hosts: None,
                })
            }
            "none" => {
                return Ok(NetSetup {
                    netns: NetNs::New,
                    ip: None,
                    nameserver: None,
                    hosts: None,
                })
            }
            m if m.starts_with("container:") => {
                let other = self.get(&m["container:".len()..])?.snapshot();
                if !other.state.running {
                    return Err(Error::Conflict(format!(
                        "cannot join network namespace of a non running container: {}",
                        other.id
                    )));
                }
                let ns = if other.netns_path.is_empty() {
                    format!("/proc/{}/ns/net", other.state.pid).into()
                } else {
                    PathBuf::from(&other.netns_path)
                };
                return Ok(NetSetup {
                    netns: NetNs::Path(ns),
                    ip: None,
                    nameserver: None,
                    hosts: None,
                });
            }
            _ => {}
        }
        let ns = self.netns_path(&rec.id);
        let _ = berth_network::remove_netns(&ns);
        if let Some(dir) = ns.parent() {
            std::fs::create_dir_all(dir)?;
        }
        berth_network::create_netns(&ns).await.map_err(net_err)?;
        match self.connect_all(&rec, &ns).await {
            Ok(setup) => Ok(setup),
            Err(e) => {
                self.unwire(&rec, &ns).await;
                Err(e)
            }
        }
    }

    async fn connect_all(&self, rec: &Container, ns: &std::path::Path) -> Result<NetSetup> {
        let entry = self.get(&rec.id)?;
        let mut networks = std::collections::BTreeMap::new();
        let mut first_ip = None;
        let mut own_ips = Vec::new();
        let wanted = Self::wanted_networks(rec);
        for net in &wanted {
            let settings = rec
                .networking_config
                .endpoints_config
                .get(net)
                .cloned()
                .unwrap_or_default();
            let ipv4 = settings
                .ipam_config
                .as_ref()
                .and_then(|c| c.get("IPv4Address"))
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<Ipv4Addr>()
                        .map_err(|_| Error::invalid(format!("invalid IPv4 address: {s}")))
                })
                .transpose()?;
            let mut aliases = settings.aliases.clone();
            if net != "bridge" {
                aliases.push(rec.short_id().to_string());
            }
            let ep = self
                .networks
                .connect(
                    net,
                    EndpointRequest {
                        container_id: rec.id.clone(),
                        container_name: rec.name.clone(),
                        aliases: aliases.clone(),
                        netns_path: ns.to_path_buf(),
                        ipv4,
                        mac: None,
                    },
                )
                .await
                .map_err(net_err)?;
            self.publish_network("connect", &ep.network_id, &ep.network_name, &rec.id);
            first_ip.get_or_insert(ep.ipv4);
            own_ips.push(ep.ipv4);
            let named = net != "bridge";
            networks.insert(
                net.clone(),
                endpoint_settings(
                    &ep.network_id,
                    Some(&ep),
                    json!(settings.ipam_config),
                    if named { json!(aliases) } else { json!(null) },
                    if named {
                        json!([rec.name.clone(), rec.short_id()])
                    } else {
                        json!(null)
                    },
                ),
            );
        }
        let primary = &wanted[0];
        let bindings = Self::port_bindings(rec)?;
        let mut ports: std::collections::BTreeMap<String, Option<Vec<super::types::PortBinding>>> =
            Default::default();
        for k in rec.config.exposed_ports.clone().unwrap_or_default().keys() {
            ports.insert(k.clone(), None);
        }
        if !bindings.is_empty() {
            let bound = self
                .networks
                .publish(primary, &rec.id, &bindings)
                .await
                .map_err(net_err)?;
            for b in bound {
                let key = format!("{}/{}", b.container_port, b.proto);
                ports
                    .entry(key)
                    .or_insert(None)
                    .get_or_insert_with(Vec::new)
                    .push(super::types::PortBinding {
                        host_ip: b.host_ip.to_string(),
                        host_port: b.host_port.to_string(),
                    });
            }
        }
        let dns = self.networks.embedded_dns(primary).await.map_err(net_err)?;
        let hostname = if rec.config.hostname.is_empty() {
            rec.short_id().to_string()
        } else {
            rec.config.hostname.clone()
        };
        let gw = networks
            .values()
            .next()
            .and_then(|n| n["Gateway"].as_str()?.parse().ok());
        let extra = extra_hosts(rec, gw)?;
        let hosts = files::render_hosts(&hostname, &own_ips[..own_ips.len().min(1)], &[], &extra);
        self.update(&entry, |c| {
            c.networks = networks;
            c.ports = ports;
            c.netns_path = ns.display().to_string();
        })?;
        Ok(NetSetup {
            netns: NetNs::Path(ns.to_path_buf()),
            ip: first_ip.map(|i| i.to_string()),
            nameserver: dns.map(|d| d.to_string()),
            hosts: Some(hosts),
        })
    }

    /// Undoes `setup_network` when the container stopped: endpoints, ports, namespace.
    pub(crate) async fn teardown_network(&self, entry: &Arc<Entry>) {
        let rec = entry.snapshot();
        if rec.netns_path.is_empty() {
            return;
        }
        self.unwire(&rec, std::path::Path::new(&rec.netns_path))
            .await;
        let _ = self.update(entry, |c| {
            c.netns_path.clear();
            c.ports.clear();
            for v in c.networks.values_mut() {
                for k in ["IPAddress", "Gateway", "MacAddress", "EndpointID"] {
                    v[k] = json!("");
                }
                v["IPPrefixLen"] = json!(0);
            }
        });
    }

    pub(crate) async fn forget_network(&self, rec: &Container) {
        if !rec.netns_path.is_empty() {
            self.unwire(rec, std::path::Path::new(&rec.netns_path))
                .await;
        }
    }

    /// Docker's `network connect` / `disconnect` event of a container's endpoint.
    fn publish_network(&self, action: &str, network_id: &str, network_name: &str, container: &str) {
        let attrs = std::collections::BTreeMap::from([
            ("container".to_string(), container.to_string()),
            ("name".to_string(), network_name.to_string()),
            ("type".to_string(), "bridge".to_string()),
        ]);
        self.events.publish("network", action, network_id, attrs);
    }

    /// Unpublishes and disconnects every network of the container and unpins its namespace.
    async fn unwire(&self, rec: &Container, ns: &std::path::Path) {
        for n in Self::wanted_networks(rec) {
            let _ = self.networks.unpublish(&n, &rec.id).await;
            let info = self.networks.inspect(&n).await.ok();
            match self.networks.disconnect(&n, &rec.id).await {
                Ok(()) => {
                    if let Some(info) = info {
                        self.publish_network("disconnect", &info.id, &info.name, &rec.id);
                    }
                }
                Err(e) => tracing::debug!(network = n, error = %e, "disconnect"),
            }
        }
        if let Err(e) = berth_network::remove_netns(ns) {
            tracing::warn!(error = %e, "removing the network namespace");
        }
    }

    /// `POST /networks/{id}/connect`: a running container is wired at once; a stopped one
    /// at its next start.
    pub async fn network_connect(
        &self,
        network: &str,
        name_or_id: &str,
        settings: super::types::EndpointSettings,
    ) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let info = self.networks.inspect(network).await.map_err(net_err)?;
        let rec = entry.snapshot();
        if matches!(rec.network_mode(), "host" | "none")
            || rec.network_mode().starts_with("container:")
        {
            return Err(Error::invalid(
                "container cannot be disconnected from host network or connected to host network"
                    .to_string(),
            ));
        }
        if Self::wanted_networks(&rec).contains(&info.name) {
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, info.name
            )));
        }
        self.update(&entry, |c| {
            c.networking_config
                .endpoints_config
                .insert(info.name.clone(), settings.clone());
        })?;
        if rec.state.running && !rec.netns_path.is_empty() {
            let ep = self
                .networks
                .connect(
                    &info.name,
                    EndpointRequest {
                        container_id: rec.id.clone(),
                        container_name: rec.name.clone(),
                        aliases: settings.aliases.clone(),
                        netns_path: rec.netns_path.clone().into(),
                        ipv4: None,
                        mac: None,
                    },
                )
                .await
                .map_err(net_err)?;
            self.update(&entry, |c| {
                c.networks.insert(
                    info.name.clone(),
                    json!({
                        "NetworkID": ep.network_id, "EndpointID": ep.endpoint_id,
                        "Gateway": ep.gateway.to_string(), "IPAddress": ep.ipv4.to_string(),
                        "IPPrefixLen": ep.prefix_len, "MacAddress": ep.mac.to_string(),
                        "Aliases": settings.aliases,
                    }),
                );
            })?;
        }
        self.publish_network("connect", &info.id, &info.name, &rec.id);
        Ok(())
    }

    pub async fn network_disconnect(
        &self,
        network: &str,
        name_or_id: &str,
        force: bool,
    ) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let info = self.networks.inspect(network).await.map_err(net_err)?;
        let rec = entry.snapshot();
        let was = Self::wanted_networks(&rec).contains(&info.name);
        if !was && !force {
            return Err(Error::NotFound(format!(
                "container {} is not connected to network {}",
                rec.id, info.name
            )));
        }
        if rec.state.running && !rec.netns_path.is_empty() {
            let _ = self.networks.unpublish(&info.name, &rec.id).await;
            self.networks
                .disconnect(&info.name, &rec.id)
                .await
                .map_err(net_err)?;
        }
        self.update(&entry, |c| {
            c.networking_config.endpoints_config.remove(&info.name);
            c.networks.remove(&info.name);
            if c.host_config.network_mode == info.name
                || (info.name == "bridge"
                    && matches!(c.host_config.network_mode.as_str(), "bridge" | "default"))
            {
                // Docker leaves such a container with no network; ours keeps loopback only.
                c.host_config.network_mode = "none".into();
            }
        })?;
        self.publish_network("disconnect", &info.id, &info.name, &rec.id);
        Ok(())
    }
}

/// A container's entry in `NetworkSettings.Networks`, with dockerd's fields. `ep` is None on
/// the predefined none and host networks, which give the container no interface of its own.
pub(crate) fn endpoint_settings(
    network_id: &str,
    ep: Option<&berth_network::Endpoint>,
    ipam_config: Value,
    aliases: Value,
    dns_names: Value,
) -> Value {
    json!({
        "IPAMConfig": ipam_config,
        "Links": null,
        "Aliases": aliases,
        "MacAddress": ep.map(|e| e.mac.to_string()).unwrap_or_default(),
        "NetworkID": network_id,
        "EndpointID": ep.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "IPAddress": ep.map(|e| e.ipv4.to_string()).unwrap_or_default(),
        "IPPrefixLen": ep.map_or(0, |e| e.prefix_len),
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DriverOpts": null,
        "DNSNames": dns_names,
    })
}
