mod common;

use berth_image::digest::Digest;
use berth_image::layer::{apply_layer, write_diff};
use berth_image::manifest::Compression;
use berth_image::{Error, SnapshotStore};
use common::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Applies `tar` into `<tmp>/root` and checks `<tmp>/outside` was not touched.
fn apply_hostile(tar: &[u8]) -> (Result<(), Error>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("a/b/root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("passwd"), b"original").unwrap();
    let r = apply_layer(tar, &root).map(|_| ());
    assert_eq!(listing(&outside), vec!["passwd".to_string()]);
    assert_eq!(fs::read(outside.join("passwd")).unwrap(), b"original");
    assert_eq!(listing(&tmp.path().join("a/b")), vec!["root".to_string()]);
    (r, tmp)
}

fn assert_unsafe(r: Result<(), Error>, what: &str) {
    match r {
        Err(Error::UnsafePath { .. }) => {}
        other => panic!("{what}: expected UnsafePath, got {other:?}"),
    }
}

#[test]
fn hostile_layers_are_rejected() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            tar_of(&[E::File("../../../outside/x", b"pwn", 0o644)]),
        ),
        (
            "dotdot inside",
            tar_of(&[E::File("a/../../outside/x", b"pwn", 0o644)]),
        ),
        (
            "absolute",
            tar_of(&[E::File("/etc/berth-test-x", b"pwn", 0o644)]),
        ),
        (
            "symlink then write through (absolute)",
            tar_of(&[
                E::Symlink("evil", "/"),
                E::File("evil/berth-escape", b"pwn", 0o644),
            ]),
        ),
        (
            "symlink then write through (relative)",
            tar_of(&[
                E::Symlink("evil", "../../../outside"),
                E::File("evil/passwd", b"pwn", 0o644),
            ]),
        ),
        (
            "symlink dir then mkdir through",
            tar_of(&[
                E::Symlink("evil", "../../../outside"),
                E::Dir("evil/sub", 0o755),
            ]),
        ),
        (
            "hardlink to outside (relative)",
            tar_of(&[E::Hardlink("h", "../../../outside/passwd")]),
        ),
        (
            "hardlink to outside (absolute)",
            tar_of(&[E::Hardlink("h", "/etc/passwd")]),
        ),
        (
            "hardlink through symlink",
            tar_of(&[
                E::Symlink("s", "../../../outside"),
                E::Hardlink("h", "s/passwd"),
            ]),
        ),
        (
            "whiteout of ..",
            tar_of(&[E::Dir("d", 0o755), E::File("d/.wh...", b"", 0o644)]),
        ),
        ("whiteout of .", tar_of(&[E::File(".wh..", b"", 0o644)])),
        (
            "overlay xattr",
            tar_of(&[E::Xattr("f", b"x", "trusted.overlay.redirect", b"/etc")]),
        ),
    ];
    for (what, tar) in cases {
        let (r, _tmp) = apply_hostile(&tar);
        assert_unsafe(r, what);
    }
    assert!(!Path::new("/etc/berth-test-x").exists());
    assert!(!Path::new("/berth-escape").exists());
}

