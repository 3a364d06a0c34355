#![recursion_limit = "256"]
//! berth-api: the Docker Engine API (1.24–1.50) over HTTP, mapped onto `berth-engine`.

pub mod error;
pub mod filters;
pub mod hijack;
pub mod routes;
pub mod server;
pub mod stream;
pub mod version;

pub use server::{serve, Listener};

/// The newest Engine API version served, and the oldest accepted.
pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";
