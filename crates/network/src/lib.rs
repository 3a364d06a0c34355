//! Berth's container networking: Docker's bridge networks on Linux.
//!
//! - [`NetworkManager`]: networks (create/list/inspect/remove/prune), endpoints
//!   (connect/disconnect), IPAM, published ports (DNAT rules plus a userland proxy),
//!   an embedded DNS server per user-defined network, state persisted per network.
//! - [`create_netns`] / [`remove_netns`]: the named network namespace of a container.
//! - [`files`]: `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` for containers.
//!
//! Namespace switches only ever happen on dedicated threads (see [`netns`]), so the
//! library is safe to call from any tokio worker of the daemon.

mod config;
pub mod dns;
mod error;
pub mod files;
mod ipam;
mod link;
mod manager;
pub mod netns;
mod nft;
mod proxy;
mod release;
mod store;
mod types;
mod util;

pub use config::NetConfig;
pub use error::{NetError, Result};
pub use ipam::IpamV4;
pub use manager::{NetworkManager, PREDEFINED};
pub use netns::{create_netns, in_netns, in_netns_blocking, remove_netns};
pub use nft::list_table as nft_list_table;
pub use types::*;
