//! What travels over the monitor's sockets and its stdout: JSON lines on
//! control.sock, a JSON header line then Docker's multiplexed frames on
//! attach.sock, the ready line, and exit.json.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// A request on control.sock: one JSON line per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Start,
    Resize { height: u16, width: u16 },
    Wait,
    Status,
    CloseStdin,
}

/// The first line an attach client sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub stderr: bool,
}

/// How the process ended; the `wait` answer and the content of exit.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// The exit status, or 128 + signal when a signal killed it.
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// RFC3339Nano, UTC.
    pub finished_at: String,
    pub oom_killed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Exited,
}

/// The `status` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    /// The init (or exec) process; 0 before an exec has started.
    pub pid: i32,
    pub exit_code: Option<i32>,
}

/// Every answer line, read leniently: each reply fills the fields it has.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Reply {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub listening: bool,
    #[serde(default)]
    pub state: Option<State>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub oom_killed: Option<bool>,
}

// The monitor's side: one small struct per answer shape, so each carries
// exactly the fields the contract names.

#[derive(Serialize)]
pub(crate) struct OkReply {
    pub ok: bool,
}

#[derive(Serialize)]
pub(crate) struct PidReply {
    pub ok: bool,
    pub pid: i32,
}

/// The first line of a monitor expecting attach clients before it starts the container.
#[derive(Serialize)]
pub(crate) struct Listening {
    pub ok: bool,
    pub listening: bool,
}

#[derive(Serialize)]
pub(crate) struct ErrorReply<'a> {
    pub ok: bool,
    pub error: &'a str,
}

#[derive(Serialize)]
pub(crate) struct WaitReply<'a> {
    pub ok: bool,
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub finished_at: &'a str,
    pub oom_killed: bool,
}

#[derive(Serialize)]
pub(crate) struct StatusReply {
    pub ok: bool,
    pub state: State,
    pub pid: i32,
    pub exit_code: Option<i32>,
}

/// Serialises one answer as a line.
pub(crate) fn line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(value).unwrap_or_else(|_| br#"{"ok":false}"#.to_vec());
    v.push(b'\n');
    v
}

pub(crate) fn error_line(msg: &str) -> Vec<u8> {
    line(&ErrorReply {
        ok: false,
        error: msg,
    })
}

/// Stream numbers of Docker's multiplexed format.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// The 8-byte header of one multiplexed frame.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Reads one multiplexed frame; `None` at a clean end of stream.
pub fn read_frame<R: Read>(r: &mut R) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    Ok(Some((header[0], payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_in_contract_shape() {
        let r: Request =
            serde_json::from_str(r#"{"op":"resize","height":30,"width":100}"#).unwrap();
        assert_eq!(
            r,
            Request::Resize {
                height: 30,
                width: 100
            }
        );
        let r: Request = serde_json::from_str(r#"{"op":"close_stdin"}"#).unwrap();
        assert_eq!(r, Request::CloseStdin);
        let w = String::from_utf8(line(&WaitReply {
            ok: true,
            exit_code: 137,
            signal: Some(9),
            finished_at: "2026-11-29T08:00:00Z",
            oom_killed: false,
        }))
        .unwrap();
        assert_eq!(
            w,
            "{\"ok\":true,\"exit_code\":137,\"signal\":9,\"finished_at\":\"2026-11-29T08:00:00Z\",\"oom_killed\":false}\n"
        );
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = frame_header(STDERR, 3).to_vec();
        buf.extend_from_slice(b"abc");
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some((2, b"abc".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }
}
