//! s3-copier: copies the object each copy job names, server side (docs/copy-jobs.md).
//!
//! Takes SNS events, and SQS events whose bodies are SNS notifications or raw jobs; for SQS it
//! answers with partial batch failures. A job that fails for good (the source is gone or
//! changed, the destination bucket is missing, access is denied) is recorded as failed in the
//! run's item and not retried; any other failure, or any failure when no run table is set, fails
//! the message so that it is retried and, in the end, lands in the dead-letter queue.

use aws_lambda_events::event::s3::batch_job::{S3BatchJobEvent, S3BatchJobResponse};
use fanout_common::batch_operations as batch;
pub use fanout_common::batch_operations::CopierEvent;
use fanout_common::events::retry_delay_from;
use fanout_common::events::SqsRecord;
use fanout_common::events::{Batch, BatchError};
use fanout_common::metrics::{names, Metric, Metrics, Tally};
use fanout_common::{ConfigError, Vars};
use fanout_copy_core::batch::{ResultCode, TaskResult};
use fanout_copy_core::completion::Announcer;
use fanout_copy_core::copier::unlimited;
use fanout_copy_core::copier::{Copier, CopyOptions, Remaining};
use fanout_copy_core::fanout::JobSink;
use fanout_copy_core::ledger::{
    LedgerError, Outcome, PageCounts, Position, Recorded, RunLedger, RunRecord, RunStart,
};
use fanout_copy_core::location::Location;
use fanout_copy_core::mirror::{Applied, Change, Mirror, ObjectEvent};
use fanout_copy_core::plan::{
    parse_part_size, PartSize, ThresholdError, Thresholds, AUTO_MAX_PART_SIZE,
    DEFAULT_MULTIPART_THRESHOLD,
};
use fanout_copy_core::size::parse_size;
use fanout_copy_core::store::{ObjectCopier, StorageClass};
use fanout_copy_core::summary::Failure;
use fanout_copy_core::work::{copy_and_record, JobFailure, Runs};
use fanout_copy_core::CopyJob;
use fanout_sqs::Redelivery;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &[
    "COPY_RUNS_TABLE",
    "COPY_MULTIPART_THRESHOLD",
    "COPY_PART_SIZE",
    "COPY_CONCURRENCY",
    "COPY_STORAGE_CLASS",
    "COPY_KMS_KEY_ID",
    "COPY_MAX_RECEIVES",
    "COPY_RETRY_BASE_SECONDS",
    "COPY_TOPIC_ARN",
    "RUN_EVENTS_TOPIC_ARN",
    "COPY_REPORT_URL",
    "BATCH_DESTINATION",
    "DEST_BUCKET",
    "SOURCE_PREFIX",
    "DEST_PREFIX",
    "PROPAGATE_DELETES",
];

/// The IAM actions this function's code calls (checked against infra/template.yaml): HEAD and
/// copy source reads (s3:GetObject, s3:GetObjectTagging; s3:ListBucket so that a missing object
/// is a 404, not a 403), copy destination writes (s3:PutObject, s3:PutObjectTagging for the tags
/// a copy carries, s3:AbortMultipartUpload), and the run item.
pub const IAM_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:GetObjectTagging",
    "s3:ListBucket",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:ListBucketMultipartUploads",
    "s3:DeleteObject",
    "sns:Publish",
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "sqs:ChangeMessageVisibility",
];

