//! Output formatting as docker does it: `--format` templates, `table`
//! layouts through a tabwriter, human units.

pub mod tabwriter;
pub mod template;
pub mod units;

use serde_json::Value;

pub use template::{Template, TemplateError};

/// docker's escapes in format strings: a literal `\t` or `\n` means the character.
pub fn unescape(f: &str) -> String {
    f.replace("\\t", "\t").replace("\\n", "\n")
}

/// Renders `rows` with a user `--format` (or `default_table`), as docker's
/// formatter does: `table ...` adds a header row rendered from `header` and
/// aligns columns; `json` is `{{json .}}`; anything else is one line per row.
pub fn render_rows(
    format: Option<&str>,
    default_table: &str,
    header: &Value,
    rows: &[Value],
) -> Result<String, TemplateError> {
    let f = match format.map(str::trim) {
        None | Some("") | Some("table") => default_table.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    if let Some(rest) = f.strip_prefix("table") {
        let t = Template::parse(&unescape(rest.trim_start()))?;
        let mut text = t.render(header)?;
        text.push('\n');
        for r in rows {
            text.push_str(&t.render(r)?);
            text.push('\n');
        }
        return Ok(tabwriter::TabWriter::docker_table().format(&text));
    }
    let t = Template::parse(&unescape(&f))?;
    let mut out = String::new();
    for r in rows {
        out.push_str(&t.render(r)?);
        out.push('\n');
    }
    Ok(out)
}

/// `inspect --format`: one rendering per object; no format prints the JSON
/// array indented as docker does.
pub fn render_inspect(format: Option<&str>, objs: &[Value]) -> Result<String, TemplateError> {
    match format.map(str::trim) {
        None | Some("") => Ok(indent_json(&Value::Array(objs.to_vec())) + "\n"),
        Some("json") => {
            let mut out = String::new();
            for o in objs {
                out.push_str(&template::go_json(o));
                out.push('\n');
            }
            Ok(out)
        }
        Some(f) => {
            let t = Template::parse(&unescape(f))?;
            let mut out = String::new();
            for o in objs {
                out.push_str(&t.render(o)?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// JSON indented with four spaces, HTML characters escaped (Go's
/// `json.MarshalIndent` with docker's settings).
pub fn indent_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return String::new();
    }
    let s = String::from_utf8_lossy(&buf).into_owned();
    let s = s
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    // Go writes empty containers as `{}` and `[]`, serde_json too; nothing else to fix.
    s
}

/// docker's `Ellipsis`: cuts to `max` display columns, the last being `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A 64-hex ID shortened to 12, with any `sha256:` prefix dropped.
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_with_header_and_rows() {
        let header = json!({"ID": "CONTAINER ID", "Names": "NAMES"});
        let rows = vec![json!({"ID": "abc", "Names": "x"})];
        let out = render_rows(None, "table {{.ID}}\t{{.Names}}", &header, &rows).unwrap();
        assert_eq!(out, "CONTAINER ID   NAMES\nabc            x\n");
        let out = render_rows(Some("{{.ID}}"), "", &header, &rows).unwrap();
        assert_eq!(out, "abc\n");
        let out = render_rows(Some("table {{.ID}}\\t{{.Names}}"), "", &header, &rows).unwrap();
        assert_eq!(out, "CONTAINER ID   NAMES\nabc            x\n");
        assert_eq!(
            render_rows(Some("json"), "", &header, &rows).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"x\"}\n"
        );
    }

    #[test]
    fn ellipsis_counts_the_mark() {
        assert_eq!(
            ellipsis("sh -c 'sleep 1000; echo done'", 20),
            "sh -c 'sleep 1000; …"
        );
        assert_eq!(ellipsis("short", 20), "short");
    }
}
