//! A small Docker Engine API client: one HTTP/1.1 connection per request over a
//! unix socket or loopback TCP, API version negotiation through `/_ping`, JSON
//! helpers, streamed bodies and connection hijacking for attach and exec.
//!
//! It knows nothing of the command line so it can move to a shared crate.

mod body;
mod error;
pub mod stream;

use std::path::PathBuf;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use body::ReqBody;
pub use error::{ClientError, Result};

/// The newest Engine API version this client speaks.
pub const API_VERSION: &str = "1.50";
/// The oldest version it accepts when negotiating down (dockerd 20.10 speaks 1.41).
const MIN_API_VERSION: &str = "1.24";

pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
}

impl Host {
    pub fn parse(s: &str) -> Result<Host> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(ClientError::InvalidHost(s.to_string()));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        let rest = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        if rest.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(rest)));
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty()
            || rest.contains('/')
            || s.contains("://") && !s.starts_with("tcp://") && !s.starts_with("http://")
        {
            return Err(ClientError::InvalidHost(s.to_string()));
        }
        let hostport = if rest
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            rest.to_string()
        } else {
            format!("{rest}:2375")
        };
        Ok(Host::Tcp(hostport))
    }
}

/// A request's query string, built in order.
#[derive(Default, Debug, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(mut self, k: &str, v: impl Into<String>) -> Self {
        self.0.push((k.to_string(), v.into()));
        self
    }
    /// Adds `k=1` only when `b` is true (the daemon reads absent as false).
    pub fn flag(self, k: &str, b: bool) -> Self {
        if b {
            self.set(k, "1")
        } else {
            self
        }
    }
    pub fn opt(self, k: &str, v: Option<impl Into<String>>) -> Self {
        match v {
            Some(v) => self.set(k, v),
            None => self,
        }
    }
    /// The query string, percent-encoded, without the `?`.
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The hijacked connection of attach or exec: a plain byte stream both ways.
pub type Hijacked = TokioIo<hyper::upgrade::Upgraded>;

#[derive(Debug, Clone)]
pub struct Client {
    host: Host,
    host_url: String,
    version: String,
}

impl Client {
    /// A client for `host_url`; call [`Client::negotiate`] before use against
    /// daemons older than [`API_VERSION`].
    pub fn new(host_url: &str) -> Result<Client> {
        Ok(Client {
            host: Host::parse(host_url)?,
            host_url: host_url.to_string(),
            version: API_VERSION.to_string(),
        })
    }

    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// Pings the daemon and settles on the lower of its API version and ours,
    /// as the docker CLI does.
    pub async fn negotiate(&mut self) -> Result<()> {
        let req = self.request(Method::GET, "/_ping", None, &Query::new(), ReqBody::empty())?;
        let resp = self.send(req).await?;
        if let Some(v) = resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
        {
            if version_lt(v, API_VERSION) && !version_lt(v, MIN_API_VERSION) {
                self.version = v.to_string();
            }
        }
        Ok(())
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        version: Option<&str>,
        query: &Query,
        body: ReqBody,
    ) -> Result<Request<ReqBody>> {
        let mut uri = match version {
            Some(v) => format!("/v{v}{path}"),
            None => path.to_string(),
        };
        if !query.0.is_empty() {
            uri.push('?');
            uri.push_str(&query.encode());
        }
        let host = match &self.host {
            Host::Unix(_) => "api.moby.localhost".to_string(),
            Host::Tcp(h) => h.clone(),
        };
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, host)
            .header(
                header::USER_AGENT,
                concat!("Berth-Client/", env!("CARGO_PKG_VERSION"), " (linux)"),
            )
            .body(body)?;
        Ok(req)
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>> {
        let connect_err = |source| ClientError::Connect {
            host: self.host_url.clone(),
            source,
        };
        match &self.host {
            Host::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(connect_err)?;
                handshake(s).await
            }
            Host::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(connect_err)?;
                handshake(s).await
            }
        }
    }

    /// Sends a request on a fresh connection, whatever the answer's status.
    pub async fn send(&self, req: Request<ReqBody>) -> Result<Response<Incoming>> {
        let mut sender = self.connect().await?;
        tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
        Ok(sender.send_request(req).await?)
    }

    /// Sends a versioned API call; error statuses become [`ClientError::Daemon`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: ReqBody,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let mut req = self.request(method, path, Some(&self.version), query, body)?;
        for (k, v) in headers {
            req.headers_mut().insert(
                header::HeaderName::from_bytes(k.as_bytes()).map_err(http::Error::from)?,
                header::HeaderValue::from_str(v).map_err(http::Error::from)?,
            );
        }
        let resp = self.send(req).await?;
        check(resp).await
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &Query) -> Result<T> {
        let resp = self
            .call(Method::GET, path, query, ReqBody::empty(), &[])
            .await?;
        decode(resp).await
    }

    /// POSTs an optional JSON body and decodes the answer; an empty answer
    /// decodes as JSON `null`.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
        body: Option<&Value>,
    ) -> Result<T> {
        let resp = self.post(path, query, body).await?;
        decode(resp).await
    }

    pub async fn post(
        &self,
        path: &str,
        query: &Query,
        body: Option<&Value>,
    ) -> Result<Response<Incoming>> {
        let (body, headers) = json_body(body)?;
        self.call(Method::POST, path, query, body, &headers).await
    }

    pub async fn delete(&self, path: &str, query: &Query) -> Result<Response<Incoming>> {
        self.call(Method::DELETE, path, query, ReqBody::empty(), &[])
            .await
    }

    /// Hijacks the connection (attach, exec start): the daemon answers 101 and
    /// the socket then carries the container's streams.
    pub async fn hijack(
        &self,
        path: &str,
        query: &Query,
        body: Option<&Value>,
    ) -> Result<Hijacked> {
        let (body, _) = json_body(body)?;
        let mut req = self.request(Method::POST, path, Some(&self.version), query, body)?;
        let h = req.headers_mut();
        h.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("Upgrade"),
        );
        h.insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
        if matches!(req.body(), ReqBody::Full(Some(_))) {
            req.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
        }
        let resp = self.send(req).await?;
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let resp = check(resp).await?;
            return Err(ClientError::NoUpgrade(
                path.to_string(),
                error::StatusDisplay(resp.status().as_u16()),
            ));
        }
        let upgraded = hyper::upgrade::on(resp).await?;
        Ok(TokioIo::new(upgraded))
    }
}

