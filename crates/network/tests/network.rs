//! End-to-end tests of berth-network against the real kernel: bridges, veths, nftables,
//! the userland proxy and the embedded DNS, each test inside its own network namespace.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use berth_network::dns::{build_query, parse_a_answers};
use berth_network::{
    nft_list_table, EndpointRequest, NetError, NetworkCreate, NetworkManager, PortBinding,
};
use common::*;

fn net_req(name: &str, subnet: Option<&str>) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        driver: "bridge".into(),
        subnet: subnet.map(str::to_string),
        ..Default::default()
    }
}

fn ep_req(id: &str, name: &str, ns: &Netns) -> EndpointRequest {
    EndpointRequest {
        container_id: id.into(),
        container_name: name.into(),
        netns_path: ns.path.clone(),
        ..Default::default()
    }
}

/// 64-hex ids as the daemon makes them, distinct per test and container.
fn cid(tag: &str, n: u8) -> String {
    let prefix: String = tag.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{n:02x}{}", "0".repeat(64 - prefix.len() - 2))
}

#[test]
fn networks_create_inspect_remove_and_refusals() {
    in_sandbox(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "a", 10);
        let table = cfg.nft_table.clone();
        let mgr = NetworkManager::open(cfg).await.unwrap();

        let names: Vec<String> = mgr.list().await.into_iter().map(|n| n.name).collect();
        for p in ["bridge", "host", "none"] {
            assert!(names.contains(&p.to_string()), "{p} missing from {names:?}");
        }
        assert!(run(&["ip", "-4", "-o", "addr", "show", "dev", "bta0"]).contains("10.213.10.1/24"));

        let mut req = net_req("front", Some("10.213.11.0/24"));
        req.options
            .insert("com.docker.network.bridge.name".into(), "btafront".into());
        req.labels.insert("tier".into(), "web".into());
        let info = mgr.create(req).await.unwrap();
        assert_eq!(info.id.len(), 64);
        assert_eq!(info.scope, "local");
        assert_eq!(info.ipam.config[0].subnet, "10.213.11.0/24");
        assert_eq!(info.ipam.config[0].gateway, "10.213.11.1");
        assert!(
            run(&["ip", "-4", "-o", "addr", "show", "dev", "btafront"]).contains("10.213.11.1/24")
        );
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["IPAM"]["Driver"], "default");
        assert_eq!(json["Labels"]["tier"], "web");

        assert_eq!(mgr.inspect("front").await.unwrap().id, info.id);
        assert_eq!(mgr.inspect(&info.id[..10]).await.unwrap().name, "front");

        // A network from the pool gets the first free slice of it.
        let pooled = mgr.create(net_req("pooled", None)).await.unwrap();
        assert_eq!(pooled.ipam.config[0].subnet, "10.214.10.0/26");

        let err = mgr
            .create(net_req("front", Some("10.213.12.0/24")))
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::DuplicateName(_)), "{err}");
        let err = mgr
            .create(net_req("other", Some("10.213.11.128/25")))
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::Overlap { .. }), "{err}");
        assert!(err.to_string().contains("front"), "{err}");
        let err = mgr
            .create(net_req("other", Some("10.213.10.0/24")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, NetError::Overlap { .. }),
            "default bridge overlap: {err}"
        );
        let err = mgr
            .create(net_req("bad", Some("10.213.12.7/24")))
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::InvalidSubnet(_)), "{err}");
        let mut gw = net_req("gw", Some("10.213.12.0/24"));
        gw.gateway = Some("10.213.13.1".into());
        let err = mgr.create(gw).await.unwrap_err();
        assert!(
            matches!(err, NetError::GatewayOutsideSubnet { .. }),
            "{err}"
        );

        // A subnet the host already routes elsewhere is refused, and nothing is left behind.
        // (no dummy module on every kernel: a veth pair in the sandbox serves as an uplink)
        run(&[
            "ip",
            "link",
            "add",
            "btadummy",
            "type",
            "veth",
            "peer",
            "name",
            "btadummyp",
        ]);
        run(&["ip", "link", "set", "btadummyp", "up"]);
        run(&["ip", "link", "set", "btadummy", "up"]);
        run(&["ip", "route", "add", "10.213.14.0/24", "dev", "btadummy"]);
        let mut routed = net_req("routed", Some("10.213.14.0/24"));
        routed
            .options
            .insert("com.docker.network.bridge.name".into(), "btarouted".into());
        let err = mgr.create(routed).await.unwrap_err();
        assert!(matches!(err, NetError::Overlap { .. }), "{err}");
        assert!(err.to_string().contains("host route"), "{err}");
        assert!(!link_exists("btarouted"));
        assert!(mgr.inspect("routed").await.is_err());

        for p in ["bridge", "host", "none"] {
            let err = mgr.remove(p).await.unwrap_err();
            assert!(matches!(err, NetError::Predefined(_)), "{err}");
        }

        mgr.remove("front").await.unwrap();
        assert!(!link_exists("btafront"));
        assert!(matches!(
            mgr.inspect("front").await,
            Err(NetError::NotFound(_))
        ));
        assert_eq!(mgr.prune().await.unwrap(), vec!["pooled".to_string()]);

        mgr.purge().await.unwrap();
        assert!(!link_exists("bta0"));
        assert_eq!(nft_list_table(&table).await.unwrap(), None);
        assert_eq!(
            std::fs::read_dir(dir.path().join("state")).unwrap().count(),
            0
        );
    });
}