#[test]
fn symlinks_are_stored_verbatim_and_never_followed() {
    // A symlink to /etc/passwd is fine as long as nothing writes through it.
    let tar = tar_of(&[
        E::Symlink("pw", "/etc/passwd"),
        E::File("pw", b"replaced", 0o644),
    ]);
    let (r, tmp) = apply_hostile(&tar);
    r.unwrap();
    let root = tmp.path().join("a/b/root");
    // The later regular file replaced the symlink itself.
    assert_eq!(fs::read(root.join("pw")).unwrap(), b"replaced");
    assert!(!fs::symlink_metadata(root.join("pw"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn applies_every_entry_kind_with_metadata() {
    let tar = tar_of(&[
        E::Dir("etc", 0o755),
        E::Owned("etc/shadow", b"secret", 0o640, 0, 42),
        E::Owned("usr/bin/su", b"#!", 0o4755, 0, 0),
        E::Dir("home/u", 0o700),
        E::Owned("home/u/f", b"mine", 0o600, 1000, 1000),
        E::Symlink("bin", "usr/bin"),
        E::Hardlink("usr/bin/su2", "usr/bin/su"),
        E::Char("dev/null", 1, 3),
        E::Fifo("run/fifo"),
        E::Xattr("x", b"data", "user.berth", b"v1"),
        E::File("etc/.wh.gone", b"", 0o644),
        E::Dir("opq", 0o755),
        E::File("opq/.wh..wh..opq", b"", 0o644),
        E::File(".wh..wh.plnk", b"", 0o644),
    ]);
    for comp in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let blob = match comp {
            Compression::None => tar.clone(),
            Compression::Gzip => gzip(&tar),
            Compression::Zstd => zstd(&tar),
        };
        let tmp = tempfile::tempdir().unwrap();
        let stats = apply_layer(&blob[..], tmp.path()).unwrap();
        assert_eq!(stats.compression, comp);
        assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
        assert_eq!(stats.blob_digest, Digest::sha256_of(&blob));
        assert_eq!(stats.blob_size, blob.len() as u64);
        assert_eq!(stats.uncompressed_size, tar.len() as u64);
        // Docker's size: 6 + 2 + 4 + 4 file bytes, 7 of the symlink's target, no more for
        // the hard link, the device, the fifo or the whiteouts.
        assert_eq!(stats.content_size, 23);

        let r = tmp.path();
        let m = fs::metadata(r.join("etc/shadow")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o640, 0, 42));
        assert_eq!(m.mtime(), 1_000_000_000);
        assert_eq!(
            fs::metadata(r.join("usr/bin/su")).unwrap().mode() & 0o7777,
            0o4755
        );
        let hm = fs::metadata(r.join("home/u/f")).unwrap();
        assert_eq!((hm.uid(), hm.gid()), (1000, 1000));
        assert_eq!(
            fs::metadata(r.join("home/u")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(fs::metadata(r.join("etc")).unwrap().mtime(), 1_000_000_000);
        assert_eq!(fs::read_link(r.join("bin")).unwrap(), Path::new("usr/bin"));
        assert_eq!(
            fs::metadata(r.join("usr/bin/su2")).unwrap().ino(),
            fs::metadata(r.join("usr/bin/su")).unwrap().ino()
        );
        let dev = fs::metadata(r.join("dev/null")).unwrap();
        assert!(dev.file_type().is_char_device());
        assert_eq!(dev.rdev(), rustix::fs::makedev(1, 3));
        assert!(fs::metadata(r.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        let mut v = [0u8; 8];
        let n = rustix::fs::getxattr(r.join("x"), "user.berth", &mut v[..]).unwrap();
        assert_eq!(&v[..n], b"v1");
        // Whiteout → 0:0 char device; opaque marker → xattr; AUFS metadata skipped.
        let wh = fs::symlink_metadata(r.join("etc/gone")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        let n = rustix::fs::getxattr(r.join("opq"), "trusted.overlay.opaque", &mut v[..]).unwrap();
        assert_eq!(&v[..n], b"y");
        assert!(!r.join("opq/.wh..wh..opq").exists());
        assert!(!r.join(".wh..wh.plnk").exists());
    }
}

#[test]
fn blank_numeric_fields_read_as_zero_like_go() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o640);
    h.as_gnu_mut().unwrap().name[..4].copy_from_slice(b"file");
    // uid and gid left all-NUL, as some writers do.
    h.set_cksum();
    b.append(&h, &b"hi"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    apply_layer(&tar[..], tmp.path()).unwrap();
    let m = fs::metadata(tmp.path().join("file")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (0, 0, 0o640));
}

#[test]
fn overlay_of_two_layers_honours_whiteouts_and_diff_reverses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let l1 = tar_of(&[
        E::Dir("a", 0o755),
        E::File("a/x", b"x1", 0o644),
        E::File("a/y", b"y1", 0o644),
        E::Dir("d", 0o755),
        E::File("d/p", b"p1", 0o644),
        E::File("keep", b"k", 0o644),
    ]);
    let l2 = tar_of(&[
        E::Dir("a", 0o755),
        E::File("a/.wh.x", b"", 0o644),
        E::Dir("d", 0o755),
        E::File("d/.wh..wh..opq", b"", 0o644),
        E::File("d/q", b"q2", 0o644),
    ]);
    let d1 = Digest::sha256_of(&l1);
    let d2 = Digest::sha256_of(&l2);
    let chain = berth_image::config::chain_ids(&[d1.clone(), d2.clone()]);
    store.apply(&chain[0], Some(&d1), &gzip(&l1)[..]).unwrap();
    store.apply(&chain[1], Some(&d2), &zstd(&l2)[..]).unwrap();
    // A wrong diffID is refused and leaves no snapshot behind.
    let bogus = Digest::sha256_of(b"bogus");
    assert!(matches!(
        store.apply(&bogus, Some(&d2), &l1[..]),
        Err(Error::DigestMismatch { .. })
    ));
    assert!(!store.has_layer(&bogus));
    assert_eq!(store.list_layers().unwrap().len(), 2);

    let ovl = store.prepare_rw("c1", &chain).unwrap();
    let target = tmp.path().join("merged");
    fs::create_dir(&target).unwrap();
    ovl.mount(&target).unwrap();
    let _guard = MountGuard(target.clone());

    assert_eq!(listing(&target), vec!["a", "d", "keep"]);
    assert_eq!(listing(&target.join("a")), vec!["y"]);
    assert_eq!(listing(&target.join("d")), vec!["q"]);
    assert_eq!(fs::read(target.join("d/q")).unwrap(), b"q2");

    // Changes in the container: delete a file, add one, replace a directory's contents.
    fs::remove_file(target.join("keep")).unwrap();
    fs::write(target.join("a/new"), b"n").unwrap();
    fs::remove_dir_all(target.join("d")).unwrap();
    fs::create_dir(target.join("d")).unwrap();
    fs::write(target.join("d/r"), b"r").unwrap();

    let (stats, out) = write_diff(&store.rw_upper("c1").unwrap(), Vec::new()).unwrap();
    assert_eq!(stats.diff_id, Digest::sha256_of(&out));
    let mut names = Vec::new();
    for e in tar::Archive::new(&out[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    for want in ["a/new", ".wh.keep", "d/.wh..wh..opq", "d/r"] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == want),
            "{want} not in {names:?}"
        );
    }

    // The diff applied as a third layer gives the same view as the container had.
    drop(_guard);
    let d3 = stats.diff_id.clone();
    let chain3 = berth_image::config::chain_ids(&[d1, d2, d3.clone()]);
    store.apply(&chain3[2], Some(&d3), &out[..]).unwrap();
    let ovl = store.prepare_rw("c2", &chain3).unwrap();
    ovl.mount(&target).unwrap();
    let _guard = MountGuard(target.clone());
    assert_eq!(listing(&target), vec!["a", "d"]);
    assert_eq!(listing(&target.join("a")), vec!["new", "y"]);
    assert_eq!(listing(&target.join("d")), vec!["r"]);
}

#[test]
fn diff_of_an_upper_dir_round_trips_every_kind() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("upper");
    fs::create_dir_all(up.join("etc/sub")).unwrap();
    fs::write(up.join("etc/file"), b"content").unwrap();
    rustix::fs::chown(
        up.join("etc/file"),
        Some(rustix::fs::Uid::from_raw(12)),
        Some(rustix::fs::Gid::from_raw(34)),
    )
    .unwrap();
    // chmod after chown: chown clears set-id bits.
    fs::set_permissions(up.join("etc/file"), fs::Permissions::from_mode(0o4750)).unwrap();
    fs::hard_link(up.join("etc/file"), up.join("etc/sub/link")).unwrap();
    symlink("../file", up.join("etc/sub/sym")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        up.join("etc/tty"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o620),
        rustix::fs::makedev(5, 0),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        up.join("etc/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    rustix::fs::setxattr(
        up.join("etc/file"),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // overlayfs's own xattrs never leave the upper dir.
    rustix::fs::setxattr(
        up.join("etc/sub"),
        "trusted.overlay.origin",
        b"x",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let long = "n".repeat(150);
    fs::write(up.join(&long), b"long name").unwrap();

    let (stats, tar) = write_diff(&up, Vec::new()).unwrap();
    assert_eq!(stats.size, tar.len() as u64);
    let (again, tar2) = write_diff(&up, Vec::new()).unwrap();
    assert_eq!(again.diff_id, stats.diff_id, "diffs are reproducible");
    assert_eq!(tar2, tar);

    let out = tmp.path().join("applied");
    fs::create_dir(&out).unwrap();
    let applied = apply_layer(&tar[..], &out).unwrap();
    assert_eq!(applied.diff_id, stats.diff_id);
    let m = fs::metadata(out.join("etc/file")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o4750, 12, 34));
    assert_eq!(
        m.ino(),
        fs::metadata(out.join("etc/sub/link")).unwrap().ino()
    );
    assert_eq!(
        fs::read_link(out.join("etc/sub/sym")).unwrap(),
        Path::new("../file")
    );
    let tty = fs::metadata(out.join("etc/tty")).unwrap();
    assert!(tty.file_type().is_char_device());
    assert_eq!(tty.rdev(), rustix::fs::makedev(5, 0));
    assert!(fs::metadata(out.join("etc/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let mut v = [0u8; 16];
    let n = rustix::fs::getxattr(out.join("etc/file"), "user.note", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"kept");
    assert!(
        rustix::fs::getxattr(out.join("etc/sub"), "trusted.overlay.origin", &mut v[..]).is_err()
    );
    assert_eq!(fs::read(out.join(&long)).unwrap(), b"long name");
}

#[test]
fn concurrent_extraction_of_one_layer_keeps_one_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let files: Vec<String> = (0..200).map(|i| format!("d/f{i}")).collect();
    let entries: Vec<E> = files.iter().map(|f| E::File(f, b"data", 0o644)).collect();
    let t = tar_of(&entries);
    let d = Digest::sha256_of(&t);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| store.apply(&d, Some(&d), &gzip(&t)[..]).unwrap());
        }
    });
    assert_eq!(store.list_layers().unwrap(), vec![d.clone()]);
    assert_eq!(listing(&store.layer_dir(&d).join("d")).len(), 200);
    // No temp dirs left behind.
    assert_eq!(
        listing(&tmp.path().join("snapshots")),
        vec![d.hex().to_string()]
    );
}

#[test]
fn many_layers_mount_beyond_the_one_page_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let mut diff_ids = Vec::new();
    let mut tars = Vec::new();
    for i in 0..80 {
        let name = format!("f{i:03}");
        let t = tar_of(&[E::File(&name, name.as_bytes(), 0o644)]);
        diff_ids.push(Digest::sha256_of(&t));
        tars.push(t);
    }
    let chain = berth_image::config::chain_ids(&diff_ids);
    for (i, t) in tars.iter().enumerate() {
        store.apply(&chain[i], Some(&diff_ids[i]), &t[..]).unwrap();
    }
    let ovl = store.prepare_rw("many", &chain).unwrap();
    // 80 lowerdirs of ~100 bytes each do not fit mount(2)'s page.
    assert!(ovl.options().is_err());
    let target = tmp.path().join("m");
    fs::create_dir(&target).unwrap();
    ovl.mount(&target).unwrap();
    let _g = MountGuard(target.clone());
    assert_eq!(listing(&target).len(), 80);
}

mod hostile_property {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        let comp = prop::sample::select(vec![
            "a",
            "b",
            "..",
            ".",
            "evil",
            ".wh.a",
            ".wh..wh..opq",
            ".wh...",
            "",
        ]);
        (any::<bool>(), prop::collection::vec(comp, 1..4)).prop_map(|(abs, c)| {
            let p = c.join("/");
            if abs {
                format!("/{p}")
            } else {
                p
            }
        })
    }

    fn target() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "/",
            "..",
            "../..",
            "a",
            "/etc",
            "../../../outside",
            "evil/a",
            "/outside/passwd",
        ])
        .prop_map(str::to_string)
    }

    #[derive(Debug, Clone)]
    enum K {
        File(String),
        Dir(String),
        Sym(String, String),
        Hard(String, String),
    }

    fn entry() -> impl Strategy<Value = K> {
        prop_oneof![
            name().prop_map(K::File),
            name().prop_map(K::Dir),
            (name(), target()).prop_map(|(n, t)| K::Sym(n, t)),
            (name(), prop_oneof![target(), name()]).prop_map(|(n, t)| K::Hard(n, t)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Whatever the entries, nothing outside the root changes and nothing panics.
        #[test]
        fn nothing_escapes(entries in prop::collection::vec(entry(), 1..8)) {
            let owned: Vec<E> = entries
                .iter()
                .filter(|k| match k {
                    K::File(n) | K::Dir(n) => !n.is_empty() && n.len() < 90,
                    K::Sym(n, t) | K::Hard(n, t) => !n.is_empty() && n.len() < 90 && t.len() < 90,
                })
                .map(|k| match k {
                    K::File(n) => E::File(n, b"x", 0o644),
                    K::Dir(n) => E::Dir(n, 0o755),
                    K::Sym(n, t) => E::Symlink(n, t),
                    K::Hard(n, t) => E::Hardlink(n, t),
                })
                .collect();
            let tar = tar_of(&owned);
            // apply_hostile asserts the outside is untouched; the result may be Ok or Err.
            let (_r, _tmp) = apply_hostile(&tar);
        }
    }
}

#[test]
fn deferred_sync_and_recovery_after_a_reboot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let t1 = tar_of(&[E::File("one", b"1", 0o644)]);
    let t2 = tar_of(&[E::File("two", b"2", 0o644)]);
    let (d1, d2) = (Digest::sha256_of(&t1), Digest::sha256_of(&t2));
    store.apply(&d1, Some(&d1), &t1[..]).unwrap();
    assert_eq!(store.unsynced().unwrap(), vec![d1.clone()]);
    assert_eq!(store.sync_pending().unwrap(), 1);
    assert!(store.unsynced().unwrap().is_empty());
    assert_eq!(store.sync_pending().unwrap(), 0);

    // d2 extracted but never synced; then "the machine reboots" (another boot ID).
    store.apply(&d2, Some(&d2), &t2[..]).unwrap();
    let marker = tmp.path().join("snapshots").join(d2.hex()).join("unsynced");
    fs::write(&marker, "00000000-0000-0000-0000-000000000000").unwrap();
    let reopened = SnapshotStore::open(tmp.path()).unwrap();
    assert!(reopened.has_layer(&d1), "a synced snapshot survives");
    assert!(
        !reopened.has_layer(&d2),
        "an unsynced one from another boot is suspect"
    );

    // Same boot (only the daemon restarted): kept, and synced at open.
    reopened.apply(&d2, Some(&d2), &t2[..]).unwrap();
    let again = SnapshotStore::open(tmp.path()).unwrap();
    assert!(again.has_layer(&d2));
    assert!(again.unsynced().unwrap().is_empty());
}

