//! IPv4 address management: validating a network's subnet, gateway and range, choosing
//! a subnet from a pool, and allocating container addresses. Pure logic: the set of
//! used addresses comes from the persisted endpoints, the single source of truth.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// The IPv4 configuration of one bridge network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamV4 {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Dynamic allocation draws from here when set.
    pub ip_range: Option<Ipv4Net>,
}

/// Largest prefix length accepted: a /31 or /32 has no room for a gateway and a container.
const MAX_PREFIX: u8 = 30;

pub fn parse_subnet(s: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = s
        .trim()
        .parse()
        .map_err(|_| NetError::InvalidSubnet(s.to_string()))?;
    if net.prefix_len() > MAX_PREFIX || net.addr() != net.network() {
        return Err(NetError::InvalidSubnet(s.to_string()));
    }
    Ok(net)
}

fn parse_addr(what: &'static str, s: &str) -> Result<Ipv4Addr> {
    s.trim().parse().map_err(|_| NetError::InvalidValue {
        what,
        value: s.to_string(),
    })
}

fn is_host_addr(net: &Ipv4Net, ip: Ipv4Addr) -> bool {
    net.contains(&ip) && ip != net.network() && ip != net.broadcast()
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

impl IpamV4 {
    /// Checks a user's `--subnet/--gateway/--ip-range` triple; the gateway defaults to the
    /// first host address of the subnet (the `.1` users expect).
    pub fn from_user(
        subnet: Ipv4Net,
        gateway: Option<&str>,
        ip_range: Option<&str>,
    ) -> Result<Self> {
        let range = match ip_range {
            Some(r) if !r.trim().is_empty() => {
                let r = parse_subnet(r).map_err(|_| NetError::InvalidValue {
                    what: "ip range",
                    value: r.to_string(),
                })?;
                if !subnet.contains(&r) {
                    return Err(NetError::RangeOutsideSubnet {
                        range: r.to_string(),
                        subnet: subnet.to_string(),
                    });
                }
                Some(r)
            }
            _ => None,
        };
        let gateway = match gateway {
            Some(g) if !g.trim().is_empty() => {
                let g = parse_addr("gateway", g)?;
                if !is_host_addr(&subnet, g) {
                    return Err(NetError::GatewayOutsideSubnet {
                        gateway: g,
                        subnet: subnet.to_string(),
                    });
                }
                g
            }
            _ => first_host(&subnet),
        };
        Ok(IpamV4 {
            subnet,
            gateway,
            ip_range: range,
        })
    }

    /// A subnet given as gateway/prefix ("172.29.0.1/24"), as the default bridge is configured.
    pub fn from_gateway_cidr(cidr: Ipv4Net) -> Result<Self> {
        let subnet = cidr.trunc();
        if cidr.prefix_len() > MAX_PREFIX || !is_host_addr(&subnet, cidr.addr()) {
            return Err(NetError::InvalidSubnet(cidr.to_string()));
        }
        Ok(IpamV4 {
            subnet,
            gateway: cidr.addr(),
            ip_range: None,
        })
    }

    fn pool(&self) -> Ipv4Net {
        self.ip_range.unwrap_or(self.subnet)
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        is_host_addr(&self.subnet, ip) && ip != self.gateway
    }

    /// The lowest free address (so a released address is the next one handed out), or the
    /// requested static one after checking it.
    pub fn allocate(
        &self,
        used: &HashSet<Ipv4Addr>,
        requested: Option<Ipv4Addr>,
        network: &str,
    ) -> Result<Ipv4Addr> {
        if let Some(ip) = requested {
            if !self.usable(ip) || !self.pool().contains(&ip) {
                return Err(NetError::AddressOutOfRange {
                    ip,
                    network: network.to_string(),
                });
            }
            if used.contains(&ip) {
                return Err(NetError::AddressInUse {
                    ip,
                    network: network.to_string(),
                });
            }
            return Ok(ip);
        }
        self.pool()
            .hosts()
            .find(|ip| self.usable(*ip) && !used.contains(ip))
            .ok_or_else(|| NetError::AddressesExhausted(network.to_string()))
    }
}

fn first_host(net: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// The first `prefix`-sized subnet of `pool` that overlaps nothing in `taken`.
pub fn carve(pool: &Ipv4Net, prefix: u8, taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    let prefix = prefix.max(pool.prefix_len());
    let subnets = pool.subnets(prefix).map_err(|_| NetError::PoolExhausted)?;
    for candidate in subnets {
        if !taken.iter().any(|t| overlaps(t, &candidate)) {
            return Ok(candidate);
        }
    }
    Err(NetError::PoolExhausted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_validation() {
        assert!(parse_subnet("10.1.2.0/24").is_ok());
        for bad in [
            "10.1.2.3/24",
            "10.1.2.0/31",
            "nonsense",
            "fd00::/64",
            "10.1.2.0",
        ] {
            assert!(parse_subnet(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gateway_defaults_to_first_host_and_must_be_inside() {
        let ipam = IpamV4::from_user(net("10.1.2.0/24"), None, None).unwrap();
        assert_eq!(ipam.gateway, Ipv4Addr::new(10, 1, 2, 1));
        let err = IpamV4::from_user(net("10.1.2.0/24"), Some("10.1.3.1"), None).unwrap_err();
        assert!(
            matches!(err, NetError::GatewayOutsideSubnet { .. }),
            "{err}"
        );
        let err = IpamV4::from_user(net("10.1.2.0/24"), Some("10.1.2.255"), None).unwrap_err();
        assert!(
            matches!(err, NetError::GatewayOutsideSubnet { .. }),
            "{err}"
        );
        let err = IpamV4::from_user(net("10.1.2.0/24"), None, Some("10.1.3.0/28")).unwrap_err();
        assert!(matches!(err, NetError::RangeOutsideSubnet { .. }), "{err}");
    }

    #[test]
    fn allocation_skips_gateway_reuses_lowest_and_checks_static() {
        let ipam = IpamV4::from_user(net("10.1.2.0/29"), None, None).unwrap();
        let mut used = HashSet::new();
        let a = ipam.allocate(&used, None, "n").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 1, 2, 2));
        used.insert(a);
        let b = ipam.allocate(&used, None, "n").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 1, 2, 3));
        used.insert(b);
        used.remove(&a);
        assert_eq!(ipam.allocate(&used, None, "n").unwrap(), a);
        assert!(matches!(
            ipam.allocate(&used, Some(b), "n"),
            Err(NetError::AddressInUse { .. })
        ));
        for bad in [[10, 1, 2, 1], [10, 1, 2, 7], [10, 1, 3, 2]] {
            assert!(matches!(
                ipam.allocate(&used, Some(Ipv4Addr::from(bad)), "n"),
                Err(NetError::AddressOutOfRange { .. })
            ));
        }
        used.extend((2..=6).map(|i| Ipv4Addr::new(10, 1, 2, i)));
        assert!(matches!(
            ipam.allocate(&used, None, "n"),
            Err(NetError::AddressesExhausted(_))
        ));
    }

    #[test]
    fn range_limits_dynamic_and_static() {
        let ipam = IpamV4::from_user(net("10.1.0.0/16"), None, Some("10.1.5.0/24")).unwrap();
        assert_eq!(ipam.gateway, Ipv4Addr::new(10, 1, 0, 1));
        let used = HashSet::new();
        assert_eq!(
            ipam.allocate(&used, None, "n").unwrap(),
            Ipv4Addr::new(10, 1, 5, 1)
        );
        assert!(ipam
            .allocate(&used, Some(Ipv4Addr::new(10, 1, 0, 9)), "n")
            .is_err());
    }

    #[test]
    fn carving_skips_taken() {
        let pool = net("172.30.0.0/16");
        let got = carve(&pool, 24, &[net("172.30.0.0/24"), net("172.30.1.128/25")]).unwrap();
        assert_eq!(got, net("172.30.2.0/24"));
        assert!(carve(&net("10.0.0.0/24"), 24, &[net("10.0.0.0/8")]).is_err());
    }
}
