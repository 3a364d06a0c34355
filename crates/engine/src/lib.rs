//! berth-engine: the daemon's core, with no HTTP in it. Containers (lifecycle through one
//! `berth-monitor` per container, logs, restart policies), images, volumes, networks, events
//! and persistent state. The `berth-api` crate maps Engine API routes onto it.

pub mod config;
pub mod container;
pub mod error;
pub mod events;
pub mod ids;
pub mod images;
pub mod store;
pub mod time;
pub mod volumes;

pub use config::EngineConfig;
pub use error::{Error, Result};

use std::sync::Arc;

/// Everything the daemon owns. Cheap to share: the API layer holds an `Arc<Engine>`.
pub struct Engine {
    pub config: Arc<EngineConfig>,
    pub events: Arc<Events>,
    pub images: Arc<images::Images>,
    pub volumes: Arc<volumes::Volumes>,
    pub containers: Arc<container::Containers>,
}

use events::Events;

impl Engine {
    /// Opens (and repairs) the state under the data and exec roots, and re-attaches to
    /// containers whose monitors survived a daemon restart.
    pub async fn open(config: EngineConfig) -> Result<Arc<Engine>> {
        let config = Arc::new(config);
        for dir in [&config.data_root, &config.exec_root] {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::internal(format!("creating {}", dir.display()), e))?;
        }
        let events = Arc::new(Events::new());
        let cfg = config.clone();
        let ev = events.clone();
        let images = tokio::task::spawn_blocking(move || images::Images::open(&cfg, ev))
            .await
            .map_err(|e| Error::internal("opening the image store", e))??;
        let images = Arc::new(images);
        let volumes = Arc::new(volumes::Volumes::open(&config, events.clone())?);
        let containers = container::Containers::open(
            config.clone(),
            events.clone(),
            images.clone(),
            volumes.clone(),
        )
        .await?;
        Ok(Arc::new(Engine {
            config,
            events,
            images,
            volumes,
            containers,
        }))
    }
}

impl Engine {
    /// Flushes what must survive the daemon (containers keep running).
    pub async fn shutdown(&self) {
        tracing::info!("engine shut down");
    }
}
