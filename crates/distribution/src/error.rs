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
    #[error("registry {0} needs TLS, which this client does not speak yet; mark it insecure to use plain HTTP")]
    TlsUnsupported(String),
    #[error("http request to {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid registry response: {0}")]
    Protocol(String),
    #[error("download of {digest} failed after {attempts} attempts: {reason}")]
    DownloadFailed {
        digest: String,
        attempts: u32,
        reason: String,
    },
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
