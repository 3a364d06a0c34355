//! Docker's json-file log driver: one JSON object per line of output,
//! appended, rotated by size.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::timefmt;

/// Docker splits lines longer than this into separate entries.
const MAX_LINE: usize = 16 * 1024;

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
    /// Unterminated output per stream (index 0 = stdout, 1 = stderr).
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    pub fn open(path: PathBuf, max_size: Option<u64>, max_files: u32) -> io::Result<JsonLog> {
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            path,
            file,
            size,
            max_size: max_size.filter(|&m| m > 0),
            max_files: max_files.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Logs a chunk of output of `stream` (1 = stdout, 2 = stderr), one entry
    /// per complete line; the rest waits for more output or `flush`.
    pub fn write(&mut self, stream: u8, mut data: &[u8]) -> io::Result<()> {
        let idx = usize::from(stream == 2);
        let time = timefmt::now_rfc3339_nano();
        while !data.is_empty() {
            let room = MAX_LINE - self.partial[idx].len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.partial[idx].extend_from_slice(&window[..=nl]);
                    data = &data[nl + 1..];
                }
                None => {
                    self.partial[idx].extend_from_slice(window);
                    data = &data[window.len()..];
                    if self.partial[idx].len() < MAX_LINE {
                        break;
                    }
                }
            }
            let line = std::mem::take(&mut self.partial[idx]);
            self.entry(idx, &line, &time)?;
        }
        Ok(())
    }

    /// Writes whatever unterminated output is left, as Docker does at exit.
    pub fn flush(&mut self) -> io::Result<()> {
        let time = timefmt::now_rfc3339_nano();
        for idx in 0..2 {
            let line = std::mem::take(&mut self.partial[idx]);
            if !line.is_empty() {
                self.entry(idx, &line, &time)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, idx: usize, line: &[u8], time: &str) -> io::Result<()> {
        let text = String::from_utf8_lossy(line);
        let mut buf = serde_json::to_vec(&Entry {
            log: &text,
            stream: if idx == 0 { "stdout" } else { "stderr" },
            time,
        })
        .map_err(io::Error::other)?;
        buf.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + buf.len() as u64 > max {
                self.rotate()?;
            }
        }
        // One write per entry: with O_APPEND a reader never sees half a line
        // interleaved with another writer's.
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files > 1 {
            for i in (1..self.max_files - 1).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, i + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
            self.file = open_append(&self.path)?;
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn numbered(path: &std::path::Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn open_append(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &std::path::Path) -> Vec<(String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert!(v["time"].as_str().unwrap().ends_with('Z'));
                (
                    v["log"].as_str().unwrap().to_string(),
                    v["stream"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn lines_split_joined_and_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(path.clone(), None, 1).unwrap();
        log.write(1, b"hel").unwrap();
        log.write(2, b"oops\n").unwrap();
        log.write(1, b"lo\nworld\n\"q\"\ntail").unwrap();
        let long = vec![b'x'; MAX_LINE + 10];
        log.write(2, &long).unwrap();
        log.flush().unwrap();
        let got = entries(&path);
        assert_eq!(
            got,
            vec![
                ("oops\n".into(), "stderr".into()),
                ("hello\n".into(), "stdout".into()),
                ("world\n".into(), "stdout".into()),
                ("\"q\"\n".into(), "stdout".into()),
                ("x".repeat(MAX_LINE), "stderr".into()),
                ("tail".into(), "stdout".into()),
                ("x".repeat(10), "stderr".into()),
            ]
        );
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(path.clone(), Some(200), 3).unwrap();
        for i in 0..20 {
            log.write(1, format!("line number {i}\n").as_bytes())
                .unwrap();
        }
        assert!(numbered(&path, 1).exists());
        assert!(numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists());
        for p in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            assert!(std::fs::metadata(&p).unwrap().len() <= 200);
        }
        let last = entries(&path);
        assert_eq!(last.last().unwrap().0, "line number 19\n");
        let older = entries(&numbered(&path, 1));
        let first_newer: usize = last[0].0["line number ".len()..].trim().parse().unwrap();
        let last_older: usize = older.last().unwrap().0["line number ".len()..]
            .trim()
            .parse()
            .unwrap();
        assert_eq!(last_older + 1, first_newer);
    }

    #[test]
    fn one_file_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonLog::open(path.clone(), Some(100), 1).unwrap();
        for i in 0..10 {
            log.write(2, format!("entry {i}\n").as_bytes()).unwrap();
        }
        assert!(!numbered(&path, 1).exists());
        let got = entries(&path);
        assert_eq!(got.last().unwrap().0, "entry 9\n");
        assert!(got.len() < 10);
    }
}
