//! The publisher: one SNS message per counted Slack message.

use aws_sdk_sns::error::DisplayErrorContext;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use crate::message::WordsMessage;

/// A publish that failed after the SDK's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SNS Publish to {topic_arn} failed: {detail}")]
pub struct PublishError {
    pub topic_arn: String,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Publisher {
    client: Client,
    topic_arn: String,
}

impl Publisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Publisher {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// Publishes the message as JSON; returns SNS's MessageId.
    pub async fn publish(&self, message: &WordsMessage) -> Result<String, PublishError> {
        let source = serde_json::to_value(message.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(source)
            .build()
            .map_err(|e| self.error(e))?;
        let output = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(message.to_json())
            .message_attributes("source", attribute)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }

    fn error(&self, err: impl std::error::Error) -> PublishError {
        PublishError {
            topic_arn: self.topic_arn.clone(),
            detail: DisplayErrorContext(err).to_string(),
        }
    }
}
