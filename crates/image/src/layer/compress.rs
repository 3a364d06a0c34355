//! Layer compression for push: gzip written as a series of independent members, one per
//! 1 MiB of input, compressed on all cores. Gzip readers (Go's, so Docker's and containerd's;
//! skopeo; flate2's MultiGzDecoder) read multi-member files as one stream. Chunks that do not
//! shrink (already compressed or random data) are stored instead of deflated, which costs
//! almost nothing, where deflating them would cost most of the push time.
//!
//! The output depends only on the input and the level, so pushing the same layer twice gives
//! the same blob digest.

use std::io::{self, Read, Write};

const CHUNK: usize = 1 << 20;
/// A chunk is stored when a level-1 trial of its first 64 KiB saves less than 3%.
const SAMPLE: usize = 64 << 10;

fn member(chunk: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new().write(
        Vec::with_capacity(chunk.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    enc.write_all(chunk)?;
    enc.finish()
}

fn compress_chunk(chunk: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let sample = &chunk[..chunk.len().min(SAMPLE)];
    let trial = member(sample, 1)?;
    if trial.len() as f64 > sample.len() as f64 * 0.97 {
        return member(chunk, 0);
    }
    let out = member(chunk, level)?;
    if out.len() >= chunk.len() {
        return member(chunk, 0);
    }
    Ok(out)
}

fn read_full(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut taken = r.take(CHUNK as u64);
    taken.read_to_end(buf)?;
    Ok(())
}

/// Compresses `input` into `out` as multi-member gzip on `threads` threads.
/// Returns (bytes read, bytes written).
pub fn gzip_parallel(
    mut input: impl Read,
    mut out: impl Write,
    level: u32,
    threads: usize,
) -> io::Result<(u64, u64)> {
    let threads = threads.max(1);
    let (mut read, mut written) = (0u64, 0u64);
    let mut bufs: Vec<Vec<u8>> = (0..threads).map(|_| Vec::with_capacity(CHUNK)).collect();
    loop {
        let mut n = 0;
        for b in bufs.iter_mut() {
            read_full(&mut input, b)?;
            if b.is_empty() {
                break;
            }
            read += b.len() as u64;
            n += 1;
        }
        if n == 0 {
            break;
        }
        let outputs: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = bufs[..n]
                .iter()
                .map(|b| s.spawn(move || compress_chunk(b, level)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("compressor panicked")))
                })
                .collect()
        });
        for o in outputs {
            let o = o?;
            out.write_all(&o)?;
            written += o.len() as u64;
        }
        if n < threads || bufs[n - 1].len() < CHUNK {
            break;
        }
    }
    if read == 0 {
        // An empty layer still needs a valid gzip stream.
        let m = member(&[], level)?;
        out.write_all(&m)?;
        written += m.len() as u64;
    }
    out.flush()?;
    Ok((read, written))
}

pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic() {
        let mut data = Vec::new();
        for i in 0..(3 * CHUNK + 12345) {
            // Half text-like, half noise.
            let x = (i as u64).wrapping_mul(6364136223846793005).rotate_left(17) as u8;
            data.push(if (i / CHUNK) & 1 == 0 {
                b"abcdefgh"[i % 8]
            } else {
                x
            });
        }
        let mut a = Vec::new();
        let (r, w) = gzip_parallel(&data[..], &mut a, 6, 3).unwrap();
        assert_eq!((r, w), (data.len() as u64, a.len() as u64));
        let mut b = Vec::new();
        gzip_parallel(&data[..], &mut b, 6, 2).unwrap();
        assert_eq!(a, b, "output must not depend on the thread count");
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&a[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        let mut empty = Vec::new();
        gzip_parallel(&[][..], &mut empty, 6, 2).unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
