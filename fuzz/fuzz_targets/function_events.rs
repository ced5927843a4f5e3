//! The functions' event decoding on raw JSON: the SNS/SQS batch (sns-multiplier, sns-logger,
//! slack-replier, s3-copier) with the words message, the copy job and S3's EventBridge events
//! inside each record, and s3-copier's S3 Batch Operations invocations, read into tasks and a
//! target and answered.
//! Never a panic, only an answer or a clear error.
//!
//! slack-counter's HTTP event shapes are lambda_http's to decode, and it panics on several
//! malformed ones (docs/reliability.md, found by this target): the runtime's panic layer makes
//! each an invocation error (tests/tests/crash.rs), so they are not fuzzed here.
#![no_main]

use fanout_common::batch_operations::{response, CopierEvent, Invocation};
use fanout_copy_core::location::Location;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let batch = match serde_json::from_str::<CopierEvent>(text) {
        Ok(CopierEvent::Jobs(batch)) => batch,
        Ok(CopierEvent::BatchOperations(event)) => {
            let configured: Location = "s3://fuzz-backup/b/".parse().expect("a location");
            let invocation = Invocation::read(&event, Some(&configured));
            let target = invocation.target.as_ref().ok();
            let results = (invocation.tasks.into_iter())
                .map(|(id, task)| {
                    let answer = match (task, target) {
                        (Err(refused), _) => refused,
                        (Ok(task), Some(target)) => target.destination_of(&task).err().unwrap_or_else(ok),
                        (Ok(_), None) => ok(),
                    };
                    (id, answer)
                })
                .collect::<Vec<_>>();
            let answered = response(&event, results);
            assert_eq!(answered.results.len(), event.tasks.len());
            serde_json::to_string(&answered).expect("the response serializes");
            return;
        }
        Err(_) => return,
    };
    {
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
            if let Some(Ok(event)) = fanout_common::s3_events::read(&delivery.body) {
                assert!(!event.bucket.is_empty() && !event.key.is_empty());
            }
            Ok::<(), String>(())
        }));
    }
});

fn ok() -> fanout_copy_core::batch::TaskResult {
    fanout_copy_core::batch::TaskResult {
        code: fanout_copy_core::batch::ResultCode::Succeeded,
        message: String::new(),
    }
}
