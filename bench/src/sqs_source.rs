//! Lambda's SQS event source mapping, played for real function processes under the fake
//! Runtime API: a poller per process receives batches of up to 10 records, invokes the function
//! with the SQS event Lambda would send, and deletes what the function did not report as a batch
//! item failure; failed records come back after the queue's visibility timeout, and after its
//! redrive policy's receive count they go to its dead-letter queue, as with Lambda.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use bytes::Bytes;
use fanout_tests::runtime_api::RuntimeApi;
use fanout_tests::words::subscribed_queue;
use tokio::sync::watch;

type Failure = Box<dyn std::error::Error + Send + Sync>;

impl Queue {
    /// A queue subscribed to `topic_arn` (raw delivery as given), with this visibility timeout
    /// and, when `dead_letter_after` is set, a dead-letter queue it moves a message to after that
    /// many receives.
    pub async fn subscribed(
        direct: &SdkConfig,
        topic_arn: &str,
        raw: bool,
        visibility_timeout_s: i32,
        dead_letter_after: Option<u32>,
    ) -> Result<(Queue, Option<Queue>), Failure> {
        let sqs = aws_sdk_sqs::Client::new(direct);
        let url = subscribed_queue(direct, topic_arn, raw).await;
        let queue = Queue::at(&sqs, url).await?;
        let mut attributes = HashMap::from([(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_s.to_string(),
        )]);
        let dead_letters = match dead_letter_after {
            Some(receives) => {
                let name = format!("{}-dlq", queue.url.rsplit('/').next().unwrap_or("queue"));
                let url = sqs
                    .create_queue()
                    .queue_name(name)
                    .send()
                    .await?
                    .queue_url
                    .ok_or("moto created a queue without a URL")?;
                let dead_letters = Queue::at(&sqs, url).await?;
                attributes.insert(
                    QueueAttributeName::RedrivePolicy,
                    serde_json::json!({
                        "deadLetterTargetArn": dead_letters.arn,
                        "maxReceiveCount": receives,
                    })
                    .to_string(),
                );
                Some(dead_letters)
            }
            None => None,
        };
        sqs.set_queue_attributes()
            .queue_url(&queue.url)
            .set_attributes(Some(attributes))
            .send()
            .await?;
        Ok((queue, dead_letters))
    }

    async fn at(sqs: &aws_sdk_sqs::Client, url: String) -> Result<Queue, Failure> {
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or("moto gave the queue no ARN")?;
        Ok(Queue {
            sqs: sqs.clone(),
            url,
            arn,
        })
    }

    /// Takes every message off the queue (a dead-letter queue, once the run is over): their
    /// bodies.
    pub async fn drain(&self) -> Result<Vec<String>, Failure> {
        let mut bodies = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(bodies);
            }
            bodies.extend(messages.iter().filter_map(|m| m.body().map(str::to_owned)));
            delete(self, &messages.iter().collect::<Vec<_>>()).await?;
        }
    }
}

/// What the pollers saw.
#[derive(Default)]
pub struct Consumed {
    pub batches: AtomicUsize,
    pub records: AtomicUsize,
    /// Records the multiplier answered as failed (left for redelivery).
    pub failed: AtomicUsize,
    /// Batches in the multiplier's hands right now.
    pub in_flight: AtomicUsize,
}

/// A queue a function consumes, and how to reach it.
#[derive(Clone)]
pub struct Queue {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    pub arn: String,
}

/// The SQS event source mapping for one function process: receive up to 10 records, invoke
/// (waiting up to `timeout`, the function's), delete what succeeded; until `stop` turns true.
pub async fn poll_queue(
    queue: Queue,
    api: Arc<RuntimeApi>,
    consumed: Arc<Consumed>,
    mut stop: watch::Receiver<bool>,
    timeout: Duration,
) -> Result<(), Failure> {
    while !*stop.borrow_and_update() {
        let received = queue
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        consumed.in_flight.fetch_add(1, Ordering::SeqCst);
        let failed = invoke_batch(&api, &queue, &messages, timeout).await;
        let done: Vec<_> = messages
            .iter()
            .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
            .collect();
        delete(&queue, &done).await?;
        consumed.in_flight.fetch_sub(1, Ordering::SeqCst);
        consumed.batches.fetch_add(1, Ordering::Relaxed);
        consumed
            .records
            .fetch_add(messages.len(), Ordering::Relaxed);
        consumed.failed.fetch_add(failed.len(), Ordering::Relaxed);
    }
    Ok(())
}

/// Hands a batch to the function; returns the message ids it did not process (all of them
/// when it failed or did not answer within `timeout`).
pub async fn invoke_batch(
    api: &RuntimeApi,
    queue: &Queue,
    messages: &[Message],
    timeout: Duration,
) -> BTreeSet<String> {
    let all = || {
        messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_owned())
            .collect()
    };
    let outcome = match api.invoke(sqs_event(queue, messages), timeout).await {
        Ok(outcome) if !outcome.is_error => outcome,
        _ => return all(),
    };
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&outcome.body) else {
        return all();
    };
    answer["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|failure| failure["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

/// The SQS event Lambda's event source mapping would hand the function.
pub fn sqs_event(queue: &Queue, messages: &[Message]) -> Bytes {
    let records: Vec<_> = messages
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                .collect();
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue.arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    Bytes::from(serde_json::json!({ "Records": records }).to_string())
}

pub async fn delete(queue: &Queue, messages: &[&Message]) -> Result<(), Failure> {
    if messages.is_empty() {
        return Ok(());
    }
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    queue
        .sqs
        .delete_message_batch()
        .queue_url(&queue.url)
        .set_entries(Some(entries))
        .send()
        .await?;
    Ok(())
}

/// Messages in the queue, visible or in flight.
pub async fn queue_depth(queue: &Queue) -> Result<usize, Failure> {
    let attributes = queue
        .sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    Ok(attributes
        .values()
        .filter_map(|value| value.parse::<usize>().ok())
        .sum())
}

/// Waits until the queue has stayed empty, with no batch in the function's hands, for two
/// checks in a row. Returns how long that took, or `None` at the timeout.
pub async fn wait_for_drain(
    queue: &Queue,
    consumed: &Consumed,
    timeout: Duration,
) -> Result<Option<Duration>, Failure> {
    let started = Instant::now();
    let mut quiet = 0;
    while started.elapsed() < timeout {
        let idle = consumed.in_flight.load(Ordering::SeqCst) == 0;
        quiet = if idle && queue_depth(queue).await? == 0 {
            quiet + 1
        } else {
            0
        };
        if quiet >= 2 {
            return Ok(Some(started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(None)
}

/// The event source mapping's pollers, one per function process, and how to stop them.
pub struct Pollers {
    pub consumed: Arc<Consumed>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), Failure>>>,
}

impl Pollers {
    /// Starts `count` pollers of `queue` invoking through `api`, each waiting up to `timeout`
    /// for the function's answer.
    pub fn start(count: usize, queue: &Queue, api: &Arc<RuntimeApi>, timeout: Duration) -> Pollers {
        let consumed = Arc::new(Consumed::default());
        let (stop, stopped) = watch::channel(false);
        let tasks = (0..count.max(1))
            .map(|_| {
                tokio::spawn(poll_queue(
                    queue.clone(),
                    api.clone(),
                    consumed.clone(),
                    stopped.clone(),
                    timeout,
                ))
            })
            .collect();
        Pollers {
            consumed,
            stop,
            tasks,
        }
    }

    /// Stops every poller after its current batch; the first error one met.
    pub async fn stop(self) -> Result<(), Failure> {
        self.stop.send_replace(true);
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}