/// Containers of one image share its init layer, beside the top layer; a build a crash
/// interrupted is cleared at open, and the next container builds it again.
#[test]
fn init_layer_is_shared_by_an_image_and_rebuilt_after_an_interrupted_build() {
    use berth_image::init_layer::CONTAINER_INIT;
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let t = tar_of(&[E::Dir("etc", 0o755), E::File("etc/hostname", b"img", 0o644)]);
    let d = Digest::sha256_of(&t);
    store.apply(&d, Some(&d), &t[..]).unwrap();
    let one = store
        .prepare_rw_with_init("c1", std::slice::from_ref(&d), &CONTAINER_INIT)
        .unwrap();
    let two = store
        .prepare_rw_with_init("c2", std::slice::from_ref(&d), &CONTAINER_INIT)
        .unwrap();
    assert_eq!(one.lowers[0], two.lowers[0], "one init layer for the image");
    assert_eq!(one.lowers[1], store.layer_dir(&d));
    let init = one.lowers[0].clone();
    assert!(init.starts_with(tmp.path().join("snapshots").join(d.hex())));
    assert_eq!(fs::read(init.join("etc/hostname")).unwrap(), b"");

    fs::remove_dir_all(&init).unwrap();
    let interrupted = init.with_file_name(".tmp-crashed");
    fs::create_dir_all(interrupted.join("etc")).unwrap();
    let reopened = SnapshotStore::open(tmp.path()).unwrap();
    assert!(!interrupted.exists(), "an interrupted build is left");
    let three = reopened
        .prepare_rw_with_init("c3", std::slice::from_ref(&d), &CONTAINER_INIT)
        .unwrap();
    assert!(three.lowers[0].join(".dockerenv").is_file());
}

/// A layer extracted before its size was recorded is measured from its files, as moby
/// measures layers: file and symlink bytes, a hard-linked file once.
#[test]
fn layer_size_of_a_layer_without_a_recorded_size_is_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(tmp.path()).unwrap();
    let t = tar_of(&[
        E::File("data", b"abcdef", 0o644),
        E::Hardlink("again", "data"),
        E::Symlink("link", "data"),
        E::Dir("d", 0o755),
        E::File("d/x", b"1234", 0o644),
    ]);
    let d = Digest::sha256_of(&t);
    let stats = store.apply(&d, Some(&d), &t[..]).unwrap();
    assert_eq!(stats.content_size, 14);
    assert_eq!(store.layer_size(&d), Some(14));
    let recorded = tmp
        .path()
        .join("snapshots")
        .join(d.hex())
        .join("content-size");
    fs::remove_file(&recorded).unwrap();
    assert_eq!(store.layer_size(&d), Some(14), "measured from the files");
    assert_eq!(fs::read_to_string(&recorded).unwrap(), "14", "and kept");
}
