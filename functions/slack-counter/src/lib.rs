//! slack-counter: verifies a Slack request, counts each word of its message in DynamoDB with
//! atomic adds, replies with the new counts, and publishes the message to SNS.
//!
//! Takes every event shape lambda_http supports: API Gateway REST (v1) and HTTP (v2) APIs, ALB
//! targets and Function URLs; base64-encoded bodies are decoded by lambda_http before the
//! signature is checked, so the signature covers the decoded bytes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fanout_common::metrics::{names, Metric, Metrics};
use fanout_common::{ConfigError, Vars};
use fanout_ssm::{SecretError, Secrets};
use fanout_words_core::command::{self, Command};
use fanout_words_core::count::CountError;
use fanout_words_core::count::{count_message, CountOutcome};
use fanout_words_core::failure::FailureClass;
use fanout_words_core::slack::{self, AuthError, ParseError, RequestKind, SlackMessage, Verifier};
use fanout_words_core::store::{Leaderboard, Publish, StoreError, WordCountStore};
use fanout_words_core::Source;
use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &[
    "WORDS_TABLE",
    "WORDS_TOPIC_ARN",
    "SLACK_SIGNING_SECRET",
    "SLACK_VERIFICATION_TOKEN",
    "SLACK_SIGNING_SECRET_PARAM",
    "SLACK_VERIFICATION_TOKEN_PARAM",
    "SLACK_ACCEPT_UNSIGNED_WITH_TOKEN",
    "SLACK_COMMAND_DEADLINE_MS",
];

/// The IAM actions this function's code calls (checked against infra/template.yaml). Publishing
/// to the KMS-encrypted topic also needs `kms:GenerateDataKey`/`kms:Decrypt` on its key, which
/// the template grants beside these.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
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
    /// `SLACK_ACCEPT_UNSIGNED_WITH_TOKEN`: with both credentials, a request with no signature
    /// headers (a legacy outgoing webhook) is checked by its token. `false` unless set.
    pub accept_unsigned_with_token: bool,
    /// `SLACK_COMMAND_DEADLINE_MS`: how long a slash command's counting may take before it is
    /// handed to slack-replier (with a topic). Slack waits 3 s.
    pub command_deadline: Duration,
}

