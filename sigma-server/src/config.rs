//! `sigma-server` configuration: an embedded default, an optional TOML file, and command-line
//! flags, merged in that order (later wins).

use crate::server::RESERVED_SEGMENTS;
use serde::Deserialize;
use sigma_control::Store;
use sigma_core::StreamKey;
use sigma_llhls::LatencyMode;
use sigma_transcode::Ladder;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../assets/sigma.toml");

/// Parses a latency mode name (`normal`, `low`, `ultra-low`) with an error that lists them.
pub fn parse_latency(name: &str) -> Result<LatencyMode, String> {
    LatencyMode::from_name(name)
        .ok_or_else(|| format!("unknown latency mode {name:?} (expected normal, low or ultra-low)"))
}

fn deserialize_latency<'de, D: serde::Deserializer<'de>>(d: D) -> Result<LatencyMode, D::Error> {
    let name = String::deserialize(d)?;
    parse_latency(&name).map_err(serde::de::Error::custom)
}

fn deserialize_opt_latency<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<LatencyMode>, D::Error> {
    deserialize_latency(d).map(Some)
}

/// Server-wide settings (`[server]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// RTMP listen address.
    pub rtmp_listen: SocketAddr,
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// Directory for recordings and other files.
    pub data_dir: PathBuf,
    /// Default latency mode.
    #[serde(deserialize_with = "deserialize_latency")]
    pub latency: LatencyMode,
    /// How long a dropped publisher may take to come back.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// How long ended playlists stay readable before they are dropped.
    #[serde(with = "humantime_serde")]
    pub ended_retention: Duration,
    /// Ladder to transcode every stream with (`"default"`: the built-in 720p/480p/360p ladder,
    /// or the name of a `[[ladder]]`); absent: streams are packaged as published.
    #[serde(default)]
    pub transcode: Option<String>,
}

/// One RTMP application (`[[app]]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Application name: the first path segment of publish and playback URLs. A
    /// [valid name](StreamKey::valid_name), and none of
    /// [`RESERVED_SEGMENTS`].
    pub name: String,
    /// Allowed stream keys, given as `?key=` on the stream name. With keys listed, or with
    /// `open = false`, a publish needs one of them (or an API live stream's key).
    #[serde(default)]
    pub stream_keys: Vec<String>,
    /// Open publishing: with no `stream_keys`, anyone may publish any name (development mode,
    /// the embedded default). `false` admits only API stream keys and configured keys.
    #[serde(default = "yes")]
    pub open: bool,
    /// This application's default latency mode (else the server's).
    #[serde(default, deserialize_with = "deserialize_opt_latency")]
    pub latency: Option<LatencyMode>,
    /// Ladder to transcode every stream of this application with (`"default"` or the name of
    /// a `[[ladder]]`); else the server's `transcode`, else none.
    #[serde(default)]
    pub transcode: Option<String>,
    /// Ladders for particular streams of this application, by stream name; `"none"` turns
    /// transcoding off for that stream.
    #[serde(default)]
    pub stream_transcode: HashMap<String, String>,
}

fn yes() -> bool {
    true
}

/// The control plane (`[control]`): the management API and its store.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    /// The management API's listen address; loopback by default, so the API is never on the
    /// viewers' port or reachable from other machines unless asked.
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://…`; absent: SQLite at `DATA_DIR/sigma.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// The RTMP base URL broadcasters reach this server at (`rtmp://ingest.example.com:1935`);
    /// absent: from `rtmp_listen` (loopback when it listens on every address).
    #[serde(default)]
    pub public_rtmp_url: Option<String>,
    /// The base URL viewers reach the HTTP listener at (`https://cdn.example.com`); absent:
    /// from `http_listen`.
    #[serde(default)]
    pub public_http_url: Option<String>,
    /// An admin API token given by the environment (`SIGMA_API_TOKEN`), never by the file;
    /// when absent, a token is generated at first start ([`crate::server::start`]).
    #[serde(skip)]
    pub admin_token: Option<String>,
    /// The secret admission hook requests are signed with (`SIGMA_ADMISSION_SECRET`, never
    /// the file); when absent, one is generated at first start into `DATA_DIR/admission-secret`.
    #[serde(skip)]
    pub admission_secret: Option<String>,
}

