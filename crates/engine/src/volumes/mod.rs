//! Named and anonymous volumes with Docker's `local` driver.
//!
//! On disk: `<data-root>/volumes/<name>/volume.json` (the record, written atomically) and
//! `<name>/_data` (the content, or the mount point of a tmpfs/device/bind given in
//! `DriverOpts`). A directory without a record is not a volume: it is a create or a removal
//! that a crash interrupted, and `open` finishes the job by removing it.
//!
//! The containers using a volume are part of its record, so a volume a stopped container
//! holds stays protected from `prune` and `rm` across daemon restarts.

mod copy;
mod mount;

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::events::Events;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use copy::copy_tree;
pub use mount::mountinfo_unescape;

/// Label Docker (≥ 23) puts on anonymous volumes; `prune` removes only those by default.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
const RECORD: &str = "volume.json";
const DATA: &str = "_data";

/// A volume as the Engine API shows it (`GET /volumes/{name}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Volume {
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "Scope")]
    pub scope: String,
}

impl Volume {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }
    pub fn is_anonymous(&self) -> bool {
        self.label(ANONYMOUS_LABEL).is_some()
    }
}

/// What `POST /volumes/create` asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Empty: a generated 64-hex name.
    pub name: String,
    pub driver: String,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    name: String,
    created_at: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    options: Option<BTreeMap<String, String>>,
    /// IDs of the containers that mount it.
    #[serde(default)]
    users: BTreeSet<String>,
}

/// What `prune` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}

pub struct Volumes {
    pub root: PathBuf,
    pub events: Arc<Events>,
    state: Mutex<BTreeMap<String, Record>>,
}

/// Docker's rule for local volume names.
pub fn validate_name(name: &str) -> Result<()> {
    if crate::ids::is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )))
    }
}

fn no_such_volume(name: &str) -> Error {
    Error::NotFound(format!("get {name}: no such volume"))
}

/// RFC 3339 to the second, as Docker prints a volume's `CreatedAt`.
fn now_seconds() -> String {
    let s = crate::time::now_rfc3339();
    match (s.find('.'), s.ends_with('Z')) {
        (Some(dot), true) => format!("{}Z", &s[..dot]),
        _ => s,
    }
}

