//! End-to-end scenarios for `berth` against a real Engine API daemon.
//! Containers use `--network none` (the anchors' dockerd has no bridge).

mod common;

use common::{daemon, eventually, unique};

macro_rules! need_daemon {
    () => {
        match daemon() {
            Some(d) => d,
            None => return,
        }
    };
}

#[test]
fn version_reports_client_and_server() {
    let d = need_daemon!();
    let out = d.ok(&["version"]);
    assert!(out.starts_with("Client:\n Version:"), "{out}");
    assert!(out.contains("\nServer:"), "{out}");
    let api = d.ok(&["version", "--format", "{{.Server.ApiVersion}}"]);
    assert!(api.trim().starts_with("1."), "{api}");
}

#[test]
fn unreachable_daemon_is_one_clear_line() {
    let d = need_daemon!();
    let mut c = d.berth_cmd(&["ps"]);
    // the last -H wins
    c.args(["-H", "unix:///nonexistent/berth.sock"]);
    let r: common::Run = c.output().unwrap().into();
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Cannot connect to the Berth daemon at unix:///nonexistent/berth.sock. Is berthd running?\n"
    );
}

#[test]
fn run_rm_returns_the_exit_code_and_removes_the_container() {
    let d = need_daemon!();
    let name = unique("rm");
    let _g = d.guard(&name);
    let r = d.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    let gone = d.berth(&["inspect", "--type", "container", &name]);
    assert_ne!(gone.code, 0, "container {name} still exists");
}

#[test]
fn run_failures_use_dockers_exit_codes() {
    let d = need_daemon!();
    let name = unique("nocmd");
    let _g = d.guard(&name);
    let r = d.berth(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "no-such-command",
    ]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("Error response from daemon:"),
        "{}",
        r.stderr
    );
    let r = d.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--restart",
        "sometimes",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    let r = d.berth(&["rm", "no-such-container-berth-cli"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("Error response from daemon: "),
        "{}",
        r.stderr
    );
}

#[test]
fn detached_container_logs_exec_stop_rm() {
    let d = need_daemon!();
    let name = unique("life");
    let _g = d.guard(&name);
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-e",
        "GREETING=hello",
        "-l",
        "berth.test=1",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING; echo oops >&2; exec sleep 300",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert!(eventually(50, || {
        let r = d.berth(&["logs", &name]);
        r.stdout == "hello\n" && r.stderr == "oops\n"
    }));
    let r = d.berth(&["exec", &name, "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!((r.code, r.stdout.as_str()), (4, "in-exec\n"));
    let r = d.berth(&[
        "exec",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        &name,
        "sh",
        "-c",
        "echo $X $(pwd)",
    ]);
    assert_eq!(r.stdout, "1 /tmp\n");
    let ps = d.ok(&[
        "ps",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Names}} {{.State}} {{.Labels}}",
    ]);
    assert_eq!(ps, format!("{name} running berth.test=1\n"));
    assert_eq!(d.ok(&["stop", "-t", "1", &name]), format!("{name}\n"));
    let st = d.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Running}}",
        &name,
    ]);
    assert_eq!(st, "exited false\n");
    assert_eq!(d.ok(&["wait", &name]).trim(), "137");
    assert_eq!(d.ok(&["rm", &name]), format!("{name}\n"));
    let ps = d.ok(&["ps", "-a", "-q", "--filter", &format!("name={name}")]);
    assert_eq!(ps, "");
}

