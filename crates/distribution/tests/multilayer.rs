//! A three-layer image (gzip, zstd and plain layers, with whiteouts and an opaque directory)
//! pushed by skopeo, pulled in parallel by Berth and mounted as a container rootfs.

mod common;

use berth_distribution::{ClientOptions, RegistryClient};
use berth_image::{Digest, ImageService, Reference};
use common::*;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn put_blob(layout: &Path, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    fs::write(layout.join("blobs/sha256").join(d.hex()), data).unwrap();
    d
}

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = berth_image::snapshot::unmount_rootfs(&self.0);
    }
}

#[test]
fn pulls_a_multi_layer_image_and_mounts_it() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();

    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let l1 = layer(&[
        ("etc/a", b"a"),
        ("etc/b", b"b"),
        ("d/x", b"x"),
        ("d/y", b"y"),
        ("big", &big),
    ]);
    let l2 = layer(&[("etc/.wh.a", b""), ("d/.wh..wh..opq", b""), ("d/z", b"z")]);
    let l3 = layer(&[("etc/c", b"c")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&l1).unwrap();
    let blobs = [
        (
            gz.finish().unwrap(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            zstd::encode_all(&l2[..], 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        (l3.clone(), "application/vnd.oci.image.layer.v1.tar"),
    ];
    let diff_ids: Vec<Digest> = [&l1, &l2, &l3]
        .iter()
        .map(|l| Digest::sha256_of(l))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = put_blob(&layout, &config);
    let layers: Vec<_> = blobs
        .iter()
        .map(|(b, mt)| {
            let d = put_blob(&layout, b);
            serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": b.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": layers,
    }))
    .unwrap();
    let md = put_blob(&layout, &manifest);
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len(),
             "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
        .unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let target = format!("{}/multi/layers:v1", reg.addr);
    skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{target}"),
    ]);

    let svc = Arc::new(ImageService::open(&tmp.path().join("store")).unwrap());
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let r: Reference = target.parse().unwrap();
    let rec = rt()
        .block_on(client.pull(svc.clone(), &r, &|_| {}))
        .unwrap();
    assert_eq!(rec.id, cd);
    // (skopeo re-serialises the manifest on copy, so its digest is skopeo's, not `md`.)
    let _ = md;
    assert_eq!(rec.diff_ids, diff_ids);
    assert_eq!(svc.snapshots.list_layers().unwrap().len(), 3);

    let ovl = svc.prepare_rootfs("multi", &rec).unwrap();
    let root = tmp.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    ovl.mount(&root).unwrap();
    let _guard = Unmount(root.clone());
    let names = |p: &Path| {
        let mut v: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&root.join("etc")), vec!["b", "c"]);
    assert_eq!(names(&root.join("d")), vec!["z"]);
    assert_eq!(fs::read(root.join("big")).unwrap(), big);
}
