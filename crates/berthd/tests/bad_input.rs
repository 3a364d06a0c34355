//! Bad requests get Docker's status codes and words, and the daemon keeps serving (the harness
//! fails the test if berthd's log shows a panic).

mod common;

use common::{http, Daemon, OutputExt};

fn create(d: &Daemon, query: &str, body: &[u8]) -> common::HttpReply {
    http(
        &d.sock(),
        "POST",
        &format!("/v1.50/containers/create{query}"),
        Some(body),
    )
    .expect("request")
}

fn still_serving(d: &Daemon) {
    let v = d
        .docker(&["version", "--format", "{{.Server.APIVersion}}"])
        .ok();
    assert_eq!(v, "1.50");
}

#[test]
fn malformed_json_bodies_are_400() {
    let d = Daemon::start();
    for body in [
        &b"{not json"[..],
        b"",
        b"[]",
        b"{\"Image\": 5}",
        b"{\"Image\": \"busybox\", \"HostConfig\": {\"Memory\": \"lots\"}}",
        b"\xff\xfe\x00",
    ] {
        let r = create(&d, "", body);
        assert_eq!(
            r.status,
            400,
            "body {:?} → {r:?}",
            String::from_utf8_lossy(body)
        );
        assert!(!r.message().is_empty(), "no message for {body:?}: {r:?}");
    }
    still_serving(&d);
}

#[test]
fn unknown_objects_are_404() {
    let d = Daemon::start();
    for (method, path) in [
        ("GET", "/containers/x/json"),
        ("POST", "/containers/x/start"),
        ("POST", "/containers/x/stop"),
        ("POST", "/containers/x/kill"),
        ("POST", "/containers/x/wait"),
        ("GET", "/containers/x/logs?stdout=1"),
        ("DELETE", "/containers/x"),
    ] {
        let r = http(&d.sock(), method, &format!("/v1.50{path}"), None).expect("request");
        assert_eq!(r.status, 404, "{method} {path}: {r:?}");
        assert_eq!(r.message(), "No such container: x", "{method} {path}");
    }
    let r = create(&d, "", br#"{"Image":"nope:latest"}"#);
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.message().contains("No such image: nope:latest"), "{r:?}");
    let r = http(&d.sock(), "GET", "/v1.50/no/such/route", None).expect("request");
    assert_eq!(r.status, 404, "{r:?}");
    let o = d.docker(&["inspect", "--type", "container", "ghost"]);
    assert_eq!(o.code(), 1);
    assert!(o.err().contains("No such container: ghost"), "{}", o.err());
    let o = d.docker(&["rm", "ghost"]);
    assert_eq!(o.code(), 1);
    assert!(o.err().contains("No such container: ghost"), "{}", o.err());
    still_serving(&d);
}

#[test]
fn name_conflict_is_409() {
    let d = Daemon::start();
    let body = br#"{"Image":"busybox","Cmd":["true"]}"#;
    let r = create(&d, "?name=twin", body);
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["Id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 64, "{r:?}");
    let r = create(&d, "?name=twin", body);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.message()
            .contains("\"/twin\" is already in use by container"),
        "{r:?}"
    );
    assert!(r.message().contains(&id), "{r:?}");
    // Exec in a container that is not running: 409 too.
    let r = http(
        &d.sock(),
        "POST",
        "/v1.50/containers/twin/exec",
        Some(br#"{"Cmd":["true"]}"#),
    )
    .expect("request");
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.message().contains("is not running"), "{r:?}");
    still_serving(&d);
}

#[test]
fn api_versions_out_of_range_are_400() {
    let d = Daemon::start_bare();
    let r = http(&d.sock(), "GET", "/v1.99/version", None).expect("request");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.message().contains("client version 1.99 is too new"),
        "{r:?}"
    );
    let r = http(&d.sock(), "GET", "/v1.12/version", None).expect("request");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.message().contains("client version 1.12 is too old"),
        "{r:?}"
    );
    let r = http(&d.sock(), "GET", "/_ping", None).expect("request");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "OK");
    assert_eq!(r.header("API-Version"), Some("1.50"));
    let r = http(&d.sock(), "GET", "/version", None).expect("request");
    assert_eq!(r.json()["ApiVersion"], "1.50", "{r:?}");
    // An old CLI asking for 1.24 is served.
    let o = d.sh("DOCKER_API_VERSION=1.24 docker version --format '{{.Server.APIVersion}}'");
    assert_eq!(o.ok(), "1.50");
    still_serving(&d);
}