#[test]
fn ps_and_images_match_the_docker_cli() {
    let d = need_daemon!();
    if !d.has_docker_cli() {
        eprintln!("SKIP: no docker CLI at {}", common::DOCKER);
        return;
    }
    let name = unique("cmp");
    let _g = d.guard(&name);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-l",
        "berth.test=cmp",
        "busybox",
        "sh",
        "-c",
        "sleep 300; echo a long command line here",
    ]);
    let cases: &[&[&str]] = &[
        &["ps", "-a", "--format", "{{.ID}}"],
        &["ps", "-a", "-q"],
        &["ps", "-a", "--no-trunc", "-q"],
        &[
            "ps",
            "-a",
            "--format",
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Names}}\t{{.Networks}}",
        ],
        &[
            "ps",
            "-a",
            "--format",
            "{{json .Names}} {{.Command}} {{upper .Image}}",
        ],
        &[
            "ps",
            "-a",
            "--format",
            "{{.Label \"berth.test\"}}|{{.Label \"nope\"}}|{{.Labels}}",
        ],
        &[
            "ps",
            "-a",
            "--format",
            "table {{.Names}}\t{{.Label \"berth.test-label\"}}\t{{.Networks}}",
        ],
        &[
            "ps",
            "-a",
            "--filter",
            "label=berth.test",
            "--format",
            "{{.ID}} {{.Image}} {{.Names}} {{.Mounts}} {{.Ports}} {{.State}}",
        ],
        &["images"],
        &["images", "-q"],
        &["images", "--format", "{{.ID}}"],
        &[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
        ],
        &[
            "images",
            "--format",
            "table {{.Repository}}\t{{.Tag}}\t{{.Size}}",
        ],
    ];
    for args in cases {
        // other tests change the daemon concurrently: retry a mismatch a few times
        let same = eventually(10, || {
            let b = d.berth(args);
            let k = d.docker(args);
            b.code == 0 && k.code == 0 && b.stdout == k.stdout
        });
        let (b, k) = (d.berth(args), d.docker(args));
        assert!(
            same,
            "berth {args:?} differs from docker:\n--- berth\n{}{}\n--- docker\n{}",
            b.stdout, b.stderr, k.stdout
        );
    }
}

#[test]
fn inspect_formats_match_the_docker_cli() {
    let d = need_daemon!();
    let name = unique("insp");
    let _g = d.guard(&name);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-l",
        "a=b",
        "-e",
        "K=V",
        "busybox",
        "sleep",
        "300",
    ]);
    let pid = d.ok(&["inspect", "--format", "{{.State.Pid}}", &name]);
    assert!(pid.trim().parse::<u32>().unwrap() > 0, "{pid}");
    let formats = [
        "{{.State.Pid}} {{.Name}} {{.Config.Image}}",
        "{{json .Config.Cmd}} {{json .Config.Labels}}",
        "{{index .Config.Labels \"a\"}} {{.HostConfig.NetworkMode}}",
        "{{range .Config.Env}}{{.}},{{end}}",
        "{{join .Config.Cmd \"+\"}} {{lower .State.Status}} {{.State.Running}}",
        "{{with .State}}{{.Status}}{{end}} {{if .State.Running}}up{{else}}down{{end}}",
    ];
    for f in formats {
        let b = d.berth(&["inspect", "--format", f, &name]);
        assert_eq!(b.code, 0, "{}", b.stderr);
        if d.has_docker_cli() {
            let k = d.docker(&["inspect", "--format", f, &name]);
            assert_eq!(b.stdout, k.stdout, "format {f}");
        }
    }
    let env = d.ok(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{.}},{{end}}",
        &name,
    ]);
    assert!(env.split(',').any(|e| e == "K=V"), "{env}");
    // no format: the daemon's JSON, indented as docker prints it
    let json = d.ok(&["inspect", &name]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["Name"], format!("/{name}"));
    if d.has_docker_cli() {
        assert_eq!(json, d.docker(&["inspect", &name]).stdout);
    }
}