impl std::fmt::Debug for ControlSection {
    /// Secrets stay out of debug output: the admin token and a database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlSection")
            .field("api_listen", &self.api_listen)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "[redacted]"),
            )
            .field("public_rtmp_url", &self.public_rtmp_url)
            .field("public_http_url", &self.public_http_url)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            api_listen: default_api_listen(),
            database_url: None,
            public_rtmp_url: None,
            public_http_url: None,
            admin_token: None,
            admission_secret: None,
        }
    }
}

impl Config {
    /// The store URL: `[control] database_url`, else SQLite in the data dir.
    pub fn database_url(&self) -> String {
        self.control
            .database_url
            .clone()
            .unwrap_or_else(|| Store::sqlite_url(&self.server.data_dir.join("sigma.db")))
    }

    /// The webhook settings for the control plane (the schedule was checked by `validate`).
    pub fn webhook_settings(&self) -> sigma_control::delivery::WebhookSettings {
        sigma_control::delivery::WebhookSettings {
            schedule: self
                .webhooks
                .retry_schedule
                .as_deref()
                .and_then(|s| sigma_control::webhooks::RetrySchedule::parse(s).ok())
                .unwrap_or_default(),
            allow_private: self.webhooks.allow_private_targets,
        }
    }

    /// Whether some application admits anyone (open publishing with no keys).
    pub fn open_publishing(&self) -> bool {
        self.apps.iter().any(|a| a.open && a.stream_keys.is_empty())
    }
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    pub server: ServerSection,
    /// `[[app]]` tables.
    #[serde(default, rename = "app")]
    pub apps: Vec<AppSection>,
    /// `[[ladder]]` tables: named ABR ladders (see docs/transcode.md for the fields).
    #[serde(default, rename = "ladder")]
    pub ladders: Vec<Ladder>,
    /// `[control]`.
    #[serde(default)]
    pub control: ControlSection,
    /// `[webhooks]`.
    #[serde(default)]
    pub webhooks: WebhooksSection,
    /// `[simulcast]`.
    #[serde(default)]
    pub simulcast: SimulcastSection,
    /// `[[admission]]` tables: hooks asked before a publish (and, with `playback`, a
    /// playback session) starts.
    #[serde(default)]
    pub admission: Vec<AdmissionHook>,
}

/// One admission hook (`[[admission]]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionHook {
    /// Where the signed JSON request is POSTed.
    pub url: String,
    /// How long to wait for its answer (default 2 s).
    #[serde(default = "default_hook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// `deny` (default) or `allow`: what a timeout, an error or a malformed answer means.
    #[serde(default)]
    pub on_error: sigma_control::admission::OnError,
    /// Also ask when a playback session starts (the multivariant playlist or player page of
    /// a playback id).
    #[serde(default)]
    pub playback: bool,
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(2)
}

/// Webhook delivery (`[webhooks]`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    /// Waits between attempts, e.g. `"5s,5m,30m,2h,5h,10h,14h,20h,24h"` (the default).
    #[serde(default)]
    pub retry_schedule: Option<String>,
    /// Allow targets on loopback, private and link-local addresses (off: such URLs are
    /// refused, a guard against server-side request forgery).
    #[serde(default)]
    pub allow_private_targets: bool,
}

/// Restreaming (`[simulcast]`); targets themselves are made through the API.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulcastSection {
    /// Allow targets on loopback, private and link-local addresses (off: such URLs are
    /// refused, and the pusher never connects to such an address, a guard against
    /// server-side request forgery).
    #[serde(default)]
    pub allow_private_targets: bool,
}