/// The part size when `COPY_PART_SIZE` is unset. Unlike the CLI, a copier instance runs beside
/// up to the copier's maximum concurrency of others, so a fan-out is bound by S3's request rate
/// per prefix rather than by one object's parallelism: fixed 16 MiB parts take a third of the
/// requests of 5 MiB ones (docs/copy.md, "The Lambda fan-out, in numbers").
pub const DEFAULT_PART_SIZE: PartSize = PartSize::Fixed(AUTO_MAX_PART_SIZE);
/// Copy requests in flight per instance when `COPY_CONCURRENCY` is unset: one 1 GiB object's
/// 64 parts at once.
pub const DEFAULT_CONCURRENCY: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub runs_table: Option<String>,
    pub options: CopyOptions,
    pub concurrency: usize,
    /// The copy queue's `maxReceiveCount`: a job that fails on this receive goes to the
    /// dead-letter queue, so its failure is recorded with its run first. `None`: unknown.
    pub max_receives: Option<u32>,
    /// How long a job that failed for now waits before its first redelivery
    /// (`COPY_RETRY_BASE_SECONDS`), doubled on each receive (docs/copy.md).
    pub retry_base: Duration,
    /// The copy-job topic: a copy that cannot finish before the invocation's deadline sends
    /// its continuation there. `None`: copies run until they finish or the invocation ends.
    pub topic_arn: Option<String>,
    /// Where each run's completion event is published (`RUN_EVENTS_TOPIC_ARN`).
    pub events_topic_arn: Option<String>,
    /// Where each run's failure report is written (`COPY_REPORT_URL`).
    pub report_url: Option<Location>,
    /// Where S3 Batch Operations jobs copy to, unless a job's user arguments say
    /// (`BATCH_DESTINATION`).
    pub batch_destination: Option<Location>,
    /// Where S3's events for the source are applied (continuous backup): `DEST_BUCKET` and
    /// `DEST_PREFIX`, `SOURCE_PREFIX`, `PROPAGATE_DELETES`. `None` without `DEST_BUCKET`.
    pub mirror: Option<Mirror>,
}

const SIZE: &str = "a size in bytes, or a whole number with KiB, MiB or GiB";

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let threshold = vars
            .parsed_with("COPY_MULTIPART_THRESHOLD", SIZE, parse_size)?
            .unwrap_or(DEFAULT_MULTIPART_THRESHOLD);
        let part_size = vars
            .parsed_with(
                "COPY_PART_SIZE",
                "auto, a size in bytes, or a whole number with KiB, MiB or GiB",
                parse_part_size,
            )?
            .unwrap_or(DEFAULT_PART_SIZE);
        let thresholds = Thresholds::new(threshold, part_size).map_err(|e| {
            let var = if matches!(e, ThresholdError::ThresholdTooLarge(_)) {
                "COPY_MULTIPART_THRESHOLD"
            } else {
                "COPY_PART_SIZE"
            };
            ConfigError::Invalid {
                var,
                value: vars.optional(var).unwrap_or_default(),
                reason: e.to_string(),
                expected:
                    "a multipart threshold of at most 5 GiB and a part size of 5 MiB to 5 GiB",
            }
        })?;
        let concurrency = vars.parsed_or(
            "COPY_CONCURRENCY",
            DEFAULT_CONCURRENCY,
            "a whole number of copy requests in flight at once, 1 or more",
        )?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                var: "COPY_CONCURRENCY",
                value: "0".into(),
                reason: "nothing would be copied".into(),
                expected: "a whole number of copy requests in flight at once, 1 or more",
            });
        }
        let max_receives = vars.parsed_with(
            "COPY_MAX_RECEIVES",
            "the copy queue's maxReceiveCount, a whole number 1 or more",
            |text| {
                (text.parse::<u32>().ok().filter(|&n| n > 0))
                    .ok_or("it is not a whole number of 1 or more")
            },
        )?;
        let retry_base = vars
            .parsed_with(
                "COPY_RETRY_BASE_SECONDS",
                "seconds before a failed job's first redelivery, 1 to 900",
                |text| {
                    (text.parse::<u64>().ok().filter(|n| (1..=900).contains(n)))
                        .map(Duration::from_secs)
                        .ok_or("it is not a whole number of seconds from 1 to 900")
                },
            )?
            .unwrap_or(fanout_common::events::RETRY_BASE);
        Ok(Config {
            max_receives,
            retry_base,
            topic_arn: vars.optional("COPY_TOPIC_ARN"),
            events_topic_arn: vars.optional("RUN_EVENTS_TOPIC_ARN"),
            report_url: vars.parsed_with(
                "COPY_REPORT_URL",
                "an s3:// URL under which each run's failure report is written",
                str::parse::<Location>,
            )?,
            batch_destination: vars.parsed_with(
                "BATCH_DESTINATION",
                "an s3:// URL that S3 Batch Operations jobs copy to",
                str::parse::<Location>,
            )?,
            mirror: mirror(vars)?,
            runs_table: vars.optional("COPY_RUNS_TABLE"),
            options: CopyOptions {
                thresholds,
                storage_class: vars.parsed_with(
                    "COPY_STORAGE_CLASS",
                    "an S3 storage class such as STANDARD_IA",
                    str::parse::<StorageClass>,
                )?,
                kms_key_id: vars.optional("COPY_KMS_KEY_ID"),
            },
            concurrency,
        })
    }
}

