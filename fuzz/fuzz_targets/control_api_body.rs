//! API request bodies: arbitrary bytes get a parse error or a value that validation judges,
//! never a panic. Live stream and webhook bodies, and the strings in them that are parsed
//! further (webhook URLs, replay times).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_control::api::parse_json;
use sigma_control::model::{
    CreateLiveStream, CreateWebhook, ReplayWebhook, Rules, UpdateLiveStream, UpdateWebhook,
    check_webhook_fields, parse_rfc3339,
};
use sigma_control::webhooks::check_url;

fuzz_target!(|data: &[u8]| {
    let ladders = vec!["default".to_string()];
    let rules = Rules { ladders: &ladders };
    if let Ok(c) = parse_json::<CreateLiveStream>(data) {
        let _ = rules.create(&c);
    }
    if let Ok(u) = parse_json::<UpdateLiveStream>(data) {
        let _ = rules.update(&u);
    }
    if let Ok(w) = parse_json::<CreateWebhook>(data) {
        let _ = check_webhook_fields(w.event_types.as_deref(), w.description.as_deref());
        let _ = check_url(&w.url);
    }
    if let Ok(w) = parse_json::<UpdateWebhook>(data) {
        let _ = check_webhook_fields(w.event_types.as_deref(), w.description.as_deref());
        if let Some(u) = &w.url {
            let _ = check_url(u);
        }
    }
    if let Ok(r) = parse_json::<ReplayWebhook>(data) {
        let _ = parse_rfc3339(&r.since);
    }
});
