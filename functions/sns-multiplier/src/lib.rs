//! sns-multiplier: adds `MULTIPLIER` × multiplicity to every word of each published message,
//! exactly once per message (keyed on its message id; a plain-text message on its SNS MessageId).
//!
//! Takes SNS events, and SQS events whose bodies are SNS notifications or raw messages; for SQS it
//! answers with partial batch failures.

use fanout_common::events::{Batch, BatchError, Delivery};
use fanout_common::{ConfigError, Vars};
use fanout_words_core::message::MessageError;
use fanout_words_core::once::{apply_once, Applied, ApplyError, Stage};
use fanout_words_core::store::WordCountStore;
use fanout_words_core::WordsMessage;
use serde_json::Value;

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &["WORDS_TABLE", "MULTIPLIER"];

/// The IAM actions this function's code calls (checked against infra/template.yaml).
pub const IAM_ACTIONS: &[&str] = &["dynamodb:UpdateItem", "dynamodb:PutItem"];

/// What the multiplier adds per word occurrence when `MULTIPLIER` is unset.
pub const DEFAULT_MULTIPLIER: i64 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub multiplier: i64,
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
        })
    }
}

/// Why one message was not applied.
#[derive(Debug, thiserror::Error)]
pub enum MultiplyError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// The handler's state: the store is the DynamoDB adapter when deployed, in memory in tests.
pub struct Multiplier<S> {
    store: S,
    multiplier: i64,
}

impl<S: WordCountStore> Multiplier<S> {
    pub fn new(store: S, multiplier: i64) -> Self {
        Multiplier { store, multiplier }
    }

    /// Handles an SNS or SQS event.
    pub async fn handle(&self, batch: Batch) -> Result<Value, BatchError> {
        batch.handle(|delivery| self.apply(delivery)).await
    }

    /// Applies one message once.
    pub async fn apply(&self, delivery: Delivery) -> Result<(), MultiplyError> {
        let message = WordsMessage::from_delivery(&delivery.body, delivery.id.as_deref())?;
        let deltas: Vec<(String, i64)> = message
            .words
            .iter()
            .map(|(word, n)| (word.to_owned(), self.multiplier.saturating_mul(n as i64)))
            .collect();
        match apply_once(&self.store, Stage::Multiply, &message.message_id, &deltas).await? {
            Applied::Repeat => {
                tracing::info!(message_id = %message.message_id, "already applied: a redelivery")
            }
            Applied::Fresh | Applied::Completed => tracing::info!(
                message_id = %message.message_id,
                words = deltas.len(),
                multiplier = self.multiplier,
                "multiplied"
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