/// The continuous backup's configuration, when `DEST_BUCKET` is set.
fn mirror(vars: &Vars) -> Result<Option<Mirror>, ConfigError> {
    let propagate_deletes =
        vars.parsed_with("PROPAGATE_DELETES", "true or false", |text| match text {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("it is neither true nor false"),
        })?;
    let source_prefix = vars.optional("SOURCE_PREFIX").unwrap_or_default();
    let prefix = vars.optional("DEST_PREFIX").unwrap_or_default();
    let Some(bucket) = vars.optional("DEST_BUCKET") else {
        return Ok(None);
    };
    let destination = format!("s3://{bucket}/{prefix}")
        .parse::<Location>()
        .map_err(|e| ConfigError::Invalid {
            var: "DEST_BUCKET",
            value: bucket.clone(),
            reason: e.to_string(),
            expected: "an S3 bucket name",
        })?;
    Ok(Some(Mirror {
        source_prefix,
        destination,
        propagate_deletes: propagate_deletes.unwrap_or(false),
    }))
}

/// The handler's state: S3 and DynamoDB adapters when deployed, in memory in tests.
pub struct CopyHandler<S, R, J> {
    copier: Copier<S>,
    ledger: Option<R>,
    max_receives: Option<u32>,
    continuations: Option<J>,
    announcer: Announcer,
    batch_destination: Option<Location>,
    mirror: Option<Mirror>,
    redelivery: Option<Redelivery>,
    /// The first wait before a failed SQS record comes back, doubled per receive.
    retry_base: Duration,
    metrics: Metrics,
}

/// What one invocation did, for its metrics.
#[derive(Debug, Default)]
struct Counts {
    objects_copied: Tally,
    bytes_copied: Tally,
    copies_failed: Tally,
    records_failed: Tally,
}

impl Counts {
    /// `Failures`: records to be delivered again, and copies that failed for good.
    fn emit(&self, metrics: &Metrics) {
        let (records_failed, copies_failed) = (self.records_failed.get(), self.copies_failed.get());
        metrics.emit(
            records_failed + copies_failed,
            &[
                Metric::count(names::RECORDS_FAILED, records_failed),
                Metric::count(names::COPIES_FAILED, copies_failed),
                Metric::count(names::OBJECTS_COPIED, self.objects_copied.get()),
                Metric::bytes(names::BYTES_COPIED, self.bytes_copied.get()),
            ],
        );
    }

    /// An S3 Batch Operations invocation's results: each task copied (or already in place), or
    /// failed, for now or for good.
    fn tasks(&self, response: &S3BatchJobResponse) {
        for result in &response.results {
            match result.result_code.as_deref() {
                Some(code) if code == ResultCode::Succeeded.as_str() => self.objects_copied.add(1),
                _ => self.copies_failed.add(1),
            }
        }
    }
}

/// The run ledger a job's outcome is recorded in, counting what it records: an object copied
/// (and its bytes), or one whose copy failed for good. What the ledger did not take is not
/// counted: the record fails, and is delivered again.
struct Counting<'a, R> {
    ledger: &'a R,
    counts: &'a Counts,
}

