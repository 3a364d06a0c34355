//! HEALTHCHECK: a running container's probe, run as an exec every interval, as dockerd
//! does. It keeps `State.Health` (status, failing streak, the last five results), which
//! `ps` shows after the uptime, and publishes `health_status` events when the status
//! changes.

use super::exec::ExecConfig;
use super::types::ContainerConfig;
use super::{Containers, Entry};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Results kept in `State.Health.Log`, and bytes of output kept per result (Docker's).
const LOG_ENTRIES: usize = 5;
const OUTPUT_LIMIT: usize = 4096;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// `State.Health` of inspect.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthLog>,
}

/// One probe's result.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthLog {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// A container's `Config.Healthcheck`, with Docker's defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Probe {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

impl Probe {
    /// None when there is no check, or `["NONE"]` turns the image's off.
    pub fn of(config: &ContainerConfig) -> Option<Probe> {
        let hc = config.extra.get("Healthcheck")?;
        let test: Vec<String> = hc
            .get("Test")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let argv = match test.split_first()? {
            (kind, rest) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            (kind, [cmd]) if kind == "CMD-SHELL" => {
                vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
            }
            _ => return None,
        };
        let nanos = |key: &str, default: Duration| {
            hc.get(key)
                .and_then(Value::as_i64)
                .filter(|n| *n > 0)
                .map(|n| Duration::from_nanos(n as u64))
                .unwrap_or(default)
        };
        Some(Probe {
            argv,
            interval: nanos("Interval", Duration::from_secs(30)),
            timeout: nanos("Timeout", Duration::from_secs(30)),
            start_period: nanos("StartPeriod", Duration::ZERO),
            start_interval: nanos("StartInterval", Duration::from_secs(5)),
            retries: hc
                .get("Retries")
                .and_then(Value::as_i64)
                .filter(|n| *n > 0)
                .unwrap_or(3),
        })
    }
}

/// Create's merge: the request's check where it has one, the image's otherwise; fields the
/// request leaves at zero come from the image, as in dockerd.
pub(crate) fn merge(config: &mut Map<String, Value>, image: Option<&Value>) {
    let Some(image) = image.and_then(Value::as_object) else {
        return;
    };
    let mine = config
        .entry("Healthcheck")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(mine) = mine.as_object_mut() else {
        return;
    };
    for (k, v) in image {
        let unset = match mine.get(k) {
            None | Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            _ => false,
        };
        if unset {
            mine.insert(k.clone(), v.clone());
        }
    }
}

