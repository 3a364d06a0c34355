//! Issue #8 with the real docker CLI against a private berthd: user networks with DNS by name,
//! published ports answered on loopback, volumes and bind mounts, and nothing left behind.
//! Traffic only flows between the namespaces the daemon creates and loopback.

mod common;

use common::{Daemon, OutputExt};

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_and_alias() {
    let d = Daemon::start();
    let net = format!("app{}", std::process::id());
    let id = d.docker(&["network", "create", &net]).ok();
    let bridge = format!("br-{}", &id[..12]);
    assert!(link_exists(&bridge), "bridge {bridge} missing");
    d.docker(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        &net,
        "--network-alias",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo pong > /tmp/i; httpd -f -p 80 -h /tmp",
    ])
    .ok();
    // A throwaway busybox on the network, running `cmd`.
    let on_net = |cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", &net, "busybox"];
        args.extend_from_slice(cmd);
        d.docker(&args)
    };
    for host in ["srv", "web"] {
        let got = common::wait_for(
            "the server to answer",
            std::time::Duration::from_secs(20),
            || {
                let o = on_net(&["wget", "-qO-", &format!("http://{host}/i")]);
                (o.code() == 0).then(|| o.out())
            },
        );
        assert_eq!(got.trim(), "pong");
    }
    let resolves = |name: &str| {
        let o = on_net(&["nslookup", name]);
        assert!(
            o.out().contains("Address"),
            "{name}: {}{}",
            o.out(),
            o.err()
        );
    };
    resolves("srv");
    // A name on another network does not resolve. The default bridge has no embedded
    // DNS: its containers ask the host's resolvers, so this one gets a nameserver on its
    // own loopback instead, and no question leaves the machine.
    let o = d.docker(&[
        "run",
        "--rm",
        "--dns",
        "127.0.0.1",
        "busybox",
        "ping",
        "-c1",
        "-W1",
        "srv",
    ]);
    assert_ne!(
        o.code(),
        0,
        "srv resolved from the default bridge: {}",
        o.out()
    );
    // After a rename, the new name resolves (a question for the old one would go upstream).
    d.docker(&["rename", "srv", "srv2"]).ok();
    resolves("srv2");
    // The wgets above show in the server's network counters.
    let netio = d
        .docker(&["stats", "--no-stream", "--format", "{{.NetIO}}", "srv2"])
        .ok();
    assert!(!netio.starts_with("0B"), "{netio}");
    let inspect = d
        .docker(&["network", "inspect", "-f", "{{len .Containers}}", &net])
        .ok();
    assert_eq!(inspect, "1");
    let o = d.docker(&["network", "rm", &net]);
    assert_ne!(o.code(), 0, "a network in use was removed");
    d.docker(&["rm", "-f", "srv2"]).ok();
    d.docker(&["network", "rm", &net]).ok();
    assert!(!link_exists(&bridge), "bridge {bridge} left behind");
}

#[test]
fn a_published_port_answers_on_loopback() {
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        "echo hello-from-berth > /tmp/index.html; httpd -f -p 80 -h /tmp",
    ])
    .ok();
    let port = d.docker(&["port", "web", "80/tcp"]).ok();
    let addr = port.lines().next().expect("a binding").to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let body = common::wait_for(
        "the published port to answer",
        std::time::Duration::from_secs(20),
        || {
            let o = std::process::Command::new("curl")
                .args(["-s", "-m", "2", &format!("http://{addr}/index.html")])
                .output()
                .ok()?;
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
        },
    );
    assert_eq!(body.trim(), "hello-from-berth");
    let ps = d.docker(&["ps", "--format", "{{.Ports}}"]).ok();
    assert!(ps.contains("->80/tcp"), "{ps}");
    d.docker(&["rm", "-f", "web"]).ok();
    let o = std::process::Command::new("curl")
        .args(["-s", "-m", "2", &format!("http://{addr}/")])
        .output()
        .expect("curl");
    assert!(!o.status.success(), "the port still answers after rm");
}

