//! RTMP admission and the traffic between the control plane and the media side.
//!
//! - A publish to `live/{name}` whose name has the shape of a stream key
//!   ([`is_stream_key_shape`]) is an API live stream's: [`Control::admit`] decides, and the
//!   stream is packaged into the registry's [API origin](Registry::api_origin) under its live
//!   stream id, with the live stream's latency, ladder and `reconnect_window`. Such a name is
//!   never taken for an open stream name, so a reset or deleted key is refused.
//! - Any other publish goes to the configured applications ([`Registry::admit`]).
//! - The media side reports to the control plane: publisher lost (the RTMP publish ended),
//!   first segment playable, broadcast ended (the relay finished). The control plane's
//!   [`Command`]s come back as [`Registry::disconnect`] and [`Registry::end`].
//!
//! The stream key is a secret: logs, refusals and events name the live stream's id instead.

use crate::meter::{IngestMeter, Reading};
use crate::registry::{Packaging, Registry};
use crate::simulcast::{self, Broadcast, Simulcasts};
use sigma_control::admission::{Decision, HookRequest, Hooks};
use sigma_control::control::AdmitError;
use sigma_control::id::is_stream_key_shape;
use sigma_control::lifecycle::Input;
use sigma_control::model::IngestStats;
use sigma_control::{Command, Control};
use sigma_core::bus::Producer;
use sigma_core::bus::{Consumer, Event};
use sigma_core::{StreamEvent, StreamKey};
use sigma_rtmp::server::{Application, Notice};
use sigma_rtmp::session::{PublishRequest, Rejection};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::broadcast;

/// The RTMP application API live streams publish to: `rtmp://HOST/live/{stream_key}`.
pub const INGEST_APP: &str = "live";

/// The registry namespace (the [`StreamKey::app`]) of API live streams, named by their id.
/// It is a reserved first segment, so no configured application can take it.
pub const API_NAMESPACE: &str = "v";

/// The registry key of API live stream `live_stream_id`.
pub fn api_stream(live_stream_id: &str) -> StreamKey {
    StreamKey::new(API_NAMESPACE, live_stream_id)
}

/// The packaging preset for an API latency mode.
pub fn media_mode(m: sigma_control::model::LatencyMode) -> sigma_llhls::LatencyMode {
    use sigma_control::model::LatencyMode as Api;
    match m {
        Api::Normal => sigma_llhls::LatencyMode::Normal,
        Api::Low => sigma_llhls::LatencyMode::Low,
        Api::UltraLow => sigma_llhls::LatencyMode::UltraLow,
    }
}

/// The API latency mode of a packaging preset.
pub fn api_mode(m: sigma_llhls::LatencyMode) -> sigma_control::model::LatencyMode {
    use sigma_control::model::LatencyMode as Api;
    match m {
        sigma_llhls::LatencyMode::Normal => Api::Normal,
        sigma_llhls::LatencyMode::Low => Api::Low,
        sigma_llhls::LatencyMode::UltraLow => Api::UltraLow,
    }
}

/// Whether a publish to `stream` is an API live stream's (by the shape of its name).
pub fn is_api_publish(stream: &StreamKey) -> bool {
    stream.app == INGEST_APP && is_stream_key_shape(&stream.name)
}

/// How a stream is named in logs: API stream keys are secrets and never shown.
pub fn loggable(stream: &StreamKey) -> String {
    if is_api_publish(stream) {
        format!("{INGEST_APP}/[stream key]")
    } else {
        stream.to_string()
    }
}

/// Bridges RTMP admission to the control plane and the registry.
pub(crate) struct Ingest {
    pub(crate) registry: Registry,
    pub(crate) control: Control,
    hooks: Option<Arc<Hooks>>,
    simulcasts: Simulcasts,
    /// Whether simulcast targets may be on private addresses.
    simulcast_allow_private: bool,
    /// API publishers connected to this node: stream key → live stream id, to report their
    /// end (the RTMP side names streams by the key they published with).
    publishing: Mutex<HashMap<String, String>>,
}

impl Ingest {
    pub(crate) fn new(
        registry: Registry,
        control: Control,
        hooks: Option<Arc<Hooks>>,
        simulcasts: Simulcasts,
    ) -> Self {
        let simulcast_allow_private = registry.config().simulcast.allow_private_targets;
        Ingest {
            registry,
            control,
            hooks,
            simulcasts,
            simulcast_allow_private,
            publishing: Mutex::new(HashMap::new()),
        }
    }

