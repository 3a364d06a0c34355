//! Harness for the end-to-end tests: one private berthd per test (own socket, data root and
//! exec root in a short tempdir), the real docker CLI pointed at it, and a Drop that proves the
//! daemon left nothing behind (processes, mounts, cgroups).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/local/bin/docker";

/// Directory holding the workspace's binaries: the test executable lives in `<dir>/deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a parent");
    deps.parent().expect("deps dir has a parent").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build -p berthd -p berth-monitor -p berth-runtime-cli, \
         or run the tests with --workspace)",
        p.display()
    );
    p
}

pub fn anchor_images() -> PathBuf {
    std::env::var_os("BERTH_ANCHOR_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/anchors-images"))
}

/// Output as text, for assertions and failure messages.
pub trait OutputExt {
    fn out(&self) -> String;
    fn err(&self) -> String;
    fn code(&self) -> i32;
    /// Panics with the command's stderr unless it exited 0; returns trimmed stdout.
    fn ok(&self) -> String;
}

impl OutputExt for Output {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    fn ok(&self) -> String {
        assert!(
            self.status.success(),
            "command failed ({:?}):\nstdout: {}\nstderr: {}",
            self.status,
            self.out(),
            self.err()
        );
        self.out().trim().to_string()
    }
}

/// A raw HTTP/1.1 answer read off the daemon's socket.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("reply body is not JSON ({e}): {:?}", self.body))
    }
    /// The `message` of a Docker error body.
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// One request per connection (`Connection: close`), so the body ends at EOF whatever framing
/// the server picks; chunked bodies are decoded.
pub fn http(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<HttpReply> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b)?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_reply(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unparsable HTTP reply: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

fn parse_reply(raw: &[u8]) -> Option<HttpReply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(HttpReply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Polls `f` until it returns Some, or panics after `timeout` naming `what`. Waiting for a
/// state is not a timing assertion: the timeout only bounds a hang.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Daemon {
    dir: tempfile::TempDir,
    /// This daemon's own default bridge and its subnet: parallel daemons must not share one.
    bridge: String,
    bip: String,
    child: Mutex<Option<Child>>,
    /// Every container id this daemon is known to have created: the cgroup check needs them
    /// even for containers already removed.
    ids: Mutex<BTreeSet<String>>,
}

impl Daemon {
    /// A daemon with busybox:latest loaded.
    pub fn start() -> Daemon {
        Daemon::start_with_config(None)
    }

    /// A daemon with busybox:latest loaded, reading `daemon_json` as its --config-file.
    pub fn start_with_config(daemon_json: Option<serde_json::Value>) -> Daemon {
        let d = Daemon::start_bare_with_config(daemon_json);
        let tar = anchor_images().join("busybox-docker.tar");
        assert!(
            tar.exists(),
            "{} missing (set BERTH_ANCHOR_IMAGES)",
            tar.display()
        );
        d.docker(&["load", "-q", "-i", tar.to_str().expect("utf-8 path")])
            .ok();
        d
    }

    /// A daemon with no image.
    pub fn start_bare() -> Daemon {
        Daemon::start_bare_with_config(None)
    }

    fn start_bare_with_config(daemon_json: Option<serde_json::Value>) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("bd")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("dockercfg")).expect("dockercfg dir");
        if let Some(cfg) = daemon_json {
            std::fs::write(dir.path().join("daemon.json"), cfg.to_string()).expect("daemon.json");
        }
        let (bridge, bip) = free_bridge_subnet();
        let d = Daemon {
            dir,
            bridge,
            bip,
            child: Mutex::new(None),
            ids: Mutex::new(BTreeSet::new()),
        };
        d.spawn();
        d
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn sock(&self) -> PathBuf {
        self.root().join("b.sock")
    }
    pub fn host(&self) -> String {
        format!("unix://{}", self.sock().display())
    }
    pub fn log_path(&self) -> PathBuf {
        self.root().join("berthd.log")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().ok()?.as_ref().map(|c| c.id())
    }

    /// Starts berthd (again, after `kill9`) on the same state and waits for `/_ping`.
    pub fn spawn(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("berthd log file");
        let r = self.root();
        let child = Command::new(bin("berthd"))
            .arg("-H")
            .arg(self.host())
            .arg("--data-root")
            .arg(r.join("data"))
            .arg("--exec-root")
            .arg(r.join("e"))
            .arg("--pidfile")
            .arg(r.join("pid"))
            .arg("--config-file")
            .arg(match r.join("daemon.json") {
                p if p.exists() => p,
                _ => PathBuf::from("/nonexistent"),
            })
            .args(["--bridge", &self.bridge, "--bip", &self.bip])
            .args(["--default-address-pool", "10.214.0.0/16"])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawning berthd");
        // Fail fast if berth-monitor/berth-runtime are missing rather than on the first run.
        bin("berth-monitor");
        bin("berth-runtime");
        *self.child.lock().expect("child lock") = Some(child);
        let sock = self.sock();
        wait_for("berthd to answer /_ping", Duration::from_secs(60), || {
            if let Some(c) = self.child.lock().expect("child lock").as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("berthd exited early ({st}):\n{}", self.log());
                }
            }
            http(&sock, "GET", "/_ping", None)
                .ok()
                .filter(|r| r.status == 200)
        });
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root().join("dockercfg"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::null());
        c
    }

    /// Runs the docker CLI against this daemon (stdin is /dev/null).
    pub fn docker(&self, args: &[&str]) -> Output {
        let out = self
            .docker_cmd(args)
            .output()
            .expect("running /usr/local/bin/docker");
        self.note_ids(&out);
        out
    }

    /// Runs the docker CLI with `input` on its stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self.docker_cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("running docker");
        let mut stdin = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("docker output");
        let _ = writer.join();
        self.note_ids(&out);
        out
    }

    /// A docker command left running (e.g. `logs -f`, `attach`, `events`) with piped stdio.
    pub fn docker_spawn(&self, args: &[&str]) -> Child {
        let mut c = self.docker_cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawning docker")
    }

    /// A shell command line with DOCKER_HOST/DOCKER_CONFIG set (for `script`, pipes).
    pub fn sh(&self, cmdline: &str) -> Output {
        Command::new("sh")
            .args(["-c", cmdline])
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root().join("dockercfg"))
            .stdin(Stdio::null())
            .output()
            .expect("running sh")
    }

    /// `docker run -d ...`, returning the new container's id.
    pub fn run_d(&self, args: &[&str]) -> String {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(args);
        let id = self.docker(&a).ok();
        assert_eq!(id.len(), 64, "run -d printed {id:?}");
        id
    }

    pub fn inspect(&self, name: &str, fmt: &str) -> String {
        self.docker(&["inspect", "-f", fmt, name]).ok()
    }

    pub fn status(&self, name: &str) -> String {
        self.inspect(name, "{{.State.Status}}")
    }

    pub fn wait_status(&self, name: &str, want: &str) {
        wait_for(
            &format!("{name} to be {want}"),
            Duration::from_secs(60),
            || {
                let o = self.docker(&["inspect", "-f", "{{.State.Status}}", name]);
                (o.status.success() && o.out().trim() == want).then_some(())
            },
        );
    }

    /// Remembers 64-hex words of an output as container ids (images and execs too, harmless:
    /// only cgroup dirs named after them are looked for).
    fn note_ids(&self, out: &Output) {
        let text = out.out();
        let mut ids = self.ids.lock().expect("ids lock");
        for w in text.split(|c: char| !c.is_ascii_hexdigit()) {
            if w.len() == 64 {
                ids.insert(w.to_string());
            }
        }
    }

    /// Ids of every container the daemon lists plus those its event history mentions.
    pub fn note_containers(&self) {
        let o = self.docker(&["ps", "-aq", "--no-trunc"]);
        drop(o);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() + 1)
            .unwrap_or_default();
        if let Ok(r) = http(
            &self.sock(),
            "GET",
            &format!("/events?since=0&until={now}"),
            None,
        ) {
            let mut ids = self.ids.lock().expect("ids lock");
            for line in r.body.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    if v["Type"] == "container" {
                        if let Some(id) = v["Actor"]["ID"].as_str() {
                            ids.insert(id.to_string());
                        }
                    }
                }
            }
        }
    }

    /// SIGKILL berthd (containers and monitors live on) and reap it.
    pub fn kill9(&self) {
        self.note_containers();
        if let Some(mut c) = self.child.lock().expect("child lock").take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM berthd and wait for it to exit; false when it had to be killed after 30 s.
    pub fn stop(&self) -> bool {
        let child = self.child.lock().expect("child lock").take();
        let mut graceful = true;
        if let Some(mut c) = child {
            let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let end = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > end {
                    eprintln!("berthd ignored SIGTERM for 30 s; killing it");
                    graceful = false;
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        graceful
    }

    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.pid().is_some() {
            self.note_containers();
            let ids = self.docker(&["ps", "-aq", "--no-trunc"]).out();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().copied());
                let o = self.docker(&args);
                if !o.status.success() {
                    problems.push(format!("docker rm -f failed: {}", o.err()));
                }
            }
            self.stop();
        }
        let log = self.log();
        if log.contains("panicked") {
            problems.push(format!("berthd panicked:\n{log}"));
        }
        self.remove_bridge();
        problems.extend(self.kill_leftover_processes());
        problems.extend(self.unmount_leftovers());
        problems.extend(self.leftover_cgroups());
        problems
    }

    /// Processes whose cwd, exe or command line points into the tempdir: monitors and
    /// container processes the daemon should have ended. Killed, and reported.
    fn kill_leftover_processes(&self) -> Vec<String> {
        // Monitors exit shortly after their container is removed: give them a moment.
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end && !self.processes_under_root().is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
        let found = self.processes_under_root();
        for (pid, _) in &found {
            if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        found.into_iter().map(|(_, d)| d).collect()
    }

    fn processes_under_root(&self) -> Vec<(u32, String)> {
        let root = self.root().to_string_lossy().into_owned();
        let me = std::process::id();
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let p = e.path();
            let cwd = std::fs::read_link(p.join("cwd")).unwrap_or_default();
            let exe = std::fs::read_link(p.join("exe")).unwrap_or_default();
            let cmdline = std::fs::read(p.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let under = |x: &Path| x.to_string_lossy().starts_with(root.as_str());
            if under(&cwd) || under(&exe) || cmdline.contains(root.as_str()) {
                found.push((
                    pid,
                    format!(
                        "leftover process {pid} ({cmdline}) cwd={} exe={}",
                        cwd.display(),
                        exe.display()
                    ),
                ));
            }
        }
        found
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Like dockerd with docker0, berthd keeps its bridge and NAT table when it stops: they
    /// belong to this test alone, so remove them.
    fn remove_bridge(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let table: String = self
            .bridge
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &format!("berth_{table}")])
            .stderr(Stdio::null())
            .status();
    }

    fn unmount_leftovers(&self) -> Vec<String> {
        let root = self.root().to_string_lossy().into_owned();
        let mut found = Vec::new();
        // Innermost first: later lines of mountinfo are mounted on top of earlier ones.
        for _ in 0..5 {
            let points = mounts_under(&root);
            if points.is_empty() {
                break;
            }
            for m in points.iter().rev() {
                found.push(format!("leftover mount {m}"));
                let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
            }
        }
        found.sort();
        found.dedup();
        found
    }

    fn leftover_cgroups(&self) -> Vec<String> {
        let ids = self.ids.lock().map(|i| i.clone()).unwrap_or_default();
        let mut found = Vec::new();
        let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") else {
            return found;
        };
        for c in ctrls.flatten() {
            for id in &ids {
                let p = c.path().join("berth").join(id);
                if p.exists() {
                    found.push(format!("leftover cgroup {}", p.display()));
                    let _ = std::fs::remove_dir(&p);
                }
            }
        }
        found
    }
}

