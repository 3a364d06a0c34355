//! berth-distribution: pull and push images from and to registries speaking the OCI
//! distribution protocol, into and out of a `berth_image::ImageService`.
//!
//! Async (tokio) because it is network-bound; all file work runs on blocking threads.

pub mod auth;
pub mod client;
pub mod credentials;
pub mod error;
pub mod progress;
mod pull;
mod push;

pub use auth::Credentials;
pub use client::{ClientOptions, RegistryClient};
pub use credentials::{CredentialsError, DockerConfig, StoredAuth};
pub use error::{Error, Result};
pub use progress::Progress;
