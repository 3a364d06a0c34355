//! Containers: records, lifecycle through one `berth-monitor` each, logs, exec, archives,
//! stats. Every state change is written to the container's record file before it is
//! acknowledged.

pub mod archive;
pub mod commit;
pub mod create;
pub mod exec;
pub mod health;
pub mod lifecycle;
pub mod logs;
pub mod model;
pub mod mounts;
pub mod network_glue;
pub mod root;
pub mod spec;
mod start;
pub mod stats;
pub mod types;
mod update;
mod volume_glue;

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::images::Images;
use crate::volumes::Volumes;
use model::Container;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{oneshot, watch};

/// How long a finished container's monitor may take to give the container
/// back to the runtime before its id or run directory is reused anyway.
const MONITOR_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A removed container's record directory is renamed to this prefix plus its id, and
/// deleted in the background: the rename is what removes the container.
const REMOVED_PREFIX: &str = ".removed-";

pub struct Counts {
    pub total: usize,
    pub running: usize,
    pub paused: usize,
}

/// What waiters watch: bumps on every exit, and once on removal.
#[derive(Clone, Debug, Default)]
pub struct RunState {
    pub exits: u64,
    pub exit_code: i64,
    pub running: bool,
    pub removed: bool,
    pub error: Option<String>,
}

/// An attach request that arrived before the container started (the docker CLI attaches
/// before it starts): fulfilled by `start` once the monitor is ready, before the process runs.
pub struct PendingAttach {
    pub req: berth_monitor::AttachRequest,
    pub tx: oneshot::Sender<Result<std::os::unix::net::UnixStream>>,
}

pub struct Entry {
    pub rec: Mutex<Container>,
    pub run: watch::Sender<RunState>,
    /// Serialises start/stop/kill/remove/restart of one container.
    pub op: tokio::sync::Mutex<()>,
    pub pending_attach: Mutex<Vec<PendingAttach>>,
}

