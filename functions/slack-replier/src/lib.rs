//! slack-replier: posts each Events API message's counts as a reply in its Slack thread
//! (`chat.postMessage` with a bot token), once per Slack message however often it is
//! delivered (fanout-words-core's `reply` protocol).
//!
//! Takes the words topic's messages (SNS events, or SQS events of SNS notifications or raw
//! messages), like sns-multiplier. Messages from other sources (webhooks, slash commands: the
//! counter answered them inline) carry no thread and are passed over. Without a bot token it
//! posts nothing.

use std::time::Duration;

use fanout_common::events::{Batch, BatchError, Delivery};
use fanout_common::metrics::{names, Metric, Metrics, Tally};
use fanout_common::{ConfigError, Vars};
use fanout_ssm::{SecretError, Secrets};
use fanout_words_core::once::{apply_once, Stage};
use fanout_words_core::reply::{
    counts_text, reply_once, respond_once, Replied, Reply, ReplyClaims, ReplyError, SlackWeb,
};
use fanout_words_core::store::WordCountStore;
use fanout_words_core::WordsMessage;
use serde_json::Value;

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &[
    "WORDS_TABLE",
    "SLACK_BOT_TOKEN",
    "SLACK_BOT_TOKEN_PARAM",
    "SLACK_API_URL",
    "SLACK_REPLY_LEASE_SECONDS",
];

/// The IAM actions this function's code calls (checked against infra/template.yaml).
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:BatchGetItem",
    "ssm:GetParameter",
];

/// How long one attempt holds a reply's claim when `SLACK_REPLY_LEASE_SECONDS` is unset: longer
/// than a post takes, shorter than the queue's visibility timeout, so that the redelivery of
/// an attempt that died can take over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    /// The bot token itself (local runs) …
    pub bot_token: Option<String>,
    /// … or the SSM SecureString parameter that holds it (deployed).
    pub bot_token_param: Option<String>,
    pub api_url: String,
    pub lease: Duration,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let (bot_token, bot_token_param) = (
            vars.optional("SLACK_BOT_TOKEN"),
            vars.optional("SLACK_BOT_TOKEN_PARAM"),
        );
        if bot_token.is_some() && bot_token_param.is_some() {
            return Err(ConfigError::ValueAndParameter {
                var: "SLACK_BOT_TOKEN",
                param_var: "SLACK_BOT_TOKEN_PARAM",
            });
        }
        Ok(Config {
            table: vars.required("WORDS_TABLE", "the name of the DynamoDB words table")?,
            bot_token,
            bot_token_param,
            api_url: vars
                .optional("SLACK_API_URL")
                .unwrap_or_else(|| fanout_slack_web::DEFAULT_API_URL.into()),
            lease: Duration::from_secs(vars.parsed_or(
                "SLACK_REPLY_LEASE_SECONDS",
                DEFAULT_LEASE.as_secs(),
                "a whole number of seconds",
            )?),
        })
    }
}

/// Why the replier could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The bot token, read from SSM where configured; `None` (and a log line) without one.
pub async fn bot_token(config: &Config, secrets: &Secrets) -> Result<Option<String>, SecretError> {
    let token = match (&config.bot_token, &config.bot_token_param) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(name)) => Some(secrets.read(name).await?),
        (None, None) => None,
    };
    if token.is_none() {
        tracing::warn!(
            "neither SLACK_BOT_TOKEN nor SLACK_BOT_TOKEN_PARAM is set: no reply is posted"
        );
    }
    Ok(token)
}

/// The handler's state: the words store (counts and reply claims) and Slack's Web API, or
/// none.
pub struct Replier<S, W> {
    store: S,
    slack: Option<W>,
    lease: Duration,
    /// Whether Events API messages get threaded replies (a bot token is configured).
    threads: bool,
    metrics: Metrics,
}

