//! Bad input over real sockets: each bad connection is closed with a logged, typed reason while
//! a healthy publisher on the same server keeps flowing, frame for frame.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{collect, frames, info, start, testdata};
use sigma_core::{StreamEvent, StreamKey, UnpublishReason};
use sigma_rtmp::chunk::{ChunkEncoder, ControlMessage, Message};
use sigma_rtmp::client::{ClientConfig, ClientEvent, ClientSession};
use sigma_rtmp::handshake::PACKET_SIZE;
use sigma_rtmp::publisher::Publisher;
use sigma_rtmp::server::{Notice, ServerConfig};
use sigma_rtmp::session::SessionConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

const T: Duration = Duration::from_secs(10);

async fn handshaken(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut c0c1 = vec![0u8; 1 + PACKET_SIZE];
    c0c1[0] = 3;
    s.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 2 * PACKET_SIZE];
    tokio::time::timeout(T, s.read_exact(&mut s0s1s2))
        .await
        .unwrap()
        .unwrap();
    s.write_all(&s0s1s2[1..1 + PACKET_SIZE]).await.unwrap();
    s
}

/// A connection that has been accepted as publisher of `live/name` (chunk size 4096).
async fn published(addr: SocketAddr, name: &str) -> TcpStream {
    let (config, _) = ClientConfig::from_url(&format!("rtmp://{addr}/live/{name}")).unwrap();
    let mut session = ClientSession::new(config, Instant::now(), 9);
    let mut s = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(T, async {
        loop {
            while let Some(b) = session.poll_transmit() {
                s.write_all(&b).await.unwrap();
            }
            while let Some(ev) = session.poll_event().unwrap() {
                if let ClientEvent::Publishing { .. } = ev {
                    return;
                }
            }
            while let Some(b) = session.poll_transmit() {
                s.write_all(&b).await.unwrap();
            }
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed during setup");
            session.handle_input(Instant::now(), &buf[..n]);
        }
    })
    .await
    .unwrap();
    s
}

fn encoder() -> ChunkEncoder {
    let mut e = ChunkEncoder::new();
    e.set_chunk_size(4096);
    e
}

fn media(type_id: u8, timestamp: u32, body: Bytes) -> Message {
    Message {
        csid: 10,
        timestamp,
        type_id,
        stream_id: 1,
        payload: body,
    }
}

