//! Our publisher against our server over 127.0.0.1: admission, frame fidelity, duplicate
//! publishers, shutdown.

mod common;

use common::{collect, frames, info, start};
use sigma_core::{StreamEvent, StreamKey, UnpublishReason};
use sigma_rtmp::Error;
use sigma_rtmp::publisher::Publisher;
use sigma_rtmp::server::{Notice, ServerConfig};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_over_loopback_keeps_every_frame() {
    let mut srv = start(ServerConfig::default(), Some("s3cret")).await;
    let url = format!("rtmp://{}/live/cam1?token=s3cret", srv.addr);
    let mut p = Publisher::connect(&url, T).await.unwrap();
    let key = StreamKey::new("live", "cam1");
    srv.wait_notice("published", |n| {
        matches!(n, Notice::Stream(StreamEvent::Published { stream, .. }) if stream.name == "cam1")
    })
    .await;
    let consumer = srv.app.registry.subscribe(&key).expect("stream is live");
    let reader = tokio::spawn(collect(consumer, Duration::from_secs(20)));

    // A second publisher for the same stream is refused with BadName.
    match Publisher::connect(&url, T).await {
        Err(Error::PublishRefused { code, .. }) => assert_eq!(code, "NetStream.Publish.BadName"),
        Ok(_) => panic!("second publisher accepted"),
        Err(e) => panic!("unexpected error {e}"),
    }
    // A wrong token is denied.
    let bad = format!("rtmp://{}/live/other?token=nope", srv.addr);
    match Publisher::connect(&bad, T).await {
        Err(Error::PublishRefused { code, .. }) => assert_eq!(code, "NetStream.Publish.Denied"),
        other => panic!("expected denial, got {:?}", other.err()),
    }

    let sent = frames(7, 75);
    p.send_info(info()).await.unwrap();
    for f in &sent {
        p.send(f).await.unwrap();
    }
    p.finish().await.unwrap();
    let (got, infos, ended) = reader.await.unwrap();
    assert!(ended, "stream ended normally");
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].tracks(), info().tracks());
    assert_eq!(got.len(), sent.len());
    for (g, f) in got.iter().zip(&sent) {
        assert_eq!(g, f);
    }
    let n = srv
        .wait_notice("unpublished", |n| {
            matches!(n, Notice::Stream(StreamEvent::Unpublished { .. }))
        })
        .await;
    let Notice::Stream(StreamEvent::Unpublished { reason, .. }) = n else {
        unreachable!()
    };
    assert_eq!(reason, UnpublishReason::Finished);
    assert!(!srv.app.registry.is_live(&key));
    // The name is free again.
    let again = Publisher::connect(&url, T).await.unwrap();
    again.finish().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_live_streams() {
    let srv = start(ServerConfig::default(), None).await;
    let url = format!("rtmp://{}/live/s", srv.addr);
    let mut p = Publisher::connect(&url, T).await.unwrap();
    p.send_info(info()).await.unwrap();
    for f in &frames(3, 5) {
        p.send(f).await.unwrap();
    }
    let consumer = srv
        .app
        .registry
        .subscribe(&StreamKey::new("live", "s"))
        .unwrap();
    let mut notices = srv.app.registry.notices();
    srv.shutdown().await;
    let (_, _, ended) = collect(consumer, Duration::from_secs(5)).await;
    assert!(ended);
    let mut saw = false;
    while let Ok(n) = notices.try_recv() {
        if let Notice::Stream(StreamEvent::Unpublished { reason, .. }) = n {
            assert_eq!(reason, UnpublishReason::Shutdown);
            saw = true;
        }
    }
    assert!(saw, "Unpublished(Shutdown) reported");
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restream_from_one_server_to_another() {
    let mut a = start(ServerConfig::default(), None).await;
    let b = start(ServerConfig::default(), None).await;
    let mut p = Publisher::connect(&format!("rtmp://{}/live/src", a.addr), T)
        .await
        .unwrap();
    a.wait_notice("published", |n| {
        matches!(n, Notice::Stream(StreamEvent::Published { .. }))
    })
    .await;
    let source = a
        .app
        .registry
        .subscribe(&StreamKey::new("live", "src"))
        .unwrap();
    // Restream a's stream to b as live/copy.
    let relay = Publisher::connect(&format!("rtmp://{}/live/copy", b.addr), T)
        .await
        .unwrap();
    let copy = b
        .app
        .registry
        .subscribe(&StreamKey::new("live", "copy"))
        .unwrap();
    let forward = tokio::spawn(relay.forward(source));
    let reader = tokio::spawn(collect(copy, Duration::from_secs(20)));
    let sent = frames(5, 50);
    p.send_info(info()).await.unwrap();
    for f in &sent {
        p.send(f).await.unwrap();
    }
    p.finish().await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(20), forward)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(n as usize, sent.len());
    let (got, infos, ended) = reader.await.unwrap();
    assert!(ended);
    assert_eq!(infos[0].tracks(), info().tracks());
    assert_eq!(got, sent);
    a.shutdown().await;
    b.shutdown().await;
}

/// An application that never answers.
struct Silent;

impl sigma_rtmp::server::Application for Silent {
    async fn admit(
        &self,
        _stream: StreamKey,
        _request: sigma_rtmp::session::PublishRequest,
        _remote: std::net::SocketAddr,
    ) -> Result<sigma_core::bus::Producer, sigma_rtmp::session::Rejection> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_that_never_answers_fails_after_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig {
        admission_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = sigma_rtmp::server::Server::new(std::sync::Arc::new(Silent), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    let t0 = std::time::Instant::now();
    match Publisher::connect(&format!("rtmp://{addr}/live/x"), T).await {
        Err(Error::PublishRefused { code, description }) => {
            assert_eq!(code, "NetStream.Publish.Failed");
            assert!(
                description.contains("no admission decision"),
                "{description}"
            );
        }
        other => panic!("expected a failure, got {:?}", other.err()),
    }
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let _ = stop.send(());
    tokio::time::timeout(T, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Twenty publishers at once, each stream intact and separate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_stay_separate() {
    let srv = start(ServerConfig::default(), None).await;
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let addr = srv.addr;
        let app = srv.app.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("s{i}");
            let mut p = Publisher::connect(&format!("rtmp://{addr}/live/{name}"), T)
                .await
                .unwrap();
            let consumer = app
                .registry
                .subscribe(&StreamKey::new("live", &name))
                .unwrap();
            let reader = tokio::spawn(collect(consumer, Duration::from_secs(30)));
            let sent = frames(100 + i, 30);
            p.send_info(info()).await.unwrap();
            for f in &sent {
                p.send(f).await.unwrap();
            }
            p.finish().await.unwrap();
            let (got, _, ended) = reader.await.unwrap();
            assert!(ended);
            assert_eq!(got, sent, "stream {name}");
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
    }
    srv.shutdown().await;
}
