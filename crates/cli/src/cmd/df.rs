//! `system df`: disk usage of images, containers, volumes and build cache,
//! as docker's summary table or its verbose per-object tables (`-v`).

use clap::Args;
use serde_json::{json, Value};

use super::container::{ps_header, ps_row};
use super::image::{image_row, images_header};
use super::volume::{volume_header, volume_row};
use super::{out, Ctx};
use crate::client::Query;
use crate::format::{self, short_id, units, Template, TemplateError};

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

pub async fn df(ctx: &Ctx, a: DfArgs) -> anyhow::Result<()> {
    let v: Value = ctx.client.get_json("/system/df", &Query::new()).await?;
    let text = if a.verbose {
        verbose(&v, a.format.as_deref())?
    } else {
        let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
        format::render_rows(
            a.format.as_deref(),
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
            &header,
            &summary(&v),
        )?
    };
    out(&text);
    Ok(())
}

fn pct(reclaimable: f64, total: f64) -> String {
    if total > 0.0 {
        format!(
            "{} ({}%)",
            units::human_size(reclaimable),
            ((reclaimable * 100.0) / total) as i64
        )
    } else {
        units::human_size(reclaimable)
    }
}

/// The four summary rows (TYPE TOTAL ACTIVE SIZE RECLAIMABLE).
fn summary(v: &Value) -> Vec<Value> {
    let arr = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let images = arr("Images");
    let containers = arr("Containers");
    let volumes = arr("Volumes");
    let cache = arr("BuildCache");
    let img_total = v["LayersSize"]
        .as_f64()
        .unwrap_or_else(|| images.iter().filter_map(|i| i["Size"].as_f64()).sum());
    let img_active = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .count();
    // docker counts an image in use by its unique size, and cannot when a
    // size is unknown (-1): such an image counts as reclaimable.
    let img_used: f64 = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) != 0)
        .filter_map(|i| {
            let size = i["Size"].as_f64().unwrap_or(-1.0);
            let shared = i["SharedSize"].as_f64().unwrap_or(-1.0);
            (size >= 0.0 && shared >= 0.0).then_some(size - shared)
        })
        .sum();
    let c_size: f64 = containers.iter().filter_map(|c| c["SizeRw"].as_f64()).sum();
    // A paused or restarting container still holds its layer.
    let active = |c: &&Value| {
        let st = c["State"].as_str().unwrap_or("");
        ["running", "paused", "restarting"]
            .iter()
            .any(|s| st.contains(s))
    };
    let c_active = containers.iter().filter(active).count();
    let c_recl: f64 = containers
        .iter()
        .filter(|c| !active(c))
        .filter_map(|c| c["SizeRw"].as_f64())
        .sum();
    let v_size: f64 = volumes
        .iter()
        .filter_map(|x| x["UsageData"]["Size"].as_f64())
        .filter(|s| *s > 0.0)
        .sum();
    let v_active = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .count();
    let v_recl: f64 = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .filter_map(|x| x["UsageData"]["Size"].as_f64())
        .filter(|s| *s > 0.0)
        .sum();
    let b_size: f64 = cache.iter().filter_map(|x| x["Size"].as_f64()).sum();
    let b_active = cache
        .iter()
        .filter(|x| x["InUse"].as_bool().unwrap_or(false))
        .count();
    let b_recl: f64 = cache
        .iter()
        .filter(|x| !x["InUse"].as_bool().unwrap_or(false))
        .filter_map(|x| x["Size"].as_f64())
        .sum();
    let row = |t: &str, total: usize, active: usize, size: f64, recl: String| json!({"Type": t, "TotalCount": total.to_string(), "Active": active.to_string(), "Size": units::human_size(size), "Reclaimable": recl});
    vec![
        row(
            "Images",
            images.len(),
            img_active,
            img_total,
            pct(img_total - img_used, img_total),
        ),
        row(
            "Containers",
            containers.len(),
            c_active,
            c_size,
            pct(c_recl, c_size),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            v_active,
            v_size,
            pct(v_recl, v_size),
        ),
        row(
            "Build Cache",
            cache.len(),
            b_active,
            b_size,
            units::human_size(b_recl),
        ),
    ]
}

const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
const CONTAINERS_TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";
const VOLUMES_TABLE: &str = "table {{.Name}}\t{{.Links}}\t{{.Size}}";
const CACHE_TABLE: &str = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}";

fn cache_header() -> Value {
    json!({"CacheType": "CACHE TYPE", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED", "Description": "DESCRIPTION",
        "ID": "CACHE ID", "InUse": "IN USE", "LastUsedAt": "LAST USED AT", "LastUsedSince": "LAST USED", "Parent": "PARENT",
        "Shared": "SHARED", "Size": "SIZE", "UsageCount": "USAGE"})
}

