//! s3-fanout: lists a source bucket or prefix beside its destination and publishes one copy job
//! per object that needs copying to `COPY_TOPIC_ARN`, ten per PublishBatch call.
//!
//! It starts from an EventBridge scheduled event (the backup the environment describes) or a
//! manual event `{"source": "s3://…", "destination": "s3://…", "modified_since"?, "dry_run"?}`.
//!
//! A listing too long for one invocation continues in the next: after each page, once less than
//! the reserve of time is left, the function invokes itself asynchronously with the same request
//! plus `run_id` and `start_after` (the last key whose job was published). With
//! `COPY_RUNS_TABLE` set, every page also moves the run's `cursor` there, conditionally, so that a
//! retried or repeated invocation resumes after the last published page instead of publishing
//! it again (docs/copy.md).

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use fanout_common::{ConfigError, Vars};
use fanout_copy::ledger::{LedgerError, PageCounts, RunLedger, RunStart};
use fanout_copy::location::{check_pair, Location};
use fanout_copy::planner::{parse_rfc3339, Planner, RunSpec};
use fanout_copy::publish::{JobPublisher, PublishError};
use fanout_copy::store::{ObjectStore, StoreError};
use lambda_runtime::{Context, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &[
    "SOURCE_BUCKET",
    "DEST_BUCKET",
    "SOURCE_PREFIX",
    "DEST_PREFIX",
    "COPY_TOPIC_ARN",
    "COPY_RUNS_TABLE",
];

/// The IAM actions this function's code calls (checked against infra/template.yaml):
/// ListObjectsV2 on both buckets, PublishBatch, the run item, and its own continuation.
pub const IAM_ACTIONS: &[&str] = &[
    "s3:ListBucket",
    "sns:Publish",
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
    "lambda:InvokeFunction",
];

/// Time kept back for one more page (list it, publish its jobs, record it) before continuing in
/// a new invocation.
pub const DEFAULT_RESERVE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What a scheduled event backs up.
    pub source: Location,
    pub destination: Location,
    pub topic_arn: String,
    pub runs_table: Option<String>,
}

fn location(
    vars: &Vars,
    bucket_var: &'static str,
    prefix_var: &'static str,
) -> Result<Location, ConfigError> {
    let bucket = vars.required(bucket_var, "an S3 bucket name")?;
    let prefix = vars.optional(prefix_var).unwrap_or_default();
    let invalid = |var, value: &str, reason: String| ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason,
        expected: "an S3 bucket name, and a key prefix",
    };
    let parsed = format!("s3://{bucket}/{prefix}")
        .parse::<Location>()
        .map_err(|e| invalid(bucket_var, &bucket, e.to_string()))?;
    if parsed.bucket != bucket {
        return Err(invalid(bucket_var, &bucket, "it contains a slash".into()));
    }
    Ok(parsed)
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let source = location(vars, "SOURCE_BUCKET", "SOURCE_PREFIX")?;
        let destination = location(vars, "DEST_BUCKET", "DEST_PREFIX")?;
        check_pair(&source, &destination).map_err(|e| ConfigError::Other(e.to_string()))?;
        Ok(Config {
            source,
            destination,
            topic_arn: vars.required("COPY_TOPIC_ARN", "the ARN of the SNS topic of copy jobs")?,
            runs_table: vars.optional("COPY_RUNS_TABLE"),
        })
    }
}

/// A run to start or go on with: the manual event, and the continuation event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub source: Location,
    pub destination: Location,
    /// RFC 3339: only objects modified at or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_since: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// Set on continuations (and may be set by hand to resume a run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Start the listing after this source key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
}

