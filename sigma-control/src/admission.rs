//! Admission hooks: the operator's own HTTP endpoints asked whether a publish (and, when
//! configured, a playback session) may start, as OvenMediaEngine's AdmissionWebhooks, SRS's
//! `on_publish` and MediaMTX's HTTP authentication do.
//!
//! - The request is JSON ([`HookRequest`]), signed like webhooks (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature` under a `whsec_` secret), with secrets redacted
//!   from the query ([`redact_query`]) and never the stream key.
//! - The answer is `{"allowed": bool, "reason": string?}` ([`parse_answer`]). A timeout, a
//!   connection error, a non-2xx status or another body applies the hook's `on_error`.
//! - Several hooks are asked in order; the first refusal wins.
//!
//! The pure parts (body, redaction, answer) are separate from [`Hooks`], the HTTP shell.

use crate::id::{self, Kind};
use crate::webhooks::signature_header;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// What a hook does when it cannot decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Refuse (the default: a hook that is down keeps publishing closed).
    #[default]
    Deny,
    /// Admit.
    Allow,
}

/// One configured hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// Where to POST.
    pub url: String,
    /// How long to wait for the answer.
    pub timeout: Duration,
    /// What a failure means.
    pub on_error: OnError,
    /// Whether playback sessions are asked too.
    pub playback: bool,
}

/// The client of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Client {
    /// Its address.
    pub ip: String,
    /// Its port.
    pub port: u16,
}

/// The body of a hook request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookRequest {
    /// `publish` or `play`.
    pub action: &'static str,
    /// The API live stream, or null for a configured application's stream.
    pub live_stream_id: Option<String>,
    /// The playback id (play only).
    pub playback_id: Option<String>,
    /// The RTMP application (`live`).
    pub app: String,
    /// A configured application's stream name; null for API streams (whose name is the key).
    pub stream: Option<String>,
    /// Who asks.
    pub client: Client,
    /// The request's query, with secrets redacted.
    pub query: String,
}

impl HookRequest {
    /// A publish request.
    pub fn publish(
        live_stream_id: Option<String>,
        app: &str,
        stream: Option<&str>,
        client: SocketAddr,
        query: &str,
    ) -> Self {
        HookRequest {
            action: "publish",
            live_stream_id,
            playback_id: None,
            app: app.to_string(),
            stream: stream.map(str::to_string),
            client: Client {
                ip: client.ip().to_string(),
                port: client.port(),
            },
            query: redact_query(query),
        }
    }
}

/// Query parameters whose values are secrets.
pub const SECRET_PARAMS: &[&str] = &["key", "token", "stream_key", "password", "secret"];

/// `query` with the values of [`SECRET_PARAMS`] replaced by `[redacted]` (other parameters
/// kept as given).
pub fn redact_query(query: &str) -> String {
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let name = p.split('=').next().unwrap_or("");
            let decoded: String = form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            if SECRET_PARAMS.contains(&decoded.to_ascii_lowercase().as_str()) {
                format!("{name}=[redacted]")
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Deserialize)]
struct Answer {
    allowed: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// What a hook decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allow,
    /// Refused, with the hook's reason.
    Deny(String),
}

/// Reads a 2xx answer's body; `None` when it is not `{"allowed": bool, "reason"?}`.
pub fn parse_answer(body: &[u8]) -> Option<Decision> {
    let a: Answer = serde_json::from_slice(body).ok()?;
    Some(if a.allowed {
        Decision::Allow
    } else {
        let reason = a
            .reason
            .unwrap_or_else(|| "refused by the admission hook".into());
        // Bounded and printable: it goes to logs and to the RTMP client.
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        Decision::Deny(reason)
    })
}

/// The configured hooks and the client that asks them.
pub struct Hooks {
    hooks: Vec<Hook>,
    secret: String,
    client: reqwest::Client,
    rng: Mutex<Box<dyn RngCore + Send>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl Hooks {
    /// Hooks signing with `secret` (`whsec_…`).
    pub fn new(
        hooks: Vec<Hook>,
        secret: String,
        rng: Box<dyn RngCore + Send>,
    ) -> Result<Hooks, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .user_agent(concat!("Sigma-Admission/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Hooks {
            hooks,
            secret,
            client,
            rng: Mutex::new(rng),
        })
    }

