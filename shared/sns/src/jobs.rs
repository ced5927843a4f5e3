//! The job publisher: copy jobs to an SNS topic, ten per PublishBatch call, a few calls at once.

use aws_sdk_sns::types::PublishBatchRequestEntry;
use aws_sdk_sns::Client;
use fanout_aws::DisplayErrorContext;
use fanout_copy_core::fanout::{JobSink, SinkError};
use fanout_copy_core::CopyJob;
use futures::stream::{self, StreamExt, TryStreamExt};

/// SNS's most entries in one PublishBatch.
pub const BATCH_SIZE: usize = 10;
/// PublishBatch calls in flight at once.
pub const PUBLISH_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct JobPublisher {
    client: Client,
    topic_arn: String,
}

impl JobPublisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        JobPublisher {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    async fn publish_batch(&self, batch: &[CopyJob]) -> Result<(), SinkError> {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, job)| {
                PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message(job.to_json())
                    .build()
                    .map_err(|e| self.error(e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let refused: Vec<String> = output
            .failed()
            .iter()
            .map(|entry| {
                let key = entry
                    .id()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| batch.get(i))
                    .map(|job| job.source.key.as_str())
                    .unwrap_or("?");
                format!(
                    "{key}: {} {}",
                    entry.code(),
                    entry.message().unwrap_or_default()
                )
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(SinkError {
                operation: "SNS PublishBatch",
                destination: self.topic_arn.clone(),
                detail: format!("entries refused: {}", refused.join("; ")),
            })
        }
    }

    fn error(&self, err: impl std::error::Error) -> SinkError {
        SinkError {
            operation: "SNS PublishBatch",
            destination: self.topic_arn.clone(),
            detail: DisplayErrorContext(err).to_string(),
        }
    }
}

impl JobSink for JobPublisher {
    /// Publishes every job; an error when any call failed or any entry was refused.
    async fn publish(&self, jobs: &[CopyJob]) -> Result<(), SinkError> {
        // Owned batches: a stream of borrowed ones makes a future the compiler cannot prove Send.
        stream::iter(jobs.chunks(BATCH_SIZE).map(<[CopyJob]>::to_vec))
            .map(|batch| async move { self.publish_batch(&batch).await })
            .buffer_unordered(PUBLISH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}
