//! Errors of this crate. Every profile error names the offending field with a JSON-path-like
//! location (`linux.seccomp.syscalls[3].names[0]`) so that a user can find it in config.json.

use std::path::PathBuf;

/// Failure to parse, convert, compile or cache a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile is well-formed JSON but says something we cannot (or must not) do.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },

    /// The profile JSON does not match the expected schema (unknown action, arch, operator...).
    #[error("{field}: {reason}")]
    Parse { field: String, reason: String },

    /// libseccomp rejected an operation that the profile validation accepted.
    #[error("libseccomp: {context}: {source}")]
    Libseccomp {
        context: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },

    /// The generated program does not fit in a kernel filter (BPF_MAXINSNS) or is malformed.
    #[error("BPF program: {0}")]
    Program(String),

    /// Reading or writing a file (export memfd, cache file, listener socket).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A cache file exists but is damaged; the caller recompiles (never surfaced by `FilterCache`).
    #[error("cache file {path}: {reason}")]
    CorruptCache { path: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn seccomp(
        context: impl Into<String>,
        source: libseccomp::error::SeccompError,
    ) -> Self {
        Error::Libseccomp {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
