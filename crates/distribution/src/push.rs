//! Push: layers the registry lacks are uploaded in parallel (cross-repository mount when the
//! image came from another repository of the same registry, else one streamed PUT or PATCH
//! chunks), then the manifest by tag. Uncompressed layers (from `load` or `import`) are
//! gzipped first, as Docker pushes them.

use crate::client::{check, empty, header_str, Body, Call, RegistryClient};
use crate::error::{Error, Result};
use crate::progress::{short_id, Progress, ProgressFn};
use berth_image::manifest::{is_non_distributable, Compression, OCI_CONFIG, OCI_MANIFEST};
use berth_image::{Digest, ImageService, Reference};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use std::io::Read;
use std::sync::Arc;

enum Source {
    /// A foreign / non-distributable layer: not uploaded, its descriptor kept as it is.
    Skip(serde_json::Value),
    Ready(PushBlob),
    /// An uncompressed layer, gzipped while it uploads, unless the registry already has the
    /// gzip an earlier push made of it (`known`).
    Gzip {
        src: Digest,
        known: Option<Digest>,
    },
}

struct PushBlob {
    digest: Digest,
    size: u64,
    media_type: String,
}

impl PushBlob {
    fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({"mediaType": self.media_type, "digest": self.digest.to_string(), "size": self.size})
    }
}

fn scope_push(path: &str) -> String {
    format!("repository:{path}:pull,push")
}

