//! The functions' event decoding on raw JSON: the SNS/SQS batch (sns-multiplier, sns-logger,
//! slack-replier, s3-copier) with the words message and the copy job inside each record. Never
//! a panic, only an answer or a clear error.
//!
//! slack-counter's HTTP event shapes are lambda_http's to decode, and it panics on several
//! malformed ones (docs/reliability.md, found by this target): the runtime's panic layer makes
//! each an invocation error (tests/tests/crash.rs), so they are not fuzzed here.
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
});
