//! Docker's seccomp profile format (moby's `profiles/seccomp`) → OCI `LinuxSeccomp`.
//!
//! The daemon does this per container: which rules apply depends on the container's bounding
//! capabilities, the architecture and the kernel version. The runtime only ever sees the result.
//! Selection rules, as in moby: a rule is dropped when any `excludes.caps` is held, the arch is
//! in `excludes.arches`, or the kernel is at least `excludes.minKernel`; it is kept only when all
//! `includes.caps` are held, the arch is in `includes.arches` (if given) and the kernel is at
//! least `includes.minKernel`. `archMap` contributes the entry for the native arch and its
//! sub-architectures.

use std::cmp::Ordering;
use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;

use crate::Error;

/// Docker's default profile, generated from Debian's `golang-github-docker-docker-dev`
/// (see `profiles/README.md`).
pub const DOCKER_DEFAULT: &str = include_str!("../profiles/docker-default.json");

/// A kernel `<kernel>.<major>` version, compared like moby does (patch level ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub kernel: u64,
    pub major: u64,
}

impl KernelVersion {
    /// Parses `"5.8"` or a release string such as `"6.18.0-12-amd64"`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '.');
        let kernel = parts.next()?.parse().ok()?;
        let major_part = parts.next()?;
        let digits = major_part
            .find(|c: char| !c.is_ascii_digit())
            .map_or(major_part, |end| &major_part[..end]);
        Some(KernelVersion {
            kernel,
            major: digits.parse().ok()?,
        })
    }

    /// The running kernel's version, from `uname`.
    pub fn current() -> Result<Self, Error> {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        Self::parse(&release).ok_or_else(|| {
            Error::invalid(
                "uname release",
                format!("cannot parse kernel version {release:?}"),
            )
        })
    }
}

/// moby's name for the architecture (`amd64`, `arm64`, `x86`...) as used in `includes.arches`.
/// Accepts moby's names, Go's `GOARCH` and Rust's `std::env::consts::ARCH` spellings.
pub fn moby_arch_name(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" | "x86_64" => "amd64",
        "x86" | "386" | "i386" | "i686" => "x86",
        "arm64" | "aarch64" => "arm64",
        "arm" => "arm",
        "ppc64le" | "powerpc64le" => "ppc64le",
        "ppc64" | "powerpc64" => "ppc64",
        "ppc" | "powerpc" => "ppc",
        "s390x" => "s390x",
        "s390" => "s390",
        "mips64" => "mips64",
        "mips64n32" | "mips64p32" => "mips64n32",
        "mipsel64" | "mips64le" => "mipsel64",
        "mips3l64n32" | "mips64p32le" => "mips3l64n32",
        "mipsel" | "mipsle" => "mipsel",
        "riscv64" => "riscv64",
        "loong64" | "loongarch64" => "loong64",
        _ => return None,
    })
}

