//! berth-monitor CONFIG_JSON_PATH — see the crate's README.md.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(config), None) = (args.next(), args.next()) else {
        eprintln!("usage: berth-monitor CONFIG_JSON_PATH");
        return ExitCode::from(2);
    };
    let code = berth_monitor::run(std::path::Path::new(&config));
    ExitCode::from(code.clamp(0, 255) as u8)
}
