//! Credentials from a docker CLI config: `auths` entries, `credsStore` and `credHelpers` run
//! as real `docker-credential-*` executables (shell scripts on PATH), and their use for a
//! push and pull through a token-authenticating proxy (Basic → token, and identity token →
//! OAuth2 POST).
//!
//! One test function: it sets PATH and DOCKER_CONFIG, which are process-wide.

mod common;

use berth_distribution::credentials::DOCKER_HUB_SERVER;
use berth_distribution::{ClientOptions, CredentialsError, DockerConfig, RegistryClient};
use berth_image::{ImageService, Reference};
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

fn helper(dir: &Path, name: &str, script: &str) {
    let p = dir.join(format!("docker-credential-{name}"));
    fs::write(&p, format!("#!/bin/sh\n{script}")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn docker_config_files_and_credential_helpers() {
    let reg = Registry::start();
    let rt = rt();
    let (proxy, _) = rt.block_on(auth_proxy(reg.addr.clone()));
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).unwrap();

    // Each helper checks the protocol: `get`, the server address alone on stdin.
    helper(
        &bin,
        "berthtest",
        &format!(
            r#"[ "$1" = get ] || {{ echo "unsupported: $1" >&2; exit 2; }}
server=$(cat)
case "$server" in
  "{proxy}") printf '{{"ServerURL":"%s","Username":"alice","Secret":"secret"}}\n' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#
        ),
    );
    helper(
        &bin,
        "berthtok",
        &format!(
            r#"[ "$1" = get ] && [ "$(cat)" = "{proxy}" ] || exit 3
printf '{{"ServerURL":"{proxy}","Username":"<token>","Secret":"{REFRESH_TOKEN}"}}'
"#
        ),
    );
    helper(
        &bin,
        "berthstore",
        &format!(
            r#"server=$(cat)
if [ "$server" = "{DOCKER_HUB_SERVER}" ]; then echo '{{"Username":"hubuser","Secret":"hubpw"}}'; exit 0; fi
echo "credentials not found in native keychain"; exit 1
"#
        ),
    );
    helper(
        &bin,
        "broken",
        "cat >/dev/null; echo 'keychain is locked'; exit 1\n",
    );
    helper(&bin, "garbage", "cat >/dev/null; echo 'this is not json'\n");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", &path);

    // 1. auths entries only (no helpers).
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::write(
        plain.join("config.json"),
        format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "aHViOnB3"}},
                "http://{proxy}/": {{"auth": "YWxpY2U6c2VjcmV0"}}
            }}}}"#
        ),
    )
    .unwrap();
    let c = DockerConfig::load_from(&plain.join("config.json")).unwrap();
    let hub = c.get("docker.io").unwrap().unwrap();
    assert_eq!(
        (hub.username.as_str(), hub.password.as_str()),
        ("hub", "pw")
    );
    let mut opts = ClientOptions::default();
    assert!(c.apply_to(&proxy, &mut opts).unwrap());
    assert!(!c.apply_to("nothing.example", &mut opts).unwrap());
    push_and_pull(&rt, opts, &proxy, "auths");

    // 2. Helpers, found through $DOCKER_CONFIG.
    let helped = tmp.path().join("helped");
    fs::create_dir(&helped).unwrap();
    fs::write(
        helped.join("config.json"),
        format!(
            r#"{{
                "auths": {{"https://index.docker.io/v1/": {{}}, "{proxy}": {{}}}},
                "credsStore": "berthstore",
                "credHelpers": {{
                    "{proxy}": "berthtest",
                    "tok.example": "berthtok",
                    "broken.example": "broken",
                    "garbage.example": "garbage",
                    "missing.example": "nosuchhelper"
                }}
            }}"#
        ),
    )
    .unwrap();
    std::env::set_var("DOCKER_CONFIG", &helped);
    let c = DockerConfig::load().unwrap();
    // credsStore serves what has no helper of its own.
    let hub = c.get("docker.io").unwrap().unwrap();
    assert_eq!(
        (hub.username.as_str(), hub.password.as_str()),
        ("hubuser", "hubpw")
    );
    assert_eq!(c.get("other.example").unwrap(), None);
    let a = c.get(&proxy).unwrap().unwrap();
    assert_eq!(
        (a.username.as_str(), a.password.as_str()),
        ("alice", "secret")
    );

    let e = c.get("broken.example").unwrap_err();
    assert!(matches!(e, CredentialsError::HelperFailed { .. }), "{e}");
    assert!(e.to_string().contains("keychain is locked"), "{e}");
    assert!(e.to_string().contains("docker-credential-broken"), "{e}");
    let e = c.get("garbage.example").unwrap_err();
    assert!(e.to_string().contains("invalid answer"), "{e}");
    let e = c.get("missing.example").unwrap_err();
    assert!(matches!(e, CredentialsError::HelperMissing { .. }), "{e}");
    assert!(
        e.to_string().contains("docker-credential-nosuchhelper") && e.to_string().contains("PATH"),
        "{e}"
    );

    let mut opts = ClientOptions::default();
    assert!(c.apply_to(&proxy, &mut opts).unwrap());
    push_and_pull(&rt, opts, &proxy, "helper");

    // 3. An identity token from a helper: exchanged by an OAuth2 POST at the token server.
    fs::write(
        helped.join("config.json"),
        format!(r#"{{"credHelpers": {{"{proxy}": "berthtok"}}}}"#),
    )
    .unwrap();
    let c = DockerConfig::load().unwrap();
    assert_eq!(
        c.get(&proxy).unwrap().unwrap().identity_token.as_deref(),
        Some(REFRESH_TOKEN)
    );
    let mut opts = ClientOptions::default();
    assert!(c.apply_to(&proxy, &mut opts).unwrap());
    assert!(opts.credentials.is_empty());
    push_and_pull(&rt, opts, &proxy, "token");

    // A wrong identity token is refused with the token server's word.
    let opts = ClientOptions {
        identity_tokens: [(proxy.clone(), "wrong".to_string())].into(),
        ..Default::default()
    };
    let Err(err) = try_push(&rt, opts, &proxy, "wrongtoken") else {
        panic!("a wrong identity token was accepted");
    };
    assert!(err.contains("identity token"), "{err}");
}

fn try_push(
    rt: &tokio::runtime::Runtime,
    opts: ClientOptions,
    registry: &str,
    repo: &str,
) -> Result<
    (
        tempfile::TempDir,
        Arc<ImageService>,
        RegistryClient,
        Reference,
    ),
    String,
> {
    let client = RegistryClient::new(opts).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    svc.load(fs::File::open(anchors().join("busybox-docker.tar")).unwrap())
        .unwrap();
    let target: Reference = format!("{registry}/creds/{repo}:v1").parse().unwrap();
    rt.block_on(client.push(svc.clone(), "busybox", &target, &|_| {}))
        .map_err(|e| e.to_string())?;
    Ok((tmp, svc, client, target))
}

fn push_and_pull(rt: &tokio::runtime::Runtime, opts: ClientOptions, registry: &str, repo: &str) {
    let (_keep, _, client, target) = try_push(rt, opts, registry, repo).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let svc = Arc::new(ImageService::open(tmp.path()).unwrap());
    let rec = rt.block_on(client.pull(svc, &target, &|_| {})).unwrap();
    assert_eq!(rec.id, busybox_config());
}
