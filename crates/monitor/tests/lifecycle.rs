//! berth-monitor driving real containers through the real berth-runtime.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_monitor::{AttachRequest, Control, State};
use common::*;

const ALL: AttachRequest = AttachRequest {
    stdin: false,
    stdout: true,
    stderr: true,
};

fn log_entries(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("json log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect()
}

#[test]
fn output_exit_code_log_and_attach() {
    let env = Env::new();
    let id = env.id("out");
    let bundle = env.bundle(&["sh", "-c", "echo hi; echo err >&2; exit 3"], false);
    let mut cfg = env.container_config(&id, &bundle);
    let log = env.dir.path().join("out-json.log");
    cfg.log_path = Some(log.clone());
    let ready = env.spawn(&cfg).expect("monitor ready");
    let init = ready.pid.expect("init pid");
    assert!(init > 0);
    assert!(is_alive(ready.monitor_pid));

    let ctl = Control::connect(&cfg.run_dir).unwrap();
    let st = ctl.status().unwrap();
    assert_eq!(
        (st.state, st.pid, st.exit_code),
        (State::Created, init, None)
    );
    for sock in ["control.sock", "attach.sock"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(cfg.run_dir.join(sock))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{sock}");
    }

    let mut att = berth_monitor::attach(&cfg.run_dir, ALL).unwrap();
    assert_eq!(ctl.start().unwrap(), init);
    let exit = ctl.wait().unwrap();
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.signal, None);
    assert!(!exit.oom_killed);
    assert!(exit.finished_at.ends_with('Z'), "{}", exit.finished_at);

    let (out, err) = read_all_frames(&mut att);
    assert_eq!(String::from_utf8_lossy(&out), "hi\n");
    assert_eq!(String::from_utf8_lossy(&err), "err\n");

    let entries = log_entries(&log);
    let lines: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["log"].as_str().unwrap(), e["stream"].as_str().unwrap()))
        .collect();
    assert_eq!(lines.len(), 2, "{entries:?}");
    assert!(lines.contains(&("hi\n", "stdout")), "{lines:?}");
    assert!(lines.contains(&("err\n", "stderr")), "{lines:?}");
    for e in &entries {
        let t = e["time"].as_str().unwrap();
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.contains('T'),
            "{t}"
        );
    }

    // Once the monitor is gone, exit.json answers and nothing is left.
    wait_gone(ready.monitor_pid);
    assert_eq!(berth_monitor::read_exit(&cfg.run_dir), Some(exit));
    let st = berth_monitor::status_or_exit(&cfg.run_dir).unwrap();
    assert_eq!((st.state, st.exit_code), (State::Exited, Some(3)));
    assert!(!cfg.run_dir.join("control.sock").exists());
    assert!(!cfg.run_dir.join("attach.sock").exists());
    assert!(!env.runtime_ids().contains(&id), "runtime still has {id}");
    assert!(!is_alive(init));
}

/// `start_at_once` with attach clients: they connect while the runtime creates (between
/// the listening and the ready line) and still get every byte; the ready line comes once
/// the container runs.
#[test]
fn start_at_once_waits_for_its_attach_clients() {
    let env = Env::new();
    let id = env.id("once");
    let bundle = env.bundle(&["sh", "-c", "echo first; echo second >&2"], false);
    let mut cfg = env.container_config(&id, &bundle);
    cfg.start_at_once = true;
    cfg.expect_attaches = 2;
    let path = env.write_config(&cfg);
    let mut clients = Vec::new();
    let ready = berth_monitor::spawn_then(&path, Path::new(MONITOR), || {
        for _ in 0..2 {
            clients.push(berth_monitor::attach(&cfg.run_dir, ALL).expect("attach"));
        }
    })
    .expect("monitor ready");
    assert!(ready.pid.is_some_and(|p| p > 0));
    let exit = match Control::connect(&cfg.run_dir) {
        Ok(c) => c.wait().unwrap(),
        // The container may be over, and its monitor done with clients, before we connect:
        // then its exit is on record, where berthd reads it too.
        Err(_) => berth_monitor::read_exit(&cfg.run_dir).expect("exit on record"),
    };
    assert_eq!(exit.exit_code, 0);
    for mut c in clients {
        let (out, err) = read_all_frames(&mut c);
        assert_eq!(String::from_utf8_lossy(&out), "first\n");
        assert_eq!(String::from_utf8_lossy(&err), "second\n");
    }
    wait_gone(ready.monitor_pid);
}

