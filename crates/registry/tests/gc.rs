//! Garbage collection: unreferenced blobs go, referenced ones, young ones and in-flight
//! uploads stay; online collection never leaves an accepted manifest dangling.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};

use berth_registry::gc::{collect, GcOptions};

fn opts(grace: Duration) -> GcOptions {
    GcOptions {
        dry_run: false,
        grace,
        upload_ttl: None,
        delete_untagged: false,
    }
}

#[tokio::test]
async fn sweeps_only_unreferenced_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(config(dir.path())).await;
    let (m, md) = reg.push_image("g/app", "kept").await;
    assert_eq!(
        reg.push_manifest("g/app", "v1", OCI_MANIFEST, &m)
            .await
            .status,
        StatusCode::CREATED
    );
    let orphan = reg.push_blob("g/app", b"orphan layer").await;
    // An upload in flight with data already written.
    let r = reg
        .req(Method::POST, "/v2/g/app/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").unwrap().to_string();
    reg.req(Method::PATCH, &loc, &[], Bytes::from_static(b"half of a"))
        .await;

    let storage = reg.handle.as_ref().unwrap().app.storage.clone();
    // Young blobs survive a collection with a grace period.
    let report = collect(storage.as_ref(), &opts(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(report.blobs_deleted.is_empty());
    // Dry run reports without deleting.
    let mut dry = opts(Duration::ZERO);
    dry.dry_run = true;
    let report = collect(storage.as_ref(), &dry).await.unwrap();
    assert_eq!(report.blobs_deleted.len(), 1);
    assert_eq!(
        reg.head(&format!("/v2/g/app/blobs/{orphan}")).await.status,
        StatusCode::OK
    );

    let report = collect(storage.as_ref(), &opts(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        report
            .blobs_deleted
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>(),
        vec![orphan.clone()]
    );
    assert_eq!(report.bytes_freed, 12);
    assert_eq!(
        reg.head(&format!("/v2/g/app/blobs/{orphan}")).await.status,
        StatusCode::NOT_FOUND
    );
    // The image still pulls completely.
    let got = reg.get("/v2/g/app/manifests/v1").await;
    assert_eq!(got.body.as_ref(), &m[..]);
    let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
    for d in [&v["config"]["digest"], &v["layers"][0]["digest"]] {
        let r = reg
            .get(&format!("/v2/g/app/blobs/{}", d.as_str().unwrap()))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(
        reg.get(&format!("/v2/g/app/manifests/{md}")).await.status,
        StatusCode::OK
    );
    // The in-flight upload is untouched and finishes.
    let r = reg
        .req(
            Method::PUT,
            &format!("{loc}?digest={}", sha256(b"half of a blob")),
            &[],
            Bytes::from_static(b" blob"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    reg.stop().await;
}

#[tokio::test]
async fn deletes_untagged_manifests_and_stale_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(config(dir.path())).await;
    let (m1, d1) = reg.push_image("u", "tagged").await;
    let (m2, d2) = reg.push_image("u", "untagged").await;
    reg.push_manifest("u", "v1", OCI_MANIFEST, &m1).await;
    reg.push_manifest("u", &d2, OCI_MANIFEST, &m2).await;
    let r = reg
        .req(Method::POST, "/v2/u/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").unwrap().to_string();
    let storage = reg.handle.as_ref().unwrap().app.storage.clone();
    let report = collect(
        storage.as_ref(),
        &GcOptions {
            dry_run: false,
            grace: Duration::ZERO,
            upload_ttl: Some(Duration::ZERO),
            delete_untagged: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.manifests_deleted, 1);
    assert_eq!(report.uploads_removed, 1);
    assert_eq!(
        report.blobs_deleted.len(),
        3,
        "untagged manifest, its config and layer"
    );
    assert_eq!(
        reg.get(&format!("/v2/u/manifests/{d1}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        reg.get(&format!("/v2/u/manifests/{d2}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(reg.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_collection_never_leaves_dangling_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(Registry::start(config(dir.path())).await);
    let storage = reg.handle.as_ref().unwrap().app.storage.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let storage = storage.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                collect(storage.as_ref(), &opts(Duration::ZERO))
                    .await
                    .unwrap();
                runs += 1;
                tokio::task::yield_now().await;
            }
            runs
        })
    };
    let mut accepted = Vec::new();
    for i in 0..30 {
        let (m, d) = reg.push_image("on", &format!("img{i}")).await;
        let r = reg
            .push_manifest("on", &format!("t{i}"), OCI_MANIFEST, &m)
            .await;
        // With no grace period a collection may remove the layers before the manifest
        // arrives; the registry must then refuse the manifest, never accept it dangling.
        match r.status {
            StatusCode::CREATED => accepted.push((m, d)),
            _ => assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = gc.await.unwrap();
    assert!(runs > 0);
    collect(storage.as_ref(), &opts(Duration::ZERO))
        .await
        .unwrap();
    for (m, d) in &accepted {
        assert_eq!(
            reg.get(&format!("/v2/on/manifests/{d}")).await.status,
            StatusCode::OK
        );
        let v: serde_json::Value = serde_json::from_slice(m).unwrap();
        for b in [&v["config"]["digest"], &v["layers"][0]["digest"]] {
            let r = reg
                .head(&format!("/v2/on/blobs/{}", b.as_str().unwrap()))
                .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "blob of an accepted manifest was collected"
            );
        }
    }
    if let Ok(reg) = Arc::try_unwrap(reg) {
        reg.stop().await;
    }
}
