//! A pull that survives dropped connections (resumed with Range), and Bearer token auth
//! through a small token server and an authenticating proxy in front of docker-registry.

mod common;

use berth_distribution::{ClientOptions, Credentials, Error, Progress, RegistryClient};
use berth_image::{ImageService, Reference};
use common::*;
use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards TCP to `upstream`, cutting the server→client direction of a connection once it
/// has carried `cut_after` bytes, `cuts` times in all.
async fn flaky_proxy(
    upstream: String,
    cut_after: usize,
    cuts: usize,
) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let left = Arc::new(AtomicUsize::new(cuts));
    let done = Arc::new(AtomicUsize::new(0));
    let done2 = done.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = l.accept().await else {
                return;
            };
            let (up, left, done) = (upstream.clone(), left.clone(), done2.clone());
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
                let mut sent = 0usize;
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if sent + n > cut_after && left.load(Ordering::SeqCst) > 0 {
                        left.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                        let _ = cw.write_all(&buf[..cut_after.saturating_sub(sent)]).await;
                        return; // both halves dropped: the connection dies mid-body
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    sent += n;
                }
            });
        }
    });
    (addr, done)
}

#[test]
fn dropped_connections_are_resumed_with_range() {
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
    let (proxy, cuts) = rt.block_on(flaky_proxy(reg.addr.clone(), 300_000, 2));
    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let r: Reference = format!("{proxy}/lib/busybox:1").parse().unwrap();
    let (log, cb) = events();
    let rec = rt.block_on(client.pull(svc.clone(), &r, &cb)).unwrap();
    assert_eq!(rec.id, busybox_config());
    assert_eq!(
        cuts.load(Ordering::SeqCst),
        2,
        "the proxy did not cut anything"
    );
    let ev = log.lock().unwrap().clone();
    let resumed: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Progress::Retrying { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(resumed.len(), 2, "{ev:?}");
    assert!(
        resumed.iter().all(|o| *o > 0),
        "resume must continue, not restart: {resumed:?}"
    );
    let chain = svc.chain_ids_of(&rec);
    assert!(svc
        .snapshots
        .layer_dir(&chain[0])
        .join("bin/busybox")
        .is_file());

    // With one attempt only, the cut is fatal and leaves neither blob nor snapshot.
    let (proxy, _) = rt.block_on(flaky_proxy(reg.addr.clone(), 300_000, 1));
    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    let once = RegistryClient::new(ClientOptions {
        download_attempts: 1,
        ..Default::default()
    })
    .unwrap();
    let r: Reference = format!("{proxy}/lib/busybox:1").parse().unwrap();
    let err = rt
        .block_on(once.pull(svc.clone(), &r, &|_| {}))
        .unwrap_err();
    assert!(matches!(err, Error::DownloadFailed { .. }), "{err}");
    assert!(svc.snapshots.list_layers().unwrap().is_empty());
    assert!(svc.images.list().is_empty());
}

#[test]
fn bearer_token_auth_for_push_and_pull() {
    let reg = Registry::start();
    let rt = rt();
    let (proxy, token_requests) = rt.block_on(auth_proxy(reg.addr.clone()));
    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    svc.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();

    // No credentials: the token server refuses, and the error says so.
    let anon = RegistryClient::new(ClientOptions::default()).unwrap();
    let target: Reference = format!("{proxy}/secure/bb:v1").parse().unwrap();
    let err = rt
        .block_on(anon.push(svc.clone(), "busybox", &target, &|_| {}))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");

    let opts = ClientOptions {
        credentials: HashMap::from([(
            proxy.clone(),
            Credentials {
                username: "alice".into(),
                password: "secret".into(),
            },
        )]),
        ..Default::default()
    };
    let client = RegistryClient::new(opts).unwrap();
    let before = token_requests.load(Ordering::SeqCst);
    let digest = rt
        .block_on(client.push(svc.clone(), "busybox", &target, &|_| {}))
        .unwrap();
    // Tokens are cached per scope: not one token request per blob.
    let used = token_requests.load(Ordering::SeqCst) - before;
    assert!(used <= 2, "{used} token requests for one push");

    let tmp2 = tempfile::tempdir().unwrap();
    let svc2 = Arc::new(ImageService::open(tmp2.path()).unwrap());
    let rec = rt.block_on(client.pull(svc2, &target, &|_| {})).unwrap();
    assert_eq!(rec.id, busybox_config());
    assert!(rec.repo_digests[0].ends_with(&digest.to_string()));
}

#[test]
fn tokens_past_their_lifetime_are_fetched_again_not_sent() {
    let reg = Registry::start();
    let rt = rt();
    let proxy = rt.block_on(auth_proxy_with_lifetime(reg.addr.clone(), 2));
    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    svc.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();
    let client = RegistryClient::new(ClientOptions {
        credentials: HashMap::from([(
            proxy.addr.clone(),
            Credentials {
                username: "alice".into(),
                password: "secret".into(),
            },
        )]),
        ..Default::default()
    })
    .unwrap();
    let first: Reference = format!("{}/secure/expiry:v1", proxy.addr).parse().unwrap();
    rt.block_on(client.push(svc.clone(), "busybox", &first, &|_| {}))
        .unwrap();
    let issued = proxy.token_requests.load(Ordering::SeqCst);

    // The tokens said they live 2 s: after that the client asks for new ones first.
    std::thread::sleep(Duration::from_millis(2100));
    let second: Reference = format!("{}/secure/expiry:v2", proxy.addr).parse().unwrap();
    rt.block_on(client.push(svc.clone(), "busybox", &second, &|_| {}))
        .unwrap();
    let tmp2 = tempfile::tempdir().unwrap();
    let svc2 = Arc::new(ImageService::open(tmp2.path()).unwrap());
    rt.block_on(client.pull(svc2, &second, &|_| {})).unwrap();
    assert!(proxy.token_requests.load(Ordering::SeqCst) > issued);
    assert_eq!(
        proxy.expired_refused.load(Ordering::SeqCst),
        0,
        "an expired token was sent"
    );
}
