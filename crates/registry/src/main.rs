//! The `berth-registry` binary: flags, config file, logging, signals.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use berth_registry::config::{Config, TlsConfig};
use berth_registry::gc::{self, GcOptions};
use berth_registry::storage::FsStorage;

#[derive(Parser)]
#[command(name = "berth-registry", about = "OCI distribution registry server")]
struct Cli {
    /// Address to listen on (overrides the config file).
    #[arg(long)]
    listen: Option<String>,
    /// Storage root directory (overrides the config file).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Configuration file: TOML, or YAML when it ends in .yaml or .yml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Collect garbage offline (the server should not be running on this root).
    Gc {
        /// Report what would be deleted without deleting.
        #[arg(long)]
        dry_run: bool,
        /// Also delete manifests no tag reaches.
        #[arg(long)]
        delete_untagged: bool,
        /// Keep unreferenced blobs younger than this many seconds.
        #[arg(long, default_value_t = 0)]
        grace_secs: u64,
    },
    /// Print an htpasswd line for USER with the password read from stdin.
    Htpasswd { user: String },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let mut config = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(l) = cli.listen {
        config.listen = l;
    }
    if let Some(r) = cli.root {
        config.root = r;
    }
    if let (Some(cert), Some(key)) = (cli.tls_cert, cli.tls_key) {
        config.tls = Some(TlsConfig { cert, key });
    }
    match cli.command {
        Some(Command::Htpasswd { user }) => {
            let mut pw = String::new();
            std::io::stdin().read_to_string(&mut pw)?;
            let line =
                berth_registry::auth::htpasswd::make_entry(&user, pw.trim_end_matches('\n'), 10)?;
            println!("{line}");
            Ok(())
        }
        Some(Command::Gc {
            dry_run,
            delete_untagged,
            grace_secs,
        }) => {
            let storage = FsStorage::open(&config.root)
                .with_context(|| format!("opening {}", config.root.display()))?;
            let opts = GcOptions {
                dry_run,
                grace: Duration::from_secs(grace_secs),
                upload_ttl: Some(Duration::from_secs(config.gc.upload_ttl_secs)),
                delete_untagged,
            };
            let report = gc::collect(&storage, &opts).await?;
            for d in &report.blobs_deleted {
                println!("{} {d}", if dry_run { "would delete" } else { "deleted" });
            }
            println!(
                "marked {} blobs, {} {} blobs ({} bytes), {} manifests, {} uploads",
                report.blobs_marked,
                if dry_run { "would delete" } else { "deleted" },
                report.blobs_deleted.len(),
                report.bytes_freed,
                report.manifests_deleted,
                report.uploads_removed
            );
            Ok(())
        }
        None => {
            let handle = berth_registry::start(&config).await?;
            println!("listening on {}", handle.url());
            wait_for_signal().await?;
            tracing::info!("shutting down");
            handle.stop_with_grace(Duration::from_secs(10)).await;
            Ok(())
        }
    }
}
