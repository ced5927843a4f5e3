//! sns-multiplier: adds `MULTIPLIER` × multiplicity to every word of each published message,
//! exactly once per message (keyed on its message id; a plain-text message on its SNS
//! MessageId, or over raw SQS delivery on a hash of its sender and text).
//!
//! Takes SNS events, and SQS events whose bodies are SNS notifications or raw messages; for SQS it
//! answers with partial batch failures. Each message is validated before anything is applied: a
//! message that can never be applied (unreadable, invalid, overflowing) is a permanent failure,
//! sent at once to the dead-letter queue with the reason and answered as handled; a transient
//! failure stays a batch item failure, which SQS retries.

use fanout_common::events::{Batch, BatchError, Delivery};
use fanout_common::metrics::{names, Metric, Metrics, Tally};
use fanout_common::{ConfigError, Vars};
use fanout_words_core::dead_letter::{DeadLetterError, DeadLetters, NoDeadLetters};
use fanout_words_core::failure::FailureClass;
use fanout_words_core::message::{preview, InvalidMessage, MessageError, MAX_MESSAGE_ID_BYTES};
use fanout_words_core::once::{apply_once, Applied, ApplyError, Stage};
use fanout_words_core::store::WordCountStore;
use fanout_words_core::WordsMessage;
use serde_json::Value;

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &["WORDS_TABLE", "MULTIPLIER", "DEAD_LETTER_QUEUE_URL"];

/// The IAM actions this function's code calls (checked against infra/template.yaml). Sending
/// to the KMS-encrypted dead-letter queue also needs `kms:GenerateDataKey`/`kms:Decrypt` on its
/// key, which the template grants beside these.
pub const IAM_ACTIONS: &[&str] = &["dynamodb:UpdateItem", "dynamodb:PutItem", "sqs:SendMessage"];

/// What the multiplier adds per word occurrence when `MULTIPLIER` is unset.
pub const DEFAULT_MULTIPLIER: i64 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub multiplier: i64,
    /// Where permanent failures go at once. Unset: they stay batch item failures, and the
    /// queue's redrive policy dead-letters them after its maxReceiveCount.
    pub dead_letter_queue_url: Option<String>,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            table: vars.required("WORDS_TABLE", "the name of the DynamoDB words table")?,
            multiplier: vars.parsed_or(
                "MULTIPLIER",
                DEFAULT_MULTIPLIER,
                "a whole number to add per word occurrence",
            )?,
            dead_letter_queue_url: vars.optional("DEAD_LETTER_QUEUE_URL"),
        })
    }
}

/// Why one message was not applied.
#[derive(Debug, thiserror::Error)]
pub enum MultiplyError {
    #[error(transparent)]
    Unreadable(#[from] MessageError),
    #[error("the message is invalid: {0}")]
    Invalid(#[from] InvalidMessage),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A permanent failure that the dead-letter queue did not take: it stays on its queue.
    #[error("{failure}; and it could not be dead-lettered: {error}")]
    NotDeadLettered {
        failure: Box<MultiplyError>,
        error: DeadLetterError,
    },
}

impl MultiplyError {
    pub fn class(&self) -> FailureClass {
        match self {
            MultiplyError::Unreadable(_) | MultiplyError::Invalid(_) => FailureClass::Permanent,
            // A retry of the message adds only the chunks that are missing.
            MultiplyError::Apply(err) if err.transient() => FailureClass::Transient,
            MultiplyError::Apply(_) => FailureClass::Permanent,
            MultiplyError::NotDeadLettered { failure, .. } => failure.class(),
        }
    }
}

/// What became of a message that needs no delivery again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its words were multiplied now (all of them, or those an earlier delivery had not).
    Multiplied,
    /// An earlier delivery had multiplied every word.
    Repeat,
    /// It can never be applied, and the dead-letter queue has it.
    DeadLettered,
}

/// The handler's state: the store is the DynamoDB adapter when deployed, in memory in tests;
/// the dead letters an SQS queue, or none.
pub struct Multiplier<S, D = NoDeadLetters> {
    store: S,
    multiplier: i64,
    dead_letters: D,
    metrics: Metrics,
}

impl<S> Multiplier<S> {
    pub fn new(store: S, multiplier: i64) -> Self {
        Multiplier {
            store,
            multiplier,
            dead_letters: NoDeadLetters,
            metrics: Metrics::from_env(env!("CARGO_PKG_NAME")),
        }
    }
}

impl<S, D> Multiplier<S, D> {
    /// Sends permanent failures to `dead_letters` (`None`: to no queue).
    pub fn with_dead_letters<E: DeadLetters>(self, dead_letters: E) -> Multiplier<S, E> {
        Multiplier {
            store: self.store,
            multiplier: self.multiplier,
            dead_letters,
            metrics: self.metrics,
        }
    }

