//! Pull and push against a real Debian `docker-registry` (distribution 2.8) started by each
//! test on a free loopback port, with skopeo on the other side.

mod common;

use berth_distribution::{ClientOptions, Progress, RegistryClient};
use berth_image::{Digest, ImageService, Reference};
use common::*;
use std::fs;
use std::sync::Arc;

#[test]
fn pulls_what_skopeo_pushed() {
    let reg = Registry::start();
    let layout = anchors().join("busybox-oci");
    let target = format!("{}/lib/busybox:1", reg.addr);
    skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{target}"),
    ]);

    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let r: Reference = target.parse().unwrap();
    let (log, cb) = events();
    let rec = rt().block_on(client.pull(svc.clone(), &r, &cb)).unwrap();
    assert_eq!(rec.id, busybox_config());
    assert_eq!(rec.familiar_tags(), vec![target.clone()]);
    assert_eq!(rec.repo_digests.len(), 1);
    let chain = svc.chain_ids_of(&rec);
    assert!(svc
        .snapshots
        .layer_dir(&chain[0])
        .join("bin/busybox")
        .is_file());
    let ev = log.lock().unwrap().clone();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Progress::PullComplete { .. })),
        "{ev:?}"
    );

    // Again: nothing downloaded. By digest: same image.
    let (log, cb) = events();
    let digest_ref: Reference = rec.repo_digests[0].parse().unwrap();
    let again = rt()
        .block_on(client.pull(svc.clone(), &digest_ref, &cb))
        .unwrap();
    assert_eq!(again.id, rec.id);
    let ev = log.lock().unwrap().clone();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Progress::AlreadyExists { .. })),
        "{ev:?}"
    );
    assert!(
        !ev.iter().any(|e| matches!(e, Progress::Downloading { .. })),
        "{ev:?}"
    );

    let missing: Reference = format!("{}/lib/nothere:1", reg.addr).parse().unwrap();
    let err = rt()
        .block_on(client.pull(svc, &missing, &|_| {}))
        .unwrap_err();
    assert!(
        err.to_string().contains("manifest unknown") || err.to_string().contains("404"),
        "{err}"
    );
}

#[test]
fn push_is_read_back_identical_by_skopeo_and_mounts_across_repos() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    svc.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let rt = rt();

    let t1: Reference = format!("{}/pushed/bb:v1", reg.addr).parse().unwrap();
    let (log, cb) = events();
    let digest = rt
        .block_on(client.push(svc.clone(), "busybox:latest", &t1, &cb))
        .unwrap();
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Progress::Pushed { .. })));

    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{t1}"),
    ]);
    assert_eq!(
        Digest::sha256_of(&raw),
        digest,
        "registry serves other manifest bytes"
    );
    let layout = tmp.path().join("back");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{t1}"),
        &format!("oci:{}:v1", layout.display()),
    ]);
    // Every blob skopeo fetched is byte-identical to ours: in our store, or the gzip this push
    // made of one of our (uncompressed) layers, of which only the digest is kept.
    let gzipped: Vec<Digest> = svc
        .content
        .list()
        .unwrap()
        .iter()
        .filter_map(|d| svc.content.derived_digest("gzip", d))
        .collect();
    for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let d: Digest = format!("sha256:{}", e.file_name().to_string_lossy())
            .parse()
            .unwrap();
        assert_eq!(Digest::sha256_of(&fs::read(e.path()).unwrap()), d);
        assert!(
            svc.content.exists(&d) || gzipped.contains(&d),
            "{d} is not one of ours"
        );
    }
    let cfg = skopeo(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{t1}"),
    ]);
    assert_eq!(Digest::sha256_of(&cfg), busybox_config());

    // Pushing again uploads nothing; another repository mounts instead of uploading.
    let (log, cb) = events();
    assert_eq!(
        rt.block_on(client.push(svc.clone(), "busybox:latest", &t1, &cb))
            .unwrap(),
        digest
    );
    let ev = log.lock().unwrap().clone();
    assert!(
        ev.iter().all(|e| !matches!(e, Progress::Pushing { .. })),
        "{ev:?}"
    );
    let t2: Reference = format!("{}/other/bb:v2", reg.addr).parse().unwrap();
    let (log, cb) = events();
    rt.block_on(client.push(svc.clone(), "busybox:latest", &t2, &cb))
        .unwrap();
    let ev = log.lock().unwrap().clone();
    assert!(
        ev.iter().any(|e| matches!(e, Progress::Mounted { .. })),
        "{ev:?}"
    );

    // Chunked upload into a third repository from a store that knows no other repository.
    let tmp2 = tempfile::tempdir().unwrap();
    let svc2 = Arc::new(ImageService::open(tmp2.path()).unwrap());
    svc2.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();
    let chunked = RegistryClient::new(ClientOptions {
        chunk_size: Some(256 * 1024),
        ..Default::default()
    })
    .unwrap();
    let t3: Reference = format!("{}/chunked/bb:v3", reg.addr).parse().unwrap();
    let (log, cb) = events();
    let d3 = rt
        .block_on(chunked.push(svc2, "busybox", &t3, &cb))
        .unwrap();
    assert_eq!(d3, digest, "gzip of the same layer must be deterministic");
    let pushes = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Progress::Pushing { .. }))
        .count();
    assert!(pushes > 2, "expected several chunks, saw {pushes}");
    skopeo(&["inspect", "--tls-verify=false", &format!("docker://{t3}")]);
}
