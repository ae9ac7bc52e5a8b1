//! One simulated broadcaster: publishes a [`Media`] in a loop, in real time, with the sigma-rtmp
//! publish client.

use crate::media::Media;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What one publisher did.
#[derive(Clone, Debug, Default)]
pub struct IngestStats {
    /// Frames whose time came before the run ended.
    pub frames_due: u64,
    /// Frames written to the connection.
    pub frames_sent: u64,
    /// Payload bytes of the frames sent.
    pub bytes_sent: u64,
    /// From the first frame's due time to the end of the run.
    pub elapsed: Duration,
    /// How far behind its due time the latest frame was sent.
    pub max_late: Duration,
    /// The error that stopped publishing, if one did.
    pub error: Option<String>,
}

impl IngestStats {
    /// Frames due but not sent (connection refused, closed or stalled).
    pub fn frames_not_sent(&self) -> u64 {
        self.frames_due.saturating_sub(self.frames_sent)
    }
}

/// Publishes `media` to `url` from `start` until `end`, pacing frames by the wall clock and
/// growing timestamps across passes. `timeout` bounds the connection setup and each write.
pub async fn publish(
    url: String,
    media: Arc<Media>,
    start: Instant,
    end: Instant,
    timeout: Duration,
) -> IngestStats {
    let mut stats = IngestStats::default();
    tokio::time::sleep_until(start).await;
    let mut publisher = match sigma_rtmp::publisher::Publisher::connect(&url, timeout).await {
        Ok(p) => Some(p),
        Err(e) => {
            stats.error = Some(format!("connect: {e}"));
            None
        }
    };
    if let Some(p) = &mut publisher {
        if let Err(e) = p.send_info(media.info().clone()).await {
            stats.error = Some(format!("stream info: {e}"));
            publisher = None;
        }
    }
    // Frames are due from the moment the connection is ready (or failed).
    let origin = Instant::now();
    stats.elapsed = end.saturating_duration_since(origin);
    let pass = media.loop_duration().max(Duration::from_millis(1));
    // Bounded: enough passes to cover the run, one more for rounding.
    let passes = (stats.elapsed.as_secs_f64() / pass.as_secs_f64()).ceil() as u64 + 1;
    'run: for n in 0..passes {
        let pass_start = origin + pass.mul_f64(n as f64);
        for (frame, offset) in media.frames().iter().zip(media.offsets()) {
            let due = pass_start + *offset;
            if due >= end {
                break 'run;
            }
            stats.frames_due += 1;
            let Some(p) = &mut publisher else { continue };
            tokio::time::sleep_until(due).await;
            stats.max_late = stats
                .max_late
                .max(Instant::now().saturating_duration_since(due));
            let shifted = frame.clone().shifted(media.loop_shift(frame.track(), n));
            match p.send(&shifted).await {
                Ok(()) => {
                    stats.frames_sent += 1;
                    stats.bytes_sent += shifted.len() as u64;
                }
                Err(e) => {
                    stats.error = Some(format!("send: {e}"));
                    publisher = None;
                }
            }
        }
    }
    if let Some(p) = publisher {
        if let Err(e) = p.finish().await {
            stats.error.get_or_insert(format!("finish: {e}"));
        }
    }
    stats
}
