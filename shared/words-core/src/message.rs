//! The message published to WordsTopic, one per counted Slack message (docs/message-schema.md).

use serde::{Deserialize, Serialize};

use crate::counts::WordCounts;
use crate::slack::SlackMessage;
use crate::tokenize::tokenize;

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest message id accepted, in bytes. Slack's are a few dozen; the bound keeps each
/// consumer's record key (`#multiply#<message_id>`) within DynamoDB's 2,048-byte key limit.
pub const MAX_MESSAGE_ID_BYTES: usize = 1024;

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
}

/// Why an SNS or SQS message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message looks like JSON but is not a words message: {0}")]
    BadJson(String),
    #[error("the message has schema_version {0}; this code reads version {SCHEMA_VERSION}")]
    UnsupportedVersion(u32),
    #[error("a plain-text message needs a delivery id to be applied once, and this one has none")]
    NoDeliveryId,
}

impl WordsMessage {
    /// Reads a delivered message: the JSON schema, or plain text (tokenized here), which is
    /// identified by its delivery's id (the SNS MessageId).
    pub fn from_delivery(body: &str, delivery_id: Option<&str>) -> Result<Self, MessageError> {
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
        let id = delivery_id.ok_or(MessageError::NoDeliveryId)?;
        Ok(WordsMessage {
            schema_version: SCHEMA_VERSION,
            message_id: format!("sns:{id}"),
            source: Source::PlainText,
            team_id: None,
            channel_id: None,
            user_id: None,
            text: body.to_owned(),
            words: tokenize(body),
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
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a words message always serializes")
    }
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
        }
    }

    #[test]
    fn json_round_trip() {
        let message = sample();
        let json = message.to_json();
        assert!(json.contains(r#""words":{"the":2,"cat":1}"#), "{json}");
        assert!(json.contains(r#""source":"outgoing_webhook""#), "{json}");
        assert_eq!(WordsMessage::from_delivery(&json, None).unwrap(), message);
    }

    #[test]
    fn plain_text_is_tokenized_and_keyed_by_delivery() {
        let message = WordsMessage::from_delivery("awsadvent some words", Some("abc-123")).unwrap();
        assert_eq!(message.message_id, "sns:abc-123");
        assert_eq!(message.source, Source::PlainText);
        assert_eq!(message.words.total(), 3);
        assert_eq!(
            WordsMessage::from_delivery("hi", None),
            Err(MessageError::NoDeliveryId)
        );
    }

    #[test]
    fn broken_json_and_other_versions_are_errors() {
        assert!(matches!(
            WordsMessage::from_delivery("{\"schema_version\":1", None),
            Err(MessageError::BadJson(_))
        ));
        assert!(matches!(
            WordsMessage::from_delivery("{\"schema_version\":1}", None),
            Err(MessageError::BadJson(_))
        ));
        let v2 = sample()
            .to_json()
            .replace("\"schema_version\":1", "\"schema_version\":2");
        assert_eq!(
            WordsMessage::from_delivery(&v2, None),
            Err(MessageError::UnsupportedVersion(2))
        );
    }
}
