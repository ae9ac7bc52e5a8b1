//! `sigma-load`: publish N streams and watch each with M simulated viewers, to size a
//! deployment. The `sigma-load` binary (package `sigma-examples`) is only its command line; see
//! docs/load.md.
//!
//! ```
//! use sigma_load::media::Media;
//! use sigma_load::viewer::Mode;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! # let mut c = sigma_server::config::Config::parse(sigma_server::config::EMBEDDED_DEFAULT, "d")?;
//! # c.server.rtmp_listen = "127.0.0.1:0".parse()?;
//! # c.server.http_listen = "127.0.0.1:0".parse()?;
//! # c.control.api_listen = "127.0.0.1:0".parse()?;
//! # c.server.data_dir = std::env::temp_dir().join(format!("sigma-load-doc-{}", std::process::id()));
//! # let server = sigma_server::server::start(c).await?;
//! # let (rtmp, http) = (server.rtmp_addr, server.http_addr);
//! // A server on loopback (here one started in-process) at `rtmp` and `http`.
//! let clip = concat!(env!("CARGO_MANIFEST_DIR"), "/../sigma-llhls/testdata/testsrc2_bf3_aac.mp4");
//! let config = sigma_load::Config {
//!     rtmp: format!("rtmp://{rtmp}/live"),
//!     http: format!("http://{http}/live"),
//!     media: Arc::new(Media::open(std::path::Path::new(clip))?),
//!     streams: 1,
//!     viewers_per_stream: 2,
//!     duration: Duration::from_secs(1),
//!     warmup: Duration::from_secs(2),
//!     stream_prefix: "load".into(),
//!     mode: Mode::Llhls,
//!     server_pids: vec![],
//!     request_timeout: Duration::from_secs(5),
//! };
//! let report = sigma_load::run(config).await?;
//! print!("{}", report.to_text());
//! # server.shutdown().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers: [`media`] loops an MP4 read by sigma-core's test-media reader, [`playlist`] reads HLS playlists, [`stats`]
//! holds the measurements (all three pure); [`publish`] (sigma-rtmp client) and [`viewer`]
//! (hyper client) are the tokio shells; [`run`] wires them for one bounded run and [`report`]
//! prints the result. Targets must be loopback addresses ([`endpoint`]).

pub mod endpoint;
pub mod media;
pub mod playlist;
pub mod publish;
pub mod report;
pub mod stats;
pub mod viewer;

use endpoint::{EndpointError, HttpEndpoint};
use media::Media;
use publish::IngestStats;
use report::{IngestReport, MachineReport, Report, ServerReport, StreamReport};
use stats::{MachineSample, ProcessSample};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use viewer::{Mode, Viewer, ViewerStats};

/// One load run.
#[derive(Clone, Debug)]
pub struct Config {
    /// `rtmp://HOST:PORT/APP`: stream `s` is published to `{rtmp}/{s}`.
    pub rtmp: String,
    /// `http://HOST:PORT/PREFIX`: stream `s` is played from `{http}/{s}/index.m3u8`.
    pub http: String,
    /// The media to loop.
    pub media: Arc<Media>,
    /// Streams to publish.
    pub streams: usize,
    /// Viewers per stream.
    pub viewers_per_stream: usize,
    /// How long viewers watch (publishing starts `warmup` earlier and ends with them).
    pub duration: Duration,
    /// Publishing time before viewers start, for the first parts or segments to exist.
    pub warmup: Duration,
    /// Stream names are `{prefix}{index}`.
    pub stream_prefix: String,
    /// LL-HLS or plain HLS viewers.
    pub mode: Mode,
    /// Server processes to measure (e.g. nginx's master and worker).
    pub server_pids: Vec<u32>,
    /// Bound on RTMP setup and writes and on each HTTP request.
    pub request_timeout: Duration,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A target is malformed or not on loopback.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// No streams, no duration, or more than the limits.
    #[error("invalid run: {0}")]
    Invalid(String),
    /// A server PID cannot be read in /proc.
    #[error("server pid {pid}: {source}")]
    ServerPid {
        /// The PID.
        pid: u32,
        /// The cause.
        source: std::io::Error,
    },
}