#[test]
fn cp_both_ways() {
    let d = need_daemon!();
    let name = unique("cp");
    let _g = d.guard(&name);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("file.txt");
    std::fs::write(&f, "payload\n").unwrap();
    let sub = dir.path().join("tree");
    std::fs::create_dir_all(sub.join("inner")).unwrap();
    std::fs::write(sub.join("inner/deep.txt"), "deep\n").unwrap();

    // into an existing directory keeps the name; to a new path renames
    d.ok(&["cp", f.to_str().unwrap(), &format!("{name}:/tmp/")]);
    d.ok(&[
        "cp",
        f.to_str().unwrap(),
        &format!("{name}:/tmp/renamed.txt"),
    ]);
    d.ok(&["cp", sub.to_str().unwrap(), &format!("{name}:/tmp/")]);
    let r = d.ok(&[
        "exec",
        &name,
        "cat",
        "/tmp/file.txt",
        "/tmp/renamed.txt",
        "/tmp/tree/inner/deep.txt",
    ]);
    assert_eq!(r, "payload\npayload\ndeep\n");

    let back = dir.path().join("back");
    std::fs::create_dir(&back).unwrap();
    d.ok(&["cp", &format!("{name}:/tmp/tree"), back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(back.join("tree/inner/deep.txt")).unwrap(),
        "deep\n"
    );
    let newname = dir.path().join("hostname.copy");
    d.ok(&[
        "cp",
        &format!("{name}:/etc/hostname"),
        newname.to_str().unwrap(),
    ]);
    let hn = d.ok(&["exec", &name, "cat", "/etc/hostname"]);
    assert_eq!(std::fs::read_to_string(&newname).unwrap(), hn);
    let r = d.berth(&[
        "cp",
        &format!("{name}:/no/such/file"),
        dir.path().to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("No such")
            || r.stderr.contains("no such")
            || r.stderr.contains("not find"),
        "{}",
        r.stderr
    );
}

fn script_available() -> bool {
    std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok()
}

#[test]
fn run_it_under_a_pseudo_terminal() {
    let d = need_daemon!();
    if !script_available() {
        eprintln!("SKIP: util-linux script(1) not installed");
        return;
    }
    let name = unique("tty");
    let _g = d.guard(&name);
    // The size is sent after start (as docker does): poll until it lands.
    let cmd = format!(
        "stty rows 33 cols 111; {} -H {} run --rm -it --name {name} --network none busybox sh -c \
         'tty; for i in $(seq 100); do stty -a | grep -q \"rows 33; columns 111\" && break; sleep 0.1; done; stty -a | head -1; echo typed; exit 7'",
        d.berth.display(),
        d.host
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(7), "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    // a TTY's output comes raw, with the container's CRLF line ends
    assert!(out.contains("typed\r\n"), "{out:?}");
    assert!(
        out.contains("rows 33; columns 111;"),
        "terminal size not forwarded: {out:?}"
    );
}

#[test]
fn run_i_forwards_stdin_and_its_eof() {
    let d = need_daemon!();
    let name = unique("stdin");
    let _g = d.guard(&name);
    let mut c = d.berth_cmd(&[
        "run",
        "--rm",
        "-i",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "wc -l; echo done",
    ]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"a\nb\nc\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["3", "done"]
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn save_and_load_round_trip() {
    let d = need_daemon!();
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("berth-cli-load:{}", std::process::id());
    let _g = d.image_guard(&tag);
    d.ok(&["tag", "busybox:latest", &tag]);
    let tar = dir.path().join("img.tar");
    d.ok(&["save", "-o", tar.to_str().unwrap(), &tag]);
    d.ok(&["rmi", &tag]);
    let out = d.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(out.contains(&format!("Loaded image: {tag}")), "{out}");
    let ids = d.ok(&["images", "-q", &tag]);
    assert_eq!(ids.lines().count(), 1, "{ids}");
}

/// The anchors' registry on loopback, when it runs.
fn local_registry() -> Option<String> {
    let addr =
        std::env::var("BERTH_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_string());
    std::net::TcpStream::connect(&addr).ok().map(|_| addr)
}

#[test]
fn push_and_pull_through_a_local_registry() {
    let d = need_daemon!();
    let Some(reg) = local_registry() else {
        eprintln!("SKIP: no registry on loopback");
        return;
    };
    let repo = format!("{reg}/berth-cli-test-{}", std::process::id());
    let tag = format!("{repo}:v1");
    let _g = d.image_guard(&tag);
    d.ok(&["tag", "busybox:latest", &tag]);
    let out = d.ok(&["push", &tag]);
    assert!(out.contains("digest: sha256:"), "{out}");
    d.ok(&["rmi", &tag]);
    let out = d.ok(&["pull", &tag]);
    assert!(out.ends_with(&format!("{tag}\n")), "{out}");
    assert!(
        out.contains("Status: Downloaded newer image")
            || out.contains("Status: Image is up to date"),
        "{out}"
    );
    let listed = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}", &repo]);
    assert_eq!(listed, format!("{tag}\n"));
}

#[test]
fn login_and_logout_store_credentials_in_docker_format() {
    let d = need_daemon!();
    let Some(reg) = local_registry() else {
        eprintln!("SKIP: no registry on loopback");
        return;
    };
    let cfg = tempfile::tempdir().unwrap();
    let mut c = d.berth_cmd(&["login", "-u", "tester", "--password-stdin", &reg]);
    c.env("DOCKER_CONFIG", cfg.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Login Succeeded\n");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["auths"][&reg]["auth"], "dGVzdGVyOnNlY3JldA==");
    let mut c = d.berth_cmd(&["logout", &reg]);
    c.env("DOCKER_CONFIG", cfg.path());
    let r: common::Run = c.output().unwrap().into();
    assert_eq!(r.stdout, format!("Removing login credentials for {reg}\n"));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg.path().join("config.json")).unwrap()).unwrap();
    assert!(v["auths"].get(&reg).is_none());
}

#[test]
fn networks_and_volumes() {
    let d = need_daemon!();
    let vol = unique("vol");
    assert_eq!(d.ok(&["volume", "create", &vol]), format!("{vol}\n"));
    let ls = d.ok(&["volume", "ls", "-q", "--filter", &format!("name={vol}")]);
    assert_eq!(ls, format!("{vol}\n"));
    let name = unique("volctr");
    {
        let _g = d.guard(&name);
        let out = d.ok(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--network",
            "none",
            "-v",
            &format!("{vol}:/data"),
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f; cat /data/f",
        ]);
        assert_eq!(out, "kept\n");
    }
    let mp = d.ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Name}} {{.Driver}}",
        &vol,
    ]);
    assert_eq!(mp, format!("{vol} local\n"));
    assert_eq!(d.ok(&["volume", "rm", &vol]), format!("{vol}\n"));
    let nets = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.lines().any(|l| l == "none"), "{nets}");
    if d.has_docker_cli() {
        assert_eq!(
            d.ok(&["network", "ls"]),
            d.docker(&["network", "ls"]).stdout
        );
    }
}

