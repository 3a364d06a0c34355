//! Times layer extraction alone: `cargo run -p berth-image --example apply_bench -- LAYER`
//! (LAYER = a tar, tar.gz or tar.zst). Prints snapshot apply (with syncfs), bare apply, and a
//! content-store write (hash + fsync) of the same file.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let src = std::env::args().nth(1).ok_or("usage: apply_bench LAYER")?;
    let tmp = tempfile::tempdir()?;
    let open = || -> std::io::Result<_> { Ok(std::io::BufReader::new(std::fs::File::open(&src)?)) };

    let snapshots = berth_image::SnapshotStore::open(tmp.path())?;
    let key = berth_image::Digest::sha256_of(src.as_bytes());
    let t = Instant::now();
    let stats = snapshots.apply(&key, None, open()?)?;
    println!(
        "snapshot apply (syncfs): {:?} ({:?}, {} bytes uncompressed)",
        t.elapsed(),
        stats.compression,
        stats.uncompressed_size
    );

    let dir = tmp.path().join("bare");
    std::fs::create_dir(&dir)?;
    let t = Instant::now();
    berth_image::layer::apply_layer(open()?, &dir)?;
    println!("apply_layer (no sync):   {:?}", t.elapsed());

    let content = berth_image::ContentStore::open(tmp.path())?;
    let t = Instant::now();
    content.write_blob(&mut open()?, None, None)?;
    println!("content write (fsync):   {:?}", t.elapsed());
    Ok(())
}