/// A bridge name and a free /24 (no host route into it yet) for a private daemon's default
/// bridge, picked from the test process's pid so parallel tests differ.
fn free_bridge_subnet() -> (String, String) {
    // Tests of one process run in parallel threads and a daemon makes its bridge only once it
    // runs: remember what was handed out.
    static GIVEN: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let seed = std::process::id() as usize;
    for i in 0..250 {
        let n = (seed * 13 + i) % 250 + 1;
        // /proc/net/route prints destinations little-endian: 10.213.n.0 is 00 n D5 0A.
        let dest = format!("00{n:02X}D50A");
        let taken = routes
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(dest.as_str()));
        let name = format!("bd{}x{n}", seed % 100000);
        if !taken && !given.contains(&n) && !Path::new("/sys/class/net").join(&name).exists() {
            given.insert(n);
            return (name, format!("10.213.{n}.1/24"));
        }
    }
    panic!("no free 10.213.x.0/24 for a test bridge");
}

/// Mount points (decoded) at or under `root`, in mountinfo order.
pub fn mounts_under(root: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == root || m.starts_with(&format!("{root}/")))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let problems = self.cleanup();
        if problems.is_empty() {
            return;
        }
        let msg = format!("berthd left things behind:\n{}", problems.join("\n"));
        if std::thread::panicking() {
            eprintln!("{msg}");
        } else {
            panic!("{msg}");
        }
    }
}

/// Waits for a spawned command to finish and collects its output; kills it and panics if it
/// hangs past `timeout` (which only bounds a hang: it is not what the test checks).
pub fn finish(mut child: Child, what: &str, timeout: Duration) -> Output {
    let end = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output of killed child");
                panic!(
                    "{what} did not finish:\nstdout: {}\nstderr: {}",
                    out.out(),
                    out.err()
                );
            }
        }
    }
    child.wait_with_output().expect("child output")
}

/// Reads from a spawned command's stdout until `needle` appears (on a helper thread, so a
/// silent command cannot hang the test); returns what was read so far.
pub fn read_until(child: &mut Child, needle: &str, timeout: Duration) -> String {
    let mut out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let end = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => panic!(
                "{needle:?} never appeared; got {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}
