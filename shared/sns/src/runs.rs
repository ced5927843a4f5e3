//! Each finished copy run's completion event, published as JSON to `RUN_EVENTS_TOPIC_ARN`.

use std::sync::Arc;

use aws_sdk_sns::Client;
use fanout_aws::DisplayErrorContext;
use fanout_copy_core::completion::{Announcer, CompletionEvent, ReportWriter, RunEvents};
use fanout_copy_core::location::Location;
use fanout_copy_core::uploads::BoxFuture;

#[derive(Debug, Clone)]
pub struct RunEventsTopic {
    client: Client,
    topic_arn: String,
}

impl RunEventsTopic {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        RunEventsTopic {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl RunEvents for RunEventsTopic {
    /// Publishes the event, with a subject an email subscription shows.
    fn publish<'a>(&'a self, event: &'a CompletionEvent) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let subject = format!(
                "fanout run complete: {} copied, {} failed",
                event.copied, event.failed
            );
            self.client
                .publish()
                .topic_arn(&self.topic_arn)
                .subject(subject)
                .message(event.to_json())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "SNS Publish to {}: {}",
                        self.topic_arn,
                        DisplayErrorContext(e)
                    )
                })?;
            Ok(())
        })
    }
}

/// What finished copy runs are announced with: the failure report written by `writer` under
/// `report_url` (`COPY_REPORT_URL`), the event published to `topic_arn`
/// (`RUN_EVENTS_TOPIC_ARN`); each left out when unset.
pub fn announcer(
    client: &Client,
    topic_arn: Option<&str>,
    report_url: Option<&Location>,
    writer: Arc<dyn ReportWriter>,
) -> Announcer {
    let mut announcer = Announcer::default();
    if let Some(url) = report_url {
        announcer = announcer.with_reports(url.clone(), writer);
    }
    if let Some(topic_arn) = topic_arn {
        announcer = announcer.with_events(Arc::new(RunEventsTopic::new(client.clone(), topic_arn)));
    }
    announcer
}
