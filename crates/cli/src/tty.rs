//! The local terminal: raw mode (restored when the guard drops), its size, and
//! the detach key sequence (ctrl-p ctrl-q by default).

use std::io::IsTerminal;

use rustix::termios::{self, OptionalActions, Termios};

/// Puts stdin's terminal in raw mode; the previous mode comes back on drop.
pub struct RawGuard {
    saved: Termios,
}

impl RawGuard {
    /// `None` when stdin is not a terminal.
    pub fn stdin() -> std::io::Result<Option<RawGuard>> {
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        let fd = stdin_fd();
        let saved = termios::tcgetattr(&fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&fd, OptionalActions::Now, &raw)?;
        Ok(Some(RawGuard { saved }))
    }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(stdin_fd(), OptionalActions::Now, &self.saved);
    }
}

fn stdin_fd() -> std::io::Stdin {
    std::io::stdin()
}

/// Rows and columns of the terminal on stdout (or stdin), if there is one.
pub fn size() -> Option<(u16, u16)> {
    let sizes = [
        termios::tcgetwinsize(std::io::stdout()),
        termios::tcgetwinsize(std::io::stdin()),
        termios::tcgetwinsize(std::io::stderr()),
    ];
    sizes
        .into_iter()
        .flatten()
        .find(|ws| ws.ws_row > 0 && ws.ws_col > 0)
        .map(|ws| (ws.ws_row, ws.ws_col))
}

/// Reads a line from the terminal without echoing it (password prompts).
pub fn read_password() -> std::io::Result<String> {
    let mut line = String::new();
    if std::io::stdin().is_terminal() {
        let fd = stdin_fd();
        let saved = termios::tcgetattr(&fd)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(termios::LocalModes::ECHO);
        termios::tcsetattr(&fd, OptionalActions::Now, &quiet)?;
        let r = std::io::stdin().read_line(&mut line);
        let _ = termios::tcsetattr(&fd, OptionalActions::Now, &saved);
        eprintln!();
        r?;
    } else {
        std::io::stdin().read_line(&mut line)?;
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[derive(Debug, thiserror::Error)]
#[error("invalid detach keys ({0}): expected comma-separated ctrl-<key> or single characters")]
pub struct BadDetachKeys(String);

/// Parses docker's `--detach-keys` ("ctrl-p,ctrl-q", "a,ctrl-@").
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, BadDetachKeys> {
    let mut out = Vec::new();
    for k in s.split(',') {
        let k = k.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(BadDetachKeys(s.into())),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(BadDetachKeys(s.into()));
        }
    }
    if out.is_empty() {
        return Err(BadDetachKeys(s.into()));
    }
    Ok(out)
}

/// Watches stdin bytes for the detach sequence. Bytes of a partial match are
/// held back and released if the sequence breaks off.
pub struct DetachWatcher {
    keys: Vec<u8>,
    matched: usize,
}

pub enum Scan {
    /// Forward these bytes.
    Forward(Vec<u8>),
    /// The sequence was typed: forward these bytes, then detach.
    Detach(Vec<u8>),
}

impl DetachWatcher {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachWatcher { keys, matched: 0 }
    }

    pub fn scan(&mut self, data: &[u8]) -> Scan {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return Scan::Detach(out);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        Scan::Forward(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-pp").is_err());
    }

    #[test]
    fn watcher_holds_partial_matches() {
        let mut w = DetachWatcher::new(vec![16, 17]);
        assert!(matches!(w.scan(b"ab\x10"), Scan::Forward(v) if v == b"ab"));
        assert!(matches!(w.scan(b"c"), Scan::Forward(v) if v == b"\x10c"));
        assert!(matches!(w.scan(b"x\x10\x11y"), Scan::Detach(v) if v == b"x"));
    }
}
