//! The init layer, with the real docker CLI against a private berthd: every container has
//! Docker's `/.dockerenv` and `/etc/mtab`, and they are not the container's own changes.

mod common;

use common::{Daemon, OutputExt};

#[test]
fn containers_have_dockerenv_and_mtab_outside_their_changes() {
    let d = Daemon::start();
    let seen = d
        .docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "test -f /.dockerenv && readlink /etc/mtab && grep -c ' / ' /etc/mtab",
        ])
        .ok();
    assert_eq!(seen, "/proc/mounts\n1", "{seen}");

    d.docker(&[
        "run",
        "--name",
        "fresh",
        "--network",
        "none",
        "busybox",
        "true",
    ])
    .ok();
    let diff = d.docker(&["diff", "fresh"]).ok();
    assert_eq!(diff, "", "a container that changed nothing has changes");

    let tar = d.root().join("fresh.tar");
    d.docker(&["export", "-o", tar.to_str().expect("utf-8"), "fresh"])
        .ok();
    let names = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .expect("tar")
        .out();
    for name in [".dockerenv", "etc/mtab", "etc/hostname"] {
        assert!(names.lines().any(|l| l == name), "{name} not exported");
    }

    // A commit of it adds an empty layer: the init layer stays out of images.
    d.docker(&["commit", "fresh", "fresh:snap"]).ok();
    let out = d.root().join("snap");
    std::fs::create_dir_all(&out).expect("dir");
    let saved = out.join("snap.tar");
    d.docker(&["save", "-o", saved.to_str().expect("utf-8"), "fresh:snap"])
        .ok();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&saved)
        .arg("-C")
        .arg(&out)
        .status()
        .expect("tar");
    assert!(status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest.json"))
            .expect("json");
    let top = manifest[0]["Layers"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| l.as_str())
        .expect("layers");
    let names = std::process::Command::new("tar")
        .arg("-tf")
        .arg(out.join(top))
        .output()
        .expect("tar")
        .out();
    assert_eq!(names.trim(), "", "the committed layer holds {names}");
    // Sizes are counted as Docker counts them: file bytes, not tar bytes.
    let size = d
        .docker(&["history", "--format", "{{.Size}}", "fresh:snap"])
        .ok();
    assert_eq!(size.lines().next(), Some("0B"), "{size}");
}
