//! The real docker CLI (/usr/local/bin/docker, API 1.50) against a private berthd: what a user
//! types and what they see.

mod common;

use common::{finish, read_until, wait_for, Daemon, OutputExt};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn version_and_info() {
    let d = Daemon::start_bare();
    let v = d
        .docker(&[
            "version",
            "--format",
            "{{.Server.Version}}|{{.Server.APIVersion}}|{{.Server.MinAPIVersion}}",
        ])
        .ok();
    let parts: Vec<&str> = v.split('|').collect();
    assert_eq!(parts.len(), 3, "{v}");
    assert!(!parts[0].is_empty(), "empty Server Version: {v}");
    assert_eq!(parts[1], "1.50");
    let info = d
        .docker(&[
            "info",
            "--format",
            "{{.ServerVersion}}|{{.OperatingSystem}}|{{.Containers}}",
        ])
        .ok();
    assert!(info.starts_with(&format!("{}|", parts[0])), "{info}");
    assert!(info.ends_with("|0"), "fresh daemon has containers: {info}");
    let plain = d.docker(&["info"]).ok();
    assert!(plain.contains("Server Version"), "{plain}");
}

/// daemon.json `runtimes` with `runtimeArgs`: `docker info` lists them, and they reach the
/// runtime as global options (here `--debug`, which fills the runtime's log).
#[test]
fn daemon_json_runtime_args_reach_the_runtime() {
    let runtime = common::bin("berth-runtime");
    let d = Daemon::start_with_config(Some(serde_json::json!({
        "runtimes": { "dbg": { "path": runtime, "runtimeArgs": ["--debug"] } }
    })));
    let rts = d
        .docker(&["info", "--format", "{{json .Runtimes.dbg}}"])
        .ok();
    let rts: serde_json::Value = serde_json::from_str(rts.trim()).expect("json");
    assert_eq!(rts["runtimeArgs"], serde_json::json!(["--debug"]), "{rts}");
    let id = d
        .docker(&["run", "-d", "--runtime", "dbg", "busybox", "true"])
        .ok()
        .trim()
        .to_string();
    d.docker(&["wait", &id]).ok();
    let log = std::fs::read_to_string(d.root().join("e/c").join(&id).join("runtime.log"))
        .expect("runtime.log");
    assert!(log.contains(r#""level":"debug""#), "{log}");
    d.docker(&["rm", &id]).ok();
}

#[test]
fn load_and_images() {
    let d = Daemon::start_bare();
    let tar = common::anchor_images().join("busybox-docker.tar");
    let out = d.docker(&["load", "-i", tar.to_str().expect("utf-8")]).ok();
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    let list = d
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok();
    assert!(list.starts_with("busybox:latest "), "{list}");
    let table = d.docker(&["images"]).ok();
    let header = table.lines().next().unwrap_or_default();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{table}");
    }
    let id = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok();
    assert!(id.starts_with("sha256:"), "{id}");

    // Loading again over a tag that moved to another image says so, as dockerd does.
    d.docker(&[
        "run",
        "--name",
        "mk",
        "--network",
        "none",
        "busybox",
        "true",
    ])
    .ok();
    let other = d.docker(&["commit", "mk", "busybox:latest"]).ok();
    let again = d.docker(&["load", "-i", tar.to_str().expect("utf-8")]).ok();
    assert_eq!(
        again,
        format!(
            "The image busybox:latest already exists, renaming the old one with ID {other} to empty string\nLoaded image: busybox:latest"
        )
    );
}

#[test]
fn run_rm_exit_codes_and_output() {
    let d = Daemon::start();
    let o = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.code(), 3, "{}", o.err());
    let o = d.docker(&["run", "--rm", "busybox", "true"]);
    assert_eq!(o.code(), 0, "{}", o.err());
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(o.out(), "out\n");
    assert_eq!(o.err(), "err\n");
    // A command that cannot start: 127 and the start's error, once, as with dockerd.
    let o = d.docker(&["run", "--rm", "--network", "none", "busybox", "/no/such"]);
    assert_eq!(o.code(), 127, "{}", o.err());
    assert!(o.err().contains("/no/such"), "{}", o.err());
    assert!(!o.err().contains("Error waiting"), "{}", o.err());
    assert_eq!(d.docker(&["ps", "-aq"]).ok(), "", "--rm left containers");
}

