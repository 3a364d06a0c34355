//! Errors of registry operations; each names the registry-side or local cause.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error("registry {registry}: {what}: HTTP {status}{}", body_suffix(.body))]
    Status {
        registry: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("{registry}: unauthorized: {reason}")]
    Unauthorized { registry: String, reason: String },
    #[error("{0}: manifest unknown")]
    ManifestUnknown(String),
    /// `reason` carries the whole source chain (a TLS verification failure sits three levels
    /// below hyper's "client error (Connect)").
    #[error("http request to {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("invalid registry response: {0}")]
    Protocol(String),
    #[error("download of {digest} failed after {attempts} attempts: {reason}")]
    DownloadFailed {
        digest: String,
        attempts: u32,
        reason: String,
    },
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialsError),
    #[error("background task failed: {0}")]
    Task(String),
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", body.chars().take(300).collect::<String>())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with all its sources, `a: b: c`.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
