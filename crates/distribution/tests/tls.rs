//! HTTPS: a docker-registry serving a certificate from a test CA. Trusted through
//! `extra_ca_pem`, push and pull work; without it the client refuses the certificate.

mod common;

use berth_distribution::{ClientOptions, RegistryClient};
use berth_image::{ImageService, Reference};
use common::*;
use std::fs;
use std::process::Command;
use std::sync::Arc;

fn openssl(args: &[&str]) {
    let out = Command::new(require_tool("openssl"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn push_and_pull_over_tls_with_a_private_ca() {
    let pki = tempfile::tempdir().unwrap();
    let p = |n: &str| pki.path().join(n).to_string_lossy().into_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=berth test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.crt"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &p("srv.key"),
        "-out",
        &p("srv.csr"),
    ]);
    fs::write(pki.path().join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("srv.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("srv.crt"),
    ]);
    let reg = Registry::start_tls(&pki.path().join("srv.crt"), &pki.path().join("srv.key"));

    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    svc.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();
    let target: Reference = format!("{}/tls/bb:v1", reg.addr).parse().unwrap();
    let rt = rt();

    // Not trusted: the error names the certificate problem.
    let untrusted = RegistryClient::new(ClientOptions {
        plain_http_loopback: false,
        ..Default::default()
    })
    .unwrap();
    let err = rt
        .block_on(untrusted.push(svc.clone(), "busybox", &target, &|_| {}))
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let client = RegistryClient::new(ClientOptions {
        plain_http_loopback: false,
        extra_ca_pem: vec![fs::read(pki.path().join("ca.crt")).unwrap()],
        ..Default::default()
    })
    .unwrap();
    rt.block_on(client.push(svc.clone(), "busybox", &target, &|_| {}))
        .unwrap();
    let tmp2 = tempfile::tempdir().unwrap();
    let svc2 = Arc::new(ImageService::open(tmp2.path()).unwrap());
    let rec = rt.block_on(client.pull(svc2, &target, &|_| {})).unwrap();
    assert_eq!(rec.id, busybox_config());

    assert!(RegistryClient::new(ClientOptions {
        extra_ca_pem: vec![
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec()
        ],
        ..Default::default()
    })
    .is_err());
}
