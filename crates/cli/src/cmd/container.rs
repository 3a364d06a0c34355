//! Container verbs other than create/run/exec: lifecycle, listing, logs,
//! attach, and the small ones (top, port, diff, export, rename, prune).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Value};

use super::stdio::{self, StreamEnd, StreamOpts, DEFAULT_DETACH_KEYS};
use super::{commit, cp, exec, filters_json, for_each, out, run, stats, system, Ctx, Fail};
use crate::client::stream::{next_chunk, Demux, StdStream};
use crate::client::{read_all, Query};
use crate::format::{self, ellipsis, short_id, units};

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ContainerCmd {
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(run::CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Attach to a running container
    Attach(AttachArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(IdsArgs),
    /// Display detailed information on one or more containers
    Inspect(system::TypedInspectArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Pause all processes within one or more containers
    Pause(IdsArgs),
    /// Unpause all processes within one or more containers
    Unpause(IdsArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

pub async fn dispatch(ctx: &Ctx, c: ContainerCmd) -> anyhow::Result<()> {
    match c {
        ContainerCmd::Ls(a) => ps(ctx, a).await,
        ContainerCmd::Run(a) => run::run(ctx, a).await,
        ContainerCmd::Create(a) => run::create_cmd(ctx, a).await,
        ContainerCmd::Start(a) => start(ctx, a).await,
        ContainerCmd::Stop(a) => stop(ctx, a, "stop").await,
        ContainerCmd::Restart(a) => stop(ctx, a, "restart").await,
        ContainerCmd::Kill(a) => kill(ctx, a).await,
        ContainerCmd::Rm(a) => rm(ctx, a).await,
        ContainerCmd::Logs(a) => logs(ctx, a).await,
        ContainerCmd::Exec(a) => exec::exec(ctx, a).await,
        ContainerCmd::Attach(a) => attach(ctx, a).await,
        ContainerCmd::Wait(a) => wait(ctx, a).await,
        ContainerCmd::Inspect(a) => system::inspect_typed(ctx, a, "container").await,
        ContainerCmd::Top(a) => top(ctx, a).await,
        ContainerCmd::Stats(a) => stats::stats(ctx, a).await,
        ContainerCmd::Commit(a) => commit::commit(ctx, a).await,
        ContainerCmd::Cp(a) => cp::cp(ctx, a).await,
        ContainerCmd::Rename(a) => rename(ctx, a).await,
        ContainerCmd::Pause(a) => simple_post(ctx, a, "pause").await,
        ContainerCmd::Unpause(a) => simple_post(ctx, a, "unpause").await,
        ContainerCmd::Port(a) => port(ctx, a).await,
        ContainerCmd::Export(a) => export(ctx, a).await,
        ContainerCmd::Diff(a) => diff(ctx, a).await,
        ContainerCmd::Prune(a) => prune(ctx, a).await,
    }
}

#[derive(Args, Debug)]
pub struct IdsArgs {
    /// Containers (names or IDs)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", allow_hyphen_values = true)]
    pub last: Option<i64>,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs before a timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set)]
    pub sig_proxy: bool,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
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

pub async fn inspect_container(ctx: &Ctx, id: &str) -> anyhow::Result<Value> {
    Ok(ctx
        .client
        .get_json(&format!("/containers/{id}/json"), &Query::new())
        .await?)
}

pub async fn start(ctx: &Ctx, a: StartArgs) -> anyhow::Result<()> {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        return start_attached(ctx, &a).await;
    }
    let client = &ctx.client;
    for_each(&a.containers, |c| async move {
        client
            .post(&format!("/containers/{c}/start"), &Query::new(), None)
            .await?;
        Ok(Some(c))
    })
    .await
}

async fn start_attached(ctx: &Ctx, a: &StartArgs) -> anyhow::Result<()> {
    let name = &a.containers[0];
    let info = inspect_container(ctx, name).await?;
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = a.interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    stream_container(ctx, &id, tty, stdin, a.detach_keys.as_deref(), true, true).await
}

/// Attaches to a container, optionally starts it, streams until it ends, and
/// exits with its status (docker's `start -a` and `attach`).
async fn stream_container(
    ctx: &Ctx,
    id: &str,
    tty: bool,
    stdin: bool,
    detach_keys: Option<&str>,
    do_start: bool,
    sig_proxy: bool,
) -> anyhow::Result<()> {
    let client = &ctx.client;
    let keys_str = detach_keys.unwrap_or(DEFAULT_DETACH_KEYS);
    let keys = crate::tty::parse_detach_keys(keys_str)?;
    let mut q = Query::new()
        .set("stream", "1")
        .set("stdout", "1")
        .set("stderr", "1")
        .flag("stdin", stdin);
    if detach_keys.is_some() {
        q = q.set("detachKeys", keys_str);
    }
    let io = client
        .hijack(&format!("/containers/{id}/attach"), &q, None)
        .await?;
    let wait = client
        .post(
            &format!("/containers/{id}/wait"),
            &Query::new().set("condition", "next-exit"),
            None,
        )
        .await?;
    let raw = if tty && stdin {
        crate::tty::RawGuard::stdin()?
    } else {
        None
    };
    if do_start {
        if let Err(e) = client
            .post(&format!("/containers/{id}/start"), &Query::new(), None)
            .await
        {
            drop(raw);
            return Err(e.into());
        }
    }
    let resizer =
        tty.then(|| stdio::spawn_resizer(client.clone(), format!("/containers/{id}/resize")));
    let proxy = (sig_proxy && !tty).then(|| stdio::spawn_sig_proxy(client.clone(), id.to_string()));
    let end = stdio::pump(
        io,
        &StreamOpts {
            tty,
            stdin,
            detach_keys: keys,
        },
    )
    .await;
    if let Some(r) = resizer {
        r.abort();
    }
    drop(raw);
    if let Some(p) = proxy {
        p.abort();
    }
    let end = end?;
    if end != StreamEnd::Eof {
        return end.early_result();
    }
    let status = run::wait_status(read_all(wait).await?)?;
    if status != 0 {
        return Err(Fail::exit(status));
    }
    Ok(())
}

pub async fn attach(ctx: &Ctx, a: AttachArgs) -> anyhow::Result<()> {
    let info = inspect_container(ctx, &a.container).await?;
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if info["State"]["Paused"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !a.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if tty && stdin && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("the input device is not a TTY");
    }
    stream_container(
        ctx,
        &id,
        tty,
        stdin,
        a.detach_keys.as_deref(),
        false,
        a.sig_proxy,
    )
    .await
}

pub async fn stop(ctx: &Ctx, a: StopArgs, verb: &str) -> anyhow::Result<()> {
    let client = &ctx.client;
    let q = Query::new()
        .opt("t", a.time.map(|t| t.to_string()))
        .opt("signal", a.signal.clone());
    let q = &q;
    for_each(&a.containers, |c| async move {
        client
            .post(&format!("/containers/{c}/{verb}"), q, None)
            .await?;
        Ok(Some(c))
    })
    .await
}

pub async fn kill(ctx: &Ctx, a: KillArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    let q = Query::new().opt("signal", a.signal.clone());
    let q = &q;
    for_each(&a.containers, |c| async move {
        client
            .post(&format!("/containers/{c}/kill"), q, None)
            .await?;
        Ok(Some(c))
    })
    .await
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    let q = Query::new()
        .flag("force", a.force)
        .flag("v", a.volumes)
        .flag("link", a.link);
    let q = &q;
    for_each(&a.containers, |c| async move {
        client.delete(&format!("/containers/{c}"), q).await?;
        Ok(Some(c))
    })
    .await
}

pub async fn simple_post(ctx: &Ctx, a: IdsArgs, verb: &str) -> anyhow::Result<()> {
    let client = &ctx.client;
    for_each(&a.containers, |c| async move {
        client
            .post(&format!("/containers/{c}/{verb}"), &Query::new(), None)
            .await?;
        Ok(Some(c))
    })
    .await
}

pub async fn wait(ctx: &Ctx, a: IdsArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    for_each(&a.containers, |c| async move {
        let resp = client
            .post(&format!("/containers/{c}/wait"), &Query::new(), None)
            .await?;
        let code = run::wait_status(read_all(resp).await?)?;
        Ok(Some(code.to_string()))
    })
    .await
}

pub async fn rename(ctx: &Ctx, a: RenameArgs) -> anyhow::Result<()> {
    let q = Query::new().set("name", a.new_name.clone());
    ctx.client
        .post(&format!("/containers/{}/rename", a.container), &q, None)
        .await?;
    Ok(())
}

const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

pub fn ps_header() -> Value {
    json!({
        "Command": "COMMAND", "CreatedAt": "CREATED AT", "ID": "CONTAINER ID", "Image": "IMAGE",
        "Labels": "LABELS", "LocalVolumes": "LOCAL VOLUMES", "Mounts": "MOUNTS", "Names": "NAMES",
        "Networks": "NETWORKS", "Ports": "PORTS", "RunningFor": "CREATED", "Size": "SIZE",
        "State": "STATE", "Status": "STATUS", "__Label": format::template::HEADER_METHOD,
    })
}

/// docker's `DisplayablePorts`: "0.0.0.0:8080->80/tcp, 53/udp".
pub fn display_ports(ports: &[Value]) -> String {
    let mut items: Vec<(u64, String, String)> = Vec::new();
    for p in ports {
        let private = p["PrivatePort"].as_u64().unwrap_or(0);
        let typ = p["Type"].as_str().unwrap_or("tcp");
        let ip = p["IP"].as_str().unwrap_or("");
        let public = p["PublicPort"].as_u64().unwrap_or(0);
        let s = if ip.is_empty() && public == 0 {
            format!("{private}/{typ}")
        } else {
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            format!("{ip}:{public}->{private}/{typ}")
        };
        items.push((private, typ.to_string(), s));
    }
    items.sort();
    items.dedup();
    items
        .into_iter()
        .map(|(_, _, s)| s)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn ps_row(c: &Value, trunc: bool) -> Value {
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let id = s("Id");
    let mut image = s("Image");
    if trunc {
        if image.starts_with("sha256:") {
            image = short_id(&image);
        } else if let Some((name, _)) = image.split_once('@') {
            image = name.to_string();
        }
    }
    let mut command = s("Command");
    if trunc {
        command = ellipsis(&command, 20);
    }
    let created = c["Created"].as_i64().unwrap_or(0);
    let names: Vec<String> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let labels: BTreeMap<String, String> = c["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let labels = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mounts = c["Mounts"].as_array().cloned().unwrap_or_default();
    let mount_names = mounts
        .iter()
        .map(|m| {
            let n = m["Name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(m["Source"].as_str())
                .unwrap_or("");
            if trunc {
                ellipsis(n, 15)
            } else {
                n.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let local = mounts.iter().filter(|m| m["Driver"] == "local").count();
    let mut nets: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    nets.sort();
    let rw = c["SizeRw"].as_f64().unwrap_or(0.0);
    let mut size = units::human_size_prec(rw, 3);
    if let Some(root) = c["SizeRootFs"].as_f64().filter(|r| *r > 0.0) {
        size = format!("{size} (virtual {})", units::human_size_prec(root, 3));
    }
    json!({
        "Command": go_quote(&command),
        "CreatedAt": units::go_time_string(created),
        "ID": if trunc { short_id(&id) } else { id },
        "Image": image,
        "Labels": labels,
        "LocalVolumes": local.to_string(),
        "Mounts": mount_names,
        "Names": names.join(","),
        "Networks": nets.join(","),
        "Platform": c.get("ImageManifestDescriptor").and_then(|d| d.get("platform")).cloned().unwrap_or(Value::Null),
        "Ports": display_ports(c["Ports"].as_array().map(Vec::as_slice).unwrap_or(&[])),
        "RunningFor": units::ago(created),
        "Size": size,
        "State": s("State"),
        "Status": s("Status"),
        "__Label": c["Labels"].as_object().cloned().unwrap_or_default(),
    })
}

/// Go's `strconv.Quote` for the common cases.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// docker asks for sizes when the template shows them, `{{json .}}` included
/// (but not `--format json`).
fn wants_size(format: &str) -> bool {
    let f = format.trim();
    f.contains(".Size") || f.replace(' ', "").contains("{{json.}}")
}

pub async fn ps(ctx: &Ctx, a: PsArgs) -> anyhow::Result<()> {
    let limit = if a.latest {
        Some(1)
    } else {
        a.last.filter(|n| *n > 0)
    };
    let q = Query::new()
        .flag("all", a.all || limit.is_some())
        .opt("limit", limit.map(|l| l.to_string()))
        .flag(
            "size",
            a.size || a.format.as_deref().is_some_and(wants_size),
        )
        .opt("filters", filters_json(&a.filter)?);
    let list: Vec<Value> = ctx.client.get_json("/containers/json", &q).await?;
    let rows: Vec<Value> = list.iter().map(|c| ps_row(c, !a.no_trunc)).collect();
    let format = if a.quiet {
        Some("{{.ID}}".to_string())
    } else {
        a.format.clone()
    };
    let table = if a.size {
        format!("{PS_TABLE}\t{{{{.Size}}}}")
    } else {
        PS_TABLE.to_string()
    };
    out(&format::render_rows(
        format.as_deref(),
        &table,
        &ps_header(),
        &rows,
    )?);
    Ok(())
}

/// Turns `--since 10m` into the unix time docker sends; timestamps pass through.
pub fn time_arg(s: &str) -> String {
    if let Some(d) = units::parse_go_duration(s) {
        let t = units::now_secs() - d;
        return format!("{:.9}", t);
    }
    if let Some(t) = units::parse_rfc3339(s) {
        return t.to_string();
    }
    s.to_string()
}

pub async fn logs(ctx: &Ctx, a: LogsArgs) -> anyhow::Result<()> {
    let info = inspect_container(ctx, &a.container).await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    let q = Query::new()
        .set("stdout", "1")
        .set("stderr", "1")
        .flag("follow", a.follow)
        .flag("timestamps", a.timestamps)
        .flag("details", a.details)
        .set("tail", a.tail.clone())
        .opt("since", a.since.as_deref().map(time_arg))
        .opt("until", a.until.as_deref().map(time_arg));
    let resp = ctx
        .client
        .call(
            http::Method::GET,
            &format!("/containers/{id}/logs"),
            &q,
            crate::client::ReqBody::empty(),
            &[],
        )
        .await?;
    let mut body = resp.into_body();
    let mut demux = Demux::new();
    while let Some(chunk) = next_chunk(&mut body).await? {
        if tty {
            stdio::write_out(StdStream::Stdout, &chunk);
        } else {
            for (kind, data) in demux.push(&chunk) {
                stdio::write_out(kind, &data);
            }
        }
    }
    if demux.leftover() > 0 {
        tracing::warn!(
            "log stream ended inside a frame ({} bytes dropped)",
            demux.leftover()
        );
    }
    Ok(())
}

pub async fn top(ctx: &Ctx, a: TopArgs) -> anyhow::Result<()> {
    let q = Query::new().opt(
        "ps_args",
        (!a.ps_args.is_empty()).then(|| a.ps_args.join(" ")),
    );
    let v: Value = ctx
        .client
        .get_json(&format!("/containers/{}/top", a.container), &q)
        .await?;
    let mut text = String::new();
    let titles: Vec<&str> = v["Titles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    text.push_str(&titles.join("\t"));
    text.push('\n');
    for p in v["Processes"].as_array().into_iter().flatten() {
        let cells: Vec<&str> = p
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    out(&format::tabwriter::TabWriter::new(20, 3).format(&text));
    Ok(())
}

pub async fn port(ctx: &Ctx, a: PortArgs) -> anyhow::Result<()> {
    let info = inspect_container(ctx, &a.container).await?;
    let ports = info["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut lines = Vec::new();
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort_by_key(|k| {
        (
            k.split('/')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0),
            k.to_string(),
        )
    });
    for k in keys {
        if want.as_ref().is_some_and(|w| w != k) {
            continue;
        }
        for b in ports[k].as_array().into_iter().flatten() {
            let ip = b["HostIp"].as_str().unwrap_or("");
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            let hp = b["HostPort"].as_str().unwrap_or("");
            lines.push(if want.is_some() {
                format!("{ip}:{hp}")
            } else {
                format!("{k} -> {ip}:{hp}")
            });
        }
    }
    if lines.is_empty() {
        if let Some(p) = &a.port {
            bail!(
                "Error: No public port '{}' published for {}",
                want.as_deref().unwrap_or(p),
                a.container
            );
        }
    }
    for l in lines {
        out(&format!("{l}\n"));
    }
    Ok(())
}

/// Streams a tar body to `-o FILE` or stdout (refusing a terminal, as docker does).
pub async fn stream_to_output(
    resp: http::Response<hyper::body::Incoming>,
    output: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let mut w: Box<dyn Write> = match output {
        Some(p) => Box::new(
            std::fs::File::create(p)
                .map_err(|e| anyhow!("failed to create {}: {e}", p.display()))?,
        ),
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            Box::new(std::io::stdout().lock())
        }
    };
    let mut body = resp.into_body();
    while let Some(chunk) = next_chunk(&mut body).await? {
        let r = w.write_all(&chunk);
        super::exit_on_broken_pipe(
            r.as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::from(e.kind())),
        );
        r?;
    }
    w.flush()?;
    Ok(())
}

pub async fn export(ctx: &Ctx, a: ExportArgs) -> anyhow::Result<()> {
    if a.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = ctx
        .client
        .call(
            http::Method::GET,
            &format!("/containers/{}/export", a.container),
            &Query::new(),
            crate::client::ReqBody::empty(),
            &[],
        )
        .await?;
    stream_to_output(resp, a.output.as_ref()).await
}

pub async fn diff(ctx: &Ctx, a: DiffArgs) -> anyhow::Result<()> {
    let changes: Value = ctx
        .client
        .get_json(
            &format!("/containers/{}/changes", a.container),
            &Query::new(),
        )
        .await?;
    for c in changes.as_array().into_iter().flatten() {
        let kind = match c["Kind"].as_i64() {
            Some(1) => "A",
            Some(2) => "D",
            _ => "C",
        };
        out(&format!("{kind} {}\n", c["Path"].as_str().unwrap_or("")));
    }
    Ok(())
}

/// Asks "Are you sure you want to continue? [y/N]" unless forced.
pub fn confirm(warning: &str, force: bool) -> bool {
    if force {
        return true;
    }
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

pub async fn prune(ctx: &Ctx, a: PruneArgs) -> anyhow::Result<()> {
    if !confirm("WARNING! This will remove all stopped containers.", a.force) {
        return Ok(());
    }
    let q = Query::new().opt("filters", filters_json(&a.filter)?);
    let v: Value = ctx.client.post_json("/containers/prune", &q, None).await?;
    print_pruned(&v, "ContainersDeleted", "Deleted Containers:");
    Ok(())
}

pub fn print_pruned(v: &Value, key: &str, title: &str) {
    let deleted: Vec<&str> = v[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut s = String::new();
    if !deleted.is_empty() {
        s.push_str(title);
        s.push('\n');
        for d in deleted {
            s.push_str(d);
            s.push('\n');
        }
        s.push('\n');
    }
    let space = v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        units::human_size(space)
    ));
    out(&s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_display() {
        let p = vec![
            json!({"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080}),
            json!({"PrivatePort": 53, "Type": "udp"}),
            json!({"PrivatePort": 80, "Type": "tcp", "IP": "::", "PublicPort": 8080}),
        ];
        assert_eq!(
            display_ports(&p),
            "53/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
    }

    #[test]
    fn ps_row_fields() {
        let c = json!({"Id": "0123456789abcdef", "Names": ["/web", "/other/link"], "Image": "busybox",
            "Command": "sh -c 'sleep 1000; echo done'", "Created": 0, "State": "running", "Status": "Up 1 second",
            "Labels": {"b": "2", "a": "1"}, "Ports": [], "Mounts": [], "NetworkSettings": {"Networks": {"none": {}}}});
        let r = ps_row(&c, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Command"], "\"sh -c 'sleep 1000; …\"");
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Networks"], "none");
        assert_eq!(r["Size"], "0B");
    }
}
