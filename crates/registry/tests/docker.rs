//! Real client: Docker's CLI and daemon log in (Bearer token flow), push and pull.
//!
//! Needs a running dockerd, so it is ignored by default. Run it with
//! `BERTH_TEST_DOCKER_HOST=unix:///run/docker-anchor.sock cargo test -p berth-registry
//! --test docker -- --ignored` (shared/anchors/start-peers.sh starts that daemon). Docker
//! treats 127.0.0.0/8 registries as insecure, so plain HTTP on loopback works unconfigured.

mod common;

use std::process::Command;

use common::*;

fn docker(host: &str, config: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = Command::new("/usr/bin/docker");
    cmd.arg("-H")
        .arg(host)
        .args(args)
        .env("DOCKER_CONFIG", config);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run /usr/bin/docker");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a dockerd; set BERTH_TEST_DOCKER_HOST and run with --ignored"]
async fn docker_login_push_pull() {
    let host = std::env::var("BERTH_TEST_DOCKER_HOST").expect(
        "set BERTH_TEST_DOCKER_HOST to a dockerd socket, e.g. unix:///run/docker-anchor.sock",
    );
    assert!(
        std::path::Path::new("/usr/bin/docker").exists(),
        "this test needs /usr/bin/docker"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("docker-config");
    std::fs::create_dir(&cfg).unwrap();
    let reg = Registry::start(token_auth_config(dir.path())).await;
    let addr = reg.base.trim_start_matches("http://").to_string();

    let images = docker(&host, &cfg, &["images", "-q", "busybox:latest"], None);
    if images.trim().is_empty() {
        docker(
            &host,
            &cfg,
            &["load", "-i", "/tmp/anchors-images/busybox-docker.tar"],
            None,
        );
    }
    let tag = format!("{addr}/dock/busybox:t{}", std::process::id());
    let h = host.clone();
    let cfg2 = cfg.clone();
    let addr2 = addr.clone();
    let tag2 = tag.clone();
    let result = tokio::task::spawn_blocking(move || {
        let login = docker(
            &h,
            &cfg2,
            &["login", &addr2, "-u", "alice", "--password-stdin"],
            Some("alice-pw"),
        );
        assert!(login.contains("Login Succeeded"), "{login}");
        docker(&h, &cfg2, &["tag", "busybox:latest", &tag2], None);
        let push = docker(&h, &cfg2, &["push", &tag2], None);
        docker(&h, &cfg2, &["rmi", &tag2], None);
        let pull = docker(&h, &cfg2, &["pull", &tag2], None);
        docker(&h, &cfg2, &["rmi", &tag2], None);
        docker(&h, &cfg2, &["logout", &addr2], None);
        (push, pull)
    })
    .await;
    // Clean the tag up even if a step failed.
    let _ = Command::new("/usr/bin/docker")
        .args(["-H", &host, "rmi", &tag])
        .env("DOCKER_CONFIG", &cfg)
        .output();
    let (push, pull) = result.expect("docker steps");
    assert!(push.contains("digest: sha256:"), "{push}");
    assert!(
        pull.contains("Downloaded newer image") || pull.contains("Image is up to date"),
        "{pull}"
    );
    reg.stop().await;
}