/// Runs `cmd` under script(1) with `input` typed after a short pause per chunk
/// (script forwards its stdin to the pseudo-terminal).
fn under_script(cmd: &str, input: &[&[u8]]) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for chunk in input {
        std::thread::sleep(std::time::Duration::from_millis(700));
        let _ = stdin.write_all(chunk);
        let _ = stdin.flush();
    }
    // keep script's stdin open until the command is done: EOF would end the session
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn attach_and_detach_with_ctrl_p_ctrl_q() {
    let d = need_daemon!();
    if !script_available() {
        eprintln!("SKIP: util-linux script(1) not installed");
        return;
    }
    let name = unique("attach");
    let _g = d.guard(&name);
    d.ok(&[
        "run",
        "-dit",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
    ]);
    let cmd = format!("{} -H {} attach {name}", d.berth.display(), d.host);
    let (code, out) = under_script(&cmd, &[b"echo attached-$((6*7))\r", b"\x10\x11"]);
    assert_eq!(code, Some(0), "{out:?}");
    assert!(out.contains("attached-42"), "{out:?}");
    let st = d.ok(&["inspect", "--format", "{{.State.Running}}", &name]);
    assert_eq!(st, "true\n", "detaching must leave the container running");
}

#[test]
fn exec_it_returns_the_shells_status() {
    let d = need_daemon!();
    if !script_available() {
        eprintln!("SKIP: util-linux script(1) not installed");
        return;
    }
    let name = unique("execit");
    let _g = d.guard(&name);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let cmd = format!("{} -H {} exec -it {name} sh", d.berth.display(), d.host);
    let (code, out) = under_script(&cmd, &[b"echo in-$((2+3))\r", b"exit 9\r"]);
    assert_eq!(code, Some(9), "{out:?}");
    assert!(out.contains("in-5"), "{out:?}");
}

