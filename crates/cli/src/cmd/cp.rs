//! `cp`: copies between the local filesystem and a container through the
//! archive endpoints, with docker's naming rules (copy into an existing
//! directory, or create/replace the destination under its own name).

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine;
use bytes::Bytes;
use clap::Args;
use serde_json::Value;
use tokio::sync::mpsc;

use super::Ctx;
use crate::client::stream::next_chunk;
use crate::client::{check, Query, ReqBody};
use crate::format::units;

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH or -
    pub src: String,
    /// CONTAINER:DEST_PATH or DEST_PATH or -
    pub dst: String,
}

/// "name:path" → Some((name, path)); a local path with a colon must start with `/` or `.`.
fn split_container(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    if c.is_empty() || c.contains('/') {
        return None;
    }
    Some((c, p))
}

pub async fn cp(ctx: &Ctx, a: CpArgs) -> anyhow::Result<()> {
    match (split_container(&a.src), split_container(&a.dst)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((c, p)), None) => from_container(ctx, &a, c, p).await,
        (None, Some((c, p))) => to_container(ctx, &a, c, p).await,
    }
}

#[derive(Debug)]
struct PathStat {
    name: String,
    is_dir: bool,
}

/// The `X-Docker-Container-Path-Stat` header: base64 JSON with a Go FileMode.
fn parse_stat(headers: &http::HeaderMap) -> Option<PathStat> {
    let raw = headers.get("x-docker-container-path-stat")?.to_str().ok()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let mode = v["mode"].as_u64().unwrap_or(0);
    Some(PathStat {
        name: v["name"].as_str().unwrap_or("").to_string(),
        is_dir: mode & (1 << 31) != 0,
    })
}

fn relative_safe(p: &Path) -> bool {
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

async fn from_container(ctx: &Ctx, a: &CpArgs, container: &str, src: &str) -> anyhow::Result<()> {
    let q = Query::new().set("path", src);
    let resp = ctx
        .client
        .call(
            http::Method::GET,
            &format!("/containers/{container}/archive"),
            &q,
            ReqBody::empty(),
            &[],
        )
        .await?;
    let stat = parse_stat(resp.headers());
    let mut body = resp.into_body();
    if a.dst == "-" {
        let mut o = std::io::stdout().lock();
        while let Some(chunk) = next_chunk(&mut body).await? {
            o.write_all(&chunk)?;
        }
        o.flush()?;
        return Ok(());
    }
    // Spool to a temp file: the tar crate reads synchronously.
    let mut spool = tempfile::tempfile()?;
    let mut total = 0u64;
    while let Some(chunk) = next_chunk(&mut body).await? {
        total += chunk.len() as u64;
        spool.write_all(&chunk)?;
    }
    let dst = PathBuf::from(&a.dst);
    let dst_meta = std::fs::metadata(&dst).ok();
    let src_is_dir = stat.as_ref().map(|s| s.is_dir).unwrap_or(false);
    let copy_contents = src.ends_with("/.");
    let spool_reader = || -> anyhow::Result<std::fs::File> {
        use std::io::Seek;
        let mut f = spool.try_clone()?;
        f.seek(std::io::SeekFrom::Start(0))?;
        Ok(f)
    };
    match dst_meta {
        Some(m) if m.is_dir() => {
            extract(spool_reader()?, &dst, a.archive)?;
        }
        Some(_) if src_is_dir => bail!("cannot copy a directory to a file: {}", dst.display()),
        _ => {
            if a.dst.ends_with('/') && dst_meta.is_none() && !src_is_dir {
                bail!("destination directory {} does not exist", dst.display());
            }
            let parent = dst
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!("destination directory {} does not exist", parent.display());
            }
            let name = dst
                .file_name()
                .ok_or_else(|| anyhow!("invalid destination {}", dst.display()))?;
            // Extract beside the destination, then move the copied item into place.
            let tmp = tempfile::Builder::new()
                .prefix(".berth-cp")
                .tempdir_in(parent)?;
            extract(spool_reader()?, tmp.path(), a.archive)?;
            let top = if copy_contents {
                tmp.path().to_path_buf()
            } else {
                let n = stat.as_ref().map(|s| s.name.clone()).unwrap_or_else(|| {
                    Path::new(src)
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default()
                });
                tmp.path().join(n)
            };
            if !top.exists() {
                bail!("the container's archive did not contain {src}");
            }
            let target = parent.join(name);
            if copy_contents {
                std::fs::create_dir_all(&target)?;
                for e in std::fs::read_dir(&top)? {
                    let e = e?;
                    std::fs::rename(e.path(), target.join(e.file_name()))?;
                }
            } else {
                std::fs::rename(&top, &target)
                    .with_context(|| format!("moving into {}", target.display()))?;
            }
        }
    }
    if !a.quiet {
        eprintln!(
            "Successfully copied {} to {}",
            units::human_size(total as f64),
            a.dst
        );
    }
    Ok(())
}

