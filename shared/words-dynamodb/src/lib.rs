//! The word-count store: DynamoDB table `WORDS_TABLE`, partition key `word` (S), count `count`
//! (N): fanout-words-core's [`WordCountStore`] over DynamoDB.
//!
//! Counts only ever change by atomic `ADD`s carrying each word's multiplicity, committed in one
//! TransactWriteItems per chunk of at most 99 words together with the chunk's claim. Claims
//! live in the same table, under keys that start with `#` (which no word can: `#` is a word
//! boundary), with a TTL attribute `expires_at` (docs/counting.md).
//!
//! The leaderboard is a sparse global secondary index, `by-count`: partition key `board_shard`
//! (N, the word's [`board_shard`], set by every `ADD`), sort key `count`. Only words carry a
//! shard, so claims are not in it. `top n` queries each of the 16 shards for its highest counts,
//! newest first, and keeps the best `n` (docs/slack.md).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use fanout_aws::DisplayErrorContext;
use fanout_words_core::reply::{Claim, ReplyClaims};
use fanout_words_core::store::{
    best_of, board_shard, ChunkOutcome, Leaderboard, StoreError, WordCountStore, BOARD_SHARDS,
};

/// The partition key attribute.
pub const KEY: &str = "word";
/// The count attribute.
pub const COUNT: &str = "count";
/// The TTL attribute of "applied once" records.
pub const EXPIRES_AT: &str = "expires_at";
/// The leaderboard shard attribute (N), the partition key of [`BOARD_INDEX`].
pub const BOARD_SHARD: &str = "board_shard";
/// The leaderboard index: partition key [`BOARD_SHARD`], sort key [`COUNT`], keys only.
pub const BOARD_INDEX: &str = "by-count";

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

    fn error_of(
        &self,
        operation: &'static str,
        transient: bool,
        err: impl std::error::Error,
    ) -> StoreError {
        StoreError {
            operation,
            store: format!("table {}", self.table),
            transient,
            detail: DisplayErrorContext(err).to_string(),
        }
    }

    /// A failed call, classed as the SDK classes it.
    fn error<E>(&self, operation: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let transient = fanout_aws::is_transient(&err);
        self.error_of(operation, transient, err)
    }

    /// Up to 100 words' items: one BatchGetItem, and one more for any keys DynamoDB left
    /// unprocessed under load; keys still unprocessed then are a transient failure.
    async fn read_chunk(&self, words: &[&String]) -> Result<Vec<Item>, StoreError> {
        let mut keys: Vec<Item> = words.iter().map(|word| self.key(word)).collect();
        let mut items = Vec::new();
        for _pass in 0..2 {
            let (found, unprocessed) = self.batch_get(keys).await?;
            items.extend(found);
            if unprocessed.is_empty() {
                return Ok(items);
            }
            keys = unprocessed;
        }
        Err(StoreError {
            operation: "DynamoDB BatchGetItem",
            store: format!("table {}", self.table),
            transient: true,
            detail: format!("{} keys were left unprocessed twice", keys.len()),
        })
    }

    /// The items found, and the keys left unprocessed.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<(Vec<Item>, Vec<Item>), StoreError> {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| self.error_of("DynamoDB BatchGetItem", false, e))?;
        let mut output = self
            .client
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await
            .map_err(|e| self.error("DynamoDB BatchGetItem", e))?;
        let items = (output.responses.as_mut())
            .and_then(|responses| responses.remove(&self.table))
            .unwrap_or_default();
        let unprocessed = (output.unprocessed_keys.as_mut())
            .and_then(|unprocessed| unprocessed.remove(&self.table))
            .map(|keys| keys.keys)
            .unwrap_or_default();
        Ok((items, unprocessed))
    }

    fn key(&self, key: &str) -> Item {
        HashMap::from([(KEY.to_owned(), AttributeValue::S(key.to_owned()))])
    }
}

fn count_of(item: &Item) -> Option<i64> {
    item.get(COUNT)?.as_n().ok()?.parse().ok()
}

impl WordCountStore for WordStore {
    /// One TransactWriteItems: a Put of the claim, on the condition that it does not exist (or
    /// expired), and an `ADD` per word. A transaction that conflicts with another on a hot
    /// word is tried again (a few times, with jittered backoff) before it is reported as
    /// transient.
    async fn apply_chunk(
        &self,
        key: &str,
        deltas: &[(String, i64)],
        ttl: Duration,
    ) -> Result<ChunkOutcome, StoreError> {
        let items = self.chunk_items(key, deltas, ttl)?;
        let mut attempt = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(ChunkOutcome::Applied),
                Err(err) => err,
            };
            match cancellation(&err) {
                Cancelled::ClaimExists => return Ok(ChunkOutcome::AlreadyApplied),
                Cancelled::Conflict if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(fanout_aws::collision_backoff(attempt)).await;
                }
                Cancelled::Conflict | Cancelled::Other => {
                    let transient = fanout_aws::is_transient(&err)
                        || matches!(cancellation(&err), Cancelled::Conflict);
                    return Err(self.error_of("DynamoDB TransactWriteItems", transient, err));
                }
            }
        }
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

/// Conflicts with other transactions on the same (hot) words tried again before giving up.
const CONFLICT_RETRIES: u32 = 5;

/// Why DynamoDB cancelled a transaction, from its cancellation reasons (the first item is the
/// claim).
enum Cancelled {
    ClaimExists,
    Conflict,
    Other,
}

