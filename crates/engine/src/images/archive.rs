//! `docker load`, `docker save` and `docker import`: tar streams in and out of the store.

use super::{blocking, parse_reference, Images, JsonMessage};
use crate::error::{Error, Result};
use berth_image::manifest::Platform;
use berth_image::store::ImageRecord;
use berth_image::{ImportOptions, SaveFormat};
use std::io::{Read, Write};

/// `POST /images/create?fromSrc=-`.
#[derive(Clone, Debug, Default)]
pub struct ImportRequest {
    /// `repo[:tag]`; empty leaves the image untagged.
    pub repo: String,
    /// Overrides a tag in `repo`.
    pub tag: String,
    /// Dockerfile instructions (`CMD ["sh"]`, `ENV A=b`, ...).
    pub changes: Vec<String>,
    pub message: String,
    /// `os[/arch[/variant]]`.
    pub platform: String,
}

pub(crate) fn parse_platform(s: &str) -> Result<Option<Platform>> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.parse::<Platform>()
        .map(Some)
        .map_err(|e| Error::invalid(format!("invalid platform {s:?}: {e}")))
}

impl Images {
    /// `POST /images/load`: a `docker save` tarball (either layout) or an OCI archive. Returns
    /// the lines Docker answers with (`Loaded image: busybox:latest`).
    pub async fn load(&self, reader: impl Read + Send + 'static) -> Result<Vec<JsonMessage>> {
        let _shared = self.gc_lock.read().await;
        let svc = self.svc.clone();
        let (records, before) = blocking(move || {
            let before: std::collections::HashMap<String, String> = svc
                .images
                .list()
                .iter()
                .flat_map(|r| {
                    let id = r.id.to_string();
                    r.familiar_tags().into_iter().map(move |t| (t, id.clone()))
                })
                .collect();
            Ok((svc.load(reader)?, before))
        })
        .await?;
        let mut lines = Vec::new();
        for rec in &records {
            let id = rec.id.to_string();
            let tags = rec.familiar_tags();
            if tags.is_empty() {
                lines.push(JsonMessage::stream(format!("Loaded image ID: {id}\n")));
            }
            for t in tags {
                // Docker's words when a loaded tag moves off another image.
                if let Some(old) = before.get(&t).filter(|old| **old != id) {
                    lines.push(JsonMessage::stream(format!(
                        "The image {t} already exists, renaming the old one with ID {old} to empty string\n"
                    )));
                }
                lines.push(JsonMessage::stream(format!("Loaded image: {t}\n")));
            }
            self.publish("load", &id, &id);
        }
        Ok(lines)
    }

    /// Resolves every name `save` was asked for, so a missing one is a plain 404 before any
    /// byte of the tarball is sent.
    pub fn check_save(&self, names: &[String]) -> Result<Vec<ImageRecord>> {
        if names.is_empty() {
            return Err(Error::invalid("no image names given"));
        }
        names.iter().map(|n| self.resolve(n)).collect()
    }

    /// `GET /images/get`: writes the `docker save` tarball to `out` as it is produced. Runs on
    /// the caller's (blocking) thread.
    pub fn save_blocking(&self, names: &[String], out: impl Write) -> Result<()> {
        let recs = self.check_save(names)?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.svc.save(&refs, SaveFormat::Docker, out)?;
        for (rec, name) in recs.iter().zip(names) {
            self.publish("save", &rec.id.to_string(), name);
        }
        Ok(())
    }

    /// `POST /images/create?fromSrc=-`: a rootfs tarball (plain, gzip or zstd) as a new
    /// one-layer image.
    pub async fn import(
        &self,
        req: ImportRequest,
        reader: impl Read + Send + 'static,
    ) -> Result<ImageRecord> {
        let reference = if req.repo.is_empty() {
            None
        } else {
            let r = parse_reference(&req.repo)?;
            Some(if req.tag.is_empty() {
                r
            } else {
                r.with_tag(&req.tag)
                    .map_err(|e| Error::invalid(e.to_string()))?
            })
        };
        let opts = ImportOptions {
            reference,
            changes: req.changes.clone(),
            message: (!req.message.is_empty()).then(|| req.message.clone()),
            platform: parse_platform(&req.platform)?,
        };
        let _shared = self.gc_lock.read().await;
        let svc = self.svc.clone();
        let rec = blocking(move || Ok(svc.import(reader, &opts)?)).await?;
        let id = rec.id.to_string();
        self.publish("import", &id, &id);
        Ok(rec)
    }
}
