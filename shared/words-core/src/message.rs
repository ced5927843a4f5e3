//! The message published to WordsTopic, one per counted Slack message (docs/message-schema.md).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::counts::WordCounts;
use crate::slack::SlackMessage;
use crate::tokenize::{tokenize, within_limits, MAX_WORD_BYTES, MAX_WORD_CHARS};

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest message id accepted, in bytes. Slack's are a few dozen; the bound keeps each
/// consumer's record key (`#multiply#<message_id>`) within DynamoDB's 2,048-byte key limit.
pub const MAX_MESSAGE_ID_BYTES: usize = 1024;

/// The most times a word may occur in one message. Slack cuts a message at 40,000 characters
/// and a word takes at least one (a CJK ideograph is a word of its own), so no Slack message
/// has more; a larger multiplicity is forged or corrupt.
pub const MAX_MULTIPLICITY: u64 = 40_000;

/// How much of a word an error shows, in characters.
const WORD_PREVIEW_CHARS: usize = 24;

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    OutgoingWebhook,
    SlashCommand,
    EventsApi,
    /// A plain-text SNS message (the original's format: the raw Slack text).
    PlainText,
}

impl Source {
    /// The name it has in the message schema (`outgoing_webhook`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::OutgoingWebhook => "outgoing_webhook",
            Source::SlashCommand => "slash_command",
            Source::EventsApi => "events_api",
            Source::PlainText => "plain_text",
        }
    }
}

/// One counted Slack message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordsMessage {
    pub schema_version: u32,
    /// The Slack message itself: `team:channel:ts` (see [`crate::slack::message_id`]), the
    /// same for every way the message reached the counter; a slash command's `trigger_id`.
    pub message_id: String,
    pub source: Source,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    pub user_id: Option<String>,
    /// The original text, as Slack sent it.
    pub text: String,
    /// Each distinct word with its multiplicity, in order of first appearance.
    pub words: WordCounts,
    /// An Events API message's thread (its `thread_ts`, or its own `ts`): where its counts are
    /// posted as a reply. Absent for the other sources, which the counter answers inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    /// A slash command whose counting took longer than Slack waits: its `response_url`, where
    /// slack-replier posts the counts once it has finished counting. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_url: Option<String>,
    /// A command said to the app in a mention (`@fanout top 3`): its answer, which slack-replier
    /// posts in the thread. Such a message has no words: nothing is counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// Why an SNS or SQS message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message looks like JSON but is not a words message: {0}")]
    BadJson(String),
    #[error("the message has schema_version {0}; this code reads version {SCHEMA_VERSION}")]
    UnsupportedVersion(u32),
}

/// Why a words message must not be applied. It never can be: a permanent failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    #[error("the message_id is empty")]
    EmptyMessageId,
    #[error("the message_id is {0} bytes long; at most {MAX_MESSAGE_ID_BYTES} are accepted")]
    MessageIdTooLong(usize),
    #[error("word {position} is empty")]
    EmptyWord { position: usize },
    #[error("word {position} ({preview:?}) is {chars} characters and {bytes} bytes long; a word has at most {MAX_WORD_CHARS} characters and {MAX_WORD_BYTES} bytes")]
    WordTooLong {
        position: usize,
        preview: String,
        chars: usize,
        bytes: usize,
    },
    #[error("word {position} ({preview:?}) starts with '#': no word does, only the keys of the records of applied messages")]
    RecordKey { position: usize, preview: String },
    #[error("word {position} ({preview:?}) occurs {n} times; a word occurs 1 to {MAX_MULTIPLICITY} times")]
    BadMultiplicity {
        position: usize,
        preview: String,
        n: u64,
    },
    #[error("word {position} ({preview:?}): {n} occurrences times {multiplier} do not fit in a 64-bit count")]
    Overflow {
        position: usize,
        preview: String,
        n: u64,
        multiplier: i64,
    },
}

