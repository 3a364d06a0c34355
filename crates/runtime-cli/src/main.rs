//! berth-runtime: an OCI runtime with runc's command line.

mod logging;
mod update;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use berth_runtime::exec::{ExecOptions, ExecOverrides};
use berth_runtime::{
    container, default_spec, exe_seal, exec, exec_trampoline, features, manage, run, spec,
    CreateOptions, Root,
};
use clap::{Parser, Subcommand, ValueEnum};

// musl's malloc unmaps freed memory at once; a short-lived process that builds and
// drops its command tree and parsed config pays an mmap/munmap pair per burst.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

const DEFAULT_ROOT: &str = "/run/berth-runtime";
const VERSION_TEXT: &str = concat!(env!("CARGO_PKG_VERSION"), "\nspec: ", "1.2.1");

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    version = VERSION_TEXT,
    disable_version_flag = true,
    about = "An OCI runtime with runc's command line"
)]
struct Cli {
    /// Print the version (-v, as runc has it).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Directory holding container state (tmpfs recommended). Default:
    /// /run/berth-runtime, or $XDG_RUNTIME_DIR/berth without root.
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; the cgroupfs driver is always used.
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility.
    #[arg(long, global = true)]
    criu: Option<String>,
    /// Accepted for runc compatibility (true, false or auto), before the command.
    #[arg(long = "rootless")]
    rootless_mode: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Table,
    Json,
}