    /// Writes each invocation's metrics with `metrics` (by default, to stdout with the
    /// dimensions of the Lambda environment).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

impl<S: WordCountStore, D: DeadLetters> Multiplier<S, D> {
    /// Handles an SNS or SQS event. Its metrics: `MessagesCounted`, `MessagesDeadLettered`,
    /// and `RecordsFailed` (to be delivered again), which are its `Failures`.
    pub async fn handle(&self, batch: Batch) -> Result<Value, BatchError> {
        let (counted, dead_lettered, failed) =
            (&Tally::default(), &Tally::default(), &Tally::default());
        let answer = batch
            .handle(|delivery| async move {
                let outcome = self.apply(delivery).await;
                match outcome {
                    Ok(Handled::Multiplied) => counted.add(1),
                    Ok(Handled::Repeat) => {}
                    Ok(Handled::DeadLettered) => dead_lettered.add(1),
                    Err(_) => failed.add(1),
                }
                outcome.map(|_| ())
            })
            .await;
        self.metrics.emit(
            failed.get(),
            &[
                Metric::count(names::RECORDS_FAILED, failed.get()),
                Metric::count(names::MESSAGES_COUNTED, counted.get()),
                Metric::count(names::MESSAGES_DEAD_LETTERED, dead_lettered.get()),
            ],
        );
        answer
    }

    /// Applies one message once. A permanent failure sent to the dead-letter queue is handled
    /// (`Ok`); every other failure is an error, for the message to be delivered again.
    pub async fn apply(&self, delivery: Delivery) -> Result<Handled, MultiplyError> {
        let read = WordsMessage::from_delivery(
            &delivery.body,
            delivery.id.as_deref(),
            delivery.sender.as_deref(),
        );
        let (message_id, outcome) = match read {
            Ok(message) => (
                preview(&message.message_id, MAX_MESSAGE_ID_BYTES),
                self.multiply(&message).await,
            ),
            Err(err) => (delivery.id.clone().unwrap_or_default(), Err(err.into())),
        };
        let failure = match outcome {
            Ok(handled) => return Ok(handled),
            Err(failure) => failure,
        };
        let class = failure.class();
        if class == FailureClass::Transient {
            tracing::error!(%message_id, class = class.as_str(), error = %failure, "not applied; it will be retried");
            return Err(failure);
        }
        match self
            .dead_letters
            .send(&delivery.body, &failure.to_string())
            .await
        {
            Ok(()) => {
                tracing::error!(%message_id, class = class.as_str(), error = %failure, "refused; sent to the dead-letter queue");
                Ok(Handled::DeadLettered)
            }
            Err(DeadLetterError::NotConfigured) => {
                tracing::error!(%message_id, class = class.as_str(), error = %failure, "refused; DEAD_LETTER_QUEUE_URL is unset, so it stays on its queue until the redrive policy dead-letters it");
                Err(failure)
            }
            Err(error) => {
                let failure = MultiplyError::NotDeadLettered {
                    failure: Box::new(failure),
                    error,
                };
                tracing::error!(%message_id, class = class.as_str(), error = %failure, "refused; it stays on its queue until the redrive policy dead-letters it");
                Err(failure)
            }
        }
    }

