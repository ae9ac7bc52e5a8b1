//! Shared helpers for the socket tests: a server on 127.0.0.1 with an in-memory registry, and
//! synthetic frames.
#![allow(dead_code)]

use bytes::Bytes;
use sigma_core::bus::{Consumer, Event, Producer, Window};
use sigma_core::time::rescale;
use sigma_core::{
    AacConfig, CodecConfig, Frame, H264Config, StreamInfo, StreamKey, TrackId, TrackInfo,
};
use sigma_rtmp::server::{Application, Notice, Server, ServerConfig, StreamRegistry};
use sigma_rtmp::session::{PublishRequest, Rejection};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// The registry plus an optional token check (`?token=...`).
pub struct TestApp {
    pub registry: StreamRegistry,
    pub token: Option<String>,
    /// A consumer subscribed at admission, before any frame (for publishers we do not pace).
    pub early: std::sync::Mutex<std::collections::HashMap<StreamKey, Consumer>>,
}

impl TestApp {
    /// The consumer subscribed when `key` was admitted.
    pub fn take_early(&self, key: &StreamKey) -> Option<Consumer> {
        self.early.lock().unwrap().remove(key)
    }
}

impl Application for TestApp {
    async fn admit(
        &self,
        stream: StreamKey,
        request: PublishRequest,
        remote: SocketAddr,
    ) -> Result<Producer, Rejection> {
        if let Some(t) = &self.token {
            let want = format!("token={t}");
            let ok = request
                .query
                .as_deref()
                .is_some_and(|q| q.split('&').any(|kv| kv == want));
            if !ok {
                return Err(Rejection::BadKey);
            }
        }
        let producer = self.registry.admit(stream.clone(), request, remote).await?;
        let consumer = producer.subscriber().subscribe();
        self.early.lock().unwrap().insert(stream, consumer);
        Ok(producer)
    }

    fn notice(&self, notice: Notice) {
        self.registry.notice(notice);
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<TestApp>,
    pub notices: broadcast::Receiver<Notice>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("server stops in time")
                .unwrap();
        }
    }

    /// Waits for the next notice matching `f`.
    pub async fn wait_notice(&mut self, what: &str, f: impl Fn(&Notice) -> bool) -> Notice {
        let r = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match self.notices.recv().await {
                    Ok(n) if f(&n) => return n,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("notices closed: {e}"),
                }
            }
        })
        .await;
        r.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }
}

pub async fn start(config: ServerConfig, token: Option<&str>) -> Running {
    let app = Arc::new(TestApp {
        registry: StreamRegistry::new(Window {
            max_groups: 1000,
            max_frames: 100_000,
            max_bytes: 256 << 20,
        }),
        token: token.map(str::to_owned),
        early: Default::default(),
    });
    let notices = app.registry.notices();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = Server::new(app.clone(), config);
    let task = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        app,
        notices,
        stop: Some(stop),
        task: Some(task),
    }
}

pub fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn info() -> Arc<StreamInfo> {
    let v = H264Config::from_avcc(Bytes::from(testdata("x264_320x240.avcc"))).unwrap();
    let a = AacConfig::from_audio_specific_config(Bytes::from_static(&[0x12, 0x10])).unwrap();
    StreamInfo::new(
        1,
        vec![
            TrackInfo::new(TrackId(1), 90_000, CodecConfig::H264(v)).unwrap(),
            TrackInfo::new(TrackId(2), 44_100, CodecConfig::Aac(a)).unwrap(),
        ],
    )
    .unwrap()
}

/// `n` video frames at 25 fps (a keyframe every 25, B-frame offsets, sizes up to 40 KB) each
/// followed by an AAC frame.
pub fn frames(seed: u32, n: usize) -> Vec<Frame> {
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut out = Vec::new();
    for i in 0..n {
        let ms = 40 * i as i64;
        let cts = [80, 0, 40, 120, 40][i % 5];
        let len = if i % 25 == 0 {
            40_000
        } else {
            10 + (rnd() % 3000) as usize
        };
        let data: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        out.push(Frame::new(
            TrackId(1),
            ms * 90,
            (ms + cts) * 90,
            i % 25 == 0,
            data.into(),
        ));
        let t = rescale(23 * i as i64, 1000, 44_100);
        let data: Vec<u8> = (0..(100 + rnd() % 300)).map(|_| rnd() as u8).collect();
        out.push(Frame::new(TrackId(2), t, t, true, data.into()));
    }
    out
}

/// Collects frames from `consumer` until the stream ends (or `limit` passes).
pub async fn collect(
    mut consumer: Consumer,
    limit: Duration,
) -> (Vec<Frame>, Vec<Arc<StreamInfo>>, bool) {
    let mut frames = Vec::new();
    let mut infos = Vec::new();
    let ended = tokio::time::timeout(limit, async {
        while let Some(ev) = consumer.recv().await {
            match ev {
                Event::Frame(f) => frames.push(f),
                Event::Info(i) => infos.push(i),
                Event::Gap { frames } => panic!("consumer lost {frames} frames"),
                Event::End => return true,
                Event::Error(_) => return false,
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    (frames, infos, ended)
}
