//! Word-count fixtures: the words table and the counts in it, topics and queues, as the template
//! defines them.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use fanout_words_core::store::{StoreError, WordCountStore};
use fanout_words_dynamodb::WordStore;

use crate::unique;

/// Creates a words table as the template defines it (partition key `word`, String; the
/// leaderboard index `by-count`) and returns its name.
pub async fn create_words_table(sdk: &SdkConfig) -> String {
    crate::create_unique_table(sdk, "words", "word", &[words_board_index()]).await
}

/// The words table's leaderboard index.
pub fn words_board_index() -> crate::NumberIndex {
    crate::NumberIndex {
        name: fanout_words_dynamodb::BOARD_INDEX.into(),
        partition_key: fanout_words_dynamodb::BOARD_SHARD.into(),
        sort_key: fanout_words_dynamodb::COUNT.into(),
    }
}

/// The count of `word` in the words table `table`, read as the functions read counts (the word
/// store's strongly consistent `counts`); `None` when the word was never counted.
pub async fn count_of(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    word: &str,
) -> Result<Option<i64>, StoreError> {
    let counts = WordStore::new(dynamodb.clone(), table)
        .counts(&[word.to_owned()])
        .await?;
    Ok(counts.get(word).copied())
}

/// Creates a topic with an SQS queue subscribed to it (raw delivery off, as SNS to SQS
/// normally is), so tests can see what was published. Returns (topic ARN, queue URL).
pub async fn topic_with_probe_queue(sdk: &SdkConfig) -> (String, String) {
    let topic_arn = aws_sdk_sns::Client::new(sdk)
        .create_topic()
        .name(unique("topic"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue_url = subscribed_queue(sdk, &topic_arn, false).await;
    (topic_arn, queue_url)
}

/// Creates an SQS queue subscribed to the topic, with raw message delivery (the message itself
/// as the body) or without (the SNS notification as the body). Returns the queue URL.
pub async fn subscribed_queue(sdk: &SdkConfig, topic_arn: &str, raw: bool) -> String {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("probe"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    aws_sdk_sns::Client::new(sdk)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", raw.to_string())
        .send()
        .await
        .unwrap();
    queue_url
}

/// Receives every SNS notification waiting in a queue subscribed to a topic, draining it: each
/// notification's `Message`, as JSON.
pub async fn drain_published(sdk: &SdkConfig, queue_url: &str) -> Vec<serde_json::Value> {
    drain(sdk, queue_url)
        .await
        .iter()
        .map(|notification| {
            let notification: serde_json::Value = serde_json::from_str(notification).unwrap();
            serde_json::from_str(notification["Message"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// Receives every message waiting in a queue (bodies), draining it.
pub async fn drain(sdk: &SdkConfig, queue_url: &str) -> Vec<String> {
    receive_all(sdk, queue_url)
        .await
        .into_iter()
        .map(|message| message.body.unwrap_or_default())
        .collect()
}

/// Receives every message waiting in a queue, with its attributes and message attributes,
/// draining it.
pub async fn receive_all(sdk: &SdkConfig, queue_url: &str) -> Vec<Message> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut all = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return all;
        }
        for message in &messages {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
        all.extend(messages);
    }
}
