//! OCI `LinuxSeccomp` → classic-BPF, through libseccomp.
//!
//! Semantics follow runc where the runtime spec is silent, because profiles in the wild (Docker's,
//! Podman's, Kubernetes') are written against runc:
//! - a syscall name libseccomp does not know on *any* architecture is an error; one it knows but
//!   that does not exist on the filter's architectures is skipped;
//! - a rule whose action equals the default action is dropped (libseccomp refuses it);
//! - when one rule compares the same argument twice, each comparison becomes its own rule (OR),
//!   since libseccomp cannot AND two comparisons of one argument;
//! - `errnoRet` defaults to EPERM and is an error on actions that carry no value.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use crate::enosys::{self, ArchMax};
use crate::program::{flags, CompiledFilter};
use crate::Error;

/// Field prefix used in error messages, matching where the profile lives in config.json.
const FIELD: &str = "linux.seccomp";

/// Highest argument index a syscall has (`seccomp_data.args[6]`).
const MAX_ARG_INDEX: usize = 5;

/// Every architecture libseccomp knows; used to tell "unknown anywhere" from "not on this arch".
const ALL_ARCHES: &[ScmpArch] = &[
    ScmpArch::X86,
    ScmpArch::X8664,
    ScmpArch::X32,
    ScmpArch::Arm,
    ScmpArch::Aarch64,
    ScmpArch::Loongarch64,
    ScmpArch::M68k,
    ScmpArch::Mips,
    ScmpArch::Mips64,
    ScmpArch::Mips64N32,
    ScmpArch::Mipsel,
    ScmpArch::Mipsel64,
    ScmpArch::Mipsel64N32,
    ScmpArch::Ppc,
    ScmpArch::Ppc64,
    ScmpArch::Ppc64Le,
    ScmpArch::S390,
    ScmpArch::S390X,
    ScmpArch::Parisc,
    ScmpArch::Parisc64,
    ScmpArch::Riscv64,
    ScmpArch::Sheb,
    ScmpArch::Sh,
];

/// Real syscalls newer than the syscall table of the libseccomp we link (Debian 12 ships 2.5.4,
/// whose table ends at `futex_requeue`, 456). Recent Docker and Podman profiles list them, so
/// they are skipped with a warning instead of refused as unknown; being above every number the
/// profile can name, they get ENOSYS from the stub under a deny-by-default profile.
const NEWER_THAN_LIBSECCOMP: &[&str] = &[
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "mseal",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
    "uretprobe",
    "file_getattr",
    "file_setattr",
];

/// Compiles an OCI seccomp profile for this machine. Call it in the parent, before fork: it
/// allocates and calls into libseccomp. The native architecture is always part of the filter.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<CompiledFilter, Error> {
    let default_action = seccomp.default_action();
    if default_action == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::invalid(
            format!("{FIELD}.defaultAction"),
            "SCMP_ACT_NOTIFY cannot be the default action (the container would block on its \
             own first syscall)",
        ));
    }
    let default = to_scmp_action(
        default_action,
        seccomp.default_errno_ret(),
        &format!("{FIELD}.defaultErrnoRet"),
    )?;

    let mut ctx = ScmpFilterContext::new(default)
        .map_err(|e| Error::seccomp("creating filter context", e))?;
    // We install the program ourselves; libseccomp's own NNP handling must stay out of it.
    ctx.set_ctl_nnp(false)
        .map_err(|e| Error::seccomp("disabling NNP attribute", e))?;
    // A binary tree over syscall numbers instead of a chain of comparisons. Besides the
    // container's own syscalls, it is what the kernel pays at install: it runs the filter
    // for every syscall number to build its allow-cache (1 ms for Docker's profile as a
    // chain). libseccomp before 2.5 only has the chain.
    if let Err(e) = ctx.set_ctl_optimize(2) {
        tracing::debug!(error = %e, "libseccomp cannot build a binary tree; using a chain");
    }

    let arches = filter_arches(seccomp);
    for &arch in &arches {
        let present = ctx
            .is_arch_present(arch)
            .map_err(|e| Error::seccomp(format!("checking architecture {arch:?}"), e))?;
        if !present {
            // libseccomp refuses e.g. a big-endian arch in a little-endian host's filter.
            ctx.add_arch(arch).map_err(|e| {
                Error::invalid(
                    format!("{FIELD}.architectures"),
                    format!(
                        "{arch:?} cannot be filtered on a {:?} host: {e}",
                        ScmpArch::native()
                    ),
                )
            })?;
        }
    }

    let uses_notify = add_rules(&mut ctx, seccomp, default, &arches)?;
    check_listener(seccomp, uses_notify)?;
    let bpf = export(&ctx)?;
    let mut program = Vec::new();
    if needs_enosys_stub(default) {
        program = enosys::stub(&highest_syscalls(seccomp, &arches))?;
    }
    let main = CompiledFilter::from_bpf_bytes(&bpf, 0)?;
    program.extend_from_slice(main.program());
    CompiledFilter::new(program, install_flags(seccomp, uses_notify))
}

