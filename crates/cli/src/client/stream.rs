//! Decoding of the daemon's streamed answers: the multiplexed stdio stream
//! (8-byte frame headers) and newline-delimited JSON (pull, events, stats).

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::Result;

/// The next data chunk of a streamed body, `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStream {
    Stdin,
    Stdout,
    Stderr,
}

/// Splits the multiplexed stream: each frame is `[type, 0, 0, 0, len u32 BE]`
/// followed by `len` bytes; type 0 stdin, 1 stdout, 2 stderr.
#[derive(Default)]
pub struct Demux {
    buf: BytesMut,
}

impl Demux {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes in; returns every frame completed by them.
    pub fn push(&mut self, data: &[u8]) -> Vec<(StdStream, Bytes)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.buf.len() >= 8 {
            let len =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            if self.buf.len() < 8 + len {
                break;
            }
            let kind = match self.buf[0] {
                0 => StdStream::Stdin,
                2 => StdStream::Stderr,
                _ => StdStream::Stdout,
            };
            self.buf.advance(8);
            out.push((kind, self.buf.split_to(len).freeze()));
        }
        out
    }

    /// Bytes of an unfinished frame left at the end of the stream.
    pub fn leftover(&self) -> usize {
        self.buf.len()
    }
}

/// Splits a byte stream into JSON values separated by newlines (or simply
/// concatenated, as some daemons send them).
#[derive(Default)]
pub struct JsonLines {
    buf: Vec<u8>,
}

impl JsonLines {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Value>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut consumed = 0;
        {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            loop {
                match it.next() {
                    Some(Ok(v)) => {
                        consumed = it.byte_offset();
                        out.push(v);
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return Err(e.into()),
                    None => {
                        consumed = self.buf.len();
                        break;
                    }
                }
            }
        }
        self.buf.drain(..consumed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_across_chunk_boundaries() {
        let mut d = Demux::new();
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 3];
        raw.extend_from_slice(b"out");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        raw.extend_from_slice(b"er");
        let first = d.push(&raw[..5]);
        assert!(first.is_empty());
        let rest = d.push(&raw[5..]);
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0], (StdStream::Stdout, Bytes::from_static(b"out")));
        assert_eq!(rest[1], (StdStream::Stderr, Bytes::from_static(b"er")));
        assert_eq!(d.leftover(), 0);
    }

    #[test]
    fn json_lines_split_partial_values() {
        let mut j = JsonLines::new();
        assert_eq!(j.push(br#"{"a":1}"#).unwrap().len(), 1);
        assert!(j.push(br#"{"b":"#).unwrap().is_empty());
        let v = j.push(b"2}\r\n{\"c\":3}\n").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1]["c"], 3);
    }
}
