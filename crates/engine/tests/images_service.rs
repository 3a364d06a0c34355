//! The images service on a temporary data root, with the offline busybox image: load, list,
//! inspect, history, tag, save → load round trip, import, delete and prune.

use berth_engine::events::Events;
use berth_engine::images::archive::ImportRequest;
use berth_engine::images::list::ListOptions;
use berth_engine::images::Images;
use berth_engine::EngineConfig;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

const BUSYBOX_ID: &str = "sha256:0d582582228d55c8c2c440d4970322705c961366e86fa0addb4c69ba161ad5ff";
const BUSYBOX_DIFF: &str =
    "sha256:1c08ab6921aa95ee47ccbd4424bdfe94fdfa0052bc12cd7b07ba25dd4ac459fe";

fn anchors() -> PathBuf {
    PathBuf::from(
        std::env::var("BERTH_ANCHOR_IMAGES").unwrap_or_else(|_| "/tmp/anchors-images".into()),
    )
}

fn open(dir: &std::path::Path) -> Arc<Images> {
    let cfg = EngineConfig::new(dir.join("data"), dir.join("exec"));
    Arc::new(Images::open(&cfg, Arc::new(Events::new())).expect("open images"))
}

async fn load_busybox(images: &Images) -> Vec<String> {
    let f = std::fs::File::open(anchors().join("busybox-docker.tar")).expect("busybox-docker.tar");
    images
        .load(f)
        .await
        .expect("load")
        .into_iter()
        .filter_map(|m| m.stream)
        .collect()
}

fn filters(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut f: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        f.entry(k.to_string()).or_default().push(v.to_string());
    }
    f
}

async fn list(images: &Images, f: &[(&str, &str)]) -> Vec<serde_json::Value> {
    images
        .list(ListOptions {
            filters: filters(f),
            api_minor: None,
        })
        .await
        .expect("list")
}

#[tokio::test]
async fn load_list_inspect_history_tag_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let images = open(tmp.path());
    let (_past, mut events) = images.events.subscribe(None);

    let lines = load_busybox(&images).await;
    assert_eq!(lines, vec!["Loaded image: busybox:latest\n".to_string()]);
    let ev = events.recv().await.unwrap();
    assert_eq!((ev.kind.as_str(), ev.action.as_str()), ("image", "load"));

    let rows = list(&images, &[]).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Id"], BUSYBOX_ID);
    assert_eq!(rows[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(rows[0]["SharedSize"], -1);
    assert_eq!(rows[0]["Containers"], -1);
    assert!(rows[0]["Size"].as_u64().unwrap() > 1_000_000);
    // The offline image is reproducible: created at the epoch.
    assert_eq!(rows[0]["Created"], 0);

    assert_eq!(list(&images, &[("reference", "busy*")]).await.len(), 1);
    assert_eq!(list(&images, &[("reference", "alpine")]).await.len(), 0);
    assert_eq!(list(&images, &[("dangling", "true")]).await.len(), 0);
    assert!(images
        .list(ListOptions {
            filters: filters(&[("bogus", "x")]),
            api_minor: None
        })
        .await
        .is_err());

    let ins = images.inspect("busybox").await.unwrap();
    assert_eq!(ins["Id"], BUSYBOX_ID);
    assert_eq!(ins["RootFS"]["Type"], "layers");
    assert_eq!(ins["RootFS"]["Layers"], serde_json::json!([BUSYBOX_DIFF]));
    assert_eq!(ins["Os"], "linux");
    assert_eq!(ins["GraphDriver"]["Name"], "overlay2");
    assert!(ins["Created"].as_str().unwrap().contains('T'));
    // Short IDs resolve as in Docker.
    assert_eq!(
        images.inspect(&BUSYBOX_ID[7..19]).await.unwrap()["Id"],
        BUSYBOX_ID
    );
    let err = images.inspect("nothere").await.unwrap_err();
    assert_eq!(err.status(), 404);
    assert_eq!(err.to_string(), "No such image: nothere");

    let hist = images.history("busybox:latest").await.unwrap();
    assert!(!hist.is_empty());
    assert_eq!(hist[0]["Id"], BUSYBOX_ID);
    assert_eq!(hist[0]["Tags"], serde_json::json!(["busybox:latest"]));
    let layer_sizes: u64 = hist.iter().map(|h| h["Size"].as_u64().unwrap()).sum();
    assert!(layer_sizes > 1_000_000, "{hist:?}");

    images
        .tag("busybox", "example.com/me/bb", "v1")
        .await
        .unwrap();
    let rows = list(&images, &[]).await;
    assert_eq!(
        rows[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "example.com/me/bb:v1"])
    );
    assert_eq!(
        images
            .tag("busybox", "Bad Repo", "x")
            .await
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        images.tag("nothere", "x", "y").await.unwrap_err().status(),
        404
    );

    // Removing one of two names only untags.
    let out = images
        .delete("example.com/me/bb:v1", false, vec![])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![serde_json::json!({"Untagged": "example.com/me/bb:v1"})]
    );

    // A stopped container keeps it unless forced; forced, only the name goes.
    let user = vec![("c".repeat(64), false)];
    let err = images
        .delete("busybox", false, user.clone())
        .await
        .unwrap_err();
    assert_eq!(err.status(), 409, "{err}");
    assert!(
        err.to_string()
            .contains("container cccccccccccc is using its referenced image"),
        "{err}"
    );
    let running = vec![("d".repeat(64), true)];
    let err = images.delete(BUSYBOX_ID, true, running).await.unwrap_err();
    assert!(err.to_string().contains("cannot be forced"), "{err}");

    let out = images.delete("busybox", false, vec![]).await.unwrap();
    assert_eq!(out[0], serde_json::json!({"Untagged": "busybox:latest"}));
    assert!(
        out.contains(&serde_json::json!({"Deleted": BUSYBOX_ID})),
        "{out:?}"
    );
    assert!(list(&images, &[]).await.is_empty());
    // The layer went with it.
    let data = tmp.path().join("data");
    let layer_blob = data.join("content/blobs/sha256").join(&BUSYBOX_DIFF[7..]);
    assert!(!layer_blob.exists());
}

