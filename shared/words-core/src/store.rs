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

/// The most counted words, read from a view the store keeps as counts change: never a scan of
/// every word, and no dearer with more distinct words.
pub trait Leaderboard: Send + Sync {
    /// The `n` words with the highest counts, highest first (equal counts by word), leaving out
    /// the words `skip` says.
    fn top(
        &self,
        n: usize,
        skip: fn(&str) -> bool,
    ) -> impl Future<Output = Result<Vec<(String, i64)>, StoreError>> + Send;
}

/// The number of leaderboard shards: each word is in one ([`board_shard`]), and the top `n` is
/// the best `n` of each shard's top `n`. Spreads the writes to the view over 16 partitions.
pub const BOARD_SHARDS: u32 = 16;

/// A word's leaderboard shard: FNV-1a of its bytes, modulo [`BOARD_SHARDS`].
pub fn board_shard(word: &str) -> u32 {
    let hash = word.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    u32::try_from(hash % u64::from(BOARD_SHARDS)).unwrap_or(0)
}

/// The best `n` of several lists of `(word, count)`: highest count first, equal counts by word.
pub fn best_of(
    lists: impl IntoIterator<Item = Vec<(String, i64)>>,
    n: usize,
) -> Vec<(String, i64)> {
    let mut all: Vec<(String, i64)> = lists.into_iter().flatten().collect();
    all.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
    all.dedup_by(|a, b| a.0 == b.0);
    all.truncate(n);
    all
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(board_shard("awsadvent"), board_shard("awsadvent"));
        let shards: std::collections::HashSet<u32> = (0..1000)
            .map(|i| board_shard(&format!("word{i}")))
            .collect();
        assert_eq!(shards.len(), BOARD_SHARDS as usize, "every shard is used");
    }

    proptest! {
        /// The best n of the shards' best n is the best n of all: what the sharded view relies on.
        #[test]
        fn the_best_of_each_shards_best_is_the_best_of_all(
            counts in proptest::collection::hash_map("[a-e]{1,3}", 0i64..20, 0..60),
            n in 1usize..12,
        ) {
            let all: Vec<(String, i64)> = counts.into_iter().collect();
            let mut shards: Vec<Vec<(String, i64)>> = vec![Vec::new(); BOARD_SHARDS as usize];
            for entry in &all {
                shards[board_shard(&entry.0) as usize].push(entry.clone());
            }
            let per_shard = shards.into_iter().map(|shard| best_of([shard], n));
            prop_assert_eq!(best_of(per_shard, n), best_of([all], n));
        }
    }
}
