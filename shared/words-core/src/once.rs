//! Applying a message's word deltas exactly once, whatever fails: a crash, a kill or a timeout
//! at any point, a retry, a redelivery, two deliveries at the same time.
//!
//! The deltas are cut into chunks of at most [`CHUNK_WORDS`] words. Each chunk is committed in
//! one atomic write together with its claim (`#count#<message id>#<chunk>`): either the claim
//! and all of the chunk's adds happen, or none of them. A delivery that finds a chunk's claim
//! knows its adds are durable, and adds nothing. So after any interruption, the next delivery
//! adds exactly the chunks that are missing; two deliveries racing can each commit only the
//! chunks the other has not. There is no lease to wait for: a retry can finish a message at
//! once, whenever the earlier attempt died.
//!
//! All chunks go out at once: one sequential round trip, whatever the number of words.

use std::time::Duration;

use crate::store::{ChunkOutcome, StoreError, WordCountStore};

/// Words per atomic write: DynamoDB's transactions take 100 items, one of which is the claim.
pub const CHUNK_WORDS: usize = 99;

/// How long a message's claims are kept, and so how late a redelivery is still recognized:
/// longer than the 14 days a dead-letter queue keeps a message, plus a day for a redrive.
pub const RECORD_TTL: Duration = Duration::from_secs(15 * 24 * 60 * 60);

/// Who applies a message: each stage keeps its own claims on the messages it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// slack-counter: a Slack message's words, counted once.
    Count,
    /// sns-multiplier: a words message's additions, applied once.
    Multiply,
}

impl Stage {
    /// The key of a chunk's claim. Claims live beside the words, under keys that start with `#`,
    /// which no word can (`#` is a word boundary, and the multiplier refuses such words).
    pub fn claim_key(self, message_id: &str, chunk: usize) -> String {
        let stage = match self {
            Stage::Count => "count",
            Stage::Multiply => "multiply",
        };
        format!("#{stage}#{message_id}#{chunk}")
    }
}

/// What applying a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Every chunk was added now.
    Fresh,
    /// Earlier deliveries had added some chunks; the rest were added now.
    Completed,
    /// Every chunk had been added before: nothing was added now.
    Repeat,
}

/// Why a message was not fully applied. The chunks that were committed stay committed; a retry
/// adds the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} of {chunks} chunks of the message's words could not be added: {first}",
    failed
)]
pub struct ApplyError {
    pub chunks: usize,
    pub failed: usize,
    /// The first failure.
    pub first: StoreError,
}

impl ApplyError {
    /// Whether a retry may succeed; a permanent failure (a validation error) never will.
    pub fn transient(&self) -> bool {
        self.first.transient
    }
}

/// Adds `deltas` for `message_id` at `stage`, exactly once across every delivery.
pub async fn apply_once<S: WordCountStore>(
    store: &S,
    stage: Stage,
    message_id: &str,
    deltas: &[(String, i64)],
) -> Result<Applied, ApplyError> {
    let chunks: Vec<&[(String, i64)]> = deltas.chunks(CHUNK_WORDS).collect();
    let writes = chunks.iter().enumerate().map(|(at, chunk)| {
        let key = stage.claim_key(message_id, at);
        async move { store.apply_chunk(&key, chunk, RECORD_TTL).await }
    });
    let outcomes = futures::future::join_all(writes).await;
    let (mut applied, mut before, mut failed) = (0, 0, Vec::new());
    for outcome in outcomes {
        match outcome {
            Ok(ChunkOutcome::Applied) => applied += 1,
            Ok(ChunkOutcome::AlreadyApplied) => before += 1,
            Err(err) => failed.push(err),
        }
    }
    if let Some(first) = failed.first() {
        return Err(ApplyError {
            chunks: chunks.len(),
            failed: failed.len(),
            first: first.clone(),
        });
    }
    Ok(match (applied, before) {
        (_, 0) => Applied::Fresh,
        (0, _) => Applied::Repeat,
        _ => Applied::Completed,
    })
}
