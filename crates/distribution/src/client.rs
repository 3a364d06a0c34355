//! The HTTP side: one pooled hyper client (HTTPS with rustls/ring, system roots plus extra
//! CAs; plain HTTP for loopback and registries marked insecure, as Docker treats them), the
//! registry endpoint for a domain, auth retries and redirects.

use crate::auth::{parse_challenge, query_escape, Challenge, Credentials};
use crate::error::{Error, Result};
use berth_image::manifest::Platform;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `host[:port]` of insecure registries: HTTPS without certificate verification, and
    /// plain HTTP when the TLS handshake fails (as Docker's `insecure-registries`).
    pub insecure_registries: Vec<String>,
    /// Loopback registries are insecure (Docker's default) unless this is false.
    pub plain_http_loopback: bool,
    /// PEM CA certificates trusted besides the system's (`/etc/docker/certs.d` style).
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Credentials by registry `host[:port]`.
    pub credentials: HashMap<String, Credentials>,
    /// OAuth2 refresh tokens (`identitytoken` of a docker config) by registry `host[:port]`,
    /// exchanged at the registry's token server.
    pub identity_tokens: HashMap<String, String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    /// Attempts per blob download, resuming with `Range` after a dropped connection.
    pub download_attempts: u32,
    /// Upload blobs in chunks of this size (PATCH) instead of one PUT.
    pub chunk_size: Option<usize>,
    pub platform: Platform,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            plain_http_loopback: true,
            extra_ca_pem: Vec::new(),
            credentials: HashMap::new(),
            identity_tokens: HashMap::new(),
            max_concurrent_downloads: 6,
            max_concurrent_uploads: 5,
            download_attempts: 5,
            chunk_size: None,
            platform: Platform::host(),
        }
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

pub struct RegistryClient {
    http: HttpClient,
    /// For insecure registries: certificates are not verified.
    http_unverified: HttpClient,
    pub(crate) opts: ClientOptions,
    /// `http` or `https` by insecure registry host, once a probe has decided.
    schemes: Mutex<HashMap<String, &'static str>>,
    /// Authorization header values by (registry, scope).
    tokens: Mutex<HashMap<(String, String), CachedAuth>>,
}

/// An Authorization header value and, for a Bearer token, until when it is sent.
#[derive(Clone)]
struct CachedAuth {
    value: String,
    fresh_until: Option<Instant>,
}

impl CachedAuth {
    fn fresh(&self) -> bool {
        self.fresh_until.is_none_or(|t| Instant::now() < t)
    }
}

/// How long a token is sent: its lifetime less a fifth (at most 10 s), so that a request
/// (or a streamed upload) does not start with a token about to expire. The token spec
/// gives 60 s to a token that does not say.
fn token_deadline(expires_in: Option<u64>) -> Instant {
    let life = Duration::from_secs(expires_in.filter(|&s| s > 0).unwrap_or(60));
    Instant::now() + life - (life / 5).min(Duration::from_secs(10))
}

pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub(crate) fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// What a request needs: registry, scope for token auth, and the request itself.
pub(crate) struct Call<'a> {
    pub registry: &'a str,
    pub scope: &'a str,
    pub method: Method,
    pub url: String,
    pub headers: Vec<(HeaderName, String)>,
    /// Re-sent after an auth challenge, so it must be cheap to clone.
    pub body: Option<Bytes>,
}

