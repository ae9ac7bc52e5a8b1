//! The tokio driver for the publish client (restreaming, load generation): a thin shell over
//! [`ClientSession`].
//!
//! ```no_run
//! # async fn f(info: std::sync::Arc<sigma_core::StreamInfo>, frames: Vec<sigma_core::Frame>) -> Result<(), sigma_rtmp::Error> {
//! use sigma_rtmp::publisher::Publisher;
//! use std::time::Duration;
//! let mut p = Publisher::connect("rtmp://127.0.0.1:1935/live/cam1?token=x", Duration::from_secs(5)).await?;
//! p.send_info(info).await?;
//! for f in &frames {
//!     p.send(f).await?;
//! }
//! p.finish().await?;
//! # Ok(()) }
//! ```

use crate::Error;
use crate::client::{ClientConfig, ClientEvent, ClientSession};
use sigma_core::bus::{Consumer, Event};
use sigma_core::{Frame, StreamInfo};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A publishing RTMP connection.
pub struct Publisher {
    stream: TcpStream,
    session: ClientSession,
    timeout: Duration,
}

impl Publisher {
    /// Connects to `url` (`rtmp://host[:port]/app/name[?query]`) and publishes; returns once
    /// the server answered `NetStream.Publish.Start`, or with the refusal as
    /// [`Error::PublishRefused`]. `timeout` bounds the whole setup and each later write.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, Error> {
        let (config, addr) = ClientConfig::from_url(url)?;
        Self::connect_with(config, &addr, timeout).await
    }

    /// Like [`Publisher::connect`] with an explicit config and `host:port`.
    pub async fn connect_with(
        config: ClientConfig,
        addr: &str,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let setup = async {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7);
            let mut p = Publisher {
                stream,
                session: ClientSession::new(config, Instant::now(), seed),
                timeout,
            };
            loop {
                while let Some(ev) = p.session.poll_event()? {
                    if let ClientEvent::Publishing { .. } = ev {
                        p.flush().await?;
                        return Ok(p);
                    }
                }
                p.flush().await?;
                p.read_some().await?;
            }
        };
        tokio::time::timeout(timeout, setup)
            .await
            .map_err(|_| Error::Io(std::io::ErrorKind::TimedOut.into()))?
    }

    async fn flush(&mut self) -> Result<(), Error> {
        while let Some(b) = self.session.poll_transmit() {
            tokio::time::timeout(self.timeout, self.stream.write_all(&b))
                .await
                .map_err(|_| Error::Io(std::io::ErrorKind::TimedOut.into()))??;
        }
        Ok(())
    }

    async fn read_some(&mut self) -> Result<(), Error> {
        self.session.input_mut().reserve(16 << 10);
        let n = self.stream.read_buf(self.session.input_mut()).await?;
        if n == 0 {
            return Err(Error::UnexpectedEof("while publishing"));
        }
        self.session.received(Instant::now(), n);
        Ok(())
    }

    /// Handles whatever the server sent meanwhile (acknowledgements, pings, status), without
    /// waiting.
    fn poll_incoming(&mut self) -> Result<(), Error> {
        loop {
            self.session.input_mut().reserve(4096);
            match self.stream.try_read_buf(self.session.input_mut()) {
                Ok(0) => return Err(Error::UnexpectedEof("while publishing")),
                Ok(n) => self.session.received(Instant::now(), n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        while self.session.poll_event()?.is_some() {}
        Ok(())
    }

    /// Sends metadata and sequence headers for `info`.
    pub async fn send_info(&mut self, info: Arc<StreamInfo>) -> Result<(), Error> {
        self.poll_incoming()?;
        self.session.send_info(info)?;
        self.flush().await
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), Error> {
        self.poll_incoming()?;
        self.session.send_frame(frame)?;
        self.flush().await
    }

    /// Restreams a bus stream: sends every [`Event::Info`] and [`Event::Frame`] from `consumer`
    /// until the stream ends, then finishes the publish. A gap (the consumer fell behind) is
    /// skipped over, since the bus resumes at a group start. Returns the number of frames sent.
    pub async fn forward(mut self, mut consumer: Consumer) -> Result<u64, Error> {
        let mut sent = 0;
        while let Some(ev) = consumer.recv().await {
            match ev {
                Event::Info(info) => self.send_info(info).await?,
                Event::Frame(f) => {
                    self.send(&f).await?;
                    sent += 1;
                }
                Event::Gap { frames } => {
                    tracing::warn!(frames, "restream fell behind; skipped to the next group");
                }
                Event::End => break,
                Event::Error(e) => {
                    let _ = self.finish().await;
                    return Err(Error::SourceFailed(e));
                }
            }
        }
        self.finish().await?;
        Ok(sent)
    }

    /// Ends the publish (`FCUnpublish`, `deleteStream`) and closes the connection.
    pub async fn finish(mut self) -> Result<(), Error> {
        self.session.finish()?;
        self.flush().await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }
}
