//! `commit`: a new image from a container's changes, as `docker commit`.

use anyhow::bail;
use clap::Args;
use serde_json::Value;

use super::{out, Ctx};
use crate::client::Query;
use crate::reference::Reference;

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    // A Go bool flag: `-p`/`--pause` alone is true, a value needs `=`, so
    // `--pause false` never swallows the container argument.
    #[arg(
        short = 'p',
        long,
        value_name = "BOOL",
        default_value = "true",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = go_bool,
    )]
    pub pause: bool,
    /// Container (name or ID)
    pub container: String,
    /// New image name: REPOSITORY[:TAG]
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Go's `strconv.ParseBool`, which docker's bool flags use.
fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("parse error on {s:?}: invalid syntax")),
    }
}

/// The `repo` and `tag` query values for a reference: the familiar name and
/// `latest` when no tag is given, as docker's client sends them.
fn repo_and_tag(reference: &str) -> anyhow::Result<(String, String)> {
    let r = Reference::parse(reference)?;
    if r.digest.is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    let repo = if r.domain == "docker.io" {
        r.familiar_repo()
    } else {
        r.repo()
    };
    Ok((repo, r.tag.unwrap_or_else(|| "latest".into())))
}

fn query(a: &CommitArgs) -> anyhow::Result<Query> {
    let (repo, tag) = match a.reference.as_deref() {
        Some(r) => repo_and_tag(r)?,
        None => (String::new(), String::new()),
    };
    let mut q = Query::new()
        .set("container", a.container.clone())
        .set("repo", repo)
        .set("tag", tag)
        .set("comment", a.message.clone().unwrap_or_default())
        .set("author", a.author.clone().unwrap_or_default());
    for c in &a.changes {
        q = q.set("changes", c.clone());
    }
    // The daemon pauses by default; docker only says so when it should not.
    if !a.pause {
        q = q.set("pause", "0");
    }
    Ok(q)
}

pub async fn commit(ctx: &Ctx, a: CommitArgs) -> anyhow::Result<()> {
    let q = query(&a)?;
    let v: Value = ctx.client.post_json("/commit", &q, None).await?;
    out(&format!("{}\n", v["Id"].as_str().unwrap_or("")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CommitArgs,
    }

    fn parse(args: &[&str]) -> CommitArgs {
        T::try_parse_from(std::iter::once("commit").chain(args.iter().copied()))
            .map(|t| t.a)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn pairs(q: &Query) -> String {
        q.encode()
    }

    #[test]
    fn flags_become_the_query_docker_sends() {
        let a = parse(&[
            "-a",
            "me",
            "-c",
            "CMD [\"sh\"]",
            "--change",
            "ENV A=b",
            "-m",
            "msg",
            "box",
            "example/X",
        ]);
        let e = query(&a).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid reference format: repository name (example/X) must be lowercase")
        );
        let a = parse(&["-c", "ENV A=b", "--pause=false", "box", "busybox"]);
        let q = pairs(&query(&a).unwrap());
        assert_eq!(
            q,
            "container=box&repo=busybox&tag=latest&comment=&author=&changes=ENV%20A%3Db&pause=0"
        );
        let a = parse(&["-p", "box", "127.0.0.1:5000/x/y:v1"]);
        assert!(a.pause);
        assert_eq!(
            pairs(&query(&a).unwrap()),
            "container=box&repo=127.0.0.1%3A5000%2Fx%2Fy&tag=v1&comment=&author="
        );
        let a = parse(&["box"]);
        assert!(a.pause);
        assert_eq!(
            pairs(&query(&a).unwrap()),
            "container=box&repo=&tag=&comment=&author="
        );
        let a = parse(&["-p=0", "box"]);
        assert!(!a.pause);
    }

    #[test]
    fn digest_references_are_refused() {
        let d = format!("busybox@sha256:{}", "a".repeat(64));
        let a = parse(&["box", &d]);
        let e = query(&a).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("refusing to create a tag with a digest reference")
        );
    }
}
