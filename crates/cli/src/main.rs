//! `berth`: Berth's Docker-compatible client. It speaks only the Docker Engine
//! API, to berthd or to any dockerd.

mod auth;
mod client;
mod cmd;
mod format;
mod progress;
mod reference;
mod tty;

use std::process::ExitCode;

use clap::Parser;

// musl's malloc unmaps freed memory at once; a short-lived process that builds and
// drops its command tree and parsed config pays an mmap/munmap pair per burst.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(cmd::main(cli));
    // Blocking stdin readers may still be parked in the runtime: don't wait for them.
    rt.shutdown_background();
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn init_logging(cli: &cmd::Cli) {
    let level = if cli.debug {
        "debug".to_string()
    } else {
        cli.log_level.clone().unwrap_or_else(|| "warn".into())
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