/// Adds every rule of the profile; returns whether any NOTIFY rule made it into the filter.
fn add_rules(
    ctx: &mut ScmpFilterContext,
    seccomp: &LinuxSeccomp,
    default: ScmpAction,
    arches: &[ScmpArch],
) -> Result<bool, Error> {
    let mut uses_notify = false;
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("{FIELD}.syscalls[{i}]");
        let action = to_scmp_action(
            rule.action(),
            rule.errno_ret(),
            &format!("{field}.errnoRet"),
        )?;
        let args = rule.args().as_deref().unwrap_or(&[]);
        let conditions = conditions(args, &field)?;
        let mut seen = [false; MAX_ARG_INDEX + 1];
        // Indices were range-checked by `conditions`.
        let repeats_an_arg = args
            .iter()
            .any(|a| std::mem::replace(&mut seen[a.index()], true));
        if rule.names().is_empty() {
            return Err(Error::invalid(format!("{field}.names"), "no syscall names"));
        }
        for (j, name) in rule.names().iter().enumerate() {
            let name_field = format!("{field}.names[{j}]");
            if action == ScmpAction::Notify && name == "write" {
                return Err(Error::invalid(
                    name_field,
                    "SCMP_ACT_NOTIFY cannot be used for \"write\" (the runtime's own error \
                     reporting would block)",
                ));
            }
            let Some(syscall) = resolve(name, &name_field)? else {
                continue;
            };
            if action == default {
                tracing::debug!(name, "rule action equals the default action; skipped");
                continue;
            }
            let rule = Rule {
                action,
                syscall,
                conditions: &conditions,
                separate: repeats_an_arg,
            };
            if add_rule(ctx, &rule, arches, name, &name_field)? {
                uses_notify |= action == ScmpAction::Notify;
            }
        }
    }

    Ok(uses_notify)
}

/// Parses a `linux.seccomp` JSON object, naming the failing field on error. oci-spec's enums
/// reject unknown actions, architectures, operators and flags here, before `compile`.
pub fn parse_oci_seccomp(json: &str) -> Result<LinuxSeccomp, Error> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        Error::Parse {
            field: if path == "." {
                FIELD.to_string()
            } else {
                format!("{FIELD}.{path}")
            },
            reason: e.into_inner().to_string(),
        }
    })
}

/// A notified syscall blocks until an agent answers, so without `listenerPath` the container
/// would hang; runc refuses this too.
pub(crate) fn check_listener(seccomp: &LinuxSeccomp, uses_notify: bool) -> Result<(), Error> {
    if uses_notify && seccomp.listener_path().is_none() {
        return Err(Error::invalid(
            format!("{FIELD}.listenerPath"),
            "required when a rule uses SCMP_ACT_NOTIFY",
        ));
    }
    Ok(())
}

fn to_scmp_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    errno_field: &str,
) -> Result<ScmpAction, Error> {
    let value = |default: u32| -> Result<u16, Error> {
        let v = errno_ret.unwrap_or(default);
        u16::try_from(v)
            .map_err(|_| Error::invalid(errno_field, format!("{v} does not fit in 16 bits")))
    };
    let no_value = || -> Result<(), Error> {
        match errno_ret {
            Some(v) => Err(Error::invalid(
                errno_field,
                format!("{v} given, but {action} carries no errno value"),
            )),
            None => Ok(()),
        }
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(i32::from(value(libc::EPERM as u32)?))
        }
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(value(libc::EPERM as u32)?),
        other => {
            no_value()?;
            match other {
                LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
                    ScmpAction::KillThread
                }
                LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
                LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
                LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
                LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
                _ => ScmpAction::Allow,
            }
        }
    })
}

fn to_scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::native(),
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// The filter's architectures: native first, then the profile's, without duplicates.
fn filter_arches(seccomp: &LinuxSeccomp) -> Vec<ScmpArch> {
    let mut arches = vec![ScmpArch::native()];
    for arch in seccomp.architectures().iter().flatten() {
        let a = to_scmp_arch(*arch);
        if !arches.contains(&a) {
            arches.push(a);
        }
    }
    arches
}

fn conditions(args: &[LinuxSeccompArg], field: &str) -> Result<Vec<ScmpArgCompare>, Error> {
    args.iter()
        .enumerate()
        .map(|(k, a)| {
            let index = a.index();
            if index > MAX_ARG_INDEX {
                return Err(Error::invalid(
                    format!("{field}.args[{k}].index"),
                    format!(
                        "{index} is out of range (syscalls have arguments 0 to {MAX_ARG_INDEX})"
                    ),
                ));
            }
            let (op, datum) = match a.op() {
                LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
                LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
                LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
                LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
                LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
                LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
                // OCI: value is the mask, valueTwo the value compared after masking.
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    ScmpCompareOp::MaskedEqual(a.value()),
                    a.value_two().unwrap_or(0),
                ),
            };
            // index <= 5 was checked above.
            Ok(ScmpArgCompare::new(index as u32, op, datum))
        })
        .collect()
}

