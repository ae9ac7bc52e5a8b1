//! The result of a run: per-stream ingest and viewing figures, totals, and the server's CPU and
//! memory; printed as a table or as one JSON object.

use crate::Config;
use crate::publish::IngestStats;
use crate::stats::{Delays, ErrorCounts, Percentiles};
use crate::viewer::{Mode, ViewerStats};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// One publisher's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestReport {
    /// Frames due before the end.
    pub frames_due: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames due but not sent.
    pub frames_not_sent: u64,
    /// Frames per second sent.
    pub frames_per_second: f64,
    /// Payload Mbit/s sent.
    pub mbit_per_second: f64,
    /// Worst lateness of a frame against its schedule, in ms.
    pub max_late_ms: f64,
    /// What stopped the publisher early.
    pub error: Option<String>,
}

impl From<&IngestStats> for IngestReport {
    fn from(s: &IngestStats) -> Self {
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        IngestReport {
            frames_due: s.frames_due,
            frames_sent: s.frames_sent,
            frames_not_sent: s.frames_not_sent(),
            frames_per_second: s.frames_sent as f64 / secs,
            mbit_per_second: s.bytes_sent as f64 * 8.0 / secs / 1e6,
            max_late_ms: s.max_late.as_secs_f64() * 1000.0,
            error: s.error.clone(),
        }
    }
}

/// One stream's figures.
#[derive(Clone, Debug, Serialize)]
pub struct StreamReport {
    /// Stream name.
    pub stream: String,
    /// Its publisher.
    pub ingest: IngestReport,
    /// Part (LL-HLS) or segment (HLS) delay over all its viewers.
    pub delay: Percentiles,
    /// Parts or segments fetched by all its viewers.
    pub fetched: u64,
    /// Playlist responses read.
    pub playlists: u64,
    /// Media Mbit/s delivered to all its viewers.
    pub delivered_mbit_per_second: f64,
    /// Most discontinuities a viewer's playlist announced.
    pub discontinuities: u64,
    /// Viewer errors by kind.
    pub errors: ErrorCounts,
    #[serde(skip)]
    delays: Delays,
    #[serde(skip)]
    bytes: u64,
}

impl StreamReport {
    /// Summarises a stream's publisher and viewers.
    pub fn new(stream: &str, ingest: IngestReport, watched: &ViewerStats) -> Self {
        StreamReport {
            stream: stream.to_owned(),
            ingest,
            delay: watched.delays.percentiles(),
            fetched: watched.fetched,
            playlists: watched.playlists,
            delivered_mbit_per_second: 0.0,
            discontinuities: watched.discontinuities,
            errors: watched.errors.clone(),
            delays: watched.delays.clone(),
            bytes: watched.bytes,
        }
    }
}

/// The measured server processes.
#[derive(Clone, Debug, Serialize)]
pub struct ServerReport {
    /// The PIDs measured (summed).
    pub pids: Vec<u32>,
    /// CPU over the viewing window, % of one core.
    pub cpu_percent: f64,
    /// `cpu_percent` divided by the number of streams.
    pub cpu_percent_per_stream: f64,
    /// `VmRSS` at the end, KiB.
    pub vm_rss_kib: u64,
    /// `VmHWM` (peak RSS) at the end, KiB.
    pub vm_hwm_kib: u64,
    /// PIDs that could not be read at the start or the end (not counted).
    pub exited: Vec<u32>,
}

/// The whole machine during the measured window.
#[derive(Clone, Debug, Serialize)]
pub struct MachineReport {
    /// Cores.
    pub cores: u32,
    /// CPU busy over all cores, in % of one core (at most `100 × cores`).
    pub cpu_percent: f64,
}

/// Totals over all streams.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Frames due but not sent, all publishers.
    pub frames_not_sent: u64,
    /// Publishers that stopped with an error.
    pub publisher_errors: u64,
    /// Part or segment delay over every viewer.
    pub delay: Percentiles,
    /// Parts or segments fetched.
    pub fetched: u64,
    /// Playlist responses read.
    pub playlists: u64,
    /// Media Mbit/s delivered to all viewers.
    pub delivered_mbit_per_second: f64,
    /// Viewer errors, all kinds.
    pub viewer_errors: u64,
    /// Viewer errors by kind.
    pub errors: ErrorCounts,
    /// Streams whose playlists announced a discontinuity.
    pub streams_with_discontinuities: u64,
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// How viewers loaded.
    pub mode: Mode,
    /// Streams published.
    pub streams: usize,
    /// Viewers per stream.
    pub viewers_per_stream: usize,
    /// Length of the measured window, in seconds.
    pub measured_seconds: f64,
    /// What the delay figures measure.
    pub delay_of: &'static str,
    /// Totals.
    pub totals: Totals,
    /// The server, when its PIDs were given.
    pub server: Option<ServerReport>,
    /// This tool's own CPU (it shares the machine), % of one core.
    pub load_tool_cpu_percent: Option<f64>,
    /// The whole machine (server, this tool and anything else running).
    pub machine: Option<MachineReport>,
    /// Per stream.
    pub per_stream: Vec<StreamReport>,
}

