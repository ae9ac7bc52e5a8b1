//! RTMP in, an ABR ladder out: like `rtmp_to_llhls`, but every stream is transcoded by
//! sigma-transcode into the built-in 720p/480p/360p ladder (keyframes aligned across rungs) and
//! each rendition is published as a variant of one LL-HLS stream.
//!
//! Try it:
//! ```text
//! cargo run --release -p sigma-examples --example transcode_ladder   # [RTMP_ADDR [HTTP_ADDR]]
//! ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine -c:v libx264 \
//!   -preset ultrafast -g 30 -c:a aac -f flv rtmp://127.0.0.1:1935/live/cam
//! curl http://127.0.0.1:8080/live/cam/index.m3u8    # three variants, one audio group
//! ```

use sigma_core::StreamKey;
use sigma_core::bus::{self, Producer, Subscriber, Window};
use sigma_llhls::{HttpService, LatencyMode, Origin, PublishOptions};
use sigma_rtmp::server::{Application, Server, ServerConfig};
use sigma_rtmp::session::{PublishRequest, Rejection};
use sigma_transcode::ladder::KeyframePolicy;
use sigma_transcode::{Ladder, Options};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

const MODE: LatencyMode = LatencyMode::Low;

struct Ingest(Origin);

impl Application for Ingest {
    async fn admit(
        &self,
        key: StreamKey,
        _: PublishRequest,
        _: SocketAddr,
    ) -> Result<Producer, Rejection> {
        if !key.is_valid() {
            return Err(Rejection::InvalidName(key.name));
        }
        let (producer, source) = bus::channel(Window::default());
        // The transcoder waits for the source's stream info, which comes after admission.
        tokio::spawn(transcode(self.0.clone(), key.name, source));
        Ok(producer)
    }
}

/// Transcodes `source` and publishes each rendition (the first carries the audio).
async fn transcode(origin: Origin, name: String, source: Subscriber) {
    let mut ladder = Ladder::default_ladder();
    // Keyframes at the mode's cadence whatever the publisher's GOP.
    ladder.keyframes = KeyframePolicy::Every {
        seconds: MODE.keyframe_interval().as_secs_f64(),
    };
    let attached = match sigma_transcode::attach(&ladder, &source, Options::default()).await {
        Ok(a) => a,
        Err(e) => return eprintln!("{name}: cannot transcode: {e}"),
    };
    let mut publications = Vec::new();
    for (i, r) in attached.outputs.renditions.iter().enumerate() {
        let opts = PublishOptions {
            variant: r.name.clone(),
            audio: i == 0,
            ..PublishOptions::new(MODE)
        };
        match origin.publish(&name, &r.subscriber, opts) {
            Ok(p) => publications.push(p),
            Err(e) => eprintln!("{name}/{}: {e}", r.name),
        }
    }
    println!(
        "{name}: {} renditions, {} skipped",
        publications.len(),
        attached.outputs.skipped.len()
    );
    for p in publications {
        p.finished().await;
    }
    let pump = attached.pump;
    let _ = tokio::task::spawn_blocking(move || pump.join()).await;
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
    let service = HttpService::new(origin);
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