/// Command-line overrides; `None` keeps what the file says.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// RTMP listen address, e.g. 0.0.0.0:1935.
    #[arg(long)]
    pub rtmp_listen: Option<SocketAddr>,
    /// HTTP listen address, e.g. 0.0.0.0:8080.
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
    /// Directory for recordings and other files.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Default latency mode for streams that do not choose one: normal, low or ultra-low.
    #[arg(long, value_parser = parse_latency)]
    pub latency: Option<LatencyMode>,
    /// Grace period for a dropped publisher, e.g. 10s or 1m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub grace_period: Option<Duration>,
    /// Transcode every stream with this ladder: `default` (built-in 720p/480p/360p) or the
    /// name of a `[[ladder]]` in the configuration file; `none` turns it off.
    #[arg(long)]
    pub transcode: Option<String>,
    /// The management API's listen address (default 127.0.0.1:8081).
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// The control plane's database: `postgres://user@host/db` (several servers may share
    /// one) or `sqlite://PATH`; default SQLite in the data dir.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Admit only API stream keys and configured keys on every application (recommended in
    /// production): nobody can publish an arbitrary name.
    #[arg(long)]
    pub no_open_publishing: bool,
    /// Waits between webhook attempts, e.g. 1s,2s,4s (default 5s,5m,30m,2h,5h,10h,14h,20h,24h).
    #[arg(long)]
    pub webhook_retry_schedule: Option<String>,
    /// Allow webhook targets on loopback, private and link-local addresses.
    #[arg(long)]
    pub webhooks_allow_private: bool,
    /// Allow simulcast targets on loopback, private and link-local addresses.
    #[arg(long)]
    pub simulcast_allow_private: bool,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An `[[admission]]` URL is not an http(s) URL, or its timeout is out of range.
    #[error("[[admission]] {0}")]
    Admission(String),
    /// `[webhooks] retry_schedule` does not parse.
    #[error("[webhooks] retry_schedule: {0}")]
    RetrySchedule(String),
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped keys.
    #[error("{origin}: {source}")]
    Parse {
        /// The file, or "embedded default".
        origin: String,
        /// What is wrong, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A `[[ladder]]` is inconsistent.
    #[error("ladder {name:?}: {source}")]
    Ladder {
        /// The ladder's name.
        name: String,
        /// What is wrong with it.
        source: sigma_transcode::Error,
    },
    /// A `transcode` setting names no `[[ladder]]` (and is neither `"default"` nor `"none"`).
    #[error("transcode = {0:?} names no [[ladder]] (and is not \"default\")")]
    UnknownLadder(String),
    /// There is no `[[app]]` table, so nothing could be published.
    #[error("no [[app]] table: nothing could be published")]
    NoApps,
    /// An application name is not a valid name.
    #[error(
        "app name {0:?} must be 1 to {max} ASCII letters, digits, '-' or '_'",
        max = StreamKey::MAX_NAME_LEN
    )]
    InvalidAppName(String),
    /// An application name is a path segment the HTTP listener keeps for itself.
    #[error(
        "app name {0:?} is reserved: the HTTP listener serves /{0}/… itself (reserved: {list})",
        list = RESERVED_SEGMENTS.join(", ")
    )]
    ReservedAppName(String),
    /// Two `[[app]]` tables have the same name.
    #[error("app {0:?} defined twice")]
    DuplicateApp(String),
}

impl Config {
    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            source: Box::new(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Loads `path`, or the embedded default when `None`, then applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Config::parse(&text, &p.display().to_string())?
            }
            None => Config::parse(EMBEDDED_DEFAULT, "embedded default")?,
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    /// Applies command-line overrides.
    pub fn apply(&mut self, o: &Overrides) {
        let s = &mut self.server;
        if let Some(v) = o.rtmp_listen {
            s.rtmp_listen = v;
        }
        if let Some(v) = o.http_listen {
            s.http_listen = v;
        }
        if let Some(v) = &o.data_dir {
            s.data_dir = v.clone();
        }
        if let Some(v) = o.latency {
            s.latency = v;
        }
        if let Some(v) = o.grace_period {
            s.grace_period = v;
        }
        if let Some(v) = &o.transcode {
            s.transcode = (v != "none").then(|| v.clone());
        }
        if let Some(v) = o.api_listen {
            self.control.api_listen = v;
        }
        if let Some(v) = &o.database_url {
            self.control.database_url = Some(v.clone());
        }
        if let Some(v) = &o.webhook_retry_schedule {
            self.webhooks.retry_schedule = Some(v.clone());
        }
        if o.webhooks_allow_private {
            self.webhooks.allow_private_targets = true;
        }
        if o.simulcast_allow_private {
            self.simulcast.allow_private_targets = true;
        }
        if o.no_open_publishing {
            for a in &mut self.apps {
                a.open = false;
            }
        }
    }

