//! slack-counter: verifies a Slack request, counts each word of its message in DynamoDB with
//! atomic adds, replies with the new counts, and publishes the message to SNS.
//!
//! Takes every event shape lambda_http supports: API Gateway REST (v1) and HTTP (v2) APIs, ALB
//! targets and Function URLs; base64-encoded bodies are decoded by lambda_http before the
//! signature is checked, so the signature covers the decoded bytes.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use fanout_common::{ConfigError, Vars};
use fanout_words::once::{apply_once, Applied, ApplyError};
use fanout_words::publish::Publisher;
use fanout_words::slack::{self, AuthError, RequestKind, SlackMessage, Verifier};
use fanout_words::store::WordStore;
use fanout_words::{tokenize, Source, WordsMessage};
use lambda_http::http::{header::CONTENT_TYPE, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &[
    "WORDS_TABLE",
    "WORDS_TOPIC_ARN",
    "SLACK_SIGNING_SECRET",
    "SLACK_VERIFICATION_TOKEN",
    "SLACK_SIGNING_SECRET_PARAM",
    "SLACK_VERIFICATION_TOKEN_PARAM",
];

/// The IAM actions this function's code calls (checked against infra/template.yaml). Publishing
/// to the KMS-encrypted topic also needs `kms:GenerateDataKey`/`kms:Decrypt` on its key, which
/// the template grants beside these.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "sns:Publish",
    "ssm:GetParameter",
];

/// Where a Slack credential comes from: the variable itself (local runs) or an SSM parameter
/// whose name the variable `<NAME>_PARAM` holds (deployments, where secrets stay out of the
/// function's environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Unset,
    Value(String),
    Parameter(String),
}

/// The counter's configuration, read once at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub topic_arn: Option<String>,
    pub signing_secret: Secret,
    pub verification_token: Secret,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            table: vars.required("WORDS_TABLE", "the name of the DynamoDB words table")?,
            topic_arn: vars.optional("WORDS_TOPIC_ARN"),
            signing_secret: secret(vars, "SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET_PARAM")?,
            verification_token: secret(
                vars,
                "SLACK_VERIFICATION_TOKEN",
                "SLACK_VERIFICATION_TOKEN_PARAM",
            )?,
        })
    }
}

fn secret(vars: &Vars, var: &'static str, param_var: &'static str) -> Result<Secret, ConfigError> {
    match (vars.optional(var), vars.optional(param_var)) {
        (Some(_), Some(_)) => Err(ConfigError::Other(format!(
            "{var} and {param_var} are both set: set {var} to the value, or {param_var} to the name of an SSM SecureString parameter holding it, not both"
        ))),
        (Some(value), None) => Ok(Secret::Value(value)),
        (None, Some(name)) => Ok(Secret::Parameter(name)),
        (None, None) => Ok(Secret::Unset),
    }
}

/// Resolves the credentials, reading SSM parameters (decrypted) where configured.
pub async fn verifier(config: &Config, ssm: &aws_sdk_ssm::Client) -> Result<Verifier, ConfigError> {
    async fn resolve(
        secret: &Secret,
        ssm: &aws_sdk_ssm::Client,
    ) -> Result<Option<String>, ConfigError> {
        match secret {
            Secret::Unset => Ok(None),
            Secret::Value(value) => Ok(Some(value.clone())),
            Secret::Parameter(name) => {
                let output = ssm
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| {
                        ConfigError::Other(format!(
                            "could not read SSM parameter {name:?}: {}",
                            aws_sdk_ssm::error::DisplayErrorContext(e)
                        ))
                    })?;
                let value = output
                    .parameter()
                    .and_then(|p| p.value())
                    .unwrap_or_default();
                if value.trim().is_empty() {
                    return Err(ConfigError::Other(format!(
                        "SSM parameter {name:?} is empty"
                    )));
                }
                Ok(Some(value.trim().to_owned()))
            }
        }
    }
    let (secret, token) = futures_join(
        resolve(&config.signing_secret, ssm),
        resolve(&config.verification_token, ssm),
    )
    .await;
    let verifier = Verifier::new(secret?, token?);
    if !verifier.is_configured() {
        tracing::error!(
            "neither SLACK_SIGNING_SECRET nor SLACK_VERIFICATION_TOKEN (nor their _PARAM forms) is set: every request will be refused with 401"
        );
    }
    Ok(verifier)
}

async fn futures_join<A, B>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
) -> (A, B) {
    tokio::join!(a, b)
}