fn cancellation(err: &SdkError<TransactWriteItemsError, HttpResponse>) -> Cancelled {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    else {
        return Cancelled::Other;
    };
    let codes: Vec<&str> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|reason| reason.code().unwrap_or("None"))
        .collect();
    match codes.as_slice() {
        ["ConditionalCheckFailed", ..] => Cancelled::ClaimExists,
        codes if codes.contains(&"TransactionConflict") => Cancelled::Conflict,
        _ => Cancelled::Other,
    }
}

impl WordStore {
    /// The claim's Put and the words' Updates of one chunk.
    fn chunk_items(
        &self,
        key: &str,
        deltas: &[(String, i64)],
        ttl: Duration,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let now = unix_now();
        let claim = Put::builder()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(key.to_owned()))
            .item(
                EXPIRES_AT,
                AttributeValue::N((now + ttl.as_secs()).to_string()),
            )
            .condition_expression("attribute_not_exists(#key) OR #expires < :now")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .build()
            .map_err(|e| self.error_of("DynamoDB TransactWriteItems", false, e))?;
        let mut items = vec![TransactWriteItem::builder().put(claim).build()];
        for (word, delta) in deltas {
            let add = Update::builder()
                .table_name(&self.table)
                .key(KEY, AttributeValue::S(word.clone()))
                .update_expression("ADD #count :delta SET #shard = :shard")
                .expression_attribute_names("#count", COUNT)
                .expression_attribute_names("#shard", BOARD_SHARD)
                .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
                .expression_attribute_values(
                    ":shard",
                    AttributeValue::N(board_shard(word).to_string()),
                )
                .build()
                .map_err(|e| self.error_of("DynamoDB TransactWriteItems", false, e))?;
            items.push(TransactWriteItem::builder().update(add).build());
        }
        Ok(items)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Leaderboard for WordStore {
    /// One Query per shard, at once; each reads its highest counts a page at a time until it
    /// has `n` words that are not skipped (or runs out).
    async fn top(
        &self,
        n: usize,
        skip: fn(&str) -> bool,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let shards = (0..BOARD_SHARDS).map(|shard| self.shard_top(shard, n, skip));
        let lists = futures::future::try_join_all(shards).await?;
        Ok(best_of(lists, n))
    }
}

impl WordStore {
    async fn shard_top(
        &self,
        shard: u32,
        n: usize,
        skip: fn(&str) -> bool,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BOARD_INDEX)
                .key_condition_expression("#shard = :shard")
                .expression_attribute_names("#shard", BOARD_SHARD)
                .expression_attribute_values(":shard", AttributeValue::N(shard.to_string()))
                .scan_index_forward(false)
                .limit(i32::try_from(n + 20).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.error("DynamoDB Query", e))?;
            let mut last_read = None;
            for item in page.items() {
                if let (Some(AttributeValue::S(word)), Some(count)) =
                    (item.get(KEY), count_of(item))
                {
                    last_read = Some(count);
                    if !skip(word) {
                        found.push((word.clone(), count));
                    }
                }
            }
            start = page.last_evaluated_key;
            // The index orders equal counts arbitrarily: read on while the page ended among
            // words tied with the n-th, so that ties are broken by word (`best_of`).
            let tied_at_the_cut =
                n > 0 && found.len() >= n && last_read.is_some_and(|last| last >= found[n - 1].1);
            if start.is_none() || (found.len() >= n && !tied_at_the_cut) {
                return Ok(found);
            }
        }
    }
}

/// The key prefix of reply claims (`#reply#<message_id>`), in the claims' `#` namespace.
pub const REPLY_PREFIX: &str = "#reply#";
/// How long a reply claim is kept: as long as the counting records (docs/counting.md).
const REPLY_RECORD_TTL: Duration = Duration::from_secs(15 * 24 * 3600);

impl ReplyClaims for WordStore {
    /// One conditional UpdateItem: taken if there is no claim, or its lease expired while not
    /// done. The old item says whether an attempt came before; on a refusal, whether it is done.
    async fn claim(&self, message_id: &str, lease: Duration) -> Result<Claim, StoreError> {
        use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
        let now = unix_now();
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                KEY,
                AttributeValue::S(format!("{REPLY_PREFIX}{message_id}")),
            )
            .update_expression("SET #state = :posting, #lease = :until, #expires = :expires")
            .condition_expression(
                "attribute_not_exists(#key) OR (#state = :posting AND #lease < :now)",
            )
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":posting", AttributeValue::S("posting".into()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(
                ":until",
                AttributeValue::N((now + lease.as_secs()).to_string()),
            )
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((now + REPLY_RECORD_TTL.as_secs()).to_string()),
            )
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(output) => Ok(Claim::Taken {
                after_an_attempt: output.attributes.is_some_and(|old| !old.is_empty()),
            }),
            Err(err) => {
                use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
                if let Some(UpdateItemError::ConditionalCheckFailedException(failed)) =
                    err.as_service_error()
                {
                    let done = failed
                        .item()
                        .and_then(|item| item.get("state"))
                        .and_then(|state| state.as_s().ok())
                        .is_some_and(|state| state == "done");
                    return Ok(if done { Claim::Done } else { Claim::Busy });
                }
                Err(self.error("DynamoDB UpdateItem", err))
            }
        }
    }

    async fn done(&self, message_id: &str, outcome: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(
                KEY,
                AttributeValue::S(format!("{REPLY_PREFIX}{message_id}")),
            )
            .update_expression("SET #state = :done, #outcome = :outcome")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_values(":done", AttributeValue::S("done".into()))
            .expression_attribute_values(":outcome", AttributeValue::S(outcome.to_owned()))
            .send()
            .await
            .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
        Ok(())
    }
}