#[test]
fn invalid_cli_flags_exit_125() {
    let d = Daemon::start();
    let o = d.docker(&["run", "--restart", "bogus", "busybox", "true"]);
    assert_eq!(o.code(), 125, "{}", o.err());
    assert!(o.err().contains("invalid restart policy"), "{}", o.err());
    let o = d.docker(&["run", "--rm", "-m", "1k", "busybox", "true"]);
    assert_eq!(o.code(), 125, "{}", o.err());
    assert!(
        o.err().contains("Minimum memory limit allowed is 6MB"),
        "{}",
        o.err()
    );
    let o = d.docker(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(o.code(), 127, "{}", o.err());
    assert!(o.err().contains("no such file or directory"), "{}", o.err());
    let o = d.docker(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(o.code(), 126, "{}", o.err());
    // Refused by the start itself, as dockerd: the container stays Created with the code.
    for (cmd, code) in [("/etc/passwd", "126"), ("no-such-cmd", "127")] {
        let o = d.docker(&["run", "--name", "nostart", "busybox", cmd]);
        assert_eq!(o.code().to_string(), code, "{}", o.err());
        let state = d.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "nostart",
        ]);
        assert_eq!(state.ok(), format!("created {code}"));
        d.docker(&["rm", "nostart"]).ok();
    }
    // --pull never: the image is missing and nothing may be fetched from outside.
    let o = d.docker(&["run", "--rm", "--pull", "never", "nope"]);
    assert_eq!(o.code(), 125, "{}", o.err());
    assert!(o.err().contains("No such image"), "{}", o.err());
    let o = d.docker(&["run", "--rm", "-v", "relative:/x:bogus", "busybox", "true"]);
    assert_eq!(o.code(), 125, "{}", o.err());
    let o = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/no/such/profile.json",
        "busybox",
        "true",
    ]);
    assert_eq!(o.code(), 125, "{}", o.err());
    assert_eq!(
        d.docker(&["ps", "-aq"]).ok(),
        "",
        "failed runs left containers"
    );
    still_serving(&d);
}

#[test]
fn failed_start_of_rm_container_removes_it() {
    let d = Daemon::start();
    // The runtime cannot write a sysctl that does not exist: start fails after create.
    let c = d.docker_spawn(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.no_such_knob=1",
        "busybox",
        "true",
    ]);
    let o = common::finish(
        c,
        "docker run --rm with a failing start",
        std::time::Duration::from_secs(120),
    );
    assert!(matches!(o.code(), 125..=127), "{o:?}");
    assert!(o.err().contains("no_such_knob"), "{}", o.err());
    assert_eq!(
        d.docker(&["ps", "-aq"]).ok(),
        "",
        "the --rm container was kept"
    );
    still_serving(&d);
}

#[test]
fn too_many_cpus_refused_at_create() {
    let d = Daemon::start();
    let c = d.docker_spawn(&["run", "--rm", "--cpus", "99999", "busybox", "true"]);
    let o = common::finish(
        c,
        "docker run --cpus 99999",
        std::time::Duration::from_secs(120),
    );
    assert_eq!(o.code(), 125, "{}", o.err());
    assert!(
        o.err().contains("Range of CPUs is from 0.01 to"),
        "{}",
        o.err()
    );
    // Refused by create itself: nothing is left, --rm or not, and negative counts too.
    for cpus in ["99999", "-1"] {
        let o = d.docker(&["run", "--cpus", cpus, "busybox", "true"]);
        assert_eq!(o.code(), 125, "--cpus {cpus}: {}", o.err());
        assert!(o.err().contains("Range of CPUs"), "{}", o.err());
    }
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "", "a container was created");
}

#[test]
fn abrupt_clients_do_not_hurt() {
    use std::io::Write;
    let d = Daemon::start();
    // A half-sent request, a garbage request line, and a client hanging up mid-body.
    for junk in [
        &b"GET /_ping HTTP/1.1\r\nHost: x\r\n"[..],
        b"NOT HTTP AT ALL\r\n\r\n",
        b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"Ima",
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(d.sock()).expect("connect");
        let _ = s.write_all(junk);
        drop(s);
    }
    // A logs -f client that goes away while following.
    let id = d.run_d(&[
        "busybox",
        "sh",
        "-c",
        "while true; do echo x; sleep 0.1; done",
    ]);
    let mut follow = d.docker_spawn(&["logs", "-f", &id]);
    common::read_until(&mut follow, "x", std::time::Duration::from_secs(60));
    let _ = follow.kill();
    let _ = follow.wait();
    still_serving(&d);
    assert_eq!(d.status(&id), "running");
}
