//! The stream registry: publish admission, per-stream latency, and the lifecycle that ties a
//! publisher's bus to the LL-HLS origin through a [`relay`].
//!
//! - Admission checks the application, the stream name and, when the application lists stream
//!   keys or is closed (`open = false`), the key given as `?key=` (never the stream name,
//!   which is in every playback URL). A stream already
//!   being published refuses a second publisher. A refusal is a [`Rejection`], the type the RTMP
//!   driver turns into the publisher's `onStatus` code: `NetStream.Publish.BadName` for an
//!   invalid or already-published name, `NetStream.Publish.Denied` for an unknown application, a
//!   bad key or a bad `?latency=`, `NetStream.Publish.Failed` when the packager refuses.
//! - A broadcaster picks the latency with `?latency=normal|low|ultra-low`; else the
//!   application's, else the server's default.
//! - A publisher that comes back within the grace period continues the same playlists; after
//!   it the playlists end (`EXT-X-ENDLIST`) and stay readable for `ended_retention`, then go.

use crate::config::{Config, parse_latency};
use crate::relay::{self, RelayHandle};
use sigma_core::bus::{self, Consumer, Producer, Subscriber, Window};
use sigma_core::{StreamEvent, StreamKey, UnpublishReason};
use sigma_llhls::{LatencyMode, Origin, PublishOptions};
use sigma_rtmp::session::Rejection;
use sigma_transcode::ladder::KeyframePolicy;
use sigma_transcode::{Ladder, Options as TranscodeOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// A publisher the registry accepted: push its frames into `producer`; dropping it ends this
/// publisher's session (the stream itself waits for the grace period).
#[derive(Debug)]
pub struct Admitted {
    /// Where the publisher's frames go.
    pub producer: Producer,
    /// The stream.
    pub key: StreamKey,
    /// The stream's latency mode.
    pub mode: LatencyMode,
    /// True when this publisher continues a stream within its grace period.
    pub resumed: bool,
    /// The stream's relay: watch it to see the publisher go and the stream end.
    pub relay: RelayHandle,
    /// Which start of the stream this is ([`Registry::instance`]).
    pub instance: u64,
    /// The stream's long-lived bus (what the packager reads), for more readers: restreaming,
    /// the ingest meter.
    pub stream: Subscriber,
    /// For a new stream, a reader of that bus from its very first frame (made before the
    /// publisher could send any), so a restream may carry every frame.
    pub from_start: Option<Consumer>,
}

/// How to package a stream the registry starts: where, at which latency, with which ladder,
/// and how long a lost publisher may take to come back.
#[derive(Clone)]
pub struct Packaging {
    /// The origin the stream's playlists go to.
    pub origin: Origin,
    /// Its latency mode.
    pub mode: LatencyMode,
    /// The ladder to transcode with, if any.
    pub ladder: Option<Ladder>,
    /// The grace period for a lost publisher.
    pub grace: Duration,
}

struct Entry {
    id: u64,
    relay: RelayHandle,
    mode: LatencyMode,
    /// The current publisher's bus, to [revoke](Subscriber::revoke) it.
    publisher: Subscriber,
    /// The stream's long-lived bus.
    stream: Subscriber,
    origin: Origin,
}

struct Inner {
    config: Config,
    origins: HashMap<String, Origin>,
    /// The origin of API live streams, by live stream id (served under `/v/{playback id}`).
    api_origin: Origin,
    streams: Mutex<HashMap<StreamKey, Entry>>,
    ids: AtomicU64,
    events: broadcast::Sender<StreamEvent>,
}

/// The registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// Transcodes a stream with `ladder` and publishes every rendition (the first carries the
/// audio), until the stream ends. If the transcoder cannot start, the stream is packaged as
/// published, so viewers still get it.
async fn package_ladder(
    origin: Origin,
    key: StreamKey,
    mut ladder: Ladder,
    source: Subscriber,
    mode: LatencyMode,
) {
    if mode == LatencyMode::UltraLow {
        for r in &mut ladder.renditions {
            r.video.zerolatency = true;
        }
    }
    // Sigma's keyframes, not the publisher's: every rung gets aligned keyframes at the mode's
    // cadence whatever the source's GOP, so transcoding is the remedy for an encoder whose
    // keyframe interval cannot be changed. A ladder that asks for its own cadence keeps it.
    if ladder.keyframes == KeyframePolicy::Source {
        ladder.keyframes = KeyframePolicy::Every {
            seconds: mode.keyframe_interval().as_secs_f64(),
        };
    }
    let attached = match sigma_transcode::attach(&ladder, &source, TranscodeOptions::default())
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(stream = %key, ladder = %ladder.name, error = %e, "transcoding unavailable; packaging the stream as published");
            match origin.publish(&key.name, &source, PublishOptions::new(mode)) {
                Ok(p) => p.finished().await,
                Err(e) => tracing::warn!(stream = %key, error = %e, "packager refused the stream"),
            }
            return;
        }
    };
    let outputs = attached.outputs;
    for s in &outputs.skipped {
        tracing::info!(stream = %key, rendition = %s.name, reason = %s.reason, "rendition skipped");
    }
    let mut publications = Vec::new();
    for (i, r) in outputs.renditions.iter().enumerate() {
        let opts = PublishOptions {
            variant: r.name.clone(),
            audio: i == 0,
            ..PublishOptions::new(mode)
        };
        match origin.publish(&key.name, &r.subscriber, opts) {
            Ok(p) => publications.push(p),
            Err(e) => {
                tracing::warn!(stream = %key, rendition = %r.name, error = %e, "rendition not published")
            }
        }
    }
    // Say in the multivariant playlist (as comments) which renditions were left out and why.
    let notes = outputs
        .skipped
        .iter()
        .map(|s| format!("rendition {} skipped: {}", s.name, s.reason))
        .collect();
    origin.set_notes(&key.name, notes);
    tracing::info!(stream = %key, ladder = %ladder.name, renditions = publications.len(), "transcoding");
    // Transcoder events (dropped frames under overload, failures) go to the log.
    let events = outputs.events;
    let log_key = key.clone();
    // Detached: it ends when the transcoder drops its event sender.
    tokio::task::spawn_blocking(move || {
        for ev in events.iter() {
            tracing::info!(stream = %log_key, event = ?ev, "transcoder");
        }
    });
    for p in publications {
        p.finished().await;
    }
    let pump = attached.pump;
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || pump.join())
        .await
        .map(|j| j.unwrap_or(Ok(())))
    {
        tracing::warn!(stream = %key, error = %e, "transcoder ended with an error");
    }
}

