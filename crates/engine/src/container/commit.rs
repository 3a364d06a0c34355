//! `POST /commit`: a container's writable layer becomes a new image on top of its image.

use super::types::ContainerConfig;
use super::Containers;
use crate::error::{Error, Result};
use crate::images::parse_reference;
use berth_image::config::ContainerConfig as ImageContainerConfig;
use berth_image::CommitOptions;
use std::collections::BTreeMap;

/// What `docker commit` sends: the query parameters and the optional config body.
#[derive(Clone, Debug, Default)]
pub struct CommitRequest {
    pub container: String,
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    /// Dockerfile instructions applied last (`--change`).
    pub changes: Vec<String>,
    /// Freeze the container while its layer is read (Docker's default).
    pub pause: bool,
    /// Fields set here win over the container's own config.
    pub config: Option<ContainerConfig>,
}

impl Containers {
    /// Returns the new image's ID (`sha256:...`).
    pub async fn commit(&self, req: CommitRequest) -> Result<String> {
        let entry = self.get(&req.container)?;
        let _op = entry.op.lock().await;
        let rec = entry.snapshot();
        let reference = match (req.repo.is_empty(), req.tag.is_empty()) {
            (true, true) => None,
            (true, false) => {
                return Err(Error::invalid(format!(
                    "invalid reference format: tag {} without a repository",
                    req.tag
                )))
            }
            (false, _) => {
                let r = parse_reference(&req.repo)?;
                Some(if req.tag.is_empty() {
                    r
                } else {
                    r.with_tag(&req.tag)
                        .map_err(|e| Error::invalid(e.to_string()))?
                })
            }
        };
        let ref_name = reference.as_ref().map(|r| r.familiar_string());
        let opts = CommitOptions {
            reference,
            changes: req.changes.clone(),
            author: (!req.author.is_empty()).then(|| req.author.clone()),
            message: (!req.comment.is_empty()).then(|| req.comment.clone()),
            created_by: Some(
                std::iter::once(&rec.path)
                    .chain(&rec.args)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            config: Some(image_config(&rec.config, req.config.as_ref())),
        };
        // A frozen container writes nothing while its layer is read.
        let freeze = req.pause && rec.state.running && !rec.state.paused;
        if freeze {
            super::lifecycle::run_runtime(self, &rec, &["pause", &rec.id]).await?;
        }
        let svc = self.images.svc.clone();
        let id = rec.id.clone();
        let image_id = rec.image_id.clone();
        let _shared = self.images.gc_lock.read().await;
        let result =
            tokio::task::spawn_blocking(move || -> Result<berth_image::store::ImageRecord> {
                let parent = svc
                    .images
                    .resolve(&image_id)
                    .map_err(|_| Error::NotFound(format!("No such image: {image_id}")))?;
                let upper = svc.snapshots.rw_upper(&id)?;
                // A container that never started has no writable layer yet: its diff is empty.
                std::fs::create_dir_all(&upper)
                    .map_err(|e| Error::internal(format!("creating {}", upper.display()), e))?;
                Ok(svc.commit(&parent, &upper, &opts)?)
            })
            .await
            .map_err(|e| Error::internal("committing", e));
        if freeze {
            if let Err(e) = super::lifecycle::run_runtime(self, &rec, &["resume", &rec.id]).await {
                tracing::warn!(id = %rec.id, "resuming after commit: {e}");
            }
        }
        let image = result??;
        let new_id = image.id.to_string();
        let name = ref_name.clone().unwrap_or_else(|| new_id.clone());
        self.publish(
            &rec,
            "commit",
            &[
                ("comment", req.comment.clone()),
                ("imageID", new_id.clone()),
                ("imageRef", name.clone()),
            ],
        );
        if ref_name.is_some() {
            self.images.publish("tag", &new_id, &name);
        }
        Ok(new_id)
    }
}

/// Docker keeps what the container ran with: its config, with the posted config's set
/// fields on top (labels and exposed ports merged).
fn image_config(c: &ContainerConfig, over: Option<&ContainerConfig>) -> ImageContainerConfig {
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut out = ImageContainerConfig {
        user: nonempty(&c.user),
        exposed_ports: c.exposed_ports.clone(),
        env: Some(c.env.clone()),
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        volumes: c.volumes.clone(),
        working_dir: nonempty(&c.working_dir),
        labels: Some(c.labels.clone()).filter(|l| !l.is_empty()),
        stop_signal: c.stop_signal.clone(),
        extra: Default::default(),
    };
    let Some(o) = over else { return out };
    if !o.user.is_empty() {
        out.user = Some(o.user.clone());
    }
    if !o.env.is_empty() {
        let mut env = o.env.clone();
        let keys: Vec<&str> = env
            .iter()
            .map(|e| e.split('=').next().unwrap_or(""))
            .collect::<Vec<_>>();
        let kept: Vec<String> = c
            .env
            .iter()
            .filter(|e| !keys.contains(&e.split('=').next().unwrap_or("")))
            .cloned()
            .collect();
        env.extend(kept);
        out.env = Some(env);
    }
    if o.cmd.is_some() {
        out.cmd = o.cmd.clone();
    }
    if o.entrypoint.is_some() {
        out.entrypoint = o.entrypoint.clone();
    }
    if !o.working_dir.is_empty() {
        out.working_dir = Some(o.working_dir.clone());
    }
    if o.stop_signal.is_some() {
        out.stop_signal = o.stop_signal.clone();
    }
    if let Some(p) = &o.exposed_ports {
        out.exposed_ports
            .get_or_insert_with(BTreeMap::new)
            .extend(p.clone());
    }
    if let Some(v) = &o.volumes {
        out.volumes
            .get_or_insert_with(BTreeMap::new)
            .extend(v.clone());
    }
    if !o.labels.is_empty() {
        out.labels
            .get_or_insert_with(BTreeMap::new)
            .extend(o.labels.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_config_wins_and_merges() {
        let c = ContainerConfig {
            env: vec!["A=1".into(), "B=2".into()],
            cmd: Some(vec!["sh".into()]),
            labels: BTreeMap::from([("x".into(), "1".into())]),
            ..Default::default()
        };
        let o = ContainerConfig {
            env: vec!["B=3".into()],
            labels: BTreeMap::from([("y".into(), "2".into())]),
            ..Default::default()
        };
        let out = image_config(&c, Some(&o));
        assert_eq!(out.env, Some(vec!["B=3".to_string(), "A=1".to_string()]));
        assert_eq!(out.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(out.labels.map(|l| l.len()), Some(2));
        let plain = image_config(&c, None);
        assert_eq!(plain.env, Some(c.env.clone()));
        assert_eq!(plain.user, None);
    }
}
