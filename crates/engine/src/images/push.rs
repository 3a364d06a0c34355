//! `docker push`: berth-distribution's push of one tag or of every local tag of a repository,
//! with dockerd's progress lines and closing `<tag>: digest: ... size: ...` line.

use super::{blocking, AuthConfig, Images, JsonMessage, Sink};
use crate::error::{Error, Result};
use berth_distribution::progress::short_id;
use berth_distribution::Progress;
use berth_image::Reference;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Mutex;

/// `POST /images/{name}/push?tag=`.
#[derive(Clone, Debug, Default)]
pub struct PushRequest {
    pub name: String,
    /// Empty: every local tag of the repository.
    pub tag: String,
    pub auth: Option<AuthConfig>,
}

struct PushProgress<'a> {
    out: Sink<'a>,
    /// Short ID of the config blob, which dockerd does not show.
    config_id: String,
    seen: Mutex<HashSet<String>>,
}

impl PushProgress<'_> {
    /// The first line of every layer is "Preparing", whatever event comes first.
    fn prepare(&self, id: &str) -> bool {
        if id == self.config_id {
            return false;
        }
        let first = self
            .seen
            .lock()
            .map(|mut s| s.insert(id.to_string()))
            .unwrap_or(false);
        if first {
            (self.out)(JsonMessage::layer("Preparing", id));
        }
        true
    }

    fn on(&self, p: Progress) {
        let out = self.out;
        match p {
            Progress::Preparing { id } => {
                self.prepare(&id);
            }
            Progress::AlreadyExists { id } if self.prepare(&id) => {
                out(JsonMessage::layer("Layer already exists", id))
            }
            Progress::Mounted { id, from } if self.prepare(&id) => {
                out(JsonMessage::layer(format!("Mounted from {from}"), id))
            }
            Progress::Pushing { id, current, total } if self.prepare(&id) => {
                out(JsonMessage::layer_progress("Pushing", id, current, total))
            }
            Progress::Pushed { id } if self.prepare(&id) => out(JsonMessage::layer("Pushed", id)),
            _ => {}
        }
    }
}

fn push_error(r: &Reference, e: berth_distribution::Error) -> Error {
    use berth_distribution::Error as E;
    match e {
        E::Unauthorized { .. } if r.domain() == "docker.io" => {
            Error::Unauthorized("denied: requested access to the resource is denied".into())
        }
        E::Unauthorized { reason, .. } => Error::Unauthorized(format!("unauthorized: {reason}")),
        E::Image(e) => Error::from(e),
        other => Error::Internal(other.to_string()),
    }
}

impl Images {
    /// The tags a push request names; a 404 when none exists locally.
    pub fn push_targets(&self, name: &str, tag: &str) -> Result<Vec<Reference>> {
        let repo = Reference::parse_normalized_name_only(name).map_err(|_| {
            Error::invalid(format!(
                "invalid reference format: repository name ({name}) must be lowercase"
            ))
        })?;
        if repo.digest().is_some() {
            return Err(Error::invalid("cannot push a digest reference"));
        }
        let tag = if tag.is_empty() {
            repo.tag().unwrap_or("")
        } else {
            tag
        };
        let repo = repo.repository();
        let targets: Vec<Reference> = if tag.is_empty() {
            let mut all: Vec<Reference> = self
                .svc
                .images
                .list()
                .iter()
                .flat_map(|i| i.repo_tags.clone())
                .filter_map(|t| Reference::parse_normalized(&t).ok())
                .filter(|t| t.name() == repo.name())
                .collect();
            all.sort();
            all
        } else {
            let t = repo
                .with_tag(tag)
                .map_err(|e| Error::invalid(format!("invalid tag {tag:?}: {e}")))?;
            if self.svc.images.resolve(&t.to_string()).is_ok() {
                vec![t]
            } else {
                vec![]
            }
        };
        if targets.is_empty() {
            return Err(Error::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                repo.familiar_name()
            )));
        }
        Ok(targets)
    }

    /// `docker push`. Call `push_targets` first to answer a missing image with a plain 404.
    pub async fn push(&self, req: PushRequest, out: Sink<'_>) -> Result<()> {
        let targets = self.push_targets(&req.name, &req.tag)?;
        let repo = targets[0].repository();
        out(JsonMessage::status(format!(
            "The push refers to repository [{}]",
            repo.name()
        )));
        let client = self.client_for(repo.domain(), req.auth.as_ref(), None)?;
        for target in targets {
            let rec = self.resolve(&target.to_string())?;
            let progress = PushProgress {
                out,
                config_id: short_id(&rec.id),
                seen: Mutex::new(HashSet::new()),
            };
            let on = |p: Progress| progress.on(p);
            let digest = client
                .push(self.svc.clone(), &target.to_string(), &target, &on)
                .await
                .map_err(|e| push_error(&target, e))?;
            let svc = self.svc.clone();
            let d2 = digest.clone();
            let size = blocking(move || Ok(svc.content.size(&d2).unwrap_or(0))).await?;
            let tag = target.tag().unwrap_or("latest").to_string();
            out(JsonMessage::status(format!(
                "{tag}: digest: {digest} size: {size}"
            )));
            out(JsonMessage::aux(json!({
                "Tag": tag,
                "Digest": digest.to_string(),
                "Size": size,
            })));
            let familiar = target.familiar_string();
            self.publish("push", &familiar, &familiar);
        }
        Ok(())
    }
}
