//! Insecure registries as Docker treats them: HTTPS first (certificate not verified), plain
//! HTTP when the TLS handshake fails; loopback is insecure by default. A secure registry is
//! only ever spoken to over verified HTTPS.

mod common;

use berth_distribution::{ClientOptions, RegistryClient};
use berth_image::{ImageService, Reference};
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// A self-signed certificate for 127.0.0.1 (no CA anyone trusts).
fn self_signed(dir: &Path) {
    let out = Command::new(require_tool("openssl"))
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn busybox_store() -> (tempfile::TempDir, Arc<ImageService>) {
    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    svc.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();
    (tmp, svc)
}

/// Pushes busybox as `target` and pulls it back into an empty store.
fn round_trip(client: &RegistryClient, target: &Reference) {
    let rt = rt();
    let (_keep, svc) = busybox_store();
    rt.block_on(client.push(svc, "busybox", target, &|_| {}))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let svc2 = Arc::new(ImageService::open(tmp.path()).unwrap());
    let rec = rt.block_on(client.pull(svc2, target, &|_| {})).unwrap();
    assert_eq!(rec.id, busybox_config());
}

#[test]
fn loopback_registry_over_plain_http_is_reached_after_https_fails() {
    let reg = Registry::start();
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let ep = rt().block_on(client.endpoint(&reg.addr)).unwrap();
    assert_eq!(ep, format!("http://{}", reg.addr));
    round_trip(
        &client,
        &format!("{}/fb/plain:v1", reg.addr).parse().unwrap(),
    );
}

#[test]
fn loopback_registry_with_a_self_signed_certificate_is_used_over_https() {
    let pki = tempfile::tempdir().unwrap();
    self_signed(pki.path());
    let reg = Registry::start_tls(&pki.path().join("cert.pem"), &pki.path().join("key.pem"));
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let ep = rt().block_on(client.endpoint(&reg.addr)).unwrap();
    assert_eq!(ep, format!("https://{}", reg.addr));
    round_trip(&client, &format!("{}/fb/tls:v1", reg.addr).parse().unwrap());
}

#[test]
fn registry_marked_insecure_falls_back_like_loopback() {
    let reg = Registry::start();
    let client = RegistryClient::new(ClientOptions {
        plain_http_loopback: false,
        insecure_registries: vec![reg.addr.clone()],
        ..Default::default()
    })
    .unwrap();
    let ep = rt().block_on(client.endpoint(&reg.addr)).unwrap();
    assert_eq!(ep, format!("http://{}", reg.addr));
    round_trip(
        &client,
        &format!("{}/fb/marked:v1", reg.addr).parse().unwrap(),
    );
}

#[test]
fn secure_registry_never_falls_back_to_http_nor_skips_verification() {
    let rt = rt();
    let (_keep, svc) = busybox_store();
    let secure = RegistryClient::new(ClientOptions {
        plain_http_loopback: false,
        ..Default::default()
    })
    .unwrap();

    // Plain HTTP server: the TLS handshake fails and that is the error.
    let plain = Registry::start();
    assert_eq!(
        rt.block_on(secure.endpoint(&plain.addr)).unwrap(),
        format!("https://{}", plain.addr)
    );
    let target: Reference = format!("{}/fb/secure:v1", plain.addr).parse().unwrap();
    let err = rt
        .block_on(secure.push(svc.clone(), "busybox", &target, &|_| {}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("https://"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let empty = Arc::new(ImageService::open(tmp.path()).unwrap());
    assert!(rt.block_on(secure.pull(empty, &target, &|_| {})).is_err());

    // Self-signed certificate: refused, as it is not trusted.
    let pki = tempfile::tempdir().unwrap();
    self_signed(pki.path());
    let tls = Registry::start_tls(&pki.path().join("cert.pem"), &pki.path().join("key.pem"));
    let target: Reference = format!("{}/fb/secure:v1", tls.addr).parse().unwrap();
    let err = rt
        .block_on(secure.push(svc, "busybox", &target, &|_| {}))
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
