use thiserror::Error;

/// An engine failure, classified the way the Engine API reports it: the HTTP layer maps each
/// kind onto Docker's status code and puts the message in `{"message": ...}`.
#[derive(Debug, Error)]
pub enum Error {
    /// 404: no such container, image, network, volume or exec instance.
    #[error("{0}")]
    NotFound(String),
    /// 409: the object exists in a state that forbids the operation.
    #[error("{0}")]
    Conflict(String),
    /// 400: the request itself is wrong.
    #[error("{0}")]
    InvalidParameter(String),
    /// 304: nothing to do (start of a running container, stop of a stopped one).
    #[error("{0}")]
    NotModified(String),
    /// 403: forbidden by policy (e.g. removing a predefined network).
    #[error("{0}")]
    Forbidden(String),
    /// 401: the registry refused the credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 501.
    #[error("{0}")]
    NotImplemented(String),
    /// 500: everything else, with the cause in the message.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn internal(context: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
        Error::Internal(format!("{context}: {e}"))
    }
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidParameter(msg.into())
    }
    pub fn no_such_container(name: &str) -> Error {
        Error::NotFound(format!("No such container: {name}"))
    }
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::InvalidParameter(_) => 400,
            Error::NotModified(_) => 304,
            Error::Forbidden(_) => 403,
            Error::Unauthorized(_) => 401,
            Error::NotImplemented(_) => 501,
            Error::Internal(_) => 500,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<berth_image::Error> for Error {
    fn from(e: berth_image::Error) -> Self {
        use berth_image::Error as E;
        match &e {
            // Docker's wording: "No such image: busybox:latest".
            E::ImageNotFound(name) => Error::NotFound(format!("No such image: {name}")),
            E::SnapshotNotFound(_) | E::BlobNotFound(_) => Error::NotFound(e.to_string()),
            E::Conflict(_) => Error::Conflict(e.to_string()),
            E::InvalidReference { .. }
            | E::InvalidChange(_)
            | E::InvalidDigest(_)
            | E::InvalidArchive(_)
            | E::InvalidLayer(_)
            | E::UnsafePath { .. }
            | E::UserNotFound(_)
            | E::GroupNotFound(_)
            | E::Schema1(_)
            | E::UnsupportedManifest(_)
            | E::NoMatchingPlatform { .. } => Error::InvalidParameter(e.to_string()),
            _ => Error::Internal(e.to_string()),
        }
    }
}