impl RegistryClient {
    pub fn new(opts: ClientOptions) -> Result<RegistryClient> {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are not fatal: extra CAs may be all that is needed.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        for pem in &opts.extra_ca_pem {
            use rustls::pki_types::pem::PemObject;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
            }
        }
        // An explicit provider: no process-wide default has to be installed first.
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(RegistryClient {
            http: http_client(tls),
            http_unverified: http_client(unverified),
            opts,
            tokens: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
        })
    }

    fn is_insecure(&self, host: &str) -> bool {
        let bare = host
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h);
        let loopback = bare == "localhost" || bare.starts_with("127.") || bare == "[::1]";
        (loopback && self.opts.plain_http_loopback)
            || self.opts.insecure_registries.iter().any(|r| r == host)
    }

    /// `https://host:port`, or for an insecure registry whose TLS handshake fails,
    /// `http://host:port` (decided once per client by a probe of `/v2/`, as Docker pings).
    pub async fn endpoint(&self, domain: &str) -> Result<String> {
        let host = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        if !self.is_insecure(host) {
            return Ok(format!("https://{host}"));
        }
        let known = self
            .schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .copied();
        let scheme = match known {
            Some(s) => s,
            None => {
                let s = self.probe_https(host).await;
                self.schemes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(host.to_string(), s);
                s
            }
        };
        Ok(format!("{scheme}://{host}"))
    }

    /// `https` when `https://host/v2/` answers anything at all, else `http`.
    async fn probe_https(&self, host: &str) -> &'static str {
        let url = format!("https://{host}/v2/");
        let req = match Request::get(&url).body(empty()) {
            Ok(r) => r,
            Err(_) => return "https",
        };
        match tokio::time::timeout(PROBE_TIMEOUT, self.raw(req)).await {
            Ok(Ok(_)) => "https",
            Ok(Err(e)) => {
                tracing::info!(registry = host, error = %e, "insecure registry: HTTPS failed, using plain HTTP");
                "http"
            }
            Err(_) => {
                tracing::info!(
                    registry = host,
                    "insecure registry: HTTPS timed out, using plain HTTP"
                );
                "http"
            }
        }
    }

    pub(crate) fn cached_auth_pub(&self, registry: &str, scope: &str) -> Option<String> {
        self.cached_auth(registry, scope)
    }

    fn cached_auth(&self, registry: &str, scope: &str) -> Option<String> {
        let t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        [scope, ""]
            .iter()
            .filter_map(|s| t.get(&(registry.to_string(), s.to_string())))
            .find(|a| a.fresh())
            .map(|a| a.value.clone())
    }

    fn build(&self, call: &Call<'_>, auth: Option<&str>, body: Body) -> Result<Request<Body>> {
        let mut b = Request::builder()
            .method(call.method.clone())
            .uri(&call.url);
        for (k, v) in &call.headers {
            b = b.header(k, v);
        }
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(body).map_err(|e| Error::Http {
            url: call.url.clone(),
            reason: crate::error::chain(&e),
        })
    }

    pub(crate) async fn raw(&self, req: Request<Body>) -> Result<Response<Incoming>> {
        let url = req.uri().to_string();
        let insecure = req.uri().scheme_str() == Some("https")
            && req
                .uri()
                .authority()
                .is_some_and(|a| self.is_insecure(a.as_str()));
        let client = if insecure {
            &self.http_unverified
        } else {
            &self.http
        };
        client.request(req).await.map_err(|e| Error::Http {
            url,
            reason: crate::error::chain(&e),
        })
    }

    /// Sends a request, answering one auth challenge if the registry asks.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Response<Incoming>> {
        let body = || call.body.clone().map_or_else(empty, full);
        let auth = self.cached_auth(call.registry, call.scope);
        let resp = self
            .raw(self.build(&call, auth.as_deref(), body())?)
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| Error::Unauthorized {
                registry: call.registry.to_string(),
                reason: "401 without a usable WWW-Authenticate challenge".into(),
            })?;
        let auth = self
            .authorize(call.registry, call.scope, &challenge)
            .await?;
        let resp = self.raw(self.build(&call, Some(&auth), body())?).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                registry: call.registry.to_string(),
                reason: format!("credentials refused for {}", call.scope),
            });
        }
        Ok(resp)
    }

    /// Makes sure a token for `scope` is cached (a HEAD on the base endpoint would not say
    /// which scope is needed, so callers use a cheap request of their own).
    pub(crate) async fn authorize(
        &self,
        registry: &str,
        scope: &str,
        challenge: &Challenge,
    ) -> Result<String> {
        let creds = self.opts.credentials.get(registry);
        let (value, fresh_until) = match challenge {
            Challenge::Basic => (
                creds
                    .ok_or_else(|| Error::Unauthorized {
                        registry: registry.to_string(),
                        reason: "registry wants Basic auth and no credentials are configured"
                            .into(),
                    })?
                    .basic_header(),
                None,
            ),
            Challenge::Bearer {
                realm,
                service,
                scope: challenge_scope,
            } => {
                // Our scope (it may ask for more, e.g. pull on a mount source) goes first.
                let mut scopes: Vec<&str> = Vec::new();
                for s in scope.split(' ').chain(challenge_scope.as_deref()) {
                    if !s.is_empty() && !scopes.contains(&s) {
                        scopes.push(s);
                    }
                }
                let mut tok: Option<(String, Option<u64>)> = None;
                if let Some(refresh) = self.opts.identity_tokens.get(registry) {
                    tok = self
                        .oauth_token(registry, realm, service.as_deref(), &scopes, refresh)
                        .await?;
                }
                let (tok, expires_in) = match tok {
                    Some(t) => t,
                    None => {
                        self.basic_token(registry, realm, service.as_deref(), &scopes, creds)
                            .await?
                    }
                };
                (format!("Bearer {tok}"), Some(token_deadline(expires_in)))
            }
        };
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let key_scope = if matches!(challenge, Challenge::Basic) {
            ""
        } else {
            scope
        };
        t.insert(
            (registry.to_string(), key_scope.to_string()),
            CachedAuth {
                value: value.clone(),
                fresh_until,
            },
        );
        Ok(value)
    }

    /// A token by GET on the realm, with Basic credentials when there are some.
    async fn basic_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[&str],
        creds: Option<&Credentials>,
    ) -> Result<(String, Option<u64>)> {
        let mut params = Vec::new();
        if let Some(s) = service {
            params.push(format!("service={}", query_escape(s)));
        }
        for s in scopes {
            params.push(format!("scope={}", query_escape(s)));
        }
        let mut url = realm.to_string();
        if !params.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&params.join("&"));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::Protocol(format!("token realm {realm}: {e}")))?;
        let mut b = Request::get(uri);
        if let Some(c) = creds {
            b = b.header(AUTHORIZATION, c.basic_header());
        }
        let req = b.body(empty()).map_err(|e| Error::Http {
            url: url.clone(),
            reason: crate::error::chain(&e),
        })?;
        let resp = self.raw(req).await?;
        if !resp.status().is_success() {
            return Err(Error::Unauthorized {
                registry: registry.to_string(),
                reason: format!("token server {realm} answered {}", resp.status()),
            });
        }
        token_of(resp, &url).await
    }

    /// A token for an identity (refresh) token, by an OAuth2 POST on the realm. `None` when
    /// the token server has no OAuth2 endpoint (404/405): the caller falls back to GET.
    async fn oauth_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[&str],
        refresh: &str,
    ) -> Result<Option<(String, Option<u64>)>> {
        let mut form = vec![
            "grant_type=refresh_token".to_string(),
            format!("refresh_token={}", query_escape(refresh)),
            "client_id=berth".to_string(),
        ];
        if let Some(s) = service {
            form.push(format!("service={}", query_escape(s)));
        }
        if !scopes.is_empty() {
            form.push(format!("scope={}", query_escape(&scopes.join(" "))));
        }
        let req = Request::post(realm)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(full(Bytes::from(form.join("&"))))
            .map_err(|e| Error::Http {
                url: realm.to_string(),
                reason: crate::error::chain(&e),
            })?;
        let resp = self.raw(req).await?;
        match resp.status() {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => return Ok(None),
            s if !s.is_success() => {
                return Err(Error::Unauthorized {
                    registry: registry.to_string(),
                    reason: format!("token server {realm} refused the identity token: {s}"),
                })
            }
            _ => {}
        }
        token_of(resp, realm).await.map(Some)
    }

    /// GET that follows redirects (blob storage), dropping credentials when the host changes.
    pub(crate) async fn get_following(
        &self,
        call: Call<'_>,
        extra: Vec<(HeaderName, String)>,
    ) -> Result<Response<Incoming>> {
        let registry = call.registry.to_string();
        let scope = call.scope.to_string();
        let mut resp = self
            .send(Call {
                headers: [call.headers.clone(), extra.clone()].concat(),
                ..call
            })
            .await?;
        for _ in 0..5 {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let loc = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::Protocol("redirect without Location".into()))?
                .to_string();
            let uri: Uri = loc
                .parse()
                .map_err(|e| Error::Protocol(format!("redirect {loc}: {e}")))?;
            let same_host = uri.authority().is_none_or(|a| a.as_str() == registry);
            let mut b = Request::get(&loc);
            for (k, v) in &extra {
                b = b.header(k, v);
            }
            if same_host {
                if let Some(a) = self.cached_auth(&registry, &scope) {
                    b = b.header(AUTHORIZATION, a);
                }
            }
            let req = b.body(empty()).map_err(|e| Error::Http {
                url: loc.clone(),
                reason: crate::error::chain(&e),
            })?;
            resp = self.raw(req).await?;
        }
        Err(Error::Protocol("too many redirects".into()))
    }
}

