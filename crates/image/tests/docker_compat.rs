//! Compatibility with Debian's docker 20.10, through the peer dockerd that
//! ../shared/anchors/start-peers.sh starts on /run/docker-anchor.sock. Ignored by default
//! because it needs that daemon; run with `cargo test -p berth-image --test docker_compat --
//! --ignored`, which fails (never skips) when the daemon is missing.

mod common;

use berth_image::{ImageService, SaveFormat};
use std::fs;
use std::path::Path;
use std::process::Command;

const SOCK: &str = "/run/docker-anchor.sock";

fn docker(args: &[&str]) -> std::process::Output {
    assert!(
        Path::new(SOCK).exists(),
        "the peer dockerd is not running: run ../shared/anchors/start-peers.sh"
    );
    common::require_tool("docker");
    // Debian's client, not a newer one that may shadow it in /usr/local/bin.
    let out = Command::new("/usr/bin/docker")
        .args(["-H", &format!("unix://{SOCK}")])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
#[ignore = "needs the peer dockerd (start-peers.sh)"]
fn docker_save_loads_into_berth_and_berth_save_loads_into_docker() {
    let tmp = tempfile::tempdir().unwrap();
    let images = std::env::var_os("BERTH_ANCHOR_IMAGES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/tmp/anchors-images".into());
    let anchors = images.join("busybox-docker.tar");
    let anchors = anchors.as_path();
    assert!(
        anchors.exists(),
        "run make-images.sh first ({})",
        anchors.display()
    );
    let tag = "berth-compat/busybox:dsave";
    docker(&["load", "-i", anchors.to_str().unwrap()]);
    docker(&["tag", "busybox:latest", tag]);
    let dsave = tmp.path().join("docker-saved.tar");
    docker(&["save", "-o", dsave.to_str().unwrap(), tag]);

    let svc = ImageService::open(&tmp.path().join("store")).unwrap();
    let recs = svc.load(fs::File::open(&dsave).unwrap()).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].familiar_tags(), vec![tag.to_string()]);
    let docker_id = String::from_utf8(docker(&["inspect", "-f", "{{.Id}}", tag]).stdout).unwrap();
    assert_eq!(recs[0].id.to_string(), docker_id.trim());

    // And back: what Berth saves, docker 20.10 loads, under a new tag.
    let back = "berth-compat/busybox:from-berth";
    svc.images.tag(tag, &back.parse().unwrap()).unwrap();
    let bsave = tmp.path().join("berth-saved.tar");
    svc.save(
        &[back],
        SaveFormat::Docker,
        fs::File::create(&bsave).unwrap(),
    )
    .unwrap();
    docker(&["rmi", tag]);
    let out = docker(&["load", "-i", bsave.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(back), "docker load said: {text}");
    let id = String::from_utf8(docker(&["inspect", "-f", "{{.Id}}", back]).stdout).unwrap();
    assert_eq!(id.trim(), docker_id.trim());
    // (/etc/hostname is docker's bind mount; /etc/group comes from the image.)
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        back,
        "head",
        "-1",
        "/etc/group",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "root:x:0:");
    docker(&["rmi", back]);
}
