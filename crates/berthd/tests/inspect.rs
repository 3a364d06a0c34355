//! `docker inspect` of containers with the real docker CLI against a private berthd: the
//! settings a container will run with, as dockerd records them at create.

mod common;

use common::{Daemon, OutputExt};

fn field(d: &Daemon, name: &str, template: &str) -> String {
    d.docker(&["inspect", "-f", template, name]).ok()
}

/// Settings the request left out show what the container gets, not zero values.
#[test]
fn inspect_shows_the_effective_settings_of_a_plain_container() {
    let d = Daemon::start();
    d.docker(&["create", "--name", "plain", "-m", "64m", "busybox", "true"])
        .ok();
    assert_eq!(field(&d, "plain", "{{.HostConfig.ShmSize}}"), "67108864");
    assert_eq!(field(&d, "plain", "{{.HostConfig.IpcMode}}"), "private");
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(
        field(&d, "plain", "{{.HostConfig.CgroupnsMode}}"),
        if v2 { "private" } else { "host" }
    );
    assert!(!field(&d, "plain", "{{.HostConfig.Runtime}}").is_empty());
    let masked = field(&d, "plain", "{{json .HostConfig.MaskedPaths}}");
    assert!(masked.contains("/proc/kcore"), "{masked}");
    let readonly = field(&d, "plain", "{{json .HostConfig.ReadonlyPaths}}");
    assert!(readonly.contains("/proc/sys"), "{readonly}");
    let swap = field(&d, "plain", "{{.HostConfig.MemorySwap}}");
    let accounted = std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
        .exists()
        || std::path::Path::new("/sys/fs/cgroup/memory.swap.max").exists();
    assert_eq!(swap, if accounted { "134217728" } else { "0" });
}

/// What the user asked for is kept, and `systempaths=unconfined` and `--privileged` leave
/// the /proc and /sys paths unmasked, as in Docker.
#[test]
fn inspect_keeps_explicit_settings() {
    let d = Daemon::start();
    d.docker(&[
        "create",
        "--name",
        "explicit",
        "--shm-size",
        "8m",
        "--ipc",
        "shareable",
        "--security-opt",
        "systempaths=unconfined",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(field(&d, "explicit", "{{.HostConfig.ShmSize}}"), "8388608");
    assert_eq!(
        field(&d, "explicit", "{{.HostConfig.IpcMode}}"),
        "shareable"
    );
    assert_eq!(
        field(&d, "explicit", "{{json .HostConfig.MaskedPaths}}"),
        "[]"
    );
    d.docker(&[
        "create",
        "--name",
        "priv",
        "--privileged",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(
        field(&d, "priv", "{{json .HostConfig.MaskedPaths}}"),
        "null"
    );
}