#[test]
fn run_d_logs_tail_timestamps() {
    let d = Daemon::start();
    let id = d.run_d(&["busybox", "sh", "-c", "echo one; echo two; echo three >&2"]);
    assert_eq!(d.docker(&["wait", &id]).ok(), "0");
    let o = d.docker(&["logs", &id]);
    assert_eq!(o.out(), "one\ntwo\n");
    assert_eq!(o.err(), "three\n");
    let o = d.docker(&["logs", "--tail", "1", &id]);
    assert_eq!(
        o.out() + &o.err(),
        "three\n",
        "tail 1 is the last line of both streams"
    );
    let ts = d.docker(&["logs", "--timestamps", &id]).ok();
    for line in ts.lines() {
        let (stamp, _) = line.split_once(' ').expect("timestamp then text");
        // RFC 3339 with nanoseconds, e.g. 2026-11-29T08:31:35.123456789Z
        assert!(
            stamp.len() >= 20
                && stamp.as_bytes()[4] == b'-'
                && stamp.contains('T')
                && stamp.ends_with('Z'),
            "{line}"
        );
    }
}

/// `--details` puts the attributes the log options name before each line, as dockerd does:
/// sorted, query-escaped, an empty set leaving just the space.
#[test]
fn logs_details_show_the_log_option_attributes() {
    let d = Daemon::start();
    let id = d.run_d(&[
        "--network",
        "none",
        "--label",
        "team=core",
        "--log-opt",
        "labels=team,absent",
        "--log-opt",
        "env=FOO,BAR",
        "--log-opt",
        "env-regex=^Z",
        "-e",
        "FOO=a b&c",
        "-e",
        "ZED=1",
        "busybox",
        "echo",
        "hi",
    ]);
    assert_eq!(d.docker(&["wait", &id]).ok(), "0");
    let o = d.docker(&["logs", "--details", &id]);
    assert_eq!(o.out(), "FOO=a+b%26c,ZED=1,team=core hi\n");
    let plain = d.run_d(&["--network", "none", "busybox", "echo", "hi"]);
    assert_eq!(d.docker(&["wait", &plain]).ok(), "0");
    assert_eq!(d.docker(&["logs", "--details", &plain]).out(), " hi\n");
}

#[test]
fn logs_follow_ends_when_container_exits() {
    let d = Daemon::start();
    let id = d.run_d(&[
        "busybox",
        "sh",
        "-c",
        "echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo last",
    ]);
    let mut follow = d.docker_spawn(&["logs", "-f", &id]);
    let seen = read_until(&mut follow, "first", LONG);
    assert!(seen.starts_with("first"), "{seen}");
    d.docker(&["exec", &id, "touch", "/tmp/go"]).ok();
    let out = finish(follow, "docker logs -f", LONG);
    assert!(out.status.success(), "{}", out.err());
    assert_eq!(d.docker(&["logs", &id]).ok(), "first\nlast");
}

#[test]
fn exec_exit_codes_stdin_and_missing_command() {
    let d = Daemon::start();
    let id = d.run_d(&["busybox", "sleep", "1000"]);
    let o = d.docker(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(o.code(), 7, "{}", o.err());
    let o = d.docker(&["exec", &id, "hostname"]);
    assert_eq!(o.ok(), &id[..12]);
    let o = d.docker_stdin(
        &["exec", "-i", &id, "sh", "-c", "cat; echo done"],
        b"from stdin\n",
    );
    assert_eq!(o.ok(), "from stdin\ndone");
    let o = d.docker(&["exec", &id, "no-such-command"]);
    // dockerd 20.10 answers 126 here, the CLI's own mapping 127: either is Docker.
    assert!(matches!(o.code(), 126 | 127), "{} {}", o.code(), o.err());
    // dockerd writes a failed exec's error into the hijacked stream (stdout), not the HTTP
    // status, so the CLI shows it on stdout.
    let msg = o.out() + &o.err();
    assert!(
        msg.contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "message: {msg}"
    );
    let o = d.docker(&["exec", &id, "/etc"]);
    assert_eq!(o.code(), 126, "{}", o.err());
    let o = d.docker(&["exec", "-u", "nouser", &id, "id"]);
    assert_eq!(o.code(), 126, "{}", o.err());
    let msg = o.out() + &o.err();
    assert!(msg.contains("unable to find user nouser"), "{msg}");
    // The container's hostname is in an exec's environment, as in its own.
    let o = d.docker(&["exec", &id, "sh", "-c", "echo $HOSTNAME"]);
    assert_eq!(o.ok(), &id[..12]);
}

#[test]
fn stop_then_rm() {
    let d = Daemon::start();
    d.docker(&["run", "-d", "--name", "s1", "busybox", "sleep", "1000"])
        .ok();
    assert_eq!(d.status("s1"), "running");
    assert_eq!(d.docker(&["stop", "-t", "1", "s1"]).ok(), "s1");
    assert_eq!(d.status("s1"), "exited");
    assert_eq!(d.inspect("s1", "{{.State.ExitCode}}"), "137");
    assert_eq!(d.docker(&["rm", "s1"]).ok(), "s1");
    let o = d.docker(&["inspect", "s1"]);
    assert_eq!(o.code(), 1);
    assert!(
        o.err().contains("No such object: s1") || o.err().contains("No such container"),
        "{}",
        o.err()
    );
}

#[test]
fn run_it_under_a_pty() {
    let d = Daemon::start();
    let o = d.sh("script -qec \"docker run -it --rm busybox sh -c 'tty; exit 4'\" /dev/null");
    let out = o.out();
    assert!(out.contains("/dev/pts/0"), "{out} {}", o.err());
    assert_eq!(o.code(), 4, "{out}");
}

#[test]
fn attach_to_running_container() {
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "-i",
        "--name",
        "a1",
        "busybox",
        "sh",
        "-c",
        "echo ready; read l; echo got $l; exit 2",
    ])
    .ok();
    let o = d.docker_stdin(&["attach", "a1"], b"hello\n");
    assert_eq!(o.out(), "got hello\n", "{}", o.err());
    assert_eq!(o.code(), 2);
    assert_eq!(d.docker(&["logs", "a1"]).ok(), "ready\ngot hello");
}

