//! A bad bundle fails `create` with one message naming the field, and leaves
//! no state directory, mount or cgroup behind.

mod common;

use common::*;
use serde_json::json;

fn assert_create_fails(env: &Env, b: &Bundle, expect: &[&str]) {
    let id = env.id("bad");
    let (ok, err) = env.try_create(b, &id, &[]);
    assert!(!ok, "create succeeded but should fail with {expect:?}");
    for e in expect {
        assert!(err.contains(e), "error {err:?} does not mention {e:?}");
    }
    assert_eq!(
        err.trim().lines().count(),
        1,
        "expected one error line: {err}"
    );
    assert!(!env.root.join(&id).exists(), "state dir left behind");
    assert!(host_cgroups_named(&id).is_empty(), "cgroup left behind");
    assert!(host_mounts_under(&b.path).is_empty(), "mount left behind");
}

#[test]
fn malformed_json() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    std::fs::write(
        b.path.join("config.json"),
        "{\"ociVersion\": \"1.0.0\", \"process\": {",
    )
    .unwrap();
    let id = env.id("bad");
    let out = env
        .rt()
        .args(["create", "--bundle"])
        .arg(&b.path)
        .arg(&id)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid config.json"));
    assert!(!env.root.join(&id).exists());
}

#[test]
fn missing_or_empty_args() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["process"]["args"] = json!([]);
    assert_create_fails(&env, &b, &["process.args", "must not be empty"]);
    b.config["process"].as_object_mut().unwrap().remove("args");
    assert_create_fails(&env, &b, &["process.args"]);
}

#[test]
fn unknown_namespace_type() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["namespaces"][1] = json!({"type": "nosuchns"});
    assert_create_fails(&env, &b, &["linux.namespaces[1].type", "nosuchns"]);
}

#[test]
fn rootfs_missing_or_relative_outside() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["root"]["path"] = json!("no-such-rootfs");
    assert_create_fails(&env, &b, &["root.path", "no-such-rootfs"]);
    b.config["root"]["path"] = json!("config.json");
    assert_create_fails(&env, &b, &["root.path", "not a directory"]);
}

#[test]
fn unknown_capability() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_FLY"]);
    assert_create_fails(&env, &b, &["process.capabilities.bounding", "CAP_FLY"]);
}

#[test]
fn relative_mount_destination_and_cwd() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["mounts"][0]["destination"] = json!("proc");
    assert_create_fails(&env, &b, &["mounts[0].destination"]);
    let mut b = env.bundle(&["true"]);
    b.config["process"]["cwd"] = json!("tmp");
    assert_create_fails(&env, &b, &["process.cwd"]);
}

#[test]
fn executable_not_found_fails_at_create() {
    let env = Env::new();
    let b = env.bundle(&["no-such-binary"]);
    assert_create_fails(&env, &b, &["executable file not found"]);
    let b = env.bundle(&["/no/such/file"]);
    assert_create_fails(&env, &b, &["/no/such/file", "no such file or directory"]);
    // A path to something that cannot be executed, as runc: a directory, a plain file.
    for path in ["/etc", "/etc/passwd"] {
        let b = env.bundle(&[path]);
        assert_create_fails(&env, &b, &[path, "permission denied"]);
    }
}

#[test]
fn inconsistent_namespaces_and_values() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
    assert_create_fails(&env, &b, &["linux.uidMappings", "user namespace"]);

    let mut b = env.bundle(&["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 5, "hostID": 5000, "size": 10}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
    assert_create_fails(&env, &b, &["linux.uidMappings[1]", "overlaps"]);

    let mut b = env.bundle(&["true"]);
    b.config["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    assert_create_fails(
        &env,
        &b,
        &["linux.sysctl.vm.swappiness", "not a namespaced sysctl"],
    );

    let mut b = env.bundle(&["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "uts");
    assert_create_fails(&env, &b, &["hostname", "UTS"]);

    let mut b = env.bundle(&["true"]);
    b.config["linux"]["namespaces"][0]["path"] = json!("/no/such/ns");
    assert_create_fails(&env, &b, &["linux.namespaces", "/no/such/ns"]);

    let mut b = env.bundle(&["true"]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}]);
    assert_create_fails(&env, &b, &["process.rlimits[0]", "soft limit"]);
}

#[test]
fn invalid_id_and_duplicate() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "10"]);
    for id in ["../escape", "a/b", ".."] {
        let (ok, err) = env.try_create(&b, id, &[]);
        assert!(!ok);
        assert!(err.contains("invalid container id"), "{err}");
    }
    let id = env.id("dup");
    env.create(&b, &id);
    let (ok, err) = env.try_create(&b, &id, &[]);
    assert!(!ok);
    assert!(err.contains("container with id exists"), "{err}");
    // The first container is untouched.
    assert_eq!(env.state(&id)["status"], "created");
}
