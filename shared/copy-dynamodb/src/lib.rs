//! The run ledger in `COPY_RUNS_TABLE` (partition key `run_id`, S): fanout-copy-core's
//! [`RunLedger`] over DynamoDB (docs/runs.md). Items, all in the one table:
//!
//! - `<run_id>`: the run: how it started, the listing's counts (one write a page), its cursor,
//!   `completed_at` and `announced_at`; for a listing in segments (an inventory's data files),
//!   `segments` and `segments_done`.
//! - `segment#<run_id>#<segment>`: one segment's `cursor` and `publishing`.
//! - `shard#<run_id>#<n>`, n < 64: one counter shard: the jobs planned for it (`jobs`), and the
//!   outcomes recorded (`jobs_done`, `copied`, `skipped`, `failed`, `verified`,
//!   `bytes_copied`), changed only by atomic `ADD`.
//! - `object#<run_id>#<key>`: the object's outcome, written once (a conditional Put in the same
//!   transaction as its shard's `ADD`), so that a redelivered job counts nothing again.
//! - `failure#<run_id>#<n>#<i>`: a failure of shard n, at the place i it took from the shard's
//!   `failure_places` counter, so that every failure can be read back by key with strongly
//!   consistent reads.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use fanout_aws::DisplayErrorContext;
use fanout_copy_core::ledger::{
    shard_of, LedgerError, Outcome, PageCounts, Position, Recorded, RunLedger, RunRecord, RunStart,
    ANNOUNCE_LEASE, COUNTER_SHARDS,
};
use fanout_copy_core::summary::{Failure, FailureClass};
use fanout_copy_core::uploads::{BoxFuture, Copying, UploadRegistry};

