//! kill -9 of the registry binary in the middle of uploads: after a restart nothing
//! acknowledged is lost, no partial blob is visible, and sessions resume or are unknown.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;

/// The binary, killed when dropped so a failing test leaves no server behind.
struct Proc {
    child: Child,
    base: String,
}

impl Proc {
    fn start(root: &Path) -> Proc {
        Proc::start_with(root, &[])
    }

    fn start_with(root: &Path, extra: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
            .args(["--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth-registry");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read address");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Proc { child, base }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client(base: &str) -> Registry {
    Registry {
        handle: None,
        base: base.to_string(),
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

fn blob_files(root: &Path) -> Vec<std::path::PathBuf> {
    fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("blobs"), &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let big: Vec<u8> = (0..(8u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let big_digest = sha256(&big);

    for round in 0..3u64 {
        let mut proc = Proc::start(&root);
        let reg = client(&proc.base);
        let addr = proc.base.trim_start_matches("http://").to_string();
        // Acknowledged before the crash: must survive it.
        let acked_data = format!("acknowledged {round}").into_bytes();
        let acked = reg.push_blob("crash/repo", &acked_data).await;
        let r = reg
            .req(
                Method::POST,
                "/v2/crash/repo/blobs/uploads/",
                &[],
                Bytes::new(),
            )
            .await;
        let loc = r.header("location").unwrap().to_string();
        let r = reg
            .req(
                Method::PATCH,
                &loc,
                &[],
                Bytes::copy_from_slice(&big[..1 << 20]),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);

        // Two requests cut off by the kill: a chunk of the session and a monolithic push.
        let mut patch = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
            big.len() - (1 << 20)
        );
        patch.write_all(head.as_bytes()).await.unwrap();
        patch.write_all(&big[1 << 20..(3 << 20)]).await.unwrap();
        let mut mono = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v2/crash/repo/blobs/uploads/?digest={big_digest} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
            big.len()
        );
        mono.write_all(head.as_bytes()).await.unwrap();
        mono.write_all(&big[..(5 << 20)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50 + 100 * round)).await;
        proc.kill9();
        drop((patch, mono));

        let proc = Proc::start(&root);
        let reg = client(&proc.base);
        let r = reg.get(&format!("/v2/crash/repo/blobs/{acked}")).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "acknowledged blob lost in round {round}"
        );
        assert_eq!(r.body.as_ref(), &acked_data[..]);
        assert_eq!(
            reg.head(&format!("/v2/crash/repo/blobs/{big_digest}"))
                .await
                .status,
            StatusCode::NOT_FOUND,
            "partial blob visible in round {round}"
        );
        // Every visible blob file holds exactly the content its name claims.
        for f in blob_files(&root) {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                !name.starts_with(".tmp-"),
                "temp file left visible: {}",
                f.display()
            );
            let content = std::fs::read(&f).unwrap();
            assert_eq!(
                sha256(&content),
                format!("sha256:{name}"),
                "{}",
                f.display()
            );
        }
        // The session resumes from what reached the disk, or is cleanly unknown.
        let st = reg.get(&loc).await;
        match st.status {
            StatusCode::NO_CONTENT => {
                let range = st.header("range").unwrap().to_string();
                let end: usize = range.trim_start_matches("0-").parse().unwrap();
                let have = end + 1;
                eprintln!("round {round}: session resumed at {have} bytes");
                assert!((1 << 20..=3 << 20).contains(&have), "range {range}");
                let r = reg
                    .req(
                        Method::PATCH,
                        &loc,
                        &[("content-range", &format!("{have}-{}", big.len() - 1))],
                        Bytes::copy_from_slice(&big[have..]),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
                let r = reg
                    .req(
                        Method::PUT,
                        &format!("{loc}?digest={big_digest}"),
                        &[],
                        Bytes::new(),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
                let got = reg.get(&format!("/v2/crash/repo/blobs/{big_digest}")).await;
                assert!(got.body.as_ref() == &big[..], "resumed blob differs");
                // Remove it so the next round checks invisibility again.
                let storage = berth_registry::storage::FsStorage::open(&root).unwrap();
                use berth_registry::storage::Storage;
                storage
                    .delete_blob(&big_digest.parse().unwrap())
                    .await
                    .unwrap();
            }
            StatusCode::NOT_FOUND => {
                eprintln!("round {round}: session unknown after restart");
                assert_eq!(st.code(), "BLOB_UPLOAD_UNKNOWN")
            }
            s => panic!("unexpected session status {s}"),
        }
        drop(proc);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_gc_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let proc = Proc::start(&root);
    let reg = client(&proc.base);
    let (m, _) = reg.push_image("b/app", "x").await;
    reg.push_manifest("b/app", "v1", OCI_MANIFEST, &m).await;
    let orphan = reg.push_blob("b/app", b"orphan").await;
    drop(proc);
    let out = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["--root"])
        .arg(&root)
        .args(["gc", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("would delete {orphan}")), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["--root"])
        .arg(&root)
        .arg("gc")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 1 blobs"));
    let proc = Proc::start(&root);
    let reg = client(&proc.base);
    assert_eq!(
        reg.head(&format!("/v2/b/app/blobs/{orphan}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reg.get("/v2/b/app/manifests/v1").await.body.as_ref(),
        &m[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reads_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let out = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["htpasswd", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"pw")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&htpasswd, &out.stdout).unwrap();
    let cfg = dir.path().join("registry.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:1\"\n[auth]\nmode = \"htpasswd\"\nhtpasswd = \"{}\"\n[limits]\nmax_manifest_bytes = 100\n",
            htpasswd.display()
        ),
    )
    .unwrap();
    // --listen overrides the file; auth and limits come from it.
    let proc = Proc::start_with(
        &dir.path().join("root"),
        &["--config", cfg.to_str().unwrap()],
    );
    let reg = client(&proc.base);
    assert_eq!(reg.get("/v2/").await.status, StatusCode::UNAUTHORIZED);
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:pw")
    );
    let r = reg.get_with("/v2/", &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = reg
        .req(
            Method::PUT,
            "/v2/a/manifests/x",
            &[("authorization", &auth)],
            Bytes::from(vec![b' '; 200]),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let m = reg.get("/metrics").await;
    assert!(String::from_utf8_lossy(&m.body).contains("registry_http_requests_total"));

    // A bad config file is refused with a message, not a panic.
    std::fs::write(&cfg, "nonsense = [").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth-registry"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("parsing"));
}
