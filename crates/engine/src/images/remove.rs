//! `docker rmi` and `docker image prune`, followed by the content and snapshot GC that frees
//! what no image needs any more.

use super::{blocking, Images};
use crate::error::Result;
use berth_image::store::images::ImageUser;
use berth_image::store::DeleteOutcome;
use berth_image::{Digest, ImageService, Reference};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// What a prune did, in the Engine API's shape.
#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    /// `[{"Untagged": ...}, {"Deleted": ...}]`
    pub deleted: Vec<Value>,
    pub space_reclaimed: u64,
}

/// Docker's rule after a tag is removed: when no other tag of that repository is left, the
/// repository's digest references (`name@sha256:...`, from pulls and pushes) go as well.
fn drop_orphan_digests(
    svc: &ImageService,
    name: &str,
    id: &Digest,
    out: &mut DeleteOutcome,
) -> Result<()> {
    let Ok(removed) = Reference::parse_normalized(name) else {
        return Ok(());
    };
    if removed.digest().is_some() {
        return Ok(());
    }
    let rec = svc.images.resolve(&id.to_string())?;
    let same_repo = |s: &String| {
        Reference::parse_normalized(s)
            .ok()
            .filter(|r| r.name() == removed.name())
    };
    if rec.repo_tags.iter().any(|t| same_repo(t).is_some()) {
        return Ok(());
    }
    for d in rec.repo_digests.iter().filter_map(same_repo) {
        svc.images.untag(&d)?;
        out.untagged.push(d.familiar_string());
    }
    Ok(())
}

impl Images {
    /// Removes blobs and layer snapshots no image needs; returns the bytes freed and the
    /// removed layer chain IDs. Waits for pulls, loads and imports in flight.
    pub async fn gc(&self) -> Result<(u64, Vec<Digest>)> {
        let _exclusive = self.gc_lock.write().await;
        let svc = self.svc.clone();
        blocking(move || {
            let sizes: HashMap<Digest, u64> = svc
                .snapshots
                .list_layers()?
                .into_iter()
                .map(|c| {
                    let s = svc.snapshots.layer_size(&c).unwrap_or(0);
                    (c, s)
                })
                .collect();
            let (stats, removed) = svc.gc()?;
            let snap_bytes: u64 = removed.iter().filter_map(|c| sizes.get(c)).sum();
            Ok((stats.bytes_freed + snap_bytes, removed))
        })
        .await
    }

    fn publish_outcome(&self, id: &str, out: &DeleteOutcome) {
        for _ in &out.untagged {
            self.publish("untag", id, id);
        }
        for d in &out.deleted {
            self.publish("delete", &d.to_string(), &d.to_string());
        }
    }

    /// `DELETE /images/{name}?force=`. `users` are the containers created from the image
    /// (`(id, running)`); Docker's conflict rules apply (running: never, stopped: with force).
    pub async fn delete(
        &self,
        name: &str,
        force: bool,
        users: Vec<(String, bool)>,
    ) -> Result<Vec<Value>> {
        let rec = self.resolve(name)?;
        let id = rec.id.to_string();
        let svc = self.svc.clone();
        let name2 = name.to_string();
        let rec_id = rec.id.clone();
        let out = blocking(move || {
            // A running user is the one to report when there is one.
            let user = users
                .iter()
                .find(|(_, running)| *running)
                .or(users.first())
                .map(|(c, running)| ImageUser {
                    container_id: c.clone(),
                    running: *running,
                });
            let mut out = svc.images.delete(&name2, force, &|_| user.clone())?;
            if out.deleted.is_empty() && !out.untagged.is_empty() {
                drop_orphan_digests(&svc, &name2, &rec_id, &mut out)?;
                // Docker: with its last name gone the image goes too, unless a container
                // uses it (then it stays, dangling, for that container).
                let left = svc.images.resolve(&rec_id.to_string())?;
                if left.repo_tags.is_empty() && left.repo_digests.is_empty() && user.is_none() {
                    let more = svc.images.delete(&rec_id.to_string(), force, &|_| None)?;
                    out.deleted.extend(more.deleted);
                }
            }
            Ok(out)
        })
        .await?;
        self.publish_outcome(&id, &out);
        let mut items: Vec<Value> = out
            .untagged
            .iter()
            .map(|u| json!({ "Untagged": u }))
            .collect();
        items.extend(
            out.deleted
                .iter()
                .map(|d| json!({ "Deleted": d.to_string() })),
        );
        if !out.deleted.is_empty() {
            let (_, removed) = self.gc().await?;
            items.extend(removed.iter().map(|c| json!({ "Deleted": c.to_string() })));
        }
        Ok(items)
    }

    /// `POST /images/prune`: unused images; only untagged ones unless `dangling=false`.
    /// `users_of(image_id)` lists the containers that use an image.
    pub async fn prune(
        &self,
        filters: &HashMap<String, Vec<String>>,
        users_of: &(dyn Fn(&str) -> Vec<String> + Sync),
    ) -> Result<PruneReport> {
        let mut filters = filters.clone();
        let dangling_only = match filters.remove("dangling").as_deref() {
            None | Some([]) => true,
            Some(v) => matches!(v.last().map(String::as_str), Some("true" | "1")),
        };
        for key in filters.keys() {
            if !matches!(key.as_str(), "label" | "label!" | "until") {
                return Err(crate::Error::invalid(format!("invalid filter '{key}'")));
            }
        }
        let svc = self.svc.clone();
        let all = blocking(move || {
            Ok(svc
                .images
                .list()
                .into_iter()
                .map(|r| {
                    let cfg = svc.config_of(&r).unwrap_or_default();
                    (r, cfg)
                })
                .collect::<Vec<_>>())
        })
        .await?;
        let mut candidates = Vec::new();
        for (rec, cfg) in all {
            if dangling_only && !rec.repo_tags.is_empty() {
                continue;
            }
            if !users_of(&rec.id.to_string()).is_empty() {
                continue;
            }
            if self.matches(&rec, &cfg, &filters)? {
                candidates.push(rec.id.to_string());
            }
        }
        let mut report = PruneReport::default();
        for id in candidates {
            let svc = self.svc.clone();
            let id2 = id.clone();
            // No container uses it (checked above), so force only skips the "referenced in
            // multiple repositories" question, which prune answers with yes.
            let out = blocking(move || Ok(svc.images.delete(&id2, true, &|_| None)?)).await;
            match out {
                Ok(out) => {
                    self.publish_outcome(&id, &out);
                    report
                        .deleted
                        .extend(out.untagged.iter().map(|u| json!({ "Untagged": u })));
                    report.deleted.extend(
                        out.deleted
                            .iter()
                            .map(|d| json!({ "Deleted": d.to_string() })),
                    );
                }
                // Removed meanwhile by someone else: nothing to report.
                Err(crate::Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let (bytes, removed) = self.gc().await?;
        report
            .deleted
            .extend(removed.iter().map(|c| json!({ "Deleted": c.to_string() })));
        report.space_reclaimed = bytes;
        let attrs = BTreeMap::from([("reclaimed".to_string(), bytes.to_string())]);
        self.events.publish("image", "prune", "", attrs);
        Ok(report)
    }
}