/// Streams a content-store blob as a request body, read on a blocking thread.
fn blob_body(svc: &Arc<ImageService>, d: &Digest, offset: u64, len: u64) -> Result<Body> {
    let mut f = svc.content.open_blob(d)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<http_body::Frame<Bytes>>>(8);
    tokio::task::spawn_blocking(move || {
        use std::io::{Seek, SeekFrom};
        if let Err(e) = f.seek(SeekFrom::Start(offset)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; (256 * 1024).min(left as usize)];
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx
                        .blocking_send(Ok(http_body::Frame::data(Bytes::from(buf))))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(BodyExt::boxed(StreamBody::new(stream)))
}

impl RegistryClient {
    /// `docker push`: uploads `local` (name or ID) as `target` and returns the manifest digest.
    pub async fn push(
        &self,
        svc: Arc<ImageService>,
        local: &str,
        target: &Reference,
        progress: ProgressFn<'_>,
    ) -> Result<Digest> {
        let rec = svc.images.resolve(local)?;
        let manifest = svc.manifest_of(&rec)?;
        // Another repository of the same registry this image is known in: a mount source.
        let mount_from = rec
            .repo_digests
            .iter()
            .chain(&rec.repo_tags)
            .filter_map(|s| Reference::parse_normalized(s).ok())
            .find(|o| o.domain() == target.domain() && o.path() != target.path())
            .map(|o| o.path().to_string());

        let mut changed = false;
        let mut sources = Vec::new();
        for l in manifest.layers() {
            let d = Digest::from_oci(l.digest())?;
            if is_non_distributable(l.media_type().as_ref()) {
                progress(Progress::SkippedForeign { id: short_id(&d) });
                sources.push(Source::Skip(
                    serde_json::to_value(l).map_err(|e| Error::Protocol(e.to_string()))?,
                ));
                continue;
            }
            let comp =
                Compression::from_media_type(l.media_type().as_ref()).unwrap_or(Compression::Gzip);
            if comp != Compression::None {
                sources.push(Source::Ready(PushBlob {
                    digest: d,
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                }));
                continue;
            }
            changed = true;
            let mut gz = svc.content.derived(GZIP, &d);
            if gz.is_none() && self.opts.chunk_size.is_some() {
                // Chunked uploads send ranges of a finished blob: compress first.
                progress(Progress::Preparing { id: short_id(&d) });
                let (svc2, d2) = (svc.clone(), d.clone());
                gz = Some(
                    tokio::task::spawn_blocking(move || gzip_to_store(&svc2, &d2))
                        .await
                        .map_err(|e| Error::Task(e.to_string()))??,
                );
            }
            match gz {
                Some(gz) => sources.push(Source::Ready(PushBlob {
                    size: svc.content.size(&gz)?,
                    digest: gz,
                    media_type: Compression::Gzip.oci_layer_media_type().into(),
                })),
                None => sources.push(Source::Gzip {
                    known: svc.content.derived_digest(GZIP, &d),
                    src: d,
                }),
            }
        }
        let config = PushBlob {
            digest: rec.id.clone(),
            size: svc.content.size(&rec.id)?,
            media_type: OCI_CONFIG.into(),
        };
        sources.push(Source::Ready(config));
        // `buffered` keeps the order: the manifest lists layers as the image has them.
        // Descriptors of the layers as the registry now has them.
        let mut pushed: Vec<serde_json::Value> = stream::iter(sources.into_iter().map(|src| {
            let svc = svc.clone();
            let from = mount_from.clone();
            async move {
                match src {
                    Source::Skip(desc) => Ok(desc),
                    Source::Ready(b) => {
                        self.push_blob(&svc, target, &b, from.as_deref(), progress)
                            .await?;
                        Ok(b.descriptor())
                    }
                    Source::Gzip { src, known } => {
                        if let Some(gz) = known {
                            if let Some(b) = self
                                .find_in_registry(target, gz, from.as_deref(), progress)
                                .await?
                            {
                                return Ok(b.descriptor());
                            }
                        }
                        self.push_gzipping(&svc, target, &src, progress)
                            .await
                            .map(|b| b.descriptor())
                    }
                }
            }
        }))
        .buffered(self.opts.max_concurrent_uploads.max(1))
        .try_collect()
        .await?;
        pushed.pop(); // the config
        tracing::debug!(target = %target, "blobs pushed");
        let (manifest_bytes, manifest_type) = if changed {
            let layer_json = pushed;
            let m = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": rec.id.to_string(), "size": svc.content.size(&rec.id)?},
                "layers": layer_json,
            });
            let bytes = serde_json::to_vec(&m).map_err(|e| Error::Protocol(e.to_string()))?;
            svc.content.write_bytes(&bytes)?;
            (Bytes::from(bytes), OCI_MANIFEST.to_string())
        } else {
            let b = svc.content.read_blob(
                &rec.manifest_digest,
                berth_image::manifest::MAX_MANIFEST_SIZE,
            )?;
            (Bytes::from(b), rec.manifest_media_type.clone())
        };

        let digest = Digest::sha256_of(&manifest_bytes);
        let base = self.endpoint(target.domain()).await?;
        let tag = target.tag().unwrap_or("latest");
        let scope = scope_push(target.path());
        let resp = self
            .send(Call {
                registry: target.domain(),
                scope: &scope,
                method: Method::PUT,
                url: format!("{base}/v2/{}/manifests/{tag}", target.path()),
                headers: vec![(CONTENT_TYPE, manifest_type)],
                body: Some(manifest_bytes),
            })
            .await?;
        let resp = check(resp, target.domain(), "PUT manifest").await?;
        tracing::debug!(target = %target, "manifest put");
        if let Some(d) =
            header_str(&resp, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok())
        {
            if d != digest {
                return Err(Error::Protocol(format!(
                    "registry stored the manifest as {d}, we sent {digest}"
                )));
            }
        }
        let mut rec = rec;
        let rd = target.repository().with_digest(digest.clone()).to_string();
        if !rec.repo_digests.contains(&rd) {
            rec.repo_digests.push(rd);
            let svc2 = svc.clone();
            tokio::task::spawn_blocking(move || svc2.images.put(rec))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
        }
        progress(Progress::Done {
            digest: digest.to_string(),
        });
        Ok(digest)
    }

    /// A gzipped layer this store does not hold but an earlier push made: present in the
    /// target repository (HEAD), or mounted from `mount_from`. `None`: it must be uploaded.
    async fn find_in_registry(
        &self,
        target: &Reference,
        digest: Digest,
        mount_from: Option<&str>,
        progress: ProgressFn<'_>,
    ) -> Result<Option<PushBlob>> {
        let id = short_id(&digest);
        let base = self.endpoint(target.domain()).await?;
        let (path, registry) = (target.path(), target.domain());
        let scope = match mount_from {
            Some(f) => format!("{} repository:{f}:pull", scope_push(path)),
            None => scope_push(path),
        };
        let head = |url: String| Call {
            registry,
            scope: &scope,
            method: Method::HEAD,
            url,
            headers: vec![],
            body: None,
        };
        let blob_url = format!("{base}/v2/{path}/blobs/{digest}");
        let size_of = |resp: &http::Response<hyper::body::Incoming>| {
            header_str(resp, "content-length").and_then(|l| l.parse::<u64>().ok())
        };
        let resp = self.send(head(blob_url.clone())).await?;
        if resp.status() == StatusCode::OK {
            if let Some(size) = size_of(&resp) {
                progress(Progress::AlreadyExists { id });
                return Ok(Some(gzip_blob(digest, size)));
            }
        }
        let Some(from) = mount_from else {
            return Ok(None);
        };
        let resp = self
            .send(Call {
                method: Method::POST,
                url: format!("{base}/v2/{path}/blobs/uploads/?mount={digest}&from={from}"),
                ..head(String::new())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            // The registry opened an upload session instead; it expires unused.
            return Ok(None);
        }
        let resp = self.send(head(blob_url)).await?;
        match size_of(&resp).filter(|_| resp.status() == StatusCode::OK) {
            Some(size) => {
                progress(Progress::Mounted {
                    id,
                    from: from.to_string(),
                });
                Ok(Some(gzip_blob(digest, size)))
            }
            None => Ok(None),
        }
    }

    async fn push_blob(
        &self,
        svc: &Arc<ImageService>,
        target: &Reference,
        b: &PushBlob,
        mount_from: Option<&str>,
        progress: ProgressFn<'_>,
    ) -> Result<()> {
        let id = short_id(&b.digest);
        let base = self.endpoint(target.domain()).await?;
        let path = target.path();
        let registry = target.domain();
        let scope = match mount_from {
            Some(f) => format!("{} repository:{f}:pull", scope_push(path)),
            None => scope_push(path),
        };
        let call = |method: Method, url: String| Call {
            registry,
            scope: &scope,
            method,
            url,
            headers: vec![],
            body: None,
        };
        let resp = self
            .send(call(
                Method::HEAD,
                format!("{base}/v2/{path}/blobs/{}", b.digest),
            ))
            .await?;
        if resp.status() == StatusCode::OK {
            progress(Progress::AlreadyExists { id });
            return Ok(());
        }
        let start_url = match mount_from {
            Some(f) => format!(
                "{base}/v2/{path}/blobs/uploads/?mount={}&from={f}",
                b.digest
            ),
            None => format!("{base}/v2/{path}/blobs/uploads/"),
        };
        let resp = self.send(call(Method::POST, start_url)).await?;
        if resp.status() == StatusCode::CREATED && mount_from.is_some() {
            progress(Progress::Mounted {
                id,
                from: mount_from.unwrap_or_default().to_string(),
            });
            return Ok(());
        }
        // 202: an upload session (also the answer to a mount the registry could not do).
        let resp = check(resp, registry, "start blob upload").await?;
        let mut location = self.absolute(&base, &resp)?;
        let auth_scope = scope.clone();
        let send_body =
            |method: Method, url: String, body: Body, headers: Vec<(http::HeaderName, String)>| {
                let mut req = Request::builder().method(method).uri(url.clone());
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                if let Some(a) = self.cached_auth_pub(registry, &auth_scope) {
                    req = req.header(http::header::AUTHORIZATION, a);
                }
                req.body(body).map_err(|e| Error::Http {
                    url,
                    reason: crate::error::chain(&e),
                })
            };
        let mut sent = 0u64;
        if let Some(chunk) = self.opts.chunk_size.filter(|c| (*c as u64) < b.size) {
            while sent < b.size {
                let len = (chunk as u64).min(b.size - sent);
                let req = send_body(
                    Method::PATCH,
                    location.clone(),
                    blob_body(svc, &b.digest, sent, len)?,
                    vec![
                        (CONTENT_TYPE, "application/octet-stream".into()),
                        (CONTENT_LENGTH, len.to_string()),
                        (CONTENT_RANGE, format!("{}-{}", sent, sent + len - 1)),
                    ],
                )?;
                let resp = check(self.raw(req).await?, registry, "PATCH blob chunk").await?;
                location = self.absolute(&base, &resp)?;
                sent += len;
                progress(Progress::Pushing {
                    id: id.clone(),
                    current: sent,
                    total: b.size,
                });
            }
            let sep = if location.contains('?') { '&' } else { '?' };
            let req = send_body(
                Method::PUT,
                format!("{location}{sep}digest={}", b.digest),
                empty(),
                vec![(CONTENT_LENGTH, "0".into())],
            )?;
            check(
                self.raw(req).await?,
                registry,
                "PUT blob (finish chunked upload)",
            )
            .await?;
        } else {
            let sep = if location.contains('?') { '&' } else { '?' };
            let req = send_body(
                Method::PUT,
                format!("{location}{sep}digest={}", b.digest),
                blob_body(svc, &b.digest, 0, b.size)?,
                vec![
                    (CONTENT_TYPE, "application/octet-stream".into()),
                    (CONTENT_LENGTH, b.size.to_string()),
                ],
            )?;
            check(self.raw(req).await?, registry, "PUT blob").await?;
            progress(Progress::Pushing {
                id: id.clone(),
                current: b.size,
                total: b.size,
            });
        }
        progress(Progress::Pushed { id });
        Ok(())
    }

    /// Compresses an uncompressed layer and uploads the output as it is produced (one
    /// streamed PATCH, then PUT with the digest known only at the end), storing it as well.
    async fn push_gzipping(
        &self,
        svc: &Arc<ImageService>,
        target: &Reference,
        src: &Digest,
        progress: ProgressFn<'_>,
    ) -> Result<PushBlob> {
        let id = short_id(src);
        progress(Progress::Preparing { id: id.clone() });
        let base = self.endpoint(target.domain()).await?;
        let (path, registry) = (target.path(), target.domain());
        let scope = scope_push(path);
        let resp = self
            .send(Call {
                registry,
                scope: &scope,
                method: Method::POST,
                url: format!("{base}/v2/{path}/blobs/uploads/"),
                headers: vec![],
                body: None,
            })
            .await?;
        let resp = check(resp, registry, "start blob upload").await?;
        let location = self.absolute(&base, &resp)?;
        tracing::debug!(layer = %src, "upload session open, compressing into it");

        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<http_body::Frame<Bytes>>>(8);
        let compressor = {
            let (svc, src) = (svc.clone(), src.clone());
            // Not stored here: only its digest is remembered after the upload (as Docker does),
            // so the push does not also write and fsync a second copy of the layer.
            tokio::task::spawn_blocking(move || -> berth_image::Result<(Digest, u64)> {
                use berth_image::layer::compress::{available_threads, gzip_parallel};
                struct Upload {
                    hash: berth_image::digest::Hasher,
                    tx: tokio::sync::mpsc::Sender<std::io::Result<http_body::Frame<Bytes>>>,
                }
                impl std::io::Write for Upload {
                    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                        self.hash.update(buf);
                        self.tx
                            .blocking_send(Ok(http_body::Frame::data(Bytes::copy_from_slice(buf))))
                            .map_err(|_| std::io::Error::other("upload stopped"))?;
                        Ok(buf.len())
                    }
                    fn flush(&mut self) -> std::io::Result<()> {
                        Ok(())
                    }
                }
                let input =
                    std::io::BufReader::with_capacity(1 << 20, svc.content.open_blob(&src)?);
                let mut out = Upload {
                    hash: berth_image::Algorithm::Sha256.hasher(),
                    tx,
                };
                let (_, size) =
                    gzip_parallel(input, &mut out, 6, available_threads()).map_err(|e| {
                        berth_image::Error::Io {
                            context: format!("gzip layer {src}"),
                            source: e,
                        }
                    })?;
                let Upload { hash, tx } = out;
                drop(tx);
                tracing::debug!(layer = %src, size, "compressed");
                Ok((hash.finish(), size))
            })
        };
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut req = Request::builder()
            .method(Method::PATCH)
            .uri(location.clone())
            .header(CONTENT_TYPE, "application/octet-stream");
        if let Some(a) = self.cached_auth_pub(registry, &scope) {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        let req = req
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .map_err(|e| Error::Http {
                url: location.clone(),
                reason: crate::error::chain(&e),
            })?;
        let patched = match self.raw(req).await {
            Ok(resp) => check(resp, registry, "PATCH blob (streamed)").await,
            Err(e) => Err(e),
        };
        tracing::debug!(layer = %src, ok = patched.is_ok(), "PATCH answered");
        let compressed = compressor.await.map_err(|e| Error::Task(e.to_string()))?;
        let resp = patched?;
        let (digest, size) = compressed?;
        let location = self.absolute(&base, &resp)?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let mut req = Request::builder()
            .method(Method::PUT)
            .uri(format!("{location}{sep}digest={digest}"))
            .header(CONTENT_LENGTH, "0");
        if let Some(a) = self.cached_auth_pub(registry, &scope) {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        let req = req.body(empty()).map_err(|e| Error::Http {
            url: location.clone(),
            reason: crate::error::chain(&e),
        })?;
        check(
            self.raw(req).await?,
            registry,
            "PUT blob (finish streamed upload)",
        )
        .await?;
        tracing::debug!(layer = %src, "upload finished");
        let (svc2, src2, d2) = (svc.clone(), src.clone(), digest.clone());
        tokio::task::spawn_blocking(move || svc2.content.set_derived(GZIP, &src2, &d2))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        progress(Progress::Pushed { id });
        Ok(PushBlob {
            digest,
            size,
            media_type: Compression::Gzip.oci_layer_media_type().into(),
        })
    }

    fn absolute(&self, base: &str, resp: &http::Response<hyper::body::Incoming>) -> Result<String> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol("upload response without Location".into()))?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else {
                format!("{base}{loc}")
            },
        )
    }
}

const GZIP: &str = "gzip";

fn gzip_blob(digest: Digest, size: u64) -> PushBlob {
    PushBlob {
        digest,
        size,
        media_type: Compression::Gzip.oci_layer_media_type().into(),
    }
}

/// Gzips a layer into the content store (see `berth_image::layer::compress`).
fn gzip_to_store(svc: &ImageService, src: &Digest) -> berth_image::Result<Digest> {
    use berth_image::layer::compress::{available_threads, gzip_parallel};
    let input = std::io::BufReader::with_capacity(1 << 20, svc.content.open_blob(src)?);
    let mut w = svc.content.writer(berth_image::Algorithm::Sha256)?;
    gzip_parallel(input, &mut w, 6, available_threads()).map_err(|e| berth_image::Error::Io {
        context: format!("gzip layer {src}"),
        source: e,
    })?;
    let (d, _) = w.commit(None, None)?;
    svc.content.set_derived(GZIP, src, &d)?;
    Ok(d)
}