#[test]
fn create_then_start_attached() {
    let d = need_daemon!();
    let name = unique("create");
    let _g = d.guard(&name);
    let id = d.ok(&[
        "create",
        "--name",
        &name,
        "--network",
        "none",
        "-w",
        "/etc",
        "busybox",
        "sh",
        "-c",
        "pwd; exit 2",
    ]);
    assert_eq!(id.trim().len(), 64);
    let st = d.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.State}}",
    ]);
    assert_eq!(st, "created\n");
    let r = d.berth(&["start", "-a", &name]);
    assert_eq!((r.code, r.stdout.as_str()), (2, "/etc\n"), "{}", r.stderr);
}

#[test]
fn run_pulls_a_missing_image() {
    let d = need_daemon!();
    let Some(reg) = local_registry() else {
        eprintln!("SKIP: no registry on loopback");
        return;
    };
    let tag = format!("{reg}/berth-cli-autopull-{}:v1", std::process::id());
    let _g = d.image_guard(&tag);
    d.ok(&["tag", "busybox:latest", &tag]);
    d.ok(&["push", "-q", &tag]);
    d.ok(&["rmi", &tag]);
    let r = d.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        &tag,
        "echo",
        "pulled-and-ran",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "pulled-and-ran\n");
    assert!(
        r.stderr
            .starts_with(&format!("Unable to find image '{tag}' locally\n")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Status: Downloaded newer image"),
        "{}",
        r.stderr
    );
}

#[test]
fn small_verbs_match_the_docker_cli() {
    let d = need_daemon!();
    if !d.has_docker_cli() {
        eprintln!("SKIP: no docker CLI at {}", common::DOCKER);
        return;
    }
    let name = unique("small");
    let _g = d.guard(&name);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "mkdir /made; rm /etc/hostname; sleep 300",
    ]);
    assert!(eventually(50, || d
        .berth(&["diff", &name])
        .stdout
        .contains("A /made")));
    for args in [
        vec!["diff", name.as_str()],
        vec!["history", "busybox"],
        vec!["history", "--no-trunc", "-q", "busybox"],
        vec!["volume", "ls", "-q"],
        vec!["network", "ls", "--no-trunc"],
    ] {
        let same = eventually(10, || {
            let (b, k) = (d.berth(&args), d.docker(&args));
            b.code == 0 && b.stdout == k.stdout
        });
        assert!(
            same,
            "berth {args:?}:\n{}\ndocker:\n{}",
            d.berth(&args).stdout,
            d.docker(&args).stdout
        );
    }
    d.ok(&["pause", &name]);
    let st = d.ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(st, "paused\n");
    d.ok(&["unpause", &name]);
    let new = unique("renamed");
    let _g2 = d.guard(&new);
    d.ok(&["rename", &name, &new]);
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.Name}}", &new]),
        format!("/{new}\n")
    );
    let top = d.ok(&["top", &new]);
    assert!(top.starts_with("UID") && top.contains("sleep 300"), "{top}");
}