/// The objects of one `/system/df` list.
fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// docker names an image by its first tag only, `<none>` for dangling ones.
fn first_tag(img: &Value) -> (String, String) {
    let none = || ("<none>".to_string(), "<none>".to_string());
    let Some(first) = img["RepoTags"]
        .as_array()
        .and_then(|t| t.first())
        .and_then(Value::as_str)
    else {
        return none();
    };
    if first == "<none>:<none>" {
        return none();
    }
    let slash = first.rfind('/').map(|i| i + 1).unwrap_or(0);
    match first[slash..].rfind(':') {
        Some(i) => (
            first[..slash + i].to_string(),
            first[slash + i + 1..].to_string(),
        ),
        None => none(),
    }
}

fn df_image_row(img: &Value, trunc: bool) -> Value {
    let (repo, tag) = first_tag(img);
    image_row(img, trunc, &repo, &tag, "")
}

/// A container row without the virtual size, which docker leaves out here;
/// the hidden method tables are dropped since `{{json .}}` of the whole
/// report would otherwise show them.
fn df_container_row(c: &Value, trunc: bool) -> Value {
    let mut c = c.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("SizeRootFs");
    }
    visible_only(ps_row(&c, trunc))
}

fn visible_only(mut row: Value) -> Value {
    if let Some(m) = row.as_object_mut() {
        m.retain(|k, _| !k.starts_with("__"));
    }
    row
}

/// Seconds since the epoch of an RFC 3339 time the API gives as a string.
fn unix_of(v: &Value) -> Option<i64> {
    v.as_str().and_then(units::parse_rfc3339)
}

fn cache_row(b: &Value, trunc: bool) -> Value {
    let id = b["ID"].as_str().unwrap_or("");
    let mut id = if trunc { short_id(id) } else { id.to_string() };
    let in_use = b["InUse"].as_bool().unwrap_or(false);
    if in_use {
        id.push('*');
    }
    let created = unix_of(&b["CreatedAt"]);
    let last = unix_of(&b["LastUsedAt"]);
    let parent = b["Parents"]
        .as_array()
        .and_then(|p| p.first())
        .or(b.get("Parent"))
        .and_then(Value::as_str)
        .unwrap_or("");
    json!({
        "CacheType": b["Type"].as_str().unwrap_or(""),
        "CreatedAt": created.map(units::go_time_string).unwrap_or_default(),
        "CreatedSince": created.map(units::ago).unwrap_or_default(),
        "Description": b["Description"].as_str().unwrap_or(""),
        "ID": id,
        "InUse": in_use.to_string(),
        "LastUsedAt": last.map(units::go_time_string).unwrap_or_default(),
        "LastUsedSince": last.map(units::ago).unwrap_or_default(),
        "Parent": if trunc { short_id(parent) } else { parent.to_string() },
        "Shared": b["Shared"].as_bool().unwrap_or(false).to_string(),
        "Size": units::human_size_prec(b["Size"].as_f64().unwrap_or(0.0), 3),
        "UsageCount": b["UsageCount"].as_i64().unwrap_or(0).to_string(),
    })
}