#[test]
fn ps_and_filters() {
    let d = Daemon::start();
    let up = d.run_d(&[
        "--name", "up1", "--label", "k=v", "busybox", "sleep", "1000",
    ]);
    d.docker(&["run", "--name", "done1", "busybox", "sh", "-c", "exit 0"])
        .ok();
    // Arguments with a space are quoted in the list, as dockerd does.
    let cmd = d.docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        "name=done1",
        "--format",
        "{{.Command}}",
    ]);
    assert_eq!(cmd.ok(), "\"sh -c 'exit 0'\"");
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = d.docker(&a).ok().lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), ["up1"]);
    assert_eq!(names(&["-a"]), ["done1", "up1"]);
    assert_eq!(d.docker(&["ps", "-q"]).ok(), up[..12]);
    assert_eq!(names(&["-a", "--filter", "status=exited"]), ["done1"]);
    assert_eq!(names(&["-a", "--filter", "name=done"]), ["done1"]);
    assert_eq!(names(&["-a", "--filter", "label=k=v"]), ["up1"]);
    assert_eq!(
        names(&["-a", "--filter", "ancestor=busybox"]),
        ["done1", "up1"]
    );
    let table = d.docker(&["ps", "-a"]).ok();
    let header = table.lines().next().unwrap_or_default();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{table}");
    }
    assert!(table.contains("Exited (0)"), "{table}");
    assert!(table.contains("Up "), "{table}");
}

#[test]
fn rename_pause_unpause_restart() {
    let d = Daemon::start();
    d.run_d(&["--name", "old", "busybox", "sleep", "1000"]);
    d.docker(&["rename", "old", "new"]).ok();
    assert_eq!(d.inspect("new", "{{.Name}}"), "/new");
    assert!(!d.docker(&["inspect", "old"]).status.success());

    d.docker(&["pause", "new"]).ok();
    assert_eq!(d.status("new"), "paused");
    d.docker(&["unpause", "new"]).ok();
    assert_eq!(d.status("new"), "running");

    let pid1 = d.inspect("new", "{{.State.Pid}}");
    d.docker(&["restart", "-t", "1", "new"]).ok();
    assert_eq!(d.status("new"), "running");
    let pid2 = d.inspect("new", "{{.State.Pid}}");
    assert_ne!(pid1, pid2, "restart kept the same process");

    // A paused container stops (and is killed) without waiting for an unpause.
    d.docker(&["pause", "new"]).ok();
    d.docker(&["stop", "-t", "1", "new"]).ok();
    let state = "{{.State.Status}} {{.State.Paused}} {{.State.ExitCode}}";
    assert_eq!(d.inspect("new", state), "exited false 137");
    d.docker(&["start", "new"]).ok();
    d.docker(&["pause", "new"]).ok();
    d.docker(&["kill", "new"]).ok();
    assert_eq!(d.docker(&["wait", "new"]).ok(), "137");
    assert_eq!(d.inspect("new", state), "exited false 137");
}

#[test]
fn wait_and_kill_with_signal() {
    let d = Daemon::start();
    let id = d.run_d(&["busybox", "sh", "-c", "sleep 0.5; exit 5"]);
    assert_eq!(d.docker(&["wait", &id]).ok(), "5");

    let id = d.run_d(&[
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' USR1; echo armed; while true; do sleep 0.1; done",
    ]);
    wait_for("the trap to be set", LONG, || {
        d.docker(&["logs", &id])
            .out()
            .contains("armed")
            .then_some(())
    });
    d.docker(&["kill", "-s", "USR1", &id]).ok();
    assert_eq!(d.docker(&["wait", &id]).ok(), "9");

    let id = d.run_d(&["busybox", "sleep", "1000"]);
    d.docker(&["kill", &id]).ok();
    assert_eq!(d.docker(&["wait", &id]).ok(), "137");
    // A bad signal is named as such, even for a stopped container.
    let o = d.docker(&["kill", "-s", "BOGUS", &id]);
    assert!(o.err().contains("Invalid signal: BOGUS"), "{}", o.err());
}