    /// The ladder named `name`: a `[[ladder]]` of that name, else the built-in `default`.
    pub fn ladder(&self, name: &str) -> Option<Ladder> {
        self.ladders
            .iter()
            .find(|l| l.name == name)
            .cloned()
            .or_else(|| (name == "default").then(Ladder::default_ladder))
    }

    /// The ladder a stream is transcoded with, if any: the stream's own setting, else its
    /// application's, else the server's.
    pub fn ladder_for(&self, app: &str, stream: &str) -> Option<Ladder> {
        let a = self.app(app);
        let name = a
            .and_then(|a| a.stream_transcode.get(stream))
            .or_else(|| a.and_then(|a| a.transcode.as_ref()))
            .or(self.server.transcode.as_ref())?;
        if name == "none" {
            return None;
        }
        self.ladder(name)
    }

    /// The application named `name`.
    pub fn app(&self, name: &str) -> Option<&AppSection> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Checks what parsing alone cannot; also run by [`load`](Self::load) after overrides.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for l in &self.ladders {
            l.validate().map_err(|source| ConfigError::Ladder {
                name: l.name.clone(),
                source,
            })?;
        }
        let names = self
            .apps
            .iter()
            .flat_map(|a| a.transcode.iter().chain(a.stream_transcode.values()))
            .chain(self.server.transcode.iter());
        for name in names {
            if name != "none" && self.ladder(name).is_none() {
                return Err(ConfigError::UnknownLadder(name.clone()));
            }
        }
        if self.apps.is_empty() {
            return Err(ConfigError::NoApps);
        }
        for (i, a) in self.apps.iter().enumerate() {
            if !StreamKey::valid_name(&a.name) {
                return Err(ConfigError::InvalidAppName(a.name.clone()));
            }
            if RESERVED_SEGMENTS.contains(&a.name.as_str()) {
                return Err(ConfigError::ReservedAppName(a.name.clone()));
            }
            if self.apps[..i].iter().any(|b| b.name == a.name) {
                return Err(ConfigError::DuplicateApp(a.name.clone()));
            }
        }
        for h in &self.admission {
            sigma_control::webhooks::check_url(&h.url)
                .map_err(|e| ConfigError::Admission(format!("url {:?}: {e}", h.url)))?;
            if h.timeout < Duration::from_millis(100) || h.timeout > Duration::from_secs(30) {
                return Err(ConfigError::Admission(format!(
                    "timeout {:?}: 100ms to 30s",
                    h.timeout
                )));
            }
        }
        if let Some(s) = &self.webhooks.retry_schedule {
            sigma_control::webhooks::RetrySchedule::parse(s).map_err(ConfigError::RetrySchedule)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.server.rtmp_listen.port(), 1935);
        assert_eq!(c.server.http_listen.port(), 8080);
        assert_eq!(c.server.data_dir, PathBuf::from("./sigma-data"));
        assert_eq!(c.server.grace_period, Duration::from_secs(10));
        assert_eq!(c.app("live").map(|a| a.stream_keys.len()), Some(0));
    }

    #[test]
    fn flags_override_the_file() {
        let o = Overrides {
            rtmp_listen: Some("127.0.0.1:1999".parse().unwrap()),
            latency: Some(LatencyMode::UltraLow),
            grace_period: Some(Duration::from_secs(3)),
            ..Overrides::default()
        };
        let c = Config::load(None, &o).unwrap();
        assert_eq!(c.server.rtmp_listen, "127.0.0.1:1999".parse().unwrap());
        assert_eq!(c.server.http_listen.port(), 8080, "untouched");
        assert_eq!(c.server.latency, LatencyMode::UltraLow);
        assert_eq!(c.server.grace_period, Duration::from_secs(3));
    }

    #[test]
    fn per_app_options() {
        let text = EMBEDDED_DEFAULT.replace(
            "stream_keys = []",
            "stream_keys = [\"k1\", \"k2\"]\nlatency = \"ultra-low\"",
        );
        let c = Config::parse(&text, "test").unwrap();
        let app = c.app("live").unwrap();
        assert_eq!(app.stream_keys, ["k1", "k2"]);
        assert_eq!(app.latency, Some(LatencyMode::UltraLow));
    }

    #[test]
    fn mistakes_are_reported_with_their_place() {
        let e = Config::parse(
            &EMBEDDED_DEFAULT.replace("latency = \"low\"", "latency = \"fast\""),
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("f.toml:") && e.contains("fast"), "{e}");
        let e = Config::parse(&format!("{EMBEDDED_DEFAULT}\n[server2]\n"), "f.toml").unwrap_err();
        assert!(e.to_string().contains("server2"), "{e}");
        let e = Config::parse(
            &EMBEDDED_DEFAULT.replace("name = \"live\"", "name = \"../x\""),
            "f",
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::InvalidAppName(_)), "{e}");
        let missing = Config::load(
            Some(Path::new("/nonexistent/sigma.toml")),
            &Overrides::default(),
        );
        assert!(matches!(missing, Err(ConfigError::Read { .. })));
    }

    #[test]
    fn ladders_by_server_app_and_stream() {
        let text = format!(
            "{}\ntranscode = \"default\"\nstream_transcode = {{ raw = \"none\", phone = \"small\" }}\n\n\
             [[ladder]]\nname = \"small\"\n[[ladder.renditions]]\nname = \"240p\"\nheight = 240\n\
             video = {{ bitrate_kbps = 300 }}\n",
            EMBEDDED_DEFAULT
        );
        let c = Config::parse(&text, "test").unwrap();
        let names = |stream: &str| {
            c.ladder_for("live", stream).map(|l| {
                l.renditions
                    .iter()
                    .map(|r| r.name.clone())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(names("cam").unwrap(), ["720p", "480p", "360p"]);
        assert_eq!(names("phone").unwrap(), ["240p"]);
        assert_eq!(names("raw"), None);
        assert_eq!(
            Config::parse(EMBEDDED_DEFAULT, "d")
                .unwrap()
                .ladder_for("live", "x"),
            None
        );
        // The flag turns it on for every stream, or off.
        let mut c = Config::parse(EMBEDDED_DEFAULT, "d").unwrap();
        c.apply(&Overrides {
            transcode: Some("default".into()),
            ..Overrides::default()
        });
        assert!(c.ladder_for("live", "x").is_some());
        let bad = Config::load(
            None,
            &Overrides {
                transcode: Some("huge".into()),
                ..Overrides::default()
            },
        );
        assert!(matches!(bad, Err(ConfigError::UnknownLadder(m)) if m == "huge"));
    }

    #[test]
    fn app_names_the_http_listener_keeps_are_refused() {
        for reserved in RESERVED_SEGMENTS {
            let text =
                EMBEDDED_DEFAULT.replace("name = \"live\"", &format!("name = \"{reserved}\""));
            let e = Config::parse(&text, "f").unwrap_err();
            assert!(
                matches!(&e, ConfigError::ReservedAppName(n) if n == reserved),
                "{e}"
            );
            assert!(e.to_string().contains("reserved"), "{e}");
        }
        // `player` is an ordinary application name: the player page lives under the stream.
        let text = EMBEDDED_DEFAULT.replace("name = \"live\"", "name = \"player\"");
        assert!(Config::parse(&text, "f").unwrap().app("player").is_some());
        let long =
            EMBEDDED_DEFAULT.replace("name = \"live\"", &format!("name = \"{}\"", "a".repeat(65)));
        assert!(matches!(
            Config::parse(&long, "f"),
            Err(ConfigError::InvalidAppName(_))
        ));
        let twice = format!("{EMBEDDED_DEFAULT}\n[[app]]\nname = \"live\"\n");
        assert!(matches!(
            Config::parse(&twice, "f"),
            Err(ConfigError::DuplicateApp(_))
        ));
    }

    #[test]
    fn latency_names() {
        for l in [LatencyMode::Normal, LatencyMode::Low, LatencyMode::UltraLow] {
            assert_eq!(parse_latency(l.name()), Ok(l));
        }
        assert!(parse_latency("fast").unwrap_err().contains("ultra-low"));
    }
}
