//! The whole Sigma server embedded in a program (the `sigma_server` library with its embedded
//! default configuration), printing the registry's stream events as they happen.
//!
//! Try it:
//! ```text
//! cargo run -p sigma-examples --example stream_events      # [RTMP_ADDR [HTTP_ADDR]]
//! ffmpeg -re -f lavfi -i testsrc2 -f lavfi -i sine -t 10 -c:v libx264 -g 30 -c:a aac \
//!   -f flv rtmp://127.0.0.1:1935/live/cam
//! # prints "published live/cam", then, 10 s after ffmpeg stops (the grace period),
//! # "unpublished live/cam (Finished)"; meanwhile http://127.0.0.1:8080/live/cam/player plays it.
//! ```

use sigma_core::StreamEvent;
use sigma_server::config::{Config, EMBEDDED_DEFAULT};
use tokio::sync::broadcast::error::RecvError;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut config = Config::parse(EMBEDDED_DEFAULT, "embedded default")?;
    config.server.rtmp_listen = args.next().as_deref().unwrap_or("127.0.0.1:1935").parse()?;
    config.server.http_listen = args.next().as_deref().unwrap_or("127.0.0.1:8080").parse()?;
    let running = sigma_server::server::start(config).await?;
    println!(
        "publish rtmp://{}/live/NAME, watch http://{}/live/NAME/player",
        running.rtmp_addr, running.http_addr
    );
    let mut events = running.registry.events();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(StreamEvent::Published { stream, remote, .. }) => println!("published {stream} (from {remote:?})"),
                Ok(StreamEvent::Unpublished { stream, reason, .. }) => println!("unpublished {stream} ({reason:?})"),
                Ok(other) => println!("{} : {other:?}", other.stream()),
                Err(RecvError::Lagged(n)) => println!("(missed {n} events)"),
                Err(RecvError::Closed) => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    running.shutdown().await;
    Ok(())
}
