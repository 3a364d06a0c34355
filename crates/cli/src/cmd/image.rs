//! Image verbs: list, pull, push, remove, tag, load/save, import, history, prune.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::container::{confirm, stream_to_output};
use super::{filters_json, out, system, Ctx};
use crate::client::{Query, ReqBody};
use crate::format::{self, ellipsis, short_id, units};
use crate::progress::{self, Target};
use crate::reference::Reference;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ImageCmd {
    /// List images
    #[command(visible_aliases = ["list"])]
    Ls(ImagesArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Remove one or more images
    #[command(visible_aliases = ["remove"])]
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Display detailed information on one or more images
    Inspect(system::TypedInspectArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Remove unused images
    Prune(ImagePruneArgs),
}

pub async fn dispatch(ctx: &Ctx, c: ImageCmd) -> anyhow::Result<()> {
    match c {
        ImageCmd::Ls(a) => images(ctx, a).await,
        ImageCmd::Pull(a) => pull_cmd(ctx, a).await,
        ImageCmd::Push(a) => push(ctx, a).await,
        ImageCmd::Rm(a) => rmi(ctx, a).await,
        ImageCmd::Tag(a) => tag(ctx, a).await,
        ImageCmd::Inspect(a) => system::inspect_typed(ctx, a, "image").await,
        ImageCmd::Load(a) => load(ctx, a).await,
        ImageCmd::Save(a) => save(ctx, a).await,
        ImageCmd::Import(a) => import(ctx, a).await,
        ImageCmd::History(a) => history(ctx, a).await,
        ImageCmd::Prune(a) => prune(ctx, a).await,
    }
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// file|URL|- ; a file or `-` is streamed to the daemon
    pub source: String,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format (`-H` is the global host flag here)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_TABLE_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

pub fn images_header() -> Value {
    json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED", "Digest": "DIGEST",
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "SharedSize": "SHARED SIZE", "Size": "SIZE",
        "Tag": "TAG", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    })
}

fn image_rows(img: &Value, trunc: bool) -> Vec<Value> {
    let strs = |k: &str| -> Vec<String> {
        img[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let digests = strs("RepoDigests");
    let mut pairs: Vec<(String, String, String)> = Vec::new();
    for rt in strs("RepoTags") {
        if rt == "<none>:<none>" {
            continue;
        }
        let (repo, tag) = match rt.rfind(':') {
            Some(i) if !rt[i..].contains('/') => (rt[..i].to_string(), rt[i + 1..].to_string()),
            _ => (rt.clone(), "<none>".to_string()),
        };
        let digest = digests
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| *r == repo)
                    .map(|(_, d)| d.to_string())
            })
            .unwrap_or_else(|| "<none>".into());
        pairs.push((repo, tag, digest));
    }
    if pairs.is_empty() {
        for d in &digests {
            if let Some((repo, dg)) = d.split_once('@') {
                if repo != "<none>" {
                    pairs.push((repo.to_string(), "<none>".into(), dg.to_string()));
                }
            }
        }
    }
    if pairs.is_empty() {
        pairs.push(("<none>".into(), "<none>".into(), "<none>".into()));
    }
    pairs
        .into_iter()
        .map(|(repo, tag, digest)| image_row(img, trunc, &repo, &tag, &digest))
        .collect()
}

/// One listing row of an image under one of its names; sizes as docker's
/// image formatter shows them (the total to 3 significant digits, the rest to 4).
pub fn image_row(img: &Value, trunc: bool, repo: &str, tag: &str, digest: &str) -> Value {
    let id = img["Id"].as_str().unwrap_or("");
    let id = if trunc { short_id(id) } else { id.to_string() };
    let created = img["Created"].as_i64().unwrap_or(0);
    let size = img["Size"].as_f64().unwrap_or(0.0);
    let shared = img["SharedSize"].as_f64().unwrap_or(-1.0);
    let containers = match img["Containers"].as_i64() {
        Some(n) if n >= 0 => n.to_string(),
        _ => "N/A".to_string(),
    };
    let or_na = |known: bool, x: f64| {
        if known {
            units::human_size(x)
        } else {
            "N/A".to_string()
        }
    };
    json!({
        "Containers": containers,
        "CreatedAt": units::go_time_string(created),
        "CreatedSince": units::ago(created),
        "Digest": digest,
        "ID": id,
        "Repository": repo,
        "SharedSize": or_na(shared >= 0.0, shared),
        "Size": units::human_size_prec(size, 3),
        "Tag": tag,
        "UniqueSize": or_na(shared >= 0.0, size - shared),
        "VirtualSize": units::human_size(size),
    })
}

