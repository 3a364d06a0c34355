//! Shows the daemon's JSON progress stream (pull, push, load, import): one
//! progress bar per layer on a terminal, plain status lines otherwise.

use std::collections::HashMap;
use std::io::Write;

use http::Response;
use hyper::body::Incoming;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::client::stream::{next_chunk, JsonLines};
use crate::client::{ClientError, Result};

pub enum Target {
    Stdout,
    Stderr,
}

/// Consumes the stream; a message carrying `error` ends it with that error.
pub async fn show(resp: Response<Incoming>, target: Target, quiet: bool) -> Result<Vec<Value>> {
    let tty = match target {
        Target::Stdout => std::io::IsTerminal::is_terminal(&std::io::stdout()),
        Target::Stderr => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let mut display = Display::new(tty && !quiet, target, quiet);
    let mut body = resp.into_body();
    let mut lines = JsonLines::new();
    let mut all = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await? {
        for msg in lines.push(&chunk)? {
            if let Some(e) = msg.get("error").and_then(Value::as_str) {
                display.finish();
                return Err(ClientError::Stream(e.to_string()));
            }
            display.message(&msg);
            all.push(msg);
        }
    }
    display.finish();
    Ok(all)
}

struct Display {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    target: Target,
    quiet: bool,
}

impl Display {
    fn new(tty: bool, target: Target, quiet: bool) -> Self {
        let multi = tty.then(|| {
            let t = match target {
                Target::Stdout => ProgressDrawTarget::stdout(),
                Target::Stderr => ProgressDrawTarget::stderr(),
            };
            MultiProgress::with_draw_target(t)
        });
        Display {
            multi,
            bars: HashMap::new(),
            target,
            quiet,
        }
    }

    fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        if let Some(m) = &self.multi {
            let _ = m.println(s);
            return;
        }
        match self.target {
            Target::Stdout => {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{s}");
                let _ = o.flush();
            }
            Target::Stderr => eprintln!("{s}"),
        }
    }

    fn message(&mut self, m: &Value) {
        let status = m.get("status").and_then(Value::as_str).unwrap_or("");
        let stream = m.get("stream").and_then(Value::as_str);
        let id = m.get("id").and_then(Value::as_str);
        if let Some(s) = stream {
            // `load` and builds send plain text in "stream"
            self.line(s.trim_end_matches('\n'));
            return;
        }
        let detail = m.get("progressDetail");
        let current = detail
            .and_then(|d| d.get("current"))
            .and_then(Value::as_u64);
        let total = detail.and_then(|d| d.get("total")).and_then(Value::as_u64);
        let Some(id) = id else {
            if !status.is_empty() {
                self.line(status);
            }
            return;
        };
        match &self.multi {
            Some(multi) => {
                let plain = || {
                    ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                };
                let bar = self.bars.entry(id.to_string()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(0));
                    b.set_style(plain());
                    b.set_prefix(id.to_string());
                    b
                });
                bar.set_message(status.to_string());
                match (current, total) {
                    (Some(c), Some(t)) if t > 0 => {
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{prefix}: {msg} [{bar:50}] {bytes}/{total_bytes}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        bar.set_length(t);
                        bar.set_position(c);
                    }
                    _ => {
                        bar.set_style(plain());
                        bar.tick();
                    }
                }
            }
            None => {
                // Without a terminal, progress ticks would flood the output.
                if current.is_none() {
                    self.line(&format!("{id}: {status}"));
                }
            }
        }
    }

    fn finish(&mut self) {
        for (_, b) in self.bars.drain() {
            b.finish();
        }
    }
}
