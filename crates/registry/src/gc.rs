//! Garbage collection: mark every blob a manifest references, sweep the rest. Safe online:
//! it holds the storage's GC lock exclusively (pushes that make content reachable wait), and
//! spares blobs younger than a grace period, so layers pushed ahead of their manifest live.
//! Upload sessions are separate from blobs and are only removed once idle past their TTL.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::digest::Digest;
use crate::storage::{Storage, StorageError};

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    pub grace: Duration,
    /// Remove upload sessions idle this long; None keeps them all.
    pub upload_ttl: Option<Duration>,
    /// Also delete manifests no tag reaches (directly, through an index, or as a referrer).
    pub delete_untagged: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    pub blobs_marked: usize,
    pub blobs_deleted: Vec<Digest>,
    pub bytes_freed: u64,
    pub manifests_deleted: usize,
    pub uploads_removed: usize,
}

fn referenced(manifest: &[u8]) -> Vec<Digest> {
    let Ok(v) = serde_json::from_slice::<Value>(manifest) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |d: &Value| {
        if let Some(d) = d
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            out.push(d);
        }
    };
    if let Some(c) = v.get("config") {
        push(c);
    }
    for field in ["layers", "manifests"] {
        if let Some(items) = v.get(field).and_then(Value::as_array) {
            items.iter().for_each(&mut push);
        }
    }
    out
}

async fn delete_untagged(
    storage: &dyn Storage,
    repo: &str,
    dry_run: bool,
) -> Result<usize, StorageError> {
    let manifests = storage.list_manifests(repo).await?;
    let mut keep: HashSet<Digest> = storage
        .list_tags(repo)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    // Grow the kept set to a fixed point: children of kept indexes, referrers of kept ones.
    loop {
        let before = keep.len();
        for (d, meta) in &manifests {
            if keep.contains(d) {
                if let Ok(bytes) = storage.read_blob_bytes(d).await {
                    keep.extend(referenced(&bytes));
                }
            } else if let Some(s) = meta.subject.as_deref().and_then(|s| s.parse().ok()) {
                if keep.contains(&s) {
                    keep.insert(d.clone());
                }
            }
        }
        if keep.len() == before {
            break;
        }
    }
    let mut n = 0;
    for (d, _) in manifests {
        if !keep.contains(&d) {
            if !dry_run {
                storage.delete_manifest(repo, &d).await?;
            }
            n += 1;
        }
    }
    Ok(n)
}

pub async fn collect(storage: &dyn Storage, opts: &GcOptions) -> Result<GcReport, StorageError> {
    let mut report = GcReport::default();
    // Sessions are purged before taking the lock: finishing an upload holds its session and
    // then waits for the lock, so cancelling under the lock could deadlock.
    if let Some(ttl) = opts.upload_ttl {
        let cutoff = SystemTime::now()
            .checked_sub(ttl)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for (id, st) in storage.list_uploads().await? {
            if st.modified < cutoff {
                if !opts.dry_run {
                    // The session may have finished meanwhile; that is fine.
                    let _ = storage.cancel_upload(&st.repository, &id).await;
                }
                report.uploads_removed += 1;
            }
        }
    }
    let _exclusive = storage.gc_lock().write().await;
    let repos = storage.list_repositories().await?;
    if opts.delete_untagged {
        for repo in &repos {
            report.manifests_deleted += delete_untagged(storage, repo, opts.dry_run).await?;
        }
    }
    let mut marked: BTreeSet<Digest> = BTreeSet::new();
    for repo in &repos {
        for (d, _) in storage.list_manifests(repo).await? {
            if let Ok(bytes) = storage.read_blob_bytes(&d).await {
                marked.extend(referenced(&bytes));
            }
            marked.insert(d);
        }
    }
    report.blobs_marked = marked.len();
    let cutoff = SystemTime::now()
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for blob in storage.list_blobs().await? {
        if marked.contains(&blob.digest) || blob.modified > cutoff {
            continue;
        }
        if !opts.dry_run {
            storage.delete_blob(&blob.digest).await?;
            for repo in &repos {
                storage.unlink_blob(repo, &blob.digest).await?;
            }
        }
        report.bytes_freed += blob.size;
        report.blobs_deleted.push(blob.digest);
    }
    Ok(report)
}