    /// Whether any hook is asked about playback.
    pub fn guards_playback(&self) -> bool {
        self.hooks.iter().any(|h| h.playback)
    }

    /// Whether there are hooks at all.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Asks every hook that takes `req.action`, in order; the first refusal wins.
    pub async fn decide(&self, req: &HookRequest) -> Decision {
        let body = serde_json::to_vec(req).unwrap_or_default();
        for h in &self.hooks {
            if req.action == "play" && !h.playback {
                continue;
            }
            let d = self.ask(h, &body).await;
            if let Decision::Deny(_) = d {
                return d;
            }
        }
        Decision::Allow
    }

    async fn ask(&self, h: &Hook, body: &[u8]) -> Decision {
        let msg_id = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            id::new_id(Kind::Admission, &mut **rng)
        };
        let ts = crate::control::now_ms() / 1000;
        let failed = |why: String| {
            tracing::warn!(hook = %h.url, error = %why, on_error = ?h.on_error, "admission hook failed");
            match h.on_error {
                OnError::Allow => Decision::Allow,
                OnError::Deny => Decision::Deny(format!("admission hook unavailable ({why})")),
            }
        };
        let sig = match signature_header(&[&self.secret], &msg_id, ts, body) {
            Ok(s) => s,
            Err(e) => return failed(e.to_string()),
        };
        let call = async {
            let r = self
                .client
                .post(&h.url)
                .header("content-type", "application/json")
                .header("webhook-id", &msg_id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body.to_vec())
                .send()
                .await
                .map_err(|e| {
                    if e.is_connect() {
                        "connection failed".to_string()
                    } else {
                        "request failed".to_string()
                    }
                })?;
            let status = r.status();
            let bytes = r.bytes().await.map_err(|_| "body not read".to_string())?;
            if !status.is_success() {
                return Err(format!("HTTP {}", status.as_u16()));
            }
            parse_answer(&bytes).ok_or_else(|| "not an admission answer".to_string())
        };
        match tokio::time::timeout(h.timeout, call).await {
            Ok(Ok(d)) => d,
            Ok(Err(why)) => failed(why),
            Err(_) => failed(format!("no answer in {:?}", h.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn secrets_leave_the_query() {
        assert_eq!(
            redact_query("latency=low&key=s3cret"),
            "latency=low&key=[redacted]"
        );
        assert_eq!(
            redact_query("?token=a.b.c&x=1&KEY=2&k%65y=3"),
            "token=[redacted]&x=1&KEY=[redacted]&k%65y=[redacted]"
        );
        assert_eq!(redact_query(""), "");
        assert_eq!(redact_query("keys=1&monkey=2"), "keys=1&monkey=2");
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer(br#"{"allowed": true}"#), Some(Decision::Allow));
        assert_eq!(
            parse_answer(br#"{"allowed": false, "reason": "no credit"}"#),
            Some(Decision::Deny("no credit".into()))
        );
        assert!(matches!(
            parse_answer(br#"{"allowed": false}"#),
            Some(Decision::Deny(_))
        ));
        assert_eq!(parse_answer(b"yes"), None);
        assert_eq!(parse_answer(br#"{"allowed": "yes"}"#), None);
        let long = format!(r#"{{"allowed": false, "reason": "{}\n"}}"#, "x".repeat(500));
        let Some(Decision::Deny(r)) = parse_answer(long.as_bytes()) else {
            panic!()
        };
        assert_eq!(r.len(), 200);
    }

    #[test]
    fn the_body_names_no_key() {
        let r = HookRequest::publish(
            Some("ls_1".into()),
            "live",
            None,
            "127.0.0.1:5000".parse().unwrap(),
            "key=abc",
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["action"], "publish");
        assert_eq!(v["stream"], serde_json::Value::Null);
        assert_eq!(v["client"]["port"], 5000);
        assert!(!v.to_string().contains("abc"));
    }

    proptest! {
        /// No value of a secret parameter survives redaction, whatever the query.
        #[test]
        fn redaction_removes_secret_values(other in "[a-z]{1,8}", v in "[A-Za-z0-9]{6,20}", q in "[a-z=&]{0,20}") {
            let query = format!("{q}&{other}=1&key={v}&token={v}");
            let out = redact_query(&query);
            prop_assert!(!out.contains(&format!("={v}")), "{}", out);
        }
    }
}
