//! The job publisher: copy jobs to an SNS topic, ten per PublishBatch call, a few calls at once.

use aws_sdk_sns::types::PublishBatchRequestEntry;
use aws_sdk_sns::Client;
use fanout_aws::DisplayErrorContext;
use fanout_copy_core::fanout::{JobSink, Refused, SinkError};
use fanout_copy_core::CopyJob;
use futures::stream::{self, StreamExt, TryStreamExt};

/// SNS's most entries in one PublishBatch.
pub const BATCH_SIZE: usize = 10;
/// PublishBatch calls in flight at once.
pub const PUBLISH_CONCURRENCY: usize = 8;
/// How many times an entry SNS refuses for now is published, and the first pause between
/// attempts (it grows fourfold).
pub const ENTRY_ATTEMPTS: u32 = 3;
const ENTRY_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

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

    /// Publishes up to ten jobs. Entries SNS refuses for now (not `SenderFault`: throttling,
    /// an internal error) are published again on their own, after a pause; entries it refuses
    /// for good are returned.
    async fn publish_batch(&self, batch: &[CopyJob]) -> Result<Vec<Refused>, SinkError> {
        let mut waiting: Vec<usize> = (0..batch.len()).collect();
        let mut refused = Vec::new();
        let mut pause = ENTRY_RETRY_PAUSE;
        for attempt in 1..=ENTRY_ATTEMPTS {
            let entries = waiting
                .iter()
                .map(|&i| {
                    PublishBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message(batch[i].to_json())
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
            let mut again = Vec::new();
            for entry in output.failed() {
                let Some(i) = entry
                    .id()
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < batch.len())
                else {
                    return Err(
                        self.refusal("an entry SNS answered for is not in the batch", entry)
                    );
                };
                let reason = format!("{} {}", entry.code(), entry.message().unwrap_or_default());
                if entry.sender_fault() {
                    refused.push(Refused {
                        job: batch[i].clone(),
                        reason,
                    });
                } else {
                    tracing::warn!(key = %batch[i].source.key, attempt, %reason, "SNS refused a copy job for now; publishing it again");
                    again.push(i);
                }
            }
            if again.is_empty() {
                return Ok(refused);
            }
            if attempt < ENTRY_ATTEMPTS {
                tokio::time::sleep(pause).await;
                pause *= 4;
            }
            waiting = again;
        }
        let keys: Vec<&str> = waiting
            .iter()
            .map(|&i| batch[i].source.key.as_str())
            .collect();
        Err(SinkError {
            operation: "SNS PublishBatch",
            destination: self.topic_arn.clone(),
            detail: format!(
                "entries still refused after {ENTRY_ATTEMPTS} attempts: {}",
                keys.join(", ")
            ),
        })
    }

    fn refusal(&self, what: &str, entry: &aws_sdk_sns::types::BatchResultErrorEntry) -> SinkError {
        SinkError {
            operation: "SNS PublishBatch",
            destination: self.topic_arn.clone(),
            detail: format!("{what}: {entry:?}"),
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
    /// Publishes every job; an error when any call failed, or any entry was still refused for
    /// now after its attempts. Returns the entries SNS refused for good.
    async fn publish(&self, jobs: &[CopyJob]) -> Result<Vec<Refused>, SinkError> {
        // Owned batches: a stream of borrowed ones makes a future the compiler cannot prove Send.
        let refused = stream::iter(jobs.chunks(BATCH_SIZE).map(<[CopyJob]>::to_vec))
            .map(|batch| async move { self.publish_batch(&batch).await })
            .buffer_unordered(PUBLISH_CONCURRENCY)
            .try_collect::<Vec<Vec<Refused>>>()
            .await?;
        Ok(refused.into_iter().flatten().collect())
    }
}
