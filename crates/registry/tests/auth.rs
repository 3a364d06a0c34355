//! Authentication and per-repository permissions: htpasswd Basic and the Bearer token flow.

mod common;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};

use berth_registry::auth::htpasswd::make_entry;
use berth_registry::config::{AccessRule, AuthMode};

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

fn rule(repo: &str, users: &[&str], actions: &[&str]) -> AccessRule {
    AccessRule {
        repository: repo.into(),
        users: users.iter().map(|s| s.to_string()).collect(),
        actions: actions.iter().map(|s| s.to_string()).collect(),
    }
}

fn auth_config(dir: &std::path::Path, mode: AuthMode) -> Config {
    let htpasswd = dir.join("htpasswd");
    let lines = [
        make_entry("alice", "alice-pw", 4).unwrap(),
        make_entry("bob", "bob-pw", 4).unwrap(),
    ];
    std::fs::write(&htpasswd, lines.join("\n")).unwrap();
    let mut c = config(&dir.join("root"));
    c.auth.mode = mode;
    c.auth.htpasswd = Some(htpasswd);
    c.auth.access = vec![
        rule("team/*", &["alice"], &["pull", "push", "delete"]),
        rule("team/*", &["bob"], &["pull"]),
        rule("public/*", &["anonymous", "*"], &["pull"]),
        rule("public/*", &["alice"], &["push"]),
    ];
    c
}

#[tokio::test]
async fn htpasswd_basic_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(auth_config(dir.path(), AuthMode::Htpasswd)).await;
    let r = reg.get("/v2/").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    let alice = basic("alice", "alice-pw");
    let bob = basic("bob", "bob-pw");
    let r = reg.get_with("/v2/", &[("authorization", &alice)]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = reg
        .get_with("/v2/", &[("authorization", &basic("alice", "wrong"))])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let d = sha256(b"layer");
    let push = format!("/v2/team/app/blobs/uploads/?digest={d}");
    let r = reg
        .req(
            Method::POST,
            &push,
            &[("authorization", &alice)],
            Bytes::from_static(b"layer"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = reg
        .req(
            Method::POST,
            &push,
            &[("authorization", &bob)],
            Bytes::from_static(b"layer"),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "DENIED")
    );
    let r = reg
        .req(Method::POST, &push, &[], Bytes::from_static(b"layer"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let blob = format!("/v2/team/app/blobs/{d}");
    assert_eq!(
        reg.get_with(&blob, &[("authorization", &bob)]).await.status,
        StatusCode::OK
    );
    assert_eq!(reg.get(&blob).await.status, StatusCode::UNAUTHORIZED);
    let r = reg
        .req(
            Method::DELETE,
            &blob,
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code(), "DENIED");

    // Anonymous pull of public repositories.
    let pd = sha256(b"pub");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/public/x/blobs/uploads/?digest={pd}"),
            &[("authorization", &alice)],
            Bytes::from_static(b"pub"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        reg.get(&format!("/v2/public/x/blobs/{pd}")).await.status,
        StatusCode::OK
    );
    let r = reg
        .req(
            Method::POST,
            "/v2/public/x/blobs/uploads/",
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.code(), "DENIED");

    // Mounting needs pull on the source: bob cannot read "team", so alice... and anonymous
    // cannot mount at all; alice can.
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/public/y/blobs/uploads/?mount={d}&from=team/app"),
            &[("authorization", &alice)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        reg.get("/v2/_catalog").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = reg
        .get_with("/v2/_catalog", &[("authorization", &bob)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    reg.stop().await;
}

async fn token(reg: &Registry, auth: Option<&str>, scope: &str) -> (StatusCode, String) {
    let headers: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
    let r = reg
        .req(
            Method::GET,
            &format!("/token?service=berth-registry&scope={scope}"),
            &headers,
            Bytes::new(),
        )
        .await;
    (
        r.status,
        r.json()["token"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn bearer_token_flow() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start(auth_config(dir.path(), AuthMode::Token)).await;
    let r = reg.get("/v2/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.header("www-authenticate").unwrap().to_string();
    let host = reg.base.trim_start_matches("http://");
    assert_eq!(
        challenge,
        format!("Bearer realm=\"http://{host}/token\",service=\"berth-registry\"")
    );

    // docker login: a token without scopes proves the credentials.
    let alice = basic("alice", "alice-pw");
    let (st, login) = token(&reg, Some(&alice), "").await;
    assert_eq!(st, StatusCode::OK);
    let bearer = |t: &str| format!("Bearer {t}");
    let r = reg
        .get_with("/v2/", &[("authorization", &bearer(&login))])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (st, _) = token(&reg, Some(&basic("alice", "nope")), "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // A push without a token is challenged with the scope it needs.
    let r = reg
        .req(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("scope=\"repository:team/app:pull,push\""));
    let (_, t) = token(&reg, Some(&alice), "repository:team/app:pull,push").await;
    let r = reg
        .req(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[("authorization", &bearer(&t))],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // The same token does not reach another repository.
    let r = reg
        .req(
            Method::POST,
            "/v2/team/other/blobs/uploads/",
            &[("authorization", &bearer(&t))],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("insufficient_scope"));

    // bob asks for push and gets only pull.
    let bob = basic("bob", "bob-pw");
    let r = reg
        .get_with(
            "/token?service=berth-registry&scope=repository:team/app:pull,push",
            &[("authorization", &bob)],
        )
        .await;
    let tok = r.json()["token"].as_str().unwrap().to_string();
    let payload = tok.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["access"][0]["actions"], serde_json::json!(["pull"]));
    assert_eq!(claims["sub"], "bob");
    let r = reg
        .req(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[("authorization", &bearer(&tok))],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Anonymous pull of public repositories, through an anonymous token.
    let (st, anon) = token(&reg, None, "repository:public/x:pull").await;
    assert_eq!(st, StatusCode::OK);
    let r = reg
        .get_with(
            "/v2/public/x/tags/list",
            &[("authorization", &bearer(&anon))],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "authorized, repository simply empty"
    );
    let (_, anon_push) = token(&reg, None, "repository:public/x:push").await;
    let r = reg
        .req(
            Method::POST,
            "/v2/public/x/blobs/uploads/",
            &[("authorization", &bearer(&anon_push))],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Tampered and foreign tokens are rejected.
    let mut forged = t.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let r = reg
        .get_with("/v2/", &[("authorization", &bearer(&forged))])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = reg
        .get_with(
            "/token?service=elsewhere&scope=repository:team/app:pull",
            &[("authorization", &alice)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Catalog needs the registry:catalog:* scope.
    let r = reg
        .get_with("/v2/_catalog", &[("authorization", &bearer(&t))])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (_, ct) = token(&reg, Some(&alice), "registry:catalog:*").await;
    let r = reg
        .get_with("/v2/_catalog", &[("authorization", &bearer(&ct))])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    reg.stop().await;

    // Tokens survive a restart: the key is kept under the root.
    let reg = Registry::start(auth_config(dir.path(), AuthMode::Token)).await;
    let r = reg
        .get_with("/v2/", &[("authorization", &bearer(&login))])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    reg.stop().await;
}
