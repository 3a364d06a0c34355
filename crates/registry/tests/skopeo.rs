//! Real client: skopeo copies images into the registry and back out, byte for byte.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use http::StatusCode;

/// The reference images from shared/anchors, built on demand (offline) when missing.
fn anchor_images() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("BERTH_ANCHOR_IMAGES").unwrap_or_else(|_| "/tmp/anchors-images".into()),
    );
    if !dir.join("busybox-oci/index.json").exists() || !dir.join("busybox-docker.tar").exists() {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/anchors/make-images.sh");
        assert!(
            script.exists(),
            "test images missing and {} not found",
            script.display()
        );
        let st = std::process::Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .status()
            .expect("run make-images.sh");
        assert!(st.success(), "make-images.sh {} failed", dir.display());
    }
    dir
}

async fn skopeo(args: &[&str]) -> String {
    let out = tokio::process::Command::new("skopeo")
        .args(args)
        .output()
        .await
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_oci_round_trip() {
    require_tool("skopeo");
    let images = anchor_images();
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(config(&dir.path().join("root"))).await;
    let host = reg.base.trim_start_matches("http://").to_string();
    let src = format!("oci:{}:latest", images.join("busybox-oci").display());
    let dest = format!("docker://{host}/anchors/busybox:latest");
    skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]).await;

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(images.join("busybox-oci/index.json")).unwrap())
            .unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let original = std::fs::read(
        images
            .join("busybox-oci/blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]).await;
    assert_eq!(
        raw.as_bytes(),
        &original[..],
        "manifest changed on the way in"
    );
    let r = reg.get("/v2/anchors/busybox/manifests/latest").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));

    let out = dir.path().join("out-oci");
    let out_ref = format!("oci:{}:latest", out.display());
    skopeo(&["copy", "--src-tls-verify=false", &dest, &out_ref]).await;
    let out_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(out_index["manifests"][0]["digest"], digest.as_str());
    let copied = std::fs::read(
        out.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(copied, original);
    // Every layer and the config came back identical.
    let m: serde_json::Value = serde_json::from_slice(&original).unwrap();
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    for b in blobs {
        let name = b.trim_start_matches("sha256:");
        assert_eq!(
            std::fs::read(out.join("blobs/sha256").join(name)).unwrap(),
            std::fs::read(images.join("busybox-oci/blobs/sha256").join(name)).unwrap()
        );
    }
    // A second push finds every blob present.
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{host}/anchors/busybox:again"),
    ])
    .await;
    let tags = reg.get("/v2/anchors/busybox/tags/list").await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["again", "latest"]));
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_docker_archive_round_trip() {
    require_tool("skopeo");
    let images = anchor_images();
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(config(&dir.path().join("root"))).await;
    let host = reg.base.trim_start_matches("http://").to_string();
    let src = format!(
        "docker-archive:{}",
        images.join("busybox-docker.tar").display()
    );
    let dest = format!("docker://{host}/anchors/busybox-docker:latest");
    skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]).await;

    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]).await;
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(m["mediaType"], DOCKER_MANIFEST);
    let r = reg.get("/v2/anchors/busybox-docker/manifests/latest").await;
    assert_eq!(r.header("content-type"), Some(DOCKER_MANIFEST));
    assert_eq!(r.body.as_ref(), raw.as_bytes());

    // Out to a dir: the manifest bytes are kept as served.
    let out = dir.path().join("out-dir");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("dir:{}", out.display()),
    ])
    .await;
    assert_eq!(
        std::fs::read(out.join("manifest.json")).unwrap(),
        raw.as_bytes()
    );
    // And back to a docker archive that loads the same image.
    let tar = dir.path().join("out.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("docker-archive:{}:busybox:latest", tar.display()),
    ])
    .await;
    let a = skopeo(&["inspect", &format!("docker-archive:{}", tar.display())]).await;
    let b = skopeo(&["inspect", &src]).await;
    let layers = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["Layers"].clone();
    assert_eq!(layers(&a), layers(&b));
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_over_verified_tls() {
    require_tool("skopeo");
    require_tool("openssl");
    let images = anchor_images();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .output()
        .expect("run openssl");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let certs = dir.path().join("certs.d");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&cert, certs.join("ca.crt")).unwrap();

    let mut c = config(&dir.path().join("root"));
    c.tls = Some(berth_registry::config::TlsConfig { cert, key });
    let reg = Registry::start(c).await;
    assert!(reg.base.starts_with("https://"));
    let host = reg.base.trim_start_matches("https://").to_string();
    let src = format!("oci:{}:latest", images.join("busybox-oci").display());
    let dest = format!("docker://{host}/tls/busybox:latest");
    let cert_dir = certs.display().to_string();
    skopeo(&["copy", "--dest-cert-dir", &cert_dir, &src, &dest]).await;
    let raw = skopeo(&["inspect", "--raw", "--cert-dir", &cert_dir, &dest]).await;
    assert!(raw.contains("application/vnd.oci.image.manifest.v1+json"));
    // Without the CA the client refuses: the certificate really is checked.
    let out = tokio::process::Command::new("skopeo")
        .args(["inspect", "--raw", &dest])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_with_token_auth() {
    require_tool("skopeo");
    let images = anchor_images();
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(token_auth_config(dir.path())).await;
    let host = reg.base.trim_start_matches("http://").to_string();
    let src = format!("oci:{}:latest", images.join("busybox-oci").display());
    let dest = format!("docker://{host}/private/busybox:latest");
    let out = tokio::process::Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", &src, &dest])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "anonymous push must fail");
    let out = tokio::process::Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:wrong",
            &src,
            &dest,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "bad password must fail");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alice-pw",
        &src,
        &dest,
    ])
    .await;
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:alice-pw",
        &dest,
    ])
    .await;
    assert!(raw.contains("application/vnd.oci.image.manifest.v1+json"));
    reg.stop().await;
}
