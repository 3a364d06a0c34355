//! Bad profiles are refused with an error naming the field, before anything is installed.

use berth_seccomp::{compile, parse_oci_seccomp, Error};

fn compile_err(json: &str) -> String {
    let profile = parse_oci_seccomp(json).expect("profile parses");
    compile(&profile)
        .expect_err("profile must be refused")
        .to_string()
}

fn parse_err(json: &str) -> String {
    match parse_oci_seccomp(json) {
        Err(e @ Error::Parse { .. }) => e.to_string(),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn unknown_syscall_on_every_arch() {
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO"},
            {"names":["foo"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(
        e.starts_with(r#"linux.seccomp.syscalls[1].names[0]: unknown syscall "foo""#),
        "{e}"
    );
}

#[test]
fn syscall_of_another_arch_is_skipped() {
    let p = parse_oci_seccomp(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["arm_fadvise64_64","s390_pci_mmio_read","exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .expect("parses");
    compile(&p).expect("names unknown on this arch are skipped");
}

#[test]
fn syscall_newer_than_libseccomp_is_skipped_not_refused() {
    let p = parse_oci_seccomp(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["mseal","listmount","exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .expect("parses");
    compile(&p).expect("real but newer syscalls are skipped");
}

#[test]
fn unknown_arch_action_operator_flag() {
    let e = parse_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_VAX"]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.architectures[1]: unknown variant"),
        "{e}"
    );

    let e = parse_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_EXPLODE"}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].action: unknown variant"),
        "{e}"
    );

    let e = parse_err(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#);
    assert!(
        e.starts_with("linux.seccomp.defaultAction: unknown variant"),
        "{e}"
    );

    let e = parse_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_ROUGHLY"}]}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].args[0].op: unknown variant"),
        "{e}"
    );

    let e = parse_err(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_FAST"]}"#);
    assert!(
        e.starts_with("linux.seccomp.flags[0]: unknown variant"),
        "{e}"
    );
}

#[test]
fn notify_refused_as_default_and_for_write() {
    let e = compile_err(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
    assert!(
        e.starts_with("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY"),
        "{e}"
    );

    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY"),
        "{e}"
    );
}

#[test]
fn notify_needs_a_listener_path() {
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(e.starts_with("linux.seccomp.listenerPath: required"), "{e}");
}

#[test]
fn errno_ret_only_where_it_means_something() {
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_KILL_PROCESS","errnoRet":1}]}"#,
    );
    assert!(e.starts_with("linux.seccomp.syscalls[0].errnoRet:"), "{e}");

    let e = compile_err(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#);
    assert!(e.starts_with("linux.seccomp.defaultErrnoRet:"), "{e}");

    let e = compile_err(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#);
    assert!(e.starts_with("linux.seccomp.defaultErrnoRet:"), "{e}");
}

#[test]
fn bad_args_and_names() {
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].args[0].index:"),
        "{e}"
    );

    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(e.starts_with("linux.seccomp.syscalls[0].names:"), "{e}");

    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[""],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(e.starts_with("linux.seccomp.syscalls[0].names[0]:"), "{e}");
}

#[test]
fn same_argument_twice_becomes_separate_rules() {
    // runc semantics: OR of the two comparisons rather than an impossible AND.
    let p = parse_oci_seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    )
    .expect("parses");
    compile(&p).expect("compiles");
}
