//! kill -9 in the middle of a pull leaves a store that reopens clean (no temp blobs, no
//! half-extracted snapshots, no image) and pulls again.

mod common;

use berth_distribution::{ClientOptions, RegistryClient};
use berth_image::{ImageService, Reference};
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards to `upstream`, slowly (16 KiB every 20 ms), so a pull takes long enough to kill.
async fn slow_proxy(upstream: String) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = l.accept().await else {
                return;
            };
            let up = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&up).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
    });
    addr
}

/// Runs only as the child of `kill_9_during_pull_leaves_a_consistent_store`.
#[test]
#[ignore]
fn child_pull() {
    let (Some(root), Some(r)) = (
        std::env::var_os("BERTH_TEST_PULL_ROOT"),
        std::env::var("BERTH_TEST_PULL_REF").ok(),
    ) else {
        return;
    };
    let svc = Arc::new(ImageService::open(Path::new(&root)).unwrap());
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let r: Reference = r.parse().unwrap();
    let _ = rt().block_on(client.pull(svc, &r, &|_| {}));
}

fn temp_entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_9_during_pull_leaves_a_consistent_store() {
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
    let rt = rt();
    let proxy = rt.block_on(slow_proxy(reg.addr.clone()));

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_pull", "--ignored", "--nocapture"])
        .env("BERTH_TEST_PULL_ROOT", &root)
        .env("BERTH_TEST_PULL_REF", format!("{proxy}/lib/busybox:1"))
        .spawn()
        .unwrap();
    // Wait until both the blob and the snapshot are half written.
    let blobs = root.join("content/blobs/sha256");
    let snaps = root.join("snapshots");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let partial_blob = temp_entries(&blobs)
            .iter()
            .any(|n| fs::metadata(blobs.join(n)).is_ok_and(|m| m.len() > 200_000));
        if partial_blob && !temp_entries(&snaps).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the child never got half way");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child finished too early"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(
        !temp_entries(&blobs).is_empty(),
        "the kill should have left a temp blob"
    );

    let svc = Arc::new(ImageService::open(&root).unwrap());
    assert!(temp_entries(&blobs).is_empty());
    assert!(temp_entries(&snaps).is_empty());
    assert!(svc.snapshots.list_layers().unwrap().is_empty());
    assert!(svc.images.list().is_empty());
    // Whatever complete blobs are there (manifest, config) verify against their names.
    for d in svc.content.list().unwrap() {
        let data = svc.content.read_blob(&d, 64 << 20).unwrap();
        assert_eq!(berth_image::Digest::sha256_of(&data), d);
    }
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let rec = rt
        .block_on(client.pull(svc.clone(), &target.parse().unwrap(), &|_| {}))
        .unwrap();
    assert_eq!(rec.id, busybox_config());
}
