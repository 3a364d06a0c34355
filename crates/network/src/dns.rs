//! The embedded DNS server of user-defined networks (Docker's 127.0.0.11, done here as
//! UDP and TCP listeners on the network's gateway address in the host namespace).
//!
//! It answers A queries for container names, network aliases and short container IDs of
//! the networks the asking container shares, and forwards every other question unchanged
//! to the host's resolvers, over the transport it came by: a resolver that got a
//! truncated answer over UDP asks again over TCP (RFC 7766), and the relay does the same
//! upstream.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// TTL of answers about containers: they come and go, so keep caches short.
const TTL: u32 = 600;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a TCP client may keep a connection open without asking anything.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once per network; more wait in the kernel's backlog.
const TCP_CONNECTIONS: usize = 64;

#[derive(Debug, Clone)]
struct Entry {
    container_id: String,
    names: Vec<String>,
    ip: Ipv4Addr,
}

/// Who is reachable under which name, per network; shared by all DNS servers of a manager.
#[derive(Debug, Default)]
pub(crate) struct DnsTable {
    networks: HashMap<String, Vec<Entry>>,
}

pub(crate) type SharedTable = Arc<RwLock<DnsTable>>;

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsTable {
    /// Registers a container on a network under `names` (empty names are skipped).
    pub fn add(&mut self, network: &str, container_id: &str, names: &[String], ip: Ipv4Addr) {
        let names = names
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| normalize(n))
            .collect();
        let entries = self.networks.entry(network.to_string()).or_default();
        entries.retain(|e| e.container_id != container_id);
        entries.push(Entry {
            container_id: container_id.to_string(),
            names,
            ip,
        });
    }

    pub fn remove(&mut self, network: &str, container_id: &str) {
        if let Some(entries) = self.networks.get_mut(network) {
            entries.retain(|e| e.container_id != container_id);
        }
    }

    pub fn remove_network(&mut self, network: &str) {
        self.networks.remove(network);
    }

    /// Looks `name` up on the networks the container at `src` belongs to (the server's own
    /// network first); a source that is no known container sees only the server's network.
    fn lookup(&self, own: &str, src: Ipv4Addr, name: &str) -> Option<Ipv4Addr> {
        let name = normalize(name);
        let asker = self
            .networks
            .get(own)
            .and_then(|es| es.iter().find(|e| e.ip == src))
            .map(|e| e.container_id.clone());
        let mut nets: Vec<&str> = vec![own];
        if let Some(asker) = &asker {
            for (net, es) in &self.networks {
                if net != own && es.iter().any(|e| &e.container_id == asker) {
                    nets.push(net);
                }
            }
        }
        nets.iter()
            .filter_map(|n| self.networks.get(*n))
            .flat_map(|es| es.iter())
            .find(|e| e.names.contains(&name))
            .map(|e| e.ip)
    }
}

/// A running DNS listener (UDP and TCP); dropping it stops it and its connections.
#[derive(Debug)]
pub(crate) struct DnsServer {
    udp: JoinHandle<()>,
    tcp: JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.udp.abort();
        self.tcp.abort();
    }
}

/// What every query of one server needs.
struct Ctx {
    network: String,
    table: SharedTable,
    upstreams: Vec<SocketAddr>,
}

/// How a question came, and so how it is relayed.
#[derive(Clone, Copy)]
enum Transport {
    Udp,
    Tcp,
}

impl Ctx {
    /// A question that is not ours: each upstream in turn, over the question's transport,
    /// until one answers; SERVFAIL when none does (None only for a packet that does not
    /// parse).
    async fn relay(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        for &up in &self.upstreams {
            let answer = match transport {
                Transport::Udp => tokio::time::timeout(FORWARD_TIMEOUT, ask_udp(packet, up)).await,
                Transport::Tcp => tokio::time::timeout(FORWARD_TIMEOUT, ask_tcp(packet, up)).await,
            };
            if let Ok(Ok(reply)) = answer {
                return Some(reply);
            }
        }
        error_reply(packet, ResponseCode::ServFail)
    }

    /// The local answer for `packet` from `src`, if the name is ours.
    fn local(&self, src: IpAddr, packet: &[u8]) -> Option<Vec<u8>> {
        let src = match src {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        self.table
            .read()
            .ok()
            .and_then(|t| answer_locally(&t, &self.network, src, packet))
    }
}

impl DnsServer {
    pub async fn start(
        bind: SocketAddrV4,
        network: String,
        table: SharedTable,
        upstreams: Vec<SocketAddr>,
    ) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        let listener = TcpListener::bind(bind).await?;
        let ctx = Arc::new(Ctx {
            network,
            table,
            upstreams,
        });
        Ok(DnsServer {
            udp: tokio::spawn(serve_udp(socket, ctx.clone())),
            tcp: tokio::spawn(serve_tcp(listener, ctx)),
        })
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, ctx: Arc<Ctx>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dns receive failed");
                continue;
            }
        };
        let packet = buf[..n].to_vec();
        match ctx.local(peer.ip(), &packet) {
            Some(reply) => {
                let _ = socket.send_to(&reply, peer).await;
            }
            None => {
                let socket = socket.clone();
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Some(reply) = ctx.relay(&packet, Transport::Udp).await {
                        let _ = socket.send_to(&reply, peer).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>) {
    // Dropped with this task: aborting the server closes its connections too.
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        if conns.len() >= TCP_CONNECTIONS {
            conns.join_next().await;
            continue;
        }
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dns accept failed");
                continue;
            }
        };
        conns.spawn(serve_tcp_conn(stream, peer.ip(), ctx.clone()));
    }
}

