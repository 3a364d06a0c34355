//! Blob bodies on plain connections go out with sendfile; these check the bytes a client
//! receives, across the server's frame boundaries, with ranges, and with several requests
//! pipelined on one connection.

mod common;

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bigger than two of the server's 4 MiB sendfile frames, with an odd tail.
fn big_blob() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..(9 << 20) + 12_345)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn large_blob_whole_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(config(dir.path())).await;
    let data = big_blob();
    let d = reg.push_blob("big/one", &data).await;
    let path = format!("/v2/big/one/blobs/{d}");

    // Twice, so the second response reuses the connection after a file body.
    for _ in 0..2 {
        let g = reg.get(&path).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(sha256(&g.body), d);
        assert_eq!(g.body.len(), data.len());
    }
    let across = (4 << 20) - 1000..(8 << 20) + 1000;
    let range = format!("bytes={}-{}", across.start, across.end - 1);
    let r = reg.get_with(&path, &[("range", &range)]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body.as_ref(), &data[across]);
    let r = reg.get_with(&path, &[("range", "bytes=-7")]).await;
    assert_eq!(r.body.as_ref(), &data[data.len() - 7..]);
    // Ordinary responses after file bodies on the same client still carry their own bytes.
    let t = reg.get("/v2/big/none/tags/list").await;
    assert_eq!(t.status, StatusCode::NOT_FOUND);
    assert_eq!(t.code(), "NAME_UNKNOWN");
    reg.stop().await;
}

struct RawResponse {
    status: u16,
    body: Vec<u8>,
}

/// Reads a response head from `buf`, refilling from `conn`; removes it from `buf`.
async fn read_head(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> String {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = vec![0u8; 64 * 1024];
        let n = conn.read(&mut chunk).await.expect("read head");
        assert!(n > 0, "connection closed inside a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ascii head");
    buf.drain(..head_end);
    head
}

/// Reads one HTTP/1.1 response with a Content-Length body from `buf`, refilling from `conn`.
async fn read_response(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    let head = read_head(conn, buf).await;
    let status: u16 = head[9..12].parse().expect("status code");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    while buf.len() < len {
        let mut chunk = vec![0u8; 1 << 20];
        let n = conn.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..len).collect();
    RawResponse { status, body }
}

#[tokio::test]
async fn pipelined_requests_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(config(dir.path())).await;
    let data = big_blob();
    let d = reg.push_blob("big/two", &data).await;
    let small = b"a small blob".to_vec();
    let sd = reg.push_blob("big/two", &small).await;

    let addr = reg.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let reqs = format!(
        "GET /v2/big/two/blobs/{d} HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /v2/big/two/blobs/{sd} HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /v2/big/two/blobs/{d} HTTP/1.1\r\nhost: x\r\nrange: bytes=5000000-\r\n\r\n\
         GET /v2/ HTTP/1.1\r\nhost: x\r\n\r\n\
         HEAD /v2/big/two/blobs/{d} HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /v2/big/two/blobs/{sd} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    );
    conn.write_all(reqs.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut conn, &mut buf).await;
    assert_eq!((r.status, sha256(&r.body)), (200, d.clone()));
    let r = read_response(&mut conn, &mut buf).await;
    assert_eq!((r.status, r.body), (200, small.clone()));
    let r = read_response(&mut conn, &mut buf).await;
    assert_eq!(r.status, 206);
    assert!(r.body == data[5_000_000..], "range body differs");
    let r = read_response(&mut conn, &mut buf).await;
    assert_eq!((r.status, r.body), (200, b"{}".to_vec()));
    // A HEAD response announces the length but carries no body; read its head alone.
    let head = read_head(&mut conn, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let r = read_response(&mut conn, &mut buf).await;
    assert_eq!((r.status, r.body), (200, small));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.unwrap();
    assert!(
        buf.is_empty() && rest.is_empty(),
        "bytes after the last response"
    );
    reg.stop().await;
}

#[tokio::test]
async fn client_leaving_mid_body_does_not_disturb_others() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(config(dir.path())).await;
    let data = big_blob();
    let d = reg.push_blob("big/three", &data).await;
    let addr = reg.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!("GET /v2/big/three/blobs/{d} HTTP/1.1\r\nhost: x\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = conn.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    drop(conn);
    let g = reg.get(&format!("/v2/big/three/blobs/{d}")).await;
    assert_eq!(sha256(&g.body), d);
    reg.stop().await;
}
