//! HTTP-level tests of every route and error code against an in-process server.

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};

async fn fresh() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(config(dir.path())).await;
    (dir, reg)
}

#[tokio::test]
async fn base_and_metrics() {
    let (_d, reg) = fresh().await;
    let r = reg.get("/v2/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(reg.get("/v2").await.status, StatusCode::OK);
    let m = reg.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains("registry_http_requests_total{method=\"GET\",code=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("# TYPE registry_blobs_committed_total counter"));
    let r = reg.req(Method::POST, "/v2/", &[], Bytes::new()).await;
    assert_eq!(r.code(), "UNSUPPORTED");
    let r = reg.get("/v2/justonesegment").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    reg.stop().await;
}

#[tokio::test]
async fn blob_get_head_range_delete() {
    let (_d, reg) = fresh().await;
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let d = reg.push_blob("lib/a", &data).await;
    let h = reg.head(&format!("/v2/lib/a/blobs/{d}")).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("content-length"), Some("10000"));
    assert_eq!(h.header("docker-content-digest"), Some(d.as_str()));
    assert!(h.body.is_empty());
    let g = reg.get(&format!("/v2/lib/a/blobs/{d}")).await;
    assert_eq!(g.body.as_ref(), &data[..]);

    let r = reg
        .get_with(
            &format!("/v2/lib/a/blobs/{d}"),
            &[("range", "bytes=100-199")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/10000"));
    assert_eq!(r.body.as_ref(), &data[100..200]);
    let r = reg
        .get_with(&format!("/v2/lib/a/blobs/{d}"), &[("range", "bytes=-10")])
        .await;
    assert_eq!(r.body.as_ref(), &data[9990..]);
    for bad in ["bytes=10000-", "bytes=50-10", "bytes=abc"] {
        let r = reg
            .get_with(&format!("/v2/lib/a/blobs/{d}"), &[("range", bad)])
            .await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
        assert_eq!(r.header("content-range"), Some("bytes */10000"));
    }

    // Ranges spanning several read chunks of a larger blob.
    let large: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let ld = reg.push_blob("lib/a", &large).await;
    assert_eq!(
        reg.get(&format!("/v2/lib/a/blobs/{ld}"))
            .await
            .body
            .as_ref(),
        &large[..]
    );
    let r = reg
        .get_with(
            &format!("/v2/lib/a/blobs/{ld}"),
            &[("range", "bytes=200000-1099999")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body.as_ref(), &large[200_000..1_100_000]);

    // Same digest, other repository: not linked there.
    let r = reg.get(&format!("/v2/lib/b/blobs/{d}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let r = reg.get("/v2/lib/a/blobs/sha256:1234").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = reg
        .get("/v2/lib/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e")
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");

    let r = reg
        .req(
            Method::DELETE,
            &format!("/v2/lib/a/blobs/{d}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = reg.head(&format!("/v2/lib/a/blobs/{d}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = reg
        .req(
            Method::DELETE,
            &format!("/v2/lib/a/blobs/{d}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    reg.stop().await;
}

#[tokio::test]
async fn chunked_upload_session() {
    let (_d, reg) = fresh().await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = sha256(&data);
    let r = reg
        .req(Method::POST, "/v2/x/blobs/uploads/", &[], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), Some("0-0"));
    let loc = r.header("location").unwrap().to_string();
    assert!(loc.starts_with("/v2/x/blobs/uploads/"));
    assert!(r.header("docker-upload-uuid").is_some());

    let r = reg
        .req(
            Method::PATCH,
            &loc,
            &[
                ("content-range", "0-99999"),
                ("content-type", "application/octet-stream"),
            ],
            Bytes::copy_from_slice(&data[..100_000]),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.header("range"), Some("0-99999"));
    let loc = r.header("location").unwrap().to_string();

    // Out of order: starts past the end.
    let r = reg
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "200000-299999")],
            Bytes::copy_from_slice(&data[200_000..]),
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("range"), Some("0-99999"));
    // Malformed Content-Range.
    let r = reg
        .req(
            Method::PATCH,
            &loc,
            &[("content-range", "junk")],
            Bytes::from_static(b"x"),
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);

    // A chunk without Content-Range (Docker's streaming style) appends.
    let r = reg
        .req(
            Method::PATCH,
            &loc,
            &[],
            Bytes::copy_from_slice(&data[100_000..200_000]),
        )
        .await;
    assert_eq!(r.header("range"), Some("0-199999"));

    let r = reg.get(&loc).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), Some("0-199999"));

    // Missing digest does not finish (and keeps the session).
    let r = reg.req(Method::PUT, &loc, &[], Bytes::new()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );

    let r = reg
        .req(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[("content-range", "200000-299999")],
            Bytes::copy_from_slice(&data[200_000..]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/x/blobs/{d}").as_str())
    );
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(
        reg.get(&format!("/v2/x/blobs/{d}")).await.body.as_ref(),
        &data[..]
    );
    // The session is gone once finished.
    let r = reg.get(&loc).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );

    // Other repositories cannot touch a session.
    let r = reg
        .req(Method::POST, "/v2/x/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").unwrap().to_string();
    let other = loc.replace("/v2/x/", "/v2/y/");
    assert_eq!(reg.get(&other).await.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = reg.req(Method::DELETE, &loc, &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(reg.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = reg.req(Method::DELETE, &loc, &[], Bytes::new()).await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = reg.get("/v2/x/blobs/uploads/../../../etc").await;
    assert!(r.status.is_client_error());
    let r = reg.get("/v2/x/blobs/uploads/..%2f..%2fetc").await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    reg.stop().await;
}

#[tokio::test]
async fn wrong_digest_stores_nothing() {
    let (dir, reg) = fresh().await;
    let wrong = sha256(b"something else");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/x/blobs/uploads/?digest={wrong}"),
            &[],
            Bytes::from_static(b"payload"),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    assert_eq!(
        reg.head(&format!("/v2/x/blobs/{wrong}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.head(&format!("/v2/x/blobs/{}", sha256(b"payload")))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let r = reg
        .req(Method::POST, "/v2/x/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").unwrap().to_string();
    let r = reg
        .req(
            Method::PUT,
            &format!("{loc}?digest={wrong}"),
            &[],
            Bytes::from_static(b"payload"),
        )
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    assert_eq!(reg.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = reg
        .req(
            Method::PUT,
            &format!("{loc}?digest=sha256:zz"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let blobs = walk_files(&dir.path().join("blobs"));
    assert!(blobs.is_empty(), "blobs stored: {blobs:?}");
    let uploads = std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 0);
    reg.stop().await;
}

pub fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn sha512_blobs_and_manifests() {
    let (_d, reg) = fresh().await;
    let data = b"sha512 content".repeat(1000);
    let d = sha512(&data);
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/x/blobs/uploads/?digest={d}"),
            &[],
            Bytes::copy_from_slice(&data),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        reg.get(&format!("/v2/x/blobs/{d}")).await.body.as_ref(),
        &data[..]
    );
    let (m, _) = reg.push_image("x", "s512").await;
    let md = sha512(&m);
    let r = reg.push_manifest("x", &md, OCI_MANIFEST, &m).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("docker-content-digest"), Some(md.as_str()));
    assert_eq!(
        reg.get(&format!("/v2/x/manifests/{md}"))
            .await
            .body
            .as_ref(),
        &m[..]
    );
    reg.stop().await;
}

#[tokio::test]
async fn cross_repository_mount() {
    let (_d, reg) = fresh().await;
    let d = reg.push_blob("src/repo", b"shared layer").await;
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/dst/repo/blobs/{d}").as_str())
    );
    assert_eq!(
        reg.get(&format!("/v2/dst/repo/blobs/{d}"))
            .await
            .body
            .as_ref(),
        b"shared layer"
    );
    // Unknown in the source: falls back to a session.
    let missing = sha256(b"nope");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={missing}&from=src/repo"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").unwrap().contains("/blobs/uploads/"));
    // Bad source name: also a session.
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=../x"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    reg.stop().await;
}

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let (dir, reg) = fresh().await;
    let (m, d) = reg.push_image("app", "one").await;
    let r = reg.push_manifest("app", "v1", OCI_MANIFEST, &m).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/app/manifests/{d}").as_str())
    );
    for reference in ["v1", d.as_str()] {
        let g = reg.get(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(g.body.as_ref(), &m[..]);
        assert_eq!(g.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(g.header("docker-content-digest"), Some(d.as_str()));
        let h = reg.head(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(
            h.header("content-length"),
            Some(m.len().to_string().as_str())
        );
        assert!(h.body.is_empty());
    }
    // Docker schema 2, pushed by digest.
    let (m2, _) = reg.push_image("app", "two").await;
    let m2 = String::from_utf8(m2)
        .unwrap()
        .replace(OCI_MANIFEST, DOCKER_MANIFEST)
        .replace(
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.docker.container.image.v1+json",
        );
    let d2 = sha256(m2.as_bytes());
    let r = reg
        .push_manifest("app", &d2, DOCKER_MANIFEST, m2.as_bytes())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        reg.get(&format!("/v2/app/manifests/{d2}"))
            .await
            .header("content-type"),
        Some(DOCKER_MANIFEST)
    );

    // An index over both, tagged.
    let idx = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{}}},{{"mediaType":"{DOCKER_MANIFEST}","digest":"{d2}","size":{}}}]}}"#,
        m.len(),
        m2.len()
    );
    let r = reg
        .push_manifest("app", "multi", OCI_INDEX, idx.as_bytes())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // An index naming an unknown manifest.
    let bad_idx = idx.replace(&d[7..], &"0".repeat(64));
    let r = reg
        .push_manifest("app", "bad", OCI_INDEX, bad_idx.as_bytes())
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );

    // Errors: unknown blob, malformed JSON, digest mismatch, media type mismatch, big.
    let missing = String::from_utf8(m.clone())
        .unwrap()
        .replace(&d[7..17], "0000000000");
    let lay = sha256(b"not pushed");
    let missing_layer = String::from_utf8(m.clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&missing_layer).unwrap();
    let layer_digest = v["layers"][0]["digest"].as_str().unwrap().to_string();
    let missing_layer = missing_layer.replace(&layer_digest, &lay);
    let r = reg
        .push_manifest("app", "broken", OCI_MANIFEST, missing_layer.as_bytes())
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    assert_eq!(r.json()["errors"][0]["detail"]["digest"], lay.as_str());
    let _ = missing;
    let r = reg
        .push_manifest("app", "broken", OCI_MANIFEST, b"{not json")
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    let r = reg
        .push_manifest("app", "broken", OCI_MANIFEST, br#"{"schemaVersion":2}"#)
        .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    let r = reg
        .push_manifest("app", &sha256(b"other"), OCI_MANIFEST, &m)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = reg
        .push_manifest("app", "broken", DOCKER_MANIFEST, &m)
        .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    let r = reg
        .push_manifest(
            "app",
            "broken",
            "application/vnd.docker.distribution.manifest.v1+json",
            br#"{"schemaVersion":1}"#,
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    let mut big = String::from_utf8(m.clone()).unwrap();
    big.pop();
    big.push_str(&format!(
        r#","annotations":{{"x":"{}"}}}}"#,
        "a".repeat(5 * 1024 * 1024)
    ));
    let r = reg
        .push_manifest("app", "big", OCI_MANIFEST, big.as_bytes())
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    let r = reg.push_manifest("app", ".badtag", OCI_MANIFEST, &m).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = reg.get("/v2/app/manifests/broken").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = reg.get("/v2/app/manifests/big").await;
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    for method in [Method::GET, Method::HEAD, Method::DELETE] {
        let r = reg
            .req(method, "/v2/app/manifests/.INVALID", &[], Bytes::new())
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    // Delete by tag keeps the manifest; delete by digest removes it and its tags.
    let r = reg
        .req(Method::DELETE, "/v2/app/manifests/v1", &[], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        reg.get("/v2/app/manifests/v1").await.code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        reg.get(&format!("/v2/app/manifests/{d}")).await.status,
        StatusCode::OK
    );
    reg.push_manifest("app", "v1", OCI_MANIFEST, &m).await;
    let r = reg
        .req(
            Method::DELETE,
            &format!("/v2/app/manifests/{d}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        reg.get(&format!("/v2/app/manifests/{d}")).await.code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        reg.get("/v2/app/manifests/v1").await.code(),
        "MANIFEST_UNKNOWN"
    );
    let r = reg
        .req(
            Method::DELETE,
            &format!("/v2/app/manifests/{d}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );

    // Nothing from the rejected pushes is visible as a revision.
    let revs = walk_files(&dir.path().join("repositories/app/_manifests/revisions"));
    assert_eq!(revs.len(), 2, "{revs:?}");
    reg.stop().await;
}

#[tokio::test]
async fn tags_and_catalog_pagination() {
    let (_d, reg) = fresh().await;
    let (m, _) = reg.push_image("team/web", "t").await;
    for tag in ["c", "a", "b", "d", "e"] {
        assert_eq!(
            reg.push_manifest("team/web", tag, OCI_MANIFEST, &m)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let r = reg.get("/v2/team/web/tags/list").await;
    assert_eq!(
        r.json()["tags"],
        serde_json::json!(["a", "b", "c", "d", "e"])
    );
    assert_eq!(r.json()["name"], "team/web");
    let r = reg.get("/v2/team/web/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        r.header("link"),
        Some("</v2/team/web/tags/list?n=2&last=b>; rel=\"next\"")
    );
    let r = reg.get("/v2/team/web/tags/list?n=2&last=b").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["c", "d"]));
    let r = reg.get("/v2/team/web/tags/list?n=2&last=d").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["e"]));
    assert!(r.header("link").is_none());
    let r = reg.get("/v2/team/web/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    let r = reg.get("/v2/nobody/tags/list").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );

    reg.push_blob("alpha", b"x").await;
    reg.push_blob("zeta/one", b"y").await;
    let r = reg.get("/v2/_catalog").await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["alpha", "team/web", "zeta/one"])
    );
    let r = reg.get("/v2/_catalog?n=1").await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["alpha"]));
    assert_eq!(
        r.header("link"),
        Some("</v2/_catalog?n=1&last=alpha>; rel=\"next\"")
    );
    let r = reg.get("/v2/_catalog?n=5&last=alpha").await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["team/web", "zeta/one"])
    );
    reg.stop().await;
}

