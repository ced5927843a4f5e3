//! One event source mapping at work: receive from a queue, invoke the function with the event
//! Lambda would build, delete what was handled.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{json, Value};

use crate::invoker::Invoker;
use crate::template::REGION;

/// How many times Lambda tries an asynchronous invocation before it gives up on the event.
const ASYNC_ATTEMPTS: usize = 3;

/// What feeds the function, and how.
pub enum Source {
    /// A queue of the template, delivered in batches.
    Sqs {
        queue_url: String,
        queue_arn: String,
        batch_size: i32,
        report_failures: bool,
    },
    /// A topic, through the queue that stands in for the function's subscription.
    Sns {
        queue_url: String,
        topic_arn: String,
        failure_queue: Option<String>,
    },
}

impl Source {
    fn queue_url(&self) -> &str {
        match self {
            Source::Sqs { queue_url, .. } | Source::Sns { queue_url, .. } => queue_url,
        }
    }

    fn batch_size(&self) -> i32 {
        match self {
            Source::Sqs { batch_size, .. } => *batch_size,
            Source::Sns { .. } => 1,
        }
    }
}

/// One event source mapping: receive from a queue, invoke, delete what was handled.
pub struct Poller {
    pub sqs: aws_sdk_sqs::Client,
    pub invoker: Invoker,
    pub function: String,
    pub source: Source,
}

impl Poller {
    /// Polls until the task is aborted.
    pub async fn run(self) {
        loop {
            let messages = match self.receive().await {
                Ok(messages) => messages,
                Err(err) => {
                    eprintln!(
                        "  ! polling for {}: {}",
                        self.function,
                        DisplayErrorContext(err)
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let handled = match &self.source {
                Source::Sqs {
                    queue_arn,
                    report_failures,
                    ..
                } => {
                    self.deliver_sqs(&messages, queue_arn, *report_failures)
                        .await
                }
                Source::Sns {
                    topic_arn,
                    failure_queue,
                    ..
                } => {
                    self.deliver_sns(&messages, topic_arn, failure_queue.as_deref())
                        .await
                }
            };
            self.delete(&messages, &handled).await;
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, SdkError<ReceiveMessageError>> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(self.source.queue_url())
            .max_number_of_messages(self.source.batch_size())
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn delete(&self, messages: &[Message], handled: &[String]) {
        for message in messages
            .iter()
            .filter(|m| handled.contains(&m.message_id.clone().unwrap_or_default()))
        {
            let _ = self
                .sqs
                .delete_message()
                .queue_url(self.source.queue_url())
                .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                .send()
                .await;
        }
    }

    /// Invokes the function with an SQS event; returns the ids of the messages it handled.
    async fn deliver_sqs(
        &self,
        messages: &[Message],
        queue_arn: &str,
        report_failures: bool,
    ) -> Vec<String> {
        let records: Vec<Value> = messages.iter().map(|m| sqs_record(m, queue_arn)).collect();
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect();
        match self
            .invoker
            .invoke(&self.function, &json!({ "Records": records }))
            .await
        {
            Ok(answer) if report_failures => {
                let failed: Vec<String> = answer["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect();
                if !failed.is_empty() {
                    eprintln!(
                        "  ! {} reported {} failed record(s); SQS will redeliver them",
                        self.function,
                        failed.len()
                    );
                }
                ids.into_iter().filter(|id| !failed.contains(id)).collect()
            }
            Ok(_) => ids,
            Err(err) => {
                eprintln!("  ! {err}; SQS will redeliver the batch");
                Vec::new()
            }
        }
    }

    /// Invokes the function with an SNS event for each notification, asynchronously as Lambda
    /// does: up to 3 attempts, then the event goes to the function's failure queue.
    async fn deliver_sns(
        &self,
        messages: &[Message],
        topic_arn: &str,
        failure_queue: Option<&str>,
    ) -> Vec<String> {
        let mut handled = Vec::new();
        for message in messages {
            let event = sns_event(message, topic_arn, &self.function);
            let mut attempt = 1;
            let outcome = loop {
                match self.invoker.invoke(&self.function, &event).await {
                    Err(_) if attempt < ASYNC_ATTEMPTS => attempt += 1,
                    outcome => break outcome,
                }
            };
            if let Err(err) = outcome {
                eprintln!("  ! {err}; after 3 attempts the event goes to the failure queue");
                if let Some(queue) = failure_queue {
                    let _ = self
                        .sqs
                        .send_message()
                        .queue_url(queue)
                        .message_body(event.to_string())
                        .send()
                        .await;
                }
            }
            handled.extend(message.message_id.clone());
        }
        handled
    }
}

/// A queue message as a record of Lambda's SQS event.
fn sqs_record(message: &Message, queue_arn: &str) -> Value {
    let attributes: BTreeMap<String, String> = message
        .attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect();
    json!({
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    })
}

/// The SNS notification a subscription queue received, as the event Lambda gives `function`.
fn sns_event(message: &Message, topic_arn: &str, function: &str) -> Value {
    let notification: Value =
        serde_json::from_str(message.body.as_deref().unwrap_or_default()).unwrap_or(Value::Null);
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic_arn}:local-{function}"),
        "Sns": {
            "Type": "Notification",
            "MessageId": notification["MessageId"],
            "TopicArn": topic_arn,
            "Subject": notification["Subject"],
            "Message": notification["Message"],
            "Timestamp": notification["Timestamp"],
            "SignatureVersion": "1",
            "Signature": "local",
            "SigningCertUrl": "http://localhost/local.pem",
            "UnsubscribeUrl": "http://localhost/unsubscribe",
            "MessageAttributes": notification.get("MessageAttributes").cloned().unwrap_or(json!({})),
        }
    }]})
}