#[tokio::test]
async fn save_load_round_trip_import_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(&tmp.path().join("a"));
    load_busybox(&a).await;

    let mut tar = Vec::new();
    let names = vec!["busybox:latest".to_string()];
    a.save_blocking(&names, &mut tar).unwrap();
    assert!(tar.len() > 1_000_000);
    assert_eq!(a.check_save(&["nothere".into()]).unwrap_err().status(), 404);

    let b = open(&tmp.path().join("b"));
    let lines: Vec<String> = b
        .load(std::io::Cursor::new(tar))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.stream)
        .collect();
    assert_eq!(lines, vec!["Loaded image: busybox:latest\n".to_string()]);
    assert_eq!(b.inspect("busybox").await.unwrap()["Id"], BUSYBOX_ID);

    // Import the busybox rootfs layer as a new image with a CMD.
    let layer = std::fs::File::open(anchors().join("busybox-layer.tar.gz")).unwrap();
    let rec = b
        .import(
            ImportRequest {
                repo: "imported/bb".into(),
                tag: "v2".into(),
                changes: vec!["CMD [\"sh\", \"-c\", \"echo hi\"]".into(), "ENV A=b".into()],
                message: "from a tarball".into(),
                platform: String::new(),
            },
            layer,
        )
        .await
        .unwrap();
    let ins = b.inspect("imported/bb:v2").await.unwrap();
    assert_eq!(ins["Id"], rec.id.to_string());
    assert_eq!(
        ins["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", "echo hi"])
    );
    assert_eq!(ins["Config"]["Env"], serde_json::json!(["A=b"]));
    assert_eq!(ins["Comment"], "from a tarball");
    let bad = b
        .import(
            ImportRequest {
                changes: vec!["FROBNICATE x".into()],
                ..Default::default()
            },
            std::io::Cursor::new(Vec::new()),
        )
        .await;
    assert!(bad.is_err());

    // Removing its only name removes the image.
    let out = b.delete("imported/bb:v2", false, vec![]).await.unwrap();
    assert!(out.contains(&serde_json::json!({"Deleted": rec.id.to_string()})));

    // An import without a name is dangling, and prune (dangling only by default) takes it.
    let layer = std::fs::File::open(anchors().join("busybox-layer.tar.gz")).unwrap();
    let rec = b.import(ImportRequest::default(), layer).await.unwrap();
    assert_eq!(list(&b, &[("dangling", "true")]).await.len(), 1);
    let none_users = |_: &str| Vec::<String>::new();
    let report = b.prune(&HashMap::new(), &none_users).await.unwrap();
    assert!(report
        .deleted
        .contains(&serde_json::json!({"Deleted": rec.id.to_string()})));
    assert!(report.space_reclaimed > 0);
    assert!(b.resolve(&rec.id.to_string()).is_err());
    assert_eq!(list(&b, &[]).await.len(), 1);

    // dangling=false prunes every unused image, but not one a container uses.
    let used = |id: &str| {
        if id == BUSYBOX_ID {
            vec!["c".repeat(64)]
        } else {
            vec![]
        }
    };
    let report = b
        .prune(&filters(&[("dangling", "false")]), &used)
        .await
        .unwrap();
    assert!(report.deleted.is_empty(), "{:?}", report.deleted);
    let report = b
        .prune(&filters(&[("dangling", "false")]), &none_users)
        .await
        .unwrap();
    assert!(report
        .deleted
        .contains(&serde_json::json!({"Untagged": "busybox:latest"})));
    assert!(report.space_reclaimed > 1_000_000);
    assert!(list(&b, &[]).await.is_empty());
}
