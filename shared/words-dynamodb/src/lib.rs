//! The word-count store: DynamoDB table `WORDS_TABLE`, partition key `word` (S), count `count`
//! (N): fanout-words-core's [`WordCountStore`] and [`ClaimStore`] over DynamoDB.
//!
//! Counts only ever change by atomic `ADD`, one `UpdateItem` per distinct word carrying its
//! multiplicity, issued concurrently with a bound. The same table keeps the "applied once"
//! records of `fanout_words_core::once`, under keys that start with `#` (which no word can: `#`
//! is a word boundary), with a TTL attribute `expires_at`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use aws_sdk_dynamodb::Client;
use fanout_aws::DisplayErrorContext;
use fanout_words_core::store::{
    AddOutcome, Claim, ClaimStore, Progress, StoreError, WordCountStore,
};
use futures::stream::{self, StreamExt, TryStreamExt};

/// The partition key attribute.
pub const KEY: &str = "word";
/// The count attribute.
pub const COUNT: &str = "count";
/// The TTL attribute of "applied once" records.
pub const EXPIRES_AT: &str = "expires_at";
/// How many `UpdateItem` calls are in flight at once.
pub const ADD_CONCURRENCY: usize = 64;

const BATCH_GET_LIMIT: usize = 100;

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB word-count table.
#[derive(Debug, Clone)]
pub struct WordStore {
    client: Client,
    table: String,
}

impl WordStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        WordStore {
            client,
            table: table.into(),
        }
    }

    fn error(&self, operation: &'static str, err: impl std::error::Error) -> StoreError {
        StoreError {
            operation,
            store: format!("table {}", self.table),
            detail: DisplayErrorContext(err).to_string(),
        }
    }

    async fn add_one(&self, word: &str, delta: i64) -> Result<i64, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(word.to_owned()))
            .update_expression("ADD #count :delta")
            .expression_attribute_names("#count", COUNT)
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
        output
            .attributes()
            .and_then(count_of)
            .ok_or_else(|| StoreError {
                operation: "DynamoDB UpdateItem",
                store: format!("table {}", self.table),
                detail: format!("no numeric `{COUNT}` came back for {word:?}"),
            })
    }

    /// Up to 100 words' items in one BatchGetItem; the keys DynamoDB left unprocessed (under
    /// load) are read one by one, each with the SDK's retries.
    async fn read_chunk(&self, words: &[&String]) -> Result<Vec<Item>, StoreError> {
        let keys: Vec<Item> = words.iter().map(|word| self.key(word)).collect();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| self.error("DynamoDB BatchGetItem", e))?;
        let mut output = self
            .client
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await
            .map_err(|e| self.error("DynamoDB BatchGetItem", e))?;
        let mut items = output
            .responses
            .as_mut()
            .and_then(|responses| responses.remove(&self.table))
            .unwrap_or_default();
        let unprocessed = output
            .unprocessed_keys()
            .and_then(|u| u.get(&self.table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        let rest: Vec<Option<Item>> = stream::iter(unprocessed)
            .map(|key| self.get(key))
            .buffer_unordered(ADD_CONCURRENCY)
            .try_collect()
            .await?;
        items.extend(rest.into_iter().flatten());
        Ok(items)
    }

    fn key(&self, key: &str) -> Item {
        HashMap::from([(KEY.to_owned(), AttributeValue::S(key.to_owned()))])
    }

    /// One item, strongly consistent.
    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("DynamoDB GetItem", e))?;
        Ok(output.item)
    }

    fn put_record(&self, key: &str, state: &str, ttl: Duration) -> PutRecord {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(key.to_owned()))
            .item("state", AttributeValue::S(state.into()))
            .item(
                EXPIRES_AT,
                AttributeValue::N((unix_now() + ttl.as_secs()).to_string()),
            )
    }
}

type PutRecord = aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;

fn count_of(item: &Item) -> Option<i64> {
    item.get(COUNT)?.as_n().ok()?.parse().ok()
}

impl WordCountStore for WordStore {
    async fn add(&self, deltas: &[(String, i64)]) -> AddOutcome {
        let mut results: Vec<(usize, Result<i64, StoreError>)> =
            stream::iter(deltas.iter().cloned().enumerate())
                .map(|(at, (word, delta))| async move { (at, self.add_one(&word, delta).await) })
                .buffer_unordered(ADD_CONCURRENCY)
                .collect()
                .await;
        results.sort_by_key(|(at, _)| *at);
        let mut outcome = AddOutcome::default();
        for ((word, _), (_, result)) in deltas.iter().zip(results) {
            match result {
                Ok(count) => outcome.applied.push((word.clone(), count)),
                Err(err) => outcome.failed.push((word.clone(), err)),
            }
        }
        outcome
    }

    /// Strongly consistent reads, 100 words per BatchGetItem.
    async fn counts(&self, words: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        let unique: Vec<&String> = words.iter().collect::<HashSet<_>>().into_iter().collect();
        let mut counts = HashMap::new();
        for chunk in unique.chunks(BATCH_GET_LIMIT) {
            for item in self.read_chunk(chunk).await? {
                if let (Some(AttributeValue::S(word)), Some(count)) =
                    (item.get(KEY), count_of(&item))
                {
                    counts.insert(word.clone(), count);
                }
            }
        }
        Ok(counts)
    }
}

impl ClaimStore for WordStore {
    /// A conditional put that succeeds only the first time (or after the record expired).
    async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim, StoreError> {
        let put = self
            .put_record(key, "claimed", ttl)
            .condition_expression("attribute_not_exists(#key) OR #expires < :now")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":now", AttributeValue::N(unix_now().to_string()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::New),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(existing_claim(self.get(self.key(key)).await?))
            }
            Err(err) => Err(self.error("DynamoDB PutItem", err)),
        }
    }

    async fn save_progress(
        &self,
        key: &str,
        progress: &Progress,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut put = self
            .put_record(key, "partial", ttl)
            .item("published", AttributeValue::Bool(progress.published));
        if !progress.added.is_empty() {
            let mut added: Vec<String> = progress.added.iter().cloned().collect();
            added.sort();
            put = put.item("added", AttributeValue::Ss(added));
        }
        put.send()
            .await
            .map_err(|e| self.error("DynamoDB PutItem", e))?;
        Ok(())
    }

    async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.put_record(key, "done", ttl)
            .send()
            .await
            .map_err(|e| self.error("DynamoDB PutItem", e))?;
        Ok(())
    }
}

/// What a record someone else wrote says: resume a partial one, else it is done (or in hand).
fn existing_claim(item: Option<Item>) -> Claim {
    let Some(item) = item else {
        return Claim::Done;
    };
    if item
        .get("state")
        .and_then(|s| s.as_s().ok())
        .map(String::as_str)
        != Some("partial")
    {
        return Claim::Done;
    }
    let added = item
        .get("added")
        .and_then(|s| s.as_ss().ok())
        .map(|words| words.iter().cloned().collect())
        .unwrap_or_default();
    let published = item
        .get("published")
        .and_then(|b| b.as_bool().ok())
        .copied()
        .unwrap_or(false);
    Claim::Resume(Progress { added, published })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
