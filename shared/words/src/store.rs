//! The word-count store: DynamoDB table `WORDS_TABLE`, partition key `word` (S), count `count` (N).
//!
//! Counts only ever change by atomic `ADD`, one `UpdateItem` per distinct word carrying its
//! multiplicity, issued concurrently with a bound. The same table keeps the "applied once"
//! records of [`crate::once`], under keys that start with `#` (which no word can: `#` is a word
//! boundary), with a TTL attribute `expires_at`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use aws_sdk_dynamodb::Client;
use futures::stream::{self, StreamExt};

/// The partition key attribute.
pub const KEY: &str = "word";
/// The count attribute.
pub const COUNT: &str = "count";
/// The TTL attribute of "applied once" records.
pub const EXPIRES_AT: &str = "expires_at";
/// How many `UpdateItem` calls are in flight at once.
pub const ADD_CONCURRENCY: usize = 64;

const BATCH_GET_LIMIT: usize = 100;

/// A DynamoDB call that failed after the SDK's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DynamoDB {operation} on table {table} failed: {detail}")]
pub struct StoreError {
    pub operation: &'static str,
    pub table: String,
    pub detail: String,
}

/// What happened to a set of adds: the new counts of those applied, and the words that failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddOutcome {
    /// `(word, count after the add)`, in the order the adds were given.
    pub applied: Vec<(String, i64)>,
    pub failed: Vec<(String, StoreError)>,
}

/// Progress of a message being applied once: which words were added, and whether it was published.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    pub added: HashSet<String>,
    pub published: bool,
}

/// The state of a message's "applied once" record when it is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: the caller now owns the message.
    New,
    /// An earlier attempt stopped part way; go on from here.
    Resume(Progress),
    /// Fully handled already (or being handled right now): do nothing.
    Done,
}

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

    pub fn table(&self) -> &str {
        &self.table
    }

    fn error(&self, operation: &'static str, err: impl std::error::Error) -> StoreError {
        StoreError {
            operation,
            table: self.table.clone(),
            detail: DisplayErrorContext(err).to_string(),
        }
    }

    /// Adds each delta to its word's count with one atomic `ADD` per word, concurrently.
    pub async fn add(&self, deltas: &[(String, i64)]) -> AddOutcome {
        let results: Vec<(usize, Result<i64, StoreError>)> =
            stream::iter(deltas.iter().cloned().enumerate())
                .map(|(at, (word, delta))| async move { (at, self.add_one(&word, delta).await) })
                .buffer_unordered(ADD_CONCURRENCY)
                .collect()
                .await;
        let mut ordered: Vec<Option<Result<i64, StoreError>>> = vec![None; deltas.len()];
        for (at, result) in results {
            ordered[at] = Some(result);
        }
        let mut outcome = AddOutcome::default();
        for ((word, _), result) in deltas.iter().zip(ordered) {
            match result.expect("every add reports") {
                Ok(count) => outcome.applied.push((word.clone(), count)),
                Err(err) => outcome.failed.push((word.clone(), err)),
            }
        }
        outcome
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
            .map_err(|e| self.error("UpdateItem", e))?;
        output
            .attributes()
            .and_then(|item| item.get(COUNT))
            .and_then(|value| value.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError {
                operation: "UpdateItem",
                table: self.table.clone(),
                detail: format!("no numeric `{COUNT}` came back for {word:?}"),
            })
    }

    /// The current counts of `words` (strongly consistent); a word never counted is absent.
    pub async fn counts(&self, words: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        let mut counts = HashMap::new();
        let unique: Vec<&String> = words.iter().collect::<HashSet<_>>().into_iter().collect();
        for chunk in unique.chunks(BATCH_GET_LIMIT) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|word| HashMap::from([(KEY.to_owned(), AttributeValue::S((*word).clone()))]))
                .collect();
            for attempt in 0.. {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| self.error("BatchGetItem", e))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.error("BatchGetItem", e))?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let (Some(AttributeValue::S(word)), Some(AttributeValue::N(n))) =
                        (item.get(KEY), item.get(COUNT))
                    {
                        counts.insert(word.clone(), n.parse().unwrap_or_default());
                    }
                }
                keys = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if keys.is_empty() {
                    break;
                }
                if attempt == 5 {
                    return Err(StoreError {
                        operation: "BatchGetItem",
                        table: self.table.clone(),
                        detail: format!(
                            "{} keys still unprocessed after {attempt} retries",
                            keys.len()
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
            }
        }
        Ok(counts)
    }

    /// Claims `key` for a message: a conditional put that succeeds only the first time (or
    /// after the record expired). Otherwise says what an earlier attempt left.
    pub async fn claim(&self, key: &str, ttl: Duration) -> Result<Claim, StoreError> {
        let now = unix_now();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(key.to_owned()))
            .item("state", AttributeValue::S("claimed".into()))
            .item(
                EXPIRES_AT,
                AttributeValue::N((now + ttl.as_secs()).to_string()),
            )
            .condition_expression("attribute_not_exists(#key) OR #expires < :now")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::New),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.existing_claim(key).await
            }
            Err(err) => Err(self.error("PutItem", err)),
        }
    }

    async fn existing_claim(&self, key: &str) -> Result<Claim, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", e))?;
        let Some(item) = output.item() else {
            return Ok(Claim::Done);
        };
        if item
            .get("state")
            .and_then(|s| s.as_s().ok())
            .map(String::as_str)
            != Some("partial")
        {
            return Ok(Claim::Done);
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
        Ok(Claim::Resume(Progress { added, published }))
    }

    /// Records how far an attempt got, so that the next one resumes instead of repeating.
    pub async fn save_progress(
        &self,
        key: &str,
        progress: &Progress,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(key.to_owned()))
            .item("state", AttributeValue::S("partial".into()))
            .item("published", AttributeValue::Bool(progress.published))
            .item(
                EXPIRES_AT,
                AttributeValue::N((unix_now() + ttl.as_secs()).to_string()),
            );
        if !progress.added.is_empty() {
            let mut added: Vec<String> = progress.added.iter().cloned().collect();
            added.sort();
            put = put.item("added", AttributeValue::Ss(added));
        }
        put.send().await.map_err(|e| self.error("PutItem", e))?;
        Ok(())
    }

    /// Marks a resumed message as fully handled.
    pub async fn mark_done(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(key.to_owned()))
            .item("state", AttributeValue::S("done".into()))
            .item(
                EXPIRES_AT,
                AttributeValue::N((unix_now() + ttl.as_secs()).to_string()),
            )
            .send()
            .await
            .map_err(|e| self.error("PutItem", e))?;
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