pub async fn images(ctx: &Ctx, a: ImagesArgs) -> anyhow::Result<()> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let q = Query::new()
        .flag("all", a.all)
        .flag("digests", a.digests)
        .opt("filters", filters_json(&filters)?);
    let list: Vec<Value> = ctx.client.get_json("/images/json", &q).await?;
    let rows: Vec<Value> = list
        .iter()
        .flat_map(|i| image_rows(i, !a.no_trunc))
        .collect();
    let format = if a.quiet {
        Some("{{.ID}}".to_string())
    } else {
        a.format.clone()
    };
    let table = if a.digests {
        IMAGES_TABLE_DIGESTS
    } else {
        IMAGES_TABLE
    };
    out(&format::render_rows(
        format.as_deref(),
        table,
        &images_header(),
        &rows,
    )?);
    Ok(())
}

/// The auth header for a registry; `{}` when none is stored (old dockerd
/// refuses a push without the header).
async fn auth_headers(ctx: &Ctx, r: &Reference) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut h = ctx.registry_auth(r)?;
    if h.is_empty() {
        h.push(("x-registry-auth", "e30=".to_string()));
    }
    Ok(h)
}

/// Pulls `r`, showing progress on `target`.
pub async fn pull(
    ctx: &Ctx,
    r: &Reference,
    platform: Option<&str>,
    quiet: bool,
    target: Target,
) -> anyhow::Result<()> {
    let q = Query::new()
        .set("fromImage", r.repo())
        .set("tag", r.tag_or_digest())
        .opt("platform", platform.map(str::to_string));
    let headers = auth_headers(ctx, r).await?;
    let resp = ctx
        .client
        .call(
            http::Method::POST,
            "/images/create",
            &q,
            ReqBody::empty(),
            &headers,
        )
        .await?;
    progress::show(resp, target, quiet).await?;
    Ok(())
}

pub async fn pull_cmd(ctx: &Ctx, a: PullArgs) -> anyhow::Result<()> {
    let r = Reference::parse(&a.image)?;
    if a.all_tags {
        let q = Query::new()
            .set("fromImage", r.repo())
            .opt("platform", a.platform.clone());
        let headers = auth_headers(ctx, &r).await?;
        let resp = ctx
            .client
            .call(
                http::Method::POST,
                "/images/create",
                &q,
                ReqBody::empty(),
                &headers,
            )
            .await?;
        progress::show(resp, Target::Stdout, a.quiet).await?;
        out(&format!("{}\n", r.repo()));
        return Ok(());
    }
    if r.tag.is_none() && r.digest.is_none() && !a.quiet {
        out("Using default tag: latest\n");
    }
    pull(ctx, &r, a.platform.as_deref(), a.quiet, Target::Stdout).await?;
    out(&format!("{}\n", r.full()));
    Ok(())
}

pub async fn push(ctx: &Ctx, a: PushArgs) -> anyhow::Result<()> {
    let r = Reference::parse(&a.image)?;
    if r.tag.is_none() && !a.all_tags && !a.quiet {
        out("Using default tag: latest\n");
    }
    let tag = if a.all_tags {
        None
    } else {
        Some(r.tag.clone().unwrap_or_else(|| "latest".into()))
    };
    let name = if r.domain == "docker.io" {
        r.familiar_repo()
    } else {
        r.repo()
    };
    let q = Query::new().opt("tag", tag);
    let headers = auth_headers(ctx, &r).await?;
    let resp = ctx
        .client
        .call(
            http::Method::POST,
            &format!("/images/{name}/push"),
            &q,
            ReqBody::empty(),
            &headers,
        )
        .await?;
    progress::show(resp, Target::Stdout, a.quiet).await?;
    if a.quiet {
        out(&format!("{}\n", a.image));
    }
    Ok(())
}

pub async fn rmi(ctx: &Ctx, a: RmiArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    let q = Query::new()
        .flag("force", a.force)
        .flag("noprune", a.no_prune);
    let q = &q;
    super::for_each(&a.images, |img| async move {
        let resp = client.delete(&format!("/images/{img}"), q).await?;
        let v: Value = serde_json::from_slice(&crate::client::read_all(resp).await?)?;
        let mut lines = Vec::new();
        for item in v.as_array().into_iter().flatten() {
            if let Some(u) = item["Untagged"].as_str() {
                lines.push(format!("Untagged: {u}"));
            }
            if let Some(d) = item["Deleted"].as_str() {
                lines.push(format!("Deleted: {d}"));
            }
        }
        Ok((!lines.is_empty()).then(|| lines.join("\n")))
    })
    .await
}

pub async fn tag(ctx: &Ctx, a: TagArgs) -> anyhow::Result<()> {
    let r = Reference::parse(&a.target)?;
    if r.digest.is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    let repo = if r.domain == "docker.io" {
        r.familiar_repo()
    } else {
        r.repo()
    };
    let q = Query::new()
        .set("repo", repo)
        .set("tag", r.tag.clone().unwrap_or_else(|| "latest".into()));
    ctx.client
        .post(&format!("/images/{}/tag", a.source), &q, None)
        .await?;
    Ok(())
}

