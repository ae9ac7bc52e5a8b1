//! The webhook shell: one task per node claims due deliveries from the outbox with a lease
//! (so only one node attempts each), and POSTs them, at most [`MAX_IN_FLIGHT`] at a time on
//! the node and [`MAX_IN_FLIGHT_PER_ENDPOINT`] per endpoint across nodes, so a slow or dead
//! receiver holds only its own slots. Finished attempts are recorded in batches. It wakes
//! when this node appends events or records attempts, and polls the store every [`POLL`]
//! for retries and other nodes' events.
//!
//! The decisions (signature, verdict, schedule, which addresses are public) are the pure
//! functions of [`crate::webhooks`].

use crate::control::{Control, now_ms};
use crate::store::{AttemptEnd, AttemptRecord, DueDelivery};
use crate::webhooks::{self, RetrySchedule, Verdict};
use rand::Rng;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Attempts in flight on one node.
pub const MAX_IN_FLIGHT: usize = 64;
/// Attempts in flight to one endpoint on one node.
pub const MAX_IN_FLIGHT_PER_ENDPOINT: usize = 4;
/// How often the outbox is read when nothing wakes the task.
pub const POLL: Duration = Duration::from_millis(250);
/// How long a lease lasts: an attempt's timeout and a margin. A node that dies mid-attempt
/// leaves the delivery to others after this.
pub const LEASE: Duration = Duration::from_secs(30);

/// Webhook settings (`[webhooks]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Waits between attempts.
    pub schedule: RetrySchedule,
    /// Whether targets on loopback, private or link-local addresses are allowed.
    pub allow_private: bool,
}