impl<R: RunLedger> RunLedger for Counting<'_, R> {
    async fn start(&self, start: &RunStart) -> Result<(), LedgerError> {
        self.ledger.start(start).await
    }

    async fn record_page(
        &self,
        run_id: &str,
        segment: Option<&str>,
        counts: &PageCounts,
        cursor: Option<&str>,
        complete: bool,
    ) -> Result<bool, LedgerError> {
        (self.ledger)
            .record_page(run_id, segment, counts, cursor, complete)
            .await
    }

    async fn publishing(
        &self,
        run_id: &str,
        segment: Option<&str>,
        last_key: &str,
    ) -> Result<(), LedgerError> {
        self.ledger.publishing(run_id, segment, last_key).await
    }

    async fn position(&self, run_id: &str, segment: Option<&str>) -> Result<Position, LedgerError> {
        self.ledger.position(run_id, segment).await
    }

    async fn with_outcomes(
        &self,
        run_id: &str,
        keys: &[String],
    ) -> Result<Vec<String>, LedgerError> {
        self.ledger.with_outcomes(run_id, keys).await
    }

    async fn record_outcome(
        &self,
        run_id: &str,
        key: &str,
        outcome: &Outcome,
    ) -> Result<Recorded, LedgerError> {
        let recorded = self.ledger.record_outcome(run_id, key, outcome).await?;
        match outcome {
            Outcome::Copied { bytes, .. } => {
                self.counts.objects_copied.add(1);
                self.counts.bytes_copied.add(*bytes);
            }
            Outcome::Failed(_) => self.counts.copies_failed.add(1),
            Outcome::Skipped => {}
        }
        Ok(recorded)
    }

    async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, LedgerError> {
        self.ledger.get(run_id).await
    }

    async fn failures(&self, run_id: &str) -> Result<Vec<Failure>, LedgerError> {
        self.ledger.failures(run_id).await
    }

    async fn complete(
        &self,
        run_id: &str,
        shard: Option<usize>,
    ) -> Result<Option<RunRecord>, LedgerError> {
        self.ledger.complete(run_id, shard).await
    }

    async fn release(&self, run_id: &str) -> Result<(), LedgerError> {
        self.ledger.release(run_id).await
    }

    async fn announced(&self, run_id: &str) -> Result<(), LedgerError> {
        self.ledger.announced(run_id).await
    }
}

impl<S: ObjectCopier, R: RunLedger, J: JobSink> CopyHandler<S, R, J> {
    pub fn new(copier: Copier<S>, ledger: Option<R>) -> Self {
        CopyHandler {
            copier,
            ledger,
            max_receives: None,
            continuations: None,
            announcer: Announcer::default(),
            batch_destination: None,
            mirror: None,
            redelivery: None,
            retry_base: fanout_common::events::RETRY_BASE,
            metrics: Metrics::from_env(env!("CARGO_PKG_NAME")),
        }
    }

    /// Writes each invocation's metrics with `metrics` (by default, to stdout with the
    /// dimensions of the Lambda environment).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// With where S3's events for the source are applied (continuous backup).
    pub fn with_mirror(mut self, mirror: Option<Mirror>) -> Self {
        self.mirror = mirror;
        self
    }

    /// Applies an S3 event from the copy queue. One that can never be applied is dropped
    /// with an error in the log (the nightly run copies or reports its object); one that may
    /// apply later, or that arrives without `DEST_BUCKET`, fails its delivery, so that it is
    /// retried and, in the end, dead-lettered.
    async fn apply_event(
        &self,
        event: Result<ObjectEvent, String>,
        remaining: Remaining<'_>,
        counts: &Counts,
    ) -> Result<(), JobFailure> {
        let event = match event {
            Ok(event) => event,
            Err(why) => {
                tracing::error!(error = %why, "an S3 event that can never be applied was dropped");
                return Ok(());
            }
        };
        let Some(mirror) = &self.mirror else {
            return Err(JobFailure::Event(
                "S3 events reach s3-copier and DEST_BUCKET is not set: set it, or remove the EventBridge rule".into(),
            ));
        };
        let (event_id, key) = (&event.id, &event.key);
        match mirror.apply(&self.copier, &event, remaining).await {
            Ok(Applied::Copied(what)) => {
                counts.objects_copied.add(1);
                tracing::info!(%event_id, %key, "{what}");
                Ok(())
            }
            Ok(Applied::Deleted(what) | Applied::Ignored(what)) => {
                tracing::info!(%event_id, %key, "{what}");
                Ok(())
            }
            Ok(Applied::Refused(why)) => {
                if event.change == Change::Created {
                    counts.copies_failed.add(1);
                }
                tracing::error!(%event_id, %key, error = %why, "an S3 event that can never be applied was dropped; the nightly run copies or reports the object");
                Ok(())
            }
            Err(later) => Err(JobFailure::Event(later.message)),
        }
    }