#[test]
fn containers_talk_ipam_reuses_and_static_ips() {
    in_sandbox(|| async {
        let dir = tempfile::tempdir().unwrap();
        let mgr = NetworkManager::open(config(dir.path(), "b", 20))
            .await
            .unwrap();
        let mut req = net_req("app", Some("10.213.21.0/24"));
        req.options
            .insert("com.docker.network.bridge.name".into(), "btbapp".into());
        mgr.create(req).await.unwrap();

        let a = Netns::new(dir.path(), "a").await;
        let b = Netns::new(dir.path(), "b").await;
        let ea = mgr
            .connect("app", ep_req(&cid("b", 1), "alpha", &a))
            .await
            .unwrap();
        let eb = mgr
            .connect("app", ep_req(&cid("b", 2), "beta", &b))
            .await
            .unwrap();
        assert_eq!(ea.ipv4, ip4("10.213.21.2"));
        assert_eq!(eb.ipv4, ip4("10.213.21.3"));
        assert_eq!(
            (ea.ifname.as_str(), ea.prefix_len, ea.gateway),
            ("eth0", 24, ip4("10.213.21.1"))
        );
        assert_eq!(ea.mac.to_string(), "02:42:0a:d5:15:02");
        assert!(link_exists(&ea.host_ifname));

        // Inside: eth0 carries the address and the default route goes via the gateway.
        let inside = berth_network::in_netns_blocking(&a.path, || {
            (
                run(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]),
                run(&["ip", "route"]),
            )
        })
        .unwrap();
        assert!(inside.0.contains("10.213.21.2/24"), "{}", inside.0);
        assert!(
            inside.1.contains("default via 10.213.21.1 dev eth0"),
            "{}",
            inside.1
        );

        b.serve_tcp(7000, "beta");
        let reply = a
            .tcp_request(SocketAddrV4::new(eb.ipv4, 7000), "hi")
            .unwrap();
        assert_eq!(reply, "beta:hi");
        // ICMP too, with busybox's ping from inside a.
        let ping = std::process::Command::new("nsenter")
            .arg(format!("--net={}", a.path.display()))
            .args(["busybox", "ping", "-c", "1", "-W", "5", "10.213.21.3"])
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "{}",
            String::from_utf8_lossy(&ping.stdout)
        );

        let info = mgr.inspect("app").await.unwrap();
        assert_eq!(info.containers[&cid("b", 1)].ipv4_address, "10.213.21.2/24");
        assert_eq!(info.containers[&cid("b", 2)].name, "beta");

        let err = mgr.remove("app").await.unwrap_err();
        assert!(matches!(err, NetError::ActiveEndpoints { .. }), "{err}");
        let err = mgr
            .connect("app", ep_req(&cid("b", 1), "alpha", &a))
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::AlreadyConnected { .. }), "{err}");

        // A released address can be asked for at once: the request waits for the old veth,
        // which is deleted in the background and holds the address until it is gone.
        mgr.disconnect("app", &cid("b", 1)).await.unwrap();
        let c = Netns::new(dir.path(), "c").await;
        let mut again = ep_req(&cid("b", 3), "gamma", &c);
        again.ipv4 = Some(ip4("10.213.21.2"));
        let ec = mgr.connect("app", again).await.unwrap();
        assert_eq!(ec.ipv4, ip4("10.213.21.2"));
        assert!(!link_exists(&ea.host_ifname));

        // Static addresses: inside the subnet and free.
        let d = Netns::new(dir.path(), "d").await;
        let mut static_req = ep_req(&cid("b", 4), "delta", &d);
        static_req.ipv4 = Some(ip4("10.213.21.3"));
        let err = mgr.connect("app", static_req.clone()).await.unwrap_err();
        assert!(matches!(err, NetError::AddressInUse { .. }), "{err}");
        static_req.ipv4 = Some(ip4("10.213.22.9"));
        let err = mgr.connect("app", static_req.clone()).await.unwrap_err();
        assert!(matches!(err, NetError::AddressOutOfRange { .. }), "{err}");
        static_req.ipv4 = Some(ip4("10.213.21.50"));
        let ed = mgr.connect("app", static_req).await.unwrap();
        assert_eq!(ed.ipv4, ip4("10.213.21.50"));
        assert_eq!(
            d.tcp_request(SocketAddrV4::new(eb.ipv4, 7000), "x")
                .unwrap(),
            "beta:x"
        );

        // A second network becomes eth1 without a second default route.
        let mut second = net_req("side", Some("10.213.23.0/24"));
        second
            .options
            .insert("com.docker.network.bridge.name".into(), "btbside".into());
        mgr.create(second).await.unwrap();
        let e2 = mgr
            .connect("side", ep_req(&cid("b", 4), "delta", &d))
            .await
            .unwrap();
        assert_eq!((e2.ifname.as_str(), e2.default_route), ("eth1", false));
        assert_eq!(mgr.endpoints_of(&cid("b", 4)).await.len(), 2);

        for (net, n) in [("app", 2), ("app", 3), ("app", 4), ("side", 4)] {
            mgr.disconnect(net, &cid("b", n)).await.unwrap();
        }
        mgr.remove("app").await.unwrap();
        mgr.purge().await.unwrap();
        for l in [
            "btbapp",
            "btbside",
            "btb0",
            &ea.host_ifname,
            &eb.host_ifname,
        ] {
            assert!(!link_exists(l), "{l} left");
        }
        drop((a, b, c, d));
        assert_no_mounts_under(dir.path());
    });
}

