//! SQS adapters: a dead-letter queue (a message that can never be applied is sent, as it was
//! delivered, with the reason in its `reason` message attribute, String), and the earlier
//! redelivery of a batch's failed records ([`Redelivery`]).

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;
use fanout_aws::DisplayErrorContext;
pub use fanout_common::events::retry_delay;
use fanout_common::events::{failed_ids, SqsRecord};
use fanout_words_core::dead_letter::{bounded_reason, DeadLetterError, DeadLetters};

/// The message attribute that holds why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "reason";

#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsDeadLetters {
            client,
            queue_url: queue_url.into(),
        }
    }

    fn error(&self, err: impl std::error::Error) -> DeadLetterError {
        DeadLetterError::Failed {
            operation: "SQS SendMessage",
            destination: self.queue_url.clone(),
            detail: DisplayErrorContext(err).to_string(),
        }
    }
}

impl DeadLetters for SqsDeadLetters {
    async fn send(&self, body: &str, reason: &str) -> Result<(), DeadLetterError> {
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(bounded_reason(reason))
            .build()
            .map_err(|e| self.error(e))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(REASON_ATTRIBUTE, reason)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

/// Brings failed records of an SQS batch back sooner than the queue's visibility timeout
/// (`ChangeMessageVisibility`), which is set for the longest invocation: a copy job refused
/// by a throttled S3 comes back in [`retry_delay`] instead of an hour and a half later.
#[derive(Debug, Clone)]
pub struct Redelivery {
    client: Client,
}

impl Redelivery {
    pub fn new(client: Client) -> Self {
        Redelivery { client }
    }

    /// For each record `answer` reports as failed, makes it visible again after `delay` of it
    /// (by default [`retry_delay`]); how many were changed. A change that fails leaves the
    /// record to the queue's visibility timeout, as without it, and is logged.
    pub async fn delay_failures(
        &self,
        records: &[SqsRecord],
        answer: &serde_json::Value,
        delay: impl Fn(&SqsRecord) -> Duration,
    ) -> usize {
        let failed = failed_ids(answer);
        let mut changed = 0;
        for record in records.iter().filter(|r| failed.contains(&r.id)) {
            let Some(queue_url) = queue_url(&record.queue_arn) else {
                tracing::warn!(queue_arn = %record.queue_arn, "not an SQS queue ARN; the record comes back after the queue's visibility timeout");
                continue;
            };
            let seconds = delay(record).as_secs().min(MAX_VISIBILITY_SECONDS) as i32;
            let sent = self
                .client
                .change_message_visibility()
                .queue_url(&queue_url)
                .receipt_handle(&record.receipt_handle)
                .visibility_timeout(seconds)
                .send()
                .await;
            match sent {
                Ok(_) => {
                    changed += 1;
                    tracing::info!(record_id = %record.id, receive_count = record.receive_count, retry_in_s = seconds, "failed record comes back sooner");
                }
                Err(e) => {
                    tracing::warn!(record_id = %record.id, error = %DisplayErrorContext(e), "could not change the failed record's visibility; it comes back after the queue's visibility timeout");
                }
            }
        }
        changed
    }
}

/// SQS's longest visibility timeout, 12 hours.
const MAX_VISIBILITY_SECONDS: u64 = 12 * 3600;

/// The queue URL of a queue ARN (`arn:<partition>:sqs:<region>:<account>:<name>`).
pub fn queue_url(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [_, partition, "sqs", region, account, name] = parts.as_slice() else {
        return None;
    };
    let domain = match *partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    };
    Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_arn_gives_its_url() {
        assert_eq!(
            queue_url("arn:aws:sqs:eu-west-1:123456789012:fanout-CopyQueue-1A").as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/fanout-CopyQueue-1A")
        );
        assert_eq!(
            queue_url("arn:aws-cn:sqs:cn-north-1:1:q").as_deref(),
            Some("https://sqs.cn-north-1.amazonaws.com.cn/1/q")
        );
        assert_eq!(queue_url("arn:aws:sns:us-east-1:1:topic"), None);
        assert_eq!(queue_url("copy-queue"), None);
    }
}
