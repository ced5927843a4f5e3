//! What the stack prints for a person: how to use it once it runs (`fanout-local up`), and the
//! plan it derives from the template (`fanout-local plan`).

use std::fmt::Write as _;

use super::Stack;
use crate::settings::{SIGNING_SECRET, VERIFICATION_TOKEN};
use crate::template::{Plan, Trigger, ACCOUNT, REGION};

impl Stack {
    /// How to use the running stack.
    pub fn usage(&self) -> String {
        let mut out = String::new();
        let slack = self.slack_url().unwrap_or_default();
        let _ = writeln!(
            out,
            "\nfanout is running locally. Ctrl-C stops everything.\n"
        );
        let _ = writeln!(out, "  AWS emulator (moto):   {}", self.endpoint);
        let _ = writeln!(out, "  Lambda (cargo lambda): {}", self.watch_url);
        let _ = writeln!(out, "  Slack URL:             {slack}");
        let _ = writeln!(
            out,
            "  Slack Web API:         {}{}\n",
            self.slack.url,
            if self.slack_stand_in.is_some() {
                " (a stand-in: the app's threaded replies are printed as it receives them)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "Count some words, as a Slack outgoing webhook would, signed with the local signing secret (needs openssl):"
        );
        let _ = writeln!(
            out,
            "  body=\"token={VERIFICATION_TOKEN}&channel_id=C1&trigger_word=hello&text=hello+local+world&timestamp=$(date +%s).000001\"; ts=$(date +%s)"
        );
        let _ = writeln!(
            out,
            "  sig=v0=$(printf 'v0:%s:%s' \"$ts\" \"$body\" | openssl dgst -sha256 -hmac {SIGNING_SECRET} -r | cut -d' ' -f1)"
        );
        let _ = writeln!(
            out,
            "  curl -s {slack} -H \"X-Slack-Request-Timestamp: $ts\" -H \"X-Slack-Signature: $sig\" --data \"$body\"\n"
        );
        let _ = writeln!(
            out,
            "Invoke a function with a sample event (in another shell, from the repository):"
        );
        let _ = writeln!(out, "  export PATH=\"$PWD/.venv/bin:$PATH\"");
        let port = self.watch_url.rsplit(':').next().unwrap_or_default();
        for (function, sample) in [
            ("slack-counter", "slack-counter-apigw-rest-webhook.json"),
            ("sns-logger", "sns-logger-sns.json"),
            ("s3-fanout", "s3-fanout-manual-dry-run.json"),
        ] {
            let _ = writeln!(out, "  cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port {port} {function} --data-file events/{sample}");
        }
        let _ = writeln!(
            out,
            "\nLook at the tables, topics, queues and buckets with the aws CLI (`make aws-cli` puts it in .venv-aws):"
        );
        let _ = writeln!(out, "  export PATH=\"$PWD/.venv-aws/bin:$PATH\"");
        let _ = writeln!(out, "  export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={REGION}", self.endpoint);
        let _ = writeln!(out, "  aws dynamodb list-tables");
        for table in &self.plan.tables {
            let _ = writeln!(out, "  aws dynamodb scan --table-name {}", table.name);
        }
        let _ = writeln!(out, "  aws sns list-topics");
        // The v1 CLI sends SQS requests to SQS's legacy endpoint unless --endpoint-url is given:
        // AWS_ENDPOINT_URL alone is not enough there.
        let _ = writeln!(
            out,
            "  aws sqs list-queues --endpoint-url \"$AWS_ENDPOINT_URL\""
        );
        for parameter in ["SourceBucket", "DestinationBucket"] {
            if let Some(bucket) = self.plan.parameters.get(parameter) {
                let _ = writeln!(out, "  aws s3 ls s3://{bucket}/ --recursive");
            }
        }
        let _ = writeln!(
            out,
            "\nEvery command above works as printed (a test runs them); docs/local-stack.md has the rest."
        );
        out
    }
}

/// The plan, as `fanout-local plan` prints it.
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    for table in &plan.tables {
        let _ = writeln!(out, "table    {} (key {})", table.name, table.key);
    }
    for topic in &plan.topics {
        let _ = writeln!(out, "topic    {}", topic.name);
    }
    for queue in &plan.queues {
        let _ = writeln!(
            out,
            "queue    {}{}",
            queue.name,
            queue
                .redrive
                .as_ref()
                .map(|(t, n)| format!(" -> {t} after {n}"))
                .unwrap_or_default()
        );
    }
    for s in &plan.subscriptions {
        let _ = writeln!(
            out,
            "wire     {} -> {}{}",
            s.topic,
            s.queue,
            if s.raw { " (raw)" } else { "" }
        );
    }
    for function in &plan.functions {
        for trigger in &function.triggers {
            let source = match trigger {
                Trigger::Http { method, path } => format!("HTTP {method} {path}"),
                Trigger::Sqs { queue, .. } => queue.clone(),
                Trigger::Sns { topic } => topic.clone(),
                Trigger::Schedule { expression } => format!("schedule {expression}"),
            };
            let _ = writeln!(out, "wire     {source} -> {}", function.binary);
        }
        for (var, value) in &function.env {
            let _ = writeln!(out, "env      {} {var}={value}", function.binary);
        }
    }
    let _ = writeln!(out, "account  {ACCOUNT} in {REGION}");
    out
}
