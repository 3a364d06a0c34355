//! The volume routes driven by the real docker CLI: create (plain, labels, tmpfs options),
//! ls with filters, inspect, rm (in use: 409), prune (anonymous only unless --all).

#[path = "images_harness.rs"]
mod harness;

use harness::Daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_lifecycle_with_the_docker_cli() {
    let d = Daemon::start().await;
    assert_eq!(d.ok(&["volume", "create", "v1"]).await.trim(), "v1");
    let out = d
        .ok(&[
            "volume",
            "create",
            "--label",
            "a=b",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=size=10m",
            "tv",
        ])
        .await;
    assert_eq!(out.trim(), "tv");
    let names = d
        .ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .await;
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, vec!["tv local", "v1 local"]);
    let labelled = d.ok(&["volume", "ls", "-q", "--filter", "label=a=b"]).await;
    assert_eq!(labelled.trim(), "tv");
    let mp = d
        .ok(&[
            "volume",
            "inspect",
            "--format",
            "{{.Mountpoint}} {{.Scope}} {{.Options.type}}",
            "tv",
        ])
        .await;
    let expected = d.dir.path().join("data/volumes/tv/_data");
    assert_eq!(mp.trim(), format!("{} local tmpfs", expected.display()));

    let bad = d.docker(&["volume", "create", "bad/name"]).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("includes invalid characters"));
    let (body, code) = d
        .curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"Name":".."}"#,
            "http://x/volumes/create",
        ])
        .await;
    assert_eq!(code, "400", "{body}");
    let (body, code) = d
        .curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"Name":"api1"}"#,
            "http://x/v1.50/volumes/create",
        ])
        .await;
    assert_eq!(code, "201", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Name"], "api1");
    assert_eq!(v["Driver"], "local");

    // In use by a container: refused, even forced.
    d.engine.volumes.add_user("v1", "c0ffee");
    let busy = d.docker(&["volume", "rm", "-f", "v1"]).await;
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("volume is in use - [c0ffee]"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    d.engine.volumes.remove_user("v1", "c0ffee");

    // prune: anonymous unused volumes only; --all takes named ones too.
    let anon = d.engine.volumes.create_anonymous("c1").unwrap();
    d.engine.volumes.remove_user(&anon.name, "c1");
    let out = d.ok(&["volume", "prune", "-f"]).await;
    assert!(out.contains(&anon.name), "{out}");
    assert!(!out.contains("v1"), "{out}");
    let out = d.ok(&["volume", "prune", "-af"]).await;
    assert!(
        out.contains("v1") && out.contains("tv") && out.contains("api1"),
        "{out}"
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]).await.trim(), "");
    let gone = d.docker(&["volume", "inspect", "v1"]).await;
    assert!(!gone.status.success());
    d.stop().await;
}
