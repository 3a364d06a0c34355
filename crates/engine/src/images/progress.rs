//! Docker's JSON progress messages (`jsonmessage.JSONMessage`), as pull, push, load and import
//! stream them one per line, with the progress bar text dockerd renders server-side.

use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct JsonMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

/// Where progress goes: the API layer streams it, tests collect it.
pub type Sink<'a> = &'a (dyn Fn(JsonMessage) + Send + Sync);

impl JsonMessage {
    /// `{"status": "..."}`
    pub fn status(s: impl Into<String>) -> JsonMessage {
        JsonMessage {
            status: Some(s.into()),
            ..Default::default()
        }
    }

    /// `{"status": "...", "id": "..."}` without progress details.
    pub fn status_id(s: impl Into<String>, id: impl Into<String>) -> JsonMessage {
        JsonMessage {
            status: Some(s.into()),
            id: Some(id.into()),
            ..Default::default()
        }
    }

    /// A per-layer line: `progressDetail` is `{}` as dockerd sends it.
    pub fn layer(s: impl Into<String>, id: impl Into<String>) -> JsonMessage {
        JsonMessage {
            progress_detail: Some(ProgressDetail::default()),
            ..Self::status_id(s, id)
        }
    }

    /// A per-layer line with a byte count and the rendered bar.
    pub fn layer_progress(
        s: impl Into<String>,
        id: impl Into<String>,
        current: u64,
        total: u64,
    ) -> JsonMessage {
        JsonMessage {
            progress_detail: Some(ProgressDetail {
                current: Some(current),
                total: (total > 0).then_some(total),
            }),
            progress: Some(progress_bar(current, total)),
            ..Self::status_id(s, id)
        }
    }

    pub fn stream(s: impl Into<String>) -> JsonMessage {
        JsonMessage {
            stream: Some(s.into()),
            ..Default::default()
        }
    }

    /// An error after the response has started: both the old and the new field.
    pub fn error(msg: impl Into<String>) -> JsonMessage {
        let msg = msg.into();
        JsonMessage {
            error_detail: Some(ErrorDetail {
                message: msg.clone(),
            }),
            error: Some(msg),
            ..Default::default()
        }
    }

    pub fn aux(v: serde_json::Value) -> JsonMessage {
        JsonMessage {
            progress_detail: Some(ProgressDetail::default()),
            aux: Some(v),
            ..Default::default()
        }
    }

    /// One line of the response body.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\r');
        v.push(b'\n');
        v
    }
}

/// Decimal sizes with four significant digits, as Docker's `units.HumanSize` prints them.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = n as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", g4(size), UNITS[i])
}

/// Go's `%.4g` for values below 1000.
fn g4(v: f64) -> String {
    let digits_before = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as i32 + 1).max(1)
    };
    let decimals = (4 - digits_before).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The bar dockerd puts in `progress` (its terminal width is unknown, so the wide form):
/// `[=====>          ]  1.2MB/2.4MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as u64 / 2).min(50) as usize;
    let bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    let numbers = if current > total {
        format!("{:>8}", human_size(current))
    } else {
        format!("{:>8}/{}", human_size(current), human_size(total))
    };
    format!("{bar}{numbers}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_as_docker() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(2_155_000), "2.155MB");
        assert_eq!(human_size(1_024), "1.024kB");
        assert_eq!(human_size(32_700_000), "32.7MB");
        assert_eq!(
            progress_bar(50, 100),
            format!("[{}>{}]      50B/100B", "=".repeat(25), " ".repeat(25))
        );
        let m = JsonMessage::layer("Pull complete", "abc");
        assert_eq!(
            String::from_utf8(m.to_line()).unwrap(),
            "{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"abc\"}\r\n"
        );
    }
}