/// Validation at create, with dockerd's words.
pub(crate) fn validate(config: &ContainerConfig) -> Result<()> {
    let Some(hc) = config.extra.get("Healthcheck") else {
        return Ok(());
    };
    for (key, name) in [
        ("Interval", "Interval"),
        ("Timeout", "Timeout"),
        ("StartPeriod", "StartPeriod"),
    ] {
        let n = hc.get(key).and_then(Value::as_i64).unwrap_or(0);
        if n != 0 && n < 1_000_000 {
            return Err(Error::invalid(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if hc.get("Retries").and_then(Value::as_i64).unwrap_or(0) < 0 {
        return Err(Error::invalid("Retries in Healthcheck cannot be negative"));
    }
    Ok(())
}

impl Containers {
    /// Starts probing a container that has just started (or that a restarted daemon found
    /// running). The watcher ends with that run of the container.
    pub(crate) fn watch_health(self: &Arc<Self>, entry: Arc<Entry>) {
        let rec = entry.snapshot();
        let Some(probe) = Probe::of(&rec.config) else {
            return;
        };
        let run = entry.run.borrow().exits;
        // The run this watcher probes is over: the container stopped, or exited and started again.
        let over = move |r: &super::RunState| !r.running || r.exits != run;
        let _ = self.update_in_memory(&entry, |c| {
            c.state.health = Some(Health {
                status: STARTING.into(),
                ..Default::default()
            })
        });
        let me = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let starting = started.elapsed() < probe.start_period;
                let pause = if starting {
                    probe.start_interval.min(probe.interval)
                } else {
                    probe.interval
                };
                let mut rx = entry.run.subscribe();
                let ended = async {
                    while !over(&rx.borrow()) {
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = ended => return,
                }
                let now = entry.snapshot();
                if now.state.paused {
                    continue;
                }
                let result = me.probe_once(&now.id, &probe).await;
                if over(&entry.run.borrow()) {
                    return;
                }
                let starting = started.elapsed() < probe.start_period;
                let changed = me
                    .update_in_memory(&entry, |c| {
                        record(&mut c.state, result, starting, probe.retries)
                    })
                    .ok()
                    .flatten();
                if let Some(status) = changed {
                    me.publish(&entry.snapshot(), &format!("health_status: {status}"), &[]);
                }
            }
        });
    }

    /// One run of the probe as an exec: its exit code and output, or -1 and Docker's
    /// message when it outlives the timeout.
    async fn probe_once(self: &Arc<Self>, id: &str, probe: &Probe) -> HealthLog {
        let start = crate::time::now_rfc3339();
        let cfg = ExecConfig {
            attach_stdout: true,
            attach_stderr: true,
            cmd: probe.argv.clone(),
            ..Default::default()
        };
        let outcome = async {
            let exec_id = self.exec_create(id, cfg)?;
            let res = self.probe_exec(&exec_id, probe.timeout).await;
            self.forget_exec(&exec_id);
            res
        }
        .await;
        let (exit_code, output) = match outcome {
            Ok(v) => v,
            Err(e) => (-1, e.to_string()),
        };
        HealthLog {
            start,
            end: crate::time::now_rfc3339(),
            exit_code,
            output,
        }
    }

    async fn probe_exec(
        self: &Arc<Self>,
        exec_id: &str,
        timeout: Duration,
    ) -> Result<(i64, String)> {
        let stream = match self.exec_start(exec_id, false).await {
            Ok(s) => s,
            // A probe that cannot start failed, with the runtime's words as its output.
            Err(e) => return Ok((self.exec_exit_code(exec_id).unwrap_or(126), e.to_string())),
        };
        let Some(stream) = stream else {
            return Err(Error::Internal(
                "the probe's output was not attached".into(),
            ));
        };
        let read = tokio::task::spawn_blocking(move || read_output(stream, timeout))
            .await
            .map_err(|e| Error::internal("reading the health check's output", e))?;
        let Some(output) = read else {
            self.exec_kill(exec_id);
            return Ok((
                -1,
                format!("Health check exceeded timeout ({}s)", timeout.as_secs_f64()),
            ));
        };
        // The exit is recorded a moment after the output ends.
        let code = self.exec_wait_exit(exec_id, Duration::from_secs(5)).await;
        Ok((code.unwrap_or(-1), output))
    }
}

/// The probe's stdout and stderr, the first 4 KiB of them, until it ends; None when it
/// outlives `timeout`.
fn read_output(mut stream: std::os::unix::net::UnixStream, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match berth_monitor::protocol::read_frame(&mut stream) {
            Ok(Some((_, payload))) => {
                let room = OUTPUT_LIMIT.saturating_sub(out.len());
                out.extend_from_slice(&payload[..payload.len().min(room)]);
            }
            Ok(None) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(String::from_utf8_lossy(&out).into_owned()),
        }
    }
}

/// Adds one result; returns the new status when it changed.
fn record(
    state: &mut super::types::ContainerState,
    result: HealthLog,
    starting: bool,
    retries: i64,
) -> Option<&'static str> {
    let h = state.health.get_or_insert_with(|| Health {
        status: STARTING.into(),
        ..Default::default()
    });
    let passed = result.exit_code == 0;
    h.log.push(result);
    if h.log.len() > LOG_ENTRIES {
        h.log.remove(0);
    }
    let next = if passed {
        h.failing_streak = 0;
        HEALTHY
    } else if starting {
        // Failures in the start period do not count.
        return None;
    } else {
        h.failing_streak += 1;
        if h.failing_streak < retries {
            return None;
        }
        UNHEALTHY
    };
    if h.status == next {
        return None;
    }
    h.status = next.into();
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(hc: Value) -> ContainerConfig {
        let mut c = ContainerConfig::default();
        c.extra.insert("Healthcheck".into(), hc);
        c
    }

    #[test]
    fn probe_reads_dockers_forms_and_defaults() {
        let p = Probe::of(&config(json!({"Test": ["CMD-SHELL", "test -f /ok"]}))).unwrap();
        assert_eq!(p.argv, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(p.interval, Duration::from_secs(30));
        assert_eq!(p.retries, 3);
        let p = Probe::of(&config(
            json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000i64, "Retries": 2}),
        ))
        .unwrap();
        assert_eq!(p.argv, ["true"]);
        assert_eq!(p.interval, Duration::from_secs(1));
        assert_eq!(p.retries, 2);
        assert!(Probe::of(&config(json!({"Test": ["NONE"]}))).is_none());
        assert!(Probe::of(&config(json!({"Test": []}))).is_none());
        assert!(Probe::of(&ContainerConfig::default()).is_none());
    }

    #[test]
    fn request_fields_win_and_zeros_come_from_the_image() {
        let mut mine = Map::new();
        mine.insert("Healthcheck".into(), json!({"Interval": 5, "Test": []}));
        merge(
            &mut mine,
            Some(&json!({"Test": ["CMD", "x"], "Interval": 9, "Retries": 4})),
        );
        assert_eq!(
            mine["Healthcheck"],
            json!({"Test": ["CMD", "x"], "Interval": 5, "Retries": 4})
        );
        let mut none = Map::new();
        none.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
        merge(&mut none, Some(&json!({"Test": ["CMD", "x"]})));
        assert_eq!(none["Healthcheck"]["Test"], json!(["NONE"]));
    }

    #[test]
    fn streaks_turn_unhealthy_after_retries_and_back() {
        let mut c = super::super::types::ContainerState::default();
        let fail = || HealthLog {
            exit_code: 1,
            ..Default::default()
        };
        let pass = || HealthLog::default();
        assert_eq!(record(&mut c, fail(), true, 2), None, "start period");
        assert_eq!(record(&mut c, fail(), false, 2), None);
        assert_eq!(record(&mut c, fail(), false, 2), Some(UNHEALTHY));
        assert_eq!(record(&mut c, pass(), false, 2), Some(HEALTHY));
        for _ in 0..7 {
            record(&mut c, pass(), false, 2);
        }
        let h = c.health.unwrap();
        assert_eq!((h.failing_streak, h.log.len()), (0, LOG_ENTRIES));
    }
}
