//! Applying a message's word deltas exactly once, even when Slack retries a request or SNS and
//! SQS deliver a message twice.
//!
//! The critical path is two sequential round trips, whatever the number of words: a conditional
//! claim of the message, then every add (and the publish) concurrently. Only when something
//! fails is a third write made: the progress so far, so that the retry adds exactly the words
//! that are missing and publishes only if that has not happened yet.

use std::time::Duration;

use crate::message::WordsMessage;
use crate::store::{
    AddOutcome, Claim, ClaimStore, Progress, Publish, PublishError, StoreError, WordCountStore,
};

/// How long a message's record is kept, and so how late a redelivery is still recognized.
pub const RECORD_TTL: Duration = Duration::from_secs(3 * 24 * 60 * 60);

/// Who applies a message: each stage keeps its own record of the messages it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// slack-counter: a Slack message's words, counted once.
    Count,
    /// sns-multiplier: a words message's additions, applied once.
    Multiply,
}

impl Stage {
    /// The key of a message's record. Records live beside the words, under keys that start
    /// with `#`, which no word can (`#` is a word boundary).
    pub fn record_key(self, message_id: &str) -> String {
        match self {
            Stage::Count => format!("#count#{message_id}"),
            Stage::Multiply => format!("#multiply#{message_id}"),
        }
    }
}

/// What applying a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Every delta was added now: the words with their new counts.
    Fresh(Vec<(String, i64)>),
    /// An earlier attempt had added some words; the rest were added now.
    Resumed {
        counts: Vec<(String, i64)>,
        added_before: Vec<String>,
    },
    /// The message was handled before: nothing was added or published.
    Duplicate,
}

/// Why a message was not fully applied. Its progress is saved: a retry finishes the job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("could not claim the message: {0}")]
    Claim(StoreError),
    #[error("{} of the words could not be added{}{}", failed.len(), publish.as_ref().map(|e| format!(" and {e}")).unwrap_or_default(), first_failure(failed))]
    Incomplete {
        failed: Vec<(String, StoreError)>,
        publish: Option<PublishError>,
    },
}

fn first_failure(failed: &[(String, StoreError)]) -> String {
    failed
        .first()
        .map(|(word, err)| format!(" (first: {word:?}: {err})"))
        .unwrap_or_default()
}

/// Adds `deltas` under the once-only record `key`, publishing `message` concurrently.
pub async fn apply_once<S, P>(
    store: &S,
    key: &str,
    deltas: Vec<(String, i64)>,
    publisher: &P,
    message: &WordsMessage,
) -> Result<Applied, ApplyError>
where
    S: WordCountStore + ClaimStore,
    P: Publish,
{
    let progress = match store
        .claim(key, RECORD_TTL)
        .await
        .map_err(ApplyError::Claim)?
    {
        Claim::Done => return Ok(Applied::Duplicate),
        Claim::New => None,
        Claim::Resume(progress) => Some(progress),
    };
    let resumed = progress.is_some();
    let progress: Progress = progress.unwrap_or_default();
    let (added_before, to_add): (Vec<_>, Vec<_>) = deltas
        .into_iter()
        .partition(|(word, _)| progress.added.contains(word));
    let publish = !progress.published;
    let published = async {
        if publish {
            Some(publisher.publish(message).await)
        } else {
            None
        }
    };
    let (outcome, published) = futures::join!(store.add(&to_add), published);
    let added_before = added_before.into_iter().map(|(word, _)| word).collect();
    finish(
        store,
        key,
        progress,
        outcome,
        published,
        resumed.then_some(added_before),
    )
    .await
}

/// Records what the attempt did: its progress when anything failed (so that the retry resumes
/// from there), `done` when a resumed attempt completed the message.
async fn finish<S: ClaimStore>(
    store: &S,
    key: &str,
    mut progress: Progress,
    outcome: AddOutcome,
    published: Option<Result<(), PublishError>>,
    resumed_after: Option<Vec<String>>,
) -> Result<Applied, ApplyError> {
    progress
        .added
        .extend(outcome.applied.iter().map(|(word, _)| word.clone()));
    let publish_error = match published {
        Some(Ok(())) => {
            progress.published = true;
            None
        }
        Some(Err(err)) => Some(err),
        None => None,
    };
    if !outcome.failed.is_empty() || publish_error.is_some() {
        if let Err(err) = store.save_progress(key, &progress, RECORD_TTL).await {
            tracing::error!(key, error = %err, "could not save the progress of a failed message; a retry may repeat some adds");
        }
        return Err(ApplyError::Incomplete {
            failed: outcome.failed,
            publish: publish_error,
        });
    }
    let Some(added_before) = resumed_after else {
        return Ok(Applied::Fresh(outcome.applied));
    };
    if let Err(err) = store.mark_done(key, RECORD_TTL).await {
        tracing::warn!(key, error = %err, "could not mark a resumed message done");
    }
    Ok(Applied::Resumed {
        counts: outcome.applied,
        added_before,
    })
}
