//! Log lines in runc's shapes, which containerd parses from `--log`:
//! `{"level":"error","msg":"...","time":"..."}` with `--log-format json`,
//! `time="..." level=error msg="..."` otherwise.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

pub struct RuncLog {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

impl<S: Subscriber> Layer<S> for RuncLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let time = berth_runtime::util::now_rfc3339();
        let line = if self.json {
            let mut s = serde_json::json!({"level": level, "msg": m.0, "time": time}).to_string();
            s.push('\n');
            s
        } else {
            format!("time={time:?} level={level} msg={:?}\n", m.0)
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(line.as_bytes());
        }
    }
}

/// Returns whether log lines go to stderr (so errors are not printed twice).
pub fn init(log: Option<&Path>, json: bool, debug: bool) -> anyhow::Result<bool> {
    let (out, to_stderr): (Box<dyn Write + Send>, bool) = match log {
        Some(p) => {
            let f = File::options()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("open log file {}: {e}", p.display()))?;
            (Box::new(f), false)
        }
        None => (Box::new(std::io::stderr()), true),
    };
    let level = if debug { Level::DEBUG } else { Level::WARN };
    let layer = RuncLog {
        out: Mutex::new(out),
        json,
    }
    .with_filter(tracing_subscriber::filter::LevelFilter::from_level(level));
    tracing_subscriber::registry().with(layer).init();
    Ok(to_stderr)
}
