//! `docker logs`: reads the json-file log the monitor writes, with tail, since/until,
//! timestamps and follow (until the container stops).

use super::Containers;
use crate::error::{Error, Result};
use bytes::Bytes;
use serde::Deserialize;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// `None` = all.
    pub tail: Option<usize>,
    /// Each line after the attributes the log options give (`--details`).
    pub details: bool,
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// One log entry, ready to send: framed for non-TTY containers, raw for TTY ones. `details`:
/// the attributes that go before each line.
fn encode(l: &Line, opts: &LogOptions, tty: bool, details: Option<&[u8]>) -> Option<Bytes> {
    let stream = match l.stream.as_str() {
        "stdout" if opts.stdout => 1u8,
        "stderr" if opts.stderr => 2u8,
        _ => return None,
    };
    let t = crate::time::parse_rfc3339(&l.time);
    if let (Some(since), Some(t)) = (opts.since, t) {
        if t < since {
            return None;
        }
    }
    if let (Some(until), Some(t)) = (opts.until, t) {
        if t > until {
            return None;
        }
    }
    let mut payload = Vec::with_capacity(l.log.len() + 32);
    if opts.timestamps {
        payload.extend_from_slice(l.time.as_bytes());
        payload.push(b' ');
    }
    if let Some(attrs) = details {
        payload.extend_from_slice(attrs);
        payload.push(b' ');
    }
    payload.extend_from_slice(l.log.as_bytes());
    if tty {
        return Some(payload.into());
    }
    let mut framed = Vec::with_capacity(payload.len() + 8);
    framed.extend_from_slice(&[stream, 0, 0, 0]);
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(&payload);
    Some(framed.into())
}

/// What Docker's log drivers attach to each line for `--details`: the container labels named
/// by the `labels` log option or matching `labels-regex`, and the environment variables
/// named by `env` or matching `env-regex`, as `key=value` pairs sorted by key, both
/// query-escaped, joined by commas. Docker computes them when the container starts; they
/// depend on nothing that changes after create.
fn detail_attrs(c: &super::model::Container) -> Result<Vec<u8>> {
    let opts = &c.host_config.log_config.config;
    let mut attrs = std::collections::BTreeMap::new();
    let listed = |key: &str| -> Vec<String> {
        opts.get(key)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let pattern = |key: &str| -> Result<Option<regex::Regex>> {
        match opts.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(p) => regex::Regex::new(p)
                .map(Some)
                .map_err(|e| Error::invalid(format!("invalid log option {key}: {e}"))),
        }
    };
    let labels = &c.config.labels;
    for name in listed("labels") {
        if let Some(v) = labels.get(&name) {
            attrs.insert(name, v.clone());
        }
    }
    if let Some(re) = pattern("labels-regex")? {
        for (k, v) in labels.iter().filter(|(k, _)| re.is_match(k)) {
            attrs.insert(k.clone(), v.clone());
        }
    }
    let env: std::collections::HashMap<&str, &str> = c
        .config
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .collect();
    for name in listed("env") {
        if let Some(v) = env.get(name.as_str()) {
            attrs.insert(name, v.to_string());
        }
    }
    if let Some(re) = pattern("env-regex")? {
        for (k, v) in env.iter().filter(|(k, _)| re.is_match(k)) {
            attrs.insert(k.to_string(), v.to_string());
        }
    }
    let pairs: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    Ok(pairs.join(",").into_bytes())
}

/// Go's `url.QueryEscape`, which Docker applies to each attribute.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The rotated files, oldest first, then the live one.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for i in (1..=32).rev() {
        let p = PathBuf::from(format!("{}.{i}", path.display()));
        if p.exists() {
            v.push(p);
        }
    }
    v.push(path.to_path_buf());
    v
}

impl Containers {
    /// Streams the log into the returned channel; the channel closes at the end (or, with
    /// follow, when the container stops and everything was sent).
    pub fn logs(
        &self,
        name_or_id: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<std::io::Result<Bytes>>)> {
        let entry = self.get(name_or_id)?;
        let rec = entry.snapshot();
        if matches!(rec.host_config.log_config.kind.as_str(), "none") {
            return Err(Error::invalid(
                "configured logging driver does not support reading",
            ));
        }
        let tty = rec.config.tty;
        let path = PathBuf::from(&rec.log_path);
        let details = opts.details.then(|| detail_attrs(&rec)).transpose()?;
        let (tx, rx) = mpsc::channel(64);
        let run = entry.run.subscribe();
        tokio::task::spawn_blocking(move || {
            let _ = stream_logs(&path, &opts, tty, details.as_deref(), &tx, run);
        });
        Ok((tty, rx))
    }
}

fn stream_logs(
    path: &Path,
    opts: &LogOptions,
    tty: bool,
    details: Option<&[u8]>,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
    run: tokio::sync::watch::Receiver<super::RunState>,
) -> std::io::Result<()> {
    let send = |b: Bytes| tx.blocking_send(Ok(b)).is_ok();
    let mut entries: Vec<Bytes> = Vec::new();
    let all = files(path);
    let (older, live) = all.split_at(all.len() - 1);
    for f in older {
        if let Ok(file) = std::fs::File::open(f) {
            for line in BufReader::new(file).lines().map_while(|l| l.ok()) {
                if let Ok(l) = serde_json::from_str::<Line>(&line) {
                    entries.extend(encode(&l, opts, tty, details));
                }
            }
        }
    }
    let mut file = match std::fs::File::open(&live[0]) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut pos = 0u64;
    let mut partial = String::new();
    if let Some(f) = file.as_mut() {
        let mut r = BufReader::new(&mut *f);
        let mut buf = String::new();
        while r.read_line(&mut buf)? > 0 {
            if !buf.ends_with('\n') {
                partial = std::mem::take(&mut buf);
                break;
            }
            if let Ok(l) = serde_json::from_str::<Line>(buf.trim_end()) {
                entries.extend(encode(&l, opts, tty, details));
            }
            pos += buf.len() as u64;
            buf.clear();
        }
    }
    let skip = match opts.tail {
        Some(n) => entries.len().saturating_sub(n),
        None => 0,
    };
    for e in entries.into_iter().skip(skip) {
        if !send(e) {
            return Ok(());
        }
    }
    if !opts.follow {
        return Ok(());
    }
    let _ = partial;
    // Follow: poll for growth until the container is no longer running and the file is drained.
    loop {
        let running = run.borrow().running;
        if file.is_none() {
            file = std::fs::File::open(path).ok();
            pos = 0;
        }
        let mut progressed = false;
        if let Some(f) = file.as_mut() {
            let len = f.metadata()?.len();
            if len < pos {
                // Rotated: the live file is new.
                file = std::fs::File::open(path).ok();
                pos = 0;
                continue;
            }
            if len > pos {
                f.seek(SeekFrom::Start(pos))?;
                let mut r = BufReader::new(&mut *f);
                let mut buf = String::new();
                while r.read_line(&mut buf)? > 0 {
                    if !buf.ends_with('\n') {
                        break;
                    }
                    pos += buf.len() as u64;
                    progressed = true;
                    if let Ok(l) = serde_json::from_str::<Line>(buf.trim_end()) {
                        if let Some(b) = encode(&l, opts, tty, details) {
                            if !send(b) {
                                return Ok(());
                            }
                        }
                    }
                    buf.clear();
                }
            }
        }
        if tx.is_closed() {
            return Ok(());
        }
        if !running && !progressed {
            return Ok(());
        }
        if let Some(until) = opts.until {
            if SystemTime::now() > until {
                return Ok(());
            }
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
