//! Test helpers: an in-process server on 127.0.0.1:0 and a tiny HTTP client.
#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Digest as _;

pub use berth_registry::{Config, ServerHandle};

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The first spec error code of an error body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub struct Registry {
    pub handle: Option<ServerHandle>,
    pub base: String,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

pub fn config(root: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        root: root.to_path_buf(),
        ..Config::default()
    }
}

impl Registry {
    pub async fn start(config: Config) -> Registry {
        let handle = berth_registry::start(&config)
            .await
            .expect("start registry");
        let base = handle.url();
        Registry {
            handle: Some(handle),
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.stop().await;
        }
    }

    pub async fn req(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into())).expect("request");
        let resp = self.client.request(req).await.expect("send request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("read body")
            .to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.req(Method::GET, path, headers, Bytes::new()).await
    }

    pub async fn head(&self, path: &str) -> Resp {
        self.req(Method::HEAD, path, &[], Bytes::new()).await
    }

    /// Monolithic push; returns the digest string.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = sha256(data);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[("content-type", "application/octet-stream")],
                Bytes::copy_from_slice(data),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "push blob: {:?}", r.body);
        d
    }

    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Resp {
        self.req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type)],
            Bytes::copy_from_slice(body),
        )
        .await
    }

    /// Pushes a config and one layer and returns an OCI image manifest over them.
    pub async fn push_image(&self, repo: &str, seed: &str) -> (Vec<u8>, String) {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
        let layer = format!("layer-{seed}").repeat(100);
        let cd = self.push_blob(repo, config.as_bytes()).await;
        let ld = self.push_blob(repo, layer.as_bytes()).await;
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        let d = sha256(m.as_bytes());
        (m.into_bytes(), d)
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A configuration with Docker's token flow and one user, alice (password `alice-pw`), whose
/// storage and htpasswd live under `dir`.
pub fn token_auth_config(dir: &Path) -> Config {
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        berth_registry::auth::htpasswd::make_entry("alice", "alice-pw", 4).expect("bcrypt"),
    )
    .expect("write htpasswd");
    let mut c = config(&dir.join("root"));
    c.auth.mode = berth_registry::config::AuthMode::Token;
    c.auth.htpasswd = Some(htpasswd);
    c
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

pub fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// Fails the test with a clear message when a tool it needs is missing.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{name}` on PATH (install it; the test does not skip)"
    );
}
