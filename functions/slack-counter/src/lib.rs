//! slack-counter: verifies a Slack request, counts each word of its message in DynamoDB with
//! atomic adds, replies with the new counts, and publishes the message to SNS.
//!
//! Takes every event shape lambda_http supports: API Gateway REST (v1) and HTTP (v2) APIs, ALB
//! targets and Function URLs; base64-encoded bodies are decoded by lambda_http before the
//! signature is checked, so the signature covers the decoded bytes.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use fanout_common::{ConfigError, Vars};
use fanout_ssm::{SecretError, Secrets};
use fanout_words_core::count::{count_message, CountOutcome};
use fanout_words_core::slack::{self, AuthError, RequestKind, SlackMessage, Verifier};
use fanout_words_core::store::{ClaimStore, Publish, WordCountStore};
use fanout_words_core::Source;
use lambda_http::http::StatusCode;
use lambda_http::{Body, IntoResponse, Request, Response};
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
        (Some(_), Some(_)) => Err(ConfigError::ValueAndParameter { var, param_var }),
        (Some(value), None) => Ok(Secret::Value(value)),
        (None, Some(name)) => Ok(Secret::Parameter(name)),
        (None, None) => Ok(Secret::Unset),
    }
}

/// Why the counter could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Resolves the credentials, reading SSM parameters (decrypted) where configured.
pub async fn verifier(config: &Config, secrets: &Secrets) -> Result<Verifier, SecretError> {
    async fn resolve(secret: &Secret, secrets: &Secrets) -> Result<Option<String>, SecretError> {
        match secret {
            Secret::Unset => Ok(None),
            Secret::Value(value) => Ok(Some(value.clone())),
            Secret::Parameter(name) => secrets.read(name).await.map(Some),
        }
    }
    let (secret, token) = tokio::join!(
        resolve(&config.signing_secret, secrets),
        resolve(&config.verification_token, secrets),
    );
    let verifier = Verifier::new(secret?, token?);
    if !verifier.is_configured() {
        tracing::error!(
            "neither SLACK_SIGNING_SECRET nor SLACK_VERIFICATION_TOKEN (nor their _PARAM forms) is set: every request will be refused with 401"
        );
    }
    Ok(verifier)
}

/// The handler's state, built once at init: the store and publisher are the DynamoDB and SNS
/// adapters when deployed, in-memory ones in tests.
pub struct Counter<S, P> {
    verifier: Verifier,
    store: S,
    publisher: P,
    clock: fn() -> i64,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl<S, P> Counter<S, P>
where
    S: WordCountStore + ClaimStore,
    P: Publish,
{
    pub fn new(verifier: Verifier, store: S, publisher: P) -> Self {
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
        self.respond(request).await.into_response().await
    }

    async fn respond(&self, request: Request) -> Reply {
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

    async fn count(&self, slack: SlackMessage) -> Reply {
        let started = Instant::now();
        let (message_id, source) = (slack.message_id.clone(), slack.source);
        match count_message(&self.store, &self.publisher, slack).await {
            Ok(CountOutcome::NoWords) => {
                tracing::info!(%message_id, "no words to count");
                answer(
                    source,
                    "Nothing to count: send a message with some words in it.".into(),
                )
            }
            Ok(CountOutcome::Counted(counted)) => {
                if counted.repeat {
                    tracing::info!(%message_id, "already counted: a retry or redelivery");
                }
                tracing::info!(
                    %message_id,
                    words = counted.message.words.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "counted"
                );
                answer(source, counted.reply_text())
            }
            Err(err) => {
                tracing::error!(%message_id, error = %err, class = "transient", "counting failed; Slack will retry");
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "error": format!("the message could not be fully handled and will be retried: {err}") }),
                )
            }
        }
    }
}

/// A status and a JSON body: lambda_http turns it into a response.
type Reply = (StatusCode, serde_json::Value);

fn answer(source: Source, text: String) -> Reply {
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

fn refuse(err: AuthError) -> Reply {
    match err {
        AuthError::NotConfigured => tracing::error!(error = %err, "refused"),
        _ => tracing::warn!(error = %err, "refused"),
    }
    reply(
        StatusCode::UNAUTHORIZED,
        json!({ "error": err.to_string() }),
    )
}

fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    (status, body)
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