    fn publishing(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.publishing.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn admit_api(&self, key: &str, remote: SocketAddr) -> Result<Producer, Rejection> {
        let a = match self.control.admit(key).await {
            Ok(a) => a,
            Err(e) => {
                let r = match e {
                    AdmitError::UnknownKey => Rejection::BadKey,
                    AdmitError::Disabled(id) => Rejection::Disabled(api_stream(&id)),
                    AdmitError::AlreadyPublishing(id) => {
                        Rejection::AlreadyPublishing(api_stream(&id))
                    }
                    AdmitError::Store(e) => Rejection::failed(e),
                };
                tracing::warn!(%remote, reason = %r, code = r.code(), "publish refused (API stream key)");
                return Err(r);
            }
        };
        let id = a.live_stream_id.clone();
        let config = self.registry.config();
        let packaging = || Packaging {
            origin: self.registry.api_origin().clone(),
            mode: media_mode(a.latency_mode),
            ladder: a.ladder.as_deref().and_then(|n| config.ladder(n)),
            grace: a.reconnect_window,
        };
        match self.registry.start_or_resume(api_stream(&id), packaging) {
            Ok(admitted) => {
                tracing::info!(live_stream = %id, %remote, mode = admitted.mode.name(),
                    resumed = admitted.resumed, "publish accepted");
                self.publishing().insert(key.to_string(), id.clone());
                if let (false, Some(from_start)) = (admitted.resumed, admitted.from_start) {
                    let broadcast = Broadcast {
                        control: self.control.clone(),
                        simulcasts: self.simulcasts.clone(),
                        live_stream_id: id.clone(),
                        stream: admitted.stream.clone(),
                        from_start,
                        relay: admitted.relay.watch(),
                        allow_private: self.simulcast_allow_private,
                    };
                    tokio::spawn(follow(
                        self.control.clone(),
                        self.registry.clone(),
                        id,
                        admitted.instance,
                        admitted.relay.clone(),
                        broadcast,
                    ));
                }
                Ok(admitted.producer)
            }
            Err(r) => {
                tracing::warn!(live_stream = %id, %remote, reason = %r, code = r.code(), "publish refused");
                // Undo the admission: the broadcast goes on without this publisher, or there is
                // none.
                let input = if a.resumed {
                    Input::PublisherLost
                } else {
                    Input::BroadcastEnded
                };
                self.control.report(&id, input);
                Err(r)
            }
        }
    }
}

impl Application for Ingest {
    async fn admit(
        &self,
        stream: StreamKey,
        request: PublishRequest,
        remote: SocketAddr,
    ) -> Result<Producer, Rejection> {
        let query = request.query.unwrap_or_default();
        if is_api_publish(&stream) {
            if let Some(hooks) = &self.hooks {
                // The hook is told the live stream's id, never the key.
                let id = match self.control.store().live_stream_by_key(&stream.name).await {
                    Ok(Some(s)) => s.id,
                    Ok(None) => {
                        tracing::warn!(%remote, reason = %Rejection::BadKey, "publish refused (API stream key)");
                        return Err(Rejection::BadKey);
                    }
                    Err(e) => return Err(Rejection::failed(e)),
                };
                let req = HookRequest::publish(Some(id.clone()), INGEST_APP, None, remote, &query);
                if let Decision::Deny(reason) = hooks.decide(&req).await {
                    tracing::warn!(live_stream = %id, %remote, %reason, "publish refused by the admission hook");
                    return Err(Rejection::Denied(reason));
                }
            }
            return self.admit_api(&stream.name, remote).await;
        }
        if let Some(hooks) = &self.hooks {
            let req = HookRequest::publish(None, &stream.app, Some(&stream.name), remote, &query);
            if let Decision::Deny(reason) = hooks.decide(&req).await {
                tracing::warn!(stream = %stream, %remote, %reason, "publish refused by the admission hook");
                return Err(Rejection::Denied(reason));
            }
        }
        match self.registry.admit(&stream.app, &stream.name, &query) {
            Ok(a) => {
                tracing::info!(stream = %a.key, %remote, mode = a.mode.name(), resumed = a.resumed, "publish accepted");
                Ok(a.producer)
            }
            Err(e) => {
                tracing::warn!(stream = %stream, %remote, reason = %e, code = e.code(), "publish refused");
                Err(e)
            }
        }
    }

    fn notice(&self, notice: Notice) {
        match notice {
            Notice::ConnectionClosed {
                remote,
                error: Some(error),
            } => tracing::info!(%remote, %error, "RTMP connection closed"),
            Notice::ConnectionClosed { .. } => {}
            Notice::Stream(ev) => {
                let stream = ev.stream();
                if let StreamEvent::Unpublished { reason, .. } = &ev {
                    if is_api_publish(stream) {
                        let id = self.publishing().remove(&stream.name);
                        if let Some(id) = id {
                            tracing::info!(live_stream = %id, ?reason, "publisher lost");
                            self.control.report(&id, Input::PublisherLost);
                        }
                        return;
                    }
                }
                tracing::debug!(stream = %loggable(stream), kind = event_kind(&ev), "stream event");
            }
        }
    }
}

fn event_kind(ev: &StreamEvent) -> &'static str {
    match ev {
        StreamEvent::Published { .. } => "published",
        StreamEvent::CodecChanged { .. } => "codec changed",
        StreamEvent::FramesDropped { .. } => "frames dropped",
        StreamEvent::Unpublished { .. } => "unpublished",
        _ => "other",
    }
}

