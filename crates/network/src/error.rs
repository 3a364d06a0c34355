//! Typed errors of the networking library.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Everything that can go wrong in `berth-network`.
///
/// Messages follow Docker's wording where a user would see them through the Engine API.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network with name {0} already exists")]
    DuplicateName(String),
    #[error("network name or id prefix {0:?} matches more than one network")]
    Ambiguous(String),
    #[error("invalid network name {0:?}")]
    InvalidName(String),
    #[error("driver {0:?} is not supported (only \"bridge\")")]
    UnsupportedDriver(String),
    #[error("invalid subnet {0:?}: only IPv4 CIDR subnets with a prefix of /30 or shorter are supported")]
    InvalidSubnet(String),
    #[error("invalid {what} {value:?}")]
    InvalidValue { what: &'static str, value: String },
    #[error("gateway {gateway} is not inside subnet {subnet}")]
    GatewayOutsideSubnet { gateway: Ipv4Addr, subnet: String },
    #[error("ip range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: String, subnet: String },
    #[error("invalid pool request: subnet {subnet} overlaps with {with}")]
    Overlap { subnet: String, with: String },
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    PoolExhausted,
    #[error("no available IPv4 addresses on network {0}")]
    AddressesExhausted(String),
    #[error("address {ip} is not inside the allocatable range of network {network}")]
    AddressOutOfRange { ip: Ipv4Addr, network: String },
    #[error("address {ip} is already in use on network {network}")]
    AddressInUse { ip: Ipv4Addr, network: String },
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    ActiveEndpoints { name: String, id: String },
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    #[error(
        "container cannot be connected to or disconnected from network {0}: it has no endpoints"
    )]
    NoEndpoints(String),
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyConnected { container: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    #[error("network {network} is internal: ports cannot be published")]
    InternalNoPorts { network: String },
    #[error("failed to bind host port {addr}/{proto}: address already in use")]
    PortInUse { addr: String, proto: &'static str },
    #[error("failed to bind host port {addr}/{proto}: {source}")]
    PortBind {
        addr: String,
        proto: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netlink connection: {0}")]
    NetlinkConnection(#[source] std::io::Error),
    #[error("nftables: {0}")]
    Nft(String),
    #[error("network namespace {path}: {op}: {source}")]
    Netns {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {source}")]
    CorruptState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("worker thread failed: {0}")]
    Worker(String),
}

impl NetError {
    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        NetError::Netlink {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when a netlink request failed because the object already exists (EEXIST).
    pub(crate) fn is_netlink_errno(err: &rtnetlink::Error, errno: i32) -> bool {
        match err {
            rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get()) == Some(-errno),
            _ => false,
        }
    }
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;
