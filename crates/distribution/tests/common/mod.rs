//! Shared by the registry tests: a private docker-registry per test, anchors, skopeo.
#![allow(dead_code)]

use berth_distribution::Progress;
use berth_image::Digest;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener as AsyncTcpListener;

pub fn require_tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("this test needs `{name}` installed");
}

pub fn anchors() -> PathBuf {
    let dir = PathBuf::from("/tmp/anchors-images");
    if !dir.join("busybox-docker.tar").exists() {
        let st = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/anchors/make-images.sh"
        ))
        .arg(&dir)
        .status()
        .expect("run make-images.sh");
        assert!(st.success(), "make-images.sh failed");
    }
    dir
}

pub fn busybox_config() -> Digest {
    let txt = fs::read_to_string(anchors().join("DIGESTS.txt")).unwrap();
    let line = txt
        .lines()
        .find(|l| l.starts_with("busybox config"))
        .unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// A private registry; killed and its storage removed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with("")
    }

    /// Accepts manifests whose foreign layers list http(s) URLs (docker-registry refuses
    /// any URL unless `validation.manifests.urls.allow` is set).
    pub fn start_allowing_foreign_urls() -> Registry {
        Self::start_full(
            "",
            "validation:\n  manifests:\n    urls:\n      allow:\n        - '^https?://'\n",
        )
    }

    /// Serves TLS with this certificate and key.
    pub fn start_tls(cert: &Path, key: &Path) -> Registry {
        Self::start_with(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ))
    }

    fn start_with(http_extra: &str) -> Registry {
        Self::start_full(http_extra, "")
    }

    /// `http_extra` goes into the `http:` section, `top_extra` at the top level.
    fn start_full(http_extra: &str, top_extra: &str) -> Registry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n{top_extra}storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{http_extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args(["serve", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(require_tool("skopeo"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn events() -> (Arc<Mutex<Vec<Progress>>>, impl Fn(Progress) + Send + Sync) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    (log, move |p| l2.lock().unwrap().push(p))
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub type Body = BoxBody<Bytes, hyper::Error>;

pub fn text(status: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(s.to_string()))
            .map_err(|n| match n {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

/// The identity (refresh) token the token server of `auth_proxy` accepts.
pub const REFRESH_TOKEN: &str = "refresh-xyz";

/// A token server on `/token` (GET with Basic alice:secret, or an OAuth2 POST with
/// `REFRESH_TOKEN` → a token) and an authenticating proxy for everything else, forwarding to
/// the registry. Returns its address and a count of token requests.
pub async fn auth_proxy(upstream: String) -> (String, Arc<AtomicUsize>) {
    let p = auth_proxy_with_lifetime(upstream, 300).await;
    (p.addr, p.token_requests)
}

pub struct AuthProxy {
    pub addr: String,
    pub token_requests: Arc<AtomicUsize>,
    /// Requests refused because their token had expired.
    pub expired_refused: Arc<AtomicUsize>,
}

/// `auth_proxy` whose tokens say they live `lifetime_s` seconds and are refused after.
pub async fn auth_proxy_with_lifetime(upstream: String, lifetime_s: u64) -> AuthProxy {
    let l = AsyncTcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let token_requests = Arc::new(AtomicUsize::new(0));
    let expired_refused = Arc::new(AtomicUsize::new(0));
    let epoch = Instant::now();
    // A token names the millisecond it was issued at.
    let issue = move || {
        format!(
            r#"{{"token":"tok-{}","expires_in":{lifetime_s}}}"#,
            epoch.elapsed().as_millis()
        )
    };
    let valid = move |auth: &str| -> Option<bool> {
        let issued: u128 = auth.strip_prefix("Bearer tok-")?.parse().ok()?;
        Some(epoch.elapsed().as_millis() < issued + u128::from(lifetime_s) * 1000)
    };
    let er = expired_refused.clone();
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
    let (addr2, tr) = (addr.clone(), token_requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (client, up, me, tr, er) = (
                client.clone(),
                upstream.clone(),
                addr2.clone(),
                tr.clone(),
                er.clone(),
            );
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (client, up, me, tr, er) = (
                        client.clone(),
                        up.clone(),
                        me.clone(),
                        tr.clone(),
                        er.clone(),
                    );
                    async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        if req.uri().path() == "/token" && req.method() == hyper::Method::POST {
                            tr.fetch_add(1, Ordering::SeqCst);
                            let form = req.into_body().collect().await?.to_bytes();
                            let form = String::from_utf8_lossy(&form).to_string();
                            let ok = form.split('&').any(|kv| kv == "grant_type=refresh_token")
                                && form
                                    .split('&')
                                    .any(|kv| kv == format!("refresh_token={REFRESH_TOKEN}"))
                                && form.contains("service=test-registry")
                                && form.contains("scope=repository");
                            return Ok(if ok {
                                text(
                                    StatusCode::OK,
                                    &issue().replace("\"token\"", "\"access_token\""),
                                )
                            } else {
                                text(StatusCode::UNAUTHORIZED, "bad refresh token")
                            });
                        }
                        if req.uri().path() == "/token" {
                            tr.fetch_add(1, Ordering::SeqCst);
                            // alice:secret
                            if auth != "Basic YWxpY2U6c2VjcmV0" {
                                return Ok::<_, hyper::Error>(text(
                                    StatusCode::UNAUTHORIZED,
                                    "bad credentials",
                                ));
                            }
                            let q = req.uri().query().unwrap_or_default();
                            if !q.contains("service=test-registry")
                                || !q.contains("scope=repository")
                            {
                                return Ok(text(
                                    StatusCode::BAD_REQUEST,
                                    "missing service or scope",
                                ));
                            }
                            return Ok(text(StatusCode::OK, &issue()));
                        }
                        let token_ok = valid(&auth);
                        if token_ok == Some(false) {
                            er.fetch_add(1, Ordering::SeqCst);
                        }
                        if req.uri().path().starts_with("/v2/") && token_ok != Some(true) {
                            let name = req
                                .uri()
                                .path()
                                .trim_start_matches("/v2/")
                                .split("/manifests/")
                                .next()
                                .unwrap_or("")
                                .split("/blobs/")
                                .next()
                                .unwrap_or("")
                                .to_string();
                            let mut r = text(
                                StatusCode::UNAUTHORIZED,
                                r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
                            );
                            r.headers_mut().insert(
                                "www-authenticate",
                                format!(r#"Bearer realm="http://{me}/token",service="test-registry",scope="repository:{name}:pull""#).parse().unwrap(),
                            );
                            return Ok(r);
                        }
                        let (mut parts, body) = req.into_parts();
                        let pq = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default();
                        parts.uri = format!("http://{up}{pq}").parse().unwrap();
                        parts.headers.remove("authorization");
                        let resp = client.request(Request::from_parts(parts, body)).await;
                        Ok(match resp {
                            Ok(r) => r.map(|b| b.boxed()),
                            Err(e) => text(StatusCode::BAD_GATEWAY, &e.to_string()),
                        })
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    AuthProxy {
        addr,
        token_requests,
        expired_refused,
    }
}
