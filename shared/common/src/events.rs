//! Message deliveries from SNS and SQS, for the functions that take both.
//!
//! An SNS event carries `Records[].Sns.Message`. An SQS record's body is either an SNS
//! notification (the JSON that SNS delivers to a queue without raw delivery) or the raw message.
//! Either way each message becomes a [`Delivery`]; SQS batches answer with partial batch failures
//! so that only the records that failed are retried.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::Value;

/// How many records of one batch are handled at once.
pub const RECORD_CONCURRENCY: usize = 10;

/// One delivered message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    /// The message as published.
    pub body: String,
    /// The SNS MessageId when the message came through SNS (an SNS event, or an SQS record
    /// holding the SNS notification): the same on every redelivery of the message. `None` for
    /// a raw SQS record, which carries no SNS metadata; its SQS message id is new for each
    /// copy SNS delivers, so it is no id of the message.
    pub id: Option<String>,
    /// Who sent a raw SQS record (its `SenderId` attribute).
    pub sender: Option<String>,
    /// How many times SQS has handed this record out, this time included (its
    /// `ApproximateReceiveCount`); `None` for SNS. Past the queue's `maxReceiveCount`, a record
    /// that fails again goes to the dead-letter queue.
    pub receive_count: Option<u32>,
}

/// An event that carries messages: from an SNS subscription or an SQS event source mapping.
/// It deserializes from either, typed by aws_lambda_events, and refuses anything else.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "AnyBatch")]
pub enum Batch {
    Sns(SnsEvent),
    Sqs(SqsEvent),
}

/// The shapes a [`Batch`] may take, before its records are checked. SNS records must have
/// their `Sns` object; SQS records have only optional fields, so they are told by their source.
#[derive(Deserialize)]
#[serde(untagged)]
enum AnyBatch {
    Sns(SnsEvent),
    Sqs(SqsEvent),
}

/// An event this function cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event is not an SNS or SQS event: {0}")]
pub struct NotABatch(pub String);

impl TryFrom<AnyBatch> for Batch {
    type Error = NotABatch;

    fn try_from(event: AnyBatch) -> Result<Batch, NotABatch> {
        match event {
            AnyBatch::Sns(event) if event.records.is_empty() => {
                Err(NotABatch("it has no Records".into()))
            }
            AnyBatch::Sns(event) => Ok(Batch::Sns(event)),
            AnyBatch::Sqs(event) if event.records.is_empty() => {
                Err(NotABatch("it has no Records".into()))
            }
            AnyBatch::Sqs(event) => match event
                .records
                .iter()
                .find(|record| record.event_source.as_deref() != Some("aws:sqs"))
            {
                Some(other) => Err(NotABatch(format!(
                    "unknown record source {:?}",
                    other.event_source.as_deref().unwrap_or_default()
                ))),
                None => Ok(Batch::Sqs(event)),
            },
        }
    }
}

/// An SQS record of a batch, as needed to change when it comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsRecord {
    /// The record's `messageId`, as `batchItemFailures` names it.
    pub id: String,
    pub queue_arn: String,
    pub receipt_handle: String,
    /// Its `ApproximateReceiveCount`.
    pub receive_count: u32,
}

/// The first wait before a failed record is delivered again, doubled on each receive.
pub const RETRY_BASE: Duration = Duration::from_secs(30);
/// The longest wait before a failed record is delivered again.
pub const RETRY_CAP: Duration = Duration::from_secs(900);

/// How long a record that failed on its `receive_count`th receive waits before it is delivered
/// again: [`RETRY_BASE`] doubled per receive, at most [`RETRY_CAP`], spread between half and
/// all of it by the record's id, so that records failed together (throttled together) do not
/// all come back at once.
pub fn retry_delay(receive_count: u32, id: &str) -> Duration {
    retry_delay_from(RETRY_BASE, receive_count, id)
}

/// [`retry_delay`] with another first wait than [`RETRY_BASE`].
pub fn retry_delay_from(base: Duration, receive_count: u32, id: &str) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    let full = base.saturating_mul(1 << doublings).min(RETRY_CAP);
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let share = 0.5 + (hash % 1000) as f64 / 2000.0;
    Duration::from_secs_f64(full.as_secs_f64() * share)
}

