//! Queues and their subscriptions to topics.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;

use super::ResourceError;
use crate::template::{queue_arn, topic_arn, Plan, Queue};

/// Creates the template's queues, dead-letter queues first: a redrive policy names an existing
/// queue.
pub(super) async fn create_queues(
    plan: &Plan,
    sqs: &aws_sdk_sqs::Client,
) -> Result<BTreeMap<String, String>, ResourceError> {
    let mut queues: Vec<&Queue> = plan.queues.iter().collect();
    queues.sort_by_key(|q| q.redrive.is_some());
    let mut urls = BTreeMap::new();
    for queue in queues {
        let redrive = queue.redrive.as_ref().map(|(target, count)| {
            let target = plan
                .queue(target)
                .map(|q| q.name.clone())
                .unwrap_or_default();
            json!({"deadLetterTargetArn": queue_arn(&target), "maxReceiveCount": count}).to_string()
        });
        let url = create_queue(sqs, &queue.name, redrive, queue.visibility_timeout).await?;
        println!(
            "  queue {}{}",
            queue.name,
            queue
                .redrive
                .as_ref()
                .map(|(t, n)| format!(" (after {n} receives: {t})"))
                .unwrap_or_default()
        );
        urls.insert(queue.logical_id.clone(), url);
    }
    Ok(urls)
}

/// Creates a queue; returns its URL.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    redrive: Option<String>,
    visibility: Option<u32>,
) -> Result<String, ResourceError> {
    let mut create = sqs.create_queue().queue_name(name);
    if let Some(policy) = redrive {
        create = create.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    if let Some(seconds) = visibility {
        create = create.attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    create
        .send()
        .await
        .map_err(|source| ResourceError::Queue {
            queue: name.to_owned(),
            source: source.into(),
        })?
        .queue_url
        .ok_or_else(|| ResourceError::QueueUrl(name.to_owned()))
}

pub(super) async fn subscribe_queues(
    plan: &Plan,
    sns: &aws_sdk_sns::Client,
) -> Result<(), ResourceError> {
    for subscription in &plan.subscriptions {
        let topic = plan
            .topic(&subscription.topic)
            .ok_or_else(|| ResourceError::Unknown {
                kind: "topic",
                id: subscription.topic.clone(),
            })?;
        let queue = plan
            .queue(&subscription.queue)
            .ok_or_else(|| ResourceError::Unknown {
                kind: "queue",
                id: subscription.queue.clone(),
            })?;
        subscribe_queue(sns, &topic.name, &queue.name, subscription.raw).await?;
        println!(
            "  {} ──> {}{}",
            topic.name,
            queue.name,
            if subscription.raw {
                " (raw delivery)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Subscribes the queue named `queue` to the topic named `topic`; with `raw`, the queue receives
/// the messages as published rather than wrapped in SNS notifications.
pub async fn subscribe_queue(
    sns: &aws_sdk_sns::Client,
    topic: &str,
    queue: &str,
    raw: bool,
) -> Result<(), ResourceError> {
    let mut subscribe = sns
        .subscribe()
        .topic_arn(topic_arn(topic))
        .protocol("sqs")
        .endpoint(queue_arn(queue));
    if raw {
        subscribe = subscribe.attributes("RawMessageDelivery", "true");
    }
    subscribe
        .send()
        .await
        .map_err(|source| ResourceError::Subscribe {
            topic: topic.to_owned(),
            queue: queue.to_owned(),
            source: source.into(),
        })?;
    Ok(())
}