async fn handshake<S>(s: S) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("connection ended: {e}");
        }
    });
    Ok(sender)
}

fn json_body(body: Option<&Value>) -> Result<(ReqBody, Vec<(&'static str, String)>)> {
    Ok(match body {
        Some(v) => (
            ReqBody::bytes(serde_json::to_vec(v)?),
            vec![("content-type", "application/json".to_string())],
        ),
        None => (ReqBody::empty(), vec![]),
    })
}

/// Turns an error status into [`ClientError::Daemon`] with the daemon's message.
pub async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_success() || status.is_informational() || status == StatusCode::NOT_MODIFIED {
        return Ok(resp);
    }
    let body = resp.into_body().collect().await?.to_bytes();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            let t = String::from_utf8_lossy(&body).trim().to_string();
            if t.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                t
            }
        });
    Err(ClientError::Daemon {
        status: status.as_u16(),
        message,
    })
}

pub async fn read_all(resp: Response<Incoming>) -> Result<Bytes> {
    Ok(resp.into_body().collect().await?.to_bytes())
}

async fn decode<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T> {
    let b = read_all(resp).await?;
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::from_value(Value::Null)?);
    }
    Ok(serde_json::from_slice(&b)?)
}

/// Compares dotted API versions numerically ("1.9" < "1.41").
pub fn version_lt(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a) < parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(
            matches!(Host::parse("unix:///run/x.sock"), Ok(Host::Unix(p)) if p.as_os_str() == "/run/x.sock")
        );
        assert!(
            matches!(Host::parse("tcp://127.0.0.1:2375"), Ok(Host::Tcp(a)) if a == "127.0.0.1:2375")
        );
        assert!(
            matches!(Host::parse("tcp://localhost"), Ok(Host::Tcp(a)) if a == "localhost:2375")
        );
        assert!(Host::parse("ssh://x").is_err());
        assert!(Host::parse("unix://").is_err());
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_lt("1.9", "1.41"));
        assert!(version_lt("1.41", "1.50"));
        assert!(!version_lt("1.50", "1.50"));
    }

    #[test]
    fn query_is_percent_encoded() {
        let q = Query::new()
            .set("filters", r#"{"a":["b c"]}"#)
            .flag("all", true)
            .flag("x", false);
        assert_eq!(
            q.encode(),
            "filters=%7B%22a%22%3A%5B%22b%20c%22%5D%7D&all=1"
        );
    }
}
