//! A dead-letter queue over SQS: a message that can never be applied is sent, as it was
//! delivered, with the reason in its `reason` message attribute (String).

use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;
use fanout_aws::DisplayErrorContext;
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
