//! Rendering of the `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` files the daemon
//! bind-mounts into containers.

use std::net::{IpAddr, Ipv4Addr};

/// `/etc/hostname`.
pub fn render_hostname(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// `/etc/hosts`: the loopback names, `--add-host` entries (name, address) in order, then
/// the container's own addresses mapped to its hostname (and aliases, e.g. its name).
pub fn render_hosts(
    hostname: &str,
    own: &[Ipv4Addr],
    aliases: &[String],
    extra_hosts: &[(String, IpAddr)],
) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra_hosts {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    let mut names = vec![hostname.to_string()];
    names.extend(aliases.iter().filter(|a| a.as_str() != hostname).cloned());
    for ip in own {
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    out
}

/// The user's DNS flags (`--dns`, `--dns-search`, `--dns-option`).
#[derive(Debug, Clone, Default)]
pub struct DnsSettings {
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// What a resolv.conf says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    pub fn parse(text: &str) -> Self {
        let mut rc = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A zone index ("fe80::1%eth0") is meaningless inside a container.
                    if let Some(ip) = words.next().and_then(|w| w.split('%').next()?.parse().ok()) {
                        rc.nameservers.push(ip);
                    }
                }
                // The last of domain/search wins, as in glibc.
                Some("search") | Some("domain") => rc.search = words.map(str::to_string).collect(),
                Some("options") => rc.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        rc
    }

    /// The host's `/etc/resolv.conf`; empty when unreadable.
    pub fn host() -> Self {
        std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.search.is_empty() {
            out.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// Google's resolvers, Docker's fallback when the host has only loopback nameservers.
const FALLBACK: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
];

/// A container's `/etc/resolv.conf`.
///
/// With `embedded` (the DNS server of a user-defined network) it is the only nameserver
/// and `ndots:0` is added, so single names are asked as is before any search domain.
/// Otherwise `--dns` or the host's nameservers minus loopback ones, which are unreachable
/// from a container's namespace. Search and options come from the flags or else the host.
pub fn render_resolv_conf(
    host: &ResolvConf,
    user: &DnsSettings,
    embedded: Option<Ipv4Addr>,
) -> String {
    let search = if user.search.is_empty() {
        host.search.clone()
    } else {
        user.search
            .iter()
            .filter(|s| s.as_str() != ".")
            .cloned()
            .collect()
    };
    let mut options = if user.options.is_empty() {
        host.options.clone()
    } else {
        user.options.clone()
    };
    let nameservers = match embedded {
        Some(ip) => {
            if !options.iter().any(|o| o.starts_with("ndots:")) {
                options.push("ndots:0".into());
            }
            vec![IpAddr::V4(ip)]
        }
        None if !user.servers.is_empty() => user.servers.clone(),
        None => {
            let usable: Vec<IpAddr> = host
                .nameservers
                .iter()
                .filter(|ip| !ip.is_loopback())
                .copied()
                .collect();
            if usable.is_empty() {
                FALLBACK.to_vec()
            } else {
                usable
            }
        }
    };
    ResolvConf {
        nameservers,
        search,
        options,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "# generated\nsearch corp.example lab.example\nnameserver 127.0.0.53\nnameserver 192.0.2.53 ; office\nnameserver fe80::1%eth0\noptions edns0 trust-ad\n";

    #[test]
    fn hosts_has_loopback_extras_and_self() {
        let h = render_hosts(
            "abc123",
            &[Ipv4Addr::new(10, 0, 0, 2)],
            &["web".into()],
            &[("db.local".into(), "192.0.2.9".parse().unwrap())],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[lines.len() - 2], "192.0.2.9\tdb.local");
        assert_eq!(lines[lines.len() - 1], "10.0.0.2\tabc123 web");
    }

    #[test]
    fn resolv_conf_from_host_drops_loopback() {
        let host = ResolvConf::parse(HOST);
        assert_eq!(host.nameservers.len(), 3);
        let out = render_resolv_conf(&host, &DnsSettings::default(), None);
        assert_eq!(
            out,
            "search corp.example lab.example\nnameserver 192.0.2.53\nnameserver fe80::1\noptions edns0 trust-ad\n"
        );
        let only_lo = ResolvConf::parse("nameserver 127.0.0.53\n");
        assert!(render_resolv_conf(&only_lo, &DnsSettings::default(), None)
            .contains("nameserver 8.8.8.8\n"));
    }

    #[test]
    fn resolv_conf_flags_and_embedded() {
        let host = ResolvConf::parse(HOST);
        let user = DnsSettings {
            servers: vec!["192.0.2.1".parse().unwrap()],
            search: vec!["svc.example".into()],
            options: vec!["timeout:2".into()],
        };
        assert_eq!(
            render_resolv_conf(&host, &user, None),
            "search svc.example\nnameserver 192.0.2.1\noptions timeout:2\n"
        );
        let emb = render_resolv_conf(
            &host,
            &DnsSettings::default(),
            Some(Ipv4Addr::new(10, 0, 0, 1)),
        );
        assert_eq!(
            emb,
            "search corp.example lab.example\nnameserver 10.0.0.1\noptions edns0 trust-ad ndots:0\n"
        );
        assert_eq!(render_hostname("h"), "h\n");
    }
}