/// The first `max_chars` characters of `text`, with `…` in place of the last when cut.
pub fn preview(text: &str, max_chars: usize) -> String {
    if text.chars().nth(max_chars).is_none() {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{kept}…")
}

impl WordsMessage {
    /// Reads a delivered message: the JSON schema, or plain text (the legacy format, tokenized
    /// here). Plain text carries no id of its own: it is identified by its SNS MessageId
    /// (`sns:<MessageId>`, the same on every redelivery), and where there is none, a raw SQS
    /// delivery having dropped SNS's metadata, by a hash of its sender and text
    /// (`plain:<sha256 hex>`), so that SNS delivering it twice still applies it once.
    pub fn from_delivery(
        body: &str,
        sns_message_id: Option<&str>,
        sender: Option<&str>,
    ) -> Result<Self, MessageError> {
        if body.trim_start().starts_with('{') {
            #[derive(Deserialize)]
            struct Version {
                schema_version: u32,
            }
            let version: Version =
                serde_json::from_str(body).map_err(|e| MessageError::BadJson(e.to_string()))?;
            if version.schema_version != SCHEMA_VERSION {
                return Err(MessageError::UnsupportedVersion(version.schema_version));
            }
            return serde_json::from_str(body).map_err(|e| MessageError::BadJson(e.to_string()));
        }
        let message_id = match sns_message_id {
            Some(id) => format!("sns:{id}"),
            None => format!("plain:{}", content_hash(sender.unwrap_or_default(), body)),
        };
        Ok(WordsMessage {
            schema_version: SCHEMA_VERSION,
            message_id,
            source: Source::PlainText,
            team_id: None,
            channel_id: None,
            user_id: None,
            text: body.to_owned(),
            words: tokenize(body),
            thread_ts: None,
            response_url: None,
            answer: None,
        })
    }

    /// The message to publish for a verified Slack message and its words.
    pub fn from_slack(slack: SlackMessage, words: WordCounts) -> Self {
        WordsMessage {
            schema_version: SCHEMA_VERSION,
            message_id: slack.message_id,
            source: slack.source,
            team_id: slack.team_id,
            channel_id: slack.channel_id,
            user_id: slack.user_id,
            text: slack.text,
            words,
            thread_ts: slack.thread_ts,
            response_url: None,
            answer: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a words message always serializes")
    }

    /// Checks what a consumer must not apply blindly, since anyone who may publish to the topic
    /// can write a message: a usable message_id, and words as the tokenizer makes them (within
    /// its limits, none starting with `#`) with multiplicities from 1 to [`MAX_MULTIPLICITY`].
    pub fn validate(&self) -> Result<(), InvalidMessage> {
        if self.message_id.is_empty() {
            return Err(InvalidMessage::EmptyMessageId);
        }
        if self.message_id.len() > MAX_MESSAGE_ID_BYTES {
            return Err(InvalidMessage::MessageIdTooLong(self.message_id.len()));
        }
        for (index, (word, n)) in self.words.iter().enumerate() {
            let (position, preview) = (index + 1, preview(word, WORD_PREVIEW_CHARS));
            if word.is_empty() {
                return Err(InvalidMessage::EmptyWord { position });
            }
            if !within_limits(word) {
                return Err(InvalidMessage::WordTooLong {
                    position,
                    preview,
                    chars: word.chars().count(),
                    bytes: word.len(),
                });
            }
            if word.starts_with('#') {
                return Err(InvalidMessage::RecordKey { position, preview });
            }
            if !(1..=MAX_MULTIPLICITY).contains(&n) {
                return Err(InvalidMessage::BadMultiplicity {
                    position,
                    preview,
                    n,
                });
            }
        }
        Ok(())
    }

    /// Each word with `multiplier` times its multiplicity, for a valid message; an error for an
    /// invalid one, or where a product does not fit in an i64.
    pub fn deltas(&self, multiplier: i64) -> Result<Vec<(String, i64)>, InvalidMessage> {
        self.validate()?;
        self.words
            .iter()
            .enumerate()
            .map(|(index, (word, n))| {
                i64::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_mul(multiplier))
                    .map(|delta| (word.to_owned(), delta))
                    .ok_or_else(|| InvalidMessage::Overflow {
                        position: index + 1,
                        preview: preview(word, WORD_PREVIEW_CHARS),
                        n,
                        multiplier,
                    })
            })
            .collect()
    }
}

/// The SHA-256 of a sender and a text, in hex. A NUL separates them: no sender id holds one.
fn content_hash(sender: &str, text: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(sender.as_bytes());
    hash.update([0]);
    hash.update(text.as_bytes());
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_are_the_schema_names() {
        for source in [
            Source::OutgoingWebhook,
            Source::SlashCommand,
            Source::EventsApi,
            Source::PlainText,
        ] {
            assert_eq!(serde_json::to_value(source).unwrap(), source.as_str());
        }
    }

    fn sample() -> WordsMessage {
        WordsMessage {
            schema_version: SCHEMA_VERSION,
            message_id: "T1:C1:1.2".into(),
            source: Source::OutgoingWebhook,
            team_id: Some("T1".into()),
            channel_id: Some("C1".into()),
            user_id: Some("U1".into()),
            text: "the the cat".into(),
            words: tokenize("the the cat"),
            thread_ts: None,
            response_url: None,
            answer: None,
        }
    }

    #[test]
    fn json_round_trip() {
        let message = sample();
        let json = message.to_json();
        assert!(json.contains(r#""words":{"the":2,"cat":1}"#), "{json}");
        assert!(json.contains(r#""source":"outgoing_webhook""#), "{json}");
        assert_eq!(
            WordsMessage::from_delivery(&json, None, None).unwrap(),
            message
        );
    }

    #[test]
    fn plain_text_is_tokenized_and_keyed_by_delivery() {
        let message =
            WordsMessage::from_delivery("awsadvent some words", Some("abc-123"), None).unwrap();
        assert_eq!(message.message_id, "sns:abc-123");
        assert_eq!(message.source, Source::PlainText);
        assert_eq!(message.words.total(), 3);
    }

    #[test]
    fn raw_plain_text_is_keyed_by_its_sender_and_text() {
        let raw = |text: &str, sender: Option<&str>| {
            WordsMessage::from_delivery(text, None, sender)
                .unwrap()
                .message_id
        };
        let id = raw("awsadvent some words", Some("AIDASNS"));
        assert!(id.starts_with("plain:"), "{id}");
        assert_eq!(id.len(), "plain:".len() + 64);
        assert_eq!(
            id,
            raw("awsadvent some words", Some("AIDASNS")),
            "a duplicate"
        );
        assert_ne!(id, raw("awsadvent other words", Some("AIDASNS")));
        assert_ne!(id, raw("awsadvent some words", Some("AIDAOTHER")));
        assert_ne!(id, raw("awsadvent some words", None));
        // The separator keeps sender and text apart.
        assert_ne!(raw("b", Some("a")), raw("", Some("ab")));
    }

    fn forged(words: &str) -> WordsMessage {
        let mut message = sample();
        message.words = serde_json::from_str(words).unwrap();
        message
    }

    #[test]
    fn a_tokenized_message_is_valid_and_multiplies() {
        let message = sample();
        assert_eq!(message.validate(), Ok(()));
        assert_eq!(
            message.deltas(10),
            Ok(vec![("the".into(), 20), ("cat".into(), 10)])
        );
        let at_limits = forged(&format!(
            r#"{{"{}": {MAX_MULTIPLICITY}, "カ": 1}}"#,
            "w".repeat(MAX_WORD_CHARS)
        ));
        assert_eq!(at_limits.validate(), Ok(()));
    }

    #[test]
    fn forged_words_are_invalid() {
        let long = "x".repeat(3000);
        let cases = [
            (r#"{"ok": 1, "": 1}"#.to_owned(), "word 2 is empty"),
            (
                format!(r#"{{"{long}": 1}}"#),
                "3000 characters and 3000 bytes",
            ),
            (
                format!(r#"{{"{}": 1}}"#, "カ".repeat(101)),
                "101 characters",
            ),
            (r##"{"#count#T1:C1:1.0": 1}"##.to_owned(), "starts with '#'"),
            (r#"{"zero": 0}"#.to_owned(), "occurs 0 times"),
            (r#"{"many": 40001}"#.to_owned(), "occurs 40001 times"),
            (
                r#"{"huge": 18446744073709551615}"#.to_owned(),
                "occurs 18446744073709551615 times",
            ),
        ];
        for (words, expected) in cases {
            let err = forged(&words).validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{words:.40}: {err}");
            assert!(err.len() < 300, "the reason quotes a preview only: {err}");
        }
        let mut no_id = sample();
        no_id.message_id.clear();
        assert_eq!(no_id.validate(), Err(InvalidMessage::EmptyMessageId));
        no_id.message_id = "x".repeat(MAX_MESSAGE_ID_BYTES + 1);
        assert_eq!(
            no_id.validate(),
            Err(InvalidMessage::MessageIdTooLong(MAX_MESSAGE_ID_BYTES + 1))
        );
    }

    #[test]
    fn deltas_do_not_overflow() {
        let message = forged(&format!(r#"{{"a": 1, "b": {MAX_MULTIPLICITY}}}"#));
        assert_eq!(
            message.deltas(i64::MAX),
            Err(InvalidMessage::Overflow {
                position: 2,
                preview: "b".into(),
                n: MAX_MULTIPLICITY,
                multiplier: i64::MAX
            })
        );
        assert!(message.deltas(i64::MIN).is_err());
        assert_eq!(
            message.deltas(-3),
            Ok(vec![("a".into(), -3), ("b".into(), -120_000)])
        );
    }

    #[test]
    fn previews_are_cut_by_characters() {
        assert_eq!(preview("short", 24), "short");
        assert_eq!(preview("カタカナ", 3), "カタ…");
        assert_eq!(preview("カタカ", 3), "カタカ");
    }

    #[test]
    fn broken_json_and_other_versions_are_errors() {
        assert!(matches!(
            WordsMessage::from_delivery("{\"schema_version\":1", None, None),
            Err(MessageError::BadJson(_))
        ));
        assert!(matches!(
            WordsMessage::from_delivery("{\"schema_version\":1}", None, None),
            Err(MessageError::BadJson(_))
        ));
        let v2 = sample()
            .to_json()
            .replace("\"schema_version\":1", "\"schema_version\":2");
        assert_eq!(
            WordsMessage::from_delivery(&v2, None, None),
            Err(MessageError::UnsupportedVersion(2))
        );
    }
}
