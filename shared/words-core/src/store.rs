//! The narrow interfaces the word-count protocols need from the outside world, and their
//! errors: a word-count store, a store of "applied once" records, and a publisher.
//!
//! The DynamoDB and SNS implementations live in adapter crates (fanout-words-dynamodb,
//! fanout-sns); [`crate::memory`] has in-memory ones for tests.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use crate::message::WordsMessage;

/// A store call that failed after the adapter's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {store} failed: {detail}")]
pub struct StoreError {
    /// The call, as the store names it (`DynamoDB UpdateItem`…).
    pub operation: &'static str,
    /// Which store: a table name, say.
    pub store: String,
    pub detail: String,
}

/// A publish that failed after the adapter's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} to {destination} failed: {detail}")]
pub struct PublishError {
    /// The call, as the publisher names it (`SNS Publish`).
    pub operation: &'static str,
    /// Where to: a topic ARN, say.
    pub destination: String,
    pub detail: String,
}

/// What happened to a set of adds: the new counts of those applied, and the words that failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddOutcome {
    /// `(word, count after the add)`, in the order the adds were given.
    pub applied: Vec<(String, i64)>,
    pub failed: Vec<(String, StoreError)>,
}

/// Progress of a message being applied once: which words were added, and whether it was published.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    pub added: HashSet<String>,
    pub published: bool,
}

/// The state of a message's "applied once" record when it is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: the caller now owns the message.
    New,
    /// An earlier attempt stopped part way; go on from here.
    Resume(Progress),
    /// Fully handled already (or being handled right now): do nothing.
    Done,
}

/// Word counts that change only by atomic adds.
pub trait WordCountStore: Send + Sync {
    /// Adds each delta to its word's count, one atomic add per word, concurrently.
    fn add(&self, deltas: &[(String, i64)]) -> impl Future<Output = AddOutcome> + Send;

    /// The current counts of `words`; a word never counted is absent.
    fn counts(
        &self,
        words: &[String],
    ) -> impl Future<Output = Result<HashMap<String, i64>, StoreError>> + Send;
}

/// Records of the messages applied once, each under its own key, kept for a time to live.
pub trait ClaimStore: Send + Sync {
    /// Claims `key`: [`Claim::New`] only the first time (or after the record expired);
    /// otherwise what an earlier attempt left.
    fn claim(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Records how far an attempt got, so that the next one resumes instead of repeating.
    fn save_progress(
        &self,
        key: &str,
        progress: &Progress,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks a resumed message as fully handled.
    fn mark_done(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Publishes a counted message for the consumers downstream.
pub trait Publish: Send + Sync {
    fn publish(
        &self,
        message: &WordsMessage,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// A function with no topic publishes nothing: it always succeeds.
impl<P: Publish> Publish for Option<P> {
    async fn publish(&self, message: &WordsMessage) -> Result<(), PublishError> {
        match self {
            Some(publisher) => publisher.publish(message).await,
            None => Ok(()),
        }
    }
}

/// Publishes nothing, for the consumers of the topic, which apply a message and publish no other.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPublish;

impl Publish for NoPublish {
    async fn publish(&self, _message: &WordsMessage) -> Result<(), PublishError> {
        Ok(())
    }
}