impl Entry {
    pub fn snapshot(&self) -> Container {
        self.rec
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

pub struct Containers {
    pub config: Arc<EngineConfig>,
    pub events: Arc<Events>,
    pub images: Arc<Images>,
    pub volumes: Arc<Volumes>,
    pub networks: Arc<berth_network::NetworkManager>,
    pub(crate) entries: RwLock<BTreeMap<String, Arc<Entry>>>,
    pub(crate) execs: exec::ExecTable,
    daemon_id: String,
}

impl Containers {
    pub async fn open(
        config: Arc<EngineConfig>,
        events: Arc<Events>,
        images: Arc<Images>,
        volumes: Arc<Volumes>,
        networks: Arc<berth_network::NetworkManager>,
    ) -> Result<Arc<Containers>> {
        let daemon_id = load_daemon_id(&config)?;
        let dir = config.containers_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("creating {}", dir.display()), e))?;
        std::fs::create_dir_all(config.exec_root.join("c"))?;
        // Exec instances do not outlive the daemon (as in Docker); their monitors finish alone.
        let _ = std::fs::remove_dir_all(config.exec_root.join("x"));
        let mut entries = BTreeMap::new();
        for e in std::fs::read_dir(&dir)?.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.starts_with(REMOVED_PREFIX) {
                continue;
            }
            let path = e.path().join("container.json");
            crate::store::remove_temp_files(&e.path());
            // Empty: an --rm container's record (not forced to disk) after a power loss.
            let empty = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
            let record = if empty {
                Ok(None)
            } else {
                crate::store::read_json::<Container>(&path)
            };
            match record {
                Ok(Some(rec)) => {
                    let (run, _) = watch::channel(RunState {
                        exit_code: rec.state.exit_code,
                        running: rec.state.running,
                        ..Default::default()
                    });
                    entries.insert(
                        id,
                        Arc::new(Entry {
                            rec: Mutex::new(rec),
                            run,
                            op: tokio::sync::Mutex::new(()),
                            pending_attach: Mutex::new(Vec::new()),
                        }),
                    );
                }
                // A directory without a record is a create that crashed half-way.
                Ok(None) => {
                    tracing::warn!(id, "removing a half-created container");
                    let _ = std::fs::remove_dir_all(e.path());
                }
                Err(err) => {
                    tracing::error!(id, error = %err, "unreadable container record; left alone")
                }
            }
        }
        let me = Arc::new(Containers {
            config,
            events,
            images,
            volumes,
            networks,
            entries: RwLock::new(entries),
            execs: exec::ExecTable::default(),
            daemon_id,
        });
        me.clone().recover().await;
        me.remove_leftovers();
        // Endpoints of containers that are gone (removed or died while the daemon was down).
        let live: Vec<String> = me
            .all()
            .iter()
            .map(|e| e.snapshot())
            .filter(|c| c.state.running)
            .map(|c| c.id)
            .collect();
        if let Err(e) = me.networks.reconcile(&live).await {
            tracing::warn!(error = %e, "reconciling networks");
        }
        Ok(me)
    }

    pub fn daemon_id(&self) -> &str {
        &self.daemon_id
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            total: 0,
            running: 0,
            paused: 0,
        };
        for e in self.all() {
            let r = e.snapshot();
            c.total += 1;
            if r.state.paused {
                c.paused += 1;
            } else if r.state.running {
                c.running += 1;
            }
        }
        c
    }

    pub(crate) fn all(&self) -> Vec<Arc<Entry>> {
        self.entries
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Docker's lookup order: full ID, exact name, then a unique ID prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Arc<Entry>> {
        let key = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if key.is_empty() {
            return Err(Error::no_such_container(name_or_id));
        }
        let map = self
            .entries
            .read()
            .map_err(|_| Error::Internal("container table poisoned".into()))?;
        if let Some(e) = map.get(key) {
            return Ok(e.clone());
        }
        for e in map.values() {
            if e.rec.lock().map(|r| r.name == key).unwrap_or(false) {
                return Ok(e.clone());
            }
        }
        let matches: Vec<_> = map.iter().filter(|(id, _)| id.starts_with(key)).collect();
        match matches.len() {
            1 => Ok(matches[0].1.clone()),
            0 => Err(Error::no_such_container(name_or_id)),
            _ => Err(Error::invalid(format!(
                "multiple IDs found with provided prefix: {name_or_id}"
            ))),
        }
    }

    pub fn inspect(&self, name_or_id: &str) -> Result<Container> {
        Ok(self.get(name_or_id)?.snapshot())
    }

    /// IDs of the containers created from the image `image_id` (`sha256:<hex>`).
    pub fn users_of_image(&self, image_id: &str) -> Vec<String> {
        self.all()
            .iter()
            .map(|e| e.snapshot())
            .filter(|c| c.image_id == image_id)
            .map(|c| c.id)
            .collect()
    }

    /// The containers created from an image, each with whether it runs (a running user
    /// blocks even a forced image removal).
    pub fn image_users(&self, image_id: &str) -> Vec<(String, bool)> {
        self.all()
            .iter()
            .map(|e| e.snapshot())
            .filter(|c| c.image_id == image_id)
            .map(|c| (c.id, c.state.running))
            .collect()
    }

    pub fn list(&self) -> Vec<Container> {
        let mut v: Vec<Container> = self.all().iter().map(|e| e.snapshot()).collect();
        v.sort_by(|a, b| b.created.cmp(&a.created));
        v
    }

    pub(crate) fn name_taken(&self, name: &str) -> Option<String> {
        self.all()
            .iter()
            .map(|e| e.snapshot())
            .find(|c| c.name == name)
            .map(|c| c.id)
    }

    /// Writes the record of `entry` after applying `f` to it; a change that changes nothing
    /// is not written (each write costs two fsyncs).
    pub(crate) fn update<T>(
        &self,
        entry: &Entry,
        f: impl FnOnce(&mut Container) -> T,
    ) -> Result<T> {
        self.write_update(entry, f, true)
    }

    /// [`Self::update`] without the fsyncs, for states a crash may lose: the
    /// last ones of a container on its way to removal. After a crash the
    /// daemon finds its monitor gone and finishes the job.
    pub(crate) fn update_volatile<T>(
        &self,
        entry: &Entry,
        f: impl FnOnce(&mut Container) -> T,
    ) -> Result<T> {
        self.write_update(entry, f, false)
    }

    /// Changes the record of a container on its way to removal without writing it: after
    /// a crash the record on disk (running, or exited) leads to the same removal.
    pub(crate) fn update_in_memory<T>(
        &self,
        entry: &Entry,
        f: impl FnOnce(&mut Container) -> T,
    ) -> Result<T> {
        let mut rec = entry
            .rec
            .lock()
            .map_err(|_| Error::Internal("container record poisoned".into()))?;
        Ok(f(&mut rec))
    }

    fn write_update<T>(
        &self,
        entry: &Entry,
        f: impl FnOnce(&mut Container) -> T,
        durable: bool,
    ) -> Result<T> {
        let mut rec = entry
            .rec
            .lock()
            .map_err(|_| Error::Internal("container record poisoned".into()))?;
        let before = serde_json::to_vec(&*rec).ok();
        let out = f(&mut rec);
        if before.is_some() && before == serde_json::to_vec(&*rec).ok() {
            return Ok(out);
        }
        let path = self.config.container_dir(&rec.id).join("container.json");
        // An --rm container's record is never forced to disk (see `create`).
        if durable && !rec.host_config.auto_remove {
            crate::store::write_json(&path, &*rec)?;
        } else {
            crate::store::write_json_volatile(&path, &*rec)?;
        }
        Ok(out)
    }

    /// What removals the daemon did not finish (it was stopped or killed) left: records
    /// set aside for deletion, writable layers and run directories without a record.
    fn remove_leftovers(&self) {
        let known: std::collections::BTreeSet<String> = self
            .entries
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Ok(dir) = std::fs::read_dir(self.config.containers_dir()) {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(REMOVED_PREFIX) {
                    let path = e.path();
                    tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path));
                }
            }
        }
        // Listed now, before the API serves: a container created meanwhile must not have its
        // new writable layer taken for an orphan. Only the deletions wait.
        let snapshots = self.images.svc.snapshots.clone();
        let orphans: Vec<String> = snapshots
            .rw_keys()
            .unwrap_or_default()
            .into_iter()
            .filter(|k| !known.contains(k))
            .collect();
        tokio::task::spawn_blocking(move || {
            for key in orphans {
                tracing::info!(key, "removing the writable layer of a removed container");
                if let Err(e) = snapshots.remove_rw(&key) {
                    tracing::warn!(key, error = %e, "removing a writable layer");
                }
            }
        });
        self.remove_orphan_run_dirs(&known);
    }

    /// Run directories of containers that have no record: left by a removal the daemon
    /// did not finish (it was stopped or killed), or by a create that crashed half-way.
    fn remove_orphan_run_dirs(&self, known: &std::collections::BTreeSet<String>) {
        let Ok(dir) = std::fs::read_dir(self.config.exec_root.join("c")) else {
            return;
        };
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&id) {
                tracing::info!(id, "removing the run directory of a removed container");
                remove_run_dir_later(e.path());
            }
        }
    }

    pub(crate) fn run_dir(&self, id: &str) -> PathBuf {
        self.config.run_dir(id)
    }

    pub(crate) fn publish(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let mut attrs: BTreeMap<String, String> = c.config.labels.clone();
        attrs.insert("name".into(), c.name.clone());
        attrs.insert("image".into(), c.config.image.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.publish("container", action, &c.id, attrs);
    }

    /// `PATCH`-style rename, checked against every other name.
    pub async fn rename(&self, name_or_id: &str, new_name: &str) -> Result<()> {
        let entry = self.get(name_or_id)?;
        let new_name = crate::ids::validate_name(new_name)?;
        let old = entry.snapshot();
        if old.name == new_name {
            return Err(Error::invalid(
                "Renaming a container with the same name as its current name".to_string(),
            ));
        }
        if let Some(other) = self.name_taken(&new_name) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{new_name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        self.update(&entry, |c| c.name = new_name.clone())?;
        // Other containers find it by its new name only.
        if let Err(e) = self.networks.rename_container(&old.id, &new_name).await {
            tracing::warn!(id = %old.id, error = %e, "renaming the container's endpoints");
        }
        let rec = entry.snapshot();
        self.publish(&rec, "rename", &[("oldName", format!("/{}", old.name))]);
        Ok(())
    }

    /// Names and IDs by which containers can be found, for filters.
    pub fn names(&self) -> HashMap<String, String> {
        self.all()
            .iter()
            .map(|e| e.snapshot())
            .map(|c| (c.name, c.id))
            .collect()
    }
}

fn load_daemon_id(cfg: &EngineConfig) -> Result<String> {
    let path = cfg.data_root.join("engine-id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if !s.is_empty() {
            return Ok(s.to_string());
        }
    }
    let id = uuid_like();
    crate::store::write_atomic(&path, id.as_bytes())?;
    Ok(id)
}

