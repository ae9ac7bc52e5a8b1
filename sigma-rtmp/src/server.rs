//! The tokio driver for the ingest server: the only place (with [`crate::publisher`]) where
//! sockets and clocks are touched.
//!
//! [`Server::serve`] runs an accept loop on a listener the application bound; each connection
//! runs [`Server::serve_connection`] (usable alone by an application that owns its accept
//! loop). The driver reads straight into the session's input buffer, feeds
//! [`ServerSession`], answers publish requests through [`Application::admit`] (the application
//! owns the stream registry and hands back a [`Producer`]), pushes frames into that producer,
//! and reports [`Notice`]s. Every error closes only its own connection, with a logged reason.
//!
//! Shutdown: when the `shutdown` future of [`Server::serve`] completes, the listener closes,
//! every connection ends its stream (`Unpublished { reason: Shutdown }`) and closes, and
//! `serve` returns once they are gone (or after [`ServerConfig::shutdown_grace`]).

use crate::Error;
use crate::session::{PublishRequest, Rejection, ServerEvent, ServerSession, SessionConfig};
use sigma_core::bus::{self, Consumer, Producer, Window};
use sigma_core::{StreamEvent, StreamKey, UnpublishReason};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

/// Server settings.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Per-connection protocol limits and timers.
    pub session: SessionConfig,
    /// Longest wait for [`Application::admit`]; then the publish is refused with
    /// [`Rejection::Failed`] ([`Error::AdmissionTimeout`]).
    pub admission_timeout: Duration,
    /// Longest wait for the peer to take our output.
    pub write_timeout: Duration,
    /// Bytes reserved for each socket read.
    pub read_size: usize,
    /// How long [`Server::serve`] waits for connections to close at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session: SessionConfig::default(),
            admission_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            read_size: 64 << 10,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What the driver tells the application besides admission.
#[derive(Clone, Debug)]
pub enum Notice {
    /// A stream lifecycle event (published, codec changed, unpublished).
    Stream(StreamEvent),
    /// A connection ended; `error` is the reason when it was not a clean close.
    ConnectionClosed {
        /// The peer.
        remote: SocketAddr,
        /// Why, when it failed: the same error the stream's consumers get as
        /// [`Event::Error`](sigma_core::bus::Event::Error).
        error: Option<Arc<Error>>,
    },
}

/// The application side of the server: admission and notices.
pub trait Application: Send + Sync + 'static {
    /// Decides on a publish request: hand back the producer the frames go to, or refuse with
    /// the [`Rejection`] whose `onStatus` code the publisher gets. `stream` is `app/name`;
    /// `request.query` carries e.g. `token=…`.
    fn admit(
        &self,
        stream: StreamKey,
        request: PublishRequest,
        remote: SocketAddr,
    ) -> impl Future<Output = Result<Producer, Rejection>> + Send;

    /// Called for each [`Notice`]; must not block.
    fn notice(&self, notice: Notice) {
        let _ = notice;
    }
}

/// A simple in-memory stream registry: one publisher per stream (a second one is refused with
/// [`Rejection::AlreadyPublishing`], `NetStream.Publish.BadName`), consumers subscribe by key. Good for tests and small setups;
/// a real server keeps its own registry behind [`Application`].
pub struct StreamRegistry {
    window: Window,
    streams: Mutex<HashMap<StreamKey, bus::Subscriber>>,
    notices: broadcast::Sender<Notice>,
}

