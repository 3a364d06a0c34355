//! Pull: manifest (and index), config, then the layers in parallel, each decompressed and
//! extracted into its snapshot while it downloads, and resumed with `Range` when the
//! connection drops.

use crate::client::{check, header_str, read_limited, Call, RegistryClient};
use crate::error::{Error, Result};
use crate::progress::{short_id, Progress, ProgressFn};
use berth_image::config::chain_ids;
use berth_image::manifest::{
    is_non_distributable, select_platform, Manifest, ACCEPTED_MEDIA_TYPES, MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
};
use berth_image::store::ImageRecord;
use berth_image::{Digest, ImageConfig, ImageService, Reference};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use http::header::{ACCEPT, RANGE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use std::io::{self, Read};
use std::sync::Arc;

/// Reads what the download task sends, for the blocking extractor.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// One layer to download.
struct LayerJob<'a> {
    digest: &'a Digest,
    size: u64,
    chain_id: &'a Digest,
    diff_id: &'a Digest,
    /// Where a foreign / non-distributable layer is, should the registry not have it.
    urls: &'a [String],
}

/// Where a layer's bytes come from.
enum Source {
    Registry(String),
    /// A foreign layer's URLs (http or https), tried in turn; never sent registry credentials.
    Foreign(Vec<String>),
}

/// The URLs of a foreign layer this client fetches from: http and https ones only (a `file:`
/// URL in a manifest must not read the puller's files).
fn fetchable_urls(urls: &[String]) -> Vec<String> {
    urls.iter()
        .filter(|u| {
            u.parse::<Uri>()
                .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")))
        })
        .cloned()
        .collect()
}

/// Stores a small blob on a blocking thread; the caller awaits it before registering.
fn store_later(
    svc: &Arc<ImageService>,
    b: Bytes,
    d: &Digest,
) -> tokio::task::JoinHandle<berth_image::Result<()>> {
    let (svc, d) = (svc.clone(), d.clone());
    tokio::task::spawn_blocking(move || {
        svc.content
            .write_blob(&mut &b[..], Some(&d), Some(b.len() as u64))
            .map(|_| ())
    })
}

fn scope_pull(path: &str) -> String {
    format!("repository:{path}:pull")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_image::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(Error::from)
}

impl RegistryClient {
    /// Fetches a manifest by tag or digest; verifies it against the digest when one is given.
    pub async fn fetch_manifest(
        &self,
        r: &Reference,
        reference: &str,
    ) -> Result<(Bytes, Digest, String)> {
        let base = self.endpoint(r.domain()).await?;
        let scope = scope_pull(r.path());
        let url = format!("{base}/v2/{}/manifests/{reference}", r.path());
        let resp = self
            .send(Call {
                registry: r.domain(),
                scope: &scope,
                method: Method::GET,
                url: url.clone(),
                headers: vec![(ACCEPT, ACCEPTED_MEDIA_TYPES.join(", "))],
                body: None,
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::ManifestUnknown(format!("{}:{reference}", r.name())));
        }
        let resp = check(resp, r.domain(), &format!("GET manifest {reference}")).await?;
        let media_type = header_str(&resp, "content-type").unwrap_or_default();
        let declared = header_str(&resp, "docker-content-digest");
        let body = read_limited(resp, MAX_MANIFEST_SIZE as usize, "manifest").await?;
        let digest = match reference.parse::<Digest>() {
            Ok(want) => {
                let mut h = want.algorithm().hasher();
                h.update(&body);
                let got = h.finish();
                if got != want {
                    return Err(berth_image::Error::DigestMismatch {
                        expected: want,
                        actual: got,
                    }
                    .into());
                }
                got
            }
            Err(_) => Digest::sha256_of(&body),
        };
        if let Some(d) = declared.and_then(|d| d.parse::<Digest>().ok()) {
            if d.algorithm() == digest.algorithm() && d != digest {
                return Err(berth_image::Error::DigestMismatch {
                    expected: d,
                    actual: digest,
                }
                .into());
            }
        }
        Ok((body, digest, media_type))
    }

    /// Fetches a small blob (a config) into memory, verified.
    async fn fetch_small_blob(&self, r: &Reference, digest: &Digest) -> Result<Bytes> {
        let base = self.endpoint(r.domain()).await?;
        let scope = scope_pull(r.path());
        let resp = self
            .get_following(
                Call {
                    registry: r.domain(),
                    scope: &scope,
                    method: Method::GET,
                    url: format!("{base}/v2/{}/blobs/{digest}", r.path()),
                    headers: vec![],
                    body: None,
                },
                vec![],
            )
            .await?;
        let resp = check(resp, r.domain(), &format!("GET blob {digest}")).await?;
        let body = read_limited(resp, MAX_CONFIG_SIZE as usize, "config").await?;
        let mut h = digest.algorithm().hasher();
        h.update(&body);
        let got = h.finish();
        if &got != digest {
            return Err(berth_image::Error::DigestMismatch {
                expected: digest.clone(),
                actual: got,
            }
            .into());
        }
        Ok(body)
    }