fn uuid_like() -> String {
    let h = crate::ids::new_id();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Containers {
    /// (writable layer size, writable + image size) in bytes.
    pub async fn sizes(&self, c: &Container) -> (u64, u64) {
        let svc = self.images.svc.clone();
        let id = c.id.clone();
        let image = c.image_id.clone();
        tokio::task::spawn_blocking(move || {
            let rw = svc
                .snapshots
                .rw_upper(&id)
                .map(|p| dir_size(&p))
                .unwrap_or(0);
            let img = svc.images.resolve(&image).map(|r| r.size).unwrap_or(0);
            (rw, rw + img)
        })
        .await
        .unwrap_or((0, 0))
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

/// Takes a container's record directory and writable layer away: the record at once
/// (renamed aside, so a restarted daemon no longer knows the container), the files in the
/// background, where a directory full of files on a busy ext4 costs milliseconds.
pub(crate) fn remove_record_and_layer(
    config: &crate::config::EngineConfig,
    snapshots: berth_image::snapshot::SnapshotStore,
    id: &str,
) {
    let cdir = config.container_dir(id);
    let trash = config
        .containers_dir()
        .join(format!("{REMOVED_PREFIX}{id}"));
    let doomed = match std::fs::rename(&cdir, &trash) {
        Ok(()) => Some(trash),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(id, error = %e, "setting a removed container's record aside");
            Some(cdir)
        }
    };
    let id = id.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = snapshots.remove_rw(&id) {
            tracing::warn!(id, error = %e, "removing the writable layer");
        }
        if let Some(d) = doomed {
            let _ = std::fs::remove_dir_all(d);
        }
    });
}

/// Removes a removed container's run directory once its monitor is gone, in the
/// background. Its rootfs mount point must be unmounted and empty first: removing files
/// through a mounted overlay would reach into image layers.
pub(crate) fn remove_run_dir_later(run_dir: PathBuf) {
    tokio::task::spawn_blocking(move || {
        berth_monitor::wait_gone(&run_dir, MONITOR_GRACE);
        let rootfs = run_dir.join("rootfs");
        let _ = berth_image::snapshot::unmount_rootfs(&rootfs);
        match std::fs::remove_dir(&rootfs) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(run_dir = %run_dir.display(), error = %e,
                    "run directory left alone: its rootfs is still mounted or not empty");
                return;
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&run_dir) {
            tracing::warn!(run_dir = %run_dir.display(), error = %e, "removing a run directory");
        }
    });
}
