//! `docker import`: a rootfs tarball becomes a one-layer image, with `--change` instructions
//! applied to its config.

use crate::config::ContainerConfig;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Applies Dockerfile-style instructions (`CMD`, `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`,
/// `EXPOSE`, `LABEL`, `VOLUME`, `STOPSIGNAL`) to a container config.
pub fn apply_changes(cfg: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    for change in changes {
        let line = change.trim();
        let (instr, rest) = match line.split_once(char::is_whitespace) {
            Some((i, r)) => (i, r.trim()),
            None => (line, ""),
        };
        let bad = || Error::InvalidChange(change.clone());
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => cfg.cmd = Some(exec_or_shell(rest).ok_or_else(bad)?),
            "ENTRYPOINT" => cfg.entrypoint = Some(exec_or_shell(rest).ok_or_else(bad)?),
            "WORKDIR" => {
                if rest.is_empty() {
                    return Err(bad());
                }
                cfg.working_dir = Some(rest.to_string());
            }
            "USER" => {
                if rest.is_empty() {
                    return Err(bad());
                }
                cfg.user = Some(rest.to_string());
            }
            "STOPSIGNAL" => {
                if rest.is_empty() {
                    return Err(bad());
                }
                cfg.stop_signal = Some(rest.to_string());
            }
            "ENV" => {
                let pairs = key_values(rest).ok_or_else(bad)?;
                let env = cfg.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs {
                    let prefix = format!("{k}=");
                    env.retain(|e| !e.starts_with(&prefix));
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let pairs = key_values(rest).ok_or_else(bad)?;
                let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in pairs {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                let ports = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in words(rest).ok_or_else(bad)? {
                    let (num, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
                    let valid_num = num
                        .split_once('-')
                        .map_or(vec![num], |(a, b)| vec![a, b])
                        .iter()
                        .all(|n| n.parse::<u16>().is_ok());
                    if !valid_num || !matches!(proto, "tcp" | "udp" | "sctp") {
                        return Err(bad());
                    }
                    ports.insert(format!("{num}/{proto}"), serde_json::json!({}));
                }
            }
            "VOLUME" => {
                let vols = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(v) => v,
                    Err(_) => words(rest).ok_or_else(bad)?,
                };
                if vols.is_empty() {
                    return Err(bad());
                }
                let map = cfg.volumes.get_or_insert_with(BTreeMap::new);
                for v in vols {
                    map.insert(v, serde_json::json!({}));
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(())
}

/// `["a","b"]` (exec form) or `a b` (shell form, run by `/bin/sh -c`).
fn exec_or_shell(rest: &str) -> Option<Vec<String>> {
    if rest.starts_with('[') {
        return serde_json::from_str(rest).ok();
    }
    if rest.is_empty() {
        return None;
    }
    Some(vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

/// Whitespace-separated words with "double" and 'single' quotes and backslash escapes.
fn words(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                cur.push(chars.next()?);
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}

/// `K=V K2="v 2"`, or the legacy single-pair form `K some value`.
fn key_values(rest: &str) -> Option<Vec<(String, String)>> {
    let w = words(rest)?;
    if w.is_empty() {
        return None;
    }
    if !w[0].contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), v.trim().to_string())]);
    }
    w.into_iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// RFC 3339 UTC timestamp, as image configs carry them.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_changes() {
        let mut c = ContainerConfig::default();
        let ch: Vec<String> = [
            r#"CMD ["sh","-c","echo hi"]"#,
            "ENTRYPOINT /entry.sh --flag",
            "ENV A=1 B=\"two words\"",
            "ENV A=3",
            "ENV LEGACY some value",
            "WORKDIR /srv",
            "USER nobody:nogroup",
            "EXPOSE 80 53/udp 8000-8001",
            "LABEL a=b \"c d\"=e",
            "VOLUME [\"/data\"]",
            "STOPSIGNAL SIGINT",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut c, &ch).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["sh", "-c", "echo hi"]);
        assert_eq!(
            c.entrypoint.unwrap(),
            vec!["/bin/sh", "-c", "/entry.sh --flag"]
        );
        assert_eq!(
            c.env.unwrap(),
            vec!["B=two words", "A=3", "LEGACY=some value"]
        );
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("nobody:nogroup"));
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp", "8000-8001/tcp"]);
        let labels = c.labels.unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c d"], "e");
        assert!(c.volumes.unwrap().contains_key("/data"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        for bad in [
            "RUN echo",
            "EXPOSE 99999",
            "EXPOSE 80/foo",
            "ENV",
            "CMD [\"unterminated\"",
            "WORKDIR",
        ] {
            assert!(
                apply_changes(&mut ContainerConfig::default(), &[bad.to_string()]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn formats_rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