#[test]
fn restart_always_until_stopped() {
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "ra",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo run; sleep 0.3; exit 1",
    ])
    .ok();
    wait_for("two restarts", LONG, || {
        let n: u32 = d.inspect("ra", "{{.RestartCount}}").parse().unwrap_or(0);
        (n >= 2).then_some(())
    });
    assert!(d.docker(&["logs", "ra"]).ok().matches("run").count() >= 2);
    d.docker(&["stop", "-t", "1", "ra"]).ok();
    assert_eq!(d.status("ra"), "exited");
    let count = d.inspect("ra", "{{.RestartCount}}");
    let runs = d.docker(&["logs", "ra"]).ok();
    // A stopped always-container must stay down: give a restart loop time to show itself.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.status("ra"), "exited");
    assert_eq!(d.inspect("ra", "{{.RestartCount}}"), count);
    assert_eq!(
        d.docker(&["logs", "ra"]).ok(),
        runs,
        "it ran again after stop"
    );
}

#[test]
fn restart_always_shows_restarting_during_back_off() {
    let d = Daemon::start();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "rb",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ])
    .ok();
    // The back-off doubles with each quick exit, so the restarting state lasts longer and
    // longer: polling sees it.
    wait_for("status restarting", LONG, || {
        (d.status("rb") == "restarting").then_some(())
    });
    assert_eq!(d.inspect("rb", "{{.State.Restarting}}"), "true");
    d.docker(&["rm", "-f", "rb"]).ok();
}

#[test]
fn run_rm_frees_the_name() {
    let d = Daemon::start();
    for _ in 0..2 {
        let o = d.docker(&["run", "--rm", "--name", "same", "busybox", "echo", "hi"]);
        assert_eq!(o.ok(), "hi");
    }
    let o = d.docker(&["run", "-d", "--name", "same", "busybox", "sleep", "1000"]);
    o.ok();
    let o = d.docker(&["run", "-d", "--name", "same", "busybox", "true"]);
    assert_eq!(o.code(), 125);
    assert!(o.err().contains("is already in use"), "{}", o.err());
}

#[test]
fn env_workdir_user() {
    let d = Daemon::start();
    let envfile = d.root().join("env.list");
    std::fs::write(&envfile, "FROMFILE=yes\n# comment\nSPACED=a b\n").expect("env file");
    let o = d.docker(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        envfile.to_str().expect("utf-8"),
        "busybox",
        "sh",
        "-c",
        "echo $A $FROMFILE $SPACED; echo $PATH",
    ]);
    assert_eq!(
        o.ok(),
        "1 yes a b\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    let o = d.docker(&["run", "--rm", "-w", "/tmp", "busybox", "pwd"]);
    assert_eq!(o.ok(), "/tmp");
    let o = d.docker(&["run", "--rm", "-u", "1000:1000", "busybox", "touch", "/x"]);
    assert_ne!(o.code(), 0);
    assert!(o.err().contains("Permission denied"), "{}", o.err());
}

#[test]
fn user_gets_its_groups() {
    let d = Daemon::start();
    let o = d.docker(&["run", "--rm", "-u", "1000:1000", "busybox", "id"]);
    assert_eq!(o.ok(), "uid=1000(user) gid=1000(user) groups=1000(user)");
    let o = d.docker(&["run", "--rm", "-u", "1000", "busybox", "id"]);
    assert_eq!(o.ok(), "uid=1000(user) gid=1000(user) groups=1000(user)");
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "^Groups:",
        "/proc/self/status",
    ]);
    assert_eq!(
        o.ok().split_whitespace().collect::<Vec<_>>(),
        ["Groups:", "0"]
    );
}

#[test]
fn workdir_is_created() {
    let d = Daemon::start();
    let c = d.docker_spawn(&[
        "run",
        "--rm",
        "-w",
        "/some/dir",
        "-u",
        "1000",
        "busybox",
        "sh",
        "-c",
        "pwd; ls -ld /some/dir",
    ]);
    let o = finish(c, "docker run -w /some/dir", LONG);
    // dockerd creates it owned by root, mode 0755, whatever the user.
    let out = o.ok();
    assert!(out.starts_with("/some/dir\ndrwxr-xr-x"), "{out}");
    assert!(out.contains(" root     root "), "{out}");
}