/// The partition key.
pub const RUN_ID: &str = "run_id";
/// Characters of an error message kept with a failure.
const MAX_ERROR_CHARS: usize = 1_000;
/// Keys per BatchGetItem.
const BATCH_GET_LIMIT: usize = 100;
/// Transactions that collide with others on the same shard, tried again before giving up.
const COLLISION_RETRIES: u32 = 8;

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB table of runs.
#[derive(Debug, Clone)]
pub struct RunTable {
    client: Client,
    table: String,
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn shard_item(run_id: &str, shard: usize) -> String {
    format!("shard#{run_id}#{shard}")
}

fn segment_item(run_id: &str, segment: &str) -> String {
    format!("segment#{run_id}#{segment}")
}

/// The whole listing is done: the one listing, or every segment.
fn listing_done(item: &Item) -> bool {
    let segments = number(item, "segments");
    flag(item, "listing_complete") || (segments > 0 && number(item, "segments_done") >= segments)
}

fn object_item(run_id: &str, key: &str) -> String {
    format!("object#{run_id}#{key}")
}

fn failure_item(run_id: &str, shard: usize, index: u64) -> String {
    format!("failure#{run_id}#{shard}#{index}")
}

fn number(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn flag(item: &Item, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or_default()
}

/// Why DynamoDB cancelled a transaction, by its items' cancellation reasons.
enum Cancelled {
    /// An item's condition failed.
    Condition,
    /// Another transaction or write on the same item: try again.
    Collision,
    Other,
}

fn cancellation(
    err: &SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Cancelled {
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
    if codes.contains(&"ConditionalCheckFailed") {
        Cancelled::Condition
    } else if codes
        .iter()
        .any(|code| matches!(*code, "TransactionConflict" | "ThrottlingError"))
    {
        Cancelled::Collision
    } else {
        Cancelled::Other
    }
}

impl RunTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        RunTable {
            client,
            table: table.into(),
        }
    }

    fn error(&self, operation: &'static str, err: impl std::error::Error) -> LedgerError {
        LedgerError {
            operation,
            ledger: format!("table {}", self.table),
            detail: DisplayErrorContext(err).to_string(),
        }
    }

    fn key(&self, id: impl Into<String>) -> Item {
        HashMap::from([(RUN_ID.to_owned(), s(id))])
    }

    /// One item, strongly consistent.
    async fn item(&self, id: String) -> Result<Option<Item>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("DynamoDB GetItem", e))?;
        Ok(output.item)
    }

    /// Items by id, strongly consistent, 100 a request; those that exist.
    async fn items(&self, ids: Vec<String>) -> Result<Vec<Item>, LedgerError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_LIMIT) {
            let mut keys: Vec<Item> = chunk.iter().map(|id| self.key(id.clone())).collect();
            let mut attempt = 0;
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| self.error("DynamoDB BatchGetItem", e))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.error("DynamoDB BatchGetItem", e))?;
                found.extend(
                    output
                        .responses
                        .and_then(|mut tables| tables.remove(&self.table))
                        .unwrap_or_default(),
                );
                keys = output
                    .unprocessed_keys
                    .and_then(|mut tables| tables.remove(&self.table))
                    .map(|left| left.keys)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    attempt += 1;
                    tokio::time::sleep(fanout_aws::collision_backoff(attempt)).await;
                }
            }
        }
        Ok(found)
    }

    /// Every shard of the run that has been written, by shard number.
    async fn shards(&self, run_id: &str) -> Result<Vec<Item>, LedgerError> {
        self.items((0..COUNTER_SHARDS).map(|i| shard_item(run_id, i)).collect())
            .await
    }

    /// Sends a transaction, tried again while it collides with others; `false` when an item's
    /// condition failed (nothing was written).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, LedgerError> {
        let mut attempt = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(true),
                Err(err) => err,
            };
            match cancellation(&err) {
                Cancelled::Condition => return Ok(false),
                Cancelled::Collision if attempt < COLLISION_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(fanout_aws::collision_backoff(attempt)).await;
                }
                Cancelled::Collision | Cancelled::Other => {
                    return Err(self.error("DynamoDB TransactWriteItems", err))
                }
            }
        }
    }

    fn update(&self, id: String) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(id)))
    }

    fn write(
        &self,
        update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    ) -> Result<TransactWriteItem, LedgerError> {
        let update = update
            .build()
            .map_err(|e| self.error("DynamoDB TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, LedgerError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(|e| self.error("DynamoDB TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The writes of one outcome: the object's item (once), its shard's counters and, for a
    /// failure, the failure's item at `index`, the place it was given.
    fn outcome_writes(
        &self,
        run_id: &str,
        key: &str,
        outcome: &Outcome,
        index: u64,
    ) -> Result<Vec<TransactWriteItem>, LedgerError> {
        let shard = shard_of(key);
        let expires = unix_now() + RECORD_DAYS * 86_400;
        let mut object = self.key(object_item(run_id, key));
        object.insert("outcome".into(), s(outcome.name()));
        object.insert("expires_at".into(), n(expires));
        let mut writes = vec![self.put(object, "attribute_not_exists(run_id)")?];
        let counter = self.update(shard_item(run_id, shard));
        let counter = match outcome {
            Outcome::Copied { bytes, verified } => counter
                .update_expression(
                    "ADD jobs_done :one, copied :one, bytes_copied :bytes, verified :verified",
                )
                .expression_attribute_values(":bytes", n(*bytes))
                .expression_attribute_values(":verified", n(u64::from(*verified))),
            Outcome::Skipped => counter.update_expression("ADD jobs_done :one, skipped :one"),
            Outcome::Failed(failure) => {
                let mut item = self.key(failure_item(run_id, shard, index));
                item.insert("key".into(), s(key));
                item.insert("size".into(), n(failure.size));
                item.insert("error_class".into(), s(failure.class.as_str()));
                let message: String = failure.error.chars().take(MAX_ERROR_CHARS).collect();
                item.insert("message".into(), s(message));
                item.insert("expires_at".into(), n(expires));
                writes.push(self.put(item, "attribute_not_exists(run_id)")?);
                counter.update_expression("ADD jobs_done :one, failed :one")
            }
        };
        writes.insert(
            1,
            self.write(counter.expression_attribute_values(":one", n(1)))?,
        );
        Ok(writes)
    }
}

impl RunLedger for RunTable {
    /// Records how the run started; a second start of the same run changes nothing.
    async fn start(&self, start: &RunStart) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(&start.run_id))
            .update_expression(
                "SET #source = if_not_exists(#source, :source), \
                 destination = if_not_exists(destination, :destination), \
                 dry_run = if_not_exists(dry_run, :dry_run), \
                 started_at = if_not_exists(started_at, :started_at), \
                 #segments = if_not_exists(#segments, :segments)",
            )
            .expression_attribute_names("#segments", "segments")
            .expression_attribute_values(":segments", n(start.segments))
            .expression_attribute_names("#source", "source")
            .expression_attribute_values(":source", s(&start.source))
            .expression_attribute_values(":destination", s(&start.destination))
            .expression_attribute_values(":dry_run", AttributeValue::Bool(start.dry_run))
            .expression_attribute_values(":started_at", s(&start.started_at))
            .send()
            .await
            .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
        Ok(())
    }

    /// One transaction: the page's counts added to the run and the cursor moved, on the
    /// condition that the cursor was before `cursor`, and each shard's planned jobs added. A
    /// segment's cursor is on its own item; its completion adds one to the run's
    /// `segments_done`, once, as the cursor moves only once to the segment's end.
    async fn record_page(
        &self,
        run_id: &str,
        segment: Option<&str>,
        counts: &PageCounts,
        cursor: Option<&str>,
        complete: bool,
    ) -> Result<bool, LedgerError> {
        let mut add = vec![
            "listed :listed",
            "enqueued :enqueued",
            "skipped :skipped",
            "archived :archived",
            "planned_bytes :planned_bytes",
        ];
        let mut set = Vec::new();
        let mut run = self
            .update(run_id.to_owned())
            .expression_attribute_values(":listed", n(counts.listed))
            .expression_attribute_values(":enqueued", n(counts.enqueued))
            .expression_attribute_values(":skipped", n(counts.skipped))
            .expression_attribute_values(":archived", n(counts.archived))
            .expression_attribute_values(":planned_bytes", n(counts.planned_bytes));
        let mut writes = Vec::new();
        match segment {
            None => {
                set.push("listing_complete = :complete");
                run = run.expression_attribute_values(":complete", AttributeValue::Bool(complete));
                if let Some(cursor) = cursor {
                    set.push("#cursor = :cursor");
                    run = run
                        .expression_attribute_names("#cursor", "cursor")
                        .expression_attribute_values(":cursor", s(cursor))
                        .condition_expression("attribute_not_exists(#cursor) OR #cursor < :cursor");
                }
            }
            Some(segment) => {
                if complete {
                    add.push("segments_done :one");
                    run = run.expression_attribute_values(":one", n(1));
                }
                let mut position = self.update(segment_item(run_id, segment));
                if let Some(cursor) = cursor {
                    position = position
                        .update_expression("SET #cursor = :cursor")
                        .expression_attribute_names("#cursor", "cursor")
                        .expression_attribute_values(":cursor", s(cursor))
                        .condition_expression("attribute_not_exists(#cursor) OR #cursor < :cursor");
                    writes.push(self.write(position)?);
                }
            }
        }
        let mut expression = format!("ADD {}", add.join(", "));
        if !set.is_empty() {
            expression = format!("{expression} SET {}", set.join(", "));
        }
        writes.insert(0, self.write(run.update_expression(expression))?);
        for (shard, jobs) in &counts.jobs {
            writes.push(
                self.write(
                    self.update(shard_item(run_id, *shard))
                        .update_expression("ADD jobs :jobs")
                        .expression_attribute_values(":jobs", n(*jobs)),
                )?,
            );
        }
        self.transact(writes).await
    }

    async fn publishing(
        &self,
        run_id: &str,
        segment: Option<&str>,
        last_key: &str,
    ) -> Result<(), LedgerError> {
        let item = match segment {
            Some(segment) => segment_item(run_id, segment),
            None => run_id.to_owned(),
        };
        self.client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(item))
            .update_expression("SET publishing = :key")
            .expression_attribute_values(":key", s(last_key))
            .send()
            .await
            .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
        Ok(())
    }

    /// One strongly consistent read: the run's item, or the segment's.
    async fn position(&self, run_id: &str, segment: Option<&str>) -> Result<Position, LedgerError> {
        let item = match segment {
            Some(segment) => segment_item(run_id, segment),
            None => run_id.to_owned(),
        };
        let item = self.item(item).await?.unwrap_or_default();
        Ok(Position {
            cursor: text(&item, "cursor"),
            publishing: text(&item, "publishing"),
        })
    }

    /// Strongly consistent reads of the keys' `object#` items.
    async fn with_outcomes(
        &self,
        run_id: &str,
        keys: &[String],
    ) -> Result<Vec<String>, LedgerError> {
        let prefix = object_item(run_id, "");
        let found = self
            .items(keys.iter().map(|key| object_item(run_id, key)).collect())
            .await?;
        Ok(found
            .iter()
            .filter_map(|item| text(item, RUN_ID)?.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    /// One transaction: the object's outcome item (on the condition that it has none yet) and
    /// its shard's counters; a failure also gets its item, at a place taken before.
    async fn record_outcome(
        &self,
        run_id: &str,
        key: &str,
        outcome: &Outcome,
    ) -> Result<Recorded, LedgerError> {
        // A failure's item gets its place first: an index no other failure of the shard has
        // (a place left empty, by a crash or an outcome recorded before, is skipped on reading).
        let index = match outcome {
            Outcome::Failed(_) => {
                let output = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key(RUN_ID, s(shard_item(run_id, shard_of(key))))
                    .update_expression("ADD failure_places :one")
                    .expression_attribute_values(":one", n(1))
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                    .send()
                    .await
                    .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
                output
                    .attributes
                    .map(|item| number(&item, "failure_places"))
                    .unwrap_or(1)
                    - 1
            }
            _ => 0,
        };
        let writes = self.outcome_writes(run_id, key, outcome, index)?;
        Ok(if self.transact(writes).await? {
            Recorded::Now
        } else {
            Recorded::Before
        })
    }

    /// The run's item and its shards, summed (strongly consistent), if the run exists (a job
    /// sent by hand, with no fan-out, has shards and no run item).
    async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, LedgerError> {
        let item = self.item(run_id.to_owned()).await?;
        let shards = self.shards(run_id).await?;
        if item.is_none() && shards.is_empty() {
            return Ok(None);
        }
        Ok(Some(record(run_id, &item.unwrap_or_default(), &shards)))
    }

    /// Every failure item of the run, shard by shard.
    async fn failures(&self, run_id: &str) -> Result<Vec<Failure>, LedgerError> {
        let mut ids = Vec::new();
        for item in self.shards(run_id).await? {
            let Some(id) = text(&item, RUN_ID) else {
                continue;
            };
            let Some(shard) = id.rsplit('#').next().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let places = number(&item, "failure_places");
            ids.extend((0..places).map(|i| failure_item(run_id, shard, i)));
        }
        let mut failures: Vec<(String, Failure)> = self
            .items(ids)
            .await?
            .into_iter()
            .map(|item| {
                let failure = Failure {
                    key: text(&item, "key").unwrap_or_default(),
                    error: text(&item, "message").unwrap_or_default(),
                    size: number(&item, "size"),
                    class: text(&item, "error_class")
                        .and_then(|class| FailureClass::parse(&class))
                        .unwrap_or(FailureClass::Permanent),
                };
                (failure.key.clone(), failure)
            })
            .collect();
        failures.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(failures.into_iter().map(|(_, failure)| failure).collect())
    }

    /// Reads the caller's shard first (one item): most outcomes stop there.
    async fn complete(
        &self,
        run_id: &str,
        shard: Option<usize>,
    ) -> Result<Option<RunRecord>, LedgerError> {
        if let Some(shard) = shard {
            let item = self.item(shard_item(run_id, shard)).await?;
            let (jobs, done) = item
                .map(|item| (number(&item, "jobs"), number(&item, "jobs_done")))
                .unwrap_or_default();
            if done < jobs {
                return Ok(None);
            }
        }
        let Some(item) = self.item(run_id.to_owned()).await? else {
            return Ok(None);
        };
        let claimed = number(&item, "announcing_until") >= unix_now();
        if !listing_done(&item) || item.contains_key("announced_at") || claimed {
            return Ok(None);
        }
        let mut run = record(run_id, &item, &self.shards(run_id).await?);
        if !run.is_over() {
            return Ok(None);
        }
        // Claims the announcement: the first caller to find the run over announces it.
        let now = unix_now();
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(run_id))
            .update_expression(
                "SET completed_at = if_not_exists(completed_at, :now), announcing_until = :until",
            )
            .condition_expression(
                "attribute_not_exists(announced_at) AND (attribute_not_exists(announcing_until) OR announcing_until < :epoch)",
            )
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":epoch", n(now))
            .expression_attribute_values(":until", n(now + ANNOUNCE_LEASE.as_secs()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match claimed {
            Ok(output) => {
                run.completed_at = output
                    .attributes
                    .and_then(|item| text(&item, "completed_at"));
            }
            Err(err)
                if err.as_service_error().is_some_and(
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::is_conditional_check_failed_exception,
                ) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(self.error("DynamoDB UpdateItem", err)),
        }
        Ok(Some(run))
    }

    async fn release(&self, run_id: &str) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(run_id))
            .update_expression("REMOVE announcing_until")
            .send()
            .await
            .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
        Ok(())
    }

    async fn announced(&self, run_id: &str) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(run_id))
            .update_expression("SET announced_at = if_not_exists(announced_at, :now)")
            .expression_attribute_values(":now", s(now_rfc3339()))
            .send()
            .await
            .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
        Ok(())
    }
}

