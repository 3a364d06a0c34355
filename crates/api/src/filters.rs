//! The `filters` query parameter: JSON `{"key":["value",...]}`, or the older
//! `{"key":{"value":true}}` form some clients still send.

use crate::error::{ApiError, ApiResult};
use std::collections::HashMap;

pub type Filters = HashMap<String, Vec<String>>;

pub fn parse_filters(raw: &str) -> ApiResult<Filters> {
    if raw.trim().is_empty() {
        return Ok(Filters::new());
    }
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter {raw:?}: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        ApiError::bad_request(format!("invalid filter {raw:?}: not a JSON object"))
    })?;
    let mut out = Filters::new();
    for (k, vals) in obj {
        let list = match vals {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(false))
                .map(|(v, _)| v.clone())
                .collect(),
            _ => return Err(ApiError::bad_request(format!("invalid filter {k:?}"))),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

/// `label=key` or `label=key=value` against a label map.
pub fn label_matches(labels: &std::collections::BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}