#[test]
fn embedded_dns_answers_names_aliases_and_short_ids() {
    in_sandbox(|| async {
        let dir = tempfile::tempdir().unwrap();
        let mgr = NetworkManager::open(config(dir.path(), "c", 30))
            .await
            .unwrap();
        let mut req = net_req("svc", Some("10.213.31.0/24"));
        req.options
            .insert("com.docker.network.bridge.name".into(), "btcsvc".into());
        mgr.create(req).await.unwrap();
        let dns = mgr.embedded_dns("svc").await.unwrap();
        assert_eq!(dns, Some(ip4("10.213.31.1")));
        assert_eq!(
            mgr.embedded_dns("bridge").await.unwrap(),
            None,
            "default bridge has no DNS"
        );

        let web = Netns::new(dir.path(), "web").await;
        let client = Netns::new(dir.path(), "client").await;
        let mut wreq = ep_req(&cid("c", 1), "web", &web);
        wreq.aliases = vec!["www".into()];
        let ew = mgr.connect("svc", wreq).await.unwrap();
        mgr.connect("svc", ep_req(&cid("c", 2), "client", &client))
            .await
            .unwrap();

        let sock = client.udp_socket();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let server = SocketAddrV4::new(ip4("10.213.31.1"), 53);
        let ask = |id: u16, name: &str| -> (u16, Vec<Ipv4Addr>) {
            sock.send_to(&build_query(id, name).unwrap(), server)
                .unwrap();
            let mut buf = [0u8; 512];
            let (n, _) = sock.recv_from(&mut buf).unwrap();
            parse_a_answers(&buf[..n]).unwrap()
        };
        assert_eq!(ask(1, "web."), (0, vec![ew.ipv4]));
        assert_eq!(ask(2, "WWW"), (0, vec![ew.ipv4]));
        assert_eq!(ask(3, &cid("c", 1)[..12]), (0, vec![ew.ipv4]));

        // Over TCP too (resolvers retry there after a truncated answer), several questions
        // on one connection, each with its two-byte length.
        let mut tcp = client.tcp_connect(server);
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut ask_tcp = |id: u16, name: &str| -> (u16, Vec<Ipv4Addr>) {
            let q = build_query(id, name).unwrap();
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            tcp.write_all(&framed).unwrap();
            let mut len = [0u8; 2];
            tcp.read_exact(&mut len).unwrap();
            let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
            tcp.read_exact(&mut reply).unwrap();
            parse_a_answers(&reply).unwrap()
        };
        assert_eq!(ask_tcp(11, "web."), (0, vec![ew.ipv4]));
        assert_eq!(ask_tcp(12, "www"), (0, vec![ew.ipv4]));
        let (code, ips) = ask_tcp(13, "elsewhere.example.");
        assert!(ips.is_empty());
        assert_ne!(
            code, 0,
            "an upstream the sandbox cannot reach answers SERVFAIL"
        );
        drop(tcp);

        // A real resolver client inside the container namespace sees the same.
        let look = std::process::Command::new("nsenter")
            .arg(format!("--net={}", client.path.display()))
            .args(["busybox", "nslookup", "www", "10.213.31.1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&look.stdout);
        assert!(text.contains(&ew.ipv4.to_string()), "{text}");

        // A renamed container answers to its new name only (an unknown name is forwarded
        // upstream, which a sandbox cannot reach: SERVFAIL).
        mgr.rename_container(&cid("c", 1), "web2").await.unwrap();
        assert_eq!(ask(5, "web2"), (0, vec![ew.ipv4]));
        assert_eq!(ask(6, "www"), (0, vec![ew.ipv4]), "aliases stay");
        let (code, ips) = ask(7, "web.");
        assert!(ips.is_empty());
        assert_ne!(code, 0);

        // After disconnect the name is gone (the question is then forwarded upstream,
        // which a sandbox cannot reach: SERVFAIL).
        mgr.disconnect("svc", &cid("c", 1)).await.unwrap();
        let (code, ips) = ask(4, "web2.");
        assert!(ips.is_empty());
        assert_ne!(code, 0);

        mgr.disconnect("svc", &cid("c", 2)).await.unwrap();
        mgr.purge().await.unwrap();
    });
}

#[test]
fn published_ports_reach_the_container_through_the_proxy_and_dnat() {
    in_sandbox(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "d", 40);
        let table = cfg.nft_table.clone();
        let mgr = NetworkManager::open(cfg).await.unwrap();
        let ns = Netns::new(dir.path(), "srv").await;
        let ep = mgr
            .connect("bridge", ep_req(&cid("d", 1), "srv", &ns))
            .await
            .unwrap();
        assert_eq!(ep.ipv4, ip4("10.213.40.2"));
        ns.serve_tcp(80, "web");
        ns.serve_udp_echo(53);

        let got = mgr
            .publish(
                "bridge",
                &cid("d", 1),
                &[PortBinding::tcp(0, 80), PortBinding::udp(0, 53)],
            )
            .await
            .unwrap();
        let (tcp_port, udp_port) = (got[0].host_port, got[1].host_port);
        assert_ne!(tcp_port, 0);
        assert_ne!(udp_port, 0);

        // Loopback goes through the userland proxy.
        let reply = tcp_request(SocketAddrV4::new(Ipv4Addr::LOCALHOST, tcp_port), "GET").unwrap();
        assert_eq!(reply, "web:GET");
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        u.send_to(b"ping", ("127.0.0.1", udp_port)).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = u.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");

        // A host address that is not loopback goes through DNAT.
        run(&[
            "ip", "link", "add", "btdext", "type", "veth", "peer", "name", "btdextp",
        ]);
        run(&["ip", "link", "set", "btdextp", "up"]);
        run(&["ip", "addr", "add", "10.213.49.1/24", "dev", "btdext"]);
        run(&["ip", "link", "set", "btdext", "up"]);
        let rules = nft_list_table(&table).await.unwrap().unwrap();
        assert!(
            rules.contains(&format!("dport {tcp_port} dnat ip to 10.213.40.2:80")),
            "{rules}"
        );
        let reply = tcp_request(SocketAddrV4::new(ip4("10.213.49.1"), tcp_port), "EXT").unwrap();
        assert_eq!(reply, "web:EXT");

        // A port already taken is refused and nothing of the request stays behind.
        let err = mgr
            .publish(
                "bridge",
                &cid("d", 1),
                &[PortBinding::tcp(0, 81), PortBinding::tcp(tcp_port, 80)],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::PortInUse { .. }), "{err}");
        assert_eq!(nft_list_table(&table).await.unwrap().unwrap(), rules);

        mgr.unpublish("bridge", &cid("d", 1)).await.unwrap();
        assert!(tcp_request(SocketAddrV4::new(Ipv4Addr::LOCALHOST, tcp_port), "GET").is_err());
        let rules = nft_list_table(&table).await.unwrap().unwrap();
        assert!(!rules.contains("dnat"), "{rules}");

        mgr.disconnect("bridge", &cid("d", 1)).await.unwrap();
        mgr.purge().await.unwrap();
        assert_eq!(nft_list_table(&table).await.unwrap(), None);
    });
}

