//! A custom admission policy: an [`Application`] that lets only listed stream names publish,
//! each with its own key, and only during opening hours (UTC), and otherwise hands the publisher
//! to sigma-rtmp's in-memory [`StreamRegistry`]. Every decision, and each stream's lifecycle, is
//! printed; each refusal reaches the publisher with its own RTMP status code.
//!
//! Try it:
//! ```text
//! cargo run -p sigma-examples --example admission_policy      # [RTMP_ADDR]
//! # accepted (during opening hours):
//! ffmpeg -re -f lavfi -i testsrc2 -c:v libx264 -g 30 -f flv 'rtmp://127.0.0.1:1935/live/studio?key=studio-key'
//! # NetStream.Publish.Denied (a bad key; a name not listed):
//! ffmpeg -re -f lavfi -i testsrc2 -c:v libx264 -f flv 'rtmp://127.0.0.1:1935/live/studio?key=guess'
//! ffmpeg -re -f lavfi -i testsrc2 -c:v libx264 -f flv 'rtmp://127.0.0.1:1935/live/other'
//! ```

use sigma_core::bus::{Producer, Window};
use sigma_core::{StreamEvent, StreamKey};
use sigma_rtmp::server::{Application, Notice, Server, ServerConfig, StreamRegistry};
use sigma_rtmp::session::{PublishRequest, Rejection};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// Stream names allowed to publish, with their keys.
const ALLOWED: &[(&str, &str)] = &[("studio", "studio-key"), ("field", "field-key")];
/// Opening hours, UTC: publishing is allowed from `OPEN` up to `CLOSE` (hours, 0–24).
const OPEN: u64 = 0;
const CLOSE: u64 = 24;

struct Policy {
    streams: StreamRegistry,
}

impl Policy {
    fn decide(&self, key: &StreamKey, query: Option<&str>) -> Result<(), Rejection> {
        if key.app != "live" {
            return Err(Rejection::UnknownApp(key.app.clone()));
        }
        let Some((_, want)) = ALLOWED.iter().find(|(name, _)| *name == key.name) else {
            return Err(Rejection::Denied(format!(
                "{} may not publish here",
                key.name
            )));
        };
        let given = query
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("key="));
        if given != Some(*want) {
            return Err(Rejection::BadKey);
        }
        let hour = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 3600 % 24);
        if !(OPEN..CLOSE).contains(&hour) {
            return Err(Rejection::Denied(format!(
                "closed: publishing is open {OPEN}:00–{CLOSE}:00 UTC"
            )));
        }
        Ok(())
    }
}

impl Application for Policy {
    async fn admit(
        &self,
        key: StreamKey,
        req: PublishRequest,
        remote: SocketAddr,
    ) -> Result<Producer, Rejection> {
        if let Err(why) = self.decide(&key, req.query.as_deref()) {
            println!("{remote} {key}: refused with {} ({why})", why.code());
            return Err(why);
        }
        println!("{remote} {key}: accepted");
        // One publisher per stream; a second one gets AlreadyPublishing (BadName).
        self.streams.admit(key, req, remote).await
    }

    fn notice(&self, notice: Notice) {
        match &notice {
            Notice::Stream(StreamEvent::CodecChanged { stream, info, .. }) => {
                let codecs: Vec<String> = info
                    .tracks()
                    .iter()
                    .map(|t| t.codec().codec_string())
                    .collect();
                println!("{stream}: tracks {codecs:?}");
            }
            Notice::Stream(StreamEvent::Unpublished { stream, reason, .. }) => {
                println!("{stream}: ended ({reason:?})")
            }
            _ => {}
        }
        self.streams.notice(notice);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1935".into());
    let listener = TcpListener::bind(&addr).await?;
    println!(
        "publish to rtmp://{}/live/NAME?key=KEY; allowed: {ALLOWED:?}",
        listener.local_addr()?
    );
    let policy = Arc::new(Policy {
        streams: StreamRegistry::new(Window::default()),
    });
    let server = Server::new(policy, ServerConfig::default());
    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