/// `-H tcp://` goes through a loopback forwarder to the daemon's unix socket.
#[test]
fn tcp_host_on_loopback() {
    let d = need_daemon!();
    let Some(sock) = d.host.strip_prefix("unix://").map(str::to_string) else {
        eprintln!("SKIP: the daemon under test is not on a unix socket");
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(tcp) = conn else { break };
            let Ok(unix) = std::os::unix::net::UnixStream::connect(&sock) else {
                break;
            };
            let (mut t2, mut u2) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
            let (mut t1, mut u1) = (tcp, unix);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut t1, &mut u1);
                let _ = u1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut t2);
                let _ = t2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    let url = format!("tcp://{addr}");
    let mut c = d.berth_cmd(&["version", "--format", "{{.Server.ApiVersion}}"]);
    c.args(["-H", &url]);
    let r: common::Run = c.output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("1."), "{}", r.stdout);
    // and through DOCKER_HOST when no -H is given
    let r: common::Run = std::process::Command::new(&d.berth)
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "over-tcp",
        ])
        .env("DOCKER_HOST", &url)
        .env_remove("BERTH_HOST")
        .output()
        .unwrap()
        .into();
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "over-tcp\n"),
        "{}",
        r.stderr
    );
}

/// The image ID line `commit` prints, as docker prints it.
fn is_image_id_line(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .and_then(|h| h.strip_suffix('\n'))
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn commit_a_running_container_and_run_the_image() {
    let d = need_daemon!();
    let name = unique("commit");
    let _g = d.guard(&name);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo committed > /made; sleep 300",
    ]);
    assert!(eventually(50, || d
        .berth(&["diff", &name])
        .stdout
        .contains("A /made")));
    let repo = unique("img");
    let image = format!("{repo}:v1");
    let _gi = d.image_guard(&image);
    let r = d.berth(&[
        "commit",
        "-a",
        "Berth Tester <t@example.com>",
        "-m",
        "with a file",
        "-c",
        r#"CMD ["cat", "/made"]"#,
        "--change",
        "ENV COMMITTED=yes",
        &name,
        &image,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(is_image_id_line(&r.stdout), "{:?}", r.stdout);
    assert_eq!(r.stderr, "");
    let id = r.stdout.trim();
    let meta = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}|{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}",
        &image,
    ]);
    assert_eq!(
        meta,
        format!("{id}|Berth Tester <t@example.com>|with a file|[\"cat\",\"/made\"]\n")
    );
    // The committed file is in the image and the new CMD is its default.
    let out = d.ok(&["run", "--rm", "--network", "none", &image]);
    assert_eq!(out, "committed\n");
    let env = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "echo $COMMITTED",
    ]);
    assert_eq!(env, "yes\n");
    // The container was paused only while read.
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Status}}", &name]),
        "running\n"
    );
    // No reference: an untagged image, still its ID on stdout; no pause asked.
    let r = d.berth(&["container", "commit", "--pause=false", &name]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(is_image_id_line(&r.stdout), "{:?}", r.stdout);
    let _gu = d.image_guard(r.stdout.trim());

    if !d.has_docker_cli() {
        eprintln!("SKIP: no docker CLI at {}", common::DOCKER);
        return;
    }
    let dimage = format!("{repo}:docker");
    let _gd = d.image_guard(&dimage);
    let k = d.docker(&["commit", "-c", r#"CMD ["cat", "/made"]"#, &name, &dimage]);
    assert_eq!(k.code, 0, "{}", k.stderr);
    assert!(is_image_id_line(&k.stdout), "docker printed {:?}", k.stdout);
    // Errors: one line, the same as docker's, exit 1.
    for args in [
        vec!["commit", "berth-cli-no-such-container"],
        vec!["commit", name.as_str(), "Not/Lowercase"],
    ] {
        let (b, k) = (d.berth(&args), d.docker(&args));
        assert_eq!(b.code, 1, "{args:?}: {}", b.stderr);
        assert_eq!(b.stderr.lines().count(), 1, "{args:?}: {}", b.stderr);
        assert_eq!(b.code, k.code, "{args:?}: docker said {}", k.stderr);
        assert_eq!(b.stderr, k.stderr, "{args:?}");
    }
}

#[test]
fn system_df_verbose_matches_the_docker_cli() {
    let d = need_daemon!();
    let name = unique("df");
    let vol = unique("dfvol");
    let _g = d.guard(&name);
    d.ok(&["volume", "create", &vol]);
    let _gv = VolumeGuard(&d, vol.clone());
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-v",
        &format!("{vol}:/data"),
        "busybox",
        "sh",
        "-c",
        "head -c 5000 /dev/zero > /data/f; echo x > /rootfile; sleep 300",
    ]);
    assert!(eventually(50, || d
        .berth(&["diff", &name])
        .stdout
        .contains("A /rootfile")));
    let out = d.ok(&["system", "df", "-v"]);
    let titles: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with(':') || l.starts_with("Build cache usage:"))
        .collect();
    assert_eq!(
        titles,
        [
            "Images space usage:",
            "Containers space usage:",
            "Local Volumes space usage:",
            "Build cache usage: 0B"
        ],
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&vol) && l.contains(" 1 ")),
        "{out}"
    );
    assert!(out.contains(&name), "{out}");
    if !d.has_docker_cli() {
        eprintln!("SKIP: no docker CLI at {}", common::DOCKER);
        return;
    }
    let cases: &[&[&str]] = &[
        &["system", "df"],
        &["system", "df", "-v"],
        &["system", "df", "-v", "--format", "json"],
        &[
            "system",
            "df",
            "-v",
            "--format",
            "{{range .Volumes}}{{.Name}} {{.Links}} {{.Size}}\n{{end}}",
        ],
    ];
    for args in cases {
        // Relative times may tick between the two calls: retry a mismatch.
        let same = eventually(10, || {
            let (b, k) = (d.berth(args), d.docker(args));
            b.code == 0 && k.code == 0 && b.stdout == k.stdout
        });
        let (b, k) = (d.berth(args), d.docker(args));
        assert!(
            same,
            "berth {args:?} differs from docker:\n--- berth\n{}{}\n--- docker\n{}{}",
            b.stdout, b.stderr, k.stdout, k.stderr
        );
    }
}

