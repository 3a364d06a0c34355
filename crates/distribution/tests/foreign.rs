//! Foreign (non-distributable) layers: a push leaves them out and keeps the manifest as it
//! is; a pull fetches them from their `urls` (http only here, digest verified) since the
//! registry does not have them.

mod common;

use berth_distribution::{Progress, RegistryClient};
use berth_image::config::chain_ids;
use berth_image::manifest::{
    DOCKER_CONFIG, DOCKER_FOREIGN_LAYER_GZIP, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
};
use berth_image::{Digest, ImageService, Reference};
use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Serves fixed bodies by path over HTTP/1.1 on loopback (404 for anything else), one
/// request per connection; counts requests per path. Stopped on drop.
struct FileServer {
    addr: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    fn start(files: HashMap<String, Vec<u8>>) -> FileServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut c) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                *h.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                let (status, body) = match files.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not here".to_vec()),
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(&body);
            }
        });
        FileServer {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A gzipped layer tar holding one file; returns (blob, diffID).
fn layer(name: &str, content: &[u8]) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    let tar = b.into_inner().unwrap();
    let diff_id = Digest::sha256_of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

struct TestImage {
    config: Vec<u8>,
    manifest: Vec<u8>,
    base: (Vec<u8>, Digest),
    foreign: (Vec<u8>, Digest),
}

/// A Docker schema 2 image: one ordinary layer and one foreign layer listing `urls`.
fn image(urls: &[String]) -> TestImage {
    let base = layer("base.txt", b"from the registry\n");
    let foreign = layer("foreign.txt", b"from elsewhere\n");
    let config = serde_json::json!({
        "architecture": berth_image::manifest::Platform::host().architecture,
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [base.1.to_string(), foreign.1.to_string()]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config.len(), "digest": Digest::sha256_of(&config).to_string()},
        "layers": [
            {"mediaType": DOCKER_LAYER_GZIP, "size": base.0.len(), "digest": Digest::sha256_of(&base.0).to_string()},
            {"mediaType": DOCKER_FOREIGN_LAYER_GZIP, "size": foreign.0.len(), "digest": Digest::sha256_of(&foreign.0).to_string(), "urls": urls},
        ],
    });
    TestImage {
        manifest: serde_json::to_vec(&manifest).unwrap(),
        config,
        base,
        foreign,
    }
}

impl TestImage {
    /// Stores every blob in `svc` and registers the image as `name`.
    fn install(&self, svc: &ImageService, name: &Reference) {
        svc.content.write_bytes(&self.config).unwrap();
        svc.content.write_bytes(&self.base.0).unwrap();
        svc.content.write_bytes(&self.foreign.0).unwrap();
        let md = svc.content.write_bytes(&self.manifest).unwrap();
        svc.register(&md, None, std::slice::from_ref(name), &[])
            .unwrap();
    }

    fn foreign_digest(&self) -> Digest {
        Digest::sha256_of(&self.foreign.0)
    }
}

fn registry_has_blob(reg: &Registry, repo: &str, d: &Digest) -> bool {
    let mut s = TcpStream::connect(&reg.addr).unwrap();
    write!(
        s,
        "HEAD /v2/{repo}/blobs/{d} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        reg.addr
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

#[test]
fn foreign_layer_skipped_on_push_and_fetched_from_its_url_on_pull() {
    let reg = Registry::start_allowing_foreign_urls();
    let mut files = HashMap::new();
    let img0 = image(&[]);
    files.insert("/layers/foreign.tgz".to_string(), img0.foreign.0.clone());
    let server = FileServer::start(files);
    // The first URL answers 404, the second has the layer.
    let urls = vec![
        format!("http://{}/missing.tgz", server.addr),
        format!("http://{}/layers/foreign.tgz", server.addr),
    ];
    let img = image(&urls);
    let rt = rt();
    let client = RegistryClient::new(Default::default()).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    let local: Reference = "local/foreign:v1".parse().unwrap();
    img.install(&svc, &local);
    let target: Reference = format!("{}/fl/img:v1", reg.addr).parse().unwrap();
    let (events, on) = events();
    let digest = rt
        .block_on(client.push(svc.clone(), "local/foreign:v1", &target, &on))
        .unwrap();
    // The manifest went up byte for byte; the foreign blob did not.
    assert_eq!(digest, Digest::sha256_of(&img.manifest));
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Progress::SkippedForeign { .. })));
    assert!(registry_has_blob(
        &reg,
        "fl/img",
        &Digest::sha256_of(&img.base.0)
    ));
    assert!(!registry_has_blob(&reg, "fl/img", &img.foreign_digest()));

    let tmp2 = tempfile::tempdir().unwrap();
    let svc2 = Arc::new(ImageService::open(tmp2.path()).unwrap());
    let rec = rt
        .block_on(client.pull(svc2.clone(), &target, &|_| {}))
        .unwrap();
    assert_eq!(server.hits("/missing.tgz"), 1);
    assert_eq!(server.hits("/layers/foreign.tgz"), 1);
    assert!(svc2.content.exists(&img.foreign_digest()));
    let chain = chain_ids(&[img.base.1.clone(), img.foreign.1.clone()]);
    let got =
        std::fs::read_to_string(svc2.snapshots.layer_dir(&chain[1]).join("foreign.txt")).unwrap();
    assert_eq!(got, "from elsewhere\n");
    assert_eq!(rec.manifest_digest, digest);
}

#[test]
fn foreign_layer_with_wrong_content_fails_the_pull_and_stores_nothing() {
    let reg = Registry::start_allowing_foreign_urls();
    let img0 = image(&[]);
    let mut files = HashMap::new();
    // Bytes that are not the foreign layer's: a shorter and a longer body.
    files.insert("/short.tgz".to_string(), img0.foreign.0[..10].to_vec());
    let mut long = img0.foreign.0.clone();
    long.extend_from_slice(&[0u8; 4096]);
    files.insert("/long.tgz".to_string(), long);
    files.insert("/other.tgz".to_string(), img0.base.0.clone());
    let server = FileServer::start(files);
    let rt = rt();
    let client = RegistryClient::new(berth_distribution::ClientOptions {
        download_attempts: 2,
        ..Default::default()
    })
    .unwrap();

    for (n, path) in ["/short.tgz", "/long.tgz", "/other.tgz"]
        .into_iter()
        .enumerate()
    {
        let img = image(&[format!("http://{}{path}", server.addr)]);
        let tmp = tempfile::tempdir().unwrap();
        let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
        let local: Reference = format!("local/bad:{n}").parse().unwrap();
        img.install(&svc, &local);
        let target: Reference = format!("{}/fl/bad:{n}", reg.addr).parse().unwrap();
        rt.block_on(client.push(svc, &local.to_string(), &target, &|_| {}))
            .unwrap();

        let tmp2 = tempfile::tempdir().unwrap();
        let svc2 = Arc::new(ImageService::open(tmp2.path()).unwrap());
        let err = rt
            .block_on(client.pull(svc2.clone(), &target, &|_| {}))
            .unwrap_err()
            .to_string();
        assert!(
            ["mismatch", "larger than", "failed"]
                .iter()
                .any(|w| err.contains(w)),
            "{path}: {err}"
        );
        assert!(server.hits(path) >= 1);
        assert!(!svc2.content.exists(&img.foreign_digest()), "{path}");
        assert!(svc2.images.list().is_empty(), "{path}");
    }
}
