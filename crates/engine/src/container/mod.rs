//! Containers: records, lifecycle through monitors, logs, exec, archives, stats.

pub mod types;

use crate::config::EngineConfig;
use crate::error::Result;
use crate::events::Events;
use crate::images::Images;
use crate::volumes::Volumes;
use std::sync::Arc;

pub struct Counts {
    pub total: usize,
    pub running: usize,
    pub paused: usize,
}

pub struct Containers {
    pub config: Arc<EngineConfig>,
    pub events: Arc<Events>,
    pub images: Arc<Images>,
    pub volumes: Arc<Volumes>,
    daemon_id: String,
}

impl Containers {
    pub async fn open(
        config: Arc<EngineConfig>,
        events: Arc<Events>,
        images: Arc<Images>,
        volumes: Arc<Volumes>,
    ) -> Result<Arc<Containers>> {
        Ok(Arc::new(Containers {
            config,
            events,
            images,
            volumes,
            daemon_id: crate::ids::new_id(),
        }))
    }

    pub fn counts(&self) -> Counts {
        Counts {
            total: 0,
            running: 0,
            paused: 0,
        }
    }

    pub fn daemon_id(&self) -> &str {
        &self.daemon_id
    }

    /// IDs of the containers created from the image `image_id` (`sha256:<hex>`).
    pub fn users_of_image(&self, _image_id: &str) -> Vec<String> {
        Vec::new()
    }
}
