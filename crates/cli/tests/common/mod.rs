//! Test helpers: run `berth` (and docker's CLI, for comparison) against one
//! Engine API daemon chosen by `BERTH_TEST_HOST` (default: the anchors'
//! dockerd at unix:///run/docker-anchor.sock). Point it at berthd to run the
//! same scenarios there.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const DEFAULT_HOST: &str = "unix:///run/docker-anchor.sock";
pub const DOCKER: &str = "/usr/local/bin/docker";

pub struct Daemon {
    pub host: String,
    pub berth: PathBuf,
}

/// The daemon under test, or `None` (with a message) when its socket is absent.
pub fn daemon() -> Option<Daemon> {
    let host = std::env::var("BERTH_TEST_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_string());
    if let Some(p) = host.strip_prefix("unix://") {
        if !Path::new(p).exists() {
            eprintln!("SKIP: no daemon socket at {p} (start /work/shared/anchors/start-peers.sh or set BERTH_TEST_HOST)");
            return None;
        }
    }
    Some(Daemon {
        host,
        berth: berth_bin(),
    })
}

/// `berth` lives next to the test executable's `deps/` directory.
pub fn berth_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target dir");
    dir.join("berth")
}

pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "berth-cli-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Daemon {
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.berth);
        c.arg("-H").arg(&self.host).args(args);
        c.env_remove("DOCKER_HOST").env_remove("BERTH_HOST");
        c.stdin(Stdio::null());
        c
    }

    pub fn berth(&self, args: &[&str]) -> Run {
        self.berth_cmd(args).output().expect("run berth").into()
    }

    /// Runs berth and insists on success.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.berth(args);
        assert_eq!(r.code, 0, "berth {args:?} failed: {}{}", r.stdout, r.stderr);
        r.stdout
    }

    pub fn docker(&self, args: &[&str]) -> Run {
        Command::new(DOCKER)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
            .into()
    }

    pub fn has_docker_cli(&self) -> bool {
        Path::new(DOCKER).exists()
    }

    /// Removes the container (and its anonymous volumes) when dropped.
    pub fn guard(&self, name: &str) -> Guard {
        Guard {
            host: self.host.clone(),
            berth: self.berth.clone(),
            kind: Kind::Container,
            name: name.to_string(),
        }
    }

    pub fn image_guard(&self, name: &str) -> Guard {
        Guard {
            host: self.host.clone(),
            berth: self.berth.clone(),
            kind: Kind::Image,
            name: name.to_string(),
        }
    }
}

enum Kind {
    Container,
    Image,
}

pub struct Guard {
    host: String,
    berth: PathBuf,
    kind: Kind,
    name: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let args: &[&str] = match self.kind {
            Kind::Container => &["rm", "-f", "-v"],
            Kind::Image => &["rmi", "-f"],
        };
        let _ = Command::new(&self.berth)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .arg(&self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `f` until it returns true; gives up (false) after `tries` attempts.
pub fn eventually(tries: usize, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}