    /// With where S3 Batch Operations jobs copy to unless their user arguments say.
    pub fn with_batch_destination(mut self, destination: Option<Location>) -> Self {
        self.batch_destination = destination;
        self
    }

    /// With what brings the failed records of an SQS batch back sooner than the copy queue's
    /// visibility timeout (set for the longest copy): a job that failed for now (throttling,
    /// a 5xx) comes back after [`fanout_sqs::retry_delay`] (from the configured first wait),
    /// growing with each receive.
    pub fn with_redelivery(mut self, redelivery: Option<Redelivery>) -> Self {
        self.redelivery = redelivery;
        self
    }

    /// With another first wait before a failed record comes back (`COPY_RETRY_BASE_SECONDS`).
    pub fn with_retry_base(mut self, retry_base: Duration) -> Self {
        self.retry_base = retry_base;
        self
    }

    /// Handles any event s3-copier takes, before the invocation's `deadline` when there is one,
    /// and writes the invocation's metrics: `ObjectsCopied`, `BytesCopied`, `RecordsFailed`
    /// (to be delivered again) and `CopiesFailed` (failed for good: recorded so with their run,
    /// a Batch Operations task's failure, an S3 event's copy refused), which together are its
    /// `Failures`.
    pub async fn handle_event(
        &self,
        event: CopierEvent,
        deadline: Option<SystemTime>,
    ) -> Result<Value, BatchError> {
        let counts = Counts::default();
        let answer = self.dispatch(event, deadline, &counts).await;
        counts.emit(&self.metrics);
        answer
    }

    async fn dispatch(
        &self,
        event: CopierEvent,
        deadline: Option<SystemTime>,
        counts: &Counts,
    ) -> Result<Value, BatchError> {
        match event {
            CopierEvent::Jobs(batch) => {
                let records = batch.sqs_records();
                let answer = self.jobs(batch, deadline, counts).await?;
                if let Some(redelivery) = &self.redelivery {
                    let base = self.retry_base;
                    let delay = |record: &SqsRecord| {
                        retry_delay_from(base, record.receive_count, &record.id)
                    };
                    redelivery.delay_failures(&records, &answer, delay).await;
                }
                Ok(answer)
            }
            CopierEvent::BatchOperations(event) => {
                let response = self.batch_operations(&event, deadline).await;
                counts.tasks(&response);
                Ok(serde_json::to_value(response).expect("a response always serializes"))
            }
        }
    }

    /// Handles an S3 Batch Operations invocation: each task's object copied, or a result that
    /// says why not. A multipart copy stops before the `deadline` only when the run table
    /// registers its upload, so that the task's retry resumes it; without, it runs to its end.
    pub async fn batch_operations(
        &self,
        event: &S3BatchJobEvent,
        deadline: Option<SystemTime>,
    ) -> S3BatchJobResponse {
        let until_deadline = move || remaining_until(deadline);
        self.batch_operations_within(event, self.pausable(&until_deadline))
            .await
    }

