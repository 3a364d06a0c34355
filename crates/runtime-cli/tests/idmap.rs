//! Idmapped bind mounts: files of a host directory appear inside the
//! container with the owners the mount's mapping gives them, and what the
//! container writes lands on disk with the mapped-back owner.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

/// A host directory owned by `uid:gid` holding a file `f` owned the same.
fn owned_dir(env: &Env, name: &str, uid: u32, gid: u32) -> PathBuf {
    let d = env.dir.path().join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("f"), "x").unwrap();
    for p in [&d, &d.join("f")] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    d
}

fn one(container: u32, host: u32) -> serde_json::Value {
    json!([{"containerID": container, "hostID": host, "size": 1}])
}

fn skip_unless_root() -> bool {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: needs root");
        return true;
    }
    false
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn idmapped_bind_shows_host_uid_1000_as_root() {
    if skip_unless_root() {
        return;
    }
    let env = Env::new();
    let src = owned_dir(&env, "data", 1000, 1000);
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "stat -c idmapped=%u:%g /mnt/f; stat -c plain=%u:%g /plain/f; touch /mnt/new",
    ]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    // On disk 1000 is shown as 0 (and 0 written back as 1000).
    mounts.push(json!({
        "destination": "/mnt", "type": "bind", "source": src,
        "options": ["bind", "idmap"],
        "uidMappings": one(1000, 0), "gidMappings": one(1000, 0)
    }));
    mounts.push(json!({
        "destination": "/plain", "type": "bind", "source": src, "options": ["bind"]
    }));
    let out = env.run_ok(&b, "idmap");
    assert!(out.contains("idmapped=0:0"), "{out}");
    assert!(out.contains("plain=1000:1000"), "{out}");
    // Root inside wrote through the mapping: the host sees 1000.
    assert_eq!(owner(&src.join("new")), (1000, 1000));
    // The host directory itself is untouched.
    assert_eq!(owner(&src.join("f")), (1000, 1000));
}

#[test]
fn idmapped_bind_in_a_user_namespace() {
    if skip_unless_root() {
        return;
    }
    let env = Env::new();
    // The container's root (host 100000) must reach the plain bind's source.
    std::fs::set_permissions(
        env.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let data = owned_dir(&env, "data", 1000, 1000);
    let rootowned = owned_dir(&env, "rootowned", 0, 0);
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "stat -c a=%u:%g /a/f; stat -c b=%u:%g /b/f; stat -c plain=%u:%g /plain/f; readlink /proc/self/ns/user; touch /a/new",
    ]);
    // The rootfs belongs to unmapped host root: mount points must exist.
    for d in ["a", "b", "plain"] {
        std::fs::create_dir(b.rootfs().join(d)).unwrap();
    }
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    // Host 1000 on disk becomes host 100000, the container's root.
    mounts.push(json!({
        "destination": "/a", "type": "bind", "source": data,
        "options": ["rbind", "ridmap"],
        "uidMappings": one(1000, 100000), "gidMappings": one(1000, 100000)
    }));
    // Bare idmap takes the container's own mapping: host root's files are
    // the container root's.
    mounts.push(json!({
        "destination": "/b", "type": "bind", "source": rootowned,
        "options": ["bind", "idmap"]
    }));
    // Without a mapping, host root is unmapped in the container.
    mounts.push(json!({
        "destination": "/plain", "type": "bind", "source": rootowned, "options": ["bind"]
    }));
    let out = env.run_ok(&b, "idmap-userns");
    assert!(out.contains("a=0:0"), "{out}");
    assert!(out.contains("b=0:0"), "{out}");
    assert!(out.contains("plain=65534:65534"), "{out}");
    let host_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert!(
        !out.contains(host_userns.to_str().unwrap()),
        "not in its own user namespace: {out}"
    );
    assert_eq!(owner(&data.join("new")), (1000, 1000));
}

#[test]
fn idmap_needs_a_bind_mount_and_both_mappings() {
    if skip_unless_root() {
        return;
    }
    let env = Env::new();
    let src = owned_dir(&env, "data", 1000, 1000);

    let mut b = env.bundle(&["true"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
        "options": ["idmap"], "uidMappings": one(0, 1000), "gidMappings": one(0, 1000)
    }));
    let n = b.config["mounts"].as_array().unwrap().len() - 1;
    let (code, _, err) = env.run(&b, "idmap-tmpfs");
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("mounts[{n}].options")) && err.contains("bind mounts only"),
        "{err}"
    );

    let mut b = env.bundle(&["true"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "bind", "source": src,
        "options": ["bind"], "uidMappings": one(0, 1000)
    }));
    let (code, _, err) = env.run(&b, "idmap-half");
    assert_ne!(code, 0);
    assert!(err.contains(&format!("mounts[{n}].gidMappings")), "{err}");

    // Bare idmap without any user namespace mapping to borrow.
    let mut b = env.bundle(&["true"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "bind", "source": src, "options": ["bind", "idmap"]
    }));
    let (code, _, err) = env.run(&b, "idmap-bare");
    assert_ne!(code, 0);
    assert!(err.contains("linux.uidMappings"), "{err}");
    assert!(
        host_mounts_under(env.dir.path()).is_empty(),
        "mounts left behind"
    );
}