impl<S, W> Replier<S, W>
where
    S: WordCountStore + ReplyClaims,
    W: SlackWeb,
{
    pub fn new(store: S, slack: Option<W>, lease: Duration) -> Self {
        Replier {
            store,
            slack,
            lease,
            threads: true,
            metrics: Metrics::from_env(env!("CARGO_PKG_NAME")),
        }
    }

    /// Writes each invocation's metrics with `metrics` (by default, to stdout with the
    /// dimensions of the Lambda environment).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Posts no threaded replies (no bot token), only slash commands' late answers (a response
    /// URL needs none).
    pub fn without_threaded_replies(mut self) -> Self {
        self.threads = false;
        self
    }

    /// Handles an SNS or SQS event. Its metrics: `RepliesPosted`, `RepliesRefused` (by Slack,
    /// for good), and `RecordsFailed` (to be delivered again), which are its `Failures`.
    pub async fn handle(&self, batch: Batch) -> Result<Value, BatchError> {
        let (posted, refused, failed) = (&Tally::default(), &Tally::default(), &Tally::default());
        let answer = batch
            .handle(|delivery| async move {
                match self.reply(delivery).await {
                    Ok(Some(Replied::Posted)) => posted.add(1),
                    Ok(Some(Replied::Refused(_))) => refused.add(1),
                    Ok(Some(Replied::AlreadyPosted) | None) => {}
                    Err(err) => {
                        failed.add(1);
                        return Err(err);
                    }
                }
                Ok(())
            })
            .await;
        self.metrics.emit(
            failed.get(),
            &[
                Metric::count(names::RECORDS_FAILED, failed.get()),
                Metric::count(names::REPLIES_POSTED, posted.get()),
                Metric::count(names::REPLIES_REFUSED, refused.get()),
            ],
        );
        answer
    }

    /// Replies to one message: what became of its post, `None` when it gets none. A message
    /// that can never be replied to is logged and handled; a transient failure is an error, for
    /// the message to be delivered again.
    pub async fn reply(&self, delivery: Delivery) -> Result<Option<Replied>, ReplyError> {
        let message = match WordsMessage::from_delivery(
            &delivery.body,
            delivery.id.as_deref(),
            delivery.sender.as_deref(),
        ) {
            Ok(message) => message,
            Err(err) => {
                tracing::error!(error = %err, "an unreadable message: no reply");
                return Ok(None);
            }
        };
        if let Some(response_url) = &message.response_url {
            return self.finish_command(&message, response_url).await;
        }
        let (Some(slack), Some(channel), Some(thread_ts), true) = (
            &self.slack,
            &message.channel_id,
            &message.thread_ts,
            self.threads,
        ) else {
            return Ok(None);
        };
        let text = match &message.answer {
            // A command said in a mention: its answer, computed by slack-counter.
            Some(answer) => answer.clone(),
            None => {
                let words: Vec<String> = message.words.iter().map(|(w, _)| w.to_owned()).collect();
                let counts = self.store.counts(&words).await?;
                if counts.is_empty() {
                    tracing::warn!(message_id = %message.message_id, "none of its words has a count (a table emptied since?): no reply");
                    return Ok(None);
                }
                counts_text(words.iter().map(String::as_str), &counts)
            }
        };
        let reply = Reply {
            message_id: message.message_id.clone(),
            channel: channel.clone(),
            thread_ts: thread_ts.clone(),
            text,
        };
        let message_id = &reply.message_id;
        let replied = reply_once(&self.store, slack, &reply, self.lease, tokio::time::sleep).await;
        match &replied {
            Ok(Replied::Posted) => tracing::info!(%message_id, "replied in the thread"),
            Ok(Replied::AlreadyPosted) => {
                tracing::info!(%message_id, "already replied: a redelivery")
            }
            Ok(Replied::Refused(code)) => {
                tracing::error!(%message_id, slack_error = %code, "Slack refused the reply for good; it is not tried again")
            }
            Err(err) => {
                tracing::warn!(%message_id, error = %err, "not replied yet; it will be retried")
            }
        }
        replied.map(Some)
    }
}

