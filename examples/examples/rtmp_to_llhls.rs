//! RTMP in, LL-HLS out, with sigma-rtmp's server and sigma-llhls's origin directly (no
//! configuration, no registry): every published stream is packaged in ultra-low latency mode.
//!
//! Try it:
//! ```text
//! cargo run -p sigma-examples --example rtmp_to_llhls      # [RTMP_ADDR [HTTP_ADDR]]
//! ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine -c:v libx264 \
//!   -preset ultrafast -tune zerolatency -g 30 -c:a aac -f flv rtmp://127.0.0.1:1935/live/cam
//! curl http://127.0.0.1:8080/live/cam/video.m3u8   # or play .../index.m3u8 with hls.js
//! ```

use sigma_core::StreamKey;
use sigma_core::bus::{self, Producer, Window};
use sigma_llhls::{HttpService, LatencyMode, Origin, PublishOptions};
use sigma_rtmp::server::{Application, Server, ServerConfig};
use sigma_rtmp::session::{PublishRequest, Rejection};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Admits every publisher: its frames go into a bus the origin packages.
struct Ingest(Origin);

impl Application for Ingest {
    async fn admit(
        &self,
        key: StreamKey,
        _: PublishRequest,
        _: SocketAddr,
    ) -> Result<Producer, Rejection> {
        let (producer, subscriber) = bus::channel(Window::default());
        match self.0.publish(
            &key.name,
            &subscriber,
            PublishOptions::new(LatencyMode::UltraLow),
        ) {
            Ok(_publication) => Ok(producer), // packages until the publisher's bus ends
            Err(sigma_llhls::Error::InvalidName(n)) => Err(Rejection::InvalidName(n)),
            Err(e) => Err(Rejection::failed(e)),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let rtmp = TcpListener::bind(args.next().as_deref().unwrap_or("127.0.0.1:1935")).await?;
    let http = TcpListener::bind(args.next().as_deref().unwrap_or("127.0.0.1:8080")).await?;
    println!(
        "publish rtmp://{}/live/NAME, play http://{}/live/NAME/index.m3u8",
        rtmp.local_addr()?,
        http.local_addr()?
    );
    let origin = Origin::new();
    let server = Server::new(Arc::new(Ingest(origin.clone())), ServerConfig::default());
    tokio::spawn(async move { server.serve(rtmp, std::future::pending()).await });
    let service = HttpService::new(origin); // serves /live/{stream}/…
    loop {
        let (tcp, _) = http.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(tcp);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder.serve_connection(io, handler).await;
        });
    }
}
