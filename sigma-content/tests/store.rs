//! The media store's contract on both backends: local disk, and a real S3-compatible server
//! (moto's server mode, installed by `scripts/install-deps`) on loopback, started here and
//! stopped by its PID.

use bytes::Bytes;
use sigma_content::{Key, MediaStore};

mod moto;
use moto::Moto;

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// Every behaviour the archive relies on.
async fn contract(store: &MediaStore) {
    let stream = key("ls_test");
    assert_eq!(store.get(&key("ls_test/none.m4s")).await.unwrap(), None);
    let seg = Bytes::from(vec![7u8; 100_000]);
    let init = Bytes::from_static(b"init bytes");
    store
        .commit(
            [
                (key("ls_test/v/init.mp4"), init.clone()),
                (key("ls_test/v/seg-00001.m4s"), seg.clone()),
            ],
            (
                key("ls_test/manifest.json"),
                Bytes::from_static(b"{\"n\":1}"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get(&key("ls_test/v/init.mp4")).await.unwrap(),
        Some(init)
    );
    assert_eq!(
        store
            .get_range(&key("ls_test/v/seg-00001.m4s"), 10..20)
            .await
            .unwrap(),
        Some(seg.slice(10..20))
    );
    assert_eq!(
        store
            .get_range(&key("ls_test/v/none.m4s"), 0..1)
            .await
            .unwrap(),
        None
    );
    // A manifest is replaced whole.
    store
        .put_manifest(
            &key("ls_test/manifest.json"),
            Bytes::from_static(b"{\"n\":2}"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get(&key("ls_test/manifest.json"))
            .await
            .unwrap()
            .unwrap(),
        Bytes::from_static(b"{\"n\":2}")
    );
    let listed = store.list(Some(&stream)).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(
        names,
        [
            "ls_test/manifest.json",
            "ls_test/v/init.mp4",
            "ls_test/v/seg-00001.m4s"
        ]
    );
    assert_eq!(listed[2].size, 100_000);
    // Another stream's objects are not under this prefix.
    store
        .put(&key("ls_other/a"), Bytes::from_static(b"a"))
        .await
        .unwrap();
    assert_eq!(store.list(Some(&stream)).await.unwrap().len(), 3);
    assert_eq!(store.list(None).await.unwrap().len(), 4);
    assert_eq!(store.delete_prefix(&stream).await.unwrap(), 3);
    assert!(store.list(Some(&stream)).await.unwrap().is_empty());
    assert_eq!(store.list(None).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_disk_keeps_the_contract() {
    let dir = std::env::temp_dir().join(format!("sigma-content-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = MediaStore::open(None, &dir).unwrap();
    contract(&store).await;
    assert!(dir.join("media/ls_other/a").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_keeps_the_contract() {
    let moto = Moto::start();
    moto.make_bucket("sigma");
    let dir = std::env::temp_dir();
    let options = moto.options();
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store = MediaStore::open_with(Some("s3://sigma/node-a"), &dir, &options).unwrap();
    assert_eq!(store.describe(), "s3://sigma/node-a");
    contract(&store).await;
    // The prefix keeps nodes' roots apart.
    let other = MediaStore::open_with(Some("s3://sigma/node-b"), &dir, &options).unwrap();
    assert!(other.list(None).await.unwrap().is_empty());
}