fn now_rfc3339() -> String {
    fanout_copy_core::fanout::now_rfc3339()
}

/// The run from its item and its shards' counters.
fn record(run_id: &str, item: &Item, shards: &[Item]) -> RunRecord {
    let sum = |name: &str| shards.iter().map(|shard| number(shard, name)).sum::<u64>();
    RunRecord {
        run_id: run_id.to_owned(),
        source: text(item, "source").unwrap_or_default(),
        destination: text(item, "destination").unwrap_or_default(),
        dry_run: flag(item, "dry_run"),
        started_at: text(item, "started_at").unwrap_or_default(),
        listed: number(item, "listed"),
        enqueued: number(item, "enqueued"),
        copied: sum("copied"),
        skipped: number(item, "skipped") + sum("skipped"),
        failed: sum("failed"),
        archived: number(item, "archived"),
        verified: sum("verified"),
        bytes_copied: sum("bytes_copied"),
        planned_bytes: number(item, "planned_bytes"),
        jobs: sum("jobs"),
        jobs_done: sum("jobs_done"),
        listing_complete: flag(item, "listing_complete"),
        segments: number(item, "segments"),
        segments_done: number(item, "segments_done"),
        cursor: text(item, "cursor"),
        publishing: text(item, "publishing"),
        completed_at: text(item, "completed_at"),
        announced: item.contains_key("announced_at"),
    }
}