#[test]
fn read_only_rootfs() {
    let d = Daemon::start();
    let o = d.docker(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_eq!(o.code(), 1);
    assert!(o.err().contains("Read-only file system"), "{}", o.err());
    let o = d.docker(&["run", "--rm", "busybox", "touch", "/x"]);
    assert_eq!(o.code(), 0, "{}", o.err());
}

fn cap_eff(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["busybox", "grep", "CapEff", "/proc/self/status"]);
    let line = d.docker(&a).ok();
    line.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn capabilities_and_privileged() {
    let d = Daemon::start();
    // Docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    assert_eq!(cap_eff(&d, &[]), "00000000a80425fb");
    assert_eq!(cap_eff(&d, &["--cap-drop", "ALL"]), "0000000000000000");
    assert_eq!(
        cap_eff(&d, &["--cap-drop", "ALL", "--cap-add", "CHOWN"]),
        "0000000000000001"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "chown",
        "1000",
        "/tmp",
    ]);
    assert!(o.err().contains("Operation not permitted"), "{}", o.err());
    let o = d.docker(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "busybox",
        "chown",
        "1000",
        "/tmp",
    ]);
    assert_eq!(o.code(), 0, "{}", o.err());
}

#[test]
fn privileged_gets_the_daemons_capabilities_and_devices() {
    let d = Daemon::start();
    // Privileged means every capability the daemon itself may hold.
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("CapBnd")
        .trim()
        .to_string();
    let c = d.docker_spawn(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "grep CapEff /proc/self/status; ls /dev/loop-control",
    ]);
    let o = finish(c, "docker run --privileged", LONG);
    let out = o.ok();
    assert!(out.contains(&bnd), "{out} (want {bnd})");
    assert!(out.ends_with("/dev/loop-control"), "{out}");
}

fn status_field(d: &Daemon, args: &[&str], field: &str) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    let pat = format!("^{field}:");
    a.extend_from_slice(&["busybox", "grep", &pat, "/proc/self/status"]);
    let line = d.docker(&a).ok();
    line.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn no_new_privileges_and_seccomp() {
    let d = Daemon::start();
    assert_eq!(status_field(&d, &[], "NoNewPrivs"), "0");
    assert_eq!(
        status_field(&d, &["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );
    assert_eq!(status_field(&d, &[], "Seccomp"), "2");
    assert_eq!(
        status_field(&d, &["--security-opt", "seccomp=unconfined"], "Seccomp"),
        "0"
    );
    // The default profile refuses what Docker's refuses.
    let o = d.docker(&["run", "--rm", "busybox", "unshare", "-U", "true"]);
    assert_ne!(o.code(), 0, "unshare -U allowed by the default profile");
}

#[test]
fn cgroup_limits_memory_pids_cpu() {
    let d = Daemon::start();
    let o = d.docker(&[
        "run",
        "--rm",
        "-m",
        "64m",
        "busybox",
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert_eq!(o.ok(), "67108864");
    let o = d.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "20",
        "busybox",
        "cat",
        "/sys/fs/cgroup/pids/pids.max",
    ]);
    assert_eq!(o.ok(), "20");
    let o = d.docker(&[
        "run",
        "--rm",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
    ]);
    assert_eq!(o.ok(), "50000\n100000");
    // Seen from the host, in the container's own cgroup.
    let id = d.run_d(&["-m", "32m", "busybox", "sleep", "1000"]);
    let host = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"
    ))
    .expect("the container's memory cgroup");
    assert_eq!(host.trim(), "33554432");
    assert_eq!(d.inspect(&id, "{{.HostConfig.Memory}}"), "33554432");
    // The limit is enforced: a 200 MB string gets the container OOM-killed.
    let o = d.docker(&[
        "run",
        "--rm",
        "-m",
        "64m",
        "--memory-swap",
        "64m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(o.code(), 137, "{} {}", o.out(), o.err());
}

#[test]
fn init_is_pid_1() {
    assert!(
        std::path::Path::new("/usr/bin/docker-init").exists()
            || std::path::Path::new("/usr/bin/tini").exists(),
        "docker-init missing: apt-get install tini"
    );
    let d = Daemon::start();
    let o = d.docker(&["run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline"]);
    let cmdline = o.ok().replace('\0', " ");
    assert!(cmdline.contains("docker-init"), "{cmdline}");
    let o = d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 6"]);
    assert_eq!(o.code(), 6, "exit code through docker-init");
}

#[test]
fn network_none_and_host() {
    let d = Daemon::start();
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    let links = o.ok();
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(": lo:"), "{links}");
    let host_links = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>();
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    let seen = o
        .ok()
        .split_whitespace()
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>();
    // Interfaces may come and go (other tests' veths): the host's non-veth ones must be there.
    for l in host_links.iter().filter(|l| !l.starts_with("veth")) {
        assert!(
            seen.contains(l) || !std::path::Path::new("/sys/class/net").join(l).exists(),
            "{l} not in {seen:?}"
        );
    }
}

#[test]
fn bind_mounts_rw_and_ro() {
    let d = Daemon::start();
    let host = d.root().join("hostdir");
    std::fs::create_dir(&host).expect("hostdir");
    std::fs::write(host.join("in"), "from host\n").expect("file");
    let v = format!("{}:/data", host.display());
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        &v,
        "busybox",
        "sh",
        "-c",
        "cat /data/in; echo from container > /data/out",
    ]);
    assert_eq!(o.ok(), "from host");
    assert_eq!(
        std::fs::read_to_string(host.join("out")).expect("written by container"),
        "from container\n"
    );
    let v = format!("{}:/data:ro", host.display());
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        &v,
        "busybox",
        "sh",
        "-c",
        "cat /data/in; touch /data/x",
    ]);
    assert_eq!(o.out(), "from host\n");
    assert!(o.err().contains("Read-only file system"), "{}", o.err());
    assert!(!host.join("x").exists());
}