/// The slash-command deadline when `SLACK_COMMAND_DEADLINE_MS` is unset: Slack waits 3 s for an
/// answer, and the answer itself needs time to travel.
pub const DEFAULT_COMMAND_DEADLINE: Duration = Duration::from_millis(2500);

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
            accept_unsigned_with_token: vars.parsed_or(
                "SLACK_ACCEPT_UNSIGNED_WITH_TOKEN",
                false,
                "true or false",
            )?,
            command_deadline: Duration::from_millis(vars.parsed_or(
                "SLACK_COMMAND_DEADLINE_MS",
                u64::try_from(DEFAULT_COMMAND_DEADLINE.as_millis()).unwrap_or(2500),
                "a whole number of milliseconds",
            )?),
        })
        .and_then(|config| {
            if config.accept_unsigned_with_token && config.verification_token == Secret::Unset {
                return Err(ConfigError::Invalid {
                    var: "SLACK_ACCEPT_UNSIGNED_WITH_TOKEN",
                    value: "true".into(),
                    reason: "there is no verification token to check unsigned requests with".into(),
                    expected: "false, or SLACK_VERIFICATION_TOKEN (or its _PARAM form) set too",
                });
            }
            Ok(config)
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
    let verifier = Verifier::new(secret?, token?)
        .accepting_unsigned_with_token(config.accept_unsigned_with_token);
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
    /// How long a slash command's counting may take before it is handed to slack-replier
    /// through the topic; `None`: never handed over (no topic).
    command_deadline: Option<Duration>,
    metrics: Metrics,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl<S, P> Counter<S, P>
where
    S: WordCountStore + Leaderboard,
    P: Publish,
{
    pub fn new(verifier: Verifier, store: S, publisher: P) -> Self {
        Counter {
            verifier,
            store,
            publisher,
            clock: unix_now,
            command_deadline: None,
            metrics: Metrics::from_env(env!("CARGO_PKG_NAME")),
        }
    }

    /// Writes each request's metrics with `metrics` (by default, to stdout with the dimensions
    /// of the Lambda environment).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Hands a slash command's counting to slack-replier (through the topic, with its
    /// `response_url`) when it takes longer than `deadline`, or fails for a moment: Slack shows
    /// an error for an answer slower than 3 seconds. Only with a topic to publish to.
    pub fn with_command_deadline(mut self, deadline: Duration) -> Self {
        self.command_deadline = Some(deadline);
        self
    }

    /// Replaces the clock used for the timestamp check (for tests of old signed examples).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Handles one HTTP request. Every outcome is a response; nothing here panics on input.
    /// Its metrics: `MessagesCounted`, `RequestsRefused` (a 4xx), `ServerErrors` (a 5xx), which
    /// are its `Failures`.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let reply = self.respond(request).await;
        let server_errors = u64::from(reply.status.is_server_error());
        self.metrics.emit(
            server_errors,
            &[
                Metric::count(names::MESSAGES_COUNTED, u64::from(reply.counted)),
                Metric::count(
                    names::REQUESTS_REFUSED,
                    u64::from(reply.status.is_client_error()),
                ),
                Metric::count(names::SERVER_ERRORS, server_errors),
            ],
        );
        reply.into_response()
    }

    async fn respond(&self, request: Request) -> Reply {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        let body: &[u8] = request.body().as_ref();
        // Slack checks a slash command's certificate with an unsigned `ssl_check=1`: answered
        // with 200 and nothing else, as Slack's own SDKs do; nothing is read or acted on.
        if slack::is_ssl_check(header("content-type"), body) {
            return Reply::empty();
        }
        // Parsed first only so that a refusal's log names the message it claims to be; nothing
        // is acted on before the request is verified.
        let parsed = slack::parse(header("content-type"), body);
        let claimed = parsed.as_ref().ok().and_then(|p| p.message_id());
        // A header that is there but not text counts as there: such a request is checked by
        // its signature (and fails), never by a token.
        let signed_header = |name: &str| {
            header(name).or_else(|| request.headers().contains_key(name).then_some(""))
        };
        let verified = match self.verifier.check_signature(
            signed_header("x-slack-request-timestamp"),
            signed_header("x-slack-signature"),
            body,
            (self.clock)(),
        ) {
            Ok(verified) => verified,
            Err(err) => return fail(Failure::Refused(err), claimed),
        };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(err) => return fail(Failure::BadRequest(err), None),
        };
        if let Err(err) = self.verifier.check_token(verified, parsed.token.as_deref()) {
            return fail(Failure::Refused(err), parsed.message_id());
        }
        // (An ignored request does nothing, signed or not.)
        let form = match &parsed.kind {
            RequestKind::Message(m) => {
                matches!(m.source, Source::OutgoingWebhook | Source::SlashCommand)
            }
            RequestKind::Ignored { .. } => true,
            RequestKind::UrlVerification { .. } => false,
        };
        if verified == slack::Verified::UnsignedForm && !form {
            return fail(
                Failure::Refused(AuthError::UnsignedJson),
                parsed.message_id(),
            );
        }
        match parsed.kind {
            RequestKind::UrlVerification { challenge } => {
                Reply::ok(json!({ "challenge": challenge }))
            }
            RequestKind::Ignored { reason } => {
                tracing::info!(%reason, "acknowledged, not counted");
                Reply::ok(json!({ "ok": true }))
            }
            RequestKind::Message(message) if message.addressed => {
                match command::parse(&message.text) {
                    Command::Text => self.count(message).await,
                    command => self.command(command, &message).await,
                }
            }
            RequestKind::Message(message) => self.count(message).await,
        }
    }

    /// A command that could not be answered: to a slash command's user, a sorry; else the
    /// failure's status.
    fn not_answered(&self, err: StoreError, message: &SlackMessage) -> Reply {
        let reply = fail(Failure::NotAnswered(err), Some(&message.message_id));
        if message.source == Source::SlashCommand {
            ephemeral("Sorry, that could not be answered just now. Please try again in a moment.")
        } else {
            reply
        }
    }

    /// Answers a command said to the app: ephemeral to a slash command's user; as the counts
    /// are, to an app mention.
    async fn command(&self, command: Command, message: &SlackMessage) -> Reply {
        let text = match command {
            Command::Top { n, all } => {
                let skip: fn(&str) -> bool = if all {
                    |_| false
                } else {
                    command::is_stop_word
                };
                match self.store.top(n, skip).await {
                    Ok(entries) => command::top_text(&entries, all),
                    Err(err) => return self.not_answered(err, message),
                }
            }
            Command::Count(words) => match self.store.counts(&words).await {
                Ok(counts) => command::count_text(&words, &counts),
                Err(err) => return self.not_answered(err, message),
            },
            Command::Help => command::help_text(),
            Command::Usage(usage) => usage,
            Command::Text => unreachable!("text is counted, not answered"),
        };
        tracing::info!(message_id = %message.message_id, "answered a command");
        match message.source {
            Source::SlashCommand => ephemeral(&text),
            // Slack ignores an Events API answer's body: the answer goes to the thread, posted
            // by slack-replier, as the counts of a message are.
            Source::EventsApi => {
                let mut published = fanout_words_core::WordsMessage::from_slack(
                    message.clone(),
                    fanout_words_core::WordCounts::default(),
                );
                published.answer = Some(text.clone());
                match self.publisher.publish(&published).await {
                    Ok(()) => answer(Source::EventsApi, text),
                    Err(err) => fail(
                        Failure::NotCounted(CountError::Publish(err)),
                        Some(&message.message_id),
                    ),
                }
            }
            source => answer(source, text),
        }
    }

    async fn count(&self, slack: SlackMessage) -> Reply {
        let started = Instant::now();
        let (message_id, source) = (slack.message_id.clone(), slack.source);
        let deadline = self
            .command_deadline
            .filter(|_| source == Source::SlashCommand && slack.response_url.is_some());
        let counted = match deadline {
            None => count_message(&self.store, &self.publisher, slack).await,
            Some(deadline) => {
                let handed_over = slack.clone();
                match tokio::time::timeout(
                    deadline,
                    count_message(&self.store, &self.publisher, slack),
                )
                .await
                {
                    Ok(Err(err)) if err.transient() => {
                        tracing::warn!(%message_id, error = %err, "a slash command failed for a moment: handed to slack-replier");
                        return self.hand_over(handed_over).await;
                    }
                    Ok(counted) => counted,
                    Err(_) => {
                        tracing::info!(%message_id, deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX), "a slash command took too long: handed to slack-replier");
                        return self.hand_over(handed_over).await;
                    }
                }
            }
        };
        match counted {
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
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "counted"
                );
                Reply {
                    counted: !counted.repeat,
                    ..answer(source, counted.reply_text())
                }
            }
            Err(err) if source == Source::SlashCommand => {
                let _logged = fail(Failure::NotCounted(err), Some(&message_id));
                ephemeral("Sorry, your words could not be counted just now. Please try again in a moment.")
            }
            Err(err) => fail(Failure::NotCounted(err), Some(&message_id)),
        }
    }

    /// Publishes the slash command with its `response_url`, for slack-replier to finish the
    /// counting (once: the same claims) and post the counts there; answers at once.
    async fn hand_over(&self, slack: SlackMessage) -> Reply {
        let message_id = slack.message_id.clone();
        let response_url = slack.response_url.clone();
        let words = fanout_words_core::tokenize(&slack.text);
        let mut message = fanout_words_core::WordsMessage::from_slack(slack, words);
        message.response_url = response_url;
        match self.publisher.publish(&message).await {
            Ok(()) => ephemeral("Counting… the counts will follow here in a moment."),
            Err(err) => {
                tracing::error!(%message_id, error = %err, "a slash command could not be handed over");
                ephemeral("Sorry, your words could not be counted just now. Please try again in a moment.")
            }
        }
    }
}