#[tokio::test]
async fn referrers_api() {
    let (_d, reg) = fresh().await;
    let (m, d) = reg.push_image("art", "base").await;
    reg.push_manifest("art", "v1", OCI_MANIFEST, &m).await;
    // The empty config descriptor OCI 1.1 artifacts use.
    let empty = reg.push_blob("art", b"{}").await;
    let sig = reg.push_blob("art", b"signature bytes").await;
    let artifact = |kind: &str, ann: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{kind}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{sig}","size":15}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{}}},"annotations":{{"k":"{ann}"}}}}"#,
            m.len()
        )
    };
    let a1 = artifact("application/vnd.example.sig", "one");
    let a2 = artifact("application/vnd.example.sbom", "two");
    let a1d = sha256(a1.as_bytes());
    let r = reg
        .push_manifest("art", &a1d, OCI_MANIFEST, a1.as_bytes())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("oci-subject"), Some(d.as_str()));
    let r = reg
        .push_manifest("art", &sha256(a2.as_bytes()), OCI_MANIFEST, a2.as_bytes())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = reg.get(&format!("/v2/art/referrers/{d}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let j = r.json();
    assert_eq!(j["schemaVersion"], 2);
    assert_eq!(j["mediaType"], OCI_INDEX);
    assert_eq!(j["manifests"].as_array().unwrap().len(), 2);
    let r = reg
        .get(&format!(
            "/v2/art/referrers/{d}?artifactType=application/vnd.example.sig"
        ))
        .await;
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    let list = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], a1d.as_str());
    assert_eq!(list[0]["artifactType"], "application/vnd.example.sig");
    assert_eq!(list[0]["annotations"]["k"], "one");
    assert_eq!(list[0]["size"], a1.len());

    // Unknown subject: an empty index, not an error.
    let r = reg
        .get(&format!("/v2/art/referrers/{}", sha256(b"none")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    let r = reg.get("/v2/art/referrers/sha256:bad").await;
    assert_eq!(r.code(), "DIGEST_INVALID");

    reg.req(
        Method::DELETE,
        &format!("/v2/art/manifests/{a1d}"),
        &[],
        Bytes::new(),
    )
    .await;
    let r = reg.get(&format!("/v2/art/referrers/{d}")).await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    reg.stop().await;
}

#[tokio::test]
async fn invalid_names_are_rejected() {
    let (dir, reg) = fresh().await;
    let d = sha256(b"x");
    for path in [
        format!("/v2/../../etc/blobs/{d}"),
        format!("/v2/a/../b/blobs/{d}"),
        format!("/v2/UPPER/blobs/{d}"),
        format!("/v2/a/%2e%2e/b/blobs/{d}"),
        "/v2/-bad/tags/list".to_string(),
        "/v2/a//b/manifests/latest".to_string(),
    ] {
        let r = reg.get(&path).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            "{path}"
        );
    }
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/../x/blobs/uploads/?digest={d}"),
            &[],
            Bytes::from_static(b"x"),
        )
        .await;
    assert_eq!(r.code(), "NAME_INVALID");
    assert!(walk_files(&dir.path().join("blobs")).is_empty());
    assert!(!dir.path().join("x").exists());
    reg.stop().await;
}

