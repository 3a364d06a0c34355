//! Public request and result types. `NetworkInfo` serializes exactly like Docker's
//! `network inspect`, so the daemon can hand it to the Engine API unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::NetError;

/// What `docker network create` asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkCreate {
    pub name: String,
    /// Only "bridge" (or empty, meaning bridge) is supported.
    pub driver: String,
    /// IPv4 CIDR, e.g. "10.1.2.0/24"; picked from the default pool when absent.
    pub subnet: Option<String>,
    /// Defaults to the first host address of the subnet.
    pub gateway: Option<String>,
    /// Sub-range of the subnet that dynamic allocation draws from.
    pub ip_range: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    /// Driver options, e.g. `com.docker.network.bridge.name`.
    pub options: BTreeMap<String, String>,
}

/// Driver option naming the Linux bridge of a network.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// Driver option setting the MTU of a network's interfaces.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";

/// Docker's network inspect document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInfo {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: IpamInfo,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_only: bool,
    pub containers: BTreeMap<String, EndpointInfo>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamInfo {
    pub driver: String,
    pub options: Option<BTreeMap<String, String>>,
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: String,
    pub gateway: String,
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none", default)]
    pub ip_range: Option<String>,
}

/// One entry of `Containers` in network inspect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInfo {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// What the daemon asks for when it attaches a container to a network.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    pub container_id: String,
    /// Without the leading '/'.
    pub container_name: String,
    /// `--network-alias` names, resolvable by the embedded DNS on user-defined networks.
    pub aliases: Vec<String>,
    /// The bind-mounted network namespace file of the container (see `create_netns`).
    pub netns_path: std::path::PathBuf,
    /// `--ip`; must lie in the subnet (and ip range if any) and be free.
    pub ipv4: Option<Ipv4Addr>,
    /// `--mac-address`; derived from the IP (02:42:xx:xx:xx:xx) when absent.
    pub mac: Option<MacAddr>,
}

/// A container's attachment to one network, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    pub network_name: String,
    pub endpoint_id: String,
    /// Interface name inside the container: eth0, eth1, ...
    pub ifname: String,
    /// Host end of the veth pair, enslaved to the bridge.
    pub host_ifname: String,
    pub ipv4: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: MacAddr,
    /// Whether this endpoint carries the container's default route.
    pub default_route: bool,
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(NetError::InvalidValue {
                what: "protocol",
                value: s.to_string(),
            }),
        }
    }
}

/// One `-p host_ip:host_port:container_port/proto`. `host_port` 0 asks for a free port;
/// the bindings `publish` returns carry the port actually bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortBinding {
    pub proto: Proto,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
}

impl PortBinding {
    /// A TCP binding on all host addresses.
    pub fn tcp(host_port: u16, container_port: u16) -> Self {
        PortBinding {
            proto: Proto::Tcp,
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port,
            container_port,
        }
    }

    /// A UDP binding on all host addresses.
    pub fn udp(host_port: u16, container_port: u16) -> Self {
        PortBinding {
            proto: Proto::Udp,
            ..Self::tcp(host_port, container_port)
        }
    }
}

/// An Ethernet address; serialized as "02:42:ac:11:00:02".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Docker's scheme: 02:42 followed by the IPv4 address, unique within a network.
    pub fn from_ipv4(ip: Ipv4Addr) -> Self {
        let o = ip.octets();
        MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::InvalidValue {
            what: "MAC address",
            value: s.to_string(),
        };
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() || out[0] & 1 == 1 {
            // Trailing groups, or a multicast address no interface may carry.
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip_and_rejects() {
        let m: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert_eq!(MacAddr::from_ipv4(Ipv4Addr::new(172, 17, 0, 2)), m);
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "zz:42:ac:11:00:02",
            "01:00:5e:00:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn inspect_field_names_are_dockers() {
        let info = EndpointInfo {
            name: "web".into(),
            endpoint_id: "e".into(),
            mac_address: "m".into(),
            ipv4_address: "10.0.0.2/24".into(),
            ipv6_address: String::new(),
        };
        let v = serde_json::to_value(&info).unwrap();
        for k in [
            "Name",
            "EndpointID",
            "MacAddress",
            "IPv4Address",
            "IPv6Address",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
    }
}