/// The handler's state, built once at init.
pub struct Counter {
    verifier: Verifier,
    store: WordStore,
    publisher: Option<Publisher>,
    clock: fn() -> i64,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl Counter {
    pub fn new(verifier: Verifier, store: WordStore, publisher: Option<Publisher>) -> Self {
        Counter {
            verifier,
            store,
            publisher,
            clock: unix_now,
        }
    }

    /// Replaces the clock used for the timestamp check (for tests of old signed examples).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Handles one HTTP request. Every outcome is a response; nothing here panics on input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        let body: &[u8] = request.body().as_ref();
        let verified = match self.verifier.check_signature(
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            body,
            (self.clock)(),
        ) {
            Ok(verified) => verified,
            Err(err) => return refuse(err),
        };
        let parsed = match slack::parse(header("content-type"), body) {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::warn!(error = %err, "bad request");
                return reply(StatusCode::BAD_REQUEST, json!({ "error": err.to_string() }));
            }
        };
        if let Err(err) = self.verifier.check_token(verified, parsed.token.as_deref()) {
            return refuse(err);
        }
        match parsed.kind {
            RequestKind::UrlVerification { challenge } => {
                reply(StatusCode::OK, json!({ "challenge": challenge }))
            }
            RequestKind::Ignored { reason } => {
                tracing::info!(%reason, "acknowledged, not counted");
                reply(StatusCode::OK, json!({ "ok": true }))
            }
            RequestKind::Message(message) => self.count(message).await,
        }
    }

    async fn count(&self, slack: SlackMessage) -> Response<Body> {
        let started = Instant::now();
        let words = tokenize(&slack.text);
        if words.is_empty() {
            tracing::info!(message_id = %slack.message_id, "no words to count");
            return answer(
                slack.source,
                "Nothing to count: send a message with some words in it.".into(),
            );
        }
        let message = WordsMessage {
            schema_version: fanout_words::message::SCHEMA_VERSION,
            message_id: slack.message_id.clone(),
            source: slack.source,
            team_id: slack.team_id,
            channel_id: slack.channel_id,
            user_id: slack.user_id,
            text: slack.text,
            words,
        };
        let deltas: Vec<(String, i64)> = message
            .words
            .iter()
            .map(|(w, n)| (w.to_owned(), n as i64))
            .collect();
        let publish = self.publisher.as_ref().map(|publisher| {
            let message = &message;
            async move { publisher.publish(message).await.map(|_| ()) }
        });
        let key = format!("#count#{}", message.message_id);
        let counts = match apply_once(&self.store, &key, deltas, publish).await {
            Ok(Applied::Fresh(counts)) => Ok(counts),
            Ok(Applied::Resumed {
                counts,
                added_before,
            }) => self.with_current(counts, added_before).await,
            Ok(Applied::Duplicate) => {
                tracing::info!(message_id = %message.message_id, "already counted: a retry or redelivery");
                let words = message.words.iter().map(|(w, _)| w.to_owned()).collect();
                self.with_current(Vec::new(), words).await
            }
            Err(err) => Err(err),
        };
        match counts {
            Ok(counts) => {
                tracing::info!(
                    message_id = %message.message_id,
                    words = message.words.len(),
                    published = self.publisher.is_some(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "counted"
                );
                answer(message.source, reply_text(&message, &counts))
            }
            Err(err) => {
                tracing::error!(message_id = %message.message_id, error = %err, "counting failed; Slack will retry");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "error": format!("the message could not be fully handled and will be retried: {err}") }),
                )
            }
        }
    }

    /// Adds the current counts of `words` (read, not changed) to `counts`.
    async fn with_current(
        &self,
        mut counts: Vec<(String, i64)>,
        words: Vec<String>,
    ) -> Result<Vec<(String, i64)>, ApplyError> {
        if words.is_empty() {
            return Ok(counts);
        }
        let current = self.store.counts(&words).await.map_err(ApplyError::Claim)?;
        counts.extend(words.into_iter().map(|w| {
            let n = current.get(&w).copied().unwrap_or_default();
            (w, n)
        }));
        Ok(counts)
    }
}

/// `word: N, word: N`, in the message's order of first appearance.
fn reply_text(message: &WordsMessage, counts: &[(String, i64)]) -> String {
    let lookup: std::collections::HashMap<&str, i64> =
        counts.iter().map(|(w, n)| (w.as_str(), *n)).collect();
    message
        .words
        .iter()
        .filter_map(|(word, _)| lookup.get(word).map(|n| format!("{word}: {n}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn answer(source: Source, text: String) -> Response<Body> {
    match source {
        Source::SlashCommand => reply(
            StatusCode::OK,
            json!({ "response_type": "in_channel", "text": text }),
        ),
        Source::EventsApi => reply(StatusCode::OK, json!({ "ok": true, "text": text })),
        Source::OutgoingWebhook | Source::PlainText => {
            reply(StatusCode::OK, json!({ "text": text }))
        }
    }
}

fn refuse(err: AuthError) -> Response<Body> {
    match err {
        AuthError::NotConfigured => tracing::error!(error = %err, "refused"),
        _ => tracing::warn!(error = %err, "refused"),
    }
    reply(
        StatusCode::UNAUTHORIZED,
        json!({ "error": err.to_string() }),
    )
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_the_contract_variables() {
        let vars = Vars::from_pairs([
            ("WORDS_TABLE", "words"),
            (
                "WORDS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:words",
            ),
            ("SLACK_SIGNING_SECRET_PARAM", "/fanout/slack/signing-secret"),
        ]);
        let config = Config::from_vars(&vars).unwrap();
        assert_eq!(config.table, "words");
        assert_eq!(
            config.signing_secret,
            Secret::Parameter("/fanout/slack/signing-secret".into())
        );
        assert_eq!(config.verification_token, Secret::Unset);
    }

    #[test]
    fn config_errors_name_the_variable() {
        let err = Config::from_vars(&Vars::from_pairs([])).unwrap_err();
        assert_eq!(err.var(), Some("WORDS_TABLE"));
        let both = Vars::from_pairs([
            ("WORDS_TABLE", "w"),
            ("SLACK_SIGNING_SECRET", "s"),
            ("SLACK_SIGNING_SECRET_PARAM", "/p"),
        ]);
        assert!(Config::from_vars(&both)
            .unwrap_err()
            .to_string()
            .contains("SLACK_SIGNING_SECRET_PARAM"));
    }
}
