//! The run ledger: one DynamoDB item per run in `COPY_RUNS_TABLE` (partition key `run_id`, S),
//! its counters Number attributes changed only by atomic `ADD` (docs/runs.md):
//! fanout-copy-core's [`RunLedger`] over DynamoDB.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use fanout_aws::DisplayErrorContext;
use fanout_copy_core::ledger::{
    LedgerError, PageCounts, RunLedger, RunRecord, RunStart, MAX_FAILURES_KEPT,
};
use fanout_copy_core::uploads::{BoxFuture, Copying, UploadRegistry};

/// The partition key.
pub const RUN_ID: &str = "run_id";
/// Characters of an error message kept with a failure.
const MAX_ERROR_CHARS: usize = 500;

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

    async fn add(&self, run_id: &str, counters: &[(&str, u64)]) -> Result<(), LedgerError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(run_id));
        let mut terms = Vec::new();
        for (i, (name, value)) in counters.iter().enumerate() {
            terms.push(format!("#c{i} :v{i}"));
            request = request
                .expression_attribute_names(format!("#c{i}"), *name)
                .expression_attribute_values(format!(":v{i}"), n(*value));
        }
        request
            .update_expression(format!("ADD {}", terms.join(", ")))
            .send()
            .await
            .map_err(|e| self.error("DynamoDB UpdateItem", e))?;
        Ok(())
    }
}

fn condition_failed(
    err: &aws_sdk_dynamodb::error::SdkError<
        UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    err.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
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
                 started_at = if_not_exists(started_at, :started_at)",
            )
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

    /// Adds a published page's counts and moves the listing cursor to `cursor`, once: `false`
    /// when the cursor was already there or past it (the page was recorded before).
    async fn record_page(
        &self,
        run_id: &str,
        counts: PageCounts,
        cursor: Option<&str>,
        listing_complete: bool,
    ) -> Result<bool, LedgerError> {
        let mut set = vec!["listing_complete = :complete"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(run_id))
            .expression_attribute_values(":listed", n(counts.listed))
            .expression_attribute_values(":enqueued", n(counts.enqueued))
            .expression_attribute_values(":skipped", n(counts.skipped))
            .expression_attribute_values(":archived", n(counts.archived))
            .expression_attribute_values(":planned_bytes", n(counts.planned_bytes))
            .expression_attribute_values(":complete", AttributeValue::Bool(listing_complete));
        if let Some(cursor) = cursor {
            set.push("#cursor = :cursor");
            request = request
                .expression_attribute_names("#cursor", "cursor")
                .expression_attribute_values(":cursor", s(cursor))
                .condition_expression("attribute_not_exists(#cursor) OR #cursor < :cursor");
        }
        let expression = format!(
            "ADD listed :listed, enqueued :enqueued, skipped :skipped, archived :archived, planned_bytes :planned_bytes SET {}",
            set.join(", ")
        );
        match request.update_expression(expression).send().await {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(self.error("DynamoDB UpdateItem", err)),
        }
    }

    /// Counts one object copied.
    async fn record_copied(&self, run_id: &str, bytes: u64) -> Result<(), LedgerError> {
        self.add(run_id, &[("copied", 1), ("bytes_copied", bytes)])
            .await
    }

    /// Counts one object found unchanged by the copier.
    async fn record_skipped(&self, run_id: &str) -> Result<(), LedgerError> {
        self.add(run_id, &[("skipped", 1)]).await
    }

    /// Counts one failed object and keeps its key and error while the list has room.
    async fn record_failure(
        &self,
        run_id: &str,
        key: &str,
        error: &str,
    ) -> Result<(), LedgerError> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let entry = AttributeValue::M(HashMap::from([
            ("key".to_owned(), s(key)),
            ("error".to_owned(), s(error)),
        ]));
        let kept = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(RUN_ID, s(run_id))
            .update_expression(
                "ADD failed :one SET failures = list_append(if_not_exists(failures, :empty), :entry)",
            )
            .condition_expression("attribute_not_exists(failures) OR size(failures) < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":entry", AttributeValue::L(vec![entry]))
            .expression_attribute_values(":max", n(MAX_FAILURES_KEPT as u64))
            .send()
            .await;
        match kept {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => {
                self.add(run_id, &[("failed", 1), ("failures_not_kept", 1)])
                    .await
            }
            Err(err) => Err(self.error("DynamoDB UpdateItem", err)),
        }
    }

    /// The run's item (strongly consistent), if the run exists.
    async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(RUN_ID, s(run_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("DynamoDB GetItem", e))?;
        Ok(output.item.map(|item| record(run_id, &item)))
    }
}

fn record(run_id: &str, item: &HashMap<String, AttributeValue>) -> RunRecord {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };
    let flag = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or_default()
    };
    let failures = item
        .get("failures")
        .and_then(|v| v.as_l().ok())
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| {
                    let entry = entry.as_m().ok()?;
                    Some((
                        entry.get("key")?.as_s().ok()?.clone(),
                        entry.get("error")?.as_s().ok()?.clone(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    RunRecord {
        run_id: run_id.to_owned(),
        source: text("source").unwrap_or_default(),
        destination: text("destination").unwrap_or_default(),
        dry_run: flag("dry_run"),
        listed: number("listed"),
        enqueued: number("enqueued"),
        copied: number("copied"),
        skipped: number("skipped"),
        failed: number("failed"),
        archived: number("archived"),
        bytes_copied: number("bytes_copied"),
        planned_bytes: number("planned_bytes"),
        listing_complete: flag("listing_complete"),
        cursor: text("cursor"),
        failures,
    }
}

/// How long a registered upload's item is kept when nothing ends it: far longer than any sweep
/// limit, so that the sweep finds it first.
const UPLOAD_RECORD_DAYS: u64 = 30;

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
            .expression_attribute_values(":expires", n(now + UPLOAD_RECORD_DAYS * 86_400));
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
                .expression_attribute_values(":expires", n(now + UPLOAD_RECORD_DAYS * 86_400))
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
