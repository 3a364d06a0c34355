//! Daemon-wide verbs: version, info, inspect, events, df, prune, login and
//! logout, shell completion.

use std::io::{IsTerminal, Read};

use anyhow::bail;
use clap::{Args, CommandFactory, Subcommand};
use serde_json::{json, Value};

use super::container::{confirm, time_arg};
use super::{df, filters_json, out, Ctx, Fail};
use crate::auth::{self, ConfigFile, Credentials};
use crate::client::stream::{next_chunk, JsonLines};
use crate::client::{Client, Query, ReqBody, API_VERSION};
use crate::format::{self, tabwriter::TabWriter, units, Template};

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum SystemCmd {
    /// Show docker disk usage
    Df(df::DfArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
}

pub async fn dispatch(ctx: &Ctx, c: SystemCmd) -> anyhow::Result<()> {
    match c {
        SystemCmd::Df(a) => df::df(ctx, a).await,
        SystemCmd::Info(a) => info(ctx, &a).await,
        SystemCmd::Events(a) => events(ctx, a).await,
        SystemCmd::Prune(a) => prune(ctx, a).await,
    }
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Only inspect objects of the given type (container, image, network, volume)
    #[arg(long = "type")]
    pub typ: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TypedInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes (containers)
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// Shell to generate the script for
    pub shell: clap_complete::Shell,
}

fn client_version_json(client: &Client, server_api: Option<&str>) -> Value {
    json!({
        "Platform": {"Name": "Berth"},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": client.api_version(),
        "DefaultAPIVersion": API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "Context": "default",
        "ServerApiVersion": server_api,
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version(client: &Client, a: &VersionArgs) -> anyhow::Result<()> {
    let negotiated = client.negotiate().await;
    let server: Result<Value, _> = match negotiated {
        Ok(()) => client.get_json("/version", &Query::new()).await,
        Err(e) => Err(e),
    };
    let cv = client_version_json(client, None);
    if let Some(f) = &a.format {
        let data = json!({"Client": cv, "Server": server.as_ref().ok()});
        let t = Template::parse(&f.replace("\\t", "\t").replace("\\n", "\n"))?;
        out(&format!("{}\n", t.render(&data)?));
        return server.map(|_| ()).map_err(Into::into);
    }
    let mut text = String::from("Client:\n");
    let api = if client.api_version() != API_VERSION {
        format!("{} (downgraded from {API_VERSION})", client.api_version())
    } else {
        API_VERSION.to_string()
    };
    text.push_str(&format!(
        " Version:\t{}\n API version:\t{api}\n OS/Arch:\t{}/{}\n Context:\tdefault\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        go_arch()
    ));
    let s = match server {
        Ok(s) => s,
        Err(e) => {
            out(&TabWriter::new(20, 1).format(&text));
            return Err(e.into());
        }
    };
    let g = |k: &str| s[k].as_str().unwrap_or("").to_string();
    text.push_str(
        &format!(
            "\nServer: {}\n",
            s["Platform"]["Name"].as_str().unwrap_or("")
        )
        .replace(": \n", ":\n"),
    );
    let components = s["Components"].as_array().cloned().unwrap_or_default();
    let engine = components.iter().find(|c| c["Name"] == "Engine");
    text.push_str(" Engine:\n");
    text.push_str(&format!("  Version:\t{}\n", g("Version")));
    text.push_str(&format!(
        "  API version:\t{} (minimum version {})\n",
        g("ApiVersion"),
        g("MinAPIVersion")
    ));
    text.push_str(&format!("  Go version:\t{}\n", g("GoVersion")));
    text.push_str(&format!("  Git commit:\t{}\n", g("GitCommit")));
    let built = units::parse_rfc3339(&g("BuildTime"))
        .map(units::ansic)
        .unwrap_or_else(|| g("BuildTime"));
    text.push_str(&format!("  Built:\t{built}\n"));
    text.push_str(&format!("  OS/Arch:\t{}/{}\n", g("Os"), g("Arch")));
    let experimental = engine
        .and_then(|e| e["Details"]["Experimental"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| s["Experimental"].as_bool().unwrap_or(false).to_string());
    text.push_str(&format!("  Experimental:\t{experimental}\n"));
    for c in components.iter().filter(|c| c["Name"] != "Engine") {
        text.push_str(&format!(" {}:\n", c["Name"].as_str().unwrap_or("")));
        text.push_str(&format!(
            "  Version:\t{}\n",
            c["Version"].as_str().unwrap_or("")
        ));
        if let Some(d) = c["Details"].as_object() {
            let mut keys: Vec<&String> = d.keys().collect();
            keys.sort();
            for k in keys {
                text.push_str(&format!("  {k}:\t{}\n", d[k].as_str().unwrap_or("")));
            }
        }
    }
    out(&TabWriter::new(20, 1).format(&text));
    Ok(())
}

pub async fn info(ctx: &Ctx, a: &InfoArgs) -> anyhow::Result<()> {
    let mut v: Value = ctx.client.get_json("/info", &Query::new()).await?;
    let client_info = json!({
        "Debug": false,
        "Version": env!("CARGO_PKG_VERSION"),
        "Context": "default",
        "Plugins": [],
        "Warnings": null,
    });
    if let Some(f) = &a.format {
        if let Some(m) = v.as_object_mut() {
            m.insert("ClientInfo".into(), client_info);
        }
        out(&format::render_inspect(Some(f), &[v])?);
        return Ok(());
    }
    let mut s = String::new();
    s.push_str(&format!(
        "Client:\n Version:    {}\n Context:    default\n Debug Mode: false\n\nServer:\n",
        env!("CARGO_PKG_VERSION")
    ));
    let n = |k: &str| v[k].as_i64().unwrap_or(0);
    let st = |k: &str| match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        o => o.to_string(),
    };
    s.push_str(&format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n",
        n("Containers"),
        n("ContainersRunning"),
        n("ContainersPaused"),
        n("ContainersStopped")
    ));
    s.push_str(&format!(
        " Images: {}\n Server Version: {}\n Storage Driver: {}\n",
        n("Images"),
        st("ServerVersion"),
        st("Driver")
    ));
    for pair in v["DriverStatus"].as_array().into_iter().flatten() {
        if let Some([k, val]) = pair.as_array().map(|p| {
            [
                p.first().cloned().unwrap_or_default(),
                p.get(1).cloned().unwrap_or_default(),
            ]
        }) {
            s.push_str(&format!(
                "  {}: {}\n",
                k.as_str().unwrap_or(""),
                val.as_str().unwrap_or("")
            ));
        }
    }
    s.push_str(&format!(
        " Logging Driver: {}\n Cgroup Driver: {}\n Cgroup Version: {}\n",
        st("LoggingDriver"),
        st("CgroupDriver"),
        st("CgroupVersion")
    ));
    s.push_str(" Plugins:\n");
    for (k, label) in [("Volume", "Volume"), ("Network", "Network"), ("Log", "Log")] {
        let list: Vec<&str> = v["Plugins"][k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        s.push_str(&format!("  {label}: {}\n", list.join(" ")));
    }
    let swarm = v["Swarm"]["LocalNodeState"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("inactive");
    s.push_str(&format!(" Swarm: {swarm}\n"));
    let mut runtimes: Vec<&String> = v["Runtimes"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    runtimes.sort();
    s.push_str(&format!(
        " Runtimes: {}\n Default Runtime: {}\n",
        runtimes
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        st("DefaultRuntime")
    ));
    if !v["InitBinary"].is_null() {
        s.push_str(&format!(" Init Binary: {}\n", st("InitBinary")));
    }
    for (key, label) in [
        ("ContainerdCommit", "containerd"),
        ("RuncCommit", "runc"),
        ("InitCommit", "init"),
    ] {
        if let Some(id) = v[key]["ID"].as_str() {
            s.push_str(&format!(" {label} version: {id}\n"));
        }
    }
    let opts: Vec<&str> = v["SecurityOptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !opts.is_empty() {
        s.push_str(" Security Options:\n");
        for o in opts {
            let mut parts = o.split(',');
            if let Some(first) = parts.next() {
                s.push_str(&format!("  {}\n", first.trim_start_matches("name=")));
            }
            for p in parts {
                if let Some((k, val)) = p.split_once('=') {
                    let mut k = k.to_string();
                    if let Some(c) = k.get(0..1) {
                        k = c.to_uppercase() + &k[1..];
                    }
                    s.push_str(&format!("   {k}: {val}\n"));
                }
            }
        }
    }
    s.push_str(&format!(
        " Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}\n CPUs: {}\n Total Memory: {}\n Name: {}\n ID: {}\n Docker Root Dir: {}\n Debug Mode: {}\n Experimental: {}\n",
        st("KernelVersion"), st("OperatingSystem"), st("OSType"), st("Architecture"), n("NCPU"),
        units::bytes_size(v["MemTotal"].as_f64().unwrap_or(0.0)), st("Name"), st("ID"), st("DockerRootDir"),
        v["Debug"].as_bool().unwrap_or(false), v["ExperimentalBuild"].as_bool().unwrap_or(false)
    ));
    let insecure: Vec<&str> = v["RegistryConfig"]["InsecureRegistryCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !insecure.is_empty() {
        s.push_str(" Insecure Registries:\n");
        for i in insecure {
            s.push_str(&format!("  {i}\n"));
        }
    }
    s.push_str(&format!(
        " Live Restore Enabled: {}\n",
        v["LiveRestoreEnabled"].as_bool().unwrap_or(false)
    ));
    let warnings: Vec<&str> = v["Warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    s.push('\n');
    out(&s);
    for w in warnings {
        eprintln!("{w}");
    }
    Ok(())
}

/// The path of an object type's inspect endpoint.
fn inspect_path(typ: &str, name: &str, size: bool) -> (String, Query) {
    match typ {
        "container" => (
            format!("/containers/{name}/json"),
            Query::new().flag("size", size),
        ),
        "image" => (format!("/images/{name}/json"), Query::new()),
        "network" => (format!("/networks/{name}"), Query::new()),
        "volume" => (format!("/volumes/{name}"), Query::new()),
        _ => (format!("/{typ}s/{name}"), Query::new()),
    }
}

async fn inspect_many(
    ctx: &Ctx,
    names: &[String],
    types: &[&str],
    size: bool,
    format: Option<&str>,
) -> anyhow::Result<()> {
    let mut found = Vec::new();
    let mut failed = false;
    for name in names {
        let mut hit = None;
        let mut last_err = None;
        for t in types {
            let (path, q) = inspect_path(t, name, size);
            match ctx.client.get_json::<Value>(&path, &q).await {
                Ok(v) => {
                    hit = Some(v);
                    break;
                }
                Err(e) if e.is_not_found() => last_err = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        match hit {
            Some(v) => found.push(v),
            None => {
                failed = true;
                if types.len() > 1 {
                    eprintln!("Error: No such object: {name}");
                } else if let Some(e) = last_err {
                    eprintln!("{e}");
                }
            }
        }
    }
    if !found.is_empty() || format.is_none() {
        out(&format::render_inspect(format, &found)?);
    }
    if failed {
        return Err(Fail::exit(1));
    }
    Ok(())
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> anyhow::Result<()> {
    let all = ["container", "image", "network", "volume"];
    let types: Vec<&str> = match a.typ.as_deref() {
        None | Some("") => all.to_vec(),
        Some(t) if all.contains(&t) => vec![t],
        Some(t) => bail!("\"{t}\" is not a valid value for --type"),
    };
    inspect_many(ctx, &a.names, &types, a.size, a.format.as_deref()).await
}

pub async fn inspect_typed(ctx: &Ctx, a: TypedInspectArgs, typ: &str) -> anyhow::Result<()> {
    inspect_many(ctx, &a.names, &[typ], a.size, a.format.as_deref()).await
}

fn event_line(e: &Value) -> String {
    let mut s = String::new();
    if let Some(n) = e["timeNano"].as_i64().filter(|n| *n != 0) {
        s.push_str(&units::rfc3339_nano_fixed(n));
        s.push(' ');
    } else if let Some(t) = e["time"].as_i64().filter(|t| *t != 0) {
        s.push_str(&units::rfc3339_nano_fixed(t * 1_000_000_000));
        s.push(' ');
    }
    s.push_str(&format!(
        "{} {} {}",
        e["Type"].as_str().unwrap_or(""),
        e["Action"].as_str().unwrap_or(""),
        e["Actor"]["ID"].as_str().unwrap_or("")
    ));
    if let Some(attrs) = e["Actor"]["Attributes"]
        .as_object()
        .filter(|m| !m.is_empty())
    {
        let mut kv: Vec<_> = attrs.iter().collect();
        kv.sort_by(|a, b| a.0.cmp(b.0));
        let parts: Vec<String> = kv
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        s.push_str(&format!(" ({})", parts.join(", ")));
    }
    s
}

pub async fn events(ctx: &Ctx, a: EventsArgs) -> anyhow::Result<()> {
    let q = Query::new()
        .opt("since", a.since.as_deref().map(time_arg))
        .opt("until", a.until.as_deref().map(time_arg))
        .opt("filters", filters_json(&a.filter)?);
    let resp = ctx
        .client
        .call(http::Method::GET, "/events", &q, ReqBody::empty(), &[])
        .await?;
    let tmpl = match a.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(
            &f.replace("\\t", "\t").replace("\\n", "\n"),
        )?),
    };
    let mut body = resp.into_body();
    let mut lines = JsonLines::new();
    while let Some(chunk) = next_chunk(&mut body).await? {
        for e in lines.push(&chunk)? {
            let line = match &tmpl {
                Some(t) => t.render(&e)?,
                None => event_line(&e),
            };
            out(&format!("{line}\n"));
        }
    }
    Ok(())
}

pub async fn prune(ctx: &Ctx, a: SystemPruneArgs) -> anyhow::Result<()> {
    let mut warning = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
    if a.volumes {
        warning.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    warning.push_str(if a.all {
        "  - all images without at least one container associated to them\n"
    } else {
        "  - all dangling images\n"
    });
    warning.push_str("  - unused build cache\n");
    if !confirm(warning.trim_end(), a.force) {
        return Ok(());
    }
    let f = filters_json(&a.filter)?;
    let q = Query::new().opt("filters", f.clone());
    let c: Value = ctx.client.post_json("/containers/prune", &q, None).await?;
    let n: Value = ctx.client.post_json("/networks/prune", &q, None).await?;
    let vol: Value = if a.volumes {
        ctx.client.post_json("/volumes/prune", &q, None).await?
    } else {
        Value::Null
    };
    let mut imgf = a.filter.clone();
    if a.all {
        imgf.push("dangling=false".into());
    }
    let i: Value = ctx
        .client
        .post_json(
            "/images/prune",
            &Query::new().opt("filters", filters_json(&imgf)?),
            None,
        )
        .await?;
    let b: Value = match ctx
        .client
        .post_json("/build/prune", &Query::new(), None)
        .await
    {
        Ok(b) => b,
        Err(e) if e.is_not_found() => Value::Null,
        Err(e) => return Err(e.into()),
    };
    let mut s = String::new();
    let mut total = 0.0;
    let mut list = |title: &str, v: &Value, key: &str| {
        let items: Vec<String> = v[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                o => o["Deleted"]
                    .as_str()
                    .map(|d| format!("deleted: {d}"))
                    .or(o["Untagged"].as_str().map(|u| format!("untagged: {u}")))
                    .unwrap_or_default(),
            })
            .collect();
        if !items.is_empty() {
            s.push_str(&format!("{title}\n{}\n\n", items.join("\n")));
        }
        total += v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    };
    list("Deleted Containers:", &c, "ContainersDeleted");
    list("Deleted Networks:", &n, "NetworksDeleted");
    list("Deleted Volumes:", &vol, "VolumesDeleted");
    list("Deleted Images:", &i, "ImagesDeleted");
    list("Deleted build cache objects:", &b, "CachesDeleted");
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        units::human_size(total)
    ));
    out(&s);
    Ok(())
}

fn server_key(server: Option<&str>) -> String {
    match server {
        None | Some("docker.io") | Some("index.docker.io") | Some("registry-1.docker.io") => {
            auth::DOCKER_HUB.to_string()
        }
        Some(s) => s
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

pub async fn login(ctx: &Ctx, a: LoginArgs) -> anyhow::Result<()> {
    let server = server_key(a.server.as_deref());
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let mut cfg = ConfigFile::load(&ctx.config_dir)?;
    let username = match &a.username {
        Some(u) => u.clone(),
        None => {
            if a.password_stdin {
                bail!("Must provide --username with --password-stdin");
            }
            let stored = cfg.get(&server).map(|c| c.username).unwrap_or_default();
            eprint!(
                "Username{}: ",
                if stored.is_empty() {
                    String::new()
                } else {
                    format!(" ({stored})")
                }
            );
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let u = line.trim().to_string();
            if u.is_empty() {
                stored
            } else {
                u
            }
        }
    };
    if username.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    let password = if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        if !std::io::stdin().is_terminal() && a.username.is_some() {
            bail!("Cannot perform an interactive login from a non TTY device");
        }
        eprint!("Password: ");
        crate::tty::read_password()?
    };
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    let body = json!({"username": username, "password": password, "serveraddress": server});
    let resp: Value = ctx
        .client
        .post_json("/auth", &Query::new(), Some(&body))
        .await?;
    let creds = Credentials {
        username,
        password,
        server: server.clone(),
    };
    cfg.set(&creds);
    cfg.save()?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning.\n",
        cfg.path().display()
    );
    out(&format!(
        "{}\n",
        resp["Status"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("Login Succeeded")
    ));
    Ok(())
}

pub fn logout(config_dir: &std::path::Path, a: &LogoutArgs) -> anyhow::Result<()> {
    let server = server_key(a.server.as_deref());
    let mut cfg = ConfigFile::load(config_dir)?;
    if !cfg.remove(&server) {
        out(&format!("Not logged in to {server}\n"));
        return Ok(());
    }
    out(&format!("Removing login credentials for {server}\n"));
    cfg.save()?;
    Ok(())
}

pub fn completion(a: &CompletionArgs) -> anyhow::Result<()> {
    out(&completion_script(a.shell));
    Ok(())
}

/// Generated from the command definitions, so a new verb is completed as soon as it exists.
fn completion_script(shell: clap_complete::Shell) -> String {
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "berth", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_offers_commit_and_df_verbose() {
        let bash = completion_script(clap_complete::Shell::Bash);
        assert!(
            bash.contains("berth,commit)"),
            "no commit in bash completion"
        );
        assert!(bash.contains("berth__subcmd__container,commit)"));
        assert!(bash.contains("--pause"));
        let zsh = completion_script(clap_complete::Shell::Zsh);
        assert!(zsh.contains("'commit:Create a new image from a container"));
        assert!(zsh.contains("'*--change=[Apply Dockerfile instruction"));
        assert!(zsh.contains("--verbose[Show detailed information on space usage]"));
    }

    #[test]
    fn event_lines_as_docker() {
        let e = json!({"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "x", "image": "busybox"}}, "timeNano": 1_000_000_001i64});
        assert_eq!(
            event_line(&e),
            "1970-01-01T00:00:01.000000001Z container start abc (image=busybox, name=x)"
        );
    }
}
