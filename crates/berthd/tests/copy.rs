//! `docker cp` with the real docker CLI against a private berthd: running, created and stopped
//! containers, what a user copies in and out of them.

mod common;

use common::{wait_for, Daemon, OutputExt};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn cp_both_ways() {
    let d = Daemon::start();
    let id = d.run_d(&["busybox", "sh", "-c", "echo inside > /tmp/f; sleep 1000"]);
    wait_for("/tmp/f", LONG, || {
        d.docker(&["exec", &id, "test", "-e", "/tmp/f"])
            .status
            .success()
            .then_some(())
    });
    let dest = d.root().join("fromc");
    d.docker(&["cp", &format!("{id}:/tmp/f"), dest.to_str().expect("utf-8")])
        .ok();
    assert_eq!(std::fs::read_to_string(&dest).expect("copied"), "inside\n");
    let src = d.root().join("toc");
    std::fs::write(&src, "outside\n").expect("file");
    d.docker(&["cp", src.to_str().expect("utf-8"), &format!("{id}:/tmp/g")])
        .ok();
    assert_eq!(d.docker(&["exec", &id, "cat", "/tmp/g"]).ok(), "outside");
}

/// `docker cp` into a container that was never started lands in the root it starts with,
/// and removing a container unstarted leaves no mount.
#[test]
fn cp_into_a_created_container_then_start_and_rm_unstarted() {
    let d = Daemon::start();
    let id = d
        .docker(&["create", "busybox", "cat", "/etc/greeting"])
        .ok();
    let src = d.root().join("greeting");
    std::fs::write(&src, "hello from cp\n").expect("file");
    d.docker(&[
        "cp",
        src.to_str().expect("utf-8"),
        &format!("{id}:/etc/greeting"),
    ])
    .ok();
    assert_eq!(d.docker(&["start", "-a", &id]).ok(), "hello from cp");

    let unstarted = d.docker(&["create", "busybox", "true"]).ok();
    d.docker(&["rm", &unstarted]).ok();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&unstarted),
        "a mount of the removed container is left"
    );
}

/// A stopped container is copied from as it looked while it ran: its volume's content, a
/// bind's files and its own /etc/hostname, not what the image has at those paths. A
/// read-only volume refuses a copy into it.
#[test]
fn cp_from_a_stopped_container_sees_its_volumes_and_etc_files() {
    let d = Daemon::start();
    let shared = d.root().join("shared");
    std::fs::create_dir_all(&shared).expect("bind source");
    std::fs::write(shared.join("host.txt"), "from the host\n").expect("bind file");
    d.docker(&[
        "run",
        "--name",
        "stopped",
        "--network",
        "none",
        "--hostname",
        "copied-box",
        "-v",
        "cpdata:/data",
        "-v",
        "cpro:/ro:ro",
        "-v",
        &format!("{}:/mnt/shared", shared.display()),
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/note",
    ])
    .ok();
    let id = d.docker(&["inspect", "-f", "{{.Id}}", "stopped"]).ok();
    let out = d.root().join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    for (inside, name, want) in [
        ("/data/note", "note", "kept\n"),
        ("/mnt/shared/host.txt", "host.txt", "from the host\n"),
        ("/etc/hostname", "hostname", "copied-box\n"),
    ] {
        d.docker(&[
            "cp",
            &format!("{id}:{inside}"),
            out.to_str().expect("utf-8"),
        ])
        .ok();
        assert_eq!(
            std::fs::read_to_string(out.join(name)).expect("copied"),
            want,
            "{inside}"
        );
    }
    let refused = d.docker(&[
        "cp",
        shared.join("host.txt").to_str().expect("utf-8"),
        &format!("{id}:/ro/x"),
    ]);
    assert!(
        !refused.status.success(),
        "a copy into a read-only volume succeeded"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&id),
        "a mount of the stopped container is left"
    );
    d.docker(&["rm", &id]).ok();
}

/// With a read-only root filesystem, a copy may still go into a writable volume, as in
/// Docker, but not anywhere else.
#[test]
fn cp_into_a_read_only_container_goes_to_its_volume_only() {
    let d = Daemon::start();
    d.docker(&[
        "create",
        "--name",
        "ro",
        "--read-only",
        "-v",
        "rovol:/data",
        "busybox",
        "cat",
        "/data/in",
    ])
    .ok();
    let src = d.root().join("in");
    std::fs::write(&src, "into the volume\n").expect("file");
    let src = src.to_str().expect("utf-8");
    let refused = d.docker(&["cp", src, "ro:/in"]);
    assert!(
        refused.code() != 0 && refused.err().contains("rootfs is marked read-only"),
        "a copy into a read-only root: {}",
        refused.err()
    );
    d.docker(&["cp", src, "ro:/data/in"]).ok();
    assert_eq!(d.docker(&["start", "-a", "ro"]).ok(), "into the volume");
}

/// A copy into a never-started container's fresh volume keeps the image's content there,
/// which the volume gets first, as it would at start (Docker copies it at create).
#[test]
fn cp_into_a_fresh_volume_keeps_the_images_content() {
    let d = Daemon::start();
    d.docker(&[
        "create",
        "--name",
        "fresh",
        "--network",
        "none",
        "-v",
        "etcvol:/etc",
        "busybox",
        "sh",
        "-c",
        "cat /etc/extra; test -s /etc/passwd && echo passwd",
    ])
    .ok();
    let src = d.root().join("extra");
    std::fs::write(&src, "copied in\n").expect("file");
    d.docker(&["cp", src.to_str().expect("utf-8"), "fresh:/etc/extra"])
        .ok();
    assert_eq!(
        d.docker(&["start", "-a", "fresh"]).ok(),
        "copied in\npasswd"
    );
}
