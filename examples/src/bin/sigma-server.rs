//! `sigma-server`: RTMP in, LL-HLS out. The command line of the `sigma-server` library crate.
//!
//! With no arguments it runs on the embedded default configuration (RTMP on :1935, HTTP on
//! :8080, data under ./sigma-data); `--config FILE` loads a TOML file and flags override both.
//! The management API listens on 127.0.0.1:8081 (`--api-listen`); its admin token is
//! `SIGMA_API_TOKEN` when set, else generated at first start, written to `DATA_DIR/api-token`
//! (mode 0600) and printed once on the console.
//! Logs go to stderr (`RUST_LOG` filters them, default `info`). SIGINT or SIGTERM shuts down
//! cleanly: publishers are closed and playlists end.

use clap::Parser;
use sigma_server::config::{Config, Overrides};
use std::path::PathBuf;
use std::process::ExitCode;

/// Sigma live-streaming server: publish RTMP, play Low-Latency HLS.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (see sigma-server/assets/sigma.toml); else the embedded default.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = match Config::load(cli.config.as_deref(), &cli.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sigma-server: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sigma-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A secret comes from the environment, never from the file or the command line (which
    // other users of the machine can read).
    config.control.admin_token = std::env::var("SIGMA_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    config.control.admission_secret = std::env::var("SIGMA_ADMISSION_SECRET")
        .ok()
        .filter(|t| !t.is_empty());
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    // Every viewer and publisher is a socket: allow as many as the system lets this process
    // have (as nginx's worker_rlimit_nofile does), so thousands of idle connections cannot
    // starve new ones.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }
    if let Err(e) = std::fs::create_dir_all(&config.server.data_dir) {
        eprintln!(
            "sigma-server: cannot create data dir {}: {e}",
            config.server.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let apps: Vec<String> = config.apps.iter().map(|a| a.name.clone()).collect();
    let open = config.open_publishing();
    let env_token = config.control.admin_token.is_some();
    let running = match sigma_server::server::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sigma-server: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = |a: std::net::SocketAddr| {
        if a.ip().is_unspecified() {
            format!("127.0.0.1:{}", a.port())
        } else {
            a.to_string()
        }
    };
    let app = apps.first().map_or("live", String::as_str);
    let api = format!("http://{}/v1", host(running.api_addr));
    println!("sigma-server {} ready", env!("CARGO_PKG_VERSION"));
    println!("  api:      {api}   (live streams with secret keys; see docs/api.md)");
    match (&running.bootstrap_token, env_token) {
        (Some(token), _) => {
            println!(
                "  api token: {token}   (shown once; kept in {})",
                running.api_token_file.display()
            );
            println!(
                "  try:      curl -H 'Authorization: Bearer {token}' -d '{{}}' {api}/live-streams"
            );
        }
        (None, true) => println!("  api auth: the admin token in SIGMA_API_TOKEN"),
        (None, false) => println!(
            "  api auth: the admin token generated at first start ({})",
            running.api_token_file.display()
        ),
    }
    if open {
        println!(
            "  publish:  rtmp://{}/{app}/STREAM   (add ?latency=ultra-low|low|normal)",
            host(running.rtmp_addr)
        );
        println!(
            "  play:     http://{}/{app}/STREAM/index.m3u8",
            host(running.http_addr)
        );
        println!(
            "  player:   http://{}/{app}/STREAM/player",
            host(running.http_addr)
        );
    }
    println!("  health:   http://{}/healthz", host(running.http_addr));
    if open {
        println!(
            "DEVELOPMENT MODE: open publishing is on, anyone who reaches rtmp://{}/{app}/ can publish. \
             In production use --no-open-publishing (or `open = false` in each [[app]]) and \
             publish with API stream keys.",
            host(running.rtmp_addr)
        );
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