#[test]
fn named_volume_shared_by_two_containers() {
    let d = Daemon::start();
    let writer = d.run_d(&[
        "-v",
        "vol1:/data",
        "busybox",
        "sh",
        "-c",
        "echo shared > /data/f; sleep 1000",
    ]);
    let o = wait_for("the reader to see the writer's file", LONG, || {
        let o = d.docker(&[
            "run",
            "--rm",
            "-v",
            "vol1:/data",
            "busybox",
            "cat",
            "/data/f",
        ]);
        o.status.success().then_some(o)
    });
    assert_eq!(o.ok(), "shared");
    let vols = d
        .docker(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .ok();
    assert_eq!(vols, "vol1 local");
    let o = d.docker(&["volume", "rm", "vol1"]);
    assert_ne!(o.code(), 0, "a volume in use was removed");
    d.docker(&["rm", "-f", &writer]).ok();
    d.docker(&["volume", "rm", "vol1"]).ok();
}

#[test]
fn fresh_volume_gets_the_image_content_unless_nocopy() {
    let d = Daemon::start();
    // The image's /bin over a new named volume, an anonymous one, and --mount.
    let o = d.docker(&["run", "--rm", "-v", "bins:/bin", "busybox", "ls", "/bin/sh"]);
    assert_eq!(o.ok(), "/bin/sh");
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "bins:/data",
        "busybox",
        "ls",
        "/data/sh",
    ]);
    assert_eq!(o.ok(), "/data/sh", "the volume keeps what was copied in");
    let o = d.docker(&["run", "--rm", "-v", "/etc", "busybox", "cat", "/etc/group"]);
    assert!(o.ok().starts_with("root:"));
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=etcs,target=/etc",
        "busybox",
        "test",
        "-s",
        "/etc/passwd",
    ]);
    o.ok();
    // nocopy: the volume stays empty, in both spellings.
    for mount in [
        ["-v", "empty1:/usr:nocopy"],
        [
            "--mount",
            "type=volume,source=empty2,target=/usr,volume-nocopy",
        ],
    ] {
        let o = d.docker(&[
            "run", "--rm", mount[0], mount[1], "busybox", "ls", "-A", "/usr",
        ]);
        assert_eq!(o.ok(), "", "{mount:?}");
    }
    d.docker(&["volume", "rm", "bins", "etcs", "empty1", "empty2"])
        .ok();
}

#[test]
fn health_checks_turn_unhealthy_and_healthy() {
    let d = Daemon::start();
    d.run_d(&[
        "--name",
        "hc",
        "--health-cmd",
        "echo probing; test -f /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "1000",
    ]);
    let health = || d.inspect("hc", "{{.State.Health.Status}}");
    wait_for("the probe to fail twice", LONG, || {
        (health() == "unhealthy").then_some(())
    });
    let ps = d.docker(&[
        "ps",
        "--filter",
        "health=unhealthy",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    let ps = ps.ok();
    assert!(
        ps.starts_with("hc Up ") && ps.ends_with("(unhealthy)"),
        "{ps}"
    );
    let log = d.inspect(
        "hc",
        "{{(index .State.Health.Log 0).ExitCode}} {{(index .State.Health.Log 0).Output}}",
    );
    assert_eq!(log, "1 probing");
    d.docker(&["exec", "hc", "touch", "/tmp/ok"]).ok();
    wait_for("the probe to pass", LONG, || {
        (health() == "healthy").then_some(())
    });
    assert_eq!(d.inspect("hc", "{{.State.Health.FailingStreak}}"), "0");
    assert_eq!(
        d.docker(&["ps", "--filter", "health=healthy", "--format", "{{.Names}}"])
            .ok(),
        "hc"
    );
    let events = past_events(
        &d,
        &["--filter", "event=health_status", "--format", "{{.Action}}"],
    );
    assert_eq!(events, "health_status: unhealthy\nhealth_status: healthy");
    // No check, and a check turned off: no Health at all.
    d.run_d(&["--name", "plain", "busybox", "sleep", "1000"]);
    assert_eq!(
        d.docker(&["ps", "--filter", "health=none", "--format", "{{.Names}}"])
            .ok(),
        "plain"
    );
    d.docker(&["rm", "-f", "hc", "plain"]).ok();
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let d = Daemon::start();
    d.run_d(&["--name", "up", "-m", "64m", "busybox", "sleep", "1000"]);
    d.docker(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "--cpus",
        "1",
        "--pids-limit",
        "20",
        "--restart",
        "on-failure:3",
        "up",
    ])
    .ok();
    // What the container's own cgroup says (v1 here; the same files under cgroupfs).
    let o = d
        .docker(&[
            "exec",
            "up",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        ])
        .ok();
    assert_eq!(o, format!("{}\n20\n100000", 128 << 20));
    let f = "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}";
    assert_eq!(
        d.inspect("up", f),
        format!("{} 1000000000 20 on-failure", 128 << 20)
    );
    let o = d.docker(&["update", "-m", "1m", "up"]);
    assert_ne!(o.code(), 0);
    assert!(
        o.err().contains("Minimum memory limit allowed is 6MB"),
        "{}",
        o.err()
    );
    d.docker(&["rm", "-f", "up"]).ok();
}

#[test]
fn tmpfs_mount() {
    let d = Daemon::start();
    let o = d.docker(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/x",
        "busybox",
        "sh",
        "-c",
        "grep ' /x ' /proc/mounts; touch /x/ok && echo wrote",
    ]);
    let out = o.ok();
    assert!(out.starts_with("tmpfs /x tmpfs"), "{out}");
    assert!(out.ends_with("wrote"), "{out}");
}

