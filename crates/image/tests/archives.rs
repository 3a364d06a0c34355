mod common;

use berth_image::digest::Digest;
use berth_image::{ImageService, ImportOptions, Reference, SaveFormat};
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds the offline anchor images once (busybox as docker-archive, OCI layout, OCI archive).
fn anchors() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from("/tmp/anchors-images");
        if !dir.join("busybox-docker.tar").exists() || !dir.join("DIGESTS.txt").exists() {
            for t in ["skopeo", "jq", "runc", "busybox"] {
                require_tool(t);
            }
            let st = Command::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/anchors/make-images.sh"
            ))
            .arg(&dir)
            .status()
            .expect("run make-images.sh");
            assert!(st.success(), "make-images.sh failed");
        }
        dir
    })
}

/// The busybox config digest (= Docker image ID) make-images.sh recorded.
fn busybox_id() -> Digest {
    let txt = fs::read_to_string(anchors().join("DIGESTS.txt")).unwrap();
    let line = txt
        .lines()
        .find(|l| l.starts_with("busybox config"))
        .unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn check_busybox(svc: &ImageService, name: Option<&str>) {
    let rec = svc.images.resolve(&busybox_id().to_string()).unwrap();
    if let Some(n) = name {
        assert_eq!(svc.images.resolve(n).unwrap().id, rec.id);
    }
    let chain = svc.chain_ids_of(&rec);
    assert_eq!(chain.len(), 1);
    let fs_dir = svc.snapshots.layer_dir(&chain[0]);
    assert!(fs_dir.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(fs_dir.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let cfg = svc.config_of(&rec).unwrap();
    assert_eq!(cfg.container_config().cmd, Some(vec!["sh".to_string()]));
    assert!(rec.size > 1_000_000, "size {}", rec.size);
}

#[test]
fn loads_skopeo_docker_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(tmp.path()).unwrap();
    let f = fs::File::open(anchors().join("busybox-docker.tar")).unwrap();
    let recs = svc.load(f).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].familiar_tags(), vec!["busybox:latest".to_string()]);
    check_busybox(&svc, Some("busybox"));
    // A snapshot lost (crash before sync, or GC) is extracted again from its blob.
    let chain = svc.chain_ids_of(&recs[0]);
    svc.snapshots.remove_layer(&chain[0]).unwrap();
    let ovl = svc.prepare_rootfs("again", &recs[0]).unwrap();
    assert!(ovl.lowers[0].join("bin/busybox").is_file());
}

#[test]
fn loads_oci_archive_and_oci_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(tmp.path()).unwrap();
    let recs = svc
        .load(fs::File::open(anchors().join("busybox-oci.tar")).unwrap())
        .unwrap();
    assert_eq!(recs.len(), 1);
    // The layout's ref name is a bare tag: no repository, so the image stays untagged.
    assert!(recs[0].repo_tags.is_empty());
    check_busybox(&svc, None);

    let tmp2 = tempfile::tempdir().unwrap();
    let svc2 = ImageService::open(tmp2.path()).unwrap();
    let recs = svc2.load_oci_dir(&anchors().join("busybox-oci")).unwrap();
    assert_eq!(recs[0].id, busybox_id());
    check_busybox(&svc2, None);
}

