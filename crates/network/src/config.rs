//! Configuration of a [`crate::NetworkManager`].

use std::path::PathBuf;

use ipnet::Ipv4Net;

/// Everything host-specific is configurable so Berth can run beside dockerd (docker0,
/// 172.17.0.0/16, its iptables chains) and tests can use names of their own.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Directory holding one JSON file per network (e.g. /var/lib/berth/networks).
    pub state_dir: PathBuf,
    /// Linux bridge of the predefined "bridge" network.
    pub default_bridge: String,
    /// Gateway address and prefix of the default bridge (Docker's `--bip`).
    pub default_bridge_cidr: Ipv4Net,
    /// Pool that user-defined networks without `--subnet` are carved from.
    pub default_pool: Ipv4Net,
    /// Prefix length of the subnets carved from `default_pool`.
    pub pool_prefix: u8,
    /// MTU of bridges and veths unless a network says otherwise.
    pub mtu: u32,
    /// Name of Berth's nftables table (family inet); no other table is touched.
    pub nft_table: String,
    /// Run the embedded DNS server on user-defined networks.
    pub embedded_dns: bool,
    /// Port the embedded DNS server listens on at each gateway address.
    pub dns_port: u16,
}

impl NetConfig {
    /// Defaults for a daemon whose state lives under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        NetConfig {
            state_dir: state_dir.into(),
            default_bridge: "berth0".into(),
            default_bridge_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(172, 29, 0, 1), 24)
                .unwrap_or_default(),
            default_pool: Ipv4Net::new(std::net::Ipv4Addr::new(172, 30, 0, 0), 16)
                .unwrap_or_default(),
            pool_prefix: 24,
            mtu: 1500,
            nft_table: "berth".into(),
            embedded_dns: true,
            dns_port: 53,
        }
    }
}