/// How often the first-segment watch asks the origin again when the stream has no rendition
/// yet (a ladder starts its renditions after the transcoder has opened).
const FIRST_SEGMENT_RETRY: Duration = Duration::from_millis(200);

/// Follows one broadcast of API live stream `id` (registry instance `instance`): reports its
/// first playable segment and its end, measures its ingest, and restreams it.
async fn follow(
    control: Control,
    registry: Registry,
    id: String,
    instance: u64,
    relay: crate::relay::RelayHandle,
    broadcast: Broadcast,
) {
    let mut state = relay.watch();
    drop(relay);
    let metering = tokio::spawn(meter(
        control.clone(),
        id.clone(),
        broadcast.stream.subscribe(),
        state.clone(),
    ));
    let restreaming = tokio::spawn(simulcast::supervise(broadcast));
    let origin = registry.api_origin().clone();
    let first = async {
        // The multivariant playlist answers once every video rendition has a segment: what a
        // viewer needs to start.
        while origin.multivariant(&id).await.is_err() {
            tokio::time::sleep(FIRST_SEGMENT_RETRY).await;
        }
    };
    tokio::pin!(first);
    let mut seen_first = false;
    loop {
        if state.borrow_and_update().ended {
            break;
        }
        tokio::select! {
            () = &mut first, if !seen_first => {
                seen_first = true;
                control.report(&id, Input::FirstSegment);
            }
            r = state.changed() => {
                if r.is_err() {
                    break;
                }
            }
        }
    }
    // A newer broadcast of the same live stream (started when this one's window ran out just
    // as its publisher returned) is not ended by this one's end.
    if registry
        .instance(&api_stream(&id))
        .is_none_or(|i| i == instance)
    {
        control.report(&id, Input::BroadcastEnded);
    }
    // Both end with the stream's bus (the restreams within their finishing time).
    for task in [metering, restreaming] {
        if tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .is_err()
        {
            tracing::warn!(live_stream = %id, "a broadcast task outlived its stream");
        }
    }
}

/// How often the ingest figures are handed to the control plane.
const METER_EVERY: Duration = Duration::from_secs(1);

/// Measures a broadcast's ingest ([`IngestMeter`]) and shows it as the live stream's
/// `ingest_stats` while a publisher is connected.
async fn meter(
    control: Control,
    id: String,
    mut consumer: Consumer,
    relay: tokio::sync::watch::Receiver<crate::relay::RelayState>,
) {
    let mut m = IngestMeter::new();
    let mut info = None;
    let mut tick = tokio::time::interval(METER_EVERY);
    loop {
        tokio::select! {
            ev = consumer.recv() => match ev {
                Some(Event::Info(i)) => {
                    info = Some(i);
                    m.restart_timeline();
                }
                Some(Event::Frame(f)) => {
                    if let Some(i) = &info {
                        m.observe(Instant::now(), i, &f);
                    }
                }
                Some(Event::Gap { .. }) => {}
                Some(Event::End | Event::Error(_)) | None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let stats = if relay.borrow().connected {
                    m.reading(now).map(|r| stats(now, r))
                } else {
                    None
                };
                control.set_ingest_stats(&id, stats);
            }
        }
    }
    control.set_ingest_stats(&id, None);
}

/// A reading as the API shows it.
fn stats(now: Instant, r: Reading) -> IngestStats {
    let ago = now.saturating_duration_since(r.last_frame);
    let at = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    IngestStats {
        bitrate: r.bitrate,
        fps: r.fps,
        keyframe_interval: r.keyframe_interval,
        last_frame_at: sigma_control::model::rfc3339(at),
    }
}

/// Carries out the control plane's commands until it goes away.
pub(crate) async fn run_commands(
    registry: Registry,
    simulcasts: Simulcasts,
    mut commands: broadcast::Receiver<Command>,
) {
    loop {
        match commands.recv().await {
            Ok(Command::DisconnectPublisher { live_stream_id }) => {
                if registry.disconnect(&api_stream(&live_stream_id)) {
                    tracing::info!(live_stream = %live_stream_id, "publisher disconnected");
                }
            }
            Ok(Command::EndBroadcast { live_stream_id }) => {
                if registry.end(&api_stream(&live_stream_id)) {
                    tracing::info!(live_stream = %live_stream_id, "broadcast ended");
                }
            }
            Ok(Command::SimulcastChanged { live_stream_id }) => {
                simulcasts.changed(&live_stream_id);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "control commands missed");
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}
