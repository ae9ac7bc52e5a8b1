//! Restreaming: while an API live stream is `active` on this node, its source is pushed to
//! each of its simulcast targets with the `sigma-rtmp` publish client.
//!
//! - One supervisor per broadcast (`supervise`) starts a pusher per target once the stream
//!   is active, and keeps the set in line with the store: on
//!   [`Command::SimulcastChanged`](sigma_control::Command::SimulcastChanged) (this node's API)
//!   and every [`RESYNC`] (another node's API). When the broadcast ends, every pusher finishes
//!   its publish and its target goes `idle`.
//! - A pusher reads the stream's long-lived bus with a consumer of its own, so a slow or dead
//!   target only loses its own frames (it skips to the next group when it falls behind the
//!   window) and never holds up ingest, packaging or another target. Each write is bounded by
//!   [`WRITE_TIMEOUT`]; a failure makes the target `errored`, and it reconnects with
//!   [`Backoff`] at the live edge.
//! - A target's first pusher of a broadcast that went straight to `active` starts at the
//!   broadcast's first frame, so the target gets every frame; after a preview, or for a target
//!   added later, it starts at the newest group.
//! - Unless private targets are allowed, the pusher connects only to public addresses (the
//!   name is resolved here, each time, so it cannot be pointed at an internal address after
//!   the API checked it).
//!
//! The target's stream key is a secret: logs and the target's `error` name the target's id
//! and never the key.

use crate::relay::RelayState;
use sigma_control::Control;
use sigma_control::lifecycle::Status;
use sigma_control::simulcast::{Backoff, TargetRecord, TargetStatus};
use sigma_core::bus::{Consumer, Subscriber};
use sigma_rtmp::client::ClientConfig;
use sigma_rtmp::publisher::Publisher;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// How often a supervisor reads its targets from the store even when not told of a change.
pub const RESYNC: Duration = Duration::from_secs(2);
/// Bound on the connection setup and on every write to a target.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an ended broadcast's pushers get to send what they still hold and finish.
const FINISH: Duration = Duration::from_secs(5);

/// The supervisors' wake-ups, by live stream id; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Simulcasts {
    wakes: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Simulcasts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.wakes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the supervisor of `live_stream_id`, if this node runs one, to look again.
    pub(crate) fn changed(&self, live_stream_id: &str) {
        if let Some(n) = self.lock().get(live_stream_id) {
            n.notify_one();
        }
    }

    fn register(&self, live_stream_id: &str) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        self.lock().insert(live_stream_id.to_string(), n.clone());
        n
    }

    fn unregister(&self, live_stream_id: &str, n: &Arc<Notify>) {
        let mut m = self.lock();
        if m.get(live_stream_id).is_some_and(|x| Arc::ptr_eq(x, n)) {
            m.remove(live_stream_id);
        }
    }
}

/// One broadcast's restreaming.
pub(crate) struct Broadcast {
    pub(crate) control: Control,
    pub(crate) simulcasts: Simulcasts,
    pub(crate) live_stream_id: String,
    /// The stream's long-lived bus.
    pub(crate) stream: Subscriber,
    /// A reader from the broadcast's first frame.
    pub(crate) from_start: Consumer,
    /// The relay's state: the broadcast has ended when it says so.
    pub(crate) relay: watch::Receiver<RelayState>,
    pub(crate) allow_private: bool,
}

/// Runs one broadcast's restreaming until it ends.
pub(crate) async fn supervise(b: Broadcast) {
    let wake = b.simulcasts.register(&b.live_stream_id);
    let mut ended = b.relay.clone();
    let mut from_start = Some(b.from_start.clone());
    let mut started = false;
    let mut pushers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if ended.borrow_and_update().ended {
            break;
        }
        if !started {
            match b.control.live_status(&b.live_stream_id) {
                Some(Status::Active) => started = true,
                // Preview frames are not for the targets: start at the newest group instead.
                Some(Status::Preview) => from_start = None,
                _ => {}
            }
        }
        if started {
            match b.control.store().simulcast_targets(&b.live_stream_id).await {
                Ok(targets) => {
                    pushers.retain(|id, task| {
                        let keep = targets.iter().any(|t| t.id == *id);
                        if !keep {
                            task.abort();
                            tracing::info!(live_stream = %b.live_stream_id, simulcast_target = %id, "simulcast target removed; push stopped");
                        }
                        keep
                    });
                    for t in targets {
                        if pushers.contains_key(&t.id) {
                            continue;
                        }
                        let first = match &from_start {
                            Some(c) => c.clone(),
                            None => b.stream.subscribe(),
                        };
                        let id = t.id.clone();
                        let task = tokio::spawn(push(
                            b.control.clone(),
                            t,
                            first,
                            b.stream.clone(),
                            b.allow_private,
                        ));
                        pushers.insert(id, task);
                    }
                    // Every later target starts at the live edge.
                    from_start = None;
                }
                Err(e) => {
                    tracing::warn!(live_stream = %b.live_stream_id, error = %e, "simulcast targets not read");
                }
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            _ = resync.tick() => {}
            r = ended.changed() => {
                if r.is_err() {
                    break;
                }
            }
        }
    }
    b.simulcasts.unregister(&b.live_stream_id, &wake);
    // The bus has ended: pushers that are connected forward what is left and finish.
    let deadline = tokio::time::Instant::now() + FINISH;
    for (id, mut task) in pushers {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
        }
        b.control.report_target(&id, TargetStatus::Idle, None);
    }
}

