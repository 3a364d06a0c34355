//! kill -9 of berthd while containers run, then a new berthd on the same state: the containers
//! kept running under their monitors and every verb works on them again.

mod common;

use common::{finish, read_until, wait_for, Daemon, OutputExt};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn kill9_daemon_then_restart() {
    let d = Daemon::start();
    let gate = d.run_d(&[
        "--name",
        "gate",
        "busybox",
        "sh",
        "-c",
        "echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after; exit 4",
    ]);
    d.docker(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"])
        .ok();
    // This one exits while no daemon is watching: its exit must not be lost.
    d.docker(&[
        "run",
        "-d",
        "-i",
        "--name",
        "quitter",
        "busybox",
        "sh",
        "-c",
        "read x; exit 3",
    ])
    .ok();
    wait_for("gate's first line", LONG, || {
        d.docker(&["logs", "gate"])
            .out()
            .contains("before")
            .then_some(())
    });
    let pid_before = d.inspect("gate", "{{.State.Pid}}");

    d.kill9();
    // The container process lives on without the daemon.
    let pid: u32 = pid_before.parse().expect("pid");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "gate died with berthd"
    );
    // quitter dies now, killed from the host (its stdin is its monitor's pipe).
    let qpid = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| c == b"sh\0-c\0read x; exit 3\0")
                .unwrap_or(false)
        });
    if let Some(q) = qpid.and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(q, rustix::process::Signal::KILL);
    }

    d.spawn();
    let ps = d.docker(&["ps", "--format", "{{.Names}} {{.Status}}"]).ok();
    assert!(ps.lines().any(|l| l.starts_with("gate Up")), "{ps}");
    assert!(ps.lines().any(|l| l.starts_with("sleeper Up")), "{ps}");
    assert_eq!(d.inspect("gate", "{{.State.Pid}}"), pid_before);
    if qpid.is_some() {
        wait_for("quitter to be seen exited", LONG, || {
            (d.status("quitter") == "exited").then_some(())
        });
        assert_eq!(d.inspect("quitter", "{{.State.ExitCode}}"), "137");
    }

    let mut follow = d.docker_spawn(&["logs", "-f", "gate"]);
    read_until(&mut follow, "before", LONG);
    assert_eq!(
        d.docker(&["exec", "gate", "echo", "exec works"]).ok(),
        "exec works"
    );
    let waiter = d.docker_spawn(&["wait", "gate"]);
    d.docker(&["exec", "gate", "touch", "/tmp/go"]).ok();
    let out = finish(follow, "logs -f after a daemon restart", LONG);
    assert!(out.status.success(), "{}", out.err());
    let w = finish(waiter, "docker wait after a daemon restart", LONG);
    assert_eq!(w.ok(), "4");
    assert_eq!(d.docker(&["logs", &gate]).ok(), "before\nafter");

    d.docker(&["stop", "-t", "1", "sleeper"]).ok();
    assert_eq!(d.status("sleeper"), "exited");
    d.docker(&["rm", "sleeper", "gate"]).ok();
}

#[test]
fn graceful_restart_keeps_containers_and_names() {
    let d = Daemon::start();
    d.docker(&[
        "run", "-d", "--name", "keep", "--label", "a=b", "busybox", "sleep", "1000",
    ])
    .ok();
    d.docker(&["create", "--name", "created", "busybox", "true"])
        .ok();
    d.stop();
    d.spawn();
    assert_eq!(d.status("keep"), "running");
    assert_eq!(d.status("created"), "created");
    assert_eq!(d.inspect("keep", "{{index .Config.Labels \"a\"}}"), "b");
    let imgs = d
        .docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert_eq!(imgs, "busybox:latest");
    d.docker(&["start", "-a", "created"]).ok();
    assert_eq!(d.status("created"), "exited");
    let o = d.docker(&["run", "--name", "keep", "busybox", "true"]);
    assert_eq!(o.code(), 125, "name reservation lost over the restart");
}

#[test]
fn sigterm_exits_while_containers_run() {
    let d = Daemon::start();
    d.run_d(&["busybox", "sleep", "1000"]);
    assert!(d.stop(), "berthd did not exit within 30 s of SIGTERM");
    d.spawn();
}

/// A removal gives its answer once the container is gone from the daemon's state; its files
/// (record, writable layer, run directory) follow in the background. Whatever a daemon that
/// was stopped half-way left behind, the next one takes away.
#[test]
fn removed_containers_leave_no_files() {
    let d = Daemon::start();
    let data = d.root().join("data");
    let gone = |id: &str| {
        let paths = [
            data.join("containers").join(id),
            data.join("containers").join(format!(".removed-{id}")),
            data.join("snapshots").join(format!("rw-{id}")),
            d.root().join("e").join("c").join(id),
        ];
        wait_for("a removed container's files to go", LONG, || {
            paths.iter().all(|p| !p.exists()).then_some(())
        });
    };
    let rm_id = d.docker(&["create", "--rm", "busybox", "true"]).ok();
    d.docker(&["start", "-a", &rm_id]).ok();
    gone(&rm_id);
    let id = d.run_d(&["busybox", "true"]);
    d.wait_status(&id, "exited");
    d.docker(&["rm", &id]).ok();
    gone(&id);

    // What an unfinished removal leaves: a record set aside, a writable layer and a run
    // directory of a container the daemon no longer knows.
    d.stop();
    let ghost = "0123456789abcdef".repeat(4);
    let leftovers = [
        data.join("containers").join(format!(".removed-{ghost}")),
        data.join("snapshots")
            .join(format!("rw-{ghost}"))
            .join("fs"),
        d.root().join("e").join("c").join(&ghost).join("rootfs"),
    ];
    for p in &leftovers {
        std::fs::create_dir_all(p).expect("leftover dir");
        std::fs::write(p.join("file"), b"x").ok();
    }
    // The rootfs mount point must be empty to go.
    std::fs::remove_file(leftovers[2].join("file")).expect("empty rootfs");
    d.spawn();
    gone(&ghost);
    // A live container keeps everything.
    let live = d.run_d(&["busybox", "sleep", "1000"]);
    assert!(data.join("containers").join(&live).exists());
    assert!(data.join("snapshots").join(format!("rw-{live}")).exists());
    d.docker(&["rm", "-f", &live]).ok();
}
