//! The post-deploy smoke test of both products. The word count: one Slack request with a word
//! nobody has used (under a reserved prefix), whose reply must count it once; then, optionally,
//! the words table until sns-multiplier has added its share; then the word's item deleted. The
//! copy: one object through s3-fanout and s3-copier ([`copy`]). It talks only to what a stack
//! exposes (its Outputs and Parameters), so it runs the same against a deployed stack and a
//! local one.

pub mod copy;
pub mod stack;
pub mod words;

use fanout_words_core::slack;

pub use stack::{describe_stack, SecretParameter, StackFacts};
pub use words::{check_word, delete_word, unique_word, WordCleanup, WORD_PREFIX};

/// How the request proves it comes from Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A Slack app: an Events API message, signed with the app's signing secret.
    SigningSecret(String),
    /// A legacy outgoing webhook: a form carrying the verification token.
    VerificationToken(String),
}

/// An HTTP request, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackRequest {
    pub content_type: &'static str,
    /// Header name and value pairs beside Content-Type.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The request Slack would send for a message `text`: with a signing secret, a signed Events API
/// `message` event; with a token, an outgoing webhook form. `now` is the Unix time in seconds
/// and `id` makes the message id unique, so that a rerun is a new message.
pub fn slack_request(credentials: &Credentials, text: &str, now: i64, id: &str) -> SlackRequest {
    match credentials {
        Credentials::SigningSecret(secret) => {
            let body = serde_json::json!({
                "type": "event_callback",
                "team_id": "TSMOKE",
                "api_app_id": "ASMOKE",
                "event_id": format!("Ev{id}"),
                "event_time": now,
                "event": {
                    "type": "message",
                    "channel": "CSMOKE",
                    "user": "USMOKE",
                    "text": text,
                    "ts": format!("{now}.{id}"),
                },
            })
            .to_string();
            let timestamp = now.to_string();
            let signature = slack::sign(secret, &timestamp, body.as_bytes());
            SlackRequest {
                content_type: "application/json",
                headers: vec![
                    ("X-Slack-Request-Timestamp", timestamp),
                    ("X-Slack-Signature", signature),
                ],
                body,
            }
        }
        Credentials::VerificationToken(token) => {
            let timestamp = format!("{now}.{id}");
            let body = serde_urlencoded::to_string([
                ("token", token.as_str()),
                ("team_id", "TSMOKE"),
                ("team_domain", "smoke"),
                ("channel_id", "CSMOKE"),
                ("channel_name", "smoke"),
                ("timestamp", timestamp.as_str()),
                ("user_id", "USMOKE"),
                ("user_name", "smoke"),
                ("text", text),
                ("trigger_word", ""),
            ])
            .expect("strings always encode");
            SlackRequest {
                content_type: "application/x-www-form-urlencoded",
                headers: Vec::new(),
                body,
            }
        }
    }
}

/// Why a check failed. Each message says what was expected, what came, and where to look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmokeError {
    #[error("{0}")]
    Setup(String),
    #[error("the request to {url} failed: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the counter answered {status}, not 200: {body}{hint}")]
    Status {
        status: u16,
        body: String,
        hint: &'static str,
    },
    #[error("the counter's reply is not the JSON {{\"text\": \"word: N, ...\"}}: {0}")]
    BadReply(String),
    #[error(
        "the reply {text:?} does not count {word:?} once (the word is new: its count must be 1, or 1 plus the multiplier's share if sns-multiplier was quicker than the reply)"
    )]
    WrongCount { word: String, text: String },
    #[error("after {waited_s} s, {table}[{word}] is {count}, not {expected}: sns-multiplier has not applied the message (look at WordsTopic's subscription, MultiplierQueue, MultiplierDLQ and the multiplier's log group)")]
    MultiplierTimeout {
        table: String,
        word: String,
        count: i64,
        expected: i64,
        waited_s: u64,
    },
    #[error("{table}[{word}] is {count}, more than the {expected} expected: the message was applied more than once")]
    AppliedTwice {
        table: String,
        word: String,
        count: i64,
        expected: i64,
    },
    #[error("reading {table}[{word}] failed: {reason}")]
    Table {
        table: String,
        word: String,
        reason: String,
    },
    #[error("{0}")]
    Secret(String),
    #[error("refused to delete {what}: it is not under the reserved prefix {prefix:?}")]
    NotReserved { what: String, prefix: &'static str },
    #[error("could not delete {what}: {reason} ({hint})")]
    Cleanup {
        what: String,
        reason: String,
        hint: String,
    },
    #[error("could not {action} {url}: {reason}")]
    S3 {
        action: &'static str,
        url: String,
        reason: String,
    },
    #[error("invoking {function} failed: {reason} (look at s3-fanout's log group)")]
    Invoke { function: String, reason: String },
    #[error("the copy {url} does not match its source: {reason}")]
    CopyMismatch { url: String, reason: String },
    #[error("after {waited_s} s, {missing}: look at the run in the runs table, CopyQueue, CopyDLQ, FanoutDLQ and the copier's log group (docs/runs.md)")]
    CopyTimeout { waited_s: u64, missing: String },
    #[error(
        "run {run_id} is complete, but {key}'s outcome is {outcome}, not copied (docs/runs.md)"
    )]
    CopyOutcome {
        run_id: String,
        key: String,
        outcome: String,
    },
    #[error("reading {table}[{key}] failed: {reason}")]
    Runs {
        table: String,
        key: String,
        reason: String,
    },
}

