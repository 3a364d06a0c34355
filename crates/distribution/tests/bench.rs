//! Benchmark, not a test (ignored): push and pull of a fresh 100 MiB random layer with Berth
//! and, in the same run, with the peer dockerd, both against the peer registry of
//! start-peers.sh on 127.0.0.1:5000 (as shared/anchors/bench.sh measures Docker).
//! Run: cargo test -p berth-distribution --test bench -- --ignored --nocapture

mod common;

use berth_distribution::{ClientOptions, RegistryClient};
use berth_image::{ImageService, ImportOptions, Reference};
use common::*;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

const REG: &str = "127.0.0.1:5000";
const MIB: usize = 100;

fn docker(args: &[&str]) {
    let out = Command::new("/usr/bin/docker")
        .args(["-H", "unix:///run/docker-anchor.sock"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "benchmark; needs start-peers.sh (dockerd + registry)"]
fn push_and_pull_100mib_berth_vs_docker() {
    assert!(
        std::net::TcpStream::connect(REG).is_ok(),
        "peer registry not running: ../shared/anchors/start-peers.sh"
    );
    let tmp = tempfile::tempdir().unwrap();
    // A tar holding one incompressible file, like bench.sh's random layer.
    let tar_path = tmp.path().join("rand.tar");
    {
        let mut data = vec![0u8; MIB << 20];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "blob", &data[..]).unwrap();
        b.into_inner().unwrap().flush().unwrap();
    }
    let rt = rt();
    let id = std::process::id();

    let svc = Arc::new(ImageService::open(&tmp.path().join("a")).unwrap());
    let local: Reference = format!("bench/rand:{id}").parse().unwrap();
    svc.import(
        std::fs::File::open(&tar_path).unwrap(),
        &ImportOptions {
            reference: Some(local.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let target: Reference = format!("{REG}/berth-bench-{id}:latest").parse().unwrap();
    let t = Instant::now();
    rt.block_on(client.push(svc.clone(), &local.to_string(), &target, &|_| {}))
        .unwrap();
    let berth_push = t.elapsed();
    let svc2 = Arc::new(ImageService::open(&tmp.path().join("b")).unwrap());
    let t = Instant::now();
    rt.block_on(client.pull(svc2, &target, &|_| {})).unwrap();
    let berth_pull = t.elapsed();

    let dref = format!("{REG}/docker-bench-{id}:latest");
    docker(&["import", tar_path.to_str().unwrap(), &dref]);
    let t = Instant::now();
    docker(&["push", "-q", &dref]);
    let docker_push = t.elapsed();
    docker(&["rmi", "-f", &dref]);
    let t = Instant::now();
    docker(&["pull", "-q", &dref]);
    let docker_pull = t.elapsed();
    docker(&["rmi", "-f", &dref]);

    println!("\n{MIB} MiB random layer, registry {REG}, this build's profile");
    println!(
        "  berth  push {:>6.2} s   pull+extract {:>6.2} s",
        berth_push.as_secs_f64(),
        berth_pull.as_secs_f64()
    );
    println!(
        "  docker push {:>6.2} s   pull+extract {:>6.2} s",
        docker_push.as_secs_f64(),
        docker_pull.as_secs_f64()
    );
}