/// At most this many streams, viewers per stream and seconds, so a typo cannot fork-bomb the
/// machine.
pub const MAX_STREAMS: usize = 1000;
/// See [`MAX_STREAMS`].
pub const MAX_VIEWERS_PER_STREAM: usize = 1000;
/// See [`MAX_STREAMS`].
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Runs the load and returns the measurements. Must be called inside a tokio runtime with
/// time and IO enabled.
pub async fn run(config: Config) -> Result<Report, LoadError> {
    let rtmp = endpoint::rtmp_prefix(&config.rtmp)?;
    let http = Arc::new(HttpEndpoint::parse(&config.http)?);
    if config.streams == 0 || config.streams > MAX_STREAMS {
        return Err(LoadError::Invalid(format!(
            "streams must be 1..={MAX_STREAMS}"
        )));
    }
    if config.viewers_per_stream > MAX_VIEWERS_PER_STREAM {
        return Err(LoadError::Invalid(format!(
            "viewers per stream must be at most {MAX_VIEWERS_PER_STREAM}"
        )));
    }
    if config.duration.is_zero() || config.duration > MAX_DURATION || config.warmup > MAX_DURATION {
        return Err(LoadError::Invalid(format!(
            "duration must be in (0, {}] s, warmup at most that",
            MAX_DURATION.as_secs()
        )));
    }
    for &pid in &config.server_pids {
        ProcessSample::read(&pid.to_string())
            .map_err(|source| LoadError::ServerPid { pid, source })?;
    }
    let names: Vec<String> = (0..config.streams)
        .map(|i| format!("{}{i}", config.stream_prefix))
        .collect();

    let t0 = Instant::now();
    let view_start = t0 + config.warmup;
    let end = view_start + config.duration;
    // Publishers start within the first 500 ms, spread evenly, as independent broadcasters do.
    let publishers: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let start = t0 + Duration::from_millis(500).mul_f64(i as f64 / config.streams as f64);
            tokio::spawn(publish::publish(
                format!("{rtmp}/{name}"),
                config.media.clone(),
                start,
                end,
                config.request_timeout,
            ))
        })
        .collect();

    // Viewers join over the first second of the measured window.
    let total_viewers = config.streams * config.viewers_per_stream;
    let mut viewers: Vec<Vec<tokio::task::JoinHandle<ViewerStats>>> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut handles = Vec::new();
        for j in 0..config.viewers_per_stream {
            let k = j * config.streams + i;
            let viewer = Viewer {
                endpoint: http.clone(),
                stream: name.clone(),
                mode: config.mode,
                start: view_start
                    + Duration::from_secs(1).mul_f64(k as f64 / total_viewers.max(1) as f64),
                end,
                request_timeout: config.request_timeout,
            };
            handles.push(tokio::spawn(viewer.run()));
        }
        viewers.push(handles);
    }

    tokio::time::sleep_until(view_start).await;
    let sample_all = |pids: &[u32]| -> Vec<Option<ProcessSample>> {
        pids.iter()
            .map(|p| ProcessSample::read(&p.to_string()).ok())
            .collect()
    };
    let server_before = sample_all(&config.server_pids);
    let self_before = ProcessSample::read("self").ok();
    let machine_before = MachineSample::read().ok();
    let measured_from = Instant::now();
    tokio::time::sleep_until(end).await;
    let wall = measured_from.elapsed();
    let server_after = sample_all(&config.server_pids);
    let self_after = ProcessSample::read("self").ok();
    let machine_after = MachineSample::read().ok();

    let mut streams = Vec::new();
    for ((name, publisher), handles) in names.iter().zip(publishers).zip(viewers) {
        let ingest = match publisher.await {
            Ok(s) => s,
            Err(e) => IngestStats {
                error: Some(format!("publisher task: {e}")),
                ..IngestStats::default()
            },
        };
        let mut watched = ViewerStats::default();
        for h in handles {
            match h.await {
                Ok(s) => watched.merge(&s),
                Err(e) => watched.errors.add(format!("viewer task: {e}")),
            }
        }
        streams.push(StreamReport::new(
            name,
            IngestReport::from(&ingest),
            &watched,
        ));
    }

    let server = (!config.server_pids.is_empty()).then(|| {
        let mut cpu = 0.0;
        let mut rss = 0;
        let mut hwm = 0;
        let mut gone = Vec::new();
        for ((pid, before), after) in config
            .server_pids
            .iter()
            .zip(&server_before)
            .zip(&server_after)
        {
            match (before, after) {
                (Some(b), Some(a)) => {
                    cpu += stats::cpu_percent(b.cpu_ticks, a.cpu_ticks, wall);
                    rss += a.rss_kib;
                    hwm += a.hwm_kib;
                }
                _ => gone.push(*pid),
            }
        }
        ServerReport {
            pids: config.server_pids.clone(),
            cpu_percent: cpu,
            cpu_percent_per_stream: cpu / config.streams as f64,
            vm_rss_kib: rss,
            vm_hwm_kib: hwm,
            exited: gone,
        }
    });
    let load_cpu = match (self_before, self_after) {
        (Some(b), Some(a)) => Some(stats::cpu_percent(b.cpu_ticks, a.cpu_ticks, wall)),
        _ => None,
    };
    let machine = match (machine_before, machine_after) {
        (Some(b), Some(a)) => Some(MachineReport {
            cores: a.cores,
            cpu_percent: stats::cpu_percent(b.busy_ticks, a.busy_ticks, wall),
        }),
        _ => None,
    };
    Ok(Report::new(
        &config, wall, streams, server, load_cpu, machine,
    ))
}
