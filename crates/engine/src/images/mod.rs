//! The images service: pull, push, list, inspect, tag, remove, history, save, load, import,
//! prune, and registry logins, over berth-image's stores and berth-distribution's client.
//!
//! berth-image is synchronous, so its calls run on blocking threads. Pull, load and import
//! hold `gc_lock` shared from their first stored blob until the image is registered; prune
//! and the clean-up after a delete hold it exclusively (berth-image's GC contract).

pub mod archive;
pub mod auth;
pub mod list;
pub mod progress;
pub mod pull;
pub mod push;
pub mod remove;

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::events::Events;
use berth_image::store::ImageRecord;
use berth_image::{ImageService, Reference};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use auth::AuthConfig;
pub use progress::{JsonMessage, Sink};

/// How often layer snapshots extracted since the last round are made durable.
const SYNC_INTERVAL: Duration = Duration::from_secs(5);

pub struct Images {
    pub svc: Arc<ImageService>,
    pub events: Arc<Events>,
    pub(crate) gc_lock: tokio::sync::RwLock<()>,
    pub(crate) insecure_registries: Vec<String>,
    pub(crate) registry_mirrors: Vec<String>,
}

/// Runs a berth-image call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal("image task", e))?
}

/// Docker's "invalid reference format" answer for a name that does not parse.
pub(crate) fn parse_reference(s: &str) -> Result<Reference> {
    Reference::parse_normalized(s)
        .map_err(|_| Error::invalid(format!("invalid reference format: repository name ({s}) must be lowercase or is otherwise invalid")))
}

impl Images {
    pub fn open(cfg: &EngineConfig, events: Arc<Events>) -> Result<Images> {
        let svc = Arc::new(ImageService::open(&cfg.data_root)?);
        Ok(Images {
            svc,
            events,
            gc_lock: tokio::sync::RwLock::new(()),
            insecure_registries: cfg.insecure_registries.clone(),
            registry_mirrors: cfg.registry_mirrors.clone(),
        })
    }

    /// Starts the task that makes freshly extracted layer snapshots durable every few
    /// seconds (berth-image defers that syncfs so pulls do not wait for the disk).
    pub fn spawn_background(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else {
                    return;
                };
                let svc = me.svc.clone();
                drop(me);
                match tokio::task::spawn_blocking(move || svc.snapshots.sync_pending()).await {
                    Ok(Ok(n)) if n > 0 => tracing::debug!(snapshots = n, "synced layer snapshots"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "syncing layer snapshots"),
                    Err(e) => tracing::warn!(error = %e, "syncing layer snapshots"),
                }
            }
        });
    }

    /// At daemon shutdown: one last sync of pending snapshots.
    pub fn shutdown(&self) {
        if let Err(e) = self.svc.snapshots.sync_pending() {
            tracing::warn!(error = %e, "syncing layer snapshots at shutdown");
        }
    }

    pub fn resolve(&self, name_or_id: &str) -> Result<ImageRecord> {
        Ok(self.svc.images.resolve(name_or_id)?)
    }

    pub(crate) fn publish(&self, action: &str, id: &str, name: &str) {
        let attrs = BTreeMap::from([("name".to_string(), name.to_string())]);
        self.events.publish("image", action, id, attrs);
    }

    /// `POST /images/{name}/tag?repo=&tag=`.
    pub async fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        if repo.is_empty() {
            return Err(Error::invalid(
                "repository name must have at least one component",
            ));
        }
        let target = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        let r = parse_reference(&target)?;
        if r.digest().is_some() {
            return Err(Error::invalid(
                "refusing to create a tag with a digest reference",
            ));
        }
        let (svc, src) = (self.svc.clone(), source.to_string());
        let rr = r.clone();
        let rec = blocking(move || Ok(svc.images.tag(&src, &rr)?)).await?;
        self.publish("tag", &rec.id.to_string(), &r.familiar_string());
        Ok(())
    }
}