#[tokio::test]
async fn truncated_upload_stores_nothing() {
    use tokio::io::AsyncWriteExt;
    let (dir, reg) = fresh().await;
    let data = vec![7u8; 100_000];
    let d = sha256(&data);
    let addr = reg.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v2/t/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&data[..40_000]).await.unwrap();
    s.flush().await.unwrap();
    drop(s);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        reg.head(&format!("/v2/t/blobs/{d}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(walk_files(&dir.path().join("blobs")).is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
    reg.stop().await;
}

#[tokio::test]
async fn concurrent_uploads() {
    let (_d, reg) = fresh().await;
    let reg = std::sync::Arc::new(reg);
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..(1 << 20)).map(|j: u32| (j ^ i) as u8).collect();
            let d = reg.push_blob(&format!("c/r{}", i % 5), &data).await;
            let h = reg.head(&format!("/v2/c/r{}/blobs/{d}", i % 5)).await;
            assert_eq!(h.header("content-length"), Some("1048576"));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    if let Ok(reg) = std::sync::Arc::try_unwrap(reg) {
        reg.stop().await;
    }
}

#[tokio::test]
async fn upload_session_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
    let reg = Registry::start(config(dir.path())).await;
    let r = reg
        .req(Method::POST, "/v2/r/blobs/uploads/", &[], Bytes::new())
        .await;
    let loc = r.header("location").unwrap().to_string();
    let r = reg
        .req(
            Method::PATCH,
            &loc,
            &[],
            Bytes::copy_from_slice(&data[..120_000]),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    reg.stop().await;

    let reg = Registry::start(config(dir.path())).await;
    let r = reg.get(&loc).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), Some("0-119999"));
    let r = reg
        .req(
            Method::PUT,
            &format!("{loc}?digest={}", sha256(&data)),
            &[("content-range", "120000-199999")],
            Bytes::copy_from_slice(&data[120_000..]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        reg.get(&format!("/v2/r/blobs/{}", sha256(&data)))
            .await
            .body
            .as_ref(),
        &data[..]
    );
    reg.stop().await;
}
