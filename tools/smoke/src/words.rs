//! The smoke test's word: always under a reserved prefix, so that what it leaves in a words
//! table is recognisable, and so that its clean-up can delete that and nothing else.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use fanout_words_dynamodb::{COUNT, KEY};

use crate::SmokeError;

/// Every word the smoke test sends starts with this; no other item of a words table is ever
/// deleted by it. Slack users do not write it by chance (and if one did, the count of such a
/// word is the smoke test's to remove).
pub const WORD_PREFIX: &str = "fanoutsmoke";

/// A word no one has sent before: [`WORD_PREFIX`] and the time in nanoseconds, in base 36.
pub fn unique_word() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    format!("{WORD_PREFIX}{}", base36(nanos))
}

pub(crate) fn base36(mut n: u128) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

/// Checks that `word` is one the smoke test may send and delete: one lowercase word as the
/// counter counts it, longer than [`WORD_PREFIX`] and starting with it.
pub fn check_word(word: &str) -> Result<(), SmokeError> {
    if !is_reserved_word(word) {
        return Err(SmokeError::Setup(format!(
            "--word {word:?} does not start with {WORD_PREFIX:?}: the smoke test sends and deletes only words under that prefix"
        )));
    }
    let tokens = fanout_words_core::tokenize(word);
    if tokens.len() == 1 && tokens.iter().all(|(token, _)| token == word) {
        Ok(())
    } else {
        Err(SmokeError::Setup(format!(
            "--word {word:?} is not one lowercase word as the counter counts it"
        )))
    }
}

/// Whether `word` is under the reserved prefix (and is more than the prefix).
pub fn is_reserved_word(word: &str) -> bool {
    word.len() > WORD_PREFIX.len() && word.starts_with(WORD_PREFIX)
}

/// The DeleteItem condition that keeps the clean-up to the reserved prefix even if the key
/// were wrong (`#word` is the key attribute, `:reserved` the prefix).
pub const DELETE_CONDITION: &str = "begins_with(#word, :reserved)";

/// What the clean-up did with the word's item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordCleanup {
    /// The item was deleted; its count then.
    Deleted { count: Option<i64> },
    /// There was no item (the request was never counted).
    Absent,
}

/// Deletes the smoke test's word from the words table, on the condition that it is under the
/// reserved prefix; any other word is refused before a request is made.
pub async fn delete_word(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    word: &str,
) -> Result<WordCleanup, SmokeError> {
    if !is_reserved_word(word) {
        return Err(SmokeError::NotReserved {
            what: format!("{table}[{word}]"),
            prefix: WORD_PREFIX,
        });
    }
    let answer = client
        .delete_item()
        .table_name(table)
        .key(KEY, AttributeValue::S(word.to_owned()))
        .condition_expression(DELETE_CONDITION)
        .expression_attribute_names("#word", KEY)
        .expression_attribute_values(":reserved", AttributeValue::S(WORD_PREFIX.to_owned()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await;
    match answer {
        Ok(deleted) => Ok(match deleted.attributes() {
            Some(item) => WordCleanup::Deleted {
                count: item
                    .get(COUNT)
                    .and_then(|n| n.as_n().ok())
                    .and_then(|n| n.parse().ok()),
            },
            // The condition held on no item: DynamoDB deletes nothing and says nothing.
            None => WordCleanup::Absent,
        }),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            // The key is under the prefix, so only a missing item fails the condition.
            Ok(WordCleanup::Absent)
        }
        Err(e) => Err(SmokeError::Cleanup {
            what: format!("{table}[{word}]"),
            reason: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
            hint: format!(
                "the smoke test's role needs dynamodb:DeleteItem on the words table; delete it by hand: aws dynamodb delete-item --table-name {table} --key '{{\"word\": {{\"S\": \"{word}\"}}}}'"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_words_are_reserved_single_lowercase_tokens() {
        let word = unique_word();
        assert!(word.starts_with(WORD_PREFIX), "{word}");
        assert!(check_word(&word).is_ok(), "{word}");
        assert_eq!(word, word.to_lowercase());
        assert_ne!(word, unique_word());
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10z");
    }

    #[test]
    fn only_words_under_the_prefix_may_be_sent_or_deleted() {
        for word in [
            "awsadvent",
            "smoke123",
            "fanoutsmok",
            WORD_PREFIX,
            "",
            "xfanoutsmoke1",
            "#fanoutsmoke1",
            "Fanoutsmoke1",
        ] {
            assert!(!is_reserved_word(word), "{word:?}");
            let err = check_word(word).unwrap_err().to_string();
            assert!(err.contains(WORD_PREFIX), "{word:?}: {err}");
        }
        assert!(is_reserved_word("fanoutsmoke1"));
        assert!(check_word("fanoutsmokeabc").is_ok());
        let err = check_word("fanoutsmoke two").unwrap_err().to_string();
        assert!(err.contains("not one lowercase word"), "{err}");
    }

    #[tokio::test]
    async fn a_word_outside_the_prefix_is_refused_before_any_request() {
        // Any request would fail to connect: the refusal must come first.
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let err = delete_word(&client, "words", "awsadvent")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SmokeError::NotReserved {
                what: "words[awsadvent]".into(),
                prefix: WORD_PREFIX
            }
        );
    }
}