/// `system df -v`: docker's four titled tables; any other format is a
/// template over `{Images, Containers, Volumes, BuildCache}` (`json` prints
/// that object), objects untruncated, as docker does.
fn verbose(v: &Value, format: Option<&str>) -> Result<String, TemplateError> {
    let images = list(v, "Images");
    let containers = list(v, "Containers");
    let volumes = list(v, "Volumes");
    let cache = list(v, "BuildCache");
    match format.map(str::trim) {
        None | Some("") | Some("table") => {}
        Some(f) => {
            let all = json!({
                "Images": images.iter().map(|i| df_image_row(i, false)).collect::<Vec<_>>(),
                "Containers": containers.iter().map(|c| df_container_row(c, false)).collect::<Vec<_>>(),
                "Volumes": volumes.iter().map(|x| visible_only(volume_row(x))).collect::<Vec<_>>(),
                "BuildCache": cache.iter().map(|b| cache_row(b, false)).collect::<Vec<_>>(),
            });
            let f = if f == "json" { "{{json .}}" } else { f };
            // docker executes the template once and adds no newline.
            return Template::parse(&format::unescape(f))?.render(&all);
        }
    }
    let table =
        |t: &str, header: &Value, rows: Vec<Value>| format::render_rows(None, t, header, &rows);
    // Shared cache records are counted once, under the record that owns them.
    let builder_size: f64 = cache
        .iter()
        .filter(|b| !b["Shared"].as_bool().unwrap_or(false))
        .filter_map(|b| b["Size"].as_f64())
        .sum();
    let mut s = String::from("Images space usage:\n\n");
    s += &table(
        IMAGES_TABLE,
        &images_header(),
        images.iter().map(|i| df_image_row(i, true)).collect(),
    )?;
    s += "\nContainers space usage:\n\n";
    s += &table(
        CONTAINERS_TABLE,
        &ps_header(),
        containers
            .iter()
            .map(|c| df_container_row(c, true))
            .collect(),
    )?;
    s += "\nLocal Volumes space usage:\n\n";
    s += &table(
        VOLUMES_TABLE,
        &volume_header(),
        volumes.iter().map(volume_row).collect(),
    )?;
    s += &format!(
        "\nBuild cache usage: {}\n\n",
        units::human_size(builder_size)
    );
    s += &table(
        CACHE_TABLE,
        &cache_header(),
        cache.iter().map(|b| cache_row(b, true)).collect(),
    )?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        let id = format!("sha256:{}", "ab".repeat(32));
        let cid = "cd".repeat(32);
        json!({
            "LayersSize": 2_000_000,
            "Images": [
                {"Id": id, "RepoTags": ["busybox:latest", "busybox:v1"], "RepoDigests": [], "Created": 0,
                 "Size": 1_986_000, "SharedSize": 0, "Containers": 1},
                {"Id": id, "RepoTags": [], "RepoDigests": [], "Created": 0, "Size": 14, "SharedSize": -1, "Containers": -1},
            ],
            "Containers": [
                {"Id": cid, "Names": ["/box"], "Image": "busybox", "ImageID": id, "Command": "sh -c 'echo hi > /f; sleep 1000'",
                 "Created": 0, "SizeRw": 12345, "SizeRootFs": 2_000_000, "State": "running", "Status": "Up 2 minutes",
                 "Mounts": [{"Type": "volume", "Name": "v1", "Driver": "local"}], "Labels": {}},
            ],
            "Volumes": [{"Name": "v1", "Driver": "local", "Scope": "local", "Labels": null, "Mountpoint": "/x",
                         "UsageData": {"Size": 4096, "RefCount": 1}}],
            "BuildCache": [],
        })
    }

    #[test]
    fn verbose_tables_as_docker_lays_them_out() {
        let text = verbose(&sample(), None).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Images space usage:");
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS"
        );
        assert_eq!(
            lines[3],
            "busybox      latest    abababababab   56 years ago   1.99MB    0B            1.986MB       1"
        );
        assert_eq!(
            lines[4],
            "<none>       <none>    abababababab   56 years ago   14B       N/A           N/A           N/A"
        );
        assert_eq!(lines[6], "Containers space usage:");
        assert_eq!(
            lines[8],
            "CONTAINER ID   IMAGE     COMMAND                  LOCAL VOLUMES   SIZE      CREATED        STATUS         NAMES"
        );
        assert_eq!(
            lines[9],
            "cdcdcdcdcdcd   busybox   \"sh -c 'echo hi > /f…\"   1               12.3kB    56 years ago   Up 2 minutes   box"
        );
        assert_eq!(lines[11], "Local Volumes space usage:");
        assert_eq!(lines[13], "VOLUME NAME   LINKS     SIZE");
        assert_eq!(lines[14], "v1            1         4.096kB");
        assert_eq!(lines[16], "Build cache usage: 0B");
        assert_eq!(
            lines[18],
            "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED"
        );
        assert_eq!(lines.len(), 19);
        assert!(text.ends_with("SHARED\n"));
    }

    #[test]
    fn verbose_json_is_one_object_of_four_lists() {
        let text = verbose(&sample(), Some("json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Images", "Containers", "Volumes", "BuildCache"]);
        assert_eq!(v["Images"][0]["ID"].as_str().unwrap().len(), 71);
        assert_eq!(v["Images"][0]["Digest"], "");
        assert_eq!(v["Containers"][0]["Size"], "12.3kB");
        assert!(v["Containers"][0].get("__Label").is_none());
        assert_eq!(v["Volumes"][0]["Links"], "1");
        let names = verbose(&sample(), Some("{{range .Volumes}}{{.Name}}{{end}}")).unwrap();
        assert_eq!(names, "v1");
    }

    #[test]
    fn summary_counts() {
        let rows = summary(&sample());
        assert_eq!(rows[0]["TotalCount"], "2");
        assert_eq!(rows[1]["Active"], "1");
        assert_eq!(rows[2]["Size"], "4.096kB");
        assert_eq!(rows[3]["Size"], "0B");
    }
}