/// How long an outcome's or failure's item, or a registered upload's item that nothing ended,
/// is kept: far longer than a run, or any sweep limit.
const RECORD_DAYS: u64 = 30;

/// The item of a registered multipart upload, beside the runs: `upload#<bucket>#<upload id>`.
fn upload_item(bucket: &str, upload_id: &str) -> String {
    format!("upload#{bucket}#{upload_id}")
}

impl RunTable {
    async fn set_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        ended: bool,
    ) -> Result<(), LedgerError> {
        let now = unix_now();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(upload_item(bucket, upload_id)))
            .expression_attribute_names("#key", "key")
            .expression_attribute_names("#bucket", "bucket")
            .expression_attribute_values(":bucket", s(bucket))
            .expression_attribute_values(":key", s(key))
            .expression_attribute_values(":id", s(upload_id))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", n(now + RECORD_DAYS * 86_400));
        request = if ended {
            request.update_expression(
                "SET #bucket = :bucket, #key = :key, upload_id = :id, ended_at = :now, expires_at = :expires",
            )
        } else {
            request.update_expression(
                "SET #bucket = :bucket, #key = :key, upload_id = :id, started_at = :now, expires_at = :expires",
            )
        };
        request
            .send()
            .await
            .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
        Ok(())
    }
}