#[test]
fn bridges_are_isolated_from_each_other() {
    in_sandbox(|| async {
        let dir = tempfile::tempdir().unwrap();
        let mgr = NetworkManager::open(config(dir.path(), "e", 50))
            .await
            .unwrap();
        for (name, octet) in [("one", 51), ("two", 52)] {
            let mut req = net_req(name, Some(&format!("10.213.{octet}.0/24")));
            req.options.insert(
                "com.docker.network.bridge.name".into(),
                format!("bte{name}"),
            );
            mgr.create(req).await.unwrap();
        }
        let mut internal = net_req("inner", Some("10.213.53.0/24"));
        internal.internal = true;
        internal
            .options
            .insert("com.docker.network.bridge.name".into(), "bteinner".into());
        let info = mgr.create(internal).await.unwrap();
        assert!(info.internal);

        let a = Netns::new(dir.path(), "a").await;
        let a2 = Netns::new(dir.path(), "a2").await;
        let b = Netns::new(dir.path(), "b").await;
        mgr.connect("one", ep_req(&cid("e", 1), "a", &a))
            .await
            .unwrap();
        let ea2 = mgr
            .connect("one", ep_req(&cid("e", 2), "a2", &a2))
            .await
            .unwrap();
        let eb = mgr
            .connect("two", ep_req(&cid("e", 3), "b", &b))
            .await
            .unwrap();
        a2.serve_tcp(7100, "a2");
        b.serve_tcp(7100, "b");
        assert_eq!(
            a.tcp_request(SocketAddrV4::new(ea2.ipv4, 7100), "x")
                .unwrap(),
            "a2:x"
        );
        // The host itself may reach both networks...
        assert_eq!(
            tcp_request(SocketAddrV4::new(eb.ipv4, 7100), "h").unwrap(),
            "b:h"
        );
        // ...but forwarding between two Berth bridges is dropped.
        assert!(a
            .tcp_request(SocketAddrV4::new(eb.ipv4, 7100), "x")
            .is_err());

        let rules = nft_list_table(&mgr.config().nft_table)
            .await
            .unwrap()
            .unwrap();
        assert!(
            rules.contains("iifname \"bteinner\" oifname != \"bteinner\" drop"),
            "{rules}"
        );
        assert!(
            !rules.contains("10.213.53.0/24 oifname != \"bteinner\" masquerade"),
            "{rules}"
        );
        assert!(
            rules.contains("ip saddr 10.213.51.0/24 oifname != \"bteone\" masquerade"),
            "{rules}"
        );

        for (net, n) in [("one", 1), ("one", 2), ("two", 3)] {
            mgr.disconnect(net, &cid("e", n)).await.unwrap();
        }
        mgr.purge().await.unwrap();
    });
}