/// The refusal for a packager error: the name rules and "already published" are the publisher's
/// to fix; anything else is the server's failure.
fn packager_refused(key: &StreamKey, e: sigma_llhls::Error) -> Rejection {
    match e {
        sigma_llhls::Error::InvalidName(_) => Rejection::InvalidName(key.name.clone()),
        sigma_llhls::Error::AlreadyPublished(_) => Rejection::AlreadyPublishing(key.clone()),
        e => Rejection::failed(e),
    }
}

/// The bus window between a publisher and its relay, and between the relay and the packager.
fn window() -> Window {
    Window::default()
}

impl Registry {
    /// A registry for `config`'s applications, each with its own origin.
    pub fn new(config: Config) -> Self {
        let origins = config
            .apps
            .iter()
            .map(|a| (a.name.clone(), Origin::new()))
            .collect();
        Registry {
            inner: Arc::new(Inner {
                config,
                origins,
                api_origin: Origin::new(),
                streams: Mutex::new(HashMap::new()),
                ids: AtomicU64::new(0),
                events: broadcast::channel(256).0,
            }),
        }
    }

    /// The configuration the registry was made with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The origin serving application `app`.
    pub fn origin(&self, app: &str) -> Option<&Origin> {
        self.inner.origins.get(app)
    }

    /// The origin of API live streams: each is published under its live stream id, and viewers
    /// reach it only through a playback id.
    pub fn api_origin(&self) -> &Origin {
        &self.inner.api_origin
    }

