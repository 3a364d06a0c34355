//! berth-monitor CONFIG_JSON_PATH — see the crate's README.md.

use std::process::ExitCode;

// musl's malloc unmaps freed memory at once; a short-lived process that builds and
// drops its command tree and parsed config pays an mmap/munmap pair per burst.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(config), None) = (args.next(), args.next()) else {
        eprintln!("usage: berth-monitor CONFIG_JSON_PATH");
        return ExitCode::from(2);
    };
    let code = berth_monitor::run(std::path::Path::new(&config));
    ExitCode::from(code.clamp(0, 255) as u8)
}