/// The ids of the records an SQS batch answer reports as failed.
pub fn failed_ids(answer: &Value) -> Vec<String> {
    (answer["batchItemFailures"].as_array().into_iter().flatten())
        .filter_map(|failure| failure["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

impl Batch {
    /// The batch's SQS records (none for SNS), for changing when failed ones come back.
    pub fn sqs_records(&self) -> Vec<SqsRecord> {
        let Batch::Sqs(event) = self else {
            return Vec::new();
        };
        (event.records.iter())
            .filter_map(|record| {
                Some(SqsRecord {
                    id: record.message_id.clone()?,
                    queue_arn: record.event_source_arn.clone()?,
                    receipt_handle: record.receipt_handle.clone()?,
                    receive_count: (record.attributes.get("ApproximateReceiveCount"))
                        .and_then(|count| count.parse().ok())
                        .unwrap_or(1),
                })
            })
            .collect()
    }

    /// Handles every message. SNS: any failure fails the invocation, so Lambda retries it and
    /// then sends it to the function's DLQ or on-failure destination. SQS: the answer lists the
    /// records that failed (`batchItemFailures`).
    pub async fn handle<F, Fut, E>(self, handler: F) -> Result<Value, BatchError>
    where
        F: Fn(Delivery) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        match self {
            Batch::Sns(event) => {
                let deliveries = event.records.into_iter().map(|record| Delivery {
                    body: record.sns.message,
                    id: Some(record.sns.message_id),
                    sender: None,
                    receive_count: None,
                });
                let failures: Vec<String> = stream::iter(deliveries)
                    .map(|delivery| {
                        let id = delivery.id.clone().unwrap_or_default();
                        let outcome = handler(delivery);
                        async move { outcome.await.map_err(|e| format!("message {id}: {e}")) }
                    })
                    .buffer_unordered(RECORD_CONCURRENCY)
                    .filter_map(|result| async move { result.err() })
                    .collect()
                    .await;
                if failures.is_empty() {
                    Ok(Value::Null)
                } else {
                    Err(BatchError::Failed(failures.join("; ")))
                }
            }
            Batch::Sqs(event) => {
                let failures: Vec<BatchItemFailure> = stream::iter(event.records)
                    .map(|record| {
                        let record_id = record.message_id.clone().unwrap_or_default();
                        let sender = record.attributes.get("SenderId").cloned();
                        let mut delivery = from_sqs_body(record.body.unwrap_or_default(), sender);
                        delivery.receive_count = (record.attributes.get("ApproximateReceiveCount"))
                            .and_then(|count| count.parse().ok());
                        let outcome = handler(delivery);
                        async move {
                            match outcome.await {
                                Ok(()) => None,
                                Err(err) => {
                                    tracing::error!(record_id = %record_id, error = %err, "record failed; SQS will retry it");
                                    let mut failure = BatchItemFailure::default();
                                    failure.item_identifier = record_id;
                                    Some(failure)
                                }
                            }
                        }
                    })
                    .buffer_unordered(RECORD_CONCURRENCY)
                    .filter_map(|failure| async move { failure })
                    .collect()
                    .await;
                let mut response = SqsBatchResponse::default();
                response.batch_item_failures = failures;
                serde_json::to_value(response).map_err(BatchError::Answer)
            }
        }
    }
}

/// Why a batch was not handled as a whole.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// SNS: messages failed, so the invocation fails and Lambda retries it.
    #[error("{0}")]
    Failed(String),
    #[error("the batch answer could not be written: {0}")]
    Answer(serde_json::Error),
}

#[derive(Deserialize)]
struct SnsNotification {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "Message")]
    message: String,
}