/// A hint for the usual causes of a status.
pub fn status_hint(status: u16) -> &'static str {
    match status {
        401 => " (check that the signing secret or token is the one in the stack's SSM parameter)",
        403 | 404 => " (check the URL: it is the stack's SlackUrl output, ending in /slack)",
        429 => " (the API's throttling refused the request; retry later or raise SlackRateLimit)",
        500..=599 => " (look at the slack-counter log group)",
        _ => "",
    }
}

/// The count the reply gives `word`: the reply is `{"text": "word: N, word: N"}`.
pub fn reply_count(reply: &str, word: &str) -> Result<Option<i64>, SmokeError> {
    let json: serde_json::Value =
        serde_json::from_str(reply).map_err(|_| SmokeError::BadReply(reply.to_owned()))?;
    let text = json
        .get("text")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| SmokeError::BadReply(reply.to_owned()))?;
    Ok(text.split(", ").find_map(|pair| {
        let (w, n) = pair.rsplit_once(": ")?;
        (w == word).then(|| n.trim().parse().ok()).flatten()
    }))
}

/// The reply's text, for messages.
pub fn reply_text(reply: &str) -> String {
    serde_json::from_str::<serde_json::Value>(reply)
        .ok()
        .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| reply.to_owned())
}

/// The value of output `key`, or a message naming the stack and the outputs it has.
pub fn output(outputs: &[(String, String)], stack: &str, key: &str) -> Result<String, SmokeError> {
    outputs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| {
            let keys: Vec<&str> = outputs.iter().map(|(k, _)| k.as_str()).collect();
            SmokeError::Setup(format!(
                "stack {stack:?} has no output {key:?} (it has: {}); is it a fanout stack?",
                keys.join(", ")
            ))
        })
}

/// Sends the request; returns the status and body.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    request: &SlackRequest,
) -> Result<(u16, String), SmokeError> {
    let mut builder = http
        .post(url)
        .header("Content-Type", request.content_type)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let unreachable = |e: reqwest::Error| SmokeError::Unreachable {
        url: url.to_owned(),
        reason: error_chain(&e),
    };
    let response = builder.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(unreachable)?;
    Ok((status, body))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The word's count in the words table (0 when it has none).
pub async fn table_count(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    word: &str,
) -> Result<i64, SmokeError> {
    let count = fanout_tests::words::count_of(client, table, word)
        .await
        .map_err(|e| SmokeError::Table {
            table: table.to_owned(),
            word: word.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(count.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    #[test]
    fn a_signed_request_is_an_events_api_message_whose_signature_covers_its_body() {
        let request = slack_request(
            &Credentials::SigningSecret(SLACK_SECRET.into()),
            "fanoutsmokeabc",
            1_531_420_618,
            "42",
        );
        assert_eq!(request.content_type, "application/json");
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("X-Slack-Request-Timestamp"), "1531420618");
        assert_eq!(
            header("X-Slack-Signature"),
            slack::sign(SLACK_SECRET, "1531420618", request.body.as_bytes())
        );
        let verifier = slack::Verifier::new(Some(SLACK_SECRET.into()), None);
        assert!(verifier
            .check_signature(
                Some("1531420618"),
                Some(&header("X-Slack-Signature")),
                request.body.as_bytes(),
                1_531_420_700,
            )
            .is_ok());
        let parsed = slack::parse(Some(request.content_type), request.body.as_bytes()).unwrap();
        match parsed.kind {
            slack::RequestKind::Message(message) => {
                assert_eq!(message.text, "fanoutsmokeabc");
                assert_eq!(message.message_id, "TSMOKE:CSMOKE:1531420618.42");
            }
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn a_token_request_is_an_outgoing_webhook_with_a_unique_timestamp() {
        let token = Credentials::VerificationToken("tok en".into());
        let request = slack_request(&token, "fanoutsmokeabc", 1_700_000_000, "7");
        assert_eq!(request.content_type, "application/x-www-form-urlencoded");
        assert!(request.headers.is_empty());
        assert!(request.body.contains("token=tok+en"), "{}", request.body);
        let parsed = slack::parse(Some(request.content_type), request.body.as_bytes()).unwrap();
        assert_eq!(parsed.token.as_deref(), Some("tok en"));
        match parsed.kind {
            slack::RequestKind::Message(message) => {
                assert_eq!(message.text, "fanoutsmokeabc");
                assert!(
                    message.message_id.contains("1700000000.7"),
                    "{}",
                    message.message_id
                );
            }
            other => panic!("not a message: {other:?}"),
        }
        let again = slack_request(&token, "fanoutsmokeabc", 1_700_000_000, "8");
        assert_ne!(request.body, again.body);
    }

    #[test]
    fn reply_counts_are_read_from_the_text() {
        let reply = r#"{"text": "awsadvent: 1, some: 12, words: 3"}"#;
        assert_eq!(reply_count(reply, "some").unwrap(), Some(12));
        assert_eq!(reply_count(reply, "awsadvent").unwrap(), Some(1));
        assert_eq!(reply_count(reply, "other").unwrap(), None);
        assert!(matches!(
            reply_count("<html>", "x"),
            Err(SmokeError::BadReply(_))
        ));
        assert!(matches!(
            reply_count(r#"{"ok": true}"#, "x"),
            Err(SmokeError::BadReply(_))
        ));
    }

    #[test]
    fn missing_outputs_name_the_stack_and_what_it_has() {
        let outputs = vec![("WordsTableName".to_owned(), "t".to_owned())];
        assert_eq!(output(&outputs, "s", "WordsTableName").unwrap(), "t");
        let err = output(&outputs, "s", "SlackUrl").unwrap_err().to_string();
        assert!(
            err.contains("SlackUrl") && err.contains("WordsTableName"),
            "{err}"
        );
    }
}
