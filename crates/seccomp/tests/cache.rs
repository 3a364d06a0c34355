//! The compile cache: hits skip libseccomp, damage is detected and repaired. Also measures
//! compile vs cache-hit time for Docker's default profile (run with --nocapture to see it).

use std::fs;
use std::time::{Duration, Instant};

use berth_seccomp::docker_profile::{self, KernelVersion};
use berth_seccomp::{compile, parse_oci_seccomp, CacheStatus, FilterCache};
use oci_spec::runtime::LinuxSeccomp;

fn docker_default() -> LinuxSeccomp {
    docker_profile::to_oci(
        docker_profile::DOCKER_DEFAULT,
        &["CAP_CHOWN".to_string(), "CAP_KILL".to_string()],
        "amd64",
        KernelVersion {
            kernel: 6,
            major: 18,
        },
    )
    .expect("convert")
}

#[test]
fn second_compile_hits_the_cache_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = FilterCache::new(dir.path().join("seccomp"));
    let profile = docker_default();

    let (first, status) = cache.get_or_compile(&profile).expect("compile");
    assert_eq!(status, CacheStatus::Miss);
    let path = cache.path_for(&FilterCache::key(&profile).expect("key"));
    assert!(path.exists(), "{} written", path.display());
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("seccomp"))
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left behind");

    let (second, status) = cache.get_or_compile(&profile).expect("hit");
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(first, second);
    assert_eq!(first, compile(&profile).expect("direct compile"));

    // Per-container listener fields do not change the program, so they share the entry.
    let mut other = profile.clone();
    other.set_listener_metadata(Some("container-2".into()));
    assert_eq!(
        cache.get_or_compile(&other).expect("hit").1,
        CacheStatus::Hit
    );
}

#[test]
fn damaged_cache_files_are_detected_and_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = FilterCache::new(dir.path());
    let profile = parse_oci_seccomp(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["exit_group","read"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .expect("parses");
    let (good, _) = cache.get_or_compile(&profile).expect("compile");
    let path = cache.path_for(&FilterCache::key(&profile).expect("key"));
    let bytes = fs::read(&path).expect("read");

    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() - 3].to_vec()),
        ("empty", Vec::new()),
        ("flipped bit", {
            let mut b = bytes.clone();
            let at = b.len() - 5;
            b[at] ^= 0x10;
            b
        }),
        ("extra bytes", {
            let mut b = bytes.clone();
            b.extend_from_slice(&[0; 8]);
            b
        }),
    ];
    for (what, damaged) in damages {
        fs::write(&path, damaged).expect("damage");
        let (f, status) = cache.get_or_compile(&profile).expect("recompile");
        assert_eq!(status, CacheStatus::Corrupt, "{what}");
        assert_eq!(f, good, "{what}");
        assert_eq!(
            fs::read(&path).expect("reread"),
            bytes,
            "{what}: file repaired"
        );
        assert_eq!(
            cache.get_or_compile(&profile).expect("hit").1,
            CacheStatus::Hit
        );
    }
}

#[test]
fn group_writable_cache_file_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = FilterCache::new(dir.path().join("c"));
    let profile = docker_default();
    cache.get_or_compile(&profile).expect("compile");
    let mode = fs::metadata(dir.path().join("c"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "cache dir is private");
    let path = cache.path_for(&FilterCache::key(&profile).expect("key"));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod");
    assert_eq!(
        cache.get_or_compile(&profile).expect("recompile").1,
        CacheStatus::Corrupt
    );
    assert_eq!(
        cache.get_or_compile(&profile).expect("hit").1,
        CacheStatus::Hit
    );
}

#[test]
fn unwritable_cache_still_compiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").expect("write");
    let cache = FilterCache::new(file.join("seccomp"));
    let (_, status) = cache
        .get_or_compile(&docker_default())
        .expect("compile anyway");
    assert_eq!(status, CacheStatus::Miss);
}

#[test]
fn compile_vs_cache_hit_timing() {
    const N: u32 = 20;
    let profile = docker_default();
    let names: usize = profile
        .syscalls()
        .iter()
        .flatten()
        .map(|s| s.names().len())
        .sum();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = FilterCache::new(dir.path());

    let mut compile_time = Duration::ZERO;
    let mut insns = 0;
    for _ in 0..N {
        let t = Instant::now();
        insns = compile(&profile).expect("compile").program().len();
        compile_time += t.elapsed();
    }
    cache.get_or_compile(&profile).expect("fill");
    let mut hit_time = Duration::ZERO;
    for _ in 0..N {
        let t = Instant::now();
        let (_, status) = cache.get_or_compile(&profile).expect("hit");
        hit_time += t.elapsed();
        assert_eq!(status, CacheStatus::Hit);
    }
    let t = Instant::now();
    for _ in 0..N {
        FilterCache::key(&profile).expect("key");
    }
    let key_time = t.elapsed() / N;
    eprintln!(
        "Docker default profile ({names} syscall names, 3 arches, {insns} BPF instructions): \
         compile {:?}/run, cache hit {:?}/run of which key {:?} (mean of {N})",
        compile_time / N,
        hit_time / N,
        key_time
    );
    assert!(
        hit_time < compile_time,
        "a hit must be cheaper than compiling"
    );
}

#[test]
fn stale_temp_files_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = FilterCache::new(dir.path());
    fs::write(dir.path().join(".tmp-crashed.bpf"), b"half").expect("write");
    fs::write(dir.path().join("keep.bpf"), b"x").expect("write");
    assert_eq!(
        cache
            .remove_stale_temp_files(Duration::from_secs(3600))
            .expect("prune"),
        0,
        "young temp files may belong to a live writer"
    );
    assert_eq!(
        cache
            .remove_stale_temp_files(Duration::ZERO)
            .expect("prune"),
        1
    );
    assert!(dir.path().join("keep.bpf").exists());
    assert!(!dir.path().join(".tmp-crashed.bpf").exists());
}