/// `defer`: only the invoked command's flags are built (a fraction of a millisecond of every
/// create and delete).
#[derive(Subcommand)]
#[command(defer = true)]
enum Command {
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for running without root (with a user namespace).
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container; its process waits for `start`.
    Create {
        #[command(flatten)]
        c: CreateArgs,
    },
    /// Run the process of a created container.
    Start { id: String },
    /// Output the state of a container as JSON.
    State { id: String },
    /// Send a signal to the container's init (or every process with --all).
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and what the runtime holds for it.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; in the foreground, wait for it.
    Run {
        #[command(flatten)]
        c: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Accepted for runc compatibility.
        #[arg(long)]
        keep: bool,
    },
    /// List containers.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a new process inside a running container.
    Exec {
        /// Process spec (JSON) to run instead of COMMAND and the flags.
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// NAME=VALUE, repeatable.
        #[arg(short, long)]
        env: Vec<String>,
        /// uid[:gid]
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short = 'g', long)]
        additional_gids: Vec<u32>,
        /// Add a capability (repeatable).
        #[arg(short, long)]
        cap: Vec<String>,
        #[arg(long)]
        no_new_privs: bool,
        #[arg(long, default_value_t = 0)]
        preserve_fds: u32,
        /// Accepted for runc compatibility.
        #[arg(long)]
        process_label: Option<String>,
        /// Accepted for runc compatibility.
        #[arg(long)]
        apparmor: Option<String>,
        /// Accepted for runc compatibility (exec into a paused container is refused).
        #[arg(long)]
        ignore_paused: bool,
        /// Accepted for runc compatibility: the process joins the container's cgroup.
        #[arg(long)]
        cgroup: Vec<String>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a running container's resource limits.
    Update {
        #[command(flatten)]
        u: update::UpdateArgs,
    },
    /// Stream stats and OOM events of a container as JSON lines.
    Events {
        /// Print one stats event and exit.
        #[arg(long)]
        stats: bool,
        /// Seconds between stats events.
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print the OCI features document of this runtime.
    Features,
    /// Show the processes running in a container.
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        id: String,
        /// Options passed to ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when the process has a terminal.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root (for a rootfs on ramfs).
    #[arg(long)]
    no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many extra descriptors (from 3 up) to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.as_deref().map(absolute),
            console_socket: self.console_socket.as_deref().map(absolute),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            exec_trampoline: None,
            spec: None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let to_stderr = match logging::init(
        cli.log.as_deref(),
        matches!(cli.log_format, LogFormat::Json),
        cli.debug,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-runtime: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let is_exec = matches!(cli.command, Command::Exec { .. });
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = render(&e);
            tracing::error!("{msg}");
            if !to_stderr {
                eprintln!("berth-runtime: {msg}");
            }
            // runc exits 255 when exec fails, and callers test for it.
            if is_exec {
                ExitCode::from(255)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let root = Root::new(cli.root.clone().unwrap_or_else(default_root));
    match cli.command {
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let spec = default_spec::default_spec(rootless);
            let text = serde_json::to_string_pretty(&spec)?;
            std::fs::write(&path, text + "\n")
                .with_context(|| format!("write {}", path.display()))?;
        }
        Command::Create { c } => {
            let opts = protect(&root, c.options())?;
            container::create(&root, &opts, None)?;
        }
        Command::Start { id } => container::start(&root, &id)?,
        Command::State { id } => {
            let s = container::state(&root, &id)?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Command::Kill { all, id, signal } => container::kill(&root, &id, &signal, all)?,
        Command::Delete { force, id } => container::delete(&root, &id, force)?,
        Command::Run { c, detach, keep } => {
            let opts = protect(&root, c.options())?;
            let code = run::run(&root, &opts, detach, keep)?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Command::List { format, quiet } => print_list(&root, format, quiet)?,
        Command::Exec {
            process,
            tty,
            detach,
            pid_file,
            console_socket,
            cwd,
            env,
            user,
            additional_gids,
            cap,
            no_new_privs,
            preserve_fds,
            process_label: _,
            apparmor: _,
            ignore_paused: _,
            cgroup: _,
            id,
            command,
        } => {
            seal(&root)?;
            let process = match process {
                Some(path) => {
                    let data =
                        std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                    let mut value: serde_json::Value = serde_json::from_slice(&data)
                        .with_context(|| format!("invalid process {}", path.display()))?;
                    // runc runs a process spec without `user` as root.
                    if let Some(obj) = value.as_object_mut() {
                        obj.entry("user")
                            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
                    }
                    serde_path_to_error::deserialize(value).map_err(|e| {
                        anyhow::anyhow!(
                            "invalid process {}: {}: {}",
                            path.display(),
                            e.path(),
                            e.inner()
                        )
                    })?
                }
                None => {
                    let state = root.load(&id)?;
                    let spec = spec::load(&state.bundle)?;
                    exec::process_from_flags(
                        &spec,
                        &ExecOverrides {
                            args: command,
                            tty,
                            cwd,
                            env,
                            user,
                            additional_gids,
                            caps: cap,
                            no_new_privs,
                        },
                    )?
                }
            };
            let code = exec::exec(
                &root,
                &ExecOptions {
                    id,
                    process,
                    detach,
                    pid_file: pid_file.as_deref().map(absolute),
                    console_socket,
                    preserve_fds,
                },
            )?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Command::Pause { id } => manage::pause(&root, &id)?,
        Command::Resume { id } => manage::resume(&root, &id)?,
        Command::Update { u } => manage::update(&root, &u.id, &u.resources()?)?,
        Command::Events {
            stats,
            interval,
            id,
        } => {
            if stats {
                println!("{}", manage::stats_event(&root, &id)?);
            } else {
                let every = parse_duration(&interval)
                    .with_context(|| format!("invalid --interval {interval:?}"))?;
                let every = every.max(std::time::Duration::from_millis(10));
                manage::events(&root, &id, every, |ev| {
                    use std::io::Write;
                    // A reader that went away (`| head`) ends the stream.
                    if writeln!(std::io::stdout(), "{ev}").is_err() {
                        std::process::exit(0);
                    }
                })?;
            }
        }
        Command::Features => println!("{}", serde_json::to_string_pretty(&features::features())?),
        Command::Ps {
            format,
            id,
            ps_args,
        } => print_ps(&root, &id, format, &ps_args)?,
    }
    Ok(0)
}

/// As runc: a user without root keeps state in their own runtime directory.
fn default_root() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if euid != 0 && !dir.is_empty() => PathBuf::from(dir).join("berth"),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// A path made absolute against our working directory now, as runc does for
/// --pid-file: create changes into the bundle before writing it.
fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Go-style durations as runc takes them: `100ms`, `5s`, `1m`, `1.5s`.
fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().context("not a number")?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("unknown unit {unit:?}"),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        bail!("out of range");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// The error and its causes on one line, without repeating a cause that the
/// message before it already ends with.
fn render(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if out.ends_with(&m) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&m);
    }
    out
}

/// Before any command that enters a container, run from a sealed copy of
/// ourselves (CVE-2019-5736).
fn seal(root: &Root) -> anyhow::Result<()> {
    tracing::debug!("sealing the runtime binary");
    exe_seal::reexec_sealed(&root.path)
        .context("re-execute from a sealed copy of berth-runtime")?;
    tracing::debug!("running sealed");
    Ok(())
}

/// The CVE-2019-5736 protection for a new container: a sealed trampoline for
/// its final execve where that is enough, else a sealed copy of ourselves.
/// A bundle that cannot be read is left to `create` to report.
fn protect(root: &Root, mut opts: CreateOptions) -> anyhow::Result<CreateOptions> {
    opts.spec = spec::load(&opts.bundle).ok().map(std::sync::Arc::new);
    let trampoline = opts
        .spec
        .as_deref()
        .filter(|s| exec_trampoline::suffices(s))
        .and_then(|_| match exec_trampoline::create() {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!("no exec trampoline ({e})");
                None
            }
        });
    match trampoline {
        Some(fd) => opts.exec_trampoline = Some(std::sync::Arc::new(fd)),
        None => seal(root)?,
    }
    Ok(opts)
}

fn print_list(root: &Root, format: Format, quiet: bool) -> anyhow::Result<()> {
    let states = container::list(root)?;
    if quiet {
        for s in &states {
            println!("{}", s["id"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string(&states)?);
        return Ok(());
    }
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .map(String::from)
        .to_vec()];
    for s in &states {
        let field = |k: &str| match &s[k] {
            serde_json::Value::String(v) => v.clone(),
            v => v.to_string(),
        };
        rows.push(vec![
            field("id"),
            field("pid"),
            field("status"),
            field("bundle"),
            field("created"),
            field("owner"),
        ]);
    }
    print_table(&rows);
    Ok(())
}

/// Columns padded like Go's tabwriter(minwidth 12, padding 3) as runc uses.
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, |r| r.len());
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        println!("{line}");
    }
}

fn print_ps(root: &Root, id: &str, format: Format, ps_args: &[String]) -> anyhow::Result<()> {
    let pids = container::pids(root, id)?;
    if format == Format::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(())
}
