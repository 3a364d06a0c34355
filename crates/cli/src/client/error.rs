use std::fmt;

/// Everything that can go wrong talking to an Engine API daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid host {0:?}: expected unix:///path, tcp://host:port or fd://")]
    InvalidHost(String),
    /// The socket could not be reached: the daemon is not running (or not there).
    #[error("Cannot connect to the Berth daemon at {host}. Is berthd running?")]
    Connect {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("error during connect: {0}")]
    Http(#[from] hyper::Error),
    #[error("invalid request: {0}")]
    Request(#[from] http::Error),
    /// The daemon answered with an error status; `message` is its own words.
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    #[error("cannot decode the daemon's answer: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An error reported inside a JSON progress stream (pull, push, load, build).
    #[error("{0}")]
    Stream(String),
    #[error("the daemon did not switch protocols for {0} (status {1})")]
    NoUpgrade(String, StatusDisplay),
}

#[derive(Debug)]
pub struct StatusDisplay(pub u16);

impl fmt::Display for StatusDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl ClientError {
    /// HTTP status of a daemon error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;