fn extract(r: std::fs::File, into: &Path, archive: bool) -> anyhow::Result<()> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(archive);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if !relative_safe(&path) {
            bail!("archive entry {} escapes the destination", path.display());
        }
        entry.unpack_in(into)?;
    }
    Ok(())
}

/// Where a copy into the container lands: (directory to extract in, name
/// for the top entry of the tar).
async fn container_target(
    ctx: &Ctx,
    container: &str,
    dst: &str,
    src_name: &str,
) -> anyhow::Result<(String, String)> {
    let q = Query::new().set("path", dst);
    let resp = ctx
        .client
        .call(
            http::Method::HEAD,
            &format!("/containers/{container}/archive"),
            &q,
            ReqBody::empty(),
            &[],
        )
        .await;
    let stat = match resp {
        Ok(r) => parse_stat(r.headers()),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    match stat {
        Some(s) if s.is_dir => Ok((dst.to_string(), src_name.to_string())),
        _ => {
            if dst.ends_with('/') {
                bail!("Error response from daemon: Could not find the file {dst} in container {container}");
            }
            let p = Path::new(dst);
            let parent = p
                .parent()
                .map(|p| p.to_string_lossy().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/".into());
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .ok_or_else(|| anyhow!("invalid destination {dst}"))?;
            Ok((parent, name))
        }
    }
}

/// A `Write` that hands chunks to the request body channel.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    total: u64,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.total += buf.len() as u64;
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload ended"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn to_container(ctx: &Ctx, a: &CpArgs, container: &str, dst: &str) -> anyhow::Result<()> {
    let (dir, body, size_rx) = if a.src == "-" {
        (dst.to_string(), ReqBody::reader(tokio::io::stdin()), None)
    } else {
        let src = PathBuf::from(&a.src);
        let meta = if a.follow_link {
            std::fs::metadata(&src)
        } else {
            std::fs::symlink_metadata(&src)
        }
        .with_context(|| format!("could not stat {}", src.display()))?;
        let copy_contents = a.src.ends_with("/.");
        let src_name = src
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| a.src.clone());
        let (dir, name) = if copy_contents {
            (dst.to_string(), ".".to_string())
        } else {
            container_target(ctx, container, dst, &src_name).await?
        };
        let (tx, rx) = mpsc::channel(8);
        let (size_tx, size_rx) = tokio::sync::oneshot::channel();
        let follow = a.follow_link;
        tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter {
                tx: tx.clone(),
                total: 0,
            };
            let r = (|| -> std::io::Result<()> {
                let mut b = tar::Builder::new(&mut w);
                b.follow_symlinks(follow);
                if meta.is_dir() {
                    b.append_dir_all(&name, &src)?;
                } else {
                    b.append_path_with_name(&src, &name)?;
                }
                b.finish()
            })();
            let _ = size_tx.send(w.total);
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(e));
            }
        });
        (dir, ReqBody::Stream(rx), Some(size_rx))
    };
    let q = Query::new()
        .set("path", dir)
        .set("noOverwriteDirNonDir", "true")
        .flag("copyUIDGID", a.archive);
    let req_path = format!("/containers/{container}/archive");
    let resp = ctx
        .client
        .call(
            http::Method::PUT,
            &req_path,
            &q,
            body,
            &[("content-type", "application/x-tar".to_string())],
        )
        .await?;
    check(resp).await?;
    if !a.quiet {
        let total = match size_rx {
            Some(rx) => rx.await.unwrap_or(0),
            None => 0,
        };
        eprintln!(
            "Successfully copied {} to {}:{}",
            units::human_size(total as f64),
            container,
            dst
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        assert_eq!(
            split_container("box:/etc/hosts"),
            Some(("box", "/etc/hosts"))
        );
        assert_eq!(split_container("./a:b"), None);
        assert_eq!(split_container("/tmp/x"), None);
        assert_eq!(split_container("dir/a:b"), None);
    }
}
