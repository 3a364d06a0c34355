//! A small Docker Engine API client: one HTTP/1.1 connection per request over a
//! unix socket or loopback TCP, API version negotiation, JSON helpers, streamed
//! bodies and connection hijacking for attach and exec.
//!
//! The version is settled optimistically: the first call goes out with this
//! client's newest version, and only a daemon that refuses it as too new costs a
//! `/_ping` and a second try. Every command saves a round trip against a current
//! daemon; a body that cannot be sent twice (a stream) is sent after a ping.
//!
//! It knows nothing of the command line so it can move to a shared crate.

mod body;
mod error;
pub mod stream;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    version: Arc<Mutex<Version>>,
}

#[derive(Debug)]
struct Version {
    current: String,
    /// The daemon has taken `current` (or a ping chose it).
    settled: bool,
}

/// What an unsettled call's answer means for the version.
enum Answer {
    Response(Response<Incoming>),
    /// A 400 that refuses our version as too new, or one that cannot say (the
    /// answer to a HEAD has no body): a ping tells, and a lower version means a
    /// second try.
    MaybeTooNew(ClientError),
}

impl Client {
    /// A client for `host_url`. Its calls settle the API version with the
    /// daemon (see the module's comment).
    pub fn new(host_url: &str) -> Result<Client> {
        Ok(Client {
            host: Host::parse(host_url)?,
            host_url: host_url.to_string(),
            version: Arc::new(Mutex::new(Version {
                current: API_VERSION.to_string(),
                settled: false,
            })),
        })
    }

    fn version_state(&self) -> std::sync::MutexGuard<'_, Version> {
        // The state is two plain fields: a panic elsewhere cannot leave them torn.
        self.version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version calls use now: before the first answer, this client's own.
    pub fn api_version(&self) -> String {
        self.version_state().current.clone()
    }

    fn settled(&self) -> bool {
        self.version_state().settled
    }

    /// Pings the daemon and settles on the lower of its API version and ours,
    /// as the docker CLI does.
    pub async fn negotiate(&self) -> Result<()> {
        let req = self.request(Method::GET, "/_ping", None, &Query::new(), ReqBody::empty())?;
        let resp = self.send(req).await?;
        let theirs = resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .filter(|v| version_lt(v, API_VERSION) && !version_lt(v, MIN_API_VERSION))
            .map(str::to_string);
        let mut st = self.version_state();
        if let Some(v) = theirs {
            st.current = v;
        }
        st.settled = true;
        Ok(())
    }

    /// Pings unless the version is settled: for callers that choose what to
    /// send by the daemon's version.
    pub async fn ensure_negotiated(&self) -> Result<()> {
        if self.settled() {
            return Ok(());
        }
        self.negotiate().await
    }

    /// Sends `build()`'s request with the current version; a daemon that
    /// refuses it as too new gets a ping and the request again. `build` makes
    /// the request for a version, so it can be made twice.
    async fn send_settling(
        &self,
        build: impl Fn(&str) -> Result<Request<ReqBody>>,
    ) -> Result<Response<Incoming>> {
        let settled = self.settled();
        let sent = self.api_version();
        let resp = self.send(build(&sent)?).await?;
        if settled {
            return Ok(resp);
        }
        match self.settle(resp).await? {
            Answer::Response(resp) => Ok(resp),
            Answer::MaybeTooNew(refusal) => {
                self.negotiate().await?;
                let now = self.api_version();
                if now == sent {
                    return Err(refusal);
                }
                self.send(build(&now)?).await
            }
        }
    }

    /// Reads the first answer of an unsettled client: any answer but a version
    /// refusal settles the version in use.
    async fn settle(&self, resp: Response<Incoming>) -> Result<Answer> {
        if resp.status() != StatusCode::BAD_REQUEST {
            self.version_state().settled = true;
            return Ok(Answer::Response(resp));
        }
        let body = read_all(resp).await?;
        let message = error_message(StatusCode::BAD_REQUEST, &body);
        let refusal = ClientError::Daemon {
            status: StatusCode::BAD_REQUEST.as_u16(),
            message,
        };
        // moby's words: "client version 1.50 is too new. Maximum supported API version is 1.41"
        let text = String::from_utf8_lossy(&body);
        if body.iter().all(u8::is_ascii_whitespace) || text.contains("is too new") {
            return Ok(Answer::MaybeTooNew(refusal));
        }
        Err(refusal)
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
        let with_headers = |mut req: Request<ReqBody>| -> Result<Request<ReqBody>> {
            for (k, v) in headers {
                req.headers_mut().insert(
                    header::HeaderName::from_bytes(k.as_bytes()).map_err(http::Error::from)?,
                    header::HeaderValue::from_str(v).map_err(http::Error::from)?,
                );
            }
            Ok(req)
        };
        let resp = match body {
            ReqBody::Full(bytes) => {
                self.send_settling(|v| {
                    with_headers(self.request(
                        method.clone(),
                        path,
                        Some(v),
                        query,
                        ReqBody::Full(bytes.clone()),
                    )?)
                })
                .await?
            }
            stream @ ReqBody::Stream(_) => {
                self.ensure_negotiated().await?;
                let req = self.request(method, path, Some(&self.api_version()), query, stream)?;
                self.send(with_headers(req)?).await?
            }
        };
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
        let bytes = body.map(serde_json::to_vec).transpose()?.map(Bytes::from);
        let resp = self
            .send_settling(|v| {
                let mut req = self.request(
                    Method::POST,
                    path,
                    Some(v),
                    query,
                    ReqBody::Full(bytes.clone()),
                )?;
                let h = req.headers_mut();
                h.insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("Upgrade"),
                );
                h.insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
                if bytes.is_some() {
                    h.insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/json"),
                    );
                }
                Ok(req)
            })
            .await?;
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
    Err(ClientError::Daemon {
        status: status.as_u16(),
        message: error_message(status, &body),
    })
}

/// The daemon's `{"message": …}`, its plain text, or the status's name.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            let t = String::from_utf8_lossy(body).trim().to_string();
            if t.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                t
            }
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