/// Reads an SQS record body: an SNS notification is unwrapped; anything else is the message,
/// delivered raw by `sender` (the record's `SenderId`).
pub fn from_sqs_body(body: String, sender: Option<String>) -> Delivery {
    match serde_json::from_str::<SnsNotification>(&body) {
        Ok(notification) if notification.kind == "Notification" => Delivery {
            body: notification.message,
            id: Some(notification.message_id),
            sender: None,
            receive_count: None,
        },
        _ => Delivery {
            body,
            id: None,
            sender,
            receive_count: None,
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_record_waits_longer_on_each_receive_spread_by_its_id() {
        use super::{retry_delay, RETRY_CAP};
        for id in ["a", "b", "0e1d", "record-12"] {
            let mut last = std::time::Duration::ZERO;
            for receive in 1..=5 {
                let delay = retry_delay(receive, id);
                let full = (super::RETRY_BASE * (1 << (receive - 1))).min(RETRY_CAP);
                assert!(
                    delay >= full / 2 && delay <= full,
                    "{id} {receive}: {delay:?}"
                );
                assert!(delay > last, "{id} {receive}");
                last = delay;
            }
            assert!(retry_delay(40, id) <= RETRY_CAP && retry_delay(0, id) <= super::RETRY_BASE);
        }
        let spread: std::collections::BTreeSet<_> =
            (0..50).map(|i| retry_delay(1, &format!("m-{i}"))).collect();
        assert!(spread.len() > 40, "records failed together come back apart");
    }

    #[test]
    fn the_records_of_a_batch_and_the_failed_ones_of_its_answer() {
        let batch: super::Batch = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m-1", "receiptHandle": "r-1", "body": "{}", "attributes": {"ApproximateReceiveCount": "3"},
             "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:copy", "awsRegion": "us-east-1"},
        ]}))
        .unwrap();
        let records = batch.sqs_records();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].receive_count, records[0].receipt_handle.as_str()),
            (3, "r-1")
        );
        let answer = serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]});
        assert_eq!(super::failed_ids(&answer), ["m-1"]);
        assert!(super::failed_ids(&serde_json::Value::Null).is_empty());
    }

    use super::*;

    #[test]
    fn unwraps_sns_notifications_and_keeps_raw_bodies() {
        let wrapped = r#"{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"hello there","Timestamp":"2016-12-13T20:20:33.000Z"}"#;
        assert_eq!(
            from_sqs_body(wrapped.into(), Some("AIDASNS".into())),
            Delivery {
                body: "hello there".into(),
                id: Some("m-1".into()),
                sender: None,
                receive_count: None,
            }
        );
        let raw = r#"{"schema_version":1}"#;
        assert_eq!(
            from_sqs_body(raw.into(), Some("AIDASNS".into())),
            Delivery {
                body: raw.into(),
                id: None,
                sender: Some("AIDASNS".into()),
                receive_count: None,
            }
        );
    }

    fn batch(event: Value) -> Result<Batch, serde_json::Error> {
        serde_json::from_value(event)
    }

    #[test]
    fn recognizes_sources() {
        let sqs =
            serde_json::json!({"Records":[{"messageId":"1","body":"x","eventSource":"aws:sqs"}]});
        assert!(matches!(batch(sqs), Ok(Batch::Sqs(_))));
        let sns = serde_json::json!({"Records":[{"EventSource":"aws:sns","EventVersion":"1.0","EventSubscriptionArn":"arn:aws:sns:us-east-1:1:t:s","Sns":{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"hi","Timestamp":"2016-12-13T20:20:33.000Z","SignatureVersion":"1","Signature":"x","SigningCertUrl":"x","UnsubscribeUrl":"x","MessageAttributes":{}}}]});
        assert!(matches!(batch(sns), Ok(Batch::Sns(_))));
        assert!(batch(serde_json::json!({"Records":[]})).is_err());
        assert!(batch(serde_json::json!({"hello":"world"})).is_err());
        let s3 = batch(serde_json::json!({"Records":[{"eventSource":"aws:s3"}]}));
        assert!(s3
            .unwrap_err()
            .to_string()
            .contains("unknown record source \"aws:s3\""));
    }

    #[tokio::test]
    async fn sqs_batches_report_only_the_failed_records() {
        let event = serde_json::json!({"Records":[
            {"messageId":"ok-1","body":"fine","eventSource":"aws:sqs"},
            {"messageId":"bad-1","body":"fail","eventSource":"aws:sqs"},
            {"messageId":"ok-2","body":"fine","eventSource":"aws:sqs"}
        ]});
        let answer = batch(event)
            .unwrap()
            .handle(|d: Delivery| async move {
                if d.body == "fail" {
                    Err("boom")
                } else {
                    Ok(())
                }
            })
            .await
            .unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"batchItemFailures":[{"itemIdentifier":"bad-1"}]})
        );
    }

    #[tokio::test]
    async fn sqs_records_carry_their_receive_count() {
        let event = serde_json::json!({"Records":[
            {"messageId":"a","body":"x","eventSource":"aws:sqs","attributes":{"ApproximateReceiveCount":"5"}},
            {"messageId":"b","body":"y","eventSource":"aws:sqs"}
        ]});
        let seen = std::sync::Mutex::new(Vec::new());
        batch(event)
            .unwrap()
            .handle(|d: Delivery| {
                seen.lock().unwrap().push((d.body, d.receive_count));
                async { Ok::<(), &str>(()) }
            })
            .await
            .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, vec![("x".into(), Some(5)), ("y".into(), None)]);
    }
}
