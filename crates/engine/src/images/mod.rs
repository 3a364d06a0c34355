//! The images service: pull, push, list, inspect, tag, remove, history, save, load, import,
//! prune, and registry logins, over berth-image's stores and berth-distribution's client.

use crate::config::EngineConfig;
use crate::error::Result;
use crate::events::Events;
use berth_image::ImageService;
use std::sync::Arc;

pub struct Images {
    pub svc: Arc<ImageService>,
    pub events: Arc<Events>,
}

impl Images {
    pub fn open(cfg: &EngineConfig, events: Arc<Events>) -> Result<Images> {
        let svc = Arc::new(ImageService::open(&cfg.data_root)?);
        Ok(Images { svc, events })
    }
}