/// Pushes the stream to one target until the stream ends: connect, forward, and after a
/// failure wait [`Backoff`] and reconnect at the live edge.
async fn push(
    control: Control,
    target: TargetRecord,
    first: Consumer,
    stream: Subscriber,
    allow_private: bool,
) {
    let mut backoff = Backoff::default();
    let mut consumer = Some(first);
    control.report_target(&target.id, TargetStatus::Starting, None);
    loop {
        let c = consumer.take().unwrap_or_else(|| stream.subscribe());
        let failure = match connect(&target, allow_private).await {
            Ok(p) => {
                tracing::info!(simulcast_target = %target.id, live_stream = %target.live_stream_id, "simulcast target connected");
                control.report_target(&target.id, TargetStatus::Broadcasting, None);
                let since = Instant::now();
                match p.forward(c).await {
                    Ok(frames) => {
                        tracing::info!(simulcast_target = %target.id, frames, "simulcast push finished");
                        return;
                    }
                    Err(e) => {
                        backoff.connected_for(since.elapsed());
                        e.to_string()
                    }
                }
            }
            Err(e) => e,
        };
        let error = target.redact(&failure);
        let wait = backoff.next(rand::random::<f64>());
        tracing::warn!(simulcast_target = %target.id, live_stream = %target.live_stream_id,
            %error, retry_in = ?wait, "simulcast target failed");
        control.report_target(&target.id, TargetStatus::Errored, Some(error));
        tokio::time::sleep(wait).await;
    }
}

/// Where a target's URL leads: the publish config (the target's key as stream name) and the
/// addresses to try.
fn publish_config(t: &TargetRecord) -> Result<(ClientConfig, String, u16), String> {
    let u = url::Url::parse(&t.url).map_err(|_| "the target URL does not parse".to_string())?;
    let host = u
        .host_str()
        .ok_or_else(|| "the target URL has no host".to_string())?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = u.port().unwrap_or(1935);
    let app = u.path().trim_matches('/').to_string();
    let tc_url = t.url.trim_end_matches('/').to_string();
    let config = ClientConfig {
        app,
        tc_url,
        stream_name: t.stream_key.clone(),
        digest_handshake: false,
        session: Default::default(),
    };
    Ok((config, host, port))
}

/// Connects and publishes to `t`, refusing non-public addresses unless allowed. The error is
/// text for the target's `error` (redacted by the caller).
async fn connect(t: &TargetRecord, allow_private: bool) -> Result<Publisher, String> {
    let (config, host, port) = publish_config(t)?;
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        WRITE_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
        Err(_) => return Err(format!("cannot resolve {host}: timed out")),
    };
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| allow_private || sigma_control::webhooks::is_public(a.ip()))
        .collect();
    let Some(first) = allowed.first() else {
        return Err(format!(
            "{host} has no public address (private targets are not allowed)"
        ));
    };
    let mut last = String::new();
    for addr in std::iter::once(first).chain(allowed.iter().skip(1)) {
        match Publisher::connect_with(config.clone(), &addr.to_string(), WRITE_TIMEOUT).await {
            Ok(p) => return Ok(p),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> TargetRecord {
        TargetRecord {
            id: "st_x".into(),
            live_stream_id: "ls_x".into(),
            url: url.into(),
            stream_key: "key?x=1".into(),
            status: TargetStatus::Idle,
            error: None,
            status_changed_at: 0,
            created_at: 0,
        }
    }

    #[test]
    fn the_key_is_the_stream_name() {
        let (c, host, port) = publish_config(&target("rtmp://example.com/live2")).unwrap();
        assert_eq!(
            (c.app.as_str(), c.tc_url.as_str()),
            ("live2", "rtmp://example.com/live2")
        );
        assert_eq!(c.stream_name, "key?x=1");
        assert_eq!((host.as_str(), port), ("example.com", 1935));
        let (_, host, port) = publish_config(&target("rtmp://[::1]:1940/app")).unwrap();
        assert_eq!((host.as_str(), port), ("::1", 1940));
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let e = connect(&target("rtmp://127.0.0.1:9/live"), false)
            .await
            .err()
            .unwrap();
        assert!(e.contains("no public address"), "{e}");
        // Allowed, it tries (and nothing listens on the discard port).
        let e = connect(&target("rtmp://127.0.0.1:9/live"), true)
            .await
            .err()
            .unwrap();
        assert!(!e.contains("no public address"), "{e}");
    }

    #[tokio::test]
    async fn a_change_wakes_only_its_supervisor() {
        let s = Simulcasts::default();
        let a = s.register("ls_a");
        let b = s.register("ls_b");
        s.changed("ls_a");
        assert!(
            tokio::time::timeout(Duration::from_millis(100), a.notified())
                .await
                .is_ok()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.notified())
                .await
                .is_err()
        );
        s.unregister("ls_a", &a);
        assert!(s.lock().get("ls_a").is_none());
    }
}