/// Why a request was not handled.
#[derive(Debug)]
enum Failure {
    /// Unauthenticated: 401.
    Refused(AuthError),
    /// Not a Slack request this counter can read: 400.
    BadRequest(ParseError),
    /// Counting or publishing failed after the adapters' retries. What was counted stays
    /// counted, once: Slack's retry finishes the job (503), unless it never can (422).
    NotCounted(CountError),
    /// A command's answer could not be read (503 when it may work later, else 422).
    NotAnswered(StoreError),
}

impl Failure {
    fn class(&self) -> FailureClass {
        match self {
            // The same request fails the same way every time.
            Failure::Refused(_) | Failure::BadRequest(_) => FailureClass::Permanent,
            Failure::NotCounted(err) if err.transient() => FailureClass::Transient,
            Failure::NotCounted(_) => FailureClass::Permanent,
            Failure::NotAnswered(err) if err.transient => FailureClass::Transient,
            Failure::NotAnswered(_) => FailureClass::Permanent,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Failure::Refused(_) => StatusCode::UNAUTHORIZED,
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::NotCounted(err) if err.transient() => StatusCode::SERVICE_UNAVAILABLE,
            Failure::NotCounted(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::NotAnswered(err) if err.transient => StatusCode::SERVICE_UNAVAILABLE,
            Failure::NotAnswered(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn answer(&self) -> String {
        match self {
            Failure::Refused(err) => err.to_string(),
            Failure::BadRequest(err) => err.to_string(),
            Failure::NotCounted(err) if err.transient() => {
                format!("the message could not be fully handled and will be retried: {err}")
            }
            Failure::NotCounted(err) => format!("the message can never be counted: {err}"),
            Failure::NotAnswered(err) => format!("the command could not be answered: {err}"),
        }
    }

    /// The body's error: a refusal's reason goes to the log only, so that a forger learns
    /// nothing from the answer.
    fn public_answer(&self) -> String {
        match self {
            Failure::Refused(_) => REFUSED.into(),
            other => other.answer(),
        }
    }
}

/// Answers a failure: a permanent one so that Slack does not retry it (a 4xx with
/// `X-Slack-No-Retry: 1`), a transient one with 503, which Slack retries. One log event each,
/// with the message id (empty when the request names none) and the class.
fn fail(failure: Failure, message_id: Option<&str>) -> Reply {
    let (class, status) = (failure.class(), failure.status());
    let message_id = message_id.unwrap_or_default();
    let error = failure.answer();
    let public = failure.public_answer();
    match failure {
        Failure::Refused(AuthError::NotConfigured)
        | Failure::NotCounted(_)
        | Failure::NotAnswered(_) => {
            tracing::error!(message_id, class = class.as_str(), status = status.as_u16(), %error, "not handled")
        }
        Failure::Refused(_) | Failure::BadRequest(_) => {
            tracing::warn!(message_id, class = class.as_str(), status = status.as_u16(), %error, "not handled")
        }
    }
    Reply {
        status,
        body: json!({ "error": public }),
        no_retry: class == FailureClass::Permanent,
        counted: false,
    }
}

/// The body of every refused request (401).
pub const REFUSED: &str = "invalid request";

/// A status and a JSON body, whether Slack is asked not to retry, and whether the request's
/// message was counted now (not before, by a delivery this one repeats).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
    no_retry: bool,
    counted: bool,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
            no_retry: false,
            counted: false,
        }
    }

    /// 200 with an empty body.
    fn empty() -> Reply {
        Reply::ok(Value::Null)
    }

    fn into_response(self) -> Response<Body> {
        let mut response = Response::builder()
            .status(self.status)
            .header(CONTENT_TYPE, "application/json");
        if self.no_retry {
            response = response.header(NO_RETRY_HEADER, "1");
        }
        let body = match self.body {
            Value::Null => Body::Empty,
            body => Body::Text(body.to_string()),
        };
        response
            .body(body)
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

/// An answer only the slash command's user sees.
fn ephemeral(text: &str) -> Reply {
    Reply::ok(json!({ "response_type": "ephemeral", "text": text }))
}

/// The header that tells Slack not to retry a request.
pub const NO_RETRY_HEADER: &str = "x-slack-no-retry";

fn answer(source: Source, text: String) -> Reply {
    Reply::ok(match source {
        Source::SlashCommand => json!({ "response_type": "in_channel", "text": text }),
        Source::EventsApi => json!({ "ok": true, "text": text }),
        Source::OutgoingWebhook | Source::PlainText => json!({ "text": text }),
    })
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
        assert!(!config.accept_unsigned_with_token);
    }

    #[test]
    fn unsigned_requests_are_accepted_with_the_token_only_when_asked_and_with_a_token() {
        let base = [("WORDS_TABLE", "words"), ("SLACK_SIGNING_SECRET", "secret")];
        let read = |extra: &[(&'static str, &'static str)]| {
            Config::from_vars(&Vars::from_pairs(base.iter().chain(extra).copied()))
        };
        let with_token = [
            ("SLACK_VERIFICATION_TOKEN", "tok"),
            ("SLACK_ACCEPT_UNSIGNED_WITH_TOKEN", "true"),
        ];
        assert!(read(&with_token).unwrap().accept_unsigned_with_token);
        let err = read(&[("SLACK_ACCEPT_UNSIGNED_WITH_TOKEN", "true")]).unwrap_err();
        assert_eq!(err.var(), Some("SLACK_ACCEPT_UNSIGNED_WITH_TOKEN"));
        assert!(err.to_string().contains("no verification token"), "{err}");
        let err = read(&[("SLACK_ACCEPT_UNSIGNED_WITH_TOKEN", "yes")]).unwrap_err();
        assert!(err.to_string().contains("true or false"), "{err}");
        let off = read(&[
            ("SLACK_VERIFICATION_TOKEN", "tok"),
            ("SLACK_ACCEPT_UNSIGNED_WITH_TOKEN", "false"),
        ]);
        assert!(!off.unwrap().accept_unsigned_with_token);
    }

    use fanout_words_core::memory::{Fault, MemoryPublisher, MemoryWords};
    use fanout_words_core::store::StoreError;

    fn counter() -> Counter<MemoryWords, MemoryPublisher> {
        Counter::new(
            Verifier::new(None, Some("tok".into())),
            MemoryWords::new(),
            MemoryPublisher::new(),
        )
        .with_metrics(Metrics::captured("slack-counter").0)
    }

    fn form(body: &str) -> Request {
        lambda_http::http::Request::builder()
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    const WEBHOOK: &str =
        "token=tok&team_id=T1&channel_id=C1&timestamp=1.0&text=hello+there&trigger_word=hello";

    #[tokio::test]
    async fn permanent_failures_ask_slack_not_to_retry() {
        let counter = counter();
        for (request, status) in [
            (form(&WEBHOOK.replace("tok", "forged")), 401),
            (form("hello=world"), 400),
            (form("token=tok&command=%2Fcount&text=hi"), 400),
        ] {
            let response = counter.handle(request).await;
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[NO_RETRY_HEADER], "1");
            assert_eq!(response.headers()["content-type"], "application/json");
        }
        assert!(counter.store.calls().is_empty(), "nothing was touched");
    }

    fn slash(text: &str) -> Request {
        form(&format!(
            "token=tok&team_id=T1&channel_id=C1&command=%2Fwordcount&text={text}&trigger_id=9.9.9&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F9%2Fx"
        ))
    }

    async fn body_of(response: Response<Body>) -> Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[tokio::test]
    async fn a_slash_command_failing_for_a_moment_is_handed_over() {
        // (Past its deadline: tests/tests/replies.rs, where the store takes time to answer.)
        {
            let counter = counter().with_command_deadline(Duration::from_secs(60));
            counter.store.fail("apply_chunk", 1, Fault::Before);
            let answer = body_of(counter.handle(slash("hello+there")).await).await;
            assert_eq!(answer["response_type"], "ephemeral", "{answer}");
            assert!(answer["text"].as_str().unwrap().starts_with("Counting"));
            let published = counter.publisher.published();
            assert_eq!(published.len(), 1);
            assert_eq!(
                published[0].response_url.as_deref(),
                Some("https://hooks.slack.com/commands/T1/9/x")
            );
        }
        // Without a deadline (no topic to hand over to), a failure is a sorry to its user.
        let plain = counter();
        plain.store.fail("apply_chunk", 1, Fault::Before);
        let response = plain.handle(slash("hello")).await;
        assert_eq!(response.status(), StatusCode::OK);
        let answer = body_of(response).await;
        assert_eq!(answer["response_type"], "ephemeral");
        assert!(
            answer["text"].as_str().unwrap().starts_with("Sorry"),
            "{answer}"
        );
        // In time, the counts, to the channel, as ever.
        let in_time = counter().with_command_deadline(Duration::from_secs(60));
        let answer = body_of(in_time.handle(slash("hello")).await).await;
        assert_eq!(
            answer,
            json!({"response_type": "in_channel", "text": "hello: 1"})
        );
    }

    #[tokio::test]
    async fn unsigned_requests_with_the_token_are_accepted_only_as_forms() {
        let counter = Counter::new(
            Verifier::new(Some("secret".into()), Some("tok".into()))
                .accepting_unsigned_with_token(true),
            MemoryWords::new(),
            MemoryPublisher::new(),
        )
        .with_metrics(Metrics::captured("slack-counter").0);
        assert_eq!(counter.handle(form(WEBHOOK)).await.status(), StatusCode::OK);
        let event = r#"{"token":"tok","type":"event_callback","team_id":"T1","event":{"type":"message","user":"U1","channel":"C1","text":"forged words","ts":"7.0"}}"#;
        let json = |headers: &[(&str, &[u8])]| {
            let mut request =
                lambda_http::http::Request::builder().header("content-type", "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.body(Body::from(event)).unwrap()
        };
        for request in [
            json(&[]),
            // A header that is not text is a header: checked by signature, and refused.
            json(&[
                ("x-slack-signature", b"v0=\xff"),
                ("x-slack-request-timestamp", b"1"),
            ]),
            json(&[("x-slack-signature", b"v0=\xff")]),
        ] {
            let response = counter.handle(request).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(counter.store.count("forged"), None);
    }

    #[tokio::test]
    async fn transient_failures_are_503_and_retried() {
        let counter = counter();
        counter.store.fail("apply_chunk", 1, Fault::Before);
        let response = counter.handle(form(WEBHOOK)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(NO_RETRY_HEADER).is_none());
        let retry = counter.handle(form(WEBHOOK)).await;
        assert_eq!(retry.status(), StatusCode::OK);
        assert!(retry.headers().get(NO_RETRY_HEADER).is_none());
        assert_eq!(counter.store.count("hello"), Some(1));
    }

    #[tokio::test]
    async fn each_request_emits_its_metrics_and_a_5xx_is_a_failure() {
        let (metrics, captured) = Metrics::captured("slack-counter");
        let sample = || {
            lambda_http::request::from_str(include_str!(
                "../../../events/slack-counter-apigw-rest-webhook.json"
            ))
            .unwrap()
        };
        let local = Counter::new(
            Verifier::new(None, Some("local-verification-token".into())),
            MemoryWords::new(),
            MemoryPublisher::new(),
        )
        .with_metrics(metrics.clone());
        let counter = counter().with_metrics(metrics);
        let emitted = || {
            captured.take_counts([
                "Failures",
                "MessagesCounted",
                "RequestsRefused",
                "ServerErrors",
            ])
        };
        assert_eq!(local.handle(sample()).await.status(), StatusCode::OK);
        assert_eq!(emitted(), [0, 1, 0, 0], "counted");
        assert_eq!(local.handle(sample()).await.status(), StatusCode::OK);
        assert_eq!(emitted(), [0, 0, 0, 0], "a retry: counted before");
        for refused in [form(&WEBHOOK.replace("tok", "forged")), form("hello=world")] {
            assert!(counter.handle(refused).await.status().is_client_error());
            assert_eq!(emitted(), [0, 0, 1, 0], "refused");
        }
        counter.store.fail("apply_chunk", 1, Fault::Before);
        let failed = counter.handle(form(WEBHOOK)).await;
        assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(emitted(), [1, 0, 0, 1], "a 5xx is the counter's failure");
    }

    #[test]
    fn every_failure_has_a_class_and_a_status() {
        let refused = Failure::Refused(AuthError::BadSignature);
        let bad = Failure::BadRequest(ParseError::NoMessageId);
        let store_error = |transient| StoreError {
            operation: "DynamoDB TransactWriteItems",
            store: "table words".into(),
            transient,
            detail: "x".into(),
        };
        let failed = Failure::NotCounted(CountError::Read(store_error(true)));
        let never = Failure::NotCounted(CountError::Read(store_error(false)));
        assert_eq!(
            (never.class(), never.status()),
            (FailureClass::Permanent, StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(
            (refused.class(), refused.status()),
            (FailureClass::Permanent, StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            (bad.class(), bad.status()),
            (FailureClass::Permanent, StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            (failed.class(), failed.status()),
            (FailureClass::Transient, StatusCode::SERVICE_UNAVAILABLE)
        );
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
