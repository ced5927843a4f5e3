//! The event sources Lambda would run, played locally: a poller per queue or topic that feeds a
//! function, and a printed line for the sources a person triggers by hand (HTTP, schedules).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use tokio::task::JoinHandle;

use crate::invoker::Invoker;
use crate::resources::{create_queue, subscribe_queue, ResourceError};
use crate::template::{queue_arn, topic_arn, Function, Plan, Trigger};
use delivery::{Poller, Source};

mod delivery;

/// A trigger that cannot be wired.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("{function} is triggered by {kind} {id}, which the template does not define")]
    Unknown {
        function: String,
        kind: &'static str,
        id: String,
    },
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

/// Where the pollers deliver and what they may create.
pub struct Wiring<'a> {
    pub plan: &'a Plan,
    pub sdk: &'a SdkConfig,
    pub invoker: &'a Invoker,
    /// `cargo lambda watch`'s address, for the HTTP routes.
    pub watch_url: &'a str,
    /// The queue URLs by logical id; the queues that stand in for topic subscriptions are added.
    pub queue_urls: &'a mut BTreeMap<String, String>,
}

impl Wiring<'_> {
    /// Starts a poller for every queue and topic that triggers a function, and prints how each
    /// trigger reaches its function.
    pub async fn start(mut self) -> Result<Vec<JoinHandle<()>>, WiringError> {
        let sqs = aws_sdk_sqs::Client::new(self.sdk);
        let sns = aws_sdk_sns::Client::new(self.sdk);
        let mut pollers = Vec::new();
        for function in &self.plan.functions {
            for trigger in &function.triggers {
                let source = match trigger {
                    Trigger::Sqs {
                        queue,
                        batch_size,
                        report_failures,
                    } => self.queue_source(function, queue, *batch_size, *report_failures)?,
                    Trigger::Sns { topic } => {
                        self.topic_source(function, topic, &sqs, &sns).await?
                    }
                    Trigger::Http { method, path } => {
                        println!(
                            "  HTTP {method} {path} ──> {} (at {}/lambda-url/{}/)",
                            function.binary, self.watch_url, function.binary
                        );
                        continue;
                    }
                    Trigger::Schedule { expression } => {
                        println!(
                            "  schedule {expression} ──> {} (triggered by hand locally)",
                            function.binary
                        );
                        continue;
                    }
                };
                let poller = Poller {
                    sqs: sqs.clone(),
                    invoker: self.invoker.clone(),
                    function: function.binary.clone(),
                    source,
                };
                pollers.push(tokio::spawn(poller.run()));
            }
        }
        Ok(pollers)
    }

    fn queue_source(
        &self,
        function: &Function,
        queue: &str,
        batch_size: u32,
        report_failures: bool,
    ) -> Result<Source, WiringError> {
        let queue = self
            .plan
            .queue(queue)
            .ok_or_else(|| unknown(function, "queue", queue))?;
        println!("  {} ──> {}", queue.logical_id, function.binary);
        Ok(Source::Sqs {
            queue_url: self
                .queue_urls
                .get(&queue.logical_id)
                .cloned()
                .unwrap_or_default(),
            queue_arn: queue_arn(&queue.name),
            batch_size: batch_size.clamp(1, 10) as i32,
            report_failures,
        })
    }

    /// Lambda subscribes the function itself; locally a queue stands in for the subscription
    /// and the poller turns its messages into SNS events.
    async fn topic_source(
        &mut self,
        function: &Function,
        topic: &str,
        sqs: &aws_sdk_sqs::Client,
        sns: &aws_sdk_sns::Client,
    ) -> Result<Source, WiringError> {
        let topic = self
            .plan
            .topic(topic)
            .ok_or_else(|| unknown(function, "topic", topic))?;
        let name = format!("{}-from-{}", function.binary, topic.logical_id);
        let url = create_queue(sqs, &name, None, None).await?;
        subscribe_queue(sns, &topic.name, &name, false).await?;
        let failure_queue = function
            .failure_queue
            .as_ref()
            .and_then(|q| self.queue_urls.get(q))
            .cloned();
        println!("  {} ──> {}", topic.logical_id, function.binary);
        self.queue_urls.insert(name, url.clone());
        Ok(Source::Sns {
            queue_url: url,
            topic_arn: topic_arn(&topic.name),
            failure_queue,
        })
    }
}

fn unknown(function: &Function, kind: &'static str, id: &str) -> WiringError {
    WiringError::Unknown {
        function: function.binary.clone(),
        kind,
        id: id.to_owned(),
    }
}
