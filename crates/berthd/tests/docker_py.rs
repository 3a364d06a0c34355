//! docker-py (the Python Docker SDK, 7.1) against berthd: runs tests/docker-py/test_berthd.py.

mod common;

use common::{finish, Daemon, OutputExt};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn docker_py_suite() {
    let have = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        have,
        "python3 with the docker package is required (pip install docker)"
    );
    let d = Daemon::start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/docker-py/test_berthd.py");
    let child = Command::new("python3")
        .arg(&script)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.root().join("dockercfg"))
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = finish(child, "the docker-py suite", Duration::from_secs(600));
    // unittest reports on stderr.
    assert!(
        out.status.success(),
        "docker-py suite failed:\n{}\n{}",
        out.err(),
        out.out()
    );
    assert!(out.err().contains("OK"), "{}", out.err());
}