#[test]
fn top_lists_processes() {
    let d = Daemon::start();
    let id = d.run_d(&["busybox", "sleep", "1000"]);
    let out = d.docker(&["top", &id]).ok();
    assert!(
        out.lines().next().unwrap_or_default().contains("PID"),
        "{out}"
    );
    assert!(out.contains("sleep 1000"), "{out}");
}

#[test]
fn stats_no_stream() {
    let d = Daemon::start();
    let id = d.run_d(&["--name", "st", "-m", "64m", "busybox", "sleep", "1000"]);
    let out = d
        .docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}}",
            &id,
        ])
        .ok();
    assert!(out.starts_with("st "), "{out}");
    assert!(out.contains("64MiB"), "{out}");
}

#[test]
fn export_and_diff() {
    let d = Daemon::start();
    let id = d.run_d(&[
        "busybox",
        "sh",
        "-c",
        "echo x > /added; rm /bin/vi; sleep 1000",
    ]);
    wait_for("/added", LONG, || {
        d.docker(&["exec", &id, "test", "-e", "/added"])
            .status
            .success()
            .then_some(())
    });
    let diff = d.docker(&["diff", &id]).ok();
    assert!(diff.lines().any(|l| l == "A /added"), "{diff}");
    assert!(diff.lines().any(|l| l == "D /bin/vi"), "{diff}");
    let tar = d.root().join("export.tar");
    d.docker(&["export", "-o", tar.to_str().expect("utf-8"), &id])
        .ok();
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .expect("tar");
    let names = list.out();
    assert!(names.lines().any(|l| l == "added"), "{names}");
    assert!(names.lines().any(|l| l == "bin/busybox"), "{names}");
    assert!(
        !names
            .lines()
            .any(|l| l.starts_with("proc/") && l != "proc/"),
        "/proc contents exported"
    );
}

/// The daemon's events of the last hour up to now, with `args` (filters, format).
fn past_events(d: &Daemon, args: &[&str]) -> String {
    // --until is in whole seconds: let the last event's second pass.
    std::thread::sleep(Duration::from_millis(1100));
    let mut all = vec!["events", "--since", "1h", "--until", "0s"];
    all.extend_from_slice(args);
    d.docker(&all).ok()
}

