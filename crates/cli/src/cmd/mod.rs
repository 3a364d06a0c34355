//! The command line: docker's verbs and flags, each mapped onto Engine API calls.

mod commit;
mod container;
mod cp;
mod df;
mod exec;
mod image;
mod network;
mod run;
mod stats;
mod stdio;
mod system;
mod volume;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::{Map, Value};

use crate::auth::{self, ConfigFile};
use crate::client::{Client, ClientError, DEFAULT_HOST};
use crate::reference::Reference;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A Docker-compatible container engine client",
    long_about = "berth talks to berthd (or any Docker Engine API server) over its socket.\n\
                  The daemon is chosen by -H, else $BERTH_HOST, else $DOCKER_HOST, else unix:///run/berth/berth.sock.",
    after_help = "Example:\n  berth run --rm busybox echo hello\n  berth -H unix:///run/docker.sock ps -a",
    propagate_version = true
)]
pub struct Cli {
    /// Daemon socket to connect to (unix:///path or tcp://host:port)
    #[arg(short = 'H', long, global = true, value_name = "HOST")]
    pub host: Option<String>,
    /// Enable debug output
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
    /// Set the logging level (debug, info, warn, error)
    #[arg(long = "log-level", global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Location of client config files
    #[arg(long, global = true, value_name = "DIR")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// `defer`: a subcommand's flags are built only when it is the one invoked (here and in the
/// nested command groups); building Docker's whole flag set was most of a command's start.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Cmd {
    /// Show the client and daemon versions
    #[command(after_help = "Example:\n  berth version --format '{{.Server.Version}}'")]
    Version(system::VersionArgs),
    /// Display system-wide information
    #[command(after_help = "Example:\n  berth info --format '{{.Containers}}'")]
    Info(system::InfoArgs),
    /// Create and run a new container from an image
    #[command(
        after_help = "Example:\n  berth run --rm -it busybox sh\n  berth run -d --name web -p 8080:80 nginx"
    )]
    Run(run::RunArgs),
    /// Create a new container
    #[command(after_help = "Example:\n  berth create --name box busybox sleep 60")]
    Create(run::CreateArgs),
    /// Start one or more stopped containers
    #[command(after_help = "Example:\n  berth start -a box")]
    Start(container::StartArgs),
    /// Stop one or more running containers
    #[command(after_help = "Example:\n  berth stop -t 5 box")]
    Stop(container::StopArgs),
    /// Restart one or more containers
    #[command(after_help = "Example:\n  berth restart box")]
    Restart(container::StopArgs),
    /// Kill one or more running containers
    #[command(after_help = "Example:\n  berth kill -s HUP box")]
    Kill(container::KillArgs),
    /// Remove one or more containers
    #[command(after_help = "Example:\n  berth rm -f box")]
    Rm(container::RmArgs),
    /// List containers
    #[command(
        visible_alias = "list",
        after_help = "Example:\n  berth ps -a --format '{{.ID}} {{.Names}}'"
    )]
    Ps(container::PsArgs),
    /// Fetch the logs of a container
    #[command(after_help = "Example:\n  berth logs -f --tail 10 box")]
    Logs(container::LogsArgs),
    /// Execute a command in a running container
    #[command(after_help = "Example:\n  berth exec -it box sh")]
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    #[command(after_help = "Example:\n  berth attach box")]
    Attach(container::AttachArgs),
    /// Block until one or more containers stop, then print their exit codes
    #[command(after_help = "Example:\n  berth wait box")]
    Wait(container::IdsArgs),
    /// Return low-level information on Berth objects
    #[command(after_help = "Example:\n  berth inspect --format '{{.State.Pid}}' box")]
    Inspect(system::InspectArgs),
    /// List images
    #[command(after_help = "Example:\n  berth images --format '{{.Repository}}:{{.Tag}}'")]
    Images(image::ImagesArgs),
    /// Download an image from a registry
    #[command(after_help = "Example:\n  berth pull busybox:latest")]
    Pull(image::PullArgs),
    /// Upload an image to a registry
    #[command(after_help = "Example:\n  berth push 127.0.0.1:5000/busybox:latest")]
    Push(image::PushArgs),
    /// Remove one or more images
    #[command(after_help = "Example:\n  berth rmi busybox:old")]
    Rmi(image::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    #[command(after_help = "Example:\n  berth tag busybox 127.0.0.1:5000/busybox:v1")]
    Tag(image::TagArgs),
    /// Load an image from a tar archive or STDIN
    #[command(after_help = "Example:\n  berth load -i busybox.tar")]
    Load(image::LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    #[command(after_help = "Example:\n  berth save -o busybox.tar busybox")]
    Save(image::SaveArgs),
    /// Display the running processes of a container
    #[command(after_help = "Example:\n  berth top box")]
    Top(container::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    #[command(after_help = "Example:\n  berth stats --no-stream")]
    Stats(stats::StatsArgs),
    /// Create a new image from a container's changes
    #[command(
        after_help = "Example:\n  berth commit -c 'CMD [\"sh\"]' -m 'with tools' box myimage:v1"
    )]
    Commit(commit::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(
        after_help = "Example:\n  berth cp box:/etc/hostname .\n  berth cp ./file box:/tmp/"
    )]
    Cp(cp::CpArgs),
    /// Rename a container
    #[command(after_help = "Example:\n  berth rename old new")]
    Rename(container::RenameArgs),
    /// Pause all processes within one or more containers
    #[command(after_help = "Example:\n  berth pause box")]
    Pause(container::IdsArgs),
    /// Unpause all processes within one or more containers
    #[command(after_help = "Example:\n  berth unpause box")]
    Unpause(container::IdsArgs),
    /// List port mappings or a specific mapping for the container
    #[command(after_help = "Example:\n  berth port web 80/tcp")]
    Port(container::PortArgs),
    /// Export a container's filesystem as a tar archive
    #[command(after_help = "Example:\n  berth export -o box.tar box")]
    Export(container::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    #[command(after_help = "Example:\n  berth diff box")]
    Diff(container::DiffArgs),
    /// Import the contents from a tarball to create a filesystem image
    #[command(after_help = "Example:\n  berth import rootfs.tar myimage:latest")]
    Import(image::ImportArgs),
    /// Show the history of an image
    #[command(after_help = "Example:\n  berth history busybox")]
    History(image::HistoryArgs),
    /// Log in to a registry
    #[command(
        after_help = "Example:\n  echo secret | berth login -u me --password-stdin 127.0.0.1:5000"
    )]
    Login(system::LoginArgs),
    /// Log out from a registry
    #[command(after_help = "Example:\n  berth logout 127.0.0.1:5000")]
    Logout(system::LogoutArgs),
    /// Manage containers
    #[command(subcommand, after_help = "Example:\n  berth container ls -a")]
    Container(container::ContainerCmd),
    /// Manage images
    #[command(subcommand, after_help = "Example:\n  berth image ls")]
    Image(image::ImageCmd),
    /// Manage networks
    #[command(subcommand, after_help = "Example:\n  berth network create mynet")]
    Network(network::NetworkCmd),
    /// Manage volumes
    #[command(subcommand, after_help = "Example:\n  berth volume create data")]
    Volume(volume::VolumeCmd),
    /// Manage the daemon
    #[command(subcommand, after_help = "Example:\n  berth system df")]
    System(system::SystemCmd),
    /// Get real time events from the server
    #[command(after_help = "Example:\n  berth events --filter type=container")]
    Events(system::EventsArgs),
    /// Generate the shell completion script
    #[command(after_help = "Example:\n  source <(berth completion bash)")]
    Completion(system::CompletionArgs),
}

