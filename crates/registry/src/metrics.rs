//! Counters exported at `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    uploads_in_progress: AtomicI64,
    blobs_committed: AtomicU64,
    manifests_pushed: AtomicU64,
    gc_runs: AtomicU64,
    gc_blobs_deleted: AtomicU64,
    gc_bytes_freed: AtomicU64,
}

impl Metrics {
    pub fn observe_request(&self, method: &str, status: u16, elapsed: Duration) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry((method.to_string(), status)).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += elapsed.as_secs_f64();
    }

    pub fn add_bytes_received(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_bytes_sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn upload_started(&self) {
        self.uploads_in_progress.fetch_add(1, Ordering::Relaxed);
    }

    pub fn upload_finished(&self) {
        self.uploads_in_progress.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn blob_committed(&self) {
        self.blobs_committed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn manifest_pushed(&self) {
        self.manifests_pushed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn gc_done(&self, blobs: u64, bytes: u64) {
        self.gc_runs.fetch_add(1, Ordering::Relaxed);
        self.gc_blobs_deleted.fetch_add(blobs, Ordering::Relaxed);
        self.gc_bytes_freed.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP registry_http_requests_total HTTP requests by method and status.\n");
        out.push_str("# TYPE registry_http_requests_total counter\n");
        let reqs = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((method, status), (count, _)) in &reqs {
            let _ = writeln!(
                out,
                "registry_http_requests_total{{method=\"{method}\",code=\"{status}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP registry_http_request_duration_seconds_sum Time spent serving requests.\n",
        );
        out.push_str("# TYPE registry_http_request_duration_seconds_sum counter\n");
        for ((method, status), (_, secs)) in &reqs {
            let _ = writeln!(
                out,
                "registry_http_request_duration_seconds_sum{{method=\"{method}\",code=\"{status}\"}} {secs}"
            );
        }
        let simple: [(&str, &str, &str, i128); 8] = [
            (
                "registry_blob_bytes_received_total",
                "counter",
                "Upload body bytes received.",
                self.bytes_received.load(Ordering::Relaxed).into(),
            ),
            (
                "registry_blob_bytes_sent_total",
                "counter",
                "Blob bytes served.",
                self.bytes_sent.load(Ordering::Relaxed).into(),
            ),
            (
                "registry_uploads_in_progress",
                "gauge",
                "Upload requests streaming now.",
                self.uploads_in_progress.load(Ordering::Relaxed).into(),
            ),
            (
                "registry_blobs_committed_total",
                "counter",
                "Blobs verified and stored.",
                self.blobs_committed.load(Ordering::Relaxed).into(),
            ),
            (
                "registry_manifests_pushed_total",
                "counter",
                "Manifests stored.",
                self.manifests_pushed.load(Ordering::Relaxed).into(),
            ),
            (
                "registry_gc_runs_total",
                "counter",
                "Garbage collections run.",
                self.gc_runs.load(Ordering::Relaxed).into(),
            ),
            (
                "registry_gc_blobs_deleted_total",
                "counter",
                "Blobs removed by garbage collection.",
                self.gc_blobs_deleted.load(Ordering::Relaxed).into(),
            ),
            (
                "registry_gc_bytes_freed_total",
                "counter",
                "Bytes freed by garbage collection.",
                self.gc_bytes_freed.load(Ordering::Relaxed).into(),
            ),
        ];
        for (name, kind, help, value) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}