/// One TCP client: length-prefixed questions, answered in order, until it hangs up or
/// idles out.
async fn serve_tcp_conn(mut stream: TcpStream, src: IpAddr, ctx: Arc<Ctx>) {
    loop {
        let packet = match tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await {
            Ok(Ok(p)) => p,
            _ => return,
        };
        let reply = match ctx.local(src, &packet) {
            Some(r) => Some(r),
            None => ctx.relay(&packet, Transport::Tcp).await,
        };
        let Some(reply) = reply else { return };
        if write_framed(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

/// A DNS message with its two-byte length prefix (RFC 1035 4.2.2).
async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await? as usize;
    let mut packet = vec![0u8; len];
    stream.read_exact(&mut packet).await?;
    Ok(packet)
}

async fn write_framed(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "DNS message too long")
    })?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).await
}

/// The reply for a question about a container, or None when it is not ours to answer.
fn answer_locally(
    table: &DnsTable,
    network: &str,
    src: Ipv4Addr,
    packet: &[u8],
) -> Option<Vec<u8>> {
    let req = Message::from_vec(packet).ok()?;
    if req.metadata.message_type != MessageType::Query || req.metadata.op_code != OpCode::Query {
        return None;
    }
    let [query] = req.queries.as_slice() else {
        return None;
    };
    let ip = table.lookup(network, src, &query.name().to_ascii())?;
    let mut resp = Message::response(req.metadata.id, OpCode::Query);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.add_query(query.clone());
    // A known name asked for another type (AAAA...) gets an empty NOERROR, as Docker does,
    // so resolvers fall back to the A answer instead of failing.
    if query.query_type() == RecordType::A {
        resp.add_answer(Record::from_rdata(
            query.name().clone(),
            TTL,
            RData::A(A(ip)),
        ));
    }
    resp.to_vec().ok()
}

fn error_reply(packet: &[u8], code: ResponseCode) -> Option<Vec<u8>> {
    let req = Message::from_vec(packet).ok()?;
    let mut resp = Message::error_msg(req.metadata.id, req.metadata.op_code, code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.add_queries(req.queries.iter().cloned());
    resp.to_vec().ok()
}

/// The raw question to one upstream over UDP, and its answer.
async fn ask_udp(packet: &[u8], up: SocketAddr) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if up.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(up).await?;
    sock.send(packet).await?;
    let mut buf = vec![0u8; 4096];
    let n = sock.recv(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

/// The question to one upstream over TCP, and its answer.
async fn ask_tcp(packet: &[u8], up: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(up).await?;
    write_framed(&mut s, packet).await?;
    read_framed(&mut s).await
}

/// Builds an A question for `name` (used by tests and tools that probe the server).
pub fn build_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let name = hickory_proto::rr::Name::from_ascii(name).ok()?;
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(hickory_proto::op::Query::query(name, RecordType::A));
    msg.to_vec().ok()
}

/// The response code and A addresses of a DNS reply.
pub fn parse_a_answers(packet: &[u8]) -> Option<(u16, Vec<Ipv4Addr>)> {
    let msg = Message::from_vec(packet).ok()?;
    let ips = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    Some((u16::from(msg.metadata.response_code), ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_follows_shared_networks() {
        let mut t = DnsTable::default();
        let web = Ipv4Addr::new(10, 0, 1, 2);
        let app_a = Ipv4Addr::new(10, 0, 1, 3);
        let app_b = Ipv4Addr::new(10, 0, 2, 3);
        let db = Ipv4Addr::new(10, 0, 2, 4);
        t.add("a", "c-web", &["web".into(), "www".into()], web);
        t.add("a", "c-app", &["app".into()], app_a);
        t.add("b", "c-app", &["app".into()], app_b);
        t.add("b", "c-db", &["DB".into()], db);
        assert_eq!(t.lookup("a", app_a, "WWW."), Some(web));
        // app is on both networks, so it resolves db through the server of network a.
        assert_eq!(t.lookup("a", app_a, "db"), Some(db));
        // web is only on a: db stays invisible to it.
        assert_eq!(t.lookup("a", web, "db"), None);
        t.remove("b", "c-db");
        assert_eq!(t.lookup("b", app_b, "db"), None);
    }

    #[test]
    fn local_answer_round_trip() {
        let mut t = DnsTable::default();
        t.add("n", "c1", &["web".into()], Ipv4Addr::new(10, 0, 0, 2));
        let q = build_query(7, "web.").unwrap();
        let reply = answer_locally(&t, "n", Ipv4Addr::new(10, 0, 0, 9), &q).unwrap();
        let (code, ips) = parse_a_answers(&reply).unwrap();
        assert_eq!(code, 0);
        assert_eq!(ips, vec![Ipv4Addr::new(10, 0, 0, 2)]);
        let q = build_query(8, "elsewhere.example.").unwrap();
        assert!(answer_locally(&t, "n", Ipv4Addr::new(10, 0, 0, 9), &q).is_none());
        let err = error_reply(&q, ResponseCode::ServFail).unwrap();
        assert_eq!(parse_a_answers(&err).unwrap().0, 2);
    }
}
