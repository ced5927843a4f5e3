//! The functions' event decoding on raw JSON: the SNS/SQS batch (sns-multiplier, sns-logger,
//! slack-replier, s3-copier) with the messages inside it, and slack-counter's HTTP event shapes
//! (API Gateway REST and HTTP APIs, ALB, function URLs). Never a panic, only an answer or a
//! clear error. An event whose `Host` header no URL can hold makes lambda_http panic (found
//! here; the runtime's panic layer turns it into an invocation error, tests/tests/crash.rs):
//! such hosts are left out, so that the campaign goes on past it.
#![no_main]

use fanout_common::events::Batch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(batch) = serde_json::from_str::<Batch>(text) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let _ = runtime.block_on(batch.handle(|delivery| async move {
            let _ = fanout_words_core::WordsMessage::from_delivery(
                &delivery.body,
                delivery.id.as_deref(),
                delivery.sender.as_deref(),
            );
            let _ = fanout_copy_core::CopyJob::from_json(&delivery.body);
            Ok::<(), String>(())
        }));
    }
    let host_parses =
        |host: &str| lambda_http::http::uri::Authority::try_from(host).is_ok() && url_host_ok(host);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let hosts = [
            &value["headers"]["host"],
            &value["headers"]["Host"],
            &value["requestContext"]["domainName"],
            &value["multiValueHeaders"]["host"][0],
        ];
        if hosts.iter().filter_map(|h| h.as_str()).all(host_parses) {
            let _ = lambda_http::request::from_str(text);
        }
    }
});

/// Whether a URL can hold `host` (what lambda_http unwraps).
fn url_host_ok(host: &str) -> bool {
    host.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}
