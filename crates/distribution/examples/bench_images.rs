//! Benchmark driver for `bench/images.sh`: push of a fresh random layer and pull + unpack of
//! what was pushed, through the library as the daemon uses it.
//!
//! Usage: `bench_images REGISTRY MIB RUNS WORKDIR`
//! Prints one line per measurement on stdout: `berth-push <run> <seconds>`,
//! `berth-pull <run> <seconds>` and `berth-pull-synced` (the same pull plus the snapshot
//! syncfs). Each run uses a new layer, a new repository and new, empty stores, so every
//! byte really travels; the stores are removed between runs.

use berth_distribution::{ClientOptions, RegistryClient};
use berth_image::{ImageService, ImportOptions, Reference};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A tar holding one incompressible file, like bench.sh's `head -c NM /dev/urandom` layer.
fn random_tar(path: &Path, mib: usize, seed: u64) -> Res<()> {
    let mut data = vec![0u8; mib << 20];
    let mut x = seed | 1;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut b = tar::Builder::new(std::fs::File::create(path)?);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "blob", &data[..])?;
    b.into_inner()?.flush()?;
    Ok(())
}

fn main() -> Res<()> {
    // RUST_LOG=berth_distribution=debug shows the phases of each push and pull on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let [_, registry, mib, runs, work] = &args[..] else {
        return Err("usage: bench_images REGISTRY MIB RUNS WORKDIR".into());
    };
    let (mib, runs): (usize, usize) = (mib.parse()?, runs.parse()?);
    let work = Path::new(work);
    std::fs::create_dir_all(work)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let client = RegistryClient::new(ClientOptions::default())?;
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;

    for run in 0..runs {
        let tar_path = work.join("rand.tar");
        random_tar(
            &tar_path,
            mib,
            nanos ^ ((run as u64 + 1) << 32) ^ u64::from(pid),
        )?;

        let push_root = work.join(format!("push-{run}"));
        let svc = Arc::new(ImageService::open(&push_root)?);
        let local: Reference = format!("bench/rand:{run}").parse()?;
        svc.import(
            std::fs::File::open(&tar_path)?,
            &ImportOptions {
                reference: Some(local.clone()),
                ..Default::default()
            },
        )?;
        let target: Reference = format!("{registry}/berth-bench-{pid}-{run}:latest").parse()?;
        let t = Instant::now();
        rt.block_on(client.push(svc.clone(), &local.to_string(), &target, &|_| {}))?;
        println!("berth-push {run} {:.4}", t.elapsed().as_secs_f64());
        drop(svc);
        std::fs::remove_dir_all(&push_root)?;

        let pull_root = work.join(format!("pull-{run}"));
        let svc = Arc::new(ImageService::open(&pull_root)?);
        let t = Instant::now();
        rt.block_on(client.pull(svc.clone(), &target, &|_| {}))?;
        println!("berth-pull {run} {:.4}", t.elapsed().as_secs_f64());
        // The daemon makes new snapshots durable a few seconds later (one syncfs); this
        // line counts that too, for a pull that is on disk when it returns.
        svc.snapshots.sync_pending()?;
        println!("berth-pull-synced {run} {:.4}", t.elapsed().as_secs_f64());
        drop(svc);
        std::fs::remove_dir_all(&pull_root)?;
        std::io::stdout().flush()?;
    }
    let _ = std::fs::remove_file(work.join("rand.tar"));
    Ok(())
}