#[test]
fn a_port_in_use_is_refused_and_nothing_is_left() {
    let d = Daemon::start();
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sleep",
        "100",
    ]);
    assert_ne!(o.code(), 0);
    assert!(
        o.err().contains("already in use") || o.err().contains("address"),
        "{}",
        o.err()
    );
    assert_eq!(d.status("clash"), "created");
    // The daemon keeps serving.
    d.docker(&["run", "--rm", "busybox", "true"]).ok();
}

#[test]
fn volumes_persist_and_bind_mounts_can_be_read_only() {
    let d = Daemon::start();
    d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    let got = d
        .docker(&[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            "busybox",
            "cat",
            "/data/f",
        ])
        .ok();
    assert_eq!(got, "kept");
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "busybox",
        "touch",
        "/data/g",
    ]);
    assert_ne!(o.code(), 0);
    let o = d.docker(&["volume", "rm", "data"]);
    assert_eq!(o.code(), 0, "{}", o.err());

    let host = d.root().join("shared");
    std::fs::create_dir_all(&host).expect("dir");
    std::fs::write(host.join("in"), "from the host\n").expect("write");
    let spec = format!("{}:/mnt:ro", host.display());
    let got = d
        .docker(&["run", "--rm", "-v", &spec, "busybox", "cat", "/mnt/in"])
        .ok();
    assert_eq!(got, "from the host");
    let o = d.docker(&["run", "--rm", "-v", &spec, "busybox", "touch", "/mnt/x"]);
    assert_ne!(o.code(), 0);
    assert!(o.err().contains("Read-only"), "{}", o.err());
    let spec_rw = format!("{}:/mnt", host.display());
    d.docker(&[
        "run",
        "--rm",
        "-v",
        &spec_rw,
        "busybox",
        "sh",
        "-c",
        "echo back > /mnt/out",
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(host.join("out")).expect("read"),
        "back\n"
    );

    // A volume in use cannot be removed; an anonymous one goes with rm -v.
    d.docker(&[
        "run", "-d", "--name", "holder", "-v", "busy:/b", "-v", "/anon", "busybox", "sleep", "100",
    ])
    .ok();
    let o = d.docker(&["volume", "rm", "busy"]);
    assert_ne!(o.code(), 0);
    assert!(o.err().contains("in use"), "{}", o.err());
    let anon = d
        .docker(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}",
            "holder",
        ])
        .ok();
    assert!(!anon.is_empty());
    d.docker(&["rm", "-f", "-v", "holder"]).ok();
    let o = d.docker(&["volume", "inspect", &anon]);
    assert_ne!(o.code(), 0, "anonymous volume {anon} survived rm -v");
    d.docker(&["volume", "rm", "busy"]).ok();
}

#[test]
fn network_none_has_only_loopback_and_host_sees_the_host() {
    let d = Daemon::start();
    let o = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok();
    assert_eq!(o, "lo");
    let o = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok();
    assert!(o.lines().count() > 1, "{o}");
    // Both are attached to the predefined network of their name, from create on.
    for mode in ["none", "host"] {
        let id = d
            .docker(&["create", "--network", mode, "busybox", "true"])
            .ok();
        let ps = d
            .docker(&[
                "ps",
                "-a",
                "--filter",
                &format!("id={id}"),
                "--format",
                "{{.Networks}}",
            ])
            .ok();
        assert_eq!(ps, mode);
        let net_id = d
            .docker(&["network", "inspect", "-f", "{{.Id}}", mode])
            .ok();
        let f = format!("{{{{(index .NetworkSettings.Networks \"{mode}\").NetworkID}}}}");
        assert_eq!(d.docker(&["inspect", "-f", &f, &id]).ok(), net_id);
        d.docker(&["rm", &id]).ok();
    }
}