impl Report {
    /// Builds the report.
    pub fn new(
        config: &Config,
        wall: Duration,
        mut per_stream: Vec<StreamReport>,
        server: Option<ServerReport>,
        load_tool_cpu_percent: Option<f64>,
        machine: Option<MachineReport>,
    ) -> Self {
        let secs = wall.as_secs_f64().max(1e-9);
        let mut all = Delays::default();
        let mut errors = ErrorCounts::default();
        let mut bytes = 0;
        for s in &mut per_stream {
            s.delivered_mbit_per_second = s.bytes as f64 * 8.0 / secs / 1e6;
            all.merge(&s.delays);
            errors.merge(&s.errors);
            bytes += s.bytes;
        }
        let totals = Totals {
            frames_not_sent: per_stream.iter().map(|s| s.ingest.frames_not_sent).sum(),
            publisher_errors: per_stream
                .iter()
                .filter(|s| s.ingest.error.is_some())
                .count() as u64,
            delay: all.percentiles(),
            fetched: per_stream.iter().map(|s| s.fetched).sum(),
            playlists: per_stream.iter().map(|s| s.playlists).sum(),
            delivered_mbit_per_second: bytes as f64 * 8.0 / secs / 1e6,
            viewer_errors: errors.total(),
            errors,
            streams_with_discontinuities: per_stream
                .iter()
                .filter(|s| s.discontinuities > 0)
                .count() as u64,
        };
        Report {
            mode: config.mode,
            streams: config.streams,
            viewers_per_stream: config.viewers_per_stream,
            measured_seconds: secs,
            delay_of: match config.mode {
                Mode::Llhls => "part: playlist response listing it -> part fully fetched",
                Mode::Hls => "segment: playlist response listing it -> segment fully fetched",
            },
            totals,
            server,
            load_tool_cpu_percent,
            machine,
            per_stream,
        }
    }

    /// Whether nothing was lost and no viewer saw an error.
    pub fn clean(&self) -> bool {
        self.totals.frames_not_sent == 0
            && self.totals.publisher_errors == 0
            && self.totals.viewer_errors == 0
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a human-readable table.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let what = match self.mode {
            Mode::Llhls => "part",
            Mode::Hls => "segment",
        };
        let _ = writeln!(
            o,
            "sigma-load: {} streams x {} viewers ({:?}), {:.1} s measured",
            self.streams, self.viewers_per_stream, self.mode, self.measured_seconds
        );
        let _ = writeln!(
            o,
            "{:<10} {:>8} {:>7} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}",
            "stream",
            "sent",
            "fps",
            "Mbit/s",
            "lost",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            what,
            "errors"
        );
        for s in &self.per_stream {
            let _ = writeln!(
                o,
                "{:<10} {:>8} {:>7.1} {:>6.2} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>6}",
                s.stream,
                s.ingest.frames_sent,
                s.ingest.frames_per_second,
                s.ingest.mbit_per_second,
                s.ingest.frames_not_sent,
                s.delay.p50_ms,
                s.delay.p95_ms,
                s.delay.p99_ms,
                s.delay.max_ms,
                s.fetched,
                s.errors.total()
            );
            if let Some(e) = &s.ingest.error {
                let _ = writeln!(o, "  publisher error: {e}");
            }
        }
        let t = &self.totals;
        let _ = writeln!(
            o,
            "ingest: {} frames not sent, {} publisher errors",
            t.frames_not_sent, t.publisher_errors
        );
        let _ = writeln!(
            o,
            "{what} delay: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} {what}s; {} playlists; {:.1} Mbit/s delivered",
            t.delay.p50_ms,
            t.delay.p95_ms,
            t.delay.p99_ms,
            t.delay.max_ms,
            t.delay.count,
            t.playlists,
            t.delivered_mbit_per_second
        );
        let _ = write!(o, "viewer errors: {}", t.viewer_errors);
        for (k, n) in t.errors.iter() {
            let _ = write!(o, " [{k}: {n}]");
        }
        let _ = writeln!(o);
        if t.streams_with_discontinuities > 0 {
            let _ = writeln!(
                o,
                "streams whose playlists announced a discontinuity: {}",
                t.streams_with_discontinuities
            );
        }
        if let Some(s) = &self.server {
            let _ = writeln!(
                o,
                "server {:?}: CPU {:.1} % of one core ({:.2} % per stream), VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                s.pids,
                s.cpu_percent,
                s.cpu_percent_per_stream,
                s.vm_rss_kib as f64 / 1024.0,
                s.vm_hwm_kib as f64 / 1024.0
            );
            if !s.exited.is_empty() {
                let _ = writeln!(o, "  not measured (exited?): {:?}", s.exited);
            }
        }
        if let Some(c) = self.load_tool_cpu_percent {
            let _ = writeln!(o, "sigma-load itself: CPU {c:.1} % of one core");
        }
        if let Some(m) = &self.machine {
            let _ = writeln!(
                o,
                "whole machine: CPU {:.1} % of one core ({} cores; includes other work)",
                m.cpu_percent, m.cores
            );
        }
        o
    }
}
