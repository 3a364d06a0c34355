//! Netlink plumbing: bridges, veth pairs, addresses and routes, via rtnetlink (never `ip`).
//!
//! A [`Handle`] is bound to the network namespace of the thread that opened it, so the
//! manager keeps one for the host and opens short-lived ones inside container namespaces.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::error::{NetError, Result};
use crate::types::MacAddr;

/// Opens a netlink connection in the current thread's namespace; its I/O task runs on the
/// current tokio runtime.
pub(crate) fn open() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::NetlinkConnection)?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The index of interface `name`, or None when there is none.
pub(crate) async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(e) if NetError::is_netlink_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(NetError::netlink(format!("get link {name}"), e)),
    }
}

async fn require_index(h: &Handle, name: &str) -> Result<u32> {
    index_of(h, name).await?.ok_or_else(|| {
        NetError::netlink(
            format!("find link {name}"),
            rtnetlink::Error::NamespaceError(format!("no interface named {name}")),
        )
    })
}

/// Sets an interface up, opening a connection in the current namespace (for `lo` of a
/// fresh namespace).
pub(crate) async fn set_up_by_name(name: &str) -> Result<()> {
    let h = open()?;
    let idx = require_index(&h, name).await?;
    set_up(&h, idx).await
}

async fn set_up(h: &Handle, idx: u32) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("set link {idx} up"), e))
}

/// Makes sure bridge `name` exists, is up, and carries `gateway/prefix`. Returns whether
/// the bridge had to be created (so a failed network creation knows what to undo).
pub(crate) async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Net,
    mtu: u32,
) -> Result<bool> {
    let (idx, created) = match index_of(h, name).await? {
        Some(idx) => (idx, false),
        None => {
            h.link()
                // A bridge without an explicit MAC takes the lowest of its ports' MACs, so it
                // would change whenever a container leaves, and every neighbour's cached
                // gateway address would go stale. A fixed address avoids that.
                .add(
                    LinkBridge::new(name)
                        .mtu(mtu)
                        .address(random_mac().0.to_vec())
                        .build(),
                )
                .execute()
                .await
                .map_err(|e| NetError::netlink(format!("create bridge {name}"), e))?;
            (require_index(h, name).await?, true)
        }
    };
    let configured = async {
        let res = h
            .address()
            .add(idx, IpAddr::V4(gateway.addr()), gateway.prefix_len())
            .execute()
            .await;
        match res {
            Err(e) if !NetError::is_netlink_errno(&e, libc::EEXIST) => {
                return Err(NetError::netlink(format!("add {gateway} to {name}"), e))
            }
            _ => {}
        }
        set_up(h, idx).await
    }
    .await;
    if let Err(e) = configured {
        if created {
            let _ = delete_link(h, name).await;
        }
        return Err(e);
    }
    Ok(created)
}

/// Enslaves interface `name` to bridge `master` if the interface exists; returns whether
/// it did (a bridge recreated after a crash gets its surviving veths back this way).
pub(crate) async fn attach_to_bridge(h: &Handle, name: &str, master: &str) -> Result<bool> {
    let (Some(idx), Some(m)) = (index_of(h, name).await?, index_of(h, master).await?) else {
        return Ok(false);
    };
    h.link()
        .set(LinkUnspec::new_with_index(idx).controller(m).up().build())
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("attach {name} to {master}"), e))?;
    Ok(true)
}

/// A random unicast, locally administered Ethernet address.
fn random_mac() -> MacAddr {
    let id = crate::util::random_id();
    let mut b = [0u8; 6];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&id[i * 2..i * 2 + 2], 16).unwrap_or(0x42);
    }
    b[0] = (b[0] & 0xfe) | 0x02;
    MacAddr(b)
}

/// Deletes interface `name`; a missing one is fine. Deleting one end of a veth pair
/// deletes both.
pub(crate) async fn delete_link(h: &Handle, name: &str) -> Result<()> {
    let Some(idx) = index_of(h, name).await? else {
        return Ok(());
    };
    delete_index(h, idx, name).await
}

/// Deletes the interface with index `idx` (`name` is for the error); a missing one is
/// fine. An index is not handed out again soon, so it names the device it was read from
/// even after a new device took the name.
pub(crate) async fn delete_index(h: &Handle, idx: u32, name: &str) -> Result<()> {
    match h.link().del(idx).execute().await {
        Ok(()) => Ok(()),
        Err(e) if NetError::is_netlink_errno(&e, libc::ENODEV) => Ok(()),
        Err(e) => Err(NetError::netlink(format!("delete link {name}"), e)),
    }
}

/// What a new veth pair looks like.
pub(crate) struct VethSpec<'a> {
    pub host_name: &'a str,
    pub bridge_index: u32,
    pub peer_name: &'a str,
    pub peer_netns_fd: RawFd,
    pub peer_mac: MacAddr,
    pub mtu: u32,
}

/// Creates a veth pair whose host end is enslaved to the bridge and up, and whose peer is
/// born directly inside the container namespace under its final name.
pub(crate) async fn create_veth(h: &Handle, spec: &VethSpec<'_>) -> Result<()> {
    let peer: LinkMessage = LinkMessageBuilder::<LinkUnspec>::new()
        .name(spec.peer_name.to_string())
        .address(spec.peer_mac.0.to_vec())
        .mtu(spec.mtu)
        .setns_by_fd(spec.peer_netns_fd)
        .build();
    let msg = LinkVeth::new(spec.host_name, spec.peer_name)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .mtu(spec.mtu)
        .controller(spec.bridge_index)
        .up()
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("create veth {}", spec.host_name), e))
}

/// Inside the container namespace: address, up, and (for the first network) the default
/// route through the gateway.
pub(crate) async fn configure_container_side(
    ifname: &str,
    addr: Ipv4Net,
    gateway: Ipv4Addr,
    default_route: bool,
) -> Result<()> {
    let h = open()?;
    let idx = require_index(&h, ifname).await?;
    h.address()
        .add(idx, IpAddr::V4(addr.addr()), addr.prefix_len())
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("add {addr} to {ifname}"), e))?;
    set_up(&h, idx).await?;
    if default_route {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(idx)
            .build();
        h.route()
            .add(route)
            .execute()
            .await
            .map_err(|e| NetError::netlink(format!("add default route via {gateway}"), e))?;
    }
    Ok(())
}

/// IPv4 destinations of the main routing table that are not default routes, with their
/// output interface; used to refuse subnets that would shadow a host route.
pub(crate) async fn host_routes(h: &Handle) -> Result<Vec<(Ipv4Net, Option<u32>)>> {
    let mut out = Vec::new();
    let mut routes = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(msg) = routes
        .try_next()
        .await
        .map_err(|e| NetError::netlink("list routes", e))?
    {
        if msg.header.table != RouteHeader::RT_TABLE_MAIN
            || msg.header.destination_prefix_length == 0
        {
            continue;
        }
        let mut dst = None;
        let mut oif = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(*a),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        if let Some(net) =
            dst.and_then(|a| Ipv4Net::new(a, msg.header.destination_prefix_length).ok())
        {
            out.push((net.trunc(), oif));
        }
    }
    Ok(out)
}

/// Names of the interfaces enslaved to the bridge with index `master`.
pub(crate) async fn ports_of(h: &Handle, master: u32) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut links = h.link().get().execute();
    while let Some(msg) = links
        .try_next()
        .await
        .map_err(|e| NetError::netlink("list links", e))?
    {
        let is_port = msg
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Controller(m) if *m == master));
        if !is_port {
            continue;
        }
        if let Some(name) = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        }) {
            out.push(name);
        }
    }
    Ok(out)
}
