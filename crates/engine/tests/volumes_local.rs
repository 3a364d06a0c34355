//! The `local` volume driver on a temporary data root: create, list, inspect, names, in-use
//! protection (kept across a reopen), prune, tmpfs options mounted on first use, copy-up.

use berth_engine::events::Events;
use berth_engine::volumes::{CreateOptions, Volumes, ANONYMOUS_LABEL};
use berth_engine::EngineConfig;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn open(dir: &Path) -> Volumes {
    let cfg = EngineConfig::new(dir.join("data"), dir.join("exec"));
    Volumes::open(&cfg, Arc::new(Events::new())).expect("open volumes")
}

fn is_mounted(p: &Path) -> bool {
    let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
}

/// Unmounts whatever a failed test left mounted under the temp dir.
struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        while is_mounted(&self.0) {
            if nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
    }
}

fn named(name: &str) -> CreateOptions {
    CreateOptions {
        name: name.into(),
        ..Default::default()
    }
}

#[test]
fn create_list_inspect_remove_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let vols = open(tmp.path());
    let labels = BTreeMap::from([("team".to_string(), "db".to_string())]);
    let v = vols
        .create(CreateOptions {
            name: "data1".into(),
            driver: "local".into(),
            labels: Some(labels.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(v.name, "data1");
    assert_eq!(v.driver, "local");
    assert_eq!(v.scope, "local");
    let expected = tmp.path().join("data/volumes/data1/_data");
    assert_eq!(v.mountpoint, expected.display().to_string());
    assert!(expected.is_dir());
    assert!(
        v.created_at.ends_with('Z') && !v.created_at.contains('.'),
        "{}",
        v.created_at
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["Labels"]["team"], "db");
    assert_eq!(json["Mountpoint"], expected.display().to_string());

    // Creating an existing name returns it unchanged.
    let again = vols.create(named("data1")).unwrap();
    assert_eq!(again, v);

    let gen = vols.create(CreateOptions::default()).unwrap();
    assert_eq!(gen.name.len(), 64);
    assert!(gen.name.chars().all(|c| c.is_ascii_hexdigit()));

    for bad in ["a/b", "..", "x", "-lead", "with space", "../../etc"] {
        let err = vols.create(named(bad)).unwrap_err();
        assert_eq!(err.status(), 400, "{bad}: {err}");
        assert!(
            err.to_string().contains("includes invalid characters"),
            "{err}"
        );
    }
    assert!(!tmp.path().join("data/etc").exists());
    let err = vols
        .create(CreateOptions {
            name: "x1".into(),
            driver: "nfs-plugin".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.status(), 404);

    let names: Vec<String> = vols.list().into_iter().map(|v| v.name).collect();
    assert!(names.contains(&"data1".to_string()) && names.contains(&gen.name));
    assert_eq!(vols.get("data1").unwrap(), v);
    let err = vols.get("nope").unwrap_err();
    assert_eq!(
        (err.status(), err.to_string()),
        (404, "get nope: no such volume".into())
    );

    // In use: 409 with the users, even forced; then free, removed with its data.
    std::fs::write(expected.join("f"), b"x").unwrap();
    vols.add_user("data1", "c1");
    let err = vols.remove("data1", true).unwrap_err();
    assert_eq!(err.status(), 409);
    assert_eq!(err.to_string(), "remove data1: volume is in use - [c1]");

    // Users survive a restart of the daemon.
    drop(vols);
    let vols = open(tmp.path());
    assert_eq!(vols.users("data1"), vec!["c1".to_string()]);
    vols.remove_user("data1", "c1");
    vols.remove("data1", false).unwrap();
    assert!(!tmp.path().join("data/volumes/data1").exists());
    assert_eq!(vols.remove("data1", false).unwrap_err().status(), 404);
    vols.remove("data1", true).unwrap();
}

#[test]
fn prune_takes_unused_anonymous_volumes_unless_all() {
    let tmp = tempfile::tempdir().unwrap();
    let vols = open(tmp.path());
    let anon_used = vols.create_anonymous("c1").unwrap();
    assert_eq!(anon_used.label(ANONYMOUS_LABEL), Some(""));
    let anon_free = vols.create_anonymous("c2").unwrap();
    vols.remove_user(&anon_free.name, "c2");
    std::fs::write(
        Path::new(&anon_free.mountpoint).join("blob"),
        vec![0u8; 4096],
    )
    .unwrap();
    vols.create(named("keepme")).unwrap();
    let v = vols.get_or_create("shared", "c3").unwrap();
    assert_eq!(vols.users(&v.name), vec!["c3".to_string()]);

    let report = vols.prune(false, &|_| true).unwrap();
    assert_eq!(report.deleted, vec![anon_free.name.clone()]);
    assert_eq!(report.space_reclaimed, 4096);

    let report = vols.prune(true, &|_| true).unwrap();
    assert_eq!(report.deleted, vec!["keepme".to_string()]);
    let left: Vec<String> = vols.list().into_iter().map(|v| v.name).collect();
    assert!(left.contains(&anon_used.name) && left.contains(&"shared".to_string()));
}

#[test]
fn tmpfs_options_mount_on_first_use_and_unmount_on_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let vols = open(tmp.path());
    let opts = BTreeMap::from([
        ("type".to_string(), "tmpfs".to_string()),
        ("device".to_string(), "tmpfs".to_string()),
        ("o".to_string(), "size=10m,mode=0750".to_string()),
    ]);
    let v = vols
        .create(CreateOptions {
            name: "scratch".into(),
            driver_opts: Some(opts.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(v.options, Some(opts));
    let data = PathBuf::from(&v.mountpoint);
    let _guard = Unmount(data.clone());
    assert!(!is_mounted(&data));
    let p = vols.mount_path("scratch").unwrap();
    assert_eq!(p, data);
    assert!(is_mounted(&data));
    let st = rustix::fs::statfs(&data).unwrap();
    assert_eq!(st.f_type, libc::TMPFS_MAGIC);
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777,
        0o750
    );
    // A second use does not stack another mount.
    vols.mount_path("scratch").unwrap();
    vols.remove("scratch", false).unwrap();
    assert!(!is_mounted(&data));

    let bad = BTreeMap::from([("size".to_string(), "1".to_string())]);
    let err = vols
        .create(CreateOptions {
            name: "bad".into(),
            driver_opts: Some(bad),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[test]
fn copy_up_keeps_owners_modes_links_and_stays_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let vols = open(tmp.path());
    let src = tmp.path().join("image-dir");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/file"), b"hello").unwrap();
    std::fs::set_permissions(src.join("sub/file"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::lchown(src.join("sub/file"), Some(1234), Some(5678)).unwrap();
    std::fs::hard_link(src.join("sub/file"), src.join("hard")).unwrap();
    // A hostile absolute symlink is copied as a link, never followed.
    std::os::unix::fs::symlink("/etc/passwd", src.join("escape")).unwrap();
    std::os::unix::fs::symlink("/", src.join("rootlink")).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o1777)).unwrap();

    vols.create_anonymous("c1").unwrap();
    let name = vols.list()[0].name.clone();
    vols.copy_up(&name, &src).unwrap();
    let data = PathBuf::from(vols.get(&name).unwrap().mountpoint);
    assert_eq!(std::fs::read(data.join("sub/file")).unwrap(), b"hello");
    let m = std::fs::metadata(data.join("sub/file")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 1234, 5678));
    assert_eq!(m.ino(), std::fs::metadata(data.join("hard")).unwrap().ino());
    assert_eq!(
        std::fs::read_link(data.join("escape")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(std::fs::symlink_metadata(data.join("rootlink"))
        .unwrap()
        .is_symlink());
    assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o7777, 0o1777);

    // Not empty any more: a second copy-up leaves the content alone.
    std::fs::write(data.join("sub/file"), b"changed").unwrap();
    vols.copy_up(&name, &src).unwrap();
    assert_eq!(std::fs::read(data.join("sub/file")).unwrap(), b"changed");
}