#[test]
fn outbound_traffic_is_masqueraded_except_from_internal_networks() {
    in_sandbox(|| async {
        let dir = tempfile::tempdir().unwrap();
        let mgr = NetworkManager::open(config(dir.path(), "g", 70))
            .await
            .unwrap();
        // "The outside world": a namespace behind an uplink of the sandbox host.
        let outside = Netns::new(dir.path(), "outside").await;
        run(&[
            "ip", "link", "add", "btgup", "type", "veth", "peer", "name", "btgupp",
        ]);
        run(&[
            "ip",
            "link",
            "set",
            "btgupp",
            "netns",
            outside.path.to_str().unwrap(),
        ]);
        run(&["ip", "addr", "add", "10.213.79.1/24", "dev", "btgup"]);
        run(&["ip", "link", "set", "btgup", "up"]);
        outside.run(&["ip", "addr", "add", "10.213.79.2/24", "dev", "btgupp"]);
        outside.run(&["ip", "link", "set", "btgupp", "up"]);
        // A way back to the internal subnet, so only Berth's rules can stop the traffic.
        outside.run(&["ip", "route", "add", "10.213.72.0/24", "via", "10.213.79.1"]);
        outside.serve_tcp_peer(7200);
        let far = SocketAddrV4::new(ip4("10.213.79.2"), 7200);

        let mut out = net_req("out", Some("10.213.71.0/24"));
        out.options
            .insert("com.docker.network.bridge.name".into(), "btgout".into());
        mgr.create(out).await.unwrap();
        let mut inner = net_req("inner", Some("10.213.72.0/24"));
        inner.internal = true;
        inner
            .options
            .insert("com.docker.network.bridge.name".into(), "btginner".into());
        mgr.create(inner).await.unwrap();

        let a = Netns::new(dir.path(), "a").await;
        let b = Netns::new(dir.path(), "b").await;
        mgr.connect("out", ep_req(&cid("g", 1), "a", &a))
            .await
            .unwrap();
        let eb = mgr
            .connect("inner", ep_req(&cid("g", 2), "b", &b))
            .await
            .unwrap();

        // The outside sees the host's uplink address, not the container's.
        assert_eq!(a.tcp_request(far, "").unwrap(), "10.213.79.1");

        // An internal network gets no default route...
        assert!(!eb.default_route);
        assert!(b.tcp_request(far, "").is_err());
        // ...and even a container that adds one itself is not forwarded.
        b.run(&["ip", "route", "add", "default", "via", "10.213.72.1"]);
        assert!(b.tcp_request(far, "").is_err());
        // Its own gateway (the host) stays reachable, e.g. for the embedded DNS.
        let q = build_query(1, "b").unwrap();
        let sock = b.udp_socket();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.send_to(&q, SocketAddrV4::new(ip4("10.213.72.1"), 53))
            .unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(parse_a_answers(&buf[..n]).unwrap(), (0, vec![eb.ipv4]));

        mgr.disconnect("out", &cid("g", 1)).await.unwrap();
        mgr.disconnect("inner", &cid("g", 2)).await.unwrap();
        mgr.purge().await.unwrap();
    });
}

