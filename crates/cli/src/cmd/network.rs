//! `network` verbs.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::container::confirm;
use super::{filters_json, for_each, out, system, Ctx};
use crate::client::Query;
use crate::format::{self, short_id, units};

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_aliases = ["list"])]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(system::TypedInspectArgs),
    /// Remove one or more networks
    #[command(visible_aliases = ["remove"])]
    Rm(RmArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Enable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address
    #[arg(long)]
    pub ip6: Option<String>,
    pub network: String,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
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

pub async fn dispatch(ctx: &Ctx, c: NetworkCmd) -> anyhow::Result<()> {
    let client = &ctx.client;
    match c {
        NetworkCmd::Create(a) => {
            let mut configs = Vec::new();
            for (i, subnet) in a.subnet.iter().enumerate() {
                let mut c = json!({"Subnet": subnet});
                if let Some(g) = a.gateway.get(i) {
                    c["Gateway"] = json!(g);
                }
                if let Some(r) = a.ip_range.get(i) {
                    c["IPRange"] = json!(r);
                }
                configs.push(c);
            }
            if a.subnet.is_empty() && !a.gateway.is_empty() {
                anyhow::bail!("every ip-range or gateway must have a corresponding subnet");
            }
            let body = json!({
                "Name": a.name, "Driver": a.driver, "Internal": a.internal, "Attachable": a.attachable,
                "EnableIPv6": a.ipv6, "CheckDuplicate": true,
                "IPAM": {"Driver": "default", "Config": configs, "Options": {}},
                "Options": kv(&a.opt), "Labels": kv(&a.label),
            });
            let v: Value = client
                .post_json("/networks/create", &Query::new(), Some(&body))
                .await?;
            if let Some(w) = v["Warning"].as_str().filter(|w| !w.is_empty()) {
                eprintln!("WARNING: {w}");
            }
            out(&format!("{}\n", v["Id"].as_str().unwrap_or("")));
            Ok(())
        }
        NetworkCmd::Ls(a) => {
            let q = Query::new().opt("filters", filters_json(&a.filter)?);
            let mut list: Vec<Value> = client.get_json("/networks", &q).await?;
            list.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
            let rows: Vec<Value> = list
                .iter()
                .map(|n| {
                    let id = n["Id"].as_str().unwrap_or("");
                    let created = n["Created"]
                        .as_str()
                        .and_then(units::parse_rfc3339)
                        .unwrap_or(0);
                    let mut labels: Vec<String> = n["Labels"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect()
                        })
                        .unwrap_or_default();
                    labels.sort();
                    json!({
                        "CreatedAt": units::go_time_string(created),
                        "Driver": n["Driver"].as_str().unwrap_or(""),
                        "ID": if a.no_trunc { id.to_string() } else { short_id(id) },
                        "IPv6": n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
                        "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
                        "Labels": labels.join(","),
                        "Name": n["Name"].as_str().unwrap_or(""),
                        "Scope": n["Scope"].as_str().unwrap_or(""),
                        "__Label": n["Labels"].as_object().cloned().unwrap_or_default(),
                    })
                })
                .collect();
            let header = json!({"__Label": crate::format::template::HEADER_METHOD, "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED"});
            let format = if a.quiet {
                Some("{{.ID}}".to_string())
            } else {
                a.format.clone()
            };
            out(&format::render_rows(
                format.as_deref(),
                "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
                &header,
                &rows,
            )?);
            Ok(())
        }
        NetworkCmd::Inspect(a) => system::inspect_typed(ctx, a, "network").await,
        NetworkCmd::Rm(a) => {
            let force = a.force;
            for_each(&a.networks, |n| async move {
                match client
                    .delete(&format!("/networks/{n}"), &Query::new())
                    .await
                {
                    Ok(_) => Ok(Some(n)),
                    Err(e) if force && e.is_not_found() => Ok(None),
                    Err(e) => Err(e.into()),
                }
            })
            .await
        }
        NetworkCmd::Connect(a) => {
            let mut ipam = Map::new();
            if let Some(ip) = &a.ip {
                ipam.insert("IPv4Address".into(), json!(ip));
            }
            if let Some(ip) = &a.ip6 {
                ipam.insert("IPv6Address".into(), json!(ip));
            }
            let body = json!({"Container": a.container, "EndpointConfig": {"Aliases": a.alias, "IPAMConfig": ipam}});
            client
                .post(
                    &format!("/networks/{}/connect", a.network),
                    &Query::new(),
                    Some(&body),
                )
                .await?;
            Ok(())
        }
        NetworkCmd::Disconnect(a) => {
            let body = json!({"Container": a.container, "Force": a.force});
            client
                .post(
                    &format!("/networks/{}/disconnect", a.network),
                    &Query::new(),
                    Some(&body),
                )
                .await?;
            Ok(())
        }
        NetworkCmd::Prune(a) => {
            if !confirm(
                "WARNING! This will remove all custom networks not used by at least one container.",
                a.force,
            ) {
                return Ok(());
            }
            let v: Value = client
                .post_json(
                    "/networks/prune",
                    &Query::new().opt("filters", filters_json(&a.filter)?),
                    None,
                )
                .await?;
            let deleted: Vec<&str> = v["NetworksDeleted"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !deleted.is_empty() {
                out(&format!("Deleted Networks:\n{}\n", deleted.join("\n")));
            }
            Ok(())
        }
    }
}