    /// The time a copy that may pause has: `remaining` with the upload registry, where its
    /// retry finds the paused upload; unlimited without, as a paused copy could not resume.
    fn pausable<'a>(&self, remaining: Remaining<'a>) -> Remaining<'a> {
        if self.copier.has_registry() {
            remaining
        } else {
            &unlimited
        }
    }

    /// Handles an S3 Batch Operations invocation with the time `remaining` tells.
    pub async fn batch_operations_within(
        &self,
        event: &S3BatchJobEvent,
        remaining: fanout_copy_core::copier::Remaining<'_>,
    ) -> S3BatchJobResponse {
        let invocation = batch::Invocation::read(event, self.batch_destination.as_ref());
        let target = invocation.target.as_ref().map_err(String::as_str);
        let job_id = invocation.job_id.as_str();
        let results = futures::future::join_all(invocation.tasks.iter().map(|(id, task)| async move {
            let result = match (task, target) {
                // A job-level refusal first: it says what to mend for every task.
                (_, Err(why)) => TaskResult::permanent(why),
                (Err(refused), _) => refused.clone(),
                (Ok(task), Ok(target)) => {
                    fanout_copy_core::batch::copy_task(&self.copier, job_id, target, task, remaining)
                        .await
                }
            };
            tracing::info!(task = %id, code = result.code.as_str(), message = %result.message, "batch operations task");
            (id.clone(), result)
        }))
        .await;
        batch::response(event, results)
    }

    /// With what a finished run is announced: its report and its completion event.
    pub fn with_announcer(mut self, announcer: Announcer) -> Self {
        self.announcer = announcer;
        self
    }

    /// With somewhere to send continuations: a multipart copy that cannot finish before the
    /// invocation's deadline stops in time and goes on in a continuation job.
    pub fn with_continuations(mut self, sink: Option<J>) -> Self {
        self.continuations = sink;
        self
    }

    /// With the copy queue's `maxReceiveCount`: a job failing on its last receive is recorded
    /// with its run as it goes to the dead-letter queue.
    pub fn with_max_receives(mut self, max_receives: Option<u32>) -> Self {
        self.max_receives = max_receives;
        self
    }

    /// Handles an SNS or SQS event: each job copied and counted in its run, before the
    /// invocation's `deadline` when there is one.
    pub async fn handle(
        &self,
        batch: Batch,
        deadline: Option<SystemTime>,
    ) -> Result<Value, BatchError> {
        self.jobs(batch, deadline, &Counts::default()).await
    }

    /// [`CopyHandler::handle`], counting what it does in `counts`.
    async fn jobs(
        &self,
        batch: Batch,
        deadline: Option<SystemTime>,
        counts: &Counts,
    ) -> Result<Value, BatchError> {
        let remaining = move || remaining_until(deadline);
        batch
            .handle(|delivery| async move {
                let handled = self.job(delivery, &remaining, counts).await;
                if handled.is_err() {
                    counts.records_failed.add(1);
                }
                handled
            })
            .await
    }

    /// One delivery: a copy job, or an S3 event for the continuous backup.
    async fn job(
        &self,
        delivery: fanout_common::events::Delivery,
        remaining: Remaining<'_>,
        counts: &Counts,
    ) -> Result<(), JobFailure> {
        let last = matches!(
            (delivery.receive_count, self.max_receives),
            (Some(count), Some(max)) if count >= max
        );
        let body = &delivery.body;
        if let Some(event) = fanout_common::s3_events::read(body) {
            return self
                .apply_event(event, self.pausable(remaining), counts)
                .await;
        }
        let counting = (self.ledger.as_ref()).map(|ledger| Counting { ledger, counts });
        let runs = counting.as_ref().map(|ledger| Runs {
            ledger,
            announcer: &self.announcer,
        });
        let Some(sink) = &self.continuations else {
            // Nowhere to continue: the copy runs until it finishes.
            return copy_and_record(&self.copier, runs, body, last, &unlimited)
                .await
                .map(|_| ());
        };
        match copy_and_record(&self.copier, runs, body, last, remaining).await? {
            Some(continuation) => hand_on(sink, continuation).await,
            None => Ok(()),
        }
    }
}

/// The time left until `deadline`; unlimited without one.
fn remaining_until(deadline: Option<SystemTime>) -> Duration {
    match deadline {
        Some(deadline) => deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
        None => Duration::MAX,
    }
}

