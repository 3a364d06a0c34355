//! `docker pull`: berth-distribution's pull, with its progress events turned into dockerd's
//! JSON messages, registry mirrors tried first for Docker Hub, and dockerd's error words.

use super::auth::registry_host;
use super::{blocking, parse_reference, AuthConfig, Images, JsonMessage, Sink};
use crate::error::{Error, Result};
use berth_distribution::Progress;
use berth_image::store::ImageRecord;
use berth_image::Reference;
use std::collections::HashMap;
use std::sync::Mutex;

/// `POST /images/create?fromImage=&tag=&platform=`.
#[derive(Clone, Debug, Default)]
pub struct PullRequest {
    pub from_image: String,
    /// A tag or a digest; takes precedence over a tag in `from_image`.
    pub tag: String,
    /// `os[/arch[/variant]]`; empty: the host's.
    pub platform: String,
    pub auth: Option<AuthConfig>,
}

/// The reference a pull request names, with Docker's precedence rules.
pub fn pull_reference(from_image: &str, tag: &str) -> Result<Reference> {
    if from_image.is_empty() {
        return Err(Error::invalid("fromImage is required"));
    }
    if from_image.contains('@') || tag.is_empty() {
        return parse_reference(from_image);
    }
    let name = Reference::parse_normalized_name_only(from_image)
        .map_err(|_| Error::invalid("invalid reference format"))?
        .repository();
    if tag.contains(':') {
        return parse_reference(&format!("{}@{tag}", name.name()));
    }
    name.with_tag(tag)
        .map_err(|e| Error::invalid(format!("invalid reference format: {e}")))
}

/// dockerd's answers for a failed pull.
pub(crate) fn pull_error(r: &Reference, e: berth_distribution::Error) -> Error {
    use berth_distribution::Error as E;
    let denied = || {
        Error::NotFound(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
            r.familiar_name()
        ))
    };
    match e {
        E::ManifestUnknown(_) | E::Status { status: 404, .. } if r.domain() == "docker.io" => {
            denied()
        }
        E::ManifestUnknown(_) | E::Status { status: 404, .. } => Error::NotFound(format!(
            "manifest for {} not found: manifest unknown: manifest unknown",
            r.familiar_string()
        )),
        E::Unauthorized { .. } if r.domain() == "docker.io" => denied(),
        E::Unauthorized { reason, .. } => Error::Unauthorized(format!(
            "pull access denied for {}: unauthorized: {reason}",
            r.familiar_name()
        )),
        E::Image(e) => Error::from(e),
        other => Error::Internal(other.to_string()),
    }
}

/// Turns berth-distribution's events into dockerd's lines for one pull.
struct PullProgress<'a> {
    out: Sink<'a>,
    /// The tag or digest the pull asked for: the `id` of "Pulling from".
    wanted: String,
    repo_path: String,
    totals: Mutex<HashMap<String, u64>>,
}

impl PullProgress<'_> {
    fn on(&self, p: Progress) {
        let out = self.out;
        match p {
            Progress::Resolved { .. } => out(JsonMessage::status_id(
                format!("Pulling from {}", self.repo_path),
                self.wanted.clone(),
            )),
            Progress::Waiting { id } => out(JsonMessage::layer("Pulling fs layer", id)),
            Progress::AlreadyExists { id } => out(JsonMessage::layer("Already exists", id)),
            Progress::Downloading { id, current, total } => {
                if let Ok(mut t) = self.totals.lock() {
                    t.insert(id.clone(), total);
                }
                out(JsonMessage::layer_progress(
                    "Downloading",
                    id,
                    current,
                    total,
                ))
            }
            Progress::Retrying { id, attempt, .. } => out(JsonMessage::layer(
                format!(
                    "Retrying in {attempt} second{}",
                    if attempt == 1 { "" } else { "s" }
                ),
                id,
            )),
            Progress::PullComplete { id } => {
                // Layers are extracted while they download, so extraction ends with the download.
                let total = self
                    .totals
                    .lock()
                    .ok()
                    .and_then(|t| t.get(&id).copied())
                    .unwrap_or(0);
                out(JsonMessage::layer("Verifying Checksum", id.clone()));
                out(JsonMessage::layer("Download complete", id.clone()));
                out(JsonMessage::layer_progress(
                    "Extracting",
                    id.clone(),
                    total,
                    total,
                ));
                out(JsonMessage::layer("Pull complete", id));
            }
            Progress::Done { digest } => out(JsonMessage::status(format!("Digest: {digest}"))),
            _ => {}
        }
    }
}