#[test]
fn state_survives_reopen_and_reconcile_drops_dead_containers() {
    in_sandbox(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "f", 60);
        let table = cfg.nft_table.clone();
        let mgr = NetworkManager::open(cfg.clone()).await.unwrap();
        let mut req = net_req("keep", Some("10.213.61.0/24"));
        req.options
            .insert("com.docker.network.bridge.name".into(), "btfkeep".into());
        let created = mgr.create(req).await.unwrap();
        let live = Netns::new(dir.path(), "live").await;
        let dead = Netns::new(dir.path(), "dead").await;
        let el = mgr
            .connect("keep", ep_req(&cid("f", 1), "live", &live))
            .await
            .unwrap();
        let ed = mgr
            .connect("keep", ep_req(&cid("f", 2), "dead", &dead))
            .await
            .unwrap();
        live.serve_tcp(80, "live");
        let port = mgr
            .publish("keep", &cid("f", 1), &[PortBinding::tcp(0, 80)])
            .await
            .unwrap()[0]
            .host_port;
        mgr.publish("keep", &cid("f", 2), &[PortBinding::tcp(0, 80)])
            .await
            .unwrap();

        // A crash: the daemon's tasks are gone, and so are its table and the bridge.
        mgr.shutdown().await;
        drop(mgr);
        assert!(tcp_request(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), "x").is_err());
        run(&["nft", "delete", "table", "inet", &table]);
        run(&["ip", "link", "del", "btfkeep"]);
        drop(dead);

        let mgr = NetworkManager::open(cfg).await.unwrap();
        let info = mgr.inspect("keep").await.unwrap();
        assert_eq!(info.id, created.id);
        assert_eq!(info.containers.len(), 2);
        assert!(
            run(&["ip", "-4", "-o", "addr", "show", "dev", "btfkeep"]).contains("10.213.61.1/24")
        );
        assert!(
            run(&["ip", "-o", "link", "show", "dev", &el.host_ifname]).contains("master btfkeep")
        );
        let rules = nft_list_table(&table).await.unwrap().unwrap();
        assert!(
            rules.contains(&format!("dport {port} dnat ip to 10.213.61.2:80")),
            "{rules}"
        );
        // The proxy is back, and the path through the recreated bridge works.
        assert_eq!(
            tcp_request(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), "GET").unwrap(),
            "live:GET"
        );

        let removed = mgr.reconcile(&[cid("f", 1)]).await.unwrap();
        assert_eq!(removed, vec![cid("f", 2)]);
        let info = mgr.inspect("keep").await.unwrap();
        assert_eq!(
            info.containers.keys().cloned().collect::<Vec<_>>(),
            vec![cid("f", 1)]
        );
        assert!(!link_exists(&ed.host_ifname));
        let rules = nft_list_table(&table).await.unwrap().unwrap();
        assert!(!rules.contains("10.213.61.3"), "{rules}");
        // The dead container's address is free again.
        let again = Netns::new(dir.path(), "again").await;
        let ea = mgr
            .connect("keep", ep_req(&cid("f", 3), "again", &again))
            .await
            .unwrap();
        assert_eq!(ea.ipv4, ed.ipv4);

        mgr.purge().await.unwrap();
        assert_eq!(nft_list_table(&table).await.unwrap(), None);
        assert!(!link_exists("btfkeep"));
    });
}
