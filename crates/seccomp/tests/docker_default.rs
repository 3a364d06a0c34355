//! Docker's default profile (and Podman's, same format) convert and compile for every
//! capability set and architecture the daemon may ask for.

use berth_seccomp::compile;
use berth_seccomp::docker_profile::{to_oci, KernelVersion, DOCKER_DEFAULT};

const KERNEL: KernelVersion = KernelVersion {
    kernel: 6,
    major: 18,
};

/// Every capability named in the profile's includes/excludes, i.e. a privileged-like set.
const ALL_CAPS: &[&str] = &[
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYS_NICE",
    "CAP_SYSLOG",
    "CAP_AUDIT_WRITE",
];

#[test]
fn compiles_for_each_cap_set_and_arch() {
    let all: Vec<String> = ALL_CAPS.iter().map(|c| c.to_string()).collect();
    for caps in [Vec::new(), all] {
        // Little-endian ones only: libseccomp cannot mix byte orders in one filter.
        for arch in ["amd64", "arm64", "ppc64le", "x86", "mipsel64"] {
            let oci = to_oci(DOCKER_DEFAULT, &caps, arch, KERNEL).expect("convert");
            let f = compile(&oci).unwrap_or_else(|e| panic!("{arch} caps={}: {e}", caps.len()));
            assert!(f.program().len() < berth_seccomp::BPF_MAXINSNS);
        }
    }
}

#[test]
fn old_kernel_drops_min_kernel_rules() {
    let old = KernelVersion {
        kernel: 4,
        major: 4,
    };
    let oci = to_oci(DOCKER_DEFAULT, &[], "amd64", old).expect("convert");
    let has_ptrace = oci
        .syscalls()
        .iter()
        .flatten()
        .any(|s| s.names().iter().any(|n| n == "ptrace"));
    assert!(
        !has_ptrace,
        "ptrace needs kernel >= 4.8 in Docker's profile"
    );
}

#[test]
fn podman_profile_from_containers_common_compiles() {
    // Debian's golang-github-containers-common ships Podman's profile in the same moby format.
    let Ok(json) = std::fs::read_to_string("/usr/share/containers/seccomp.json") else {
        eprintln!("containers-common not installed; skipped");
        return;
    };
    let oci = to_oci(&json, &[], std::env::consts::ARCH, KERNEL).expect("convert");
    compile(&oci).expect("compile Podman's profile");
}

#[test]
fn foreign_byte_order_is_a_clear_error() {
    let oci = to_oci(DOCKER_DEFAULT, &[], "s390x", KERNEL).expect("convert");
    let e = compile(&oci).expect_err("big-endian arch on a little-endian host");
    assert!(
        e.to_string()
            .starts_with("linux.seccomp.architectures: S390X"),
        "{e}"
    );
}
