//! `sigma-load`: publish N streams from a media file and watch each with M simulated LL-HLS (or
//! plain HLS) viewers on a loopback server, then print ingest rates, part delays, errors and the
//! server's CPU and memory. See docs/load.md for sizing a deployment with it. The command line of
//! the `sigma-load` library crate.

use clap::Parser;
use sigma_load::Config;
use sigma_load::media::Media;
use sigma_load::viewer::Mode;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Load generator for Sigma (or any RTMP-in, HLS-out server) on loopback.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// RTMP prefix; stream S is published to PREFIX/S (loopback only).
    #[arg(
        long,
        value_name = "URL_PREFIX",
        default_value = "rtmp://127.0.0.1:1935/live"
    )]
    rtmp: String,
    /// HTTP prefix; stream S is played from PREFIX/S/index.m3u8 (loopback only).
    #[arg(
        long,
        value_name = "URL_PREFIX",
        default_value = "http://127.0.0.1:8080/live"
    )]
    http: String,
    /// MP4 file (H.264 + AAC) to publish in a loop, in real time.
    #[arg(long, value_name = "FILE")]
    media: PathBuf,
    /// Streams to publish.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Simulated viewers per stream.
    #[arg(long, default_value_t = 1)]
    viewers_per_stream: usize,
    /// Seconds the viewers watch (the measured window).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    duration: f64,
    /// Seconds of publishing before viewers start.
    #[arg(long, value_name = "SECS", default_value_t = 4.0)]
    warmup: f64,
    /// Stream names are PREFIX0, PREFIX1, …
    #[arg(long, default_value = "load")]
    stream_prefix: String,
    /// Server process to measure (CPU from /proc/PID/stat, RSS from /proc/PID/status);
    /// repeat to sum several (nginx master and worker).
    #[arg(long = "server-pid", value_name = "PID")]
    server_pids: Vec<u32>,
    /// llhls: blocking playlist reloads and parts (hls.js low-latency); hls: playlist polling
    /// every half target duration and whole segments.
    #[arg(long, value_enum, default_value = "llhls")]
    mode: Mode,
    /// Bound on RTMP setup, each RTMP write and each HTTP request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    request_timeout: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

fn seconds(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| format!("--{name} must be a non-negative number of seconds"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let durations = (|| {
        Ok::<_, String>((
            seconds("duration", cli.duration)?,
            seconds("warmup", cli.warmup)?,
            seconds("request-timeout", cli.request_timeout)?,
        ))
    })();
    let (duration, warmup, request_timeout) = match durations {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sigma-load: {e}");
            return ExitCode::from(2);
        }
    };
    let media = match Media::open(&cli.media) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("sigma-load: {}: {e}", cli.media.display());
            return ExitCode::from(2);
        }
    };
    let config = Config {
        rtmp: cli.rtmp,
        http: cli.http,
        media,
        streams: cli.streams,
        viewers_per_stream: cli.viewers_per_stream,
        duration,
        warmup,
        stream_prefix: cli.stream_prefix,
        mode: cli.mode,
        server_pids: cli.server_pids,
        request_timeout,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sigma-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sigma_load::run(config)) {
        Ok(report) => {
            if cli.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("sigma-load: {e}");
            ExitCode::from(2)
        }
    }
}
