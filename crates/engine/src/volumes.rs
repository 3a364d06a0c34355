//! Named and anonymous volumes (the `local` driver).

use crate::config::EngineConfig;
use crate::error::Result;
use crate::events::Events;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Volumes {
    pub root: PathBuf,
    pub events: Arc<Events>,
}

impl Volumes {
    pub fn open(cfg: &EngineConfig, events: Arc<Events>) -> Result<Volumes> {
        let root = cfg.data_root.join("volumes");
        std::fs::create_dir_all(&root)?;
        Ok(Volumes { root, events })
    }
}