/// Resolves names for the webhook client, dropping addresses that are not public unless
/// private targets are allowed (so a name cannot be pointed at an internal address later).
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow || webhooks::is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client deliveries use: no redirects, the attempt timeout, the guarded resolver.
pub fn client(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(webhooks::ATTEMPT_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .user_agent(concat!("Sigma-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Whether `url`'s host is an address literal that is not public.
pub fn literal_private(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !webhooks::is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !webhooks::is_public(IpAddr::V6(ip)),
        _ => false,
    }
}

/// Runs the dispatcher until the control plane closes.
pub(crate) async fn run(control: std::sync::Weak<crate::control::Inner>) {
    let Some(c) = Control::upgrade(&control) else {
        return;
    };
    let settings = c.config().webhooks.clone();
    let client = match client(settings.allow_private) {
        Ok(cl) => cl,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not be built; no deliveries");
            return;
        }
    };
    // This node's name on its leases.
    let owner = c.with_rng(|r| crate::id::new_id(crate::id::Kind::Webhook, r));
    let mut appended = c.appended();
    let mut closing = c.closing();
    drop(c);
    let wake = Arc::new(Notify::new());
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // Finished attempts are recorded in batches: one transaction for all that ended
    // meanwhile.
    let (done_tx, mut done_rx) =
        tokio::sync::mpsc::channel::<(AttemptRecord, AttemptEnd)>(MAX_IN_FLIGHT * 2);
    let recorder = {
        let (control, wake) = (control.clone(), wake.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = done_rx.recv().await {
                batch.push(first);
                while let Ok(more) = done_rx.try_recv() {
                    batch.push(more);
                }
                let Some(c) = Control::upgrade(&control) else {
                    return;
                };
                if let Err(e) = c.store().finish_attempts(&batch).await {
                    // The leases run out and the deliveries are attempted again.
                    tracing::warn!(error = %e, attempts = batch.len(), "webhook attempts not recorded");
                }
                batch.clear();
                wake.notify_one();
            }
        })
    };
    loop {
        if *closing.borrow() {
            break;
        }
        let Some(c) = Control::upgrade(&control) else {
            break;
        };
        let free = slots.available_permits();
        if free > 0 {
            let now = now_ms();
            let until = now + LEASE.as_millis() as i64;
            match c
                .store()
                .claim_due(
                    &owner,
                    now,
                    until,
                    MAX_IN_FLIGHT_PER_ENDPOINT as u32,
                    free as u32,
                )
                .await
            {
                Ok(due) => {
                    tracing::trace!(free, claimed = due.len(), "webhook claim");
                    for d in due {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            break; // its lease runs out; another pass takes it
                        };
                        let (c, client, settings) = (c.clone(), client.clone(), settings.clone());
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            let finished = attempt(&c, &client, &settings, &d).await;
                            drop(slot);
                            let _ = done.send(finished).await;
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook outbox read failed"),
            }
        }
        drop(c);
        tokio::select! {
            _ = appended.changed() => {}
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = closing.changed() => break,
        }
        // Let a burst of appends or completions gather into one claim.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(done_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), recorder).await;
}

/// One attempt of delivery `d`: what to record.
async fn attempt(
    c: &Control,
    client: &reqwest::Client,
    s: &WebhookSettings,
    d: &DueDelivery,
) -> (AttemptRecord, AttemptEnd) {
    let event = &d.event;
    let at = now_ms();
    let started = Instant::now();
    let number = d.attempts + 1;
    let body = serde_json::to_vec(&event.show()).unwrap_or_default();
    let timestamp = at / 1000;
    let mut secrets = vec![d.secret.as_str()];
    if let Some((previous, until)) = &d.previous {
        if *until > at {
            secrets.push(previous.as_str());
        }
    }
    let result: Result<(u16, Option<Duration>), String> = async {
        let url = webhooks::check_url(&d.url).map_err(|e| e.to_string())?;
        if !s.allow_private && literal_private(&url) {
            return Err("the target is not a public address".to_string());
        }
        let signature = webhooks::signature_header(&secrets, &event.id, timestamp, &body)
            .map_err(|e| e.to_string())?;
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| webhooks::parse_retry_after(v, timestamp));
        Ok((r.status().as_u16(), retry_after))
    }
    .await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let (status, retry_after, error) = match result {
        Ok((st, ra)) => (
            Some(st),
            ra,
            (!(200..300).contains(&st)).then(|| format!("HTTP {st}")),
        ),
        Err(e) => (None, None, Some(e)),
    };
    let exhausted = number >= i64::from(s.schedule.attempts());
    let end = match webhooks::judge(status, retry_after) {
        Verdict::Delivered => AttemptEnd::Done,
        Verdict::Disable => AttemptEnd::Disable,
        Verdict::Retry(_) if exhausted => AttemptEnd::Failed,
        Verdict::Retry(Some(wait)) => AttemptEnd::RetryAt(now_ms() + wait.as_millis() as i64),
        Verdict::Retry(None) => {
            let jitter = c.with_rng(|r| r.random_range(-1.0..=1.0));
            match s.schedule.after(number as u32, jitter) {
                Some(wait) => AttemptEnd::RetryAt(now_ms() + wait.as_millis() as i64),
                None => AttemptEnd::Failed,
            }
        }
    };
    let outcome = match end {
        AttemptEnd::Done => "delivered",
        AttemptEnd::RetryAt(_) => "retrying",
        AttemptEnd::Failed => "failed",
        AttemptEnd::Disable => "disabled",
    };
    match &end {
        AttemptEnd::Done => {
            tracing::debug!(webhook = %d.webhook_id, event = %event.id, attempt = number, "webhook delivered")
        }
        _ => {
            tracing::info!(webhook = %d.webhook_id, event = %event.id, attempt = number, outcome,
                error = error.as_deref().unwrap_or(""), "webhook attempt failed")
        }
    }
    let record = AttemptRecord {
        webhook_id: d.webhook_id.clone(),
        position: d.position,
        event_id: event.id.clone(),
        event_type: event.kind.clone(),
        attempt: number,
        at,
        status_code: status.map(i64::from),
        duration_ms,
        error,
        outcome: outcome.to_string(),
    };
    (record, end)
}

/// A short reason for a failed request, without the URL (which may carry a token).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "no answer"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}
