//! `volume` verbs.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::container::{confirm, print_pruned};
use super::{filters_json, for_each, out, system, Ctx};
use crate::client::Query;
use crate::format;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(system::TypedInspectArgs),
    /// Remove one or more volumes
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Volume name (generated when omitted)
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

fn kv(items: &[String]) -> Map<String, Value> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), json!(v)),
            None => (s.clone(), json!("")),
        })
        .collect()
}

/// One `volume ls` row, docker's volume formatter fields.
pub fn volume_row(vol: &Value) -> Value {
    let mut labels: Vec<String> = vol["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let size = vol["UsageData"]["Size"].as_f64().filter(|s| *s >= 0.0);
    json!({
        "Availability": "N/A",
        "Driver": vol["Driver"].as_str().unwrap_or(""),
        "Group": "N/A",
        "Labels": labels.join(","),
        "Links": vol["UsageData"]["RefCount"].as_i64().map(|n| n.to_string()).unwrap_or_else(|| "N/A".into()),
        "Mountpoint": vol["Mountpoint"].as_str().unwrap_or(""),
        "Name": vol["Name"].as_str().unwrap_or(""),
        "Scope": vol["Scope"].as_str().unwrap_or(""),
        "Size": size.map(crate::format::units::human_size).unwrap_or_else(|| "N/A".into()),
        "Status": "N/A",
        "__Label": vol["Labels"].as_object().cloned().unwrap_or_default(),
    })
}

pub fn volume_header() -> Value {
    json!({"__Label": crate::format::template::HEADER_METHOD, "Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE", "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Availability": "AVAILABILITY", "Group": "GROUP", "Status": "STATUS"})
}

pub async fn dispatch(ctx: &Ctx, c: VolumeCmd) -> anyhow::Result<()> {
    let client = &ctx.client;
    match c {
        VolumeCmd::Create(a) => {
            let body = json!({"Name": a.name.unwrap_or_default(), "Driver": a.driver, "DriverOpts": kv(&a.opt), "Labels": kv(&a.label)});
            let v: Value = client
                .post_json("/volumes/create", &Query::new(), Some(&body))
                .await?;
            out(&format!("{}\n", v["Name"].as_str().unwrap_or("")));
            Ok(())
        }
        VolumeCmd::Ls(a) => {
            let q = Query::new().opt("filters", filters_json(&a.filter)?);
            let v: Value = client.get_json("/volumes", &q).await?;
            let mut list = v["Volumes"].as_array().cloned().unwrap_or_default();
            list.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
            let rows: Vec<Value> = list.iter().map(volume_row).collect();
            let header = volume_header();
            let format = if a.quiet {
                Some("{{.Name}}".to_string())
            } else {
                a.format.clone()
            };
            out(&format::render_rows(
                format.as_deref(),
                "table {{.Driver}}\t{{.Name}}",
                &header,
                &rows,
            )?);
            Ok(())
        }
        VolumeCmd::Inspect(a) => system::inspect_typed(ctx, a, "volume").await,
        VolumeCmd::Rm(a) => {
            let q = Query::new().flag("force", a.force);
            let q = &q;
            for_each(&a.volumes, |v| async move {
                client.delete(&format!("/volumes/{v}"), q).await?;
                Ok(Some(v))
            })
            .await
        }
        VolumeCmd::Prune(a) => {
            let warning = if a.all {
                "WARNING! This will remove all local volumes not used by at least one container."
            } else {
                "WARNING! This will remove anonymous local volumes not used by at least one container."
            };
            if !confirm(warning, a.force) {
                return Ok(());
            }
            let mut f = a.filter.clone();
            // Before 1.42 every unused volume was pruned and `all` is unknown.
            client.ensure_negotiated().await?;
            if a.all && !crate::client::version_lt(&client.api_version(), "1.42") {
                f.push("all=true".into());
            }
            let v: Value = client
                .post_json(
                    "/volumes/prune",
                    &Query::new().opt("filters", filters_json(&f)?),
                    None,
                )
                .await?;
            print_pruned(&v, "VolumesDeleted", "Deleted Volumes:");
            Ok(())
        }
    }
}
