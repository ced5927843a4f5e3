//! The counter's protocol: a verified Slack message in, its words counted exactly once and the
//! message published at least once, each word's count after it out (for the reply).
//!
//! Two sequential round trips, whatever the number of words: the chunks' atomic writes, then
//! the publish and the read of the counts together. Every delivery publishes, a repeat too:
//! that is what makes "published at least once" hold when a process dies between counting and
//! publishing; the consumers apply a message once, so a second publish changes nothing.

use std::collections::HashMap;

use crate::message::WordsMessage;
use crate::once::{apply_once, Applied, ApplyError, Stage};
use crate::slack::SlackMessage;
use crate::store::{Publish, PublishError, StoreError, WordCountStore};
use crate::tokenize::tokenize;

/// A counted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The message as published.
    pub message: WordsMessage,
    /// Each word's count after this message (and any counted meanwhile).
    pub counts: HashMap<String, i64>,
    /// It had been counted before (a retry or redelivery): nothing was added this time.
    pub repeat: bool,
}

impl Counted {
    /// `word: N, word: N`, in the message's order of first appearance.
    /// At most [`crate::reply::MAX_REPLY_WORDS`] words, then `…and N more`.
    pub fn reply_text(&self) -> String {
        crate::reply::counts_text(
            self.message.words.iter().map(|(word, _)| word),
            &self.counts,
        )
    }
}

/// What counting a Slack message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountOutcome {
    /// The message has no words: nothing was counted or published.
    NoWords,
    Counted(Box<Counted>),
}

/// Why a message was not fully handled. Whatever was counted stays counted, once; a retry
/// finishes the job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("the words were counted, but {0}")]
    Publish(PublishError),
    #[error("the words were counted, but their counts could not be read: {0}")]
    Read(StoreError),
}

impl CountError {
    /// Whether a retry may succeed.
    pub fn transient(&self) -> bool {
        match self {
            CountError::Apply(err) => err.transient(),
            CountError::Publish(_) => true,
            CountError::Read(err) => err.transient,
        }
    }
}

/// Counts the message's words once and publishes it; reads back each word's count.
pub async fn count_message<S, P>(
    store: &S,
    publisher: &P,
    slack: SlackMessage,
) -> Result<CountOutcome, CountError>
where
    S: WordCountStore,
    P: Publish,
{
    let words = tokenize(&slack.text);
    if words.is_empty() {
        return Ok(CountOutcome::NoWords);
    }
    let message = WordsMessage::from_slack(slack, words);
    let deltas: Vec<(String, i64)> = message
        .words
        .iter()
        .map(|(w, n)| (w.to_owned(), i64::try_from(n).unwrap_or(i64::MAX)))
        .collect();
    let applied = apply_once(store, Stage::Count, &message.message_id, &deltas).await?;
    let names: Vec<String> = deltas.into_iter().map(|(word, _)| word).collect();
    let (published, counts) = futures::join!(publisher.publish(&message), store.counts(&names));
    published.map_err(CountError::Publish)?;
    let counts = counts.map_err(CountError::Read)?;
    Ok(CountOutcome::Counted(Box::new(Counted {
        message,
        counts,
        repeat: applied == Applied::Repeat,
    })))
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::memory::{Fault, MemoryPublisher, MemoryWords};
    use crate::message::Source;
    use crate::once::CHUNK_WORDS;

    fn slack(id: &str, text: &str) -> SlackMessage {
        SlackMessage {
            source: Source::OutgoingWebhook,
            message_id: id.into(),
            team_id: Some("T1".into()),
            channel_id: Some("C1".into()),
            user_id: Some("U1".into()),
            text: text.into(),
            addressed: false,
            thread_ts: None,
            response_url: None,
        }
    }

    /// Counts in memory, where nothing waits.
    fn count(
        store: &MemoryWords,
        publisher: &MemoryPublisher,
        id: &str,
        text: &str,
    ) -> Result<Counted, CountError> {
        match count_message(store, publisher, slack(id, text))
            .now_or_never()
            .expect("in memory")
        {
            Ok(CountOutcome::Counted(counted)) => Ok(*counted),
            Ok(CountOutcome::NoWords) => panic!("no words in {text:?}"),
            Err(err) => Err(err),
        }
    }

    #[test]
    fn a_message_is_counted_once_and_every_delivery_publishes() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        let first = count(&store, &publisher, "m1", "the cat the").unwrap();
        assert_eq!(first.reply_text(), "the: 2, cat: 1");
        assert!(!first.repeat);
        let again = count(&store, &publisher, "m1", "the cat the").unwrap();
        assert!(again.repeat);
        assert_eq!(
            again.reply_text(),
            "the: 2, cat: 1",
            "a repeat reads the counts"
        );
        assert_eq!(store.count("the"), Some(2));
        assert_eq!(
            publisher.published().len(),
            2,
            "at least once: a repeat publishes too"
        );
    }

    #[test]
    fn a_failed_chunk_is_transient_and_its_retry_adds_only_what_is_missing() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        let text: Vec<String> = (0..250).map(|i| format!("w{i}")).collect();
        let text = text.join(" ");
        store.fail("apply_chunk", 1, Fault::Before);
        let err = count(&store, &publisher, "m2", &text).unwrap_err();
        assert!(err.transient(), "{err}");
        assert!(err.to_string().contains("1 of 3 chunks"), "{err}");
        assert!(
            publisher.published().is_empty(),
            "not published before it is counted"
        );
        let retry = count(&store, &publisher, "m2", &text).unwrap();
        assert!(!retry.repeat, "the retry added the missing chunk");
        assert!((0..250).all(|i| store.count(&format!("w{i}")) == Some(1)));
        let chunks = store
            .calls()
            .iter()
            .filter(|c| c.starts_with("apply_chunk"))
            .count();
        assert_eq!(
            chunks, 6,
            "{} words: 3 chunks of at most {CHUNK_WORDS}, twice",
            250
        );
    }

    #[test]
    fn a_lost_answer_or_a_failed_publish_counts_nothing_twice() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        store.fail("apply_chunk", 1, Fault::After);
        assert!(count(&store, &publisher, "m3", "hello").is_err());
        publisher.fail(1, Fault::Before);
        let err = count(&store, &publisher, "m3", "hello").unwrap_err();
        assert!(
            matches!(err, CountError::Publish(_)) && err.transient(),
            "{err}"
        );
        let done = count(&store, &publisher, "m3", "hello").unwrap();
        assert_eq!(done.reply_text(), "hello: 1");
        assert_eq!(publisher.published().len(), 1);
    }

    #[test]
    fn nothing_to_count() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        let none = count_message(&store, &publisher, slack("m4", "  <@U1> ")).now_or_never();
        assert_eq!(none, Some(Ok(CountOutcome::NoWords)));
        assert!(store.calls().is_empty() && publisher.published().is_empty());
    }
}