#[test]
fn stdin_from_attach_with_stdin_once() {
    let env = Env::new();
    let id = env.id("cat");
    let bundle = env.bundle(&["cat"], false);
    let mut cfg = env.container_config(&id, &bundle);
    cfg.open_stdin = true;
    cfg.stdin_once = true;
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    let mut att =
        berth_monitor::attach(&cfg.run_dir, AttachRequest { stdin: true, ..ALL }).unwrap();
    ctl.start().unwrap();
    att.write_all(b"hello\n").unwrap();
    att.shutdown(Shutdown::Write).unwrap();
    let (out, err) = read_all_frames(&mut att);
    assert_eq!(String::from_utf8_lossy(&out), "hello\n");
    assert!(err.is_empty());
    assert_eq!(ctl.wait().unwrap().exit_code, 0);
}

#[test]
fn tty_resize_before_start() {
    let env = Env::new();
    let id = env.id("tty");
    let bundle = env.bundle(&["sh", "-c", "tty; stty size"], true);
    let mut cfg = env.container_config(&id, &bundle);
    cfg.tty = true;
    let log = env.dir.path().join("tty-json.log");
    cfg.log_path = Some(log.clone());
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    let mut att = berth_monitor::attach(&cfg.run_dir, ALL).unwrap();
    ctl.resize(30, 100).unwrap();
    ctl.start().unwrap();
    let (out, err) = read_all_frames(&mut att);
    let out = String::from_utf8_lossy(&out).replace('\r', "");
    assert_eq!(out, "/dev/pts/0\n30 100\n");
    assert!(err.is_empty(), "a tty has only stream 1");
    assert_eq!(ctl.wait().unwrap().exit_code, 0);
    let entries = log_entries(&log);
    assert!(entries.iter().all(|e| e["stream"] == "stdout"));
    let text: String = entries.iter().map(|e| e["log"].as_str().unwrap()).collect();
    assert_eq!(text.replace('\r', ""), "/dev/pts/0\n30 100\n");
}

#[test]
fn exec_into_running_container_then_kill() {
    let env = Env::new();
    let id = env.id("exec");
    let bundle = env.bundle(&["sleep", "1000"], false);
    let cfg = env.container_config(&id, &bundle);
    let ready = env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    ctl.start().unwrap();
    assert_eq!(ctl.status().unwrap().state, State::Running);

    let ecfg = env.exec_config(
        &id,
        &["sh", "-c", "echo from exec; echo oops >&2; exit 7"],
        false,
    );
    let eready = env.spawn(&ecfg).expect("exec monitor ready");
    assert_eq!(eready.pid, None);
    let ectl = Control::connect(&ecfg.run_dir).unwrap();
    assert_eq!(ectl.status().unwrap().state, State::Created);
    let mut att = berth_monitor::attach(&ecfg.run_dir, ALL).unwrap();
    let epid = ectl.start().unwrap();
    assert!(epid > 0);
    assert_eq!(ectl.wait().unwrap().exit_code, 7);
    let (out, err) = read_all_frames(&mut att);
    assert_eq!(String::from_utf8_lossy(&out), "from exec\n");
    assert_eq!(String::from_utf8_lossy(&err), "oops\n");
    wait_gone(eready.monitor_pid);
    assert_eq!(
        berth_monitor::read_exit(&ecfg.run_dir).unwrap().exit_code,
        7
    );

    // The exec left the container running; a kill through the runtime ends it.
    assert_eq!(ctl.status().unwrap().state, State::Running);
    let st = env.rt().args(["kill", &id, "KILL"]).status().unwrap();
    assert!(st.success());
    let exit = ctl.wait().unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    wait_gone(ready.monitor_pid);
}

#[test]
fn tty_exec() {
    let env = Env::new();
    let id = env.id("ttyexec");
    let bundle = env.bundle(&["sleep", "1000"], false);
    let cfg = env.container_config(&id, &bundle);
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    ctl.start().unwrap();

    let mut ecfg = env.exec_config(&id, &["sh", "-c", "stty size; read x; stty size"], true);
    ecfg.open_stdin = true;
    // The first size comes from the process spec, as Docker passes it: the
    // process may run before any resize could reach its terminal.
    let process_json = ecfg.process_json.clone().unwrap();
    let mut process: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&process_json).unwrap()).unwrap();
    process["consoleSize"] = serde_json::json!({"height": 5, "width": 40});
    std::fs::write(&process_json, process.to_string()).unwrap();
    env.spawn(&ecfg).expect("exec monitor ready");
    let ectl = Control::connect(&ecfg.run_dir).unwrap();
    let mut att =
        berth_monitor::attach(&ecfg.run_dir, AttachRequest { stdin: true, ..ALL }).unwrap();
    ectl.start().unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("5 40") {
        let (stream, data) = berth_monitor::protocol::read_frame(&mut att)
            .unwrap()
            .expect("output before EOF");
        assert_eq!(stream, 1);
        seen.extend(data);
    }
    ectl.resize(12, 34).unwrap();
    att.write_all(b"go\n").unwrap();
    let (out, err) = read_all_frames(&mut att);
    assert!(err.is_empty());
    seen.extend(out);
    assert_eq!(
        String::from_utf8_lossy(&seen).replace('\r', ""),
        "5 40\ngo\n12 34\n"
    );
    assert_eq!(ectl.wait().unwrap().exit_code, 0);
}

