//! The network manager: Docker's networks, endpoints and published ports on top of the
//! netlink, nftables, proxy and DNS modules, with state persisted per network.
//!
//! Every mutating operation holds one lock, builds the new state, applies it to the
//! kernel, and only then commits it to disk; a failure undoes what was applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::{Arc, RwLock};

use ipnet::Ipv4Net;
use rtnetlink::Handle;
use tokio::sync::Mutex;

use crate::config::NetConfig;
use crate::dns::{DnsServer, DnsTable, SharedTable};
use crate::error::{NetError, Result};
use crate::files::ResolvConf;
use crate::ipam::{self, IpamV4};
use crate::link::{self, VethSpec};
use crate::netns::in_netns;
use crate::nft::{self, BridgeRules};
use crate::proxy::{self, Proxy};
use crate::release::Releases;
use crate::store::{self, Driver, EndpointRecord, NetworkRecord};
use crate::types::*;
use crate::util::{fnv1a, now_rfc3339, random_id};

/// Names of the networks that always exist.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// Owner of all container networking of one daemon. Cheap to share behind an `Arc`;
/// methods take `&self` and serialize on an internal lock.
pub struct NetworkManager {
    cfg: NetConfig,
    nl: Handle,
    dns_table: SharedTable,
    inner: Mutex<Inner>,
    releases: Releases,
}

#[derive(Default)]
struct Inner {
    nets: BTreeMap<String, NetworkRecord>,
    /// Running proxies by (network id, container id).
    proxies: HashMap<(String, String), Vec<Proxy>>,
    dns: HashMap<String, DnsServer>,
}

impl Inner {
    fn resolve(&self, key: &str) -> Result<&NetworkRecord> {
        if let Some(n) = self.nets.values().find(|n| n.name == key) {
            return Ok(n);
        }
        if let Some(n) = self.nets.get(key) {
            return Ok(n);
        }
        let mut found = self
            .nets
            .values()
            .filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (found.next(), found.next()) {
            (Some(n), None) => Ok(n),
            (Some(_), Some(_)) => Err(NetError::Ambiguous(key.to_string())),
            _ => Err(NetError::NotFound(key.to_string())),
        }
    }

    fn resolve_id(&self, key: &str) -> Result<String> {
        self.resolve(key).map(|n| n.id.clone())
    }