/// Resolves a name on the native arch (libseccomp maps it to the filter's other arches). `None`
/// means "known to libseccomp, but not on this machine" — skipped like runc does.
fn resolve(name: &str, field: &str) -> Result<Option<ScmpSyscall>, Error> {
    if name.is_empty() {
        return Err(Error::invalid(field, "empty syscall name"));
    }
    if let Ok(s) = ScmpSyscall::from_name(name) {
        return Ok(Some(s));
    }
    if ALL_ARCHES
        .iter()
        .any(|&a| ScmpSyscall::from_name_by_arch(name, a).is_ok())
    {
        tracing::debug!(name, "syscall unknown on the native architecture; skipped");
        return Ok(None);
    }
    if NEWER_THAN_LIBSECCOMP.contains(&name) {
        tracing::warn!(name, "syscall newer than libseccomp's table; skipped");
        return Ok(None);
    }
    Err(Error::invalid(
        field,
        format!("unknown syscall \"{name}\" (not known to libseccomp on any architecture)"),
    ))
}

/// Adds one rule; returns whether it was added (false: the syscall exists on none of the
/// filter's architectures, so there is nothing to filter).
struct Rule<'a> {
    action: ScmpAction,
    syscall: ScmpSyscall,
    conditions: &'a [ScmpArgCompare],
    /// One rule per condition (OR) because an argument is compared more than once.
    separate: bool,
}

fn add_rule(
    ctx: &mut ScmpFilterContext,
    rule: &Rule<'_>,
    arches: &[ScmpArch],
    name: &str,
    field: &str,
) -> Result<bool, Error> {
    let result = if rule.separate {
        rule.conditions.iter().try_for_each(|c| {
            ctx.add_rule_conditional(rule.action, rule.syscall, std::slice::from_ref(c))
                .map(|_| ())
        })
    } else {
        ctx.add_rule_conditional(rule.action, rule.syscall, rule.conditions)
            .map(|_| ())
    };
    match result {
        Ok(()) => Ok(true),
        Err(_) if !exists_on_any(name, arches) => {
            tracing::debug!(
                name,
                "syscall does not exist on the filter's architectures; skipped"
            );
            Ok(false)
        }
        Err(e) => Err(Error::seccomp(format!("{field} \"{name}\""), e)),
    }
}

fn exists_on_any(name: &str, arches: &[ScmpArch]) -> bool {
    arches.iter().any(|&a| {
        ScmpSyscall::from_name_by_arch(name, a)
            .map(|s| i32::from(s) >= 0)
            .unwrap_or(false)
    })
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, Error> {
    // libseccomp 2.5 can only export to an fd; a memfd keeps it off the filesystem.
    let fd = rustix::fs::memfd_create("berth-seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::io("memfd_create for BPF export", e.into()))?;
    ctx.export_bpf(fd.as_fd())
        .map_err(|e| Error::seccomp("exporting BPF", e))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::io("reading exported BPF", e))?;
    Ok(bytes)
}

/// runc's rule: a permissive default needs no stub, and neither does a default that already
/// answers ENOSYS.
fn needs_enosys_stub(default: ScmpAction) -> bool {
    !matches!(default, ScmpAction::Allow | ScmpAction::Log)
        && default != ScmpAction::Errno(libc::ENOSYS)
}

/// Per filter architecture, the highest syscall number any rule of the profile mentions
/// (whatever its action: a mentioned syscall is one the profile author knew about).
fn highest_syscalls(seccomp: &LinuxSeccomp, arches: &[ScmpArch]) -> Vec<ArchMax> {
    arches
        .iter()
        .filter_map(|&arch| {
            let max = seccomp
                .syscalls()
                .iter()
                .flatten()
                .flat_map(|r| r.names())
                .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
                .map(i32::from)
                .filter(|&nr| nr >= 0)
                .max()?;
            Some(ArchMax {
                arch,
                // Checked non-negative above.
                max_nr: max as u32,
            })
        })
        .collect()
}

fn install_flags(seccomp: &LinuxSeccomp, uses_notify: bool) -> u32 {
    let mut out = if uses_notify { flags::NEW_LISTENER } else { 0 };
    for flag in seccomp.flags().iter().flatten() {
        out |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags::LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags::SPEC_ALLOW,
            // TSYNC and NEW_LISTENER are exclusive unless failures are reported as ESRCH.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync if uses_notify => {
                flags::TSYNC | flags::TSYNC_ESRCH
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flags::TSYNC,
            // The kernel rejects WAIT_KILLABLE_RECV without a listener (EINVAL).
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if uses_notify => {
                flags::WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                tracing::debug!(
                    "WAIT_KILLABLE_RECV ignored: the profile has no SCMP_ACT_NOTIFY rule"
                );
                0
            }
        };
    }
    out
}