struct VolumeGuard<'a>(&'a common::Daemon, String);

impl Drop for VolumeGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.berth(&["volume", "rm", "-f", &self.1]);
    }
}

/// Kills a spawned `berth` when the test ends, however it ends.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stats_into_a_pipe_has_no_escape_codes() {
    use std::io::Read;
    let d = need_daemon!();
    let name = unique("stats");
    let _g = d.guard(&name);
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let one = d.ok(&["stats", "--no-stream", &name]);
    assert!(!one.contains("\x1b["), "{one:?}");
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines.len(), 2, "{one}");
    assert!(lines[0].starts_with("CONTAINER ID   NAME"), "{one}");
    assert!(lines[1].contains(&name), "{one}");

    // Streaming into a pipe: read until a few tables came, then stop it.
    let mut cmd = d.berth_cmd(&["stats", &name]);
    cmd.stdout(std::process::Stdio::piped());
    let mut child = ChildGuard(cmd.spawn().expect("spawn berth stats"));
    let mut stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&seen);
            if text.matches("CONTAINER ID").count() >= 3 {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    // A guard against a hang, not a measurement.
    let seen = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("berth stats printed three tables");
    drop(child);
    let text = String::from_utf8_lossy(&seen);
    assert!(!text.contains("\x1b["), "{text:?}");
    assert!(text.matches("CONTAINER ID").count() >= 3, "{text}");
    assert!(text.contains(&name), "{text}");
}