/// An error with the exit status it should produce (docker's conventions:
/// 125 the daemon refused, 126 cannot invoke, 127 not found, else the
/// container's own status). An empty message prints nothing.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Fail {
    pub code: i32,
    pub msg: String,
}

impl Fail {
    pub fn exit(code: i32) -> anyhow::Error {
        Fail {
            code,
            msg: String::new(),
        }
        .into()
    }
}

/// What every command gets: the negotiated client and the config location.
pub struct Ctx {
    pub client: Client,
    pub config_dir: PathBuf,
}

impl Ctx {
    /// `X-Registry-Auth` for the registry of `r`, when credentials are stored.
    pub fn registry_auth(&self, r: &Reference) -> anyhow::Result<Vec<(&'static str, String)>> {
        let cfg = ConfigFile::load(&self.config_dir)?;
        Ok(cfg
            .get(&r.auth_key())
            .map(|c| vec![("x-registry-auth", c.header())])
            .unwrap_or_default())
    }
}

fn host_url(cli: &Cli) -> String {
    let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    cli.host
        .clone()
        .or_else(|| env("BERTH_HOST"))
        .or_else(|| env("DOCKER_HOST"))
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

pub async fn main(cli: Cli) -> i32 {
    match dispatch(cli).await {
        Ok(()) => 0,
        Err(e) => {
            if let Some(f) = e.downcast_ref::<Fail>() {
                if !f.msg.is_empty() {
                    eprintln!("{}", f.msg);
                }
                return f.code;
            }
            eprintln!("{}", error_line(&e));
            1
        }
    }
}

/// One line for an error: the daemon's message as docker shows it, else the chain.
pub fn error_line(e: &anyhow::Error) -> String {
    if let Some(c) = e.downcast_ref::<ClientError>() {
        return c.to_string();
    }
    format!("{e:#}")
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let config_dir = auth::config_dir(cli.config.as_deref());
    let url = host_url(&cli);
    if let Cmd::Completion(a) = &cli.cmd {
        return system::completion(a);
    }
    if let Cmd::Logout(a) = &cli.cmd {
        return system::logout(&config_dir, a);
    }
    let client = Client::new(&url)?;
    if let Cmd::Version(a) = &cli.cmd {
        return system::version(&client, a).await;
    }
    let ctx = Ctx { client, config_dir };
    match cli.cmd {
        Cmd::Version(_) | Cmd::Completion(_) | Cmd::Logout(_) => Ok(()),
        Cmd::Info(a) => system::info(&ctx, &a).await,
        Cmd::Run(a) => run::run(&ctx, a).await,
        Cmd::Create(a) => run::create_cmd(&ctx, a).await,
        Cmd::Start(a) => container::start(&ctx, a).await,
        Cmd::Stop(a) => container::stop(&ctx, a, "stop").await,
        Cmd::Restart(a) => container::stop(&ctx, a, "restart").await,
        Cmd::Kill(a) => container::kill(&ctx, a).await,
        Cmd::Rm(a) => container::rm(&ctx, a).await,
        Cmd::Ps(a) => container::ps(&ctx, a).await,
        Cmd::Logs(a) => container::logs(&ctx, a).await,
        Cmd::Exec(a) => exec::exec(&ctx, a).await,
        Cmd::Attach(a) => container::attach(&ctx, a).await,
        Cmd::Wait(a) => container::wait(&ctx, a).await,
        Cmd::Inspect(a) => system::inspect(&ctx, a).await,
        Cmd::Images(a) => image::images(&ctx, a).await,
        Cmd::Pull(a) => image::pull_cmd(&ctx, a).await,
        Cmd::Push(a) => image::push(&ctx, a).await,
        Cmd::Rmi(a) => image::rmi(&ctx, a).await,
        Cmd::Tag(a) => image::tag(&ctx, a).await,
        Cmd::Load(a) => image::load(&ctx, a).await,
        Cmd::Save(a) => image::save(&ctx, a).await,
        Cmd::Top(a) => container::top(&ctx, a).await,
        Cmd::Stats(a) => stats::stats(&ctx, a).await,
        Cmd::Commit(a) => commit::commit(&ctx, a).await,
        Cmd::Cp(a) => cp::cp(&ctx, a).await,
        Cmd::Rename(a) => container::rename(&ctx, a).await,
        Cmd::Pause(a) => container::simple_post(&ctx, a, "pause").await,
        Cmd::Unpause(a) => container::simple_post(&ctx, a, "unpause").await,
        Cmd::Port(a) => container::port(&ctx, a).await,
        Cmd::Export(a) => container::export(&ctx, a).await,
        Cmd::Diff(a) => container::diff(&ctx, a).await,
        Cmd::Import(a) => image::import(&ctx, a).await,
        Cmd::History(a) => image::history(&ctx, a).await,
        Cmd::Login(a) => system::login(&ctx, a).await,
        Cmd::Container(c) => container::dispatch(&ctx, c).await,
        Cmd::Image(c) => image::dispatch(&ctx, c).await,
        Cmd::Network(c) => network::dispatch(&ctx, c).await,
        Cmd::Volume(c) => volume::dispatch(&ctx, c).await,
        Cmd::System(c) => system::dispatch(&ctx, c).await,
        Cmd::Events(a) => system::events(&ctx, a).await,
    }
}

/// `--filter k=v` flags as the API's JSON map form `{"k":["v",...]}`.
pub fn filters_json(filters: &[String]) -> anyhow::Result<Option<String>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut m: Map<String, Value> = Map::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        let k = k.trim().to_lowercase();
        let entry = m.entry(k).or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(a) = entry {
            a.push(Value::String(v.to_string()));
        }
    }
    Ok(Some(Value::Object(m).to_string()))
}

/// Prints to stdout and flushes (stdout may be a pipe read by a test).
pub fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let r = o.write_all(s.as_bytes()).and_then(|_| o.flush());
    exit_on_broken_pipe(r);
}

/// A closed stdout (`berth ps | head`) ends the program quietly, as SIGPIPE
/// ends docker; Rust ignores SIGPIPE so the write reports EPIPE instead.
pub fn exit_on_broken_pipe(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}

/// Runs `f` for each name, printing each success as docker does and
/// collecting failures into one error (exit 1) after trying them all.
pub async fn for_each<F, Fut>(names: &[String], mut f: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<String>>>,
{
    let mut failed = false;
    for n in names {
        match f(n.clone()).await {
            Ok(Some(line)) => out(&format!("{line}\n")),
            Ok(None) => {}
            Err(e) => {
                failed = true;
                eprintln!("{}", error_line(&e));
            }
        }
    }
    if failed {
        return Err(Fail::exit(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_map_form() {
        let f = filters_json(&["status=exited".into(), "name=a".into(), "name=b".into()]).unwrap();
        assert_eq!(
            f.as_deref(),
            Some(r#"{"status":["exited"],"name":["a","b"]}"#)
        );
        assert!(filters_json(&["nope".into()]).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