impl StreamRegistry {
    /// A registry whose streams use `window`.
    pub fn new(window: Window) -> Self {
        StreamRegistry {
            window,
            streams: Mutex::new(HashMap::new()),
            notices: broadcast::channel(1024).0,
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, bus::Subscriber>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A consumer of a live stream, if it is being published.
    pub fn subscribe(&self, key: &StreamKey) -> Option<Consumer> {
        self.streams().get(key).map(bus::Subscriber::subscribe)
    }

    /// Whether `key` is being published.
    pub fn is_live(&self, key: &StreamKey) -> bool {
        self.streams().contains_key(key)
    }

    /// Notices from now on (a bounded channel; a slow receiver loses the oldest).
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }
}

impl Application for StreamRegistry {
    fn admit(
        &self,
        stream: StreamKey,
        _request: PublishRequest,
        _remote: SocketAddr,
    ) -> impl Future<Output = Result<Producer, Rejection>> + Send {
        let mut streams = self.streams();
        let r = match streams.entry(stream) {
            std::collections::hash_map::Entry::Occupied(e) => {
                Err(Rejection::AlreadyPublishing(e.key().clone()))
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let (producer, subscriber) = bus::channel(self.window);
                e.insert(subscriber);
                Ok(producer)
            }
        };
        std::future::ready(r)
    }

    fn notice(&self, notice: Notice) {
        if let Notice::Stream(StreamEvent::Unpublished { stream, .. }) = &notice {
            self.streams().remove(stream);
        }
        let _ = self.notices.send(notice);
    }
}

/// Completes when `stop` turns true; never, if its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The RTMP ingest server. See the module docs.
pub struct Server<A> {
    app: Arc<A>,
    config: ServerConfig,
}

impl<A> Clone for Server<A> {
    fn clone(&self) -> Self {
        Server {
            app: self.app.clone(),
            config: self.config,
        }
    }
}

enum End {
    Eof,
    Shutdown,
}

impl<A: Application> Server<A> {
    /// A server for `app`.
    pub fn new(app: Arc<A>, config: ServerConfig) -> Self {
        Server { app, config }
    }

    /// Accepts connections on `listener` until `shutdown` completes, then closes every
    /// connection (ending its stream) and returns.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                r = listener.accept() => {
                    let (stream, remote) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            // Per-connection accept errors (e.g. too many files) must not end
                            // the server; back off briefly.
                            tracing::warn!(error = %e, "RTMP accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let this = self.clone();
                    let stop = stop_rx.clone();
                    tasks.spawn(async move { this.serve_connection(stream, remote, stop).await });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let grace = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(grace);
        while !tasks.is_empty() {
            tokio::select! {
                _ = tasks.join_next() => {}
                () = &mut grace => {
                    tasks.abort_all();
                    break;
                }
            }
        }
        Ok(())
    }

    /// Runs one connection to its end (for applications that own their accept loop). The
    /// connection shuts down gracefully when `stop` turns true. An error is logged, ends the
    /// stream being published ([`Event::Error`](sigma_core::bus::Event::Error)), is reported as
    /// [`Notice::ConnectionClosed`] and is returned: the same shared error each time.
    pub async fn serve_connection(
        &self,
        mut stream: TcpStream,
        remote: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), Arc<Error>> {
        let _ = stream.set_nodelay(true);
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(remote.port()) << 48;
        let mut session = ServerSession::new(self.config.session, Instant::now(), seed);
        let mut publishing: Option<(StreamKey, Producer)> = None;
        let r = self
            .drive(
                &mut stream,
                remote,
                &mut stop,
                &mut session,
                &mut publishing,
            )
            .await
            .map_err(Arc::new);
        let reason = match &r {
            Ok(End::Eof) => UnpublishReason::Finished,
            Ok(End::Shutdown) => UnpublishReason::Shutdown,
            Err(e) => match &**e {
                Error::Io(_) | Error::IdleTimeout(_) | Error::UnexpectedEof(_) => {
                    UnpublishReason::ConnectionLost(e.to_string())
                }
                _ => UnpublishReason::ProtocolError(e.to_string()),
            },
        };
        if let Some((key, producer)) = publishing.take() {
            match &r {
                Err(e) => producer.fail(e.clone()),
                Ok(_) => producer.finish(),
            }
            self.app.notice(Notice::Stream(StreamEvent::Unpublished {
                stream: key,
                reason,
                at: SystemTime::now(),
            }));
        }
        let _ = stream.shutdown().await;
        match &r {
            Err(e) => tracing::warn!(%remote, error = %e, "RTMP connection closed"),
            Ok(_) => tracing::debug!(%remote, "RTMP connection closed"),
        }
        self.app.notice(Notice::ConnectionClosed {
            remote,
            error: r.as_ref().err().cloned(),
        });
        r.map(|_| ())
    }