#[test]
fn save_load_round_trip_and_skopeo_reads_what_we_save() {
    let skopeo = require_tool("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(&tmp.path().join("a")).unwrap();
    svc.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();
    svc.images
        .tag("busybox", &"localhost:5000/team/bb:v1".parse().unwrap())
        .unwrap();

    let saved = tmp.path().join("saved.tar");
    svc.save(
        &["busybox:latest", "localhost:5000/team/bb:v1"],
        SaveFormat::Docker,
        fs::File::create(&saved).unwrap(),
    )
    .unwrap();

    // Back into a fresh store.
    let svc2 = ImageService::open(&tmp.path().join("b")).unwrap();
    let recs = svc2.load(fs::File::open(&saved).unwrap()).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].familiar_tags(),
        vec![
            "busybox:latest".to_string(),
            "localhost:5000/team/bb:v1".to_string()
        ]
    );
    check_busybox(&svc2, Some("localhost:5000/team/bb:v1"));

    // skopeo reads it as a docker-archive...
    let out = Command::new(&skopeo)
        .args([
            "inspect",
            "--raw",
            &format!("docker-archive:{}", saved.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&skopeo)
        .args([
            "inspect",
            "--config",
            &format!("docker-archive:{}:busybox:latest", saved.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect --config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and copies it into an OCI layout, which we load back to the same image ID.
    let layout = tmp.path().join("layout");
    let out = Command::new(&skopeo)
        .args([
            "copy",
            "-q",
            &format!(
                "docker-archive:{}:localhost:5000/team/bb:v1",
                saved.display()
            ),
            &format!("oci:{}:v1", layout.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svc3 = ImageService::open(&tmp.path().join("c")).unwrap();
    let recs = svc3.load_oci_dir(&layout).unwrap();
    assert_eq!(recs[0].id, busybox_id());

    // The same tar is an OCI layout too: skopeo reads it as oci-archive.
    let out = Command::new(&skopeo)
        .args([
            "inspect",
            "--raw",
            &format!("oci-archive:{}:v1", saved.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo oci-archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // OCI archive with the blobs as stored (gzip), loaded back.
    let oci_tar = tmp.path().join("oci.tar");
    svc.save(
        &["busybox"],
        SaveFormat::OciArchive,
        fs::File::create(&oci_tar).unwrap(),
    )
    .unwrap();
    let svc4 = ImageService::open(&tmp.path().join("d")).unwrap();
    let recs = svc4.load(fs::File::open(&oci_tar).unwrap()).unwrap();
    assert_eq!(recs[0].id, busybox_id());
    assert_eq!(recs[0].familiar_tags(), vec!["busybox:latest".to_string()]);
    let out = Command::new(&skopeo)
        .args([
            "inspect",
            "--raw",
            &format!("oci-archive:{}", oci_tar.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo oci-archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Docker ≤ 24 writes `<v1id>/layer.tar`, and symlinks a layer shared by a second image.
#[test]
fn loads_legacy_docker_layout_with_symlinked_layers() {
    let layer = tar_of(&[
        E::Dir("etc", 0o755),
        E::File("etc/hostname", b"legacy\n", 0o644),
    ]);
    let diff = Digest::sha256_of(&layer);
    let cfg = |cmd: &str| {
        format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["{cmd}"],"Env":null}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}},"docker_version":"20.10.24"}}"#
        )
        .into_bytes()
    };
    let (c1, c2) = (cfg("one"), cfg("two"));
    let (d1, d2) = (Digest::sha256_of(&c1), Digest::sha256_of(&c2));
    let manifest = format!(
        r#"[{{"Config":"{}.json","RepoTags":["legacy:one"],"Layers":["aaaa/layer.tar"]}},{{"Config":"{}.json","RepoTags":["example.com/legacy:two"],"Layers":["bbbb/layer.tar"]}}]"#,
        d1.hex(),
        d2.hex()
    );
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("aaaa/VERSION", b"1.0");
    add("aaaa/json", b"{}");
    add("aaaa/layer.tar", &layer);
    add(&format!("{}.json", d1.hex()), &c1);
    add(&format!("{}.json", d2.hex()), &c2);
    add("manifest.json", manifest.as_bytes());
    add("repositories", br#"{"legacy":{"one":"aaaa"}}"#);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bbbb/layer.tar", "../aaaa/layer.tar")
        .unwrap();
    let archive = b.into_inner().unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(tmp.path()).unwrap();
    let recs = svc.load(&archive[..]).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(svc.images.resolve("legacy:one").unwrap().id, d1);
    assert_eq!(svc.images.resolve("example.com/legacy:two").unwrap().id, d2);
    let chain = svc.chain_ids_of(&recs[1]);
    assert_eq!(
        fs::read(svc.snapshots.layer_dir(&chain[0]).join("etc/hostname")).unwrap(),
        b"legacy\n"
    );
    // A config that does not match the layers is refused.
    let bad = manifest.replace("\"Layers\":[\"aaaa/layer.tar\"]", "\"Layers\":[]");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(bad.len() as u64);
    h.set_cksum();
    b.append_data(&mut h, "manifest.json", bad.as_bytes())
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(c1.len() as u64);
    h.set_cksum();
    b.append_data(&mut h, format!("{}.json", d1.hex()), &c1[..])
        .unwrap();
    let err = svc.load(&b.into_inner().unwrap()[..]).unwrap_err();
    assert!(err.to_string().contains("diffIDs"), "{err}");
}

#[test]
fn import_with_changes_then_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(tmp.path()).unwrap();
    let rootfs = tar_of(&[
        E::Dir("./bin", 0o755),
        E::File("./bin/app", b"#!/bin/sh\necho hi\n", 0o755),
        E::Dir("./etc", 0o755),
        E::File("./etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
    ]);
    let opts = ImportOptions {
        reference: Some("myimport:1".parse::<Reference>().unwrap()),
        changes: vec![
            "CMD [\"/bin/app\"]".into(),
            "ENV A=1".into(),
            "WORKDIR /srv".into(),
            "ENTRYPOINT [\"/bin/sh\",\"-c\"]".into(),
            "USER root".into(),
            "EXPOSE 8080".into(),
            "LABEL org.example=yes".into(),
        ],
        message: Some("from test".into()),
        platform: None,
    };
    let rec = svc.import(&gzip(&rootfs)[..], &opts).unwrap();
    assert_eq!(rec.familiar_tags(), vec!["myimport:1".to_string()]);
    assert_eq!(rec.diff_ids, vec![Digest::sha256_of(&rootfs)]);
    let cfg = svc.config_of(&rec).unwrap();
    let cc = cfg.container_config();
    assert_eq!(cc.cmd, Some(vec!["/bin/app".to_string()]));
    assert_eq!(
        cc.entrypoint,
        Some(vec!["/bin/sh".to_string(), "-c".to_string()])
    );
    assert_eq!(cc.env, Some(vec!["A=1".to_string()]));
    assert_eq!(cc.working_dir.as_deref(), Some("/srv"));
    assert!(cc.exposed_ports.unwrap().contains_key("8080/tcp"));
    assert_eq!(
        cfg.history.unwrap()[0].comment.as_deref(),
        Some("from test")
    );
    let chain = svc.chain_ids_of(&rec);
    assert!(svc.snapshots.layer_dir(&chain[0]).join("bin/app").is_file());

    // A hostile import tarball is refused and leaves no image.
    let evil = tar_of(&[E::File("../../escape", b"x", 0o644)]);
    assert!(svc.import(&evil[..], &ImportOptions::default()).is_err());
    assert_eq!(svc.images.list().len(), 1);

    // GC keeps what the image needs, then removes it all once the image is deleted.
    let (stats, removed) = svc.gc().unwrap();
    assert_eq!(stats.kept, 3, "{stats:?}");
    // The refused import left its layer, config and manifest blobs: garbage now.
    assert_eq!(stats.removed.len(), 3, "{stats:?}");
    assert!(removed.is_empty());
    svc.images.delete("myimport:1", false, &|_| None).unwrap();
    let (stats, removed) = svc.gc().unwrap();
    assert_eq!(stats.removed.len(), 3);
    assert_eq!(removed, chain);
    assert!(svc.content.list().unwrap().is_empty());
}

#[test]
fn commit_a_container_and_run_its_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(tmp.path()).unwrap();
    svc.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();
    let base = svc.images.resolve("busybox").unwrap();
    let ovl = svc.prepare_rootfs("c1", &base).unwrap();
    let root = tmp.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    ovl.mount(&root).unwrap();
    {
        let _g = MountGuard(root.clone());
        fs::write(root.join("etc/motd"), b"committed\n").unwrap();
        fs::remove_file(root.join("etc/hostname")).unwrap();
        fs::remove_dir_all(root.join("home/user")).unwrap();
    }
    let opts = berth_image::CommitOptions {
        reference: Some("committed:1".parse().unwrap()),
        changes: vec!["ENV STEP=1".into(), "CMD [\"cat\",\"/etc/motd\"]".into()],
        author: Some("test".into()),
        message: Some("a commit".into()),
        created_by: Some("berth commit".into()),
        config: None,
    };
    let rec = svc
        .commit(&base, &svc.snapshots.rw_upper("c1").unwrap(), &opts)
        .unwrap();
    assert_eq!(rec.diff_ids.len(), 2);
    assert_eq!(rec.diff_ids[0], base.diff_ids[0]);
    let cfg = svc.config_of(&rec).unwrap();
    assert_eq!(
        cfg.container_config().cmd.unwrap(),
        vec!["cat", "/etc/motd"]
    );
    assert!(cfg
        .container_config()
        .env
        .unwrap()
        .contains(&"STEP=1".to_string()));
    assert_eq!(cfg.history.as_ref().unwrap().len(), 2);

    // A container of the new image sees the changes.
    let ovl = svc.prepare_rootfs("c2", &rec).unwrap();
    let root2 = tmp.path().join("rootfs2");
    fs::create_dir(&root2).unwrap();
    ovl.mount(&root2).unwrap();
    let _g = MountGuard(root2.clone());
    assert_eq!(fs::read(root2.join("etc/motd")).unwrap(), b"committed\n");
    assert!(!root2.join("etc/hostname").exists());
    assert!(!root2.join("home/user").exists());
    assert!(root2.join("bin/busybox").exists());
}