#[test]
fn stop_and_volumes_and_networks_have_dockers_events() {
    let d = Daemon::start();
    let net = format!("evn{}", std::process::id());
    d.docker(&["network", "create", &net]).ok();
    d.run_d(&[
        "--name",
        "evs",
        "--network",
        &net,
        "-v",
        "evvol:/data",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.docker(&["stop", "-t", "1", "evs"]).ok();
    let out = past_events(&d, &["--format", "{{.Type}} {{.Action}}"]);
    let seen: Vec<&str> = out.lines().collect();
    // In Docker's order, as far as each pair goes.
    let order = |a: &str, b: &str| {
        let i = seen.iter().position(|l| *l == a);
        let j = seen.iter().position(|l| *l == b);
        assert!(
            i.is_some() && j.is_some() && i < j,
            "{a} before {b}: {seen:?}"
        );
    };
    order("network connect", "container start");
    order("volume mount", "container start");
    order("container kill", "container die");
    order("container die", "network disconnect");
    order("volume unmount", "container stop");
    d.docker(&["rm", "evs"]).ok();
    d.docker(&["volume", "rm", "evvol"]).ok();
    d.docker(&["network", "rm", &net]).ok();
}

#[test]
fn events_since_until() {
    let d = Daemon::start();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    d.docker(&["run", "--rm", "--name", "ev", "busybox", "true"])
        .ok();
    d.docker(&["run", "--rm", "--name", "other", "busybox", "true"])
        .ok();
    // `until` in the future makes docker wait for it: one second ahead is enough.
    let t1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1;
    let since = t0.to_string();
    let until = t1.to_string();
    let out = d
        .docker(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "container=ev",
            "--format",
            "{{.Action}}",
        ])
        .ok();
    let actions: Vec<&str> = out.lines().collect();
    for want in ["create", "start", "die", "destroy"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    // Everything before `since` is left out.
    let out = d
        .docker(&["events", "--since", &until, "--until", &until])
        .ok();
    assert_eq!(out, "");
    let out = d
        .docker(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=die",
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
        .ok();
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(names, ["ev", "other"]);
}

#[test]
fn runtime_crun() {
    assert!(
        std::path::Path::new("/usr/bin/crun").exists(),
        "crun missing: apt-get install crun"
    );
    let d = Daemon::start();
    let o = d.docker(&["run", "--rm", "--runtime", "crun", "busybox", "echo", "ok"]);
    assert_eq!(o.ok(), "ok");
}

#[test]
fn commit_keeps_the_layer_and_the_containers_config() {
    let d = Daemon::start();
    let id = d.run_d(&[
        "-e",
        "FOO=bar",
        "busybox",
        "sh",
        "-c",
        "echo hello > /greeting; rm /etc/motd 2>/dev/null; sleep 100",
    ]);
    wait_for("the file in the container", LONG, || {
        d.docker(&["exec", &id, "cat", "/greeting"])
            .status
            .success()
            .then_some(())
    });
    let new = d
        .docker(&[
            "commit",
            "-m",
            "a message",
            "-a",
            "someone",
            "--change",
            r#"CMD ["cat", "/greeting"]"#,
            &id,
            "snap:1",
        ])
        .ok();
    assert!(new.starts_with("sha256:"), "{new}");
    assert_eq!(
        d.status(&id),
        "running",
        "commit leaves the container running"
    );
    assert_eq!(d.docker(&["run", "--rm", "snap:1"]).ok(), "hello");
    let env = d
        .docker(&["run", "--rm", "snap:1", "sh", "-c", "echo $FOO"])
        .ok();
    assert_eq!(env, "bar", "the container's Env is kept");
    let meta = d
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}|{{.Comment}}|{{.Author}}|{{len .RootFS.Layers}}",
            "snap:1",
        ])
        .ok();
    let base = d
        .docker(&[
            "image",
            "inspect",
            "-f",
            "{{len .RootFS.Layers}}",
            "busybox",
        ])
        .ok();
    let layers: usize = base.parse().expect("layer count");
    assert_eq!(
        meta,
        format!("{new}|a message|someone|{}", layers + 1),
        "one new layer on top of the image's"
    );
    // system df: the new image shares busybox's layers, which are counted once.
    let df = common::http(&d.sock(), "GET", "/v1.50/system/df", None)
        .expect("system df")
        .json();
    let size_of = |id: &str, key: &str| {
        df["Images"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["Id"] == id))
            .and_then(|i| i[key].as_i64())
            .unwrap_or_else(|| panic!("{key} of {id} in {df}"))
    };
    let bb = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok();
    assert_eq!(size_of(&new, "SharedSize"), size_of(&bb, "Size"), "{df}");
    assert_eq!(size_of(&bb, "SharedSize"), size_of(&bb, "Size"), "{df}");
    assert_eq!(
        df["LayersSize"].as_i64(),
        Some(size_of(&new, "Size")),
        "distinct layers: busybox's plus the commit's, {df}"
    );

    // Without a name the image is untagged; a bad change is refused by name.
    let untagged = d.docker(&["commit", &id]).ok();
    assert!(untagged.starts_with("sha256:"), "{untagged}");
    let bad = d.docker(&["commit", "--change", "NOPE x", &id, "snap:2"]);
    assert_ne!(bad.code(), 0);
    assert!(bad.err().contains("NOPE"), "{}", bad.err());
    d.docker(&["rm", "-f", &id]).ok();
}

#[test]
fn rmi_force_of_an_image_a_running_container_uses() {
    let d = Daemon::start();
    let id = d.run_d(&["busybox", "sleep", "100"]);
    let img = d
        .docker(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok();
    let o = d.docker(&["rmi", "-f", &img]);
    assert_ne!(o.code(), 0, "{}", o.out());
    assert!(
        o.err().contains("cannot be forced") && o.err().contains("running container"),
        "{}",
        o.err()
    );
    // By name, as Docker: the name goes, the image stays for its container.
    let o = d.docker(&["rmi", "-f", "busybox"]).ok();
    assert!(o.contains("Untagged: busybox:latest"), "{o}");
    assert_eq!(
        d.docker(&["image", "inspect", "-f", "{{.Id}}", &img]).ok(),
        img
    );
    d.docker(&["rm", "-f", &id]).ok();
}
