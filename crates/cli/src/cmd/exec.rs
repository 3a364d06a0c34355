//! `exec`: create an exec instance, start it on a hijacked connection, exit
//! with its status.

use clap::Args;
use serde_json::{json, Value};

use super::stdio::{self, StreamEnd, StreamOpts, DEFAULT_DETACH_KEYS};
use super::{Ctx, Fail};
use crate::client::Query;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    pub container: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub async fn exec(ctx: &Ctx, a: ExecArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f)?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    env.extend(a.env.iter().filter_map(|e| {
        if e.contains('=') {
            Some(e.clone())
        } else {
            std::env::var(e).ok().map(|v| format!("{e}={v}"))
        }
    }));
    if a.tty && a.interactive && !a.detach && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Fail {
            code: 1,
            msg: "the input device is not a TTY".into(),
        }
        .into());
    }
    let mut body = json!({
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "Cmd": a.command,
        "Env": env,
        "Privileged": a.privileged,
    });
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    if let Some(k) = &a.detach_keys {
        body["DetachKeys"] = json!(k);
    }
    let created: Value = client
        .post_json(
            &format!("/containers/{}/exec", a.container),
            &Query::new(),
            Some(&body),
        )
        .await?;
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    if a.detach {
        client
            .post(
                &format!("/exec/{id}/start"),
                &Query::new(),
                Some(&json!({"Detach": true, "Tty": a.tty})),
            )
            .await?;
        return Ok(());
    }
    let keys =
        crate::tty::parse_detach_keys(a.detach_keys.as_deref().unwrap_or(DEFAULT_DETACH_KEYS))?;
    let start = json!({"Detach": false, "Tty": a.tty});
    let raw = if a.tty && a.interactive {
        crate::tty::RawGuard::stdin()?
    } else {
        None
    };
    let io = match client
        .hijack(&format!("/exec/{id}/start"), &Query::new(), Some(&start))
        .await
    {
        Ok(io) => io,
        Err(e) => {
            drop(raw);
            return Err(Fail {
                code: 126,
                msg: e.to_string(),
            }
            .into());
        }
    };
    let resizer = a
        .tty
        .then(|| stdio::spawn_resizer(client.clone(), format!("/exec/{id}/resize")));
    let end = stdio::pump(
        io,
        &StreamOpts {
            tty: a.tty,
            stdin: a.interactive,
            detach_keys: keys,
        },
    )
    .await;
    if let Some(r) = resizer {
        r.abort();
    }
    drop(raw);
    let end = end?;
    if end != StreamEnd::Eof {
        return end.early_result();
    }
    let info: Value = client
        .get_json(&format!("/exec/{id}/json"), &Query::new())
        .await?;
    let code = info["ExitCode"].as_i64().unwrap_or(0) as i32;
    if code != 0 {
        return Err(Fail::exit(code));
    }
    Ok(())
}