fn seccomp_arch_of(moby_arch: &str) -> Option<Arch> {
    Some(match moby_arch {
        "amd64" => Arch::ScmpArchX86_64,
        "x86" => Arch::ScmpArchX86,
        "arm64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "ppc64" => Arch::ScmpArchPpc64,
        "ppc" => Arch::ScmpArchPpc,
        "s390x" => Arch::ScmpArchS390x,
        "s390" => Arch::ScmpArchS390,
        "mips64" => Arch::ScmpArchMips64,
        "mips64n32" => Arch::ScmpArchMips64n32,
        "mipsel64" => Arch::ScmpArchMipsel64,
        "mips3l64n32" => Arch::ScmpArchMipsel64n32,
        "mipsel" => Arch::ScmpArchMipsel,
        "riscv64" => Arch::ScmpArchRiscv64,
        "loong64" => Arch::ScmpArchLoongarch64,
        _ => return None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Option<LinuxSeccompAction>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<Arch>>,
    arch_map: Option<Vec<ArchMapEntry>>,
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    syscalls: Option<Vec<Syscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    name: Option<String>,
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<Arg>>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// Converts a profile in Docker's format into the OCI profile for one container.
///
/// `caps` is the container's bounding capability set (`CAP_*` names), `arch` the target
/// architecture in any spelling [`moby_arch_name`] accepts (usually `std::env::consts::ARCH`),
/// `kernel` the host kernel ([`KernelVersion::current`]).
pub fn to_oci(
    profile_json: &str,
    caps: &[String],
    arch: &str,
    kernel: KernelVersion,
) -> Result<LinuxSeccomp, Error> {
    let de = &mut serde_json::Deserializer::from_str(profile_json);
    let profile: Profile = serde_path_to_error::deserialize(de).map_err(|e| Error::Parse {
        field: format!("seccomp profile {}", e.path()),
        reason: e.into_inner().to_string(),
    })?;
    let arch = moby_arch_name(arch)
        .ok_or_else(|| Error::invalid("arch", format!("unsupported architecture {arch:?}")))?;

    let default_action = profile
        .default_action
        .ok_or_else(|| Error::invalid("defaultAction", "missing"))?;
    let arch_map = profile.arch_map.unwrap_or_default();
    let mut architectures = profile.architectures.unwrap_or_default();
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err(Error::invalid(
            "architectures",
            "both 'architectures' and 'archMap' are given; use one",
        ));
    }
    if let Some(native) = seccomp_arch_of(arch) {
        if let Some(entry) = arch_map.into_iter().find(|e| e.architecture == native) {
            architectures.push(entry.architecture);
            architectures.extend(entry.sub_architectures.unwrap_or_default());
        }
    }

    let mut syscalls = Vec::new();
    for (i, call) in profile.syscalls.unwrap_or_default().into_iter().enumerate() {
        let field = format!("syscalls[{i}]");
        if !applies(&call, caps, arch, kernel, &field)? {
            continue;
        }
        let names = match (call.name, call.names) {
            (Some(n), Some(ns)) if !n.is_empty() && !ns.is_empty() => {
                return Err(Error::invalid(
                    field,
                    "both 'name' and 'names' are given; use one",
                ))
            }
            (Some(n), _) if !n.is_empty() => vec![n],
            (_, ns) => ns.unwrap_or_default(),
        };
        let args: Vec<LinuxSeccompArg> = call
            .args
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(k, a)| {
                let b = LinuxSeccompArgBuilder::default()
                    .index(a.index)
                    .value(a.value)
                    .op(a.op);
                let b = match a.value_two {
                    Some(v) => b.value_two(v),
                    None => b,
                };
                b.build()
                    .map_err(|e| Error::invalid(format!("{field}.args[{k}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let mut s = LinuxSyscall::default();
        s.set_names(names);
        s.set_action(call.action);
        s.set_errno_ret(call.errno_ret);
        s.set_args((!args.is_empty()).then_some(args));
        syscalls.push(s);
    }

    let mut out = LinuxSeccomp::default();
    out.set_default_action(default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures((!architectures.is_empty()).then_some(architectures));
    out.set_flags(profile.flags.filter(|f| !f.is_empty()));
    out.set_listener_path(profile.listener_path);
    out.set_listener_metadata(profile.listener_metadata);
    out.set_syscalls(Some(syscalls));
    Ok(out)
}

fn applies(
    call: &Syscall,
    caps: &[String],
    arch: &str,
    kernel: KernelVersion,
    field: &str,
) -> Result<bool, Error> {
    let none = Filter::default();
    let ex = call.excludes.as_ref().unwrap_or(&none);
    let inc = call.includes.as_ref().unwrap_or(&none);
    let has_cap = |c: &String| caps.iter().any(|have| have == c);
    let at_least = |v: &Option<String>, which: &str| -> Result<Option<bool>, Error> {
        match v.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => {
                let min = KernelVersion::parse(s).ok_or_else(|| {
                    Error::invalid(
                        format!("{field}.{which}.minKernel"),
                        format!("invalid kernel version {s:?}, expected \"<kernel>.<major>\""),
                    )
                })?;
                Ok(Some(kernel.cmp(&min) != Ordering::Less))
            }
        }
    };

    if ex.arches.iter().flatten().any(|a| a == arch)
        || ex.caps.iter().flatten().any(has_cap)
        || at_least(&ex.min_kernel, "excludes")? == Some(true)
    {
        return Ok(false);
    }
    if let Some(arches) = inc.arches.as_ref().filter(|a| !a.is_empty()) {
        if !arches.iter().any(|a| a == arch) {
            return Ok(false);
        }
    }
    if !inc.caps.iter().flatten().all(has_cap) {
        return Ok(false);
    }
    Ok(at_least(&inc.min_kernel, "includes")? != Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: KernelVersion = KernelVersion {
        kernel: 6,
        major: 18,
    };

    fn names(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .flat_map(|c| c.names().clone())
            .collect()
    }

    #[test]
    fn kernel_version_parsing() {
        assert_eq!(
            KernelVersion::parse("4.8"),
            Some(KernelVersion {
                kernel: 4,
                major: 8
            })
        );
        assert_eq!(
            KernelVersion::parse("6.18.0-12-amd64"),
            Some(KernelVersion {
                kernel: 6,
                major: 18
            })
        );
        assert_eq!(
            KernelVersion::parse("5.10-rc1"),
            Some(KernelVersion {
                kernel: 5,
                major: 10
            })
        );
        assert_eq!(KernelVersion::parse("6"), None);
        assert!(KernelVersion::current().is_ok());
    }

    #[test]
    fn filters_by_caps_arch_and_kernel() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
                {"names": ["old"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
                {"name": "single", "action": "SCMP_ACT_ALLOW", "args": null}
            ]
        }"#;
        let s = to_oci(json, &[], "x86_64", K).expect("convert");
        assert_eq!(
            names(&s),
            ["read", "clone3", "arch_prctl", "ptrace", "single"]
        );
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86][..])
        );
        let clone3 = &s.syscalls().as_ref().expect("syscalls")[1];
        assert_eq!(clone3.errno_ret(), Some(38));

        let admin = to_oci(json, &["CAP_SYS_ADMIN".into()], "aarch64", K).expect("convert");
        assert_eq!(names(&admin), ["read", "bpf", "ptrace", "single"]);
        assert_eq!(
            admin.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
    }

    #[test]
    fn rejects_bad_profiles() {
        let both = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#;
        let e = to_oci(both, &[], "amd64", K).expect_err("name and names");
        assert!(e.to_string().contains("syscalls[0]"), "{e}");

        let bad_action = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_NOPE"}]}"#;
        let e = to_oci(bad_action, &[], "amd64", K).expect_err("bad action");
        assert!(e.to_string().contains("syscalls[0].action"), "{e}");

        let bad_kernel = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"four"}}]}"#;
        let e = to_oci(bad_kernel, &[], "amd64", K).expect_err("bad kernel");
        assert!(
            e.to_string().contains("syscalls[0].includes.minKernel"),
            "{e}"
        );

        assert!(to_oci(r#"{"syscalls":[]}"#, &[], "amd64", K).is_err());
        assert!(to_oci(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#, &[], "vax", K).is_err());
    }

    #[test]
    fn docker_default_profile_converts() {
        let s = to_oci(DOCKER_DEFAULT, &[], "x86_64", K).expect("convert");
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        let all = names(&s);
        assert!(all.len() > 340, "{} names", all.len());
        for expected in ["read", "execve", "arch_prctl", "ptrace", "clone", "clone3"] {
            assert!(all.iter().any(|n| n == expected), "{expected} missing");
        }
        // Without CAP_SYS_ADMIN: no mount, clone3 answers ENOSYS, clone restricted by flags.
        assert!(!all.iter().any(|n| n == "mount"));
        let clone = s
            .syscalls()
            .iter()
            .flatten()
            .find(|c| c.names() == &["clone".to_string()])
            .expect("clone rule");
        let arg = clone.args().as_ref().expect("clone args")[0];
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        // s390 variants and mips-only rules are not selected on amd64.
        assert!(!all.iter().any(|n| n == "s390_pci_mmio_read"));

        let admin = to_oci(DOCKER_DEFAULT, &["CAP_SYS_ADMIN".into()], "amd64", K).expect("convert");
        let admin_names = names(&admin);
        assert!(admin_names.iter().any(|n| n == "mount"));
        assert!(admin
            .syscalls()
            .iter()
            .flatten()
            .all(|c| c.args().is_none() || !c.names().contains(&"clone".to_string())));
    }
}