/// What the invocation did; the continuation, when there is one, was invoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Answer {
    pub run_id: String,
    pub dry_run: bool,
    pub listed: u64,
    /// Jobs published (none on a dry run).
    pub enqueued: u64,
    pub skipped: u64,
    /// Jobs that would be or were published, and their bytes.
    pub planned: u64,
    pub planned_bytes: u64,
    /// The whole listing is done.
    pub complete: bool,
    /// The run goes on in another invocation with this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation: Option<RunRequest>,
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("{0}; a manual event looks like {{\"source\": \"s3://bucket/prefix/\", \"destination\": \"s3://bucket/prefix/\", \"modified_since\": \"2016-12-13T00:00:00Z\", \"dry_run\": false}} (the last two optional)")]
    BadEvent(String),
    #[error(transparent)]
    Listing(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("could not invoke the continuation of run {run_id}: {detail}")]
    Continue { run_id: String, detail: String },
}

/// How much one invocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Keys per listing page; S3's 1,000 when `None`.
    pub page_size: Option<i32>,
    /// Continue in a new invocation once less than this is left.
    pub reserve: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            page_size: None,
            reserve: DEFAULT_RESERVE,
        }
    }
}

/// Invokes this function again, asynchronously, with the continuation event.
#[derive(Debug, Clone)]
pub struct SelfInvoker {
    client: aws_sdk_lambda::Client,
}

impl SelfInvoker {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        SelfInvoker { client }
    }

    async fn invoke(&self, function_arn: &str, request: &RunRequest) -> Result<(), String> {
        if function_arn.is_empty() {
            return Err("the invocation context names no function".into());
        }
        let payload = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        self.client
            .invoke()
            .function_name(function_arn)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| aws_sdk_lambda::error::DisplayErrorContext(e).to_string())?;
        Ok(())
    }
}

pub struct Fanout {
    config: Config,
    store: ObjectStore,
    publisher: JobPublisher,
    ledger: Option<RunLedger>,
    continuer: Option<SelfInvoker>,
    budget: Budget,
}

impl Fanout {
    /// Without a continuer, a continuation is only returned in the answer.
    pub fn new(
        config: Config,
        store: ObjectStore,
        publisher: JobPublisher,
        ledger: Option<RunLedger>,
        continuer: Option<SelfInvoker>,
        budget: Budget,
    ) -> Self {
        Fanout {
            config,
            store,
            publisher,
            ledger,
            continuer,
            budget,
        }
    }

    /// Reads the event: a scheduled event backs up what the configuration says.
    pub fn request(&self, event: Value, context: &Context) -> Result<RunRequest, FanoutError> {
        let mut request = if event.get("detail-type").is_some() {
            let scheduled: EventBridgeEvent = serde_json::from_value(event).map_err(|e| {
                FanoutError::BadEvent(format!("the scheduled event is invalid: {e}"))
            })?;
            let when = scheduled
                .time
                .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
                .unwrap_or_default();
            let id = scheduled.id.unwrap_or_else(|| context.request_id.clone());
            RunRequest {
                source: self.config.source.clone(),
                destination: self.config.destination.clone(),
                modified_since: None,
                dry_run: false,
                run_id: Some(format!("scheduled-{when}-{id}")),
                start_after: None,
            }
        } else {
            serde_json::from_value::<RunRequest>(event)
                .map_err(|e| FanoutError::BadEvent(format!("the event is invalid: {e}")))?
        };
        check_pair(&request.source, &request.destination)
            .map_err(|e| FanoutError::BadEvent(e.to_string()))?;
        if request.run_id.is_none() {
            request.run_id = Some(format!("manual-{}", context.request_id));
        }
        Ok(request)
    }