/// Publishes a continuation job; a failure fails the delivery, so that it is retried (its
/// upload stays registered for the sweep).
async fn hand_on<J: JobSink>(sink: &J, continuation: CopyJob) -> Result<(), JobFailure> {
    let refused = sink
        .publish(std::slice::from_ref(&continuation))
        .await
        .map_err(|e| JobFailure::Continue(e.to_string()))?;
    match refused.first() {
        Some(refused) => Err(JobFailure::Continue(refused.reason.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_copy_core::size::MIB;

    #[test]
    fn defaults_and_knobs() {
        let config = Config::from_vars(&Vars::from_pairs([])).unwrap();
        assert_eq!(
            config.options.thresholds,
            Thresholds::new(DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE).unwrap()
        );
        assert_eq!(config.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(config.runs_table, None);
        assert_eq!(config.max_receives, None);
        let config = Config::from_vars(&Vars::from_pairs([
            ("COPY_MULTIPART_THRESHOLD", "8MiB"),
            ("COPY_PART_SIZE", "5242880"),
            ("COPY_CONCURRENCY", "10"),
            ("COPY_STORAGE_CLASS", "STANDARD_IA"),
            ("COPY_KMS_KEY_ID", "alias/backup"),
            ("COPY_RUNS_TABLE", "runs"),
            ("COPY_MAX_RECEIVES", "5"),
            ("COPY_RETRY_BASE_SECONDS", "2"),
        ]))
        .unwrap();
        assert_eq!(config.max_receives, Some(5));
        assert_eq!(config.retry_base, Duration::from_secs(2));
        assert_eq!(config.options.thresholds.multipart_threshold(), 8 * MIB);
        assert_eq!(
            config.options.thresholds.part_size(),
            PartSize::Fixed(5 * MIB)
        );
        assert_eq!(config.concurrency, 10);
        assert_eq!(config.options.kms_key_id.as_deref(), Some("alias/backup"));
        let config = Config::from_vars(&Vars::from_pairs([("COPY_PART_SIZE", "auto")])).unwrap();
        assert_eq!(config.options.thresholds.part_size(), PartSize::Auto);
    }

    #[tokio::test]
    async fn a_job_failing_on_its_last_receive_is_recorded_with_its_run() {
        use fanout_copy_core::ledger::RunLedger;
        use fanout_copy_core::memory::{MemoryLedger, MemorySink, MemoryStore, Object};
        use fanout_copy_core::store::ErrorKind;
        let store = MemoryStore::new();
        store.create_bucket("dst");
        let object = Object::new(b"data".to_vec());
        let job = serde_json::json!({
            "schema_version": 1, "run_id": "run-1",
            "source": {"bucket": "src", "key": "a.txt", "size": 4, "etag": object.etag},
            "destination": {"bucket": "dst", "key": "a.txt"}
        });
        store.put("src", "a.txt", object);
        let handler: CopyHandler<_, _, MemorySink> = CopyHandler::new(
            Copier::new(store, CopyOptions::default(), 2),
            Some(MemoryLedger::new()),
        )
        .with_max_receives(Some(5));
        let event = |count: u32| {
            serde_json::from_value::<Batch>(serde_json::json!({"Records": [{
                "messageId": format!("m-{count}"), "body": job.to_string(), "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": count.to_string()}
            }]}))
            .unwrap()
        };
        let ledger = handler.ledger.as_ref().unwrap();
        for count in [4, 5] {
            handler
                .copier
                .store()
                .fail("HeadObject", 1, ErrorKind::Transient);
            let answer = handler.handle(event(count), None).await.unwrap();
            assert_eq!(
                answer["batchItemFailures"][0]["itemIdentifier"],
                format!("m-{count}"),
                "the record fails either way, so SQS retries or dead-letters it"
            );
            let failed = ledger
                .get("run-1")
                .await
                .unwrap()
                .map_or(0, |run| run.failed);
            assert_eq!(failed, u64::from(count == 5), "receive {count}");
        }
    }

    #[tokio::test]
    async fn each_invocation_emits_its_metrics_and_copies_failed_for_good_are_failures() {
        use fanout_copy_core::memory::{MemoryLedger, MemorySink, MemoryStore, Object};
        use fanout_copy_core::store::ErrorKind;
        let store = MemoryStore::new();
        for bucket in ["src", "dst", "fanout-local-source", "fanout-local-backup"] {
            store.create_bucket(bucket);
        }
        let object = Object::new(b"data".to_vec());
        let job = |key: &str| {
            serde_json::json!({
                "schema_version": 1, "run_id": "run-1",
                "source": {"bucket": "src", "key": key, "size": 4, "etag": object.etag},
                "destination": {"bucket": "dst", "key": key}
            })
        };
        store.put("src", "a.txt", object.clone());
        let (metrics, captured) = Metrics::captured("s3-copier");
        let handler: CopyHandler<_, _, MemorySink> = CopyHandler::new(
            Copier::new(store, CopyOptions::default(), 2),
            Some(MemoryLedger::new()),
        )
        .with_metrics(metrics);
        let jobs = |keys: &[&str]| {
            let records: Vec<Value> = keys
                .iter()
                .map(|key| serde_json::json!({"messageId": key, "body": job(key).to_string(), "eventSource": "aws:sqs"}))
                .collect();
            serde_json::from_value::<CopierEvent>(serde_json::json!({ "Records": records }))
                .unwrap()
        };
        let emitted = || {
            captured.take_counts([
                "Failures",
                "RecordsFailed",
                "CopiesFailed",
                "ObjectsCopied",
                "BytesCopied",
            ])
        };
        // One copied, one whose source is gone: recorded as failed with its run, for good.
        let answer = handler
            .handle_event(jobs(&["a.txt", "gone.txt"]), None)
            .await
            .unwrap();
        assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
        assert_eq!(emitted(), [1, 0, 1, 1, 4]);
        // A failure for now: the record comes back.
        handler
            .copier
            .store()
            .fail("HeadObject", 1, ErrorKind::Transient);
        let answer = handler.handle_event(jobs(&["a.txt"]), None).await.unwrap();
        assert_eq!(answer["batchItemFailures"].as_array().unwrap().len(), 1);
        assert_eq!(emitted(), [1, 1, 0, 0, 0]);

        // S3 Batch Operations: a task copied, then a task whose object is missing.
        let tasks = || {
            serde_json::from_str::<CopierEvent>(include_str!(
                "../../../events/s3-copier-batch-operations-2.0.json"
            ))
            .unwrap()
        };
        let answer = handler.handle_event(tasks(), None).await.unwrap();
        assert_eq!(answer["results"][0]["resultCode"], "PermanentFailure");
        assert_eq!(emitted(), [1, 0, 1, 0, 0]);
        (handler.copier.store()).put(
            "fanout-local-source",
            "photos/2016/12/13/sunrise.jpg",
            object,
        );
        let answer = handler.handle_event(tasks(), None).await.unwrap();
        assert_eq!(answer["results"][0]["resultCode"], "Succeeded");
        assert_eq!(emitted(), [0, 0, 0, 1, 0]);
    }

    #[test]
    fn bad_knobs_name_their_variable() {
        for (var, value) in [
            ("COPY_MULTIPART_THRESHOLD", "8MB"),
            ("COPY_MULTIPART_THRESHOLD", "6GiB"),
            ("COPY_PART_SIZE", "1MiB"),
            ("COPY_PART_SIZE", "automatic"),
            ("COPY_CONCURRENCY", "0"),
            ("COPY_CONCURRENCY", "many"),
            ("COPY_STORAGE_CLASS", "cheap"),
            ("COPY_MAX_RECEIVES", "0"),
            ("COPY_MAX_RECEIVES", "five"),
            ("COPY_RETRY_BASE_SECONDS", "0"),
            ("COPY_RETRY_BASE_SECONDS", "901"),
            ("COPY_REPORT_URL", "reports/"),
            ("BATCH_DESTINATION", "backup-bucket"),
            ("PROPAGATE_DELETES", "yes"),
            ("DEST_BUCKET", "Not_A_Bucket"),
        ] {
            let err = Config::from_vars(&Vars::from_pairs([(var, value)])).unwrap_err();
            assert_eq!(err.var(), Some(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn the_continuous_backup_needs_dest_bucket_and_reads_the_fanouts_names() {
        assert_eq!(
            Config::from_vars(&Vars::from_pairs([])).unwrap().mirror,
            None
        );
        let config = Config::from_vars(&Vars::from_pairs([
            ("DEST_BUCKET", "backup"),
            ("DEST_PREFIX", "nightly/"),
            ("SOURCE_PREFIX", "photos/"),
            ("PROPAGATE_DELETES", "true"),
        ]))
        .unwrap();
        assert_eq!(
            config.mirror,
            Some(Mirror {
                source_prefix: "photos/".into(),
                destination: Location::new("backup", "nightly/"),
                propagate_deletes: true,
            })
        );
    }
}
