//! The media store's contract on both backends: local disk, and a real S3-compatible server
//! (moto's server mode, installed by `scripts/install-deps`) on loopback, started here and
//! stopped by its PID.

use bytes::Bytes;
use sigma_content::{Key, MediaStore};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto server (run ./scripts/install-deps)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn make_bucket(&self, name: &str) {
        let script = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{name}')",
            self.endpoint()
        );
        let ok = Command::new("python3")
            .args(["-c", &script])
            .status()
            .unwrap()
            .success();
        assert!(ok, "create bucket {name}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let endpoint = moto.endpoint();
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
    ];
    let store = MediaStore::open_with(Some("s3://sigma/node-a"), &dir, &options).unwrap();
    assert_eq!(store.describe(), "s3://sigma/node-a");
    contract(&store).await;
    // The prefix keeps nodes' roots apart.
    let other = MediaStore::open_with(Some("s3://sigma/node-b"), &dir, &options).unwrap();
    assert!(other.list(None).await.unwrap().is_empty());
}