    async fn multiply(&self, message: &WordsMessage) -> Result<Handled, MultiplyError> {
        let deltas = message.deltas(self.multiplier)?;
        match apply_once(&self.store, Stage::Multiply, &message.message_id, &deltas).await? {
            Applied::Repeat => {
                tracing::info!(message_id = %message.message_id, "already applied: a redelivery");
                Ok(Handled::Repeat)
            }
            Applied::Fresh | Applied::Completed => {
                tracing::info!(
                    message_id = %message.message_id,
                    words = deltas.len(),
                    multiplier = self.multiplier,
                    "multiplied"
                );
                Ok(Handled::Multiplied)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_words_core::message::MAX_MULTIPLICITY;

    #[test]
    fn multiplier_defaults_to_ten_and_must_be_a_number() {
        let config = Config::from_vars(&Vars::from_pairs([("WORDS_TABLE", "words")])).unwrap();
        assert_eq!(config.multiplier, 10);
        let config = Config::from_vars(&Vars::from_pairs([
            ("WORDS_TABLE", "words"),
            ("MULTIPLIER", "3"),
        ]))
        .unwrap();
        assert_eq!(config.multiplier, 3);
        let err = Config::from_vars(&Vars::from_pairs([
            ("WORDS_TABLE", "words"),
            ("MULTIPLIER", "1.5"),
        ]))
        .unwrap_err();
        assert_eq!(err.var(), Some("MULTIPLIER"));
        let err = Config::from_vars(&Vars::from_pairs([("MULTIPLIER", "3")])).unwrap_err();
        assert_eq!(err.var(), Some("WORDS_TABLE"));
    }

    #[test]
    fn the_dead_letter_queue_is_optional() {
        let config = Config::from_vars(&Vars::from_pairs([("WORDS_TABLE", "words")])).unwrap();
        assert_eq!(config.dead_letter_queue_url, None);
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq";
        let config = Config::from_vars(&Vars::from_pairs([
            ("WORDS_TABLE", "words"),
            ("DEAD_LETTER_QUEUE_URL", url),
        ]))
        .unwrap();
        assert_eq!(config.dead_letter_queue_url.as_deref(), Some(url));
    }

    use fanout_words_core::dead_letter::MemoryDeadLetters;
    use fanout_words_core::memory::MemoryWords;

    fn raw(body: &str) -> Delivery {
        Delivery {
            body: body.into(),
            id: None,
            sender: Some("AIDASNS".into()),
            receive_count: None,
        }
    }

    fn words_message(id: &str, words: &str) -> String {
        format!(
            r#"{{"schema_version":1,"message_id":"{id}","source":"events_api","team_id":null,"channel_id":null,"user_id":null,"text":"","words":{words}}}"#
        )
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_at_once_and_nothing_is_written() {
        let bad = [
            words_message("m1", r##"{"ok":1,"#tag":1}"##),
            words_message("m2", r#"{"":1}"#),
            words_message("m3", &format!(r#"{{"{}":1}}"#, "w".repeat(3000))),
            words_message("m4", r#"{"ok":1,"big":9223372036854775807}"#),
            words_message("", r#"{"ok":1}"#),
            "{\"schema_version\": 1, \"oops\"".to_owned(),
            words_message("m5", r#"{"ok":1}"#)
                .replace("\"schema_version\":1", "\"schema_version\":7"),
        ];
        for body in &bad {
            let (store, dead) = (MemoryWords::new(), MemoryDeadLetters::new());
            let multiplier = Multiplier::new(store, 10).with_dead_letters(dead);
            assert!(multiplier.apply(raw(body)).await.is_ok(), "{body:.60}");
            assert_eq!(multiplier.store.calls(), Vec::<String>::new(), "{body:.60}");
            let sent = multiplier.dead_letters.sent();
            assert_eq!(sent.len(), 1, "{body:.60}");
            assert_eq!(&sent[0].body, body);
            assert!(!sent[0].reason.is_empty());
        }
    }

    #[tokio::test]
    async fn multiplicities_are_bounded_and_products_checked() {
        let multiplier = Multiplier::new(MemoryWords::new(), i64::MAX / 2)
            .with_dead_letters(MemoryDeadLetters::new());
        multiplier
            .apply(raw(&words_message("m1", r#"{"a":1,"b":3}"#)))
            .await
            .unwrap();
        let sent = multiplier.dead_letters.sent();
        assert!(sent[0].reason.contains("do not fit"), "{}", sent[0].reason);
        assert_eq!(multiplier.store.count("a"), None, "nothing half-applied");
        let over = words_message("m2", &format!(r#"{{"c":{}}}"#, MAX_MULTIPLICITY + 1));
        multiplier.apply(raw(&over)).await.unwrap();
        assert!(multiplier.dead_letters.sent()[1]
            .reason
            .contains("40001 times"));
    }

    #[tokio::test]
    async fn without_a_queue_or_when_it_fails_a_permanent_failure_stays_a_failure() {
        let body = words_message("m1", r##"{"#x":1}"##);
        let plain = Multiplier::new(MemoryWords::new(), 10);
        let err = plain.apply(raw(&body)).await.unwrap_err();
        assert_eq!(err.class(), FailureClass::Permanent);
        let failing = MemoryDeadLetters::new();
        failing.fail(1);
        let multiplier = Multiplier::new(MemoryWords::new(), 10).with_dead_letters(failing);
        let err = multiplier.apply(raw(&body)).await.unwrap_err();
        assert!(
            matches!(err, MultiplyError::NotDeadLettered { .. }),
            "{err}"
        );
        multiplier.apply(raw(&body)).await.unwrap();
        assert_eq!(multiplier.dead_letters.sent().len(), 1, "the retry is sent");
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_not_dead_lettered() {
        let store = MemoryWords::new();
        store.fail("apply_chunk", 1, fanout_words_core::memory::Fault::Before);
        let multiplier = Multiplier::new(store, 10).with_dead_letters(MemoryDeadLetters::new());
        let body = words_message("m1", r#"{"fine":2}"#);
        let err = multiplier.apply(raw(&body)).await.unwrap_err();
        assert_eq!(err.class(), FailureClass::Transient);
        assert!(multiplier.dead_letters.sent().is_empty());
        multiplier.apply(raw(&body)).await.unwrap();
        assert_eq!(multiplier.store.count("fine"), Some(20));
    }

    #[tokio::test]
    async fn each_invocation_emits_its_metrics_and_failed_records_are_failures() {
        let sample: Batch =
            serde_json::from_str(include_str!("../../../events/sns-multiplier-sqs.json")).unwrap();
        let (metrics, captured) = Metrics::captured("sns-multiplier");
        let multiplier = Multiplier::new(MemoryWords::new(), 10)
            .with_dead_letters(MemoryDeadLetters::new())
            .with_metrics(metrics);
        let emitted = || {
            captured.take_counts([
                "Failures",
                "RecordsFailed",
                "MessagesCounted",
                "MessagesDeadLettered",
            ])
        };
        let answer = multiplier.handle(sample.clone()).await.unwrap();
        assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
        assert_eq!(emitted(), [0, 0, 2, 0], "both messages multiplied");
        multiplier.handle(sample.clone()).await.unwrap();
        assert_eq!(emitted(), [0, 0, 0, 0], "a redelivery");

        let failing = MemoryWords::new();
        failing.fail("apply_chunk", 1, fanout_words_core::memory::Fault::Before);
        let (metrics, captured) = Metrics::captured("sns-multiplier");
        let multiplier = Multiplier::new(failing, 10).with_metrics(metrics);
        let answer = multiplier.handle(sample).await.unwrap();
        assert_eq!(answer["batchItemFailures"].as_array().unwrap().len(), 1);
        assert_eq!(captured.take_counts(["Failures", "RecordsFailed"]), [1, 1]);

        let (metrics, captured) = Metrics::captured("sns-multiplier");
        let refusing = Multiplier::new(MemoryWords::new(), 10)
            .with_dead_letters(MemoryDeadLetters::new())
            .with_metrics(metrics);
        let event = serde_json::json!({"Records": [{"messageId": "q-1", "body": "{\"schema_version\": 7", "eventSource": "aws:sqs"}]});
        refusing
            .handle(serde_json::from_value(event).unwrap())
            .await
            .unwrap();
        assert_eq!(
            captured.take_counts(["Failures", "MessagesDeadLettered"]),
            [0, 1]
        );
    }

    #[tokio::test]
    async fn raw_plain_text_delivered_twice_is_applied_once() {
        let multiplier = Multiplier::new(MemoryWords::new(), 10)
            .with_metrics(Metrics::captured("sns-multiplier").0);
        let event = |sqs_id: &str| -> Batch {
            serde_json::from_value(serde_json::json!({"Records":[{"messageId":sqs_id,"body":"echo echo","eventSource":"aws:sqs","attributes":{"SenderId":"AIDASNS"}}]})).unwrap()
        };
        multiplier.handle(event("q-1")).await.unwrap();
        multiplier.handle(event("q-2")).await.unwrap();
        assert_eq!(multiplier.store.count("echo"), Some(20));
    }
}
