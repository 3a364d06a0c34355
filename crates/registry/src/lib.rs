//! berth-registry: an OCI distribution registry server (distribution spec v1.1).
//!
//! [`server::start`] runs one from a [`config::Config`]; the routes live in [`routes`], the
//! storage behind the [`storage::Storage`] trait, authentication in [`auth`] and garbage
//! collection in [`gc`].

pub mod auth;
pub mod config;
pub mod digest;
pub mod error;
pub mod gc;
pub mod loopback;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod routes;
pub mod server;
pub mod storage;
pub mod zerocopy;

pub use config::Config;
pub use server::{start, ServeError, ServerHandle};