/// Waits until the server closed the connection whose local address is `local`, and returns
/// the reason it gave.
async fn closed_reason(notices: &mut broadcast::Receiver<Notice>, local: SocketAddr) -> String {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match notices.recv().await {
                Ok(Notice::ConnectionClosed { remote, error }) if remote == local => {
                    return error.map(|e| e.to_string()).unwrap_or_default();
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("connection closed in time")
}

/// Sends `bytes` on `s` and checks the server closes it with a reason containing `expect`; the
/// peer sees the socket close too.
async fn expect_closed(
    mut notices: broadcast::Receiver<Notice>,
    mut s: TcpStream,
    bytes: &[u8],
    expect: &str,
) {
    let local = s.local_addr().unwrap();
    // The server may close before everything is written; that is fine.
    let _ = s.write_all(bytes).await;
    let reason = closed_reason(&mut notices, local).await;
    assert!(
        reason.contains(expect),
        "reason {reason:?} should mention {expect:?}"
    );
    let mut buf = vec![0u8; 65536];
    let closed = tokio::time::timeout(T, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "socket closed by the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_close_alone_while_a_healthy_publisher_flows() {
    let config = ServerConfig {
        session: SessionConfig {
            handshake_timeout: Duration::from_millis(800),
            ..SessionConfig::default()
        },
        ..ServerConfig::default()
    };
    let mut srv = start(config, None).await;
    let addr = srv.addr;
    let app = srv.app.clone();

    // The healthy publisher: 100 video + 100 audio frames over about 2 seconds.
    let sent = frames(11, 100);
    let mut p = Publisher::connect(&format!("rtmp://{addr}/live/healthy"), T)
        .await
        .unwrap();
    let consumer = app
        .registry
        .subscribe(&StreamKey::new("live", "healthy"))
        .unwrap();
    let reader = tokio::spawn(collect(consumer, Duration::from_secs(60)));
    let to_send = sent.clone();
    let healthy = tokio::spawn(async move {
        p.send_info(info()).await.unwrap();
        for pair in to_send.chunks(2) {
            for f in pair {
                p.send(f).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p.finish().await.unwrap();
    });

    let notices = || app.registry.notices();
    let garbage = async {
        let s = TcpStream::connect(addr).await.unwrap();
        expect_closed(
            notices(),
            s,
            b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
            "unsupported RTMP version 71",
        )
        .await;
    };
    let huge_chunk_size = async {
        let s = handshaken(addr).await;
        let mut out = BytesMut::new();
        ChunkEncoder::new().encode(
            &ControlMessage::SetChunkSize(0x7FFF_FFFF).to_message(0),
            &mut out,
        );
        expect_closed(notices(), s, &out, "chunk size 2147483647").await;
    };
    let huge_message = async {
        let s = handshaken(addr).await;
        // Type-0 header announcing a 16 MiB - 1 video message (the 24-bit maximum), then data.
        let mut out = BytesMut::new();
        out.put_slice(&[0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]);
        out.put_bytes(0xAB, 4096);
        expect_closed(notices(), s, &out, "message of 16777215 bytes").await;
    };
    let stalled_handshake = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&[3u8; 100]).await.unwrap();
        expect_closed(notices(), s, &[], "handshake not completed").await;
    };
    let extended_timestamp_flood = async {
        let s = published(addr, "flood").await;
        let mut enc = encoder();
        let mut out = BytesMut::new();
        let mut seq = BytesMut::from(&[0x17u8, 0, 0, 0, 0][..]);
        seq.extend_from_slice(&testdata("x264_320x240.avcc"));
        enc.encode(&media(9, 0x0100_0000, seq.freeze()), &mut out);
        // Every message carries an extended timestamp, each jumping ~20 days ahead.
        for i in 1..2000u32 {
            let ts = 0x0100_0000u32.wrapping_add(i.wrapping_mul(0x7000_0000)) | 0x0100_0000;
            let body = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]);
            enc.encode(&media(9, ts, body), &mut out);
        }
        expect_closed(notices(), s, &out, "timestamp jumped").await;
    };
    let video_first = async {
        let s = published(addr, "early").await;
        let mut out = BytesMut::new();
        let body = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]);
        encoder().encode(&media(9, 0, body), &mut out);
        expect_closed(notices(), s, &out, "before its sequence header").await;
    };
    tokio::join!(
        garbage,
        huge_chunk_size,
        huge_message,
        stalled_handshake,
        extended_timestamp_flood,
        video_first
    );

    // Streams whose publisher failed are unpublished with the protocol error.
    assert!(!app.registry.is_live(&StreamKey::new("live", "flood")));
    assert!(!app.registry.is_live(&StreamKey::new("live", "early")));

    tokio::time::timeout(Duration::from_secs(30), healthy)
        .await
        .unwrap()
        .unwrap();
    let (got, _, ended) = reader.await.unwrap();
    assert!(ended);
    assert_eq!(got.len(), sent.len(), "the healthy stream lost nothing");
    assert!(got.iter().zip(&sent).all(|(a, b)| a == b));
    let n = srv
        .wait_notice("healthy unpublished", |n| {
            matches!(n, Notice::Stream(StreamEvent::Unpublished { stream, .. }) if stream.name == "healthy")
        })
        .await;
    let Notice::Stream(StreamEvent::Unpublished { reason, .. }) = n else {
        unreachable!()
    };
    assert_eq!(reason, UnpublishReason::Finished);
    let _ = Arc::strong_count(&app);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_publisher_reports_a_protocol_error() {
    let srv = start(ServerConfig::default(), None).await;
    let mut notices = srv.app.registry.notices();
    let mut s = published(srv.addr, "x").await;
    let mut out = BytesMut::new();
    encoder().encode(&media(8, 0, Bytes::from_static(&[0x2F, 0, 1, 2])), &mut out);
    s.write_all(&out).await.unwrap();
    let reason = tokio::time::timeout(T, async {
        loop {
            if let Ok(Notice::Stream(StreamEvent::Unpublished { reason, .. })) =
                notices.recv().await
            {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    match reason {
        UnpublishReason::ProtocolError(text) => assert!(text.contains("MP3"), "{text}"),
        other => panic!("{other:?}"),
    }
    srv.shutdown().await;
}