impl<S, W> Replier<S, W>
where
    S: WordCountStore + ReplyClaims,
    W: SlackWeb,
{
    /// A slash command slack-counter handed over: its counting finished (once: the counter's
    /// own claims), then the counts posted to its `response_url`. Needs no bot token.
    async fn finish_command(
        &self,
        message: &WordsMessage,
        response_url: &str,
    ) -> Result<Option<Replied>, ReplyError> {
        let message_id = &message.message_id;
        let deltas = match message.deltas(1) {
            Ok(deltas) => deltas,
            Err(invalid) => {
                // Not a message slack-counter makes: nothing is counted, and no URL is trusted.
                tracing::error!(%message_id, error = %invalid, "an invalid handed-over command: not counted, not answered");
                return Ok(None);
            }
        };
        apply_once(&self.store, Stage::Count, message_id, &deltas).await?;
        let words: Vec<String> = deltas.into_iter().map(|(w, _)| w).collect();
        let counts = self.store.counts(&words).await?;
        let mut text = counts_text(words.iter().map(String::as_str), &counts);
        if text.is_empty() {
            text = "Nothing to count: send some words.".into();
        }
        let Some(slack) = &self.slack else {
            tracing::warn!(%message_id, "counted; no Web API client to post the answer with");
            return Ok(None);
        };
        let replied = respond_once(
            &self.store,
            slack,
            message_id,
            response_url,
            &text,
            self.lease,
            tokio::time::sleep,
        )
        .await;
        match &replied {
            Ok(Replied::Refused(code)) => {
                tracing::error!(%message_id, slack_error = %code, "Slack refused the command's answer for good")
            }
            Ok(_) => tracing::info!(%message_id, "counted a handed-over command and answered it"),
            Err(err) => {
                tracing::warn!(%message_id, error = %err, "not answered yet; it will be retried")
            }
        }
        replied.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_words_core::memory::{MemorySlack, MemoryWords};

    #[test]
    fn config_reads_the_contract_variables() {
        let config = Config::from_vars(&Vars::from_pairs([("WORDS_TABLE", "words")])).unwrap();
        assert_eq!(config.api_url, "https://slack.com/api/");
        assert_eq!((config.bot_token, config.bot_token_param), (None, None));
        assert_eq!(config.lease, DEFAULT_LEASE);
        let config = Config::from_vars(&Vars::from_pairs([
            ("WORDS_TABLE", "words"),
            ("SLACK_BOT_TOKEN_PARAM", "/fanout/slack/bot-token"),
            ("SLACK_API_URL", "http://127.0.0.1:9/api"),
            ("SLACK_REPLY_LEASE_SECONDS", "2"),
        ]))
        .unwrap();
        assert_eq!(
            config.bot_token_param.as_deref(),
            Some("/fanout/slack/bot-token")
        );
        assert_eq!(config.lease, Duration::from_secs(2));
        let both = Config::from_vars(&Vars::from_pairs([
            ("WORDS_TABLE", "words"),
            ("SLACK_BOT_TOKEN", "xoxb-1"),
            ("SLACK_BOT_TOKEN_PARAM", "/p"),
        ]));
        assert_eq!(both.unwrap_err().var(), Some("SLACK_BOT_TOKEN"));
    }

    fn delivery(body: &str) -> Delivery {
        Delivery {
            body: body.into(),
            id: Some("sns-1".into()),
            sender: None,
            receive_count: None,
        }
    }

    #[tokio::test]
    async fn each_invocation_emits_its_metrics_and_failed_records_are_failures() {
        let sample: Batch =
            serde_json::from_str(include_str!("../../../events/slack-replier-sqs.json")).unwrap();
        let words = MemoryWords::new();
        let counted = [
            ("awsadvent".into(), 1),
            ("some".into(), 1),
            ("words".into(), 1),
        ];
        words
            .apply_chunk(
                "#count#T0001:C2147483705:1481660433.000300#0",
                &counted,
                DEFAULT_LEASE,
            )
            .await
            .unwrap();
        let (metrics, captured) = Metrics::captured("slack-replier");
        let replier =
            Replier::new(words, Some(MemorySlack::new()), DEFAULT_LEASE).with_metrics(metrics);
        let emitted = || {
            captured.take_counts([
                "Failures",
                "RecordsFailed",
                "RepliesPosted",
                "RepliesRefused",
            ])
        };
        let answer = replier.handle(sample.clone()).await.unwrap();
        assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
        assert_eq!(emitted(), [0, 0, 1, 0], "posted");
        replier.handle(sample.clone()).await.unwrap();
        assert_eq!(emitted(), [0, 0, 0, 0], "a redelivery: posted before");

        let (metrics, captured) = Metrics::captured("slack-replier");
        let replier = Replier::new(MemoryWords::new(), Some(MemorySlack::new()), DEFAULT_LEASE)
            .with_metrics(metrics);
        replier
            .store
            .fail("counts", 1, fanout_words_core::memory::Fault::Before);
        let answer = replier.handle(sample).await.unwrap();
        assert_eq!(answer["batchItemFailures"].as_array().unwrap().len(), 1);
        assert_eq!(captured.take_counts(["Failures", "RecordsFailed"]), [1, 1]);
    }

    #[tokio::test]
    async fn only_events_api_messages_are_replied_to_and_bad_ones_are_not_retried() {
        let words = MemoryWords::new();
        // The counter counted the words before it published the message.
        words
            .apply_chunk("#count#T1:C1:1.0#0", &[("hi".into(), 2)], DEFAULT_LEASE)
            .await
            .unwrap();
        let replier = Replier::new(words, Some(MemorySlack::new()), DEFAULT_LEASE);
        let events = r#"{"schema_version":1,"message_id":"T1:C1:1.0","source":"events_api","team_id":"T1","channel_id":"C1","user_id":"U1","text":"hi hi","words":{"hi":2},"thread_ts":"1.0"}"#;
        let webhook = r#"{"schema_version":1,"message_id":"T1:C1:2.0","source":"outgoing_webhook","team_id":"T1","channel_id":"C1","user_id":"U1","text":"hi","words":{"hi":1}}"#;
        for body in [events, events, webhook, "{\"schema_version\": 1, \"oops\""] {
            replier.reply(delivery(body)).await.unwrap();
        }
        let posts = replier.slack.as_ref().unwrap().posts();
        assert_eq!(posts.len(), 1);
        assert_eq!(
            (posts[0].channel.as_str(), posts[0].thread_ts.as_str()),
            ("C1", "1.0")
        );
    }
}