impl Images {
    /// `docker pull`: streams progress to `out` and returns the image. Errors before the first
    /// message (bad name, unknown manifest, refused credentials) are the caller's to answer
    /// as plain HTTP errors.
    pub async fn pull(&self, req: PullRequest, out: Sink<'_>) -> Result<ImageRecord> {
        let r = pull_reference(&req.from_image, &req.tag)?;
        let platform = super::archive::parse_platform(&req.platform)?;
        let before = self.svc.images.resolve(&r.to_string()).ok().map(|i| i.id);
        let wanted = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        let progress = PullProgress {
            out,
            wanted,
            repo_path: r.path().to_string(),
            totals: Mutex::new(HashMap::new()),
        };
        let on = |p: Progress| progress.on(p);
        let _shared = self.gc_lock.read().await;

        let mut rec = None;
        if r.domain() == "docker.io" {
            for m in &self.registry_mirrors {
                match self
                    .pull_via_mirror(&r, m, &req, platform.clone(), &on)
                    .await
                {
                    Ok(x) => {
                        rec = Some(x);
                        break;
                    }
                    Err(e) => {
                        tracing::info!(mirror = %m, error = %e, "mirror failed; trying the next source")
                    }
                }
            }
        }
        let rec = match rec {
            Some(x) => x,
            None => {
                let client = self.client_for(r.domain(), req.auth.as_ref(), platform)?;
                client
                    .pull(self.svc.clone(), &r, &on)
                    .await
                    .map_err(|e| pull_error(&r, e))?
            }
        };
        let familiar = r.familiar_string();
        out(JsonMessage::status(if before.as_ref() == Some(&rec.id) {
            format!("Status: Image is up to date for {familiar}")
        } else {
            format!("Status: Downloaded newer image for {familiar}")
        }));
        self.publish("pull", &familiar, &familiar);
        Ok(rec)
    }

    /// Pulls a Docker Hub image from a mirror, then names it as if pulled from Docker Hub.
    async fn pull_via_mirror(
        &self,
        r: &Reference,
        mirror: &str,
        req: &PullRequest,
        platform: Option<berth_image::manifest::Platform>,
        on: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<ImageRecord> {
        let host = registry_host(mirror);
        let suffix = match (r.digest(), r.tag()) {
            (Some(d), _) => format!("@{d}"),
            (None, Some(t)) => format!(":{t}"),
            (None, None) => String::new(),
        };
        let via = parse_reference(&format!("{host}/{}{suffix}", r.path()))?;
        let client = self.client_for(&host, req.auth.as_ref(), platform)?;
        let rec = client
            .pull(self.svc.clone(), &via, on)
            .await
            .map_err(|e| pull_error(&via, e))?;
        let svc = self.svc.clone();
        let (orig, via2) = (r.clone(), via.clone());
        blocking(move || {
            let mut named = rec.clone();
            for d in &rec.repo_digests {
                if let Ok(mr) = Reference::parse_normalized(d) {
                    if mr.name() == via2.name() {
                        if let Some(dg) = mr.digest() {
                            named
                                .repo_digests
                                .push(orig.repository().with_digest(dg.clone()).to_string());
                        }
                        let _ = svc.images.untag(&mr);
                    }
                }
            }
            if via2.digest().is_none() {
                let _ = svc.images.untag(&via2);
                named.repo_tags.push(orig.to_string());
            }
            named.repo_tags.retain(|t| *t != via2.to_string());
            named
                .repo_digests
                .retain(|d| !d.starts_with(&format!("{}@", via2.name())));
            Ok(svc.images.put(named)?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_as_docker_builds_them() {
        let r = pull_reference("busybox", "latest").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = pull_reference("busybox:1.36", "").unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        let r = pull_reference("busybox:1.36", "musl").unwrap();
        assert_eq!(r.tag(), Some("musl"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = pull_reference("127.0.0.1:5000/bb", &d).unwrap();
        assert_eq!(r.digest().map(|x| x.to_string()), Some(d));
        assert!(pull_reference("Bad Name", "").is_err());
    }
}