#[test]
fn monitor_outlives_its_spawner_and_ignores_sigterm() {
    let env = Env::new();
    let id = env.id("orphan");
    let bundle = env.bundle(&["sh", "-c", "read line; echo got $line"], false);
    let mut cfg = env.container_config(&id, &bundle);
    cfg.open_stdin = true;
    let config_path = env.write_config(&cfg);
    // A shell spawns the monitor, prints its ready line and exits.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$1" 2>/dev/null | head -n 1"#)
        .arg(MONITOR)
        .arg(&config_path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let ready: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ready line");
    assert_eq!(ready["ok"], true, "{ready}");
    let pid: i32 = std::fs::read_to_string(cfg.run_dir.join("monitor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(is_alive(pid));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let (ppid, sid): (i32, i32) = (fields[1].parse().unwrap(), fields[3].parse().unwrap());
    assert_eq!(sid, pid, "the monitor leads its own session");
    assert_ne!(ppid, std::process::id() as i32);

    // SIGTERM (and SIGINT, SIGHUP) leave the monitor and its container alone.
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: kill(2) on the monitor this test started.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    assert_eq!(ctl.status().unwrap().state, State::Created);
    let mut att =
        berth_monitor::attach(&cfg.run_dir, AttachRequest { stdin: true, ..ALL }).unwrap();
    ctl.start().unwrap();
    att.write_all(b"bye\n").unwrap();
    let (out, _) = read_all_frames(&mut att);
    assert_eq!(String::from_utf8_lossy(&out), "got bye\n");
    assert_eq!(ctl.wait().unwrap().exit_code, 0);
    wait_gone(pid);
}

#[test]
fn create_failure_is_reported_and_leaves_nothing() {
    let env = Env::new();
    let id = env.id("bad");
    let bundle = env.bundle(&["/nonexistent-binary"], false);
    let cfg = env.container_config(&id, &bundle);
    // As a previous run in the same run dir would have left it.
    std::fs::create_dir_all(&cfg.run_dir).unwrap();
    std::fs::write(
        cfg.run_dir.join("exit.json"),
        r#"{"exit_code":0,"signal":null,"finished_at":"2026-11-29T08:00:00Z","oom_killed":false}"#,
    )
    .unwrap();
    let err = env.spawn(&cfg).expect_err("create must fail");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent-binary"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(!env.runtime_ids().contains(&id));
    for name in [
        "control.sock",
        "attach.sock",
        "monitor.pid",
        "init.pid",
        "exit.json",
    ] {
        assert!(!cfg.run_dir.join(name).exists(), "{name} left behind");
    }
    // The ready line itself, as berthd reads it.
    let out = Command::new(MONITOR)
        .arg(env.write_config(&cfg))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let mut line = String::new();
    BufReader::new(&out.stdout[..])
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("/nonexistent-binary"));
}

#[test]
fn output_without_clients_is_logged_and_a_stalled_client_is_dropped() {
    let env = Env::new();
    let id = env.id("bulk");
    // 4 MiB on stdout, then 3000 numbered lines on stderr.
    let script = "head -c 4194304 /dev/zero | tr '\\0' x; i=0; while [ $i -lt 3000 ]; do echo line $i >&2; i=$((i+1)); done";
    let bundle = env.bundle(&["sh", "-c", script], false);
    let mut cfg = env.container_config(&id, &bundle);
    let log = env.dir.path().join("bulk-json.log");
    cfg.log_path = Some(log.clone());
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    // Subscribes and never reads: it must not hold the container back.
    let mut stalled = berth_monitor::attach(&cfg.run_dir, ALL).unwrap();
    ctl.start().unwrap();
    assert_eq!(ctl.wait().unwrap().exit_code, 0);
    let entries = log_entries(&log);
    let stdout_bytes: usize = entries
        .iter()
        .filter(|e| e["stream"] == "stdout")
        .map(|e| e["log"].as_str().unwrap().chars().count())
        .sum();
    assert_eq!(stdout_bytes, 4 << 20);
    let stderr: Vec<&str> = entries
        .iter()
        .filter(|e| e["stream"] == "stderr")
        .map(|e| e["log"].as_str().unwrap())
        .collect();
    assert_eq!(stderr.len(), 3000);
    assert_eq!(stderr[2999], "line 2999\n");
    // The stalled client was cut off well before the end.
    let mut got = Vec::new();
    stalled
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    std::io::Read::read_to_end(&mut stalled, &mut got).unwrap();
    assert!(
        got.len() < 3 << 20,
        "{} bytes reached a client that never read",
        got.len()
    );
}

#[test]
fn the_container_gets_only_its_stdio() {
    let env = Env::new();
    let id = env.id("fds");
    // ls holds one more descriptor of its own while it reads the directory.
    let bundle = env.bundle(&["sh", "-c", "ls /proc/self/fd"], false);
    let cfg = env.container_config(&id, &bundle);
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    let mut att = berth_monitor::attach(&cfg.run_dir, ALL).unwrap();
    ctl.start().unwrap();
    let (out, err) = read_all_frames(&mut att);
    assert_eq!(
        ctl.wait().unwrap().exit_code,
        0,
        "{}",
        String::from_utf8_lossy(&err)
    );
    let fds: Vec<String> = String::from_utf8_lossy(&out)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "descriptors leaked into the container"
    );
}

#[test]
fn close_stdin_after_stdin_sent_on_attach() {
    let env = Env::new();
    let id = env.id("close");
    let bundle = env.bundle(&["cat"], false);
    let mut cfg = env.container_config(&id, &bundle);
    cfg.open_stdin = true;
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    let mut att =
        berth_monitor::attach(&cfg.run_dir, AttachRequest { stdin: true, ..ALL }).unwrap();
    ctl.start().unwrap();
    assert_eq!(ctl.status().unwrap().state, State::Running);
    // Without stdin_once a half-close leaves stdin open for other clients...
    att.write_all(b"one\ntwo\n").unwrap();
    // ...and close_stdin ends it, after what was already sent.
    ctl.close_stdin().unwrap();
    let (out, _) = read_all_frames(&mut att);
    assert_eq!(String::from_utf8_lossy(&out), "one\ntwo\n");
    assert_eq!(ctl.wait().unwrap().exit_code, 0);
}

#[test]
fn oom_kill_is_recorded() {
    let env = Env::new();
    let id = env.id("oom");
    // tail keeps the whole newline-free stream in memory.
    let bundle = env.bundle(&["sh", "-c", "head -c 200000000 /dev/zero | tail"], false);
    let cfg_path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    spec["linux"]["resources"]["memory"] = serde_json::json!({"limit": 16 << 20, "swap": 16 << 20});
    std::fs::write(&cfg_path, spec.to_string()).unwrap();
    let cfg = env.container_config(&id, &bundle);
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    ctl.start().unwrap();
    let exit = ctl.wait().unwrap();
    assert!(exit.oom_killed, "{exit:?}");

    // And a container that exits normally was not OOM-killed.
    let id = env.id("nooom");
    let bundle = env.bundle(&["true"], false);
    let cfg = env.container_config(&id, &bundle);
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    ctl.start().unwrap();
    let exit = ctl.wait().unwrap();
    assert_eq!((exit.exit_code, exit.oom_killed), (0, false));
}

#[test]
fn tty_stdin_once_sends_eof() {
    let env = Env::new();
    let id = env.id("ttycat");
    let bundle = env.bundle(&["cat"], true);
    let mut cfg = env.container_config(&id, &bundle);
    cfg.tty = true;
    cfg.open_stdin = true;
    cfg.stdin_once = true;
    env.spawn(&cfg).expect("monitor ready");
    let ctl = Control::connect(&cfg.run_dir).unwrap();
    let mut att =
        berth_monitor::attach(&cfg.run_dir, AttachRequest { stdin: true, ..ALL }).unwrap();
    ctl.start().unwrap();
    att.write_all(b"hi\n").unwrap();
    att.shutdown(Shutdown::Write).unwrap();
    let (out, _) = read_all_frames(&mut att);
    // The terminal echoes the line, then cat writes it.
    assert_eq!(String::from_utf8_lossy(&out).replace('\r', ""), "hi\nhi\n");
    assert_eq!(ctl.wait().unwrap().exit_code, 0);
}

#[test]
fn failed_exec_reports_the_runtime_error_and_exit_126() {
    let env = Env::new();
    let id = env.id("badexec");
    let bundle = env.bundle(&["sleep", "1000"], false);
    let cfg = env.container_config(&id, &bundle);
    env.spawn(&cfg).expect("monitor ready");
    Control::connect(&cfg.run_dir).unwrap().start().unwrap();

    let ecfg = env.exec_config(&id, &["/no-such-binary"], false);
    let eready = env.spawn(&ecfg).expect("exec monitor ready");
    let ectl = Control::connect(&ecfg.run_dir).unwrap();
    let err = ectl.start().expect_err("exec must fail").to_string();
    assert!(err.contains("/no-such-binary"), "{err}");
    let exit = ectl.wait().unwrap();
    assert_eq!(exit.exit_code, 126);
    wait_gone(eready.monitor_pid);
    assert_eq!(berth_monitor::read_exit(&ecfg.run_dir), Some(exit));
}