impl UploadRegistry for RunTable {
    /// Writes the upload's item.
    fn started<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(self.set_upload(bucket, key, upload_id, false))
    }

    /// Marks the upload's item ended (the copier may only update items).
    fn ended<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(self.set_upload(bucket, key, upload_id, true))
    }

    fn is_open<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(RUN_ID, s(upload_item(bucket, upload_id)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.error("DynamoDB GetItem", e))?;
            Ok(output.item.is_some_and(|item| {
                item.get("key")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some(key)
                    && item.contains_key("started_at")
                    && !item.contains_key("ended_at")
            }))
        })
    }

    /// Writes the destination object's item: what its newest upload copies.
    fn copying<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload: &'a Copying,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let now = unix_now();
            self.client
                .update_item()
                .table_name(&self.table)
                .key(RUN_ID, s(copying_item(bucket, key)))
                .update_expression(
                    "SET upload_id = :id, source_etag = :etag, part_size = :size, expires_at = :expires",
                )
                .expression_attribute_values(":id", s(&upload.upload_id))
                .expression_attribute_values(":etag", s(&upload.source_etag))
                .expression_attribute_values(":size", n(upload.part_size))
                .expression_attribute_values(":expires", n(now + RECORD_DAYS * 86_400))
                .send()
                .await
                .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
            Ok(())
        })
    }

    fn current<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Copying>, LedgerError>> {
        Box::pin(async move {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(RUN_ID, s(copying_item(bucket, key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.error("DynamoDB GetItem", e))?;
            Ok(output.item.and_then(|item| {
                let text = |name: &str| item.get(name)?.as_s().ok().cloned();
                Some(Copying {
                    upload_id: text("upload_id")?,
                    source_etag: text("source_etag")?,
                    part_size: item.get("part_size")?.as_n().ok()?.parse().ok()?,
                })
            }))
        })
    }
}

/// The item of a destination object being copied in parts: `upload-of#<bucket>#<key>`.
fn copying_item(bucket: &str, key: &str) -> String {
    format!("upload-of#{bucket}#{key}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
