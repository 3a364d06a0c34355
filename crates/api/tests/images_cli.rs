//! The image routes driven by the real docker CLI (and curl for exact bytes): load, list,
//! tag, inspect, history, save, rmi, import, prune, search, and push/pull against a loopback
//! docker-registry.

#[path = "images_harness.rs"]
mod harness;

use harness::{anchors, Daemon, Registry};

const BUSYBOX_ID: &str = "sha256:0d582582228d55c8c2c440d4970322705c961366e86fa0addb4c69ba161ad5ff";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tag_inspect_save_rmi_import_prune() {
    let d = Daemon::start().await;
    d.load_busybox().await;
    let rows = d
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .await;
    assert_eq!(rows.trim(), "busybox:latest 0d582582228d", "{rows}");

    d.ok(&["tag", "busybox", "my/bb:1"]).await;
    let rows = d
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await;
    let mut rows: Vec<&str> = rows.lines().collect();
    rows.sort();
    assert_eq!(rows, vec!["busybox:latest", "my/bb:1"]);
    let filtered = d
        .ok(&["images", "--format", "{{.Repository}}", "my/*"])
        .await;
    assert_eq!(filtered.trim(), "my/bb");

    let id = d
        .ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Os}} {{.RootFS.Type}}",
            "my/bb:1",
        ])
        .await;
    assert_eq!(id.trim(), format!("{BUSYBOX_ID} linux layers"));
    let hist = d
        .ok(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.CreatedBy}}",
            "busybox",
        ])
        .await;
    assert!(hist.starts_with(BUSYBOX_ID), "{hist}");
    assert!(hist.contains("make-images.sh"), "{hist}");

    let saved = d.dir.path().join("saved.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "busybox"])
        .await;
    assert!(std::fs::metadata(&saved).unwrap().len() > 1_000_000);

    let out = d.ok(&["rmi", "my/bb:1"]).await;
    assert_eq!(out.trim(), "Untagged: my/bb:1");
    let out = d.ok(&["rmi", "busybox"]).await;
    assert!(out.contains("Untagged: busybox:latest"), "{out}");
    assert!(out.contains(&format!("Deleted: {BUSYBOX_ID}")), "{out}");
    assert_eq!(d.ok(&["images", "-q"]).await.trim(), "");
    let missing = d.docker(&["rmi", "nothere"]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such image: nothere"));

    let out = d.ok(&["load", "-i", saved.to_str().unwrap()]).await;
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");

    // docker import from stdin, with a CMD change and a message.
    let layer = anchors().join("busybox-layer.tar.gz");
    let out = d
        .docker_stdin(
            &[
                "import",
                "-c",
                "CMD [\"sh\"]",
                "-m",
                "imported",
                "-",
                "imp:1",
            ],
            Some(&layer),
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imp_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(imp_id.starts_with("sha256:"), "{imp_id}");
    let cmd = d
        .ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Cmd}} {{.Comment}}",
            "imp:1",
        ])
        .await;
    assert_eq!(cmd.trim(), "[\"sh\"] imported");

    // Untagged import → dangling → pruned; busybox (tagged) stays.
    let out = d.docker_stdin(&["import", "-"], Some(&layer)).await;
    let dangling = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = d.ok(&["image", "prune", "-f"]).await;
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert!(out.contains("Total reclaimed space"), "{out}");
    let left = d.ok(&["images", "--format", "{{.Repository}}"]).await;
    let mut left: Vec<&str> = left.lines().collect();
    left.sort();
    assert_eq!(left, vec!["busybox", "imp"]);

    let (body, code) = d.curl(&["http://x/v1.47/images/search?term=busybox"]).await;
    assert_eq!(code, "501", "{body}");
    let (body, code) = d
        .curl(&[
            "-X",
            "POST",
            "http://x/images/create?fromSrc=http://example.com/x.tar",
        ])
        .await;
    assert_eq!(code, "400", "{body}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_through_a_local_registry() {
    let reg = Registry::start();
    let d = Daemon::start().await;
    d.load_busybox().await;
    let target = format!("{}/bb:v1", reg.addr);
    d.ok(&["tag", "busybox", &target]).await;

    let out = d.ok(&["push", &target]).await;
    assert!(
        out.contains(&format!("The push refers to repository [{}/bb]", reg.addr)),
        "{out}"
    );
    assert!(out.contains("Pushed"), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    let out = d.ok(&["push", &target]).await;
    assert!(out.contains("Layer already exists"), "{out}");

    d.ok(&["rmi", &target, "busybox"]).await;
    assert_eq!(d.ok(&["images", "-q"]).await.trim(), "");

    let out = d.ok(&["pull", &target]).await;
    assert!(out.contains("v1: Pulling from bb"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {target}")),
        "{out}"
    );
    let out = d.ok(&["pull", &target]).await;
    assert!(
        out.contains(&format!("Status: Image is up to date for {target}")),
        "{out}"
    );
    let id = d
        .ok(&["image", "inspect", "--format", "{{.Id}}", &target])
        .await;
    assert_eq!(id.trim(), BUSYBOX_ID);
    let digests = d
        .ok(&[
            "images",
            "--digests",
            "--format",
            "{{.Digest}}",
            &format!("{}/bb", reg.addr),
        ])
        .await;
    assert!(digests.trim().starts_with("sha256:"), "{digests}");

    // Unknown manifest: a plain 404 before any byte, in dockerd's words.
    let missing = d.docker(&["pull", &format!("{}/nope:x", reg.addr)]).await;
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("not found: manifest unknown"), "{err}");
    let (body, code) = d
        .curl(&[
            "-X",
            "POST",
            &format!("http://x/images/create?fromImage={}/nope&tag=x", reg.addr),
        ])
        .await;
    assert_eq!(code, "404", "{body}");
    assert!(body.contains("\"message\""), "{body}");

    // The exact stream: the first line names the repository path and the tag.
    let (body, code) = d
        .curl(&[
            "-X",
            "POST",
            &format!("http://x/images/create?fromImage={}/bb&tag=v1", reg.addr),
        ])
        .await;
    assert_eq!(code, "200");
    let first: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"status": "Pulling from bb", "id": "v1"})
    );
    let last: serde_json::Value =
        serde_json::from_str(body.trim_end().lines().last().unwrap()).unwrap();
    assert_eq!(
        last["status"],
        format!("Status: Image is up to date for {target}")
    );

    // A registry without auth accepts any login.
    let out = d
        .ok(&["login", "-u", "me", "-p", "secret", &reg.addr])
        .await;
    assert!(out.contains("Login Succeeded"), "{out}");
    d.stop().await;
}
