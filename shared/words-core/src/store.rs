//! The narrow interfaces the word-count protocols need from the outside world, and their
//! errors: a word-count store, a store of "applied once" records, and a publisher.
//!
//! The DynamoDB and SNS implementations live in adapter crates (fanout-words-dynamodb,
//! fanout-sns); [`crate::memory`] has in-memory ones for tests.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use crate::message::WordsMessage;

/// A store call that failed after the adapter's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {store} failed: {detail}")]
pub struct StoreError {
    /// The call, as the store names it (`DynamoDB TransactWriteItems`…).
    pub operation: &'static str,
    /// Which store: a table name, say.
    pub store: String,
    /// Whether trying again later may succeed (throttling, a conflict, a 5xx, a timeout), or
    /// never will (validation: a key too long, say).
    pub transient: bool,
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

/// What applying one chunk of a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// The chunk's claim was new: every delta of the chunk was added, together with it.
    Applied,
    /// The chunk's claim already existed: its deltas had been added before (by an earlier or
    /// a concurrent delivery), and nothing was added now.
    AlreadyApplied,
}

/// Word counts that change only by atomic adds, each chunk of a message's adds committed
/// together with the claim that makes it happen once.
pub trait WordCountStore: Send + Sync {
    /// Adds every delta of the chunk and writes its claim `key` (kept for `ttl`), all or
    /// nothing, unless the claim exists already. At most [`crate::once::CHUNK_WORDS`] deltas.
    fn apply_chunk(
        &self,
        key: &str,
        deltas: &[(String, i64)],
        ttl: Duration,
    ) -> impl Future<Output = Result<ChunkOutcome, StoreError>> + Send;

    /// The current counts of `words`; a word never counted is absent.
    fn counts(
        &self,
        words: &[String],
    ) -> impl Future<Output = Result<HashMap<String, i64>, StoreError>> + Send;
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
