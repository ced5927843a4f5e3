//! The counter's protocol: a verified Slack message in, its words counted once and published,
//! each word's count after it out (for the reply).

use std::collections::HashMap;

use crate::message::WordsMessage;
use crate::once::{apply_once, Applied, ApplyError, Stage};
use crate::slack::SlackMessage;
use crate::store::{ClaimStore, Publish, WordCountStore};
use crate::tokenize::tokenize;

/// A counted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The message as published.
    pub message: WordsMessage,
    /// Each word's count after this message.
    pub counts: Vec<(String, i64)>,
    /// It had been counted before (a retry or redelivery): nothing was added this time.
    pub repeat: bool,
}

impl Counted {
    /// `word: N, word: N`, in the message's order of first appearance.
    pub fn reply_text(&self) -> String {
        let lookup: HashMap<&str, i64> =
            self.counts.iter().map(|(w, n)| (w.as_str(), *n)).collect();
        self.message
            .words
            .iter()
            .filter_map(|(word, _)| lookup.get(word).map(|n| format!("{word}: {n}")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What counting a Slack message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountOutcome {
    /// The message has no words: nothing was counted or published.
    NoWords,
    Counted(Box<Counted>),
}

/// Counts the message's words once and publishes it (at least once, as part of the same
/// protocol); a repeat reads the current counts instead.
pub async fn count_message<S, P>(
    store: &S,
    publisher: &P,
    slack: SlackMessage,
) -> Result<CountOutcome, ApplyError>
where
    S: WordCountStore + ClaimStore,
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
    let key = Stage::Count.record_key(&message.message_id);
    let (counts, read_back, repeat) =
        match apply_once(store, &key, deltas, publisher, &message).await? {
            Applied::Fresh(counts) => (counts, Vec::new(), false),
            Applied::Resumed {
                counts,
                added_before,
            } => (counts, added_before, false),
            Applied::Duplicate => {
                let words = message.words.iter().map(|(w, _)| w.to_owned()).collect();
                (Vec::new(), words, true)
            }
        };
    let counts = with_current(store, counts, read_back).await?;
    Ok(CountOutcome::Counted(Box::new(Counted {
        message,
        counts,
        repeat,
    })))
}

/// Adds the current counts of `words` (read, not changed) to `counts`.
async fn with_current<S: WordCountStore>(
    store: &S,
    mut counts: Vec<(String, i64)>,
    words: Vec<String>,
) -> Result<Vec<(String, i64)>, ApplyError> {
    if words.is_empty() {
        return Ok(counts);
    }
    let current = store.counts(&words).await.map_err(ApplyError::Claim)?;
    counts.extend(words.into_iter().map(|w| {
        let n = current.get(&w).copied().unwrap_or_default();
        (w, n)
    }));
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryPublisher, MemoryWords};
    use crate::message::Source;
    use crate::store::NoPublish;

    fn slack(id: &str, text: &str) -> SlackMessage {
        SlackMessage {
            source: Source::OutgoingWebhook,
            message_id: id.into(),
            team_id: Some("T1".into()),
            channel_id: Some("C1".into()),
            user_id: Some("U1".into()),
            text: text.into(),
        }
    }

    fn counted(outcome: Result<CountOutcome, ApplyError>) -> Counted {
        match outcome {
            Ok(CountOutcome::Counted(counted)) => *counted,
            other => panic!("not counted: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_message_is_counted_and_published_once() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        let first = counted(count_message(&store, &publisher, slack("C1:1", "the cat the")).await);
        assert_eq!(first.reply_text(), "the: 2, cat: 1");
        assert!(!first.repeat);
        let again = counted(count_message(&store, &publisher, slack("C1:1", "the cat the")).await);
        assert!(again.repeat);
        assert_eq!(
            again.reply_text(),
            "the: 2, cat: 1",
            "a repeat reads the counts"
        );
        assert_eq!(store.count("the"), Some(2));
        assert_eq!(publisher.published().len(), 1);
        assert_eq!(publisher.published()[0].message_id, "C1:1");
    }

    #[tokio::test]
    async fn a_failed_add_is_resumed_without_counting_twice() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        store.fail_word("dog", 1);
        let err = count_message(&store, &publisher, slack("C1:2", "cat dog"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1 of the words"), "{err}");
        assert_eq!(store.count("cat"), Some(1));
        assert_eq!(store.count("dog"), None);
        let retry = counted(count_message(&store, &publisher, slack("C1:2", "cat dog")).await);
        assert_eq!(retry.reply_text(), "cat: 1, dog: 1");
        assert_eq!((store.count("cat"), store.count("dog")), (Some(1), Some(1)));
        assert_eq!(
            publisher.published().len(),
            1,
            "published by the first attempt"
        );
        let third = counted(count_message(&store, &publisher, slack("C1:2", "cat dog")).await);
        assert!(third.repeat);
        assert_eq!(store.count("dog"), Some(1));
    }

    #[tokio::test]
    async fn a_failed_publish_is_retried_without_counting_again() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        publisher.fail(1);
        let err = count_message(&store, &publisher, slack("C1:3", "hello"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::Incomplete {
                    publish: Some(_),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(store.count("hello"), Some(1));
        let retry = counted(count_message(&store, &publisher, slack("C1:3", "hello")).await);
        assert_eq!(retry.reply_text(), "hello: 1");
        assert_eq!(store.count("hello"), Some(1));
        assert_eq!(publisher.published().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_claim_changes_nothing() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        store.fail("claim", 1);
        assert!(matches!(
            count_message(&store, &publisher, slack("C1:4", "x")).await,
            Err(ApplyError::Claim(_))
        ));
        assert_eq!(store.count("x"), None);
        assert!(publisher.published().is_empty());
        counted(count_message(&store, &publisher, slack("C1:4", "x")).await);
        assert_eq!(store.count("x"), Some(1));
    }

    #[tokio::test]
    async fn many_words_at_once_and_none_at_all() {
        let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
        let text: Vec<String> = (0..250).map(|i| format!("w{i}")).collect();
        let done = counted(count_message(&store, &publisher, slack("C1:5", &text.join(" "))).await);
        assert_eq!(done.counts.len(), 250);
        assert!((0..250).all(|i| store.count(&format!("w{i}")) == Some(1)));
        let none = count_message(&store, &publisher, slack("C1:6", "  <@U1> ")).await;
        assert_eq!(none, Ok(CountOutcome::NoWords));
        assert_eq!(publisher.published().len(), 1);
    }

    #[tokio::test]
    async fn the_multiplier_stage_applies_once_and_publishes_nothing() {
        let store = MemoryWords::new();
        let message = WordsMessage::from_slack(slack("C1:7", "a b"), tokenize("a b a"));
        let deltas = vec![("a".to_owned(), 20), ("b".to_owned(), 10)];
        let key = Stage::Multiply.record_key(&message.message_id);
        assert_eq!(key, "#multiply#C1:7");
        let first = apply_once(&store, &key, deltas.clone(), &NoPublish, &message).await;
        assert_eq!(
            first,
            Ok(Applied::Fresh(vec![("a".into(), 20), ("b".into(), 10)]))
        );
        let again = apply_once(&store, &key, deltas, &NoPublish, &message).await;
        assert_eq!(again, Ok(Applied::Duplicate));
        assert_eq!((store.count("a"), store.count("b")), (Some(20), Some(10)));
    }
}