    /// Stream lifecycle events (published, unpublished).
    pub fn events(&self) -> broadcast::Receiver<StreamEvent> {
        self.inner.events.subscribe()
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<StreamKey, Entry>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latency mode `app/name` plays at: the live stream's, else the application's default.
    pub fn mode_of(&self, app: &str, name: &str) -> LatencyMode {
        if let Some(e) = self.streams().get(&StreamKey::new(app, name)) {
            return e.mode;
        }
        self.default_mode(app)
    }

    fn default_mode(&self, app: &str) -> LatencyMode {
        let c = &self.inner.config;
        c.app(app)
            .and_then(|a| a.latency)
            .unwrap_or(c.server.latency)
    }

    /// Streams known now (live or within their grace period), with whether a publisher is
    /// connected.
    pub fn streams_now(&self) -> Vec<(StreamKey, LatencyMode, bool)> {
        let mut v: Vec<_> = self
            .streams()
            .iter()
            .map(|(k, e)| (k.clone(), e.mode, e.relay.is_connected()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Decides on a publish request for `app`/`name` with the stream key's query string (with or
    /// without its `?`). Must be called within a tokio runtime (it starts the stream's tasks).
    ///
    /// Refusals, by [`Rejection`] variant: [`UnknownApp`](Rejection::UnknownApp),
    /// [`InvalidName`](Rejection::InvalidName) (not a [valid name](StreamKey::valid_name), or
    /// `index`), [`Denied`](Rejection::Denied) for a `?latency=` naming no mode,
    /// [`BadKey`](Rejection::BadKey), [`AlreadyPublishing`](Rejection::AlreadyPublishing), and
    /// [`Failed`](Rejection::Failed) with the packager's [`sigma_llhls::Error`].
    pub fn admit(&self, app: &str, name: &str, query: &str) -> Result<Admitted, Rejection> {
        let app_cfg = self
            .inner
            .config
            .app(app)
            .ok_or_else(|| Rejection::UnknownApp(app.to_string()))?;
        if !StreamKey::valid_name(name) || name == "index" {
            return Err(Rejection::InvalidName(name.to_string()));
        }
        let mut key_given = None;
        let mut latency = None;
        for (k, v) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
            match &*k {
                "key" => key_given = Some(v.into_owned()),
                "latency" => latency = Some(parse_latency(&v).map_err(Rejection::Denied)?),
                _ => {}
            }
        }
        let keyed = !app_cfg.stream_keys.is_empty();
        if keyed || !app_cfg.open {
            // A configured key is accepted only as `?key=`, never as the (played) name.
            let ok = key_given.is_some_and(|k| app_cfg.stream_keys.contains(&k));
            if !ok {
                return Err(Rejection::BadKey);
            }
        }
        let key = StreamKey::new(app, name);
        let origin = self
            .origin(app)
            .ok_or_else(|| Rejection::UnknownApp(app.to_string()))?
            .clone();
        let packaging = || Packaging {
            origin,
            mode: latency.unwrap_or_else(|| self.default_mode(app)),
            ladder: self.inner.config.ladder_for(app, name),
            grace: self.inner.config.server.grace_period,
        };
        self.start_or_resume(key, packaging)
    }

    /// Admits a publisher for stream `key` whose packaging the caller decided (an API live
    /// stream): resumes the stream if it is within its grace period, else starts it as
    /// `packaging()` says. Refuses with [`Rejection::AlreadyPublishing`] when a publisher is
    /// connected, or [`Rejection::Failed`] when the packager refuses.
    pub fn start_or_resume(
        &self,
        key: StreamKey,
        packaging: impl FnOnce() -> Packaging,
    ) -> Result<Admitted, Rejection> {
        let (producer, publisher_bus) = bus::channel(window());
        let mut consumer = publisher_bus.subscribe();
        let mut streams = self.streams();
        if let Some(e) = streams.get_mut(&key) {
            if !e.relay.claim() {
                return Err(Rejection::AlreadyPublishing(key));
            }
            match e.relay.resume(consumer) {
                Ok(()) => {
                    tracing::info!(stream = %key, "publisher resumed within the grace period");
                    e.publisher = publisher_bus;
                    return Ok(Admitted {
                        producer,
                        instance: e.id,
                        mode: e.mode,
                        relay: e.relay.clone(),
                        key,
                        resumed: true,
                        stream: e.stream.clone(),
                        from_start: None,
                    });
                }
                // The grace period ran out just now: start a new stream.
                Err(c) => consumer = c,
            }
        }
        let Packaging {
            origin,
            mode,
            ladder,
            grace,
        } = packaging();
        let (stream_bus, relay, relay_task) = relay::spawn(consumer, window(), grace);
        // Before the publisher is told it may send: this reader starts at the first group.
        let from_start = stream_bus.subscribe();
        let stream = stream_bus.clone();
        let packaging = match ladder {
            None => {
                let publication = origin
                    .publish(&key.name, &stream_bus, PublishOptions::new(mode))
                    .map_err(|e| {
                        relay.end();
                        packager_refused(&key, e)
                    })?;
                tokio::spawn(publication.finished())
            }
            Some(ladder) => tokio::spawn(package_ladder(
                origin.clone(),
                key.clone(),
                ladder,
                stream_bus,
                mode,
            )),
        };
        let id = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        streams.insert(
            key.clone(),
            Entry {
                id,
                relay: relay.clone(),
                mode,
                publisher: publisher_bus,
                stream: stream.clone(),
                origin,
            },
        );
        drop(streams);
        let _ = self.inner.events.send(StreamEvent::Published {
            stream: key.clone(),
            remote: None,
            at: SystemTime::now(),
        });
        tracing::info!(stream = %key, mode = mode.name(), "stream started");

        // When the relay ends (no publisher within the grace period), retire the stream.
        let registry = self.clone();
        let retention = self.inner.config.server.ended_retention;
        let stream_key = key.clone();
        tokio::spawn(async move {
            let summary = relay_task.await.ok();
            let _ = packaging.await;
            registry.retire(stream_key, id, summary, retention).await;
        });
        Ok(Admitted {
            producer,
            key,
            mode,
            relay,
            instance: id,
            resumed: false,
            stream,
            from_start: Some(from_start),
        })
    }

    /// Which start of stream `key` is live now (each start of a stream, as opposed to a
    /// publisher resuming it, gets a new number), if any.
    pub fn instance(&self, key: &StreamKey) -> Option<u64> {
        self.streams().get(key).map(|e| e.id)
    }

    /// Disconnects the publisher of `key`, if one is connected: its next frame is refused, so
    /// the RTMP connection closes. The stream waits for a publisher as after any loss.
    pub fn disconnect(&self, key: &StreamKey) -> bool {
        match self.streams().get(key) {
            Some(e) => {
                e.publisher.revoke();
                true
            }
            None => false,
        }
    }

    /// Ends stream `key` now: disconnects its publisher and ends its playlists without waiting
    /// for the grace period.
    pub fn end(&self, key: &StreamKey) -> bool {
        match self.streams().get(key) {
            Some(e) => {
                e.publisher.revoke();
                e.relay.end();
                true
            }
            None => false,
        }
    }

    async fn retire(
        &self,
        key: StreamKey,
        id: u64,
        summary: Option<relay::RelaySummary>,
        retention: Duration,
    ) {
        let origin = {
            let mut streams = self.streams();
            match streams.get(&key) {
                Some(e) if e.id == id => streams.remove(&key).map(|e| e.origin),
                _ => None,
            }
        };
        tracing::info!(stream = %key, ?summary, "stream ended");
        let _ = self.inner.events.send(StreamEvent::Unpublished {
            stream: key.clone(),
            reason: UnpublishReason::Finished,
            at: SystemTime::now(),
        });
        // Keep the ended playlists readable for a while (DVR, late viewers), then drop them
        // unless a new publication of the same name has started meanwhile.
        let Some(origin) = origin else { return };
        tokio::time::sleep(retention).await;
        let streams = self.streams();
        if !streams.contains_key(&key) {
            origin.remove(&key.name);
        }
    }

    /// Ends every stream now (server shutdown): no grace period.
    pub fn shutdown(&self) {
        self.streams().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EMBEDDED_DEFAULT;

    fn registry(keys: &str) -> Registry {
        let text = EMBEDDED_DEFAULT.replace("stream_keys = []", &format!("stream_keys = {keys}"));
        Registry::new(Config::parse(&text, "test").unwrap())
    }

    fn refusal(r: Result<Admitted, Rejection>) -> Rejection {
        r.expect_err("refused")
    }

    /// Each refusal reason carries its own RTMP status code.
    #[tokio::test]
    async fn refusals_map_to_their_rtmp_codes() {
        let open = registry("[]");
        let r = refusal(open.admit("nope", "cam", ""));
        assert!(
            matches!(&r, Rejection::UnknownApp(a) if a == "nope"),
            "{r:?}"
        );
        assert_eq!(r.code(), "NetStream.Publish.Denied");
        for bad in ["", "a b", "index", &"n".repeat(65)] {
            let r = refusal(open.admit("live", bad, ""));
            assert!(matches!(r, Rejection::InvalidName(_)), "{bad:?}: {r:?}");
            assert_eq!(r.code(), "NetStream.Publish.BadName");
        }
        let r = refusal(open.admit("live", "cam", "latency=fast"));
        assert!(
            matches!(&r, Rejection::Denied(m) if m.contains("fast")),
            "{r:?}"
        );
        assert_eq!(r.code(), "NetStream.Publish.Denied");

        let first = open.admit("live", "cam", "?latency=ultra-low").unwrap();
        assert_eq!(first.mode, LatencyMode::UltraLow);
        let r = refusal(open.admit("live", "cam", ""));
        assert!(
            matches!(&r, Rejection::AlreadyPublishing(k) if k == &first.key),
            "{r:?}"
        );
        assert_eq!(r.code(), "NetStream.Publish.BadName");
        open.shutdown();
    }

    #[tokio::test]
    async fn stream_keys() {
        let keyed = registry("[\"s3cret\"]");
        let r = refusal(keyed.admit("live", "cam", "key=wrong"));
        assert!(matches!(r, Rejection::BadKey), "{r:?}");
        assert_eq!(r.code(), "NetStream.Publish.Denied");
        assert!(matches!(
            refusal(keyed.admit("live", "cam", "")),
            Rejection::BadKey
        ));
        assert!(keyed.admit("live", "cam", "key=s3cret").is_ok());
        // A configured key is accepted only as `?key=`: never as the stream name (which is in
        // every playback URL) and not under another parameter.
        assert!(matches!(
            refusal(keyed.admit("live", "s3cret", "")),
            Rejection::BadKey
        ));
        assert!(matches!(
            refusal(keyed.admit("live", "other", "token=s3cret")),
            Rejection::BadKey
        ));
        keyed.shutdown();
    }

    /// `open = false` (what `--no-open-publishing` sets on every app) admits nobody without a
    /// configured key.
    #[tokio::test]
    async fn closed_apps_need_a_key() {
        let text = EMBEDDED_DEFAULT.replace("open = true", "open = false");
        assert_ne!(text, EMBEDDED_DEFAULT, "the embedded default sets `open`");
        let closed = Registry::new(Config::parse(&text, "test").unwrap());
        assert!(matches!(
            refusal(closed.admit("live", "cam", "")),
            Rejection::BadKey
        ));
        assert!(matches!(
            refusal(closed.admit("live", "cam", "key=anything")),
            Rejection::BadKey
        ));
        closed.shutdown();
        let text = text.replace("stream_keys = []", "stream_keys = [\"k1\"]");
        let keyed = Registry::new(Config::parse(&text, "test").unwrap());
        assert!(keyed.admit("live", "cam", "key=k1").is_ok());
        keyed.shutdown();
    }

    #[test]
    fn packager_errors() {
        let key = StreamKey::new("live", "cam");
        let r = packager_refused(
            &key,
            sigma_llhls::Error::AlreadyPublished("cam/video".into()),
        );
        assert_eq!(r.code(), "NetStream.Publish.BadName");
        let r = packager_refused(&key, sigma_llhls::Error::InvalidName("x y".into()));
        assert_eq!(r.code(), "NetStream.Publish.BadName");
        let e = sigma_llhls::Error::LimitExceeded {
            what: "renditions per stream",
            limit: 32,
        };
        let r = packager_refused(&key, e.clone());
        assert_eq!(r.code(), "NetStream.Publish.Failed");
        // The packager's error stays typed.
        let Rejection::Failed(source) = r else {
            panic!("{r:?}")
        };
        assert_eq!(source.downcast_ref::<sigma_llhls::Error>(), Some(&e));
    }
}
