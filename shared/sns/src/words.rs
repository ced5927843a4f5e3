//! One SNS message per counted Slack message, with its source as a message attribute.

use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use fanout_aws::DisplayErrorContext;
use fanout_words_core::store::{Publish, PublishError};
use fanout_words_core::WordsMessage;

#[derive(Debug, Clone)]
pub struct WordsPublisher {
    client: Client,
    topic_arn: String,
}

impl WordsPublisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        WordsPublisher {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    fn error(&self, err: impl std::error::Error) -> PublishError {
        PublishError {
            operation: "SNS Publish",
            destination: self.topic_arn.clone(),
            detail: DisplayErrorContext(err).to_string(),
        }
    }
}

impl Publish for WordsPublisher {
    /// Publishes the message as JSON.
    async fn publish(&self, message: &WordsMessage) -> Result<(), PublishError> {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(message.source.as_str())
            .build()
            .map_err(|e| self.error(e))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(message.to_json())
            .message_attributes("source", attribute)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}