    async fn flush(
        &self,
        stream: &mut TcpStream,
        session: &mut ServerSession,
    ) -> Result<(), Error> {
        while let Some(b) = session.poll_transmit() {
            tokio::time::timeout(self.config.write_timeout, stream.write_all(&b))
                .await
                .map_err(|_| Error::Io(std::io::ErrorKind::TimedOut.into()))??;
        }
        Ok(())
    }

    async fn drive(
        &self,
        stream: &mut TcpStream,
        remote: SocketAddr,
        stop: &mut watch::Receiver<bool>,
        session: &mut ServerSession,
        publishing: &mut Option<(StreamKey, Producer)>,
    ) -> Result<End, Error> {
        let mut app_name = String::new();
        loop {
            while let Some(ev) = session.poll_event()? {
                match ev {
                    ServerEvent::Connected { app } => app_name = app,
                    ServerEvent::PublishRequested(req) => {
                        let key = StreamKey::new(req.app.clone(), req.name.clone());
                        let decision = tokio::time::timeout(
                            self.config.admission_timeout,
                            self.app.admit(key.clone(), req, remote),
                        )
                        .await
                        .unwrap_or_else(|_| {
                            Err(Rejection::failed(Error::AdmissionTimeout(
                                self.config.admission_timeout,
                            )))
                        });
                        match decision {
                            Ok(producer) => {
                                session.accept_publish()?;
                                tracing::info!(%remote, app = %key.app, "RTMP publish started");
                                self.app.notice(Notice::Stream(StreamEvent::Published {
                                    stream: key.clone(),
                                    remote: Some(remote),
                                    at: SystemTime::now(),
                                }));
                                *publishing = Some((key, producer));
                            }
                            Err(why) => {
                                tracing::info!(%remote, app = %key.app, code = why.code(),
                                    reason = %why, "RTMP publish refused");
                                session.reject_publish(&why)?;
                            }
                        }
                    }
                    ServerEvent::StreamInfo(info) => {
                        if let Some((key, producer)) = publishing.as_mut() {
                            producer.set_info(info.clone());
                            self.app.notice(Notice::Stream(StreamEvent::CodecChanged {
                                stream: key.clone(),
                                info,
                                at: SystemTime::now(),
                            }));
                        }
                    }
                    ServerEvent::Frame(frame) => {
                        if let Some((_, producer)) = publishing.as_mut() {
                            producer.push(frame).map_err(Error::Bus)?;
                        }
                    }
                    ServerEvent::Metadata(_) => {}
                    ServerEvent::Unpublished => {
                        if let Some((key, producer)) = publishing.take() {
                            producer.finish();
                            self.app.notice(Notice::Stream(StreamEvent::Unpublished {
                                stream: key,
                                reason: UnpublishReason::Finished,
                                at: SystemTime::now(),
                            }));
                        }
                    }
                }
            }
            self.flush(stream, session).await?;
            if session.is_closing() {
                return Ok(End::Eof);
            }
            let deadline = session
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let wants = session.wants_input();
            if wants {
                session.input_mut().reserve(self.config.read_size);
            }
            tokio::select! {
                r = stream.read_buf(session.input_mut()), if wants => {
                    let n = r?;
                    if n == 0 {
                        if publishing.is_some() || session.buffered() > 0 {
                            tracing::debug!(%remote, app = %app_name, "EOF while publishing");
                        }
                        return Ok(End::Eof);
                    }
                    session.received(Instant::now(), n);
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    session.handle_timeout(Instant::now())?;
                }
                () = stopped(stop) => return Ok(End::Shutdown),
            }
        }
    }
}