    fn rules(&self) -> Vec<BridgeRules> {
        self.nets
            .values()
            .filter_map(|n| {
                let (bridge, ipam) = (n.bridge.as_ref()?, n.ipam.as_ref()?);
                Some(BridgeRules {
                    bridge: bridge.clone(),
                    subnet: ipam.subnet,
                    internal: n.internal,
                    ports: n
                        .endpoints
                        .values()
                        .flat_map(|e| e.ports.iter().map(move |p| (*p, e.ipv4)))
                        .collect(),
                })
            })
            .collect()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && !name.contains(['/', ' ', ':'])
        && name != "."
        && name != ".."
}

/// Host-side veth name: stable for a (network, container) pair, so a restarted daemon can
/// find it, and short enough for IFNAMSIZ.
fn host_ifname(network_id: &str, container_id: &str) -> String {
    let h = fnv1a(format!("{network_id}/{container_id}").as_bytes());
    format!("vb{:012x}", h & 0xffff_ffff_ffff)
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl NetworkManager {
    /// Loads the persisted networks, makes sure the predefined ones exist, recreates
    /// missing bridges, rewrites Berth's nftables table from state, and restarts DNS
    /// servers and port proxies. Must be called inside a tokio runtime, on a thread in the
    /// host network namespace (the namespace everything is configured in).
    pub async fn open(cfg: NetConfig) -> Result<Self> {
        if !valid_ifname(&cfg.default_bridge) {
            return Err(NetError::InvalidValue {
                what: "bridge name",
                value: cfg.default_bridge.clone(),
            });
        }
        let nl = link::open()?;
        let mgr = NetworkManager {
            nl,
            dns_table: Arc::new(RwLock::new(DnsTable::default())),
            inner: Mutex::new(Inner::default()),
            releases: Releases::default(),
            cfg,
        };
        let mut inner = mgr.inner.lock().await;
        for rec in store::load_all(&mgr.cfg.state_dir)? {
            inner.nets.insert(rec.id.clone(), rec);
        }
        mgr.ensure_predefined(&mut inner)?;
        enable_forwarding();
        let bridges: Vec<(String, IpamV4, u32, Vec<String>)> = inner
            .nets
            .values()
            .filter_map(|n| {
                let veths = n
                    .endpoints
                    .values()
                    .map(|e| e.host_ifname.clone())
                    .collect();
                Some((n.bridge.clone()?, n.ipam?, n.mtu, veths))
            })
            .collect();
        for (bridge, ipam, mtu, veths) in bridges {
            let cidr = Ipv4Net::new(ipam.gateway, ipam.subnet.prefix_len()).unwrap_or_default();
            if link::ensure_bridge(&mgr.nl, &bridge, cidr, mtu).await? {
                tracing::info!(%bridge, "recreated missing bridge");
                for veth in veths {
                    link::attach_to_bridge(&mgr.nl, &veth, &bridge).await?;
                }
            }
        }
        nft::apply(&nft::ruleset(&mgr.cfg.nft_table, &inner.rules())).await?;
        let ids: Vec<String> = inner.nets.keys().cloned().collect();
        for id in ids {
            mgr.start_dns(&mut inner, &id).await;
            let eps: Vec<(String, EndpointRecord)> = inner.nets[&id]
                .endpoints
                .iter()
                .map(|(c, e)| (c.clone(), e.clone()))
                .collect();
            for (cid, ep) in eps {
                mgr.dns_register(&inner.nets[&id], &cid, &ep);
                let mut running = Vec::new();
                for pb in &ep.ports {
                    match proxy::start(*pb, ep.ipv4).await {
                        Ok(p) => running.push(p),
                        Err(e) => {
                            tracing::warn!(container = %cid, error = %e, "cannot restart port proxy")
                        }
                    }
                }
                if !running.is_empty() {
                    inner.proxies.insert((id.clone(), cid), running);
                }
            }
        }
        drop(inner);
        Ok(mgr)
    }

    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    fn ensure_predefined(&self, inner: &mut Inner) -> Result<()> {
        let default_ipam = IpamV4::from_gateway_cidr(self.cfg.default_bridge_cidr)?;
        for (name, driver) in [
            ("bridge", Driver::Bridge),
            ("host", Driver::Host),
            ("none", Driver::Null),
        ] {
            let existing = inner.nets.values_mut().find(|n| n.name == name);
            if let Some(rec) = existing {
                // Follow configuration changes while nothing depends on the old values.
                if driver == Driver::Bridge
                    && rec.endpoints.is_empty()
                    && (rec.bridge.as_deref() != Some(&self.cfg.default_bridge)
                        || rec.ipam != Some(default_ipam))
                {
                    rec.bridge = Some(self.cfg.default_bridge.clone());
                    rec.ipam = Some(default_ipam);
                    rec.mtu = self.cfg.mtu;
                    store::save(&self.cfg.state_dir, rec)?;
                }
                continue;
            }
            let bridge = driver == Driver::Bridge;
            let mut options = BTreeMap::new();
            if bridge {
                options.insert(
                    "com.docker.network.bridge.default_bridge".into(),
                    "true".into(),
                );
                options.insert("com.docker.network.bridge.enable_icc".into(), "true".into());
                options.insert(
                    "com.docker.network.bridge.enable_ip_masquerade".into(),
                    "true".into(),
                );
                options.insert(OPT_BRIDGE_NAME.into(), self.cfg.default_bridge.clone());
                options.insert(OPT_MTU.into(), self.cfg.mtu.to_string());
            }
            let rec = NetworkRecord {
                id: random_id(),
                name: name.into(),
                driver,
                created: now_rfc3339(),
                predefined: true,
                internal: false,
                attachable: false,
                labels: BTreeMap::new(),
                options,
                ipam: bridge.then_some(default_ipam),
                bridge: bridge.then(|| self.cfg.default_bridge.clone()),
                mtu: self.cfg.mtu,
                endpoints: BTreeMap::new(),
            };
            store::save(&self.cfg.state_dir, &rec)?;
            inner.nets.insert(rec.id.clone(), rec);
        }
        Ok(())
    }

    /// Networks the host's routing table already reaches, excluding Berth's own bridges.
    async fn foreign_routes(&self, inner: &Inner) -> Result<Vec<(Ipv4Net, Option<u32>)>> {
        let mut ours = HashSet::new();
        for n in inner.nets.values() {
            if let Some(b) = &n.bridge {
                if let Some(idx) = link::index_of(&self.nl, b).await? {
                    ours.insert(idx);
                }
            }
        }
        Ok(link::host_routes(&self.nl)
            .await?
            .into_iter()
            .filter(|(_, oif)| !oif.is_some_and(|i| ours.contains(&i)))
            .collect())
    }

    /// `docker network create`.
    pub async fn create(&self, req: NetworkCreate) -> Result<NetworkInfo> {
        let mut inner = self.inner.lock().await;
        if !valid_name(&req.name) {
            return Err(NetError::InvalidName(req.name));
        }
        if inner.nets.values().any(|n| n.name == req.name) {
            return Err(NetError::DuplicateName(req.name));
        }
        if !(req.driver.is_empty() || req.driver == "bridge") {
            return Err(NetError::UnsupportedDriver(req.driver));
        }
        let id = random_id();
        let bridge = match req.options.get(OPT_BRIDGE_NAME) {
            Some(b) if !b.is_empty() => b.clone(),
            _ => format!("br-{}", short_id(&id)),
        };
        if !valid_ifname(&bridge) {
            return Err(NetError::InvalidValue {
                what: "bridge name",
                value: bridge,
            });
        }
        if let Some(other) = inner
            .nets
            .values()
            .find(|n| n.bridge.as_deref() == Some(&bridge))
        {
            return Err(NetError::InvalidValue {
                what: "bridge name",
                value: format!("{bridge} (used by network {})", other.name),
            });
        }
        let mtu = match req.options.get(OPT_MTU) {
            Some(m) => m
                .parse()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| NetError::InvalidValue {
                    what: "MTU",
                    value: m.clone(),
                })?,
            None => self.cfg.mtu,
        };
        let routes = self.foreign_routes(&inner).await?;
        let ipam = match req.subnet.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let subnet = ipam::parse_subnet(s)?;
                if let Some(other) = inner
                    .nets
                    .values()
                    .find(|n| n.ipam.is_some_and(|i| ipam::overlaps(&i.subnet, &subnet)))
                {
                    return Err(NetError::Overlap {
                        subnet: subnet.to_string(),
                        with: format!(
                            "network {} ({})",
                            other.name,
                            other.ipam.map(|i| i.subnet.to_string()).unwrap_or_default()
                        ),
                    });
                }
                if let Some((r, _)) = routes.iter().find(|(r, _)| ipam::overlaps(r, &subnet)) {
                    return Err(NetError::Overlap {
                        subnet: subnet.to_string(),
                        with: format!("host route {r}"),
                    });
                }
                IpamV4::from_user(subnet, req.gateway.as_deref(), req.ip_range.as_deref())?
            }
            None => {
                if req.gateway.as_deref().is_some_and(|g| !g.is_empty()) {
                    return Err(NetError::InvalidValue {
                        what: "gateway (requires --subnet)",
                        value: req.gateway.unwrap_or_default(),
                    });
                }
                let mut taken: Vec<Ipv4Net> = inner
                    .nets
                    .values()
                    .filter_map(|n| n.ipam.map(|i| i.subnet))
                    .collect();
                taken.extend(routes.iter().map(|(r, _)| *r));
                let subnet = ipam::carve(&self.cfg.default_pool, self.cfg.pool_prefix, &taken)?;
                IpamV4::from_user(subnet, None, req.ip_range.as_deref())?
            }
        };
        let rec = NetworkRecord {
            id: id.clone(),
            name: req.name.clone(),
            driver: Driver::Bridge,
            created: now_rfc3339(),
            predefined: false,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels,
            options: req.options,
            ipam: Some(ipam),
            bridge: Some(bridge.clone()),
            mtu,
            endpoints: BTreeMap::new(),
        };