impl Volumes {
    pub fn open(cfg: &EngineConfig, events: Arc<Events>) -> Result<Volumes> {
        let root = cfg.data_root.join("volumes");
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::internal(format!("creating {}", root.display()), e))?;
        let mut state = BTreeMap::new();
        for entry in std::fs::read_dir(&root)?.flatten() {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            crate::store::remove_temp_files(&dir);
            match crate::store::read_json::<Record>(&dir.join(RECORD)) {
                Ok(Some(rec)) => {
                    state.insert(rec.name.clone(), rec);
                }
                Ok(None) => {
                    tracing::info!(dir = %dir.display(), "removing an unfinished volume");
                    let _ = mount::unmount_if_mounted(&dir.join(DATA));
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "removing an unfinished volume");
                    }
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "unreadable volume record; left alone")
                }
            }
        }
        Ok(Volumes {
            root,
            events,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Record>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn data_of(&self, name: &str) -> PathBuf {
        self.dir_of(name).join(DATA)
    }

    fn to_volume(&self, r: &Record) -> Volume {
        Volume {
            created_at: r.created_at.clone(),
            driver: "local".into(),
            labels: r.labels.clone(),
            mountpoint: self.data_of(&r.name).display().to_string(),
            name: r.name.clone(),
            options: r.options.clone(),
            scope: "local".into(),
        }
    }

    fn persist(&self, r: &Record) -> Result<()> {
        crate::store::write_json(&self.dir_of(&r.name).join(RECORD), r)
    }

    /// `POST /volumes/create`. An existing name returns the existing volume, as Docker does.
    pub fn create(&self, opts: CreateOptions) -> Result<Volume> {
        if !(opts.driver.is_empty() || opts.driver == "local") {
            return Err(Error::NotFound(format!(
                "error looking up volume plugin {}: plugin \"{}\" not found",
                opts.driver, opts.driver
            )));
        }
        let name = if opts.name.is_empty() {
            crate::ids::new_id()
        } else {
            opts.name.clone()
        };
        validate_name(&name)?;
        if let Some(o) = &opts.driver_opts {
            mount::validate(o).map_err(|e| Error::invalid(format!("create {name}: {e}")))?;
        }
        let mut st = self.lock();
        if let Some(r) = st.get(&name) {
            return Ok(self.to_volume(r));
        }
        let data = self.data_of(&name);
        std::fs::create_dir_all(&data).map_err(|e| {
            Error::internal(format!("create {name}: creating {}", data.display()), e)
        })?;
        let rec = Record {
            name: name.clone(),
            created_at: now_seconds(),
            labels: opts.labels,
            options: opts.driver_opts.filter(|o| !o.is_empty()),
            users: BTreeSet::new(),
        };
        if let Err(e) = self.persist(&rec) {
            let _ = std::fs::remove_dir_all(self.dir_of(&name));
            return Err(e);
        }
        let v = self.to_volume(&rec);
        st.insert(name.clone(), rec);
        drop(st);
        self.publish("create", &name);
        Ok(v)
    }

    fn publish(&self, action: &str, name: &str) {
        let attrs = BTreeMap::from([("driver".to_string(), "local".to_string())]);
        self.events.publish("volume", action, name, attrs);
    }

    /// `-v name:/path`: the named volume (created when missing), now used by `container_id`.
    pub fn get_or_create(&self, name: &str, container_id: &str) -> Result<Volume> {
        let v = self.create(CreateOptions {
            name: name.to_string(),
            ..Default::default()
        })?;
        self.add_user(name, container_id);
        Ok(v)
    }

    /// A new anonymous volume (random name, Docker's anonymous label) used by `container_id`.
    pub fn create_anonymous(&self, container_id: &str) -> Result<Volume> {
        let v = self.create(CreateOptions {
            labels: Some(BTreeMap::from([(
                ANONYMOUS_LABEL.to_string(),
                String::new(),
            )])),
            ..Default::default()
        })?;
        self.add_user(&v.name, container_id);
        Ok(v)
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        let st = self.lock();
        st.get(name)
            .map(|r| self.to_volume(r))
            .ok_or_else(|| no_such_volume(name))
    }

    pub fn list(&self) -> Vec<Volume> {
        self.lock().values().map(|r| self.to_volume(r)).collect()
    }

    /// Volumes with the containers using each.
    pub fn list_with_users(&self) -> Vec<(Volume, Vec<String>)> {
        self.lock()
            .values()
            .map(|r| (self.to_volume(r), r.users.iter().cloned().collect()))
            .collect()
    }

    fn update_users(&self, name: &str, f: impl FnOnce(&mut BTreeSet<String>) -> bool) {
        let mut st = self.lock();
        let Some(r) = st.get_mut(name) else {
            return;
        };
        if f(&mut r.users) {
            let r = r.clone();
            if let Err(e) = self.persist(&r) {
                tracing::warn!(volume = name, error = %e, "recording the volume's users");
            }
        }
    }

    pub fn add_user(&self, name: &str, container_id: &str) {
        self.update_users(name, |u| u.insert(container_id.to_string()));
    }

    pub fn remove_user(&self, name: &str, container_id: &str) {
        self.update_users(name, |u| u.remove(container_id));
    }

    pub fn users(&self, name: &str) -> Vec<String> {
        self.lock()
            .get(name)
            .map(|r| r.users.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The directory a container mounts. Volumes with `DriverOpts` get their filesystem
    /// mounted there on first use.
    pub fn mount_path(&self, name: &str) -> Result<PathBuf> {
        let opts = {
            let st = self.lock();
            st.get(name)
                .ok_or_else(|| no_such_volume(name))?
                .options
                .clone()
        };
        let data = self.data_of(name);
        if let Some(o) = opts.filter(|o| o.contains_key("type") || o.contains_key("device")) {
            mount::mount_once(&o, &data)
                .map_err(|e| Error::internal(format!("mounting volume {name}"), e))?;
        }
        Ok(data)
    }

    /// Docker's copy-up: when a volume that is still empty is mounted over a non-empty image
    /// directory `src`, that content is copied in first (owners, modes, times, symlinks and
    /// hard links kept). Nothing is done when the volume already has content.
    pub fn copy_up(&self, name: &str, src: &Path) -> Result<()> {
        let data = self.mount_path(name)?;
        let empty = std::fs::read_dir(&data)
            .map_err(|e| Error::internal(format!("reading {}", data.display()), e))?
            .next()
            .is_none();
        if !empty {
            return Ok(());
        }
        copy_tree(src, &data)
            .map_err(|e| Error::internal(format!("copying image content into volume {name}"), e))
    }

    /// `DELETE /volumes/{name}`. In use: 409 whatever `force` says; `force` only turns "no
    /// such volume" into success, as Docker does.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let mut st = self.lock();
        let Some(r) = st.get(name) else {
            return if force {
                Ok(())
            } else {
                Err(no_such_volume(name))
            };
        };
        if !r.users.is_empty() {
            let users: Vec<&str> = r.users.iter().map(String::as_str).collect();
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        let dir = self.dir_of(name);
        mount::unmount_if_mounted(&self.data_of(name))
            .map_err(|e| Error::internal(format!("remove {name}: unmounting"), e))?;
        // The record goes first: a crash after this leaves a directory `open` removes.
        std::fs::remove_file(dir.join(RECORD))
            .map_err(|e| Error::internal(format!("remove {name}"), e))?;
        st.remove(name);
        drop(st);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(volume = name, error = %e, "removing the volume's data");
        }
        self.publish("destroy", name);
        Ok(())
    }

    /// Bytes used by a volume's content.
    pub fn size(&self, name: &str) -> u64 {
        copy::disk_usage(&self.data_of(name))
    }

    /// `POST /volumes/prune`: unused volumes that `keep` does not protect; only anonymous
    /// ones unless `all`.
    pub fn prune(&self, all: bool, select: &dyn Fn(&Volume) -> bool) -> Result<PruneReport> {
        let candidates: Vec<String> = self
            .list_with_users()
            .into_iter()
            .filter(|(v, users)| users.is_empty() && (all || v.is_anonymous()) && select(v))
            .map(|(v, _)| v.name)
            .collect();
        let mut report = PruneReport::default();
        for name in candidates {
            let size = self.size(&name);
            match self.remove(&name, false) {
                Ok(()) => {
                    report.deleted.push(name);
                    report.space_reclaimed += size;
                }
                // Taken into use since the listing: not an error for prune.
                Err(Error::Conflict(_)) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let attrs = BTreeMap::from([("reclaimed".to_string(), report.space_reclaimed.to_string())]);
        self.events.publish("volume", "prune", "", attrs);
        Ok(report)
    }
}

/// `filters` of `GET /volumes`: name (substring), label, dangling, driver.
pub fn matches_filters(
    v: &Volume,
    users: &[String],
    filters: &HashMap<String, Vec<String>>,
) -> Result<bool> {
    for (key, vals) in filters {
        if vals.is_empty() {
            continue;
        }
        let ok = match key.as_str() {
            "name" => vals.iter().any(|n| v.name.contains(n.as_str())),
            "driver" => vals.iter().any(|d| d == &v.driver),
            "label" => vals.iter().all(|l| label_matches(v, l)),
            "label!" => !vals.iter().any(|l| label_matches(v, l)),
            "dangling" => {
                let mut ok = false;
                for d in vals {
                    let want = match d.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => {
                            return Err(Error::invalid(format!(
                                "invalid filter 'dangling={other}'"
                            )))
                        }
                    };
                    ok |= users.is_empty() == want;
                }
                ok
            }
            // Handled by prune.
            "all" => true,
            other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn label_matches(v: &Volume, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, val)) => v.label(k) == Some(val),
        None => v.label(filter).is_some(),
    }
}