async fn file_or_stdin(path: Option<&PathBuf>, what: &str) -> anyhow::Result<ReqBody> {
    Ok(match path {
        Some(p) if p.as_os_str() != "-" => {
            let f = tokio::fs::File::open(p)
                .await
                .with_context(|| format!("open {}", p.display()))?;
            ReqBody::reader(f)
        }
        _ => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                bail!("requested {what} from stdin, but stdin is empty");
            }
            ReqBody::reader(tokio::io::stdin())
        }
    })
}

pub async fn load(ctx: &Ctx, a: LoadArgs) -> anyhow::Result<()> {
    let body = file_or_stdin(a.input.as_ref(), "load").await?;
    let q = Query::new().flag("quiet", a.quiet);
    let resp = ctx
        .client
        .call(
            http::Method::POST,
            "/images/load",
            &q,
            body,
            &[("content-type", "application/x-tar".into())],
        )
        .await?;
    // With quiet, the daemon still reports "Loaded image" lines: docker shows those.
    progress::show(resp, Target::Stdout, false).await?;
    Ok(())
}

pub async fn save(ctx: &Ctx, a: SaveArgs) -> anyhow::Result<()> {
    if a.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut q = Query::new();
    for i in &a.images {
        q = q.set("names", i.clone());
    }
    let resp = ctx
        .client
        .call(http::Method::GET, "/images/get", &q, ReqBody::empty(), &[])
        .await?;
    stream_to_output(resp, a.output.as_ref()).await
}

pub async fn import(ctx: &Ctx, a: ImportArgs) -> anyhow::Result<()> {
    let mut q = Query::new();
    let body = if a.source.contains("://") {
        q = q.set("fromSrc", a.source.clone());
        ReqBody::empty()
    } else {
        q = q.set("fromSrc", "-");
        file_or_stdin(Some(&PathBuf::from(&a.source)), "import").await?
    };
    if let Some(r) = &a.reference {
        let r = Reference::parse(r)?;
        let repo = if r.domain == "docker.io" {
            r.familiar_repo()
        } else {
            r.repo()
        };
        q = q.set("repo", repo).opt("tag", r.tag.clone());
    }
    q = q
        .opt("message", a.message.clone())
        .opt("platform", a.platform.clone());
    for c in &a.change {
        q = q.set("changes", c.clone());
    }
    let resp = ctx
        .client
        .call(http::Method::POST, "/images/create", &q, body, &[])
        .await?;
    progress::show(resp, Target::Stdout, false).await?;
    Ok(())
}

pub async fn history(ctx: &Ctx, a: HistoryArgs) -> anyhow::Result<()> {
    let list: Vec<Value> = ctx
        .client
        .get_json(&format!("/images/{}/history", a.image), &Query::new())
        .await?;
    let trunc = !a.no_trunc;
    let rows: Vec<Value> = list
        .iter()
        .map(|h| {
            let id = h["Id"].as_str().unwrap_or("<missing>");
            let id = if id == "<missing>" || !trunc { id.to_string() } else { short_id(id) };
            let created = h["Created"].as_i64().unwrap_or(0);
            let by = h["CreatedBy"].as_str().unwrap_or("").replace('\t', " ");
            let by = if trunc { ellipsis(&by, 45) } else { by };
            let size = h["Size"].as_f64().unwrap_or(0.0);
            json!({
                "Comment": h["Comment"].as_str().unwrap_or(""),
                "CreatedAt": if a.human { units::go_time_string(created) } else { created.to_string() },
                "CreatedBy": by,
                "CreatedSince": if created <= 0 {
                    "N/A".to_string()
                } else if a.human {
                    units::ago(created)
                } else {
                    units::go_time_string(created)
                },
                "ID": id,
                "Size": if a.human { units::human_size_prec(size, 3) } else { (size as i64).to_string() },
            })
        })
        .collect();
    let header = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
    let format = if a.quiet {
        Some("{{.ID}}".to_string())
    } else {
        a.format.clone()
    };
    out(&format::render_rows(
        format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &header,
        &rows,
    )?);
    Ok(())
}

pub async fn prune(ctx: &Ctx, a: ImagePruneArgs) -> anyhow::Result<()> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !confirm(warning, a.force) {
        return Ok(());
    }
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("dangling=false".into());
    }
    let q = Query::new().opt("filters", filters_json(&filters)?);
    let v: Value = ctx.client.post_json("/images/prune", &q, None).await?;
    let mut s = String::new();
    let deleted = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        s.push_str("Deleted Images:\n");
        for d in deleted {
            if let Some(u) = d["Untagged"].as_str() {
                s.push_str(&format!("untagged: {u}\n"));
            }
            if let Some(x) = d["Deleted"].as_str() {
                s.push_str(&format!("deleted: {x}\n"));
            }
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        units::human_size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    ));
    out(&s);
    Ok(())
}
