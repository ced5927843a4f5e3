//! sns-logger: logs each published message as one structured JSON line (message id, source,
//! words with their multiplicities, text length), and does nothing else.

use fanout_common::events::{Batch, BatchError, Delivery};
use fanout_common::metrics::{names, Metric, Metrics, Tally};
use fanout_words_core::message::MessageError;
use fanout_words_core::{Source, WordCounts, WordsMessage};
use serde::Serialize;
use serde_json::Value;

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &[];

/// The IAM actions this function's code calls: none (it only logs).
pub const IAM_ACTIONS: &[&str] = &[];

/// What is logged for one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub message_id: String,
    pub source: Source,
    pub words: WordCounts,
    /// The text's length in characters.
    pub text_length: usize,
}

impl LogLine {
    pub fn from_delivery(delivery: &Delivery) -> Result<LogLine, MessageError> {
        let message = WordsMessage::from_delivery(
            &delivery.body,
            delivery.id.as_deref(),
            delivery.sender.as_deref(),
        )?;
        Ok(LogLine {
            text_length: message.text.chars().count(),
            message_id: message.message_id,
            source: message.source,
            words: message.words,
        })
    }

    /// Writes the line: one JSON log event whose fields are this line's.
    pub fn log(&self) {
        let words = serde_json::to_string(&self.words).unwrap_or_default();
        tracing::info!(
            message_id = %self.message_id,
            source = self.source.as_str(),
            words = %words,
            text_length = self.text_length,
            "words message"
        );
    }
}

/// The handler's state: where its metrics go.
#[derive(Debug, Clone)]
pub struct Logger {
    metrics: Metrics,
}

impl Default for Logger {
    /// Metrics to stdout, with the dimensions of the Lambda environment.
    fn default() -> Self {
        Logger {
            metrics: Metrics::from_env(env!("CARGO_PKG_NAME")),
        }
    }
}

impl Logger {
    pub fn with_metrics(metrics: Metrics) -> Self {
        Logger { metrics }
    }

    /// Handles an SNS or SQS event. Its metrics: `MessagesLogged`, and `RecordsFailed` (a
    /// message that could not be read), which are its `Failures`.
    pub async fn handle(&self, batch: Batch) -> Result<Value, BatchError> {
        let (logged, failed) = (&Tally::default(), &Tally::default());
        let answer = batch
            .handle(|delivery| async move {
                let line = LogLine::from_delivery(&delivery);
                match &line {
                    Ok(line) => {
                        line.log();
                        logged.add(1);
                    }
                    Err(_) => failed.add(1),
                }
                line.map(|_| ())
            })
            .await;
        self.metrics.emit(
            failed.get(),
            &[
                Metric::count(names::RECORDS_FAILED, failed.get()),
                Metric::count(names::MESSAGES_LOGGED, logged.get()),
            ],
        );
        answer
    }
}

/// Handles an SNS or SQS event with a [`Logger::default`], its metrics read from the
/// environment now; the function builds its `Logger` once, at init.
pub async fn handle(batch: Batch) -> Result<Value, BatchError> {
    Logger::default().handle(batch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_id_source_words_and_length() {
        let body = r#"{"schema_version":1,"message_id":"C1:1.2","source":"outgoing_webhook","team_id":"T1","channel_id":"C1","user_id":"U1","text":"the the café","words":{"the":2,"café":1}}"#;
        let line = LogLine::from_delivery(&Delivery {
            body: body.into(),
            id: Some("sns-1".into()),
            ..Delivery::default()
        })
        .unwrap();
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"message_id":"C1:1.2","source":"outgoing_webhook","words":{"the":2,"café":1},"text_length":12})
        );
    }

    #[tokio::test]
    async fn each_invocation_emits_its_metrics_and_unreadable_records_are_failures() {
        let sample: Batch =
            serde_json::from_str(include_str!("../../../events/sns-logger-sns.json")).unwrap();
        let (metrics, captured) = Metrics::captured("sns-logger");
        let logger = Logger::with_metrics(metrics);
        assert_eq!(logger.handle(sample).await.unwrap(), Value::Null);
        let emitted = || captured.take_counts(["Failures", "RecordsFailed", "MessagesLogged"]);
        assert_eq!(emitted(), [0, 0, 1]);
        let broken = serde_json::json!({"Records": [
            {"messageId": "a", "body": "{broken", "eventSource": "aws:sqs"},
            {"messageId": "b", "body": "{\"schema_version\": 1, \"message_id\": \"C1:1.0\", \"source\": \"outgoing_webhook\", \"text\": \"hi\", \"words\": {\"hi\": 1}}", "eventSource": "aws:sqs"}
        ]});
        let answer = logger
            .handle(serde_json::from_value(broken).unwrap())
            .await
            .unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "a"}]})
        );
        assert_eq!(emitted(), [1, 1, 1], "one unreadable, one logged");
    }

    #[test]
    fn a_broken_message_is_an_error_not_a_silent_drop() {
        let delivery = Delivery {
            body: "{broken".into(),
            id: Some("sns-1".into()),
            ..Delivery::default()
        };
        assert!(LogLine::from_delivery(&delivery).is_err());
    }
}
