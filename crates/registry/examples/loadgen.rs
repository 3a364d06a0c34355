//! Load generator for bench/registry.sh: pushes (POST then PUT with the body) and pulls
//! distinct blobs with a fixed concurrency against any distribution registry, and prints one
//! JSON line per phase.
//!
//! loadgen URL REPO SIZE_BYTES COUNT CONCURRENCY [push|pull|both]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Digest as _;

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn body_of(prefix: Bytes, rest: Bytes) -> Body {
    // The shared tail is sent in 1 MiB slices so no blob is ever copied in memory.
    let mut frames = vec![Ok(Frame::data(prefix))];
    let mut off = 0;
    while off < rest.len() {
        let end = (off + (1 << 20)).min(rest.len());
        frames.push(Ok(Frame::data(rest.slice(off..end))));
        off = end;
    }
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 6,
        "usage: loadgen URL REPO SIZE COUNT CONCURRENCY [push|pull|both]"
    );
    let url = args[1].trim_end_matches('/').to_string();
    let repo = args[2].clone();
    let size: usize = args[3].parse()?;
    let count: usize = args[4].parse()?;
    let conc: usize = args[5].parse()?;
    let mode = args
        .get(6)
        .map(String::as_str)
        .unwrap_or("both")
        .to_string();
    anyhow::ensure!(size >= 16, "size must be at least 16 bytes");

    // Blob i is a 16-byte unique prefix followed by a shared pseudo-random tail.
    let mut tail = vec![0u8; size - 16];
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ size as u64;
    for b in tail.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let tail = Bytes::from(tail);
    let run = std::process::id() as u64 ^ (Instant::now().elapsed().as_nanos() as u64);
    // LOADGEN_SEED names a blob set, so one run can push and a later run pull the same blobs.
    let stamp = match std::env::var("LOADGEN_SEED") {
        Ok(s) => s.parse()?,
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64
                ^ run
        }
    };
    let mut blobs = Vec::with_capacity(count);
    for i in 0..count {
        let mut prefix = [0u8; 16];
        prefix[..8].copy_from_slice(&stamp.to_le_bytes());
        prefix[8..].copy_from_slice(&(i as u64).to_le_bytes());
        let mut h = sha2::Sha256::new();
        h.update(prefix);
        h.update(&tail);
        let digest = format!("sha256:{}", hex::encode(h.finalize()));
        blobs.push((Bytes::copy_from_slice(&prefix), digest));
    }
    let blobs = Arc::new(blobs);
    // One exact-size read buffer per connection: hyper reuses it once a frame is dropped,
    // so pulling costs the kernel's copy and little else on this side.
    let client: Client<_, Body> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(conc)
        .http1_read_buf_exact_size(1 << 20)
        .build_http();

    if mode == "push" || mode == "both" {
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let cpu = cpu_secs();
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let (client, next, blobs, tail, url, repo) = (
                client.clone(),
                next.clone(),
                blobs.clone(),
                tail.clone(),
                url.clone(),
                repo.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((prefix, digest)) = blobs.get(i) else {
                        return anyhow::Ok(());
                    };
                    let post = http::Request::post(format!("{url}/v2/{repo}/blobs/uploads/"))
                        .header("content-length", "0")
                        .body(http_body_util::Empty::new().map_err(|e| match e {}).boxed())?;
                    let resp = client.request(post).await?;
                    anyhow::ensure!(resp.status() == 202, "POST status {}", resp.status());
                    let loc = resp
                        .headers()
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| anyhow::anyhow!("no Location"))?
                        .to_string();
                    resp.into_body().collect().await?;
                    let loc = if loc.starts_with("http") {
                        loc
                    } else {
                        format!("{url}{loc}")
                    };
                    let sep = if loc.contains('?') { '&' } else { '?' };
                    let put = http::Request::put(format!("{loc}{sep}digest={digest}"))
                        .header("content-length", size.to_string())
                        .header("content-type", "application/octet-stream")
                        .body(body_of(prefix.clone(), tail.clone()))?;
                    let resp = client.request(put).await?;
                    anyhow::ensure!(resp.status() == 201, "PUT status {}", resp.status());
                    resp.into_body().collect().await?;
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        report(
            "push",
            size,
            count,
            conc,
            start.elapsed().as_secs_f64(),
            cpu_secs() - cpu,
        );
    }
    if mode == "pull" || mode == "both" {
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let cpu = cpu_secs();
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let (client, next, blobs, url, repo) = (
                client.clone(),
                next.clone(),
                blobs.clone(),
                url.clone(),
                repo.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, digest)) = blobs.get(i) else {
                        return anyhow::Ok(());
                    };
                    let get = http::Request::get(format!("{url}/v2/{repo}/blobs/{digest}"))
                        .body(http_body_util::Empty::new().map_err(|e| match e {}).boxed())?;
                    let resp = client.request(get).await?;
                    anyhow::ensure!(resp.status() == 200, "GET status {}", resp.status());
                    let mut body = resp.into_body();
                    let mut n = 0usize;
                    while let Some(frame) = body.frame().await {
                        if let Ok(d) = frame?.into_data() {
                            n += d.len();
                        }
                    }
                    anyhow::ensure!(n == size, "short read {n} of {size}");
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        report(
            "pull",
            size,
            count,
            conc,
            start.elapsed().as_secs_f64(),
            cpu_secs() - cpu,
        );
    }
    Ok(())
}

/// CPU time (user + system) this process has used, so the bench can show what the client
/// itself costs.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn report(op: &str, size: usize, count: usize, conc: usize, secs: f64, cpu: f64) {
    println!(
        "{{\"op\":\"{op}\",\"size\":{size},\"count\":{count},\"concurrency\":{conc},\"secs\":{secs:.3},\"blobs_per_s\":{:.2},\"mb_per_s\":{:.1},\"client_cpu_s\":{cpu:.3}}}",
        count as f64 / secs,
        (size * count) as f64 / secs / 1e6
    );
}
