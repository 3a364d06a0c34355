//! `docker images`, `docker image inspect` and `docker history`: the Engine API's views of
//! image records and their configs.

use super::{blocking, Images};
use crate::error::{Error, Result};
use berth_image::config::chain_ids;
use berth_image::store::ImageRecord;
use berth_image::{ImageConfig, Reference};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// `filters`: dangling, label, reference, before, since, until.
    pub filters: HashMap<String, Vec<String>>,
    /// The client's API minor version: before 1.44 summaries carry `VirtualSize`.
    pub api_minor: Option<u32>,
}

fn unix_of(created: Option<&str>) -> i64 {
    created
        .and_then(crate::time::parse_rfc3339)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn familiar_digests(rec: &ImageRecord) -> Vec<String> {
    rec.repo_digests
        .iter()
        .filter_map(|d| Reference::parse_normalized(d).ok())
        .map(|r| r.familiar_string())
        .collect()
}

fn labels_of(cfg: &ImageConfig) -> BTreeMap<String, String> {
    cfg.config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
}

/// Shell-style pattern match (`*`, `?`), as Docker's `reference` filter uses `path.Match`.
pub fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            // `*` does not cross `/` in path.Match.
            Some('*') => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != '/')
                .any(|i| m(&p[1..], &s[i..])),
            Some('?') => !s.is_empty() && s[0] != '/' && m(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && m(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    m(&p, &s)
}

fn reference_matches(rec: &ImageRecord, pattern: &str) -> bool {
    rec.repo_tags
        .iter()
        .chain(&rec.repo_digests)
        .filter_map(|t| Reference::parse_normalized(t).ok())
        .any(|r| {
            glob(pattern, &r.familiar_name())
                || glob(pattern, &r.familiar_string())
                || glob(pattern, &r.to_string())
        })
}

fn bool_filter(key: &str, vals: &[String]) -> Result<bool> {
    match vals.last().map(String::as_str) {
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(Error::invalid(format!("invalid filter '{key}={other}'"))),
        None => Ok(true),
    }
}

impl Images {
    fn created_of(&self, name: &str) -> Result<i64> {
        let rec = self.resolve(name)?;
        Ok(unix_of(rec.created.as_deref()))
    }

    /// Whether `rec` (with its config) passes the list `filters`.
    pub(crate) fn matches(
        &self,
        rec: &ImageRecord,
        cfg: &ImageConfig,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<bool> {
        let created = unix_of(rec.created.as_deref());
        for (key, vals) in filters {
            if vals.is_empty() {
                continue;
            }
            let ok = match key.as_str() {
                "dangling" => bool_filter(key, vals)? == rec.repo_tags.is_empty(),
                "label" => {
                    let labels = labels_of(cfg);
                    vals.iter().all(|l| match l.split_once('=') {
                        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                        None => labels.contains_key(l),
                    })
                }
                "label!" => {
                    let labels = labels_of(cfg);
                    !vals.iter().any(|l| match l.split_once('=') {
                        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                        None => labels.contains_key(l),
                    })
                }
                "reference" => vals.iter().any(|p| reference_matches(rec, p)),
                "before" => {
                    let mut ok = true;
                    for v in vals {
                        ok &= created < self.created_of(v)?;
                    }
                    ok
                }
                "since" => {
                    let mut ok = true;
                    for v in vals {
                        ok &= created > self.created_of(v)?;
                    }
                    ok
                }
                "until" => {
                    let mut ok = true;
                    for v in vals {
                        let t = crate::time::parse_time_arg(v).ok_or_else(|| {
                            Error::invalid(format!("invalid value for until: {v:?}"))
                        })?;
                        let secs = t
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs() as i64)
                            .unwrap_or(0);
                        ok &= created < secs;
                    }
                    ok
                }
                other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `GET /images/json`: Docker's ImageSummary objects, newest first.
    pub async fn list(&self, opts: ListOptions) -> Result<Vec<Value>> {
        let svc = self.svc.clone();
        let records = blocking(move || {
            let mut out = Vec::new();
            for rec in svc.images.list() {
                // An image whose config is unreadable still lists, with no labels.
                let cfg = svc.config_of(&rec).unwrap_or_default();
                let size = svc.image_size(&rec);
                out.push((rec, cfg, size));
            }
            Ok(out)
        })
        .await?;
        let mut rows = Vec::new();
        for (rec, cfg, size) in records {
            if !self.matches(&rec, &cfg, &opts.filters)? {
                continue;
            }
            // With a reference filter, only the names that match are shown (as dockerd).
            let (tags, digests) = match opts.filters.get("reference").filter(|p| !p.is_empty()) {
                None => (rec.familiar_tags(), familiar_digests(&rec)),
                Some(patterns) => {
                    let keep = |full: &String| {
                        Reference::parse_normalized(full).ok().filter(|r| {
                            patterns.iter().any(|p| {
                                glob(p, &r.familiar_name())
                                    || glob(p, &r.familiar_string())
                                    || glob(p, &r.to_string())
                            })
                        })
                    };
                    (
                        rec.repo_tags
                            .iter()
                            .filter_map(keep)
                            .map(|r| r.familiar_string())
                            .collect(),
                        rec.repo_digests
                            .iter()
                            .filter_map(keep)
                            .map(|r| r.familiar_string())
                            .collect(),
                    )
                }
            };
            let mut v = json!({
                "Containers": -1,
                "Created": unix_of(rec.created.as_deref()),
                "Id": rec.id.to_string(),
                "Labels": labels_of(&cfg),
                "ParentId": "",
                "RepoDigests": digests,
                "RepoTags": tags,
                "SharedSize": -1,
                "Size": size,
            });
            if opts.api_minor.is_some_and(|m| m < 44) {
                v["VirtualSize"] = json!(size);
            }
            rows.push(v);
        }
        rows.sort_by_key(|v| std::cmp::Reverse(v["Created"].as_i64().unwrap_or(0)));
        Ok(rows)
    }

    /// Disk use of layers for `GET /system/df`: each image's `SharedSize` (its layers that
    /// other images also use) and the size of all distinct layers (`LayersSize`), since
    /// images that share a base store it once.
    pub async fn layer_usage(&self) -> Result<(HashMap<String, u64>, u64)> {
        let svc = self.svc.clone();
        blocking(move || {
            let images = svc.images.list();
            let chains: Vec<(String, Vec<berth_image::Digest>)> = images
                .iter()
                .map(|r| (r.id.to_string(), chain_ids(&r.diff_ids)))
                .collect();
            let mut users: HashMap<&berth_image::Digest, usize> = HashMap::new();
            for (_, cs) in &chains {
                for c in cs.iter().collect::<std::collections::BTreeSet<_>>() {
                    *users.entry(c).or_default() += 1;
                }
            }
            let size = |c: &berth_image::Digest| svc.snapshots.layer_size(c).unwrap_or(0);
            let total = users.keys().map(|c| size(c)).sum();
            let shared = chains
                .iter()
                .map(|(id, cs)| {
                    let s = cs
                        .iter()
                        .filter(|c| users.get(c).copied().unwrap_or(0) > 1)
                        .map(size)
                        .sum();
                    (id.clone(), s)
                })
                .collect();
            Ok((shared, total))
        })
        .await
    }

    /// `GET /images/{name}/json`: Docker's ImageInspect.
    pub async fn inspect(&self, name: &str) -> Result<Value> {
        let rec = self.resolve(name)?;
        let svc = self.svc.clone();
        let r2 = rec.clone();
        let (cfg, size) = blocking(move || Ok((svc.config_of(&r2)?, svc.image_size(&r2)))).await?;
        let chains = chain_ids(&rec.diff_ids);
        let layer_dir = |i: usize| {
            self.svc
                .snapshots
                .layer_dir(&chains[i])
                .join("fs")
                .display()
                .to_string()
        };
        let graph = if chains.is_empty() {
            json!({ "Data": null, "Name": "overlay2" })
        } else {
            let top = chains.len() - 1;
            let top_dir = self.svc.snapshots.layer_dir(&chains[top]);
            let mut data = Map::new();
            if top > 0 {
                let lower: Vec<String> = (0..top).rev().map(layer_dir).collect();
                data.insert("LowerDir".into(), json!(lower.join(":")));
            }
            data.insert("MergedDir".into(), json!(top_dir.join("merged")));
            data.insert("UpperDir".into(), json!(layer_dir(top)));
            data.insert("WorkDir".into(), json!(top_dir.join("work")));
            json!({ "Data": data, "Name": "overlay2" })
        };
        let history_comment = cfg
            .history
            .as_ref()
            .and_then(|h| h.last())
            .and_then(|h| h.comment.clone());
        let comment = cfg
            .extra
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(history_comment)
            .unwrap_or_default();
        let config = cfg
            .config
            .as_ref()
            .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        let mut v = json!({
            "Id": rec.id.to_string(),
            "RepoTags": rec.familiar_tags(),
            "RepoDigests": familiar_digests(&rec),
            "Parent": "",
            "Comment": comment,
            "Created": cfg.created.clone().or(rec.created.clone()).unwrap_or_else(|| crate::time::ZERO.to_string()),
            "DockerVersion": cfg.extra.get("docker_version").and_then(Value::as_str).unwrap_or(""),
            "Author": cfg.author.clone().unwrap_or_default(),
            "Config": config,
            "Architecture": cfg.architecture,
            "Os": cfg.os,
            "Size": size,
            "GraphDriver": graph,
            "RootFS": {
                "Type": "layers",
                "Layers": rec.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            },
            "Metadata": { "LastTagTime": crate::time::ZERO },
        });
        if let Some(variant) = &cfg.variant {
            v["Variant"] = json!(variant);
        }
        if let Some(osv) = cfg.extra.get("os.version") {
            v["OsVersion"] = osv.clone();
        }
        Ok(v)
    }

    /// `GET /images/{name}/history`: newest first; the top entry carries the image ID and
    /// tags, the others `<missing>` as with pulled images in Docker.
    pub async fn history(&self, name: &str) -> Result<Vec<Value>> {
        let rec = self.resolve(name)?;
        let svc = self.svc.clone();
        let r2 = rec.clone();
        let cfg = blocking(move || Ok(svc.config_of(&r2)?)).await?;
        let chains = chain_ids(&rec.diff_ids);
        let mut layer = 0usize;
        let mut items = Vec::new();
        let history = cfg.history.clone().unwrap_or_default();
        let entries: Vec<(Option<String>, String, String, bool)> = if history.is_empty() {
            chains
                .iter()
                .map(|_| (cfg.created.clone(), String::new(), String::new(), false))
                .collect()
        } else {
            history
                .iter()
                .map(|h| {
                    (
                        h.created.clone(),
                        h.created_by.clone().unwrap_or_default(),
                        h.comment.clone().unwrap_or_default(),
                        h.empty_layer.unwrap_or(false),
                    )
                })
                .collect()
        };
        for (created, created_by, comment, empty) in entries {
            let size = if empty {
                0
            } else {
                let s = chains
                    .get(layer)
                    .and_then(|c| self.svc.snapshots.layer_size(c))
                    .unwrap_or(0);
                layer += 1;
                s
            };
            items.push(json!({
                "Comment": comment,
                "Created": unix_of(created.as_deref()),
                "CreatedBy": created_by,
                "Id": "<missing>",
                "Size": size,
                "Tags": null,
            }));
        }
        items.reverse();
        if let Some(top) = items.first_mut() {
            top["Id"] = json!(rec.id.to_string());
            top["Tags"] = json!(rec.familiar_tags());
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn reference_patterns() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("*", "library/busybox"));
        assert!(glob("*/*", "library/busybox"));
        assert!(!glob("busybox", "busybox:latest"));
    }
}