const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

fn http_client(tls: rustls::ClientConfig) -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(conn);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(16)
        .build(https)
}

/// Accepts any certificate (insecure registries), still checking that the server holds the
/// key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The token of a token server's JSON answer (`token`, or OAuth2's `access_token`), and its
/// lifetime in seconds (`expires_in`) when the answer gives one.
async fn token_of(resp: Response<Incoming>, url: &str) -> Result<(String, Option<u64>)> {
    let body = read_limited(resp, 1 << 20, url).await?;
    #[derive(serde::Deserialize)]
    struct Token {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let t: Token = serde_json::from_slice(&body)
        .map_err(|e| Error::Protocol(format!("token response: {e}")))?;
    let token = t
        .token
        .filter(|t| !t.is_empty())
        .or(t.access_token)
        .ok_or_else(|| Error::Protocol("token response without token".into()))?;
    Ok((token, t.expires_in))
}

pub(crate) async fn read_limited(
    resp: Response<Incoming>,
    limit: usize,
    what: &str,
) -> Result<Bytes> {
    Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::Protocol(format!("{what}: {e}")))
}

/// Turns a non-success response into an error carrying the registry's message.
pub(crate) async fn check(
    resp: Response<Incoming>,
    registry: &str,
    what: &str,
) -> Result<Response<Incoming>> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let body = read_limited(resp, 64 * 1024, what)
        .await
        .unwrap_or_default();
    Err(Error::Status {
        registry: registry.to_string(),
        what: what.to_string(),
        status,
        body: String::from_utf8_lossy(&body).trim().to_string(),
    })
}

pub(crate) fn header_str(resp: &Response<Incoming>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}