    /// Handles one invocation.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Answer, FanoutError> {
        let request = self.request(event.payload, &event.context)?;
        let modified_since = request
            .modified_since
            .as_deref()
            .map(parse_rfc3339)
            .transpose()
            .map_err(|e| FanoutError::BadEvent(format!("modified_since: {e}")))?;
        let run_id = request.run_id.clone().unwrap_or_default();
        let mut start_after = request.start_after.clone();
        if let Some(ledger) = &self.ledger {
            ledger
                .start(&RunStart {
                    run_id: run_id.clone(),
                    source: request.source.to_string(),
                    destination: request.destination.to_string(),
                    dry_run: request.dry_run,
                    started_at: now_rfc3339(),
                })
                .await?;
            let cursor = ledger.get(&run_id).await?.and_then(|run| run.cursor);
            start_after = start_after.max(cursor);
        }
        let spec = RunSpec {
            run_id: run_id.clone(),
            source: request.source.clone(),
            destination: request.destination.clone(),
            modified_since,
        };
        let mut planner = Planner::new(
            self.store.clone(),
            spec,
            start_after.clone(),
            self.budget.page_size,
        );
        let mut answer = Answer {
            run_id: run_id.clone(),
            dry_run: request.dry_run,
            ..Answer::default()
        };
        while let Some(page) = planner.next_page().await? {
            if !request.dry_run {
                self.publisher.publish(&page.jobs).await?;
            }
            let counts = PageCounts {
                listed: page.listed,
                enqueued: if request.dry_run {
                    0
                } else {
                    page.jobs.len() as u64
                },
                skipped: page.skipped,
                planned_bytes: page.planned_bytes,
            };
            if let Some(ledger) = &self.ledger {
                let first = ledger
                    .record_page(&run_id, counts, page.last_key.as_deref(), !page.more)
                    .await?;
                if !first {
                    tracing::warn!(run_id = %run_id, start_after = ?start_after, "this page was recorded by another invocation of the run; stopping here");
                    break;
                }
            }
            answer.listed += counts.listed;
            answer.enqueued += counts.enqueued;
            answer.skipped += counts.skipped;
            answer.planned += page.jobs.len() as u64;
            answer.planned_bytes += counts.planned_bytes;
            if page.last_key.is_some() {
                start_after = page.last_key;
            }
            if !page.more {
                answer.complete = true;
                break;
            }
            if remaining(&event.context) < self.budget.reserve {
                answer.continuation = Some(RunRequest {
                    run_id: Some(run_id.clone()),
                    start_after: start_after.clone(),
                    ..request.clone()
                });
                break;
            }
        }
        if let (Some(next), Some(continuer)) = (&answer.continuation, &self.continuer) {
            continuer
                .invoke(&event.context.invoked_function_arn, next)
                .await
                .map_err(|detail| FanoutError::Continue {
                    run_id: run_id.clone(),
                    detail,
                })?;
        }
        tracing::info!(
            run_id = %answer.run_id,
            listed = answer.listed,
            enqueued = answer.enqueued,
            skipped = answer.skipped,
            planned_bytes = answer.planned_bytes,
            complete = answer.complete,
            continued_after = ?answer.continuation.as_ref().and_then(|c| c.start_after.as_deref()),
            "fanned out"
        );
        Ok(answer)
    }
}

fn remaining(context: &Context) -> Duration {
    context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

fn now_rfc3339() -> String {
    aws_smithy_types::DateTime::from(SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(extra: &[(&'a str, &'a str)]) -> Vars {
        let mut pairs = vec![
            ("SOURCE_BUCKET", "src-bucket"),
            ("DEST_BUCKET", "dst-bucket"),
            ("COPY_TOPIC_ARN", "arn:aws:sns:us-east-1:1:copy"),
        ];
        pairs.extend_from_slice(extra);
        Vars::from_pairs(pairs)
    }

    #[test]
    fn config_reads_the_backup_and_names_bad_variables() {
        let config = Config::from_vars(&vars(&[("SOURCE_PREFIX", "photos/")])).unwrap();
        assert_eq!(config.source, Location::new("src-bucket", "photos/"));
        assert_eq!(config.destination, Location::new("dst-bucket", ""));
        assert_eq!(config.runs_table, None);
        let err = Config::from_vars(&vars(&[("DEST_BUCKET", "Bad_Bucket")])).unwrap_err();
        assert_eq!(err.var(), Some("DEST_BUCKET"));
        let err = Config::from_vars(&vars(&[("DEST_BUCKET", "dst/x")])).unwrap_err();
        assert_eq!(err.var(), Some("DEST_BUCKET"));
        let err = Config::from_vars(&Vars::from_pairs([("DEST_BUCKET", "d-b")])).unwrap_err();
        assert_eq!(err.var(), Some("SOURCE_BUCKET"));
        let err = Config::from_vars(&vars(&[("DEST_BUCKET", "src-bucket")])).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
    }
}