    /// `docker pull`: returns the image, stored, extracted and tagged.
    pub async fn pull(
        &self,
        svc: Arc<ImageService>,
        r: &Reference,
        progress: ProgressFn<'_>,
    ) -> Result<ImageRecord> {
        let wanted = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        let (body, top_digest, media_type) = self.fetch_manifest(r, &wanted).await?;
        progress(Progress::Resolved {
            reference: r.to_string(),
            digest: top_digest.to_string(),
        });
        // Small blobs are written (and fsynced) while the layers download, not before.
        let mut stores = Vec::new();
        let mut index_digest = None;
        let (mut manifest_bytes, mut manifest_digest) = (body.clone(), top_digest.clone());
        let parsed = Manifest::parse(
            &body,
            Some(media_type.split(';').next().unwrap_or_default()),
        )?;
        let manifest = match parsed {
            Manifest::Index(i, _) => {
                let d = Digest::from_oci(select_platform(&i, &self.opts.platform)?.digest())?;
                stores.push(store_later(&svc, body.clone(), &top_digest));
                index_digest = Some(top_digest.clone());
                let (b, md, mt) = self.fetch_manifest(r, &d.to_string()).await?;
                manifest_bytes = b;
                manifest_digest = md;
                match Manifest::parse(
                    &manifest_bytes,
                    Some(mt.split(';').next().unwrap_or_default()),
                )? {
                    Manifest::Image(m, _) => m,
                    Manifest::Index(..) => {
                        return Err(Error::Protocol("an index inside an index".into()))
                    }
                }
            }
            Manifest::Image(m, _) => m,
        };
        let config_digest = Digest::from_oci(manifest.config().digest())?;
        let config_bytes = if svc.content.exists(&config_digest) {
            let (svc2, d) = (svc.clone(), config_digest.clone());
            Bytes::from(blocking(move || svc2.content.read_blob(&d, MAX_CONFIG_SIZE)).await?)
        } else {
            let b = self.fetch_small_blob(r, &config_digest).await?;
            stores.push(store_later(&svc, b.clone(), &config_digest));
            b
        };
        tracing::debug!(reference = %r, "manifest and config in hand");
        let config = ImageConfig::parse(&config_bytes)?;
        stores.push(store_later(&svc, manifest_bytes.clone(), &manifest_digest));
        let diff_ids = config.rootfs.diff_ids.clone();
        if diff_ids.len() != manifest.layers().len() {
            return Err(Error::Protocol(format!(
                "manifest has {} layers, config {} diffIDs",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        let chain = chain_ids(&diff_ids);
        let jobs: Vec<_> = manifest
            .layers()
            .iter()
            .enumerate()
            .map(|(i, l)| -> Result<_> {
                // Only these layers may come from elsewhere than the registry.
                let urls = if is_non_distributable(l.media_type().as_ref()) {
                    l.urls().clone().unwrap_or_default()
                } else {
                    Vec::new()
                };
                Ok((
                    Digest::from_oci(l.digest())?,
                    l.size(),
                    chain[i].clone(),
                    diff_ids[i].clone(),
                    urls,
                ))
            })
            .collect::<Result<_>>()?;
        for (d, ..) in &jobs {
            progress(Progress::Waiting { id: short_id(d) });
        }
        stream::iter(
            jobs.into_iter()
                .map(|(digest, size, chain_id, diff_id, urls)| {
                    let svc = svc.clone();
                    async move {
                        // A stored blob is enough: register() extracts it if its snapshot is missing.
                        if svc.content.exists(&digest) {
                            progress(Progress::AlreadyExists {
                                id: short_id(&digest),
                            });
                            return Ok(());
                        }
                        let layer = LayerJob {
                            digest: &digest,
                            size,
                            chain_id: &chain_id,
                            diff_id: &diff_id,
                            urls: &urls,
                        };
                        self.download_layer(svc, r, layer, progress).await
                    }
                }),
        )
        .buffer_unordered(self.opts.max_concurrent_downloads.max(1))
        .try_collect::<Vec<()>>()
        .await?;

        tracing::debug!(reference = %r, "layers in place");
        for s in stores {
            s.await.map_err(|e| Error::Task(e.to_string()))??;
        }
        let tags: Vec<Reference> = if r.digest().is_none() {
            vec![r.clone()]
        } else {
            vec![]
        };
        let repo_digest = r.repository().with_digest(top_digest.clone());
        let rec = {
            let svc = svc.clone();
            blocking(move || svc.register(&manifest_digest, index_digest, &tags, &[repo_digest]))
                .await?
        };
        progress(Progress::Done {
            digest: top_digest.to_string(),
        });
        Ok(rec)
    }

    /// GET of a foreign layer's URL, following redirects (http and https only), with no
    /// credentials: the URL is not the registry's.
    async fn get_foreign(
        &self,
        url: &str,
        range: Vec<(http::HeaderName, String)>,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let mut url = url.to_string();
        for _ in 0..5 {
            let uri: Uri = url
                .parse()
                .map_err(|e| Error::Protocol(format!("foreign layer URL {url}: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return Err(Error::Protocol(format!(
                    "foreign layer URL {url}: only http and https are fetched"
                )));
            }
            let mut b = Request::get(uri.clone());
            for (k, v) in &range {
                b = b.header(k, v);
            }
            let req = b.body(crate::client::empty()).map_err(|e| Error::Http {
                url: url.clone(),
                reason: crate::error::chain(&e),
            })?;
            let resp = self.raw(req).await?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let loc = header_str(&resp, "location")
                .ok_or_else(|| Error::Protocol("redirect without Location".into()))?;
            url = match loc.parse::<Uri>() {
                Ok(u) if u.scheme().is_some() => loc,
                _ => format!(
                    "{}://{}{}",
                    uri.scheme_str().unwrap_or("http"),
                    uri.authority().map_or("", |a| a.as_str()),
                    loc
                ),
            };
        }
        Err(Error::Protocol("too many redirects".into()))
    }

    /// Whether the registry has a blob (HEAD).
    async fn registry_has_blob(&self, r: &Reference, digest: &Digest) -> Result<bool> {
        let base = self.endpoint(r.domain()).await?;
        let scope = scope_pull(r.path());
        let resp = self
            .send(Call {
                registry: r.domain(),
                scope: &scope,
                method: Method::HEAD,
                url: format!("{base}/v2/{}/blobs/{digest}", r.path()),
                headers: vec![],
                body: None,
            })
            .await?;
        Ok(resp.status().is_success())
    }

    /// The registry, or for a foreign layer it lacks, the layer's own http(s) URLs.
    async fn layer_source(&self, r: &Reference, layer: &LayerJob<'_>) -> Result<Source> {
        let base = self.endpoint(r.domain()).await?;
        let registry = Source::Registry(format!("{base}/v2/{}/blobs/{}", r.path(), layer.digest));
        if layer.urls.is_empty() || self.registry_has_blob(r, layer.digest).await? {
            return Ok(registry);
        }
        let urls = fetchable_urls(layer.urls);
        if urls.is_empty() {
            return Err(Error::Protocol(format!(
                "foreign layer {} is not in the registry and has no http(s) URL (urls: {:?})",
                layer.digest, layer.urls
            )));
        }
        Ok(Source::Foreign(urls))
    }

    async fn download_layer(
        &self,
        svc: Arc<ImageService>,
        r: &Reference,
        layer: LayerJob<'_>,
        progress: ProgressFn<'_>,
    ) -> Result<()> {
        let LayerJob {
            digest,
            size,
            chain_id,
            diff_id,
            ..
        } = layer;
        let source = self.layer_source(r, &layer).await?;
        let id = short_id(digest);
        // Two consumers of every chunk, on two threads: the extractor (gunzip, diffID, files)
        // and the blob writer (digest, content store), so they use two cores.
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(64);
        let (tx_blob, rx_blob) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(64);
        let extractor = {
            let (svc, chain_id, diff_id) = (svc.clone(), chain_id.clone(), diff_id.clone());
            tokio::task::spawn_blocking(move || -> berth_image::Result<()> {
                let reader = ChannelReader {
                    rx,
                    cur: Bytes::new(),
                };
                svc.snapshots.apply(&chain_id, Some(&diff_id), reader)?;
                Ok(())
            })
        };
        let blob_writer = {
            let (svc, digest) = (svc.clone(), digest.clone());
            tokio::task::spawn_blocking(move || -> berth_image::Result<()> {
                let mut out = svc.content.writer(digest.algorithm())?;
                let mut input = ChannelReader {
                    rx: rx_blob,
                    cur: Bytes::new(),
                };
                io::copy(&mut input, &mut out).map_err(|e| berth_image::Error::Io {
                    context: format!("store blob {digest}"),
                    source: e,
                })?;
                out.commit(Some(&digest), Some(size))?;
                Ok(())
            })
        };
        let scope = scope_pull(r.path());
        let mut foreign_at = 0;
        let mut received: u64 = 0;
        let mut attempt = 0;
        let mut last_report = 0u64;
        let mut fatal: Option<Error> = None;
        let fed = 'attempts: loop {
            attempt += 1;
            let range = if received > 0 {
                vec![(RANGE, format!("bytes={received}-"))]
            } else {
                vec![]
            };
            let opened = match &source {
                Source::Registry(url) => {
                    self.get_following(
                        Call {
                            registry: r.domain(),
                            scope: &scope,
                            method: Method::GET,
                            url: url.clone(),
                            headers: vec![],
                            body: None,
                        },
                        range,
                    )
                    .await
                }
                Source::Foreign(urls) => self.get_foreign(&urls[foreign_at], range).await,
            };
            let failure: String = match opened {
                Err(e) => e.to_string(),
                Ok(resp) if !resp.status().is_success() => {
                    let err = match check(resp, r.domain(), &format!("GET blob {digest}")).await {
                        Err(e) => e,
                        Ok(_) => Error::Protocol("unexpected status".into()),
                    };
                    match &source {
                        // The next URL may have it; a partly fed layer cannot switch source.
                        Source::Foreign(urls) if foreign_at + 1 < urls.len() && received == 0 => {
                            tracing::info!(layer = %digest, url = %urls[foreign_at], error = %err, "foreign layer URL failed, trying the next");
                            foreign_at += 1;
                            attempt -= 1;
                            continue;
                        }
                        _ => {
                            fatal = Some(err);
                            break 'attempts false;
                        }
                    }
                }
                Ok(resp) => {
                    // A server that ignores Range sends everything again: skip what we have.
                    let mut skip = if received > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
                        received
                    } else {
                        0
                    };
                    let mut body = resp.into_body();
                    let mut broken = None;
                    loop {
                        match body.frame().await {
                            None => break,
                            Some(Err(e)) => {
                                broken = Some(e.to_string());
                                break;
                            }
                            Some(Ok(frame)) => {
                                let Ok(mut data) = frame.into_data() else {
                                    continue;
                                };
                                if skip > 0 {
                                    let n = skip.min(data.len() as u64) as usize;
                                    let _ = data.split_to(n);
                                    skip -= n as u64;
                                }
                                if data.is_empty() {
                                    continue;
                                }
                                if received + data.len() as u64 > size {
                                    // Never store more than the manifest promised.
                                    fatal = Some(Error::Protocol(format!(
                                        "blob {digest} is larger than the {size} bytes the manifest lists"
                                    )));
                                    break 'attempts false;
                                }
                                received += data.len() as u64;
                                let to_blob = tx_blob.send(Ok(data.clone())).await;
                                if to_blob.is_err() || tx.send(Ok(data)).await.is_err() {
                                    // The extractor stopped: its error says why.
                                    break 'attempts false;
                                }
                                if received - last_report >= 512 * 1024 || received == size {
                                    last_report = received;
                                    progress(Progress::Downloading {
                                        id: id.clone(),
                                        current: received,
                                        total: size,
                                    });
                                }
                            }
                        }
                    }
                    if received >= size {
                        break 'attempts true;
                    }
                    format!(
                        "connection closed after {received} of {size} bytes{}",
                        broken.map_or(String::new(), |e| format!(" ({e})"))
                    )
                }
            };
            if attempt >= self.opts.download_attempts {
                fatal = Some(Error::DownloadFailed {
                    digest: digest.to_string(),
                    attempts: attempt,
                    reason: failure,
                });
                break 'attempts false;
            }
            progress(Progress::Retrying {
                id: id.clone(),
                attempt,
                offset: received,
            });
            tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
        };
        if let Some(err) = fatal {
            // Both consumers see the failure (not a clean end), so neither keeps a partial
            // snapshot or blob.
            let _ = tx.send(Err(io::Error::other(err.to_string()))).await;
            let _ = tx_blob.send(Err(io::Error::other(err.to_string()))).await;
            drop((tx, tx_blob));
            let _ = extractor.await;
            let _ = blob_writer.await;
            return Err(err);
        }
        let _ = fed;
        tracing::debug!(layer = %digest, bytes = received, "downloaded");
        drop((tx, tx_blob));
        let extracted = extractor.await.map_err(|e| Error::Task(e.to_string()))?;
        tracing::debug!(layer = %digest, ok = extracted.is_ok(), "extracted");
        let stored = blob_writer.await.map_err(|e| Error::Task(e.to_string()))?;
        tracing::debug!(layer = %digest, ok = stored.is_ok(), "blob stored");
        if let Err(e) = stored {
            // The snapshot matched its diffID, but the blob is not what the manifest names:
            // keep neither.
            let _ = svc.snapshots.remove_layer(chain_id);
            extracted?;
            return Err(e.into());
        }
        extracted?;
        progress(Progress::PullComplete { id });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_http_and_https_urls_are_fetched() {
        let urls: Vec<String> = [
            "file:///etc/passwd",
            "ftp://h/x",
            "https://h/a.tgz",
            "not a url",
            "http://127.0.0.1:1/b",
            "/relative",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            super::fetchable_urls(&urls),
            ["https://h/a.tgz", "http://127.0.0.1:1/b"]
        );
    }
}
