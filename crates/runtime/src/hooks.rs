//! OCI hooks: each runs with the container's state JSON on stdin, its own
//! args and env, and an optional timeout after which it is killed.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

pub fn run_all(kind: &'static str, hooks: Option<&Vec<Hook>>, state_json: &[u8]) -> Result<()> {
    for h in hooks.into_iter().flatten() {
        run(kind, h, state_json)?;
    }
    Ok(())
}

/// For poststart and poststop: a failure is logged and the remaining hooks
/// and the lifecycle go on, as the runtime spec asks.
pub fn run_all_warn(kind: &'static str, hooks: Option<&Vec<Hook>>, state_json: &[u8]) {
    for h in hooks.into_iter().flatten() {
        if let Err(e) = run(kind, h, state_json) {
            tracing::warn!("{e}");
        }
    }
}

pub fn run(kind: &'static str, hook: &Hook, state_json: &[u8]) -> Result<()> {
    let fail = |reason: String| Error::Hook {
        kind,
        path: hook.path().clone(),
        reason,
    };
    let args = hook.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .envs(
            hook.env()
                .iter()
                .flatten()
                .filter_map(|e| e.split_once('=')),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores stdin and exits early closes the pipe: that is
        // not an error of ours.
        let _ = stdin.write_all(state_json);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                hook.timeout().unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let reason = match status.signal() {
            // Go's wording ("signal: bad system call"), which runc prints.
            Some(sig) => format!("signal: {}", signal_name(sig)),
            None => format!("exit status {}", status.code().unwrap_or(-1)),
        };
        return Err(fail(reason));
    }
    Ok(())
}

/// strsignal(3), lower-cased: "bad system call", "killed".
fn signal_name(sig: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local
    // string, read at once.
    let p = unsafe { libc::strsignal(sig) };
    if p.is_null() {
        return sig.to_string();
    }
    // SAFETY: non-null, NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .to_lowercase()
}