        let cidr = Ipv4Net::new(ipam.gateway, ipam.subnet.prefix_len()).unwrap_or_default();
        let created = link::ensure_bridge(&self.nl, &bridge, cidr, mtu).await?;
        inner.nets.insert(id.clone(), rec.clone());
        let committed = async {
            nft::apply(&nft::ruleset(&self.cfg.nft_table, &inner.rules())).await?;
            store::save(&self.cfg.state_dir, &rec)
        }
        .await;
        if let Err(e) = committed {
            inner.nets.remove(&id);
            if let Err(e2) = nft::apply(&nft::ruleset(&self.cfg.nft_table, &inner.rules())).await {
                tracing::warn!(error = %e2, "restoring nftables rules after a failed create");
            }
            if created {
                let _ = link::delete_link(&self.nl, &bridge).await;
            }
            return Err(e);
        }
        enable_forwarding();
        self.start_dns(&mut inner, &id).await;
        tracing::info!(network = %rec.name, %bridge, subnet = %ipam.subnet, "network created");
        Ok(self.info(&rec))
    }

    async fn start_dns(&self, inner: &mut Inner, id: &str) {
        let Some(rec) = inner.nets.get(id) else {
            return;
        };
        let (Some(ipam), false) = (rec.ipam, rec.predefined) else {
            return;
        };
        if !self.cfg.embedded_dns || inner.dns.contains_key(id) {
            return;
        }
        let upstreams: Vec<SocketAddr> = ResolvConf::host()
            .nameservers
            .into_iter()
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        let bind = SocketAddrV4::new(ipam.gateway, self.cfg.dns_port);
        match DnsServer::start(bind, id.to_string(), self.dns_table.clone(), upstreams).await {
            Ok(s) => {
                inner.dns.insert(id.to_string(), s);
            }
            Err(e) => {
                tracing::warn!(network = %rec.name, %bind, error = %e, "embedded DNS not started")
            }
        }
    }

    fn dns_register(&self, rec: &NetworkRecord, container_id: &str, ep: &EndpointRecord) {
        if rec.predefined {
            return;
        }
        let mut names = vec![
            ep.container_name.clone(),
            short_id(container_id).to_string(),
        ];
        names.extend(ep.aliases.iter().cloned());
        if let Ok(mut t) = self.dns_table.write() {
            t.add(&rec.id, container_id, &names, ep.ipv4);
        }
    }

    /// `docker network ls`: all networks, predefined ones included, oldest first.
    pub async fn list(&self) -> Vec<NetworkInfo> {
        let inner = self.inner.lock().await;
        let mut recs: Vec<&NetworkRecord> = inner.nets.values().collect();
        recs.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        recs.into_iter().map(|r| self.info(r)).collect()
    }

    /// `docker network inspect` by name, full id, or unique id prefix.
    pub async fn inspect(&self, key: &str) -> Result<NetworkInfo> {
        let inner = self.inner.lock().await;
        inner.resolve(key).map(|r| self.info(r))
    }

    fn info(&self, r: &NetworkRecord) -> NetworkInfo {
        let prefix = r.ipam.map(|i| i.subnet.prefix_len()).unwrap_or(0);
        NetworkInfo {
            name: r.name.clone(),
            id: r.id.clone(),
            created: r.created.clone(),
            scope: "local".into(),
            driver: r.driver.as_str().into(),
            enable_ipv4: r.driver == Driver::Bridge,
            enable_ipv6: false,
            ipam: IpamInfo {
                driver: "default".into(),
                options: None,
                config: r
                    .ipam
                    .iter()
                    .map(|i| IpamConfig {
                        subnet: i.subnet.to_string(),
                        gateway: i.gateway.to_string(),
                        ip_range: i.ip_range.map(|r| r.to_string()),
                    })
                    .collect(),
            },
            internal: r.internal,
            attachable: r.attachable,
            ingress: false,
            config_only: false,
            containers: r
                .endpoints
                .iter()
                .map(|(cid, e)| {
                    (
                        cid.clone(),
                        EndpointInfo {
                            name: e.container_name.clone(),
                            endpoint_id: e.endpoint_id.clone(),
                            mac_address: e.mac.to_string(),
                            ipv4_address: format!("{}/{prefix}", e.ipv4),
                            ipv6_address: String::new(),
                        },
                    )
                })
                .collect(),
            options: r.options.clone(),
            labels: r.labels.clone(),
        }
    }

    /// `docker network rm`: refused for predefined networks and while endpoints exist.
    pub async fn remove(&self, key: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let rec = inner.resolve(key)?.clone();
        if rec.predefined {
            return Err(NetError::Predefined(rec.name));
        }
        if !rec.endpoints.is_empty() {
            return Err(NetError::ActiveEndpoints {
                name: rec.name,
                id: rec.id,
            });
        }
        self.remove_locked(&mut inner, &rec).await
    }

    async fn remove_locked(&self, inner: &mut Inner, rec: &NetworkRecord) -> Result<()> {
        inner.dns.remove(&rec.id);
        if let Ok(mut t) = self.dns_table.write() {
            t.remove_network(&rec.id);
        }
        inner.nets.remove(&rec.id);
        if let Err(e) = nft::apply(&nft::ruleset(&self.cfg.nft_table, &inner.rules())).await {
            inner.nets.insert(rec.id.clone(), rec.clone());
            self.start_dns(inner, &rec.id).await;
            return Err(e);
        }
        if let Some(b) = &rec.bridge {
            link::delete_link(&self.nl, b).await?;
        }
        store::delete(&self.cfg.state_dir, &rec.id)?;
        tracing::info!(network = %rec.name, "network removed");
        Ok(())
    }

    /// `docker network prune`: removes user-defined networks without endpoints; returns
    /// their names.
    pub async fn prune(&self) -> Result<Vec<String>> {
        let mut inner = self.inner.lock().await;
        let idle: Vec<NetworkRecord> = inner
            .nets
            .values()
            .filter(|n| !n.predefined && n.endpoints.is_empty())
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for rec in idle {
            self.remove_locked(&mut inner, &rec).await?;
            removed.push(rec.name);
        }
        Ok(removed)
    }

    /// Attaches a container's namespace to a network: a veth pair with the host end on the
    /// bridge and the other end inside as eth0 (eth1, ...), an address from IPAM, and the
    /// default route if this is the container's first network.
    pub async fn connect(&self, network: &str, req: EndpointRequest) -> Result<Endpoint> {
        let mut inner = self.inner.lock().await;
        let id = inner.resolve_id(network)?;
        let rec = &inner.nets[&id];
        let (Some(bridge), Some(ipam)) = (rec.bridge.clone(), rec.ipam) else {
            return Err(NetError::NoEndpoints(rec.name.clone()));
        };
        if req.container_id.is_empty() {
            return Err(NetError::InvalidValue {
                what: "container id",
                value: String::new(),
            });
        }
        if rec.endpoints.contains_key(&req.container_id) {
            return Err(NetError::AlreadyConnected {
                container: req.container_name.clone(),
                network: rec.name.clone(),
            });
        }
        if let Some(ip) = req.ipv4 {
            self.releases.wait_for(&id, ip).await;
        }
        let rec = &inner.nets[&id];
        let mut used: HashSet<Ipv4Addr> = rec.endpoints.values().map(|e| e.ipv4).collect();
        used.extend(self.releases.held(&id));
        let ip = ipam.allocate(&used, req.ipv4, &rec.name)?;
        let mac = req.mac.unwrap_or_else(|| MacAddr::from_ipv4(ip));
        let theirs: Vec<&EndpointRecord> = inner
            .nets
            .values()
            .filter_map(|n| n.endpoints.get(&req.container_id))
            .collect();
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !theirs.iter().any(|e| &e.ifname == n))
            .unwrap_or_else(|| "eth0".into());
        // An internal network leads nowhere, so (as in Docker) it never gets the default route.
        let default_route = !rec.internal && !theirs.iter().any(|e| e.default_route);
        let host_if = host_ifname(&id, &req.container_id);

        let bridge_index = link::index_of(&self.nl, &bridge).await?.ok_or_else(|| {
            NetError::netlink(
                format!("find bridge {bridge}"),
                rtnetlink::Error::NamespaceError(format!("bridge {bridge} is missing")),
            )
        })?;
        let ns = std::fs::File::open(&req.netns_path).map_err(|e| NetError::Netns {
            path: req.netns_path.clone(),
            op: "open",
            source: e,
        })?;
        // The name is derived from (network, container): one left by a crash is ours.
        link::delete_link(&self.nl, &host_if).await?;
        let rec = &inner.nets[&id];
        link::create_veth(
            &self.nl,
            &VethSpec {
                host_name: &host_if,
                bridge_index,
                peer_name: &ifname,
                peer_netns_fd: ns.as_raw_fd(),
                peer_mac: mac,
                mtu: rec.mtu,
            },
        )
        .await?;
        drop(ns);
        let addr = Ipv4Net::new(ip, ipam.subnet.prefix_len()).unwrap_or_default();
        let inside = {
            let ifname = ifname.clone();
            let gw = ipam.gateway;
            in_netns(&req.netns_path, move || async move {
                link::configure_container_side(&ifname, addr, gw, default_route).await
            })
            .await
        };
        let ep = EndpointRecord {
            endpoint_id: random_id(),
            container_name: req.container_name.trim_start_matches('/').to_string(),
            aliases: req.aliases.clone(),
            netns_path: req.netns_path.clone(),
            ifname: ifname.clone(),
            host_ifname: host_if.clone(),
            ipv4: ip,
            mac,
            default_route,
            ports: Vec::new(),
        };
        let mut updated = rec.clone();
        updated
            .endpoints
            .insert(req.container_id.clone(), ep.clone());
        if let Err(e) = inside.and_then(|()| store::save(&self.cfg.state_dir, &updated)) {
            let _ = link::delete_link(&self.nl, &host_if).await;
            return Err(e);
        }
        self.dns_register(&updated, &req.container_id, &ep);
        let endpoint = Endpoint {
            network_id: id.clone(),
            network_name: updated.name.clone(),
            endpoint_id: ep.endpoint_id.clone(),
            ifname,
            host_ifname: host_if,
            ipv4: ip,
            prefix_len: ipam.subnet.prefix_len(),
            gateway: ipam.gateway,
            mac,
            default_route,
        };
        inner.nets.insert(id, updated);
        tracing::info!(network = %endpoint.network_name, container = %req.container_id, ip = %ip, "endpoint connected");
        Ok(endpoint)
    }

    /// A container's new name, on every network it is attached to: recorded, and in the
    /// embedded DNS instead of the old one.
    pub async fn rename_container(&self, container_id: &str, new_name: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let ids: Vec<String> = inner
            .nets
            .iter()
            .filter(|(_, n)| n.endpoints.contains_key(container_id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let mut updated = inner.nets[&id].clone();
            let Some(ep) = updated.endpoints.get_mut(container_id) else {
                continue;
            };
            ep.container_name = new_name.trim_start_matches('/').to_string();
            let ep = ep.clone();
            store::save(&self.cfg.state_dir, &updated)?;
            self.dns_register(&updated, container_id, &ep);
            inner.nets.insert(id, updated);
        }
        Ok(())
    }

    /// Detaches a container: stops its proxies, deletes its veth pair (in the background,
    /// see [`crate::release`]) and releases its address.
    pub async fn disconnect(&self, network: &str, container_id: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let id = inner.resolve_id(network)?;
        let rec = &inner.nets[&id];
        if rec.bridge.is_none() {
            return Err(NetError::NoEndpoints(rec.name.clone()));
        }
        if !rec.endpoints.contains_key(container_id) {
            return Err(NetError::NotConnected {
                container: container_id.to_string(),
                network: rec.name.clone(),
            });
        }
        self.drop_endpoint(&mut inner, &id, container_id).await
    }

    async fn drop_endpoint(&self, inner: &mut Inner, id: &str, container_id: &str) -> Result<()> {
        let mut updated = inner.nets[id].clone();
        let Some(ep) = updated.endpoints.remove(container_id) else {
            return Ok(());
        };
        let had_ports = !ep.ports.is_empty();
        inner
            .proxies
            .remove(&(id.to_string(), container_id.to_string()));
        if let Ok(mut t) = self.dns_table.write() {
            t.remove(id, container_id);
        }
        if let Some(index) = link::index_of(&self.nl, &ep.host_ifname).await? {
            self.releases.release(
                &self.nl,
                index,
                ep.host_ifname.clone(),
                id.to_string(),
                ep.ipv4,
            );
        }
        store::save(&self.cfg.state_dir, &updated)?;
        inner.nets.insert(id.to_string(), updated);
        if had_ports {
            nft::apply(&nft::ruleset(&self.cfg.nft_table, &inner.rules())).await?;
        }
        tracing::info!(network = %id, container = %container_id, ip = %ep.ipv4, "endpoint disconnected");
        Ok(())
    }

    /// The container's endpoints on every network it is attached to.
    pub async fn endpoints_of(&self, container_id: &str) -> Vec<Endpoint> {
        let inner = self.inner.lock().await;
        inner
            .nets
            .values()
            .filter_map(|n| {
                let e = n.endpoints.get(container_id)?;
                let ipam = n.ipam?;
                Some(Endpoint {
                    network_id: n.id.clone(),
                    network_name: n.name.clone(),
                    endpoint_id: e.endpoint_id.clone(),
                    ifname: e.ifname.clone(),
                    host_ifname: e.host_ifname.clone(),
                    ipv4: e.ipv4,
                    prefix_len: ipam.subnet.prefix_len(),
                    gateway: ipam.gateway,
                    mac: e.mac,
                    default_route: e.default_route,
                })
            })
            .collect()
    }

    /// The nameserver a container should use when `network` is its primary network: the
    /// embedded server of a user-defined network, or None (use the host's resolvers), as
    /// on Docker's default bridge.
    pub async fn embedded_dns(&self, network: &str) -> Result<Option<Ipv4Addr>> {
        let inner = self.inner.lock().await;
        let id = inner.resolve_id(network)?;
        Ok(inner
            .dns
            .contains_key(&id)
            .then(|| inner.nets[&id].ipam.map(|i| i.gateway))
            .flatten())
    }

    /// Publishes ports of a connected container: binds each host port (the userland proxy)
    /// and installs DNAT rules. All or nothing: on any failure nothing stays bound or
    /// installed. Returns the bindings with the host ports actually bound.
    pub async fn publish(
        &self,
        network: &str,
        container_id: &str,
        ports: &[PortBinding],
    ) -> Result<Vec<PortBinding>> {
        let mut inner = self.inner.lock().await;
        let id = inner.resolve_id(network)?;
        let rec = &inner.nets[&id];
        let Some(ep) = rec.endpoints.get(container_id) else {
            return Err(NetError::NotConnected {
                container: container_id.to_string(),
                network: rec.name.clone(),
            });
        };
        if rec.internal {
            return Err(NetError::InternalNoPorts {
                network: rec.name.clone(),
            });
        }
        let ip = ep.ipv4;
        let mut started = Vec::new();
        for pb in ports {
            // On error `started` drops here, closing the ports bound so far.
            started.push(proxy::start(*pb, ip).await?);
        }
        let actual: Vec<PortBinding> = started.iter().map(|p| p.binding).collect();
        let mut updated = rec.clone();
        if let Some(e) = updated.endpoints.get_mut(container_id) {
            e.ports.extend(actual.iter().copied());
        }
        let previous = inner.nets.insert(id.clone(), updated.clone());
        let committed = async {
            nft::apply(&nft::ruleset(&self.cfg.nft_table, &inner.rules())).await?;
            store::save(&self.cfg.state_dir, &updated)
        }
        .await;
        if let Err(e) = committed {
            if let Some(prev) = previous {
                inner.nets.insert(id.clone(), prev);
            }
            if let Err(e2) = nft::apply(&nft::ruleset(&self.cfg.nft_table, &inner.rules())).await {
                tracing::warn!(error = %e2, "restoring nftables rules after a failed publish");
            }
            return Err(e);
        }
        inner
            .proxies
            .entry((id, container_id.to_string()))
            .or_default()
            .extend(started);
        Ok(actual)
    }

    /// Removes all published ports of a container on a network: rules and proxies.
    pub async fn unpublish(&self, network: &str, container_id: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let id = inner.resolve_id(network)?;
        let mut updated = inner.nets[&id].clone();
        let Some(ep) = updated.endpoints.get_mut(container_id) else {
            return Err(NetError::NotConnected {
                container: container_id.to_string(),
                network: updated.name.clone(),
            });
        };
        if ep.ports.is_empty() {
            return Ok(());
        }
        ep.ports.clear();
        inner
            .proxies
            .remove(&(id.clone(), container_id.to_string()));
        inner.nets.insert(id, updated.clone());
        nft::apply(&nft::ruleset(&self.cfg.nft_table, &inner.rules())).await?;
        store::save(&self.cfg.state_dir, &updated)
    }

    /// After a daemon restart: drops the endpoints (veths, addresses, rules, proxies, DNS
    /// names) of containers not in `live`, and deletes stray `vb*` veths on Berth's bridges
    /// that no endpoint owns. Returns the container ids whose endpoints were removed.
    pub async fn reconcile(&self, live: &[String]) -> Result<Vec<String>> {
        let mut inner = self.inner.lock().await;
        let live: HashSet<&str> = live.iter().map(String::as_str).collect();
        let stale: Vec<(String, String)> = inner
            .nets
            .values()
            .flat_map(|n| {
                n.endpoints
                    .keys()
                    .filter(|c| !live.contains(c.as_str()))
                    .map(|c| (n.id.clone(), c.clone()))
            })
            .collect();
        let mut removed = Vec::new();
        for (id, cid) in stale {
            self.drop_endpoint(&mut inner, &id, &cid).await?;
            if !removed.contains(&cid) {
                removed.push(cid);
            }
        }
        let owned: HashSet<String> = inner
            .nets
            .values()
            .flat_map(|n| n.endpoints.values().map(|e| e.host_ifname.clone()))
            .collect();
        for bridge in inner.nets.values().filter_map(|n| n.bridge.clone()) {
            let Some(idx) = link::index_of(&self.nl, &bridge).await? else {
                continue;
            };
            for port in link::ports_of(&self.nl, idx).await? {
                if port.starts_with("vb") && !owned.contains(&port) {
                    tracing::info!(%port, %bridge, "deleting stray veth");
                    link::delete_link(&self.nl, &port).await?;
                }
            }
        }
        nft::apply(&nft::ruleset(&self.cfg.nft_table, &inner.rules())).await?;
        Ok(removed)
    }

    /// Stops proxies and DNS servers but leaves bridges, veths and rules in place, as a
    /// daemon does when it exits while containers keep running.
    pub async fn shutdown(&self) {
        let mut inner = self.inner.lock().await;
        inner.proxies.clear();
        inner.dns.clear();
        self.releases.finish().await;
    }

    /// Removes everything Berth configured: endpoints, bridges, the nftables table and the
    /// state files. For uninstalling and for tests; containers lose their network.
    pub async fn purge(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        inner.proxies.clear();
        inner.dns.clear();
        self.releases.finish().await;
        let nets: Vec<NetworkRecord> = std::mem::take(&mut inner.nets).into_values().collect();
        let mut first_err = None;
        for rec in &nets {
            for ep in rec.endpoints.values() {
                if let Err(e) = link::delete_link(&self.nl, &ep.host_ifname).await {
                    first_err.get_or_insert(e);
                }
            }
            if let Some(b) = &rec.bridge {
                if let Err(e) = link::delete_link(&self.nl, b).await {
                    first_err.get_or_insert(e);
                }
            }
            if let Err(e) = store::delete(&self.cfg.state_dir, &rec.id) {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = nft::apply(&nft::delete_table(&self.cfg.nft_table)).await {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Routing between bridges and the outside needs forwarding; like Docker, switch it on.
fn enable_forwarding() {
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        tracing::warn!(error = %e, "cannot enable IPv4 forwarding");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("my-net_1.x"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        let h = host_ifname("net", "ctr");
        assert_eq!(h.len(), 14);
        assert_eq!(h, host_ifname("net", "ctr"));
        assert_ne!(h, host_ifname("net", "ctr2"));
    }
}
