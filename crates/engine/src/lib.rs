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
    pub networks: Arc<berth_network::NetworkManager>,
}

async fn open_networks(config: &EngineConfig) -> Result<berth_network::NetworkManager> {
    let mut nc = berth_network::NetConfig::new(config.data_root.join("networks"));
    nc.default_bridge = config.bridge_name.clone();
    nc.default_bridge_cidr = config.default_bridge_subnet.parse().map_err(|_| {
        Error::invalid(format!(
            "invalid bridge address {:?} (gateway/prefix, e.g. 172.29.0.1/24)",
            config.default_bridge_subnet
        ))
    })?;
    nc.default_pool = config.default_address_pool.parse().map_err(|_| {
        Error::invalid(format!(
            "invalid default address pool {:?}",
            config.default_address_pool
        ))
    })?;
    nc.nft_table = config.nft_table.clone();
    berth_network::NetworkManager::open(nc)
        .await
        .map_err(container::network_glue::net_err)
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
        images.spawn_background();
        let volumes = Arc::new(volumes::Volumes::open(&config, events.clone())?);
        let networks = Arc::new(open_networks(&config).await?);
        let containers = container::Containers::open(
            config.clone(),
            events.clone(),
            images.clone(),
            volumes.clone(),
            networks.clone(),
        )
        .await?;
        Ok(Arc::new(Engine {
            config,
            events,
            images,
            volumes,
            containers,
            networks,
        }))
    }
}

impl Engine {
    /// Flushes what must survive the daemon (containers keep running).
    pub async fn shutdown(&self) {
        self.networks.shutdown().await;
        let images = self.images.clone();
        let _ = tokio::task::spawn_blocking(move || images.shutdown()).await;
        tracing::info!("engine shut down");
    }
}
