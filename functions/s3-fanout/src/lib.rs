//! s3-fanout: lists a source bucket or prefix beside its destination and publishes one copy job
//! per object that needs copying to `COPY_TOPIC_ARN`, ten per PublishBatch call.
//!
//! It starts from an EventBridge scheduled event (the backup the environment describes), a
//! manual event `{"source": "s3://…", "destination": "s3://…", "modified_since"?, "dry_run"?}`,
//! or an inventory event `{"manifest": "s3://…/manifest.json", "destination": "s3://…",
//! "dry_run"?}`: every current object an S3 Inventory report lists, each of its data files
//! read by an invocation of its own, at once (the run's segments).
//!
//! A listing too long for one invocation continues in the next: after each page, once less than
//! the reserve of time is left, the function invokes itself asynchronously with the same request
//! plus `run_id` and `start_after` (the last key whose job was published). With
//! `COPY_RUNS_TABLE` set, every page also moves the run's `cursor` there, conditionally, so that a
//! retried or repeated invocation resumes after the last published page instead of publishing
//! it again (docs/copy.md).

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use fanout_common::metrics::{names, Metric, Metrics};
use fanout_common::{ConfigError, Vars};
use fanout_copy_core::completion::Announcer;
use fanout_copy_core::fanout::{
    Answer, Budget, Continuation, FanoutError, FanoutParts, InventoryRequest, JobSink, RunRequest,
    INVENTORY_EVENT_EXAMPLE,
};
use fanout_copy_core::ledger::RunLedger;
use fanout_copy_core::location::{check_pair, Location};
use fanout_copy_core::store::{ObjectLister, ObjectReader};
use fanout_copy_core::uploads::{sweep, SweepRequest, Swept, UploadRegistry, UploadStore};
use fanout_lambda_invoke::Invoker;
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
    "RUN_EVENTS_TOPIC_ARN",
    "COPY_REPORT_URL",
];

/// The IAM actions this function's code calls (checked against infra/template.yaml):
/// ListObjectsV2 on both buckets, PublishBatch, the run item, its own continuation, and the
/// sweep of stale uploads in the destination.
pub const IAM_ACTIONS: &[&str] = &[
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:AbortMultipartUpload",
    "sns:Publish",
    "s3:PutObject",
    "s3:GetObject",
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "lambda:InvokeFunction",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What a scheduled event backs up; `None` when the environment names no backup (manual
    /// events name their own source and destination).
    pub backup: Option<Backup>,
    pub topic_arn: String,
    pub runs_table: Option<String>,
    /// Where each run's completion event is published (`RUN_EVENTS_TOPIC_ARN`).
    pub events_topic_arn: Option<String>,
    /// Where each run's failure report is written (`COPY_REPORT_URL`).
    pub report_url: Option<Location>,
}

/// The backup a scheduled event runs: `SOURCE_BUCKET`/`SOURCE_PREFIX` to
/// `DEST_BUCKET`/`DEST_PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub source: Location,
    pub destination: Location,
}

/// What `COPY_REPORT_URL` holds.
pub const REPORT_URL: &str = "an s3:// URL under which each run's failure report is written";

/// Why a scheduled event cannot run when the environment names no backup.
pub const NO_BACKUP: &str = "a scheduled event backs up SOURCE_BUCKET (and SOURCE_PREFIX) to DEST_BUCKET (and DEST_PREFIX), and neither bucket is set in this function's environment: set both, or send a manual event that names its source and destination";

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
    /// The backup is optional as a whole: neither bucket set is no backup, one without the
    /// other is an error naming the missing one.
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let named = ["SOURCE_BUCKET", "DEST_BUCKET"].map(|var| vars.optional(var).is_some());
        let backup = if named == [false, false] {
            None
        } else {
            let source = location(vars, "SOURCE_BUCKET", "SOURCE_PREFIX")?;
            let destination = location(vars, "DEST_BUCKET", "DEST_PREFIX")?;
            check_pair(&source, &destination).map_err(|e| ConfigError::Invalid {
                var: "DEST_BUCKET",
                value: destination.to_string(),
                reason: e.to_string(),
                expected: "a destination that does not overlap the source",
            })?;
            Some(Backup {
                source,
                destination,
            })
        };
        Ok(Config {
            backup,
            topic_arn: vars.required("COPY_TOPIC_ARN", "the ARN of the SNS topic of copy jobs")?,
            runs_table: vars.optional("COPY_RUNS_TABLE"),
            events_topic_arn: vars.optional("RUN_EVENTS_TOPIC_ARN"),
            report_url: vars.parsed_with("COPY_REPORT_URL", REPORT_URL, str::parse::<Location>)?,
        })
    }
}

/// The events s3-fanout takes: an EventBridge scheduled event (the backup the environment
/// describes), a run request (manual, a continuation, or an inventory data file's run), an
/// inventory run, or a sweep of stale uploads. Told apart by `detail-type`, which only the
/// scheduled event has, `manifest` and `sweep`, so that a bad manual event is refused with
/// serde's exact reason (an untagged enum would only say that no shape matched).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub enum FanoutEvent {
    Scheduled(Box<EventBridgeEvent>),
    Run(RunRequest),
    Inventory(InventoryRequest),
    Sweep(SweepRequest),
}

/// What an invocation answers: a run's progress, or what a sweep aborted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Run(Box<Answer>),
    Sweep(Swept),
}

/// Why a sweep cannot run without the runs table.
pub const SWEEP_NEEDS_TABLE: &str = "a sweep aborts only the uploads fanout registered in COPY_RUNS_TABLE, which is not set: set it, or abort stale uploads with a lifecycle rule (docs/deploy.md)";

impl TryFrom<Value> for FanoutEvent {
    type Error = FanoutError;

    fn try_from(event: Value) -> Result<Self, FanoutError> {
        if event.get("sweep").is_some() {
            serde_json::from_value(event)
                .map(FanoutEvent::Sweep)
                .map_err(|e| FanoutError::BadEvent(format!("the sweep event is invalid: {e}; a sweep event looks like {{\"sweep\": \"s3://bucket/prefix/\", \"older_than_hours\": 24}}")))
        } else if event.get("manifest").is_some() {
            serde_json::from_value(event)
                .map(FanoutEvent::Inventory)
                .map_err(|e| FanoutError::BadEvent(format!("the inventory event is invalid: {e}; an inventory event looks like {INVENTORY_EVENT_EXAMPLE}")))
        } else if event.get("detail-type").is_some() {
            serde_json::from_value(event)
                .map(|scheduled| FanoutEvent::Scheduled(Box::new(scheduled)))
                .map_err(|e| FanoutError::BadEvent(format!("the scheduled event is invalid: {e}")))
        } else {
            serde_json::from_value(event)
                .map(FanoutEvent::Run)
                .map_err(|e| FanoutError::BadEvent(format!("the event is invalid: {e}")))
        }
    }
}

/// The handler's state: S3, SNS, DynamoDB and Lambda adapters when deployed.
pub struct Fanout<L, J, R> {
    config: Config,
    lister: L,
    sink: J,
    ledger: Option<R>,
    invoker: Option<Invoker>,
    budget: Budget,
    announcer: Announcer,
    metrics: Metrics,
}

impl<L: ObjectLister, J: JobSink, R: RunLedger> Fanout<L, J, R> {
    /// Without an invoker, a continuation is only returned in the answer.
    pub fn new(
        config: Config,
        lister: L,
        sink: J,
        ledger: Option<R>,
        invoker: Option<Invoker>,
        budget: Budget,
    ) -> Self {
        Fanout {
            config,
            lister,
            sink,
            ledger,
            invoker,
            budget,
            announcer: Announcer::default(),
            metrics: Metrics::from_env(env!("CARGO_PKG_NAME")),
        }
    }

    /// Writes each invocation's metrics with `metrics` (by default, to stdout with the
    /// dimensions of the Lambda environment).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// One invocation's metrics: `JobsEnqueued`, and `RunsFailed` (1 when it returns an
    /// error), which are its `Failures`.
    fn emit(&self, enqueued: Result<u64, &FanoutError>) {
        let failed = u64::from(enqueued.is_err());
        self.metrics.emit(
            failed,
            &[
                Metric::count(names::RUNS_FAILED, failed),
                Metric::count(names::JOBS_ENQUEUED, enqueued.unwrap_or(0)),
            ],
        );
    }

    /// With what a finished run is announced: its report and its completion event.
    pub fn with_announcer(mut self, announcer: Announcer) -> Self {
        self.announcer = announcer;
        self
    }

    /// The run an event asks for: a scheduled event backs up what the configuration says.
    pub fn request(
        &self,
        event: FanoutEvent,
        context: &Context,
    ) -> Result<RunRequest, FanoutError> {
        let mut request = match event {
            FanoutEvent::Scheduled(scheduled) => {
                let backup = (self.config.backup.as_ref())
                    .ok_or_else(|| FanoutError::NotConfigured(NO_BACKUP.into()))?;
                let when = scheduled
                    .time
                    .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
                    .unwrap_or_default();
                let id = scheduled.id.unwrap_or_else(|| context.request_id.clone());
                RunRequest {
                    source: backup.source.clone(),
                    destination: backup.destination.clone(),
                    modified_since: None,
                    dry_run: false,
                    include_archived: false,
                    run_id: Some(format!("scheduled-{when}-{id}")),
                    start_after: None,
                    inventory: None,
                }
            }
            FanoutEvent::Run(request) => request,
            FanoutEvent::Inventory(_) | FanoutEvent::Sweep(_) => {
                return Err(FanoutError::BadEvent(
                    "an inventory or sweep event is not a listing run: send it to the function, which starts it".into(),
                ))
            }
        };
        if request.run_id.is_none() {
            request.run_id = Some(format!("manual-{}", context.request_id));
        }
        Ok(request)
    }

    /// Handles one invocation of a run: a listing's, an inventory's, or one of its data files',
    /// and writes its metrics.
    pub async fn handle(&self, event: LambdaEvent<FanoutEvent>) -> Result<Answer, FanoutError>
    where
        L: ObjectReader,
    {
        let answer = self.run(event).await;
        self.emit(answer.as_ref().map(|answer| answer.enqueued));
        answer
    }

    async fn run(&self, event: LambdaEvent<FanoutEvent>) -> Result<Answer, FanoutError>
    where
        L: ObjectReader,
    {
        let continuation = (self.invoker.as_ref())
            .map(|invoker| invoker.for_function(&event.context.invoked_function_arn));
        let parts = self.parts(continuation.as_ref());
        if let FanoutEvent::Inventory(inventory) = event.payload {
            let run_id = (inventory.run_id.clone())
                .unwrap_or_else(|| format!("inventory-{}", event.context.request_id));
            return parts.start_inventory(inventory, run_id).await;
        }
        let request = self.request(event.payload, &event.context)?;
        let deadline = event.context.deadline();
        let remaining = || {
            deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        };
        if request.inventory.is_some() {
            parts.run_inventory_file(request, remaining).await
        } else {
            parts.run(request, remaining).await
        }
    }

    /// Aborts the stale uploads fanout started under the request's location, and writes the
    /// invocation's metrics.
    pub async fn sweep(&self, request: &SweepRequest) -> Result<Swept, FanoutError>
    where
        L: UploadStore,
        R: UploadRegistry,
    {
        let swept = self.sweep_uploads(request).await;
        self.emit(swept.as_ref().map(|_| 0));
        swept
    }

    async fn sweep_uploads(&self, request: &SweepRequest) -> Result<Swept, FanoutError>
    where
        L: UploadStore,
        R: UploadRegistry,
    {
        let registry = (self.ledger.as_ref())
            .ok_or_else(|| FanoutError::NotConfigured(SWEEP_NEEDS_TABLE.into()))?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let swept = sweep(&self.lister, registry, request, now).await?;
        tracing::info!(location = %request.sweep, aborted = swept.aborted, fresh = swept.fresh, others = swept.others, "swept");
        Ok(swept)
    }

    /// Handles any event: a run (scheduled, manual, continued) or a sweep.
    pub async fn respond(&self, event: LambdaEvent<FanoutEvent>) -> Result<Reply, FanoutError>
    where
        L: UploadStore + ObjectReader,
        R: UploadRegistry,
    {
        // Both futures boxed: held inline, they are deep enough that computing the binary's
        // layout overflows the compiler's query depth.
        match event.payload {
            FanoutEvent::Sweep(request) => Box::pin(self.sweep(&request)).await.map(Reply::Sweep),
            payload => {
                let event = LambdaEvent::new(payload, event.context);
                Box::pin(self.handle(event))
                    .await
                    .map(|answer| Reply::Run(Box::new(answer)))
            }
        }
    }

    fn parts<'a, C: Continuation>(
        &'a self,
        continuation: Option<&'a C>,
    ) -> FanoutParts<'a, L, J, R, C> {
        FanoutParts {
            lister: &self.lister,
            sink: &self.sink,
            ledger: self.ledger.as_ref(),
            announcer: &self.announcer,
            continuation,
            budget: self.budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_copy_core::memory::{MemoryLedger, MemorySink, MemoryStore};

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
        let backup = config.backup.unwrap();
        assert_eq!(backup.source, Location::new("src-bucket", "photos/"));
        assert_eq!(backup.destination, Location::new("dst-bucket", ""));
        assert_eq!(config.runs_table, None);
        let err = Config::from_vars(&vars(&[("DEST_BUCKET", "Bad_Bucket")])).unwrap_err();
        assert_eq!(err.var(), Some("DEST_BUCKET"));
        let err = Config::from_vars(&vars(&[("DEST_BUCKET", "dst/x")])).unwrap_err();
        assert_eq!(err.var(), Some("DEST_BUCKET"));
        let err = Config::from_vars(&Vars::from_pairs([("DEST_BUCKET", "d-b")])).unwrap_err();
        assert_eq!(err.var(), Some("SOURCE_BUCKET"));
        let err = Config::from_vars(&vars(&[("DEST_BUCKET", "src-bucket")])).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
        let err = Config::from_vars(&Vars::from_pairs([("SOURCE_BUCKET", "s-b")])).unwrap_err();
        assert_eq!(err.var(), Some("DEST_BUCKET"));
        let err = Config::from_vars(&vars(&[("COPY_REPORT_URL", "reports/")])).unwrap_err();
        assert_eq!(err.var(), Some("COPY_REPORT_URL"), "{err}");
        let config = Config::from_vars(&vars(&[
            ("COPY_REPORT_URL", "s3://reports/nightly"),
            ("RUN_EVENTS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:runs"),
        ]))
        .unwrap();
        assert_eq!(config.report_url, Some(Location::new("reports", "nightly")));
        assert_eq!(
            config.events_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:1:runs")
        );
    }

    #[tokio::test]
    async fn each_invocation_emits_its_metrics_and_an_error_is_a_failed_run() {
        let store = MemoryStore::new();
        for bucket in ["fanout-local-source", "fanout-local-backup"] {
            store.create_bucket(bucket);
        }
        for key in ["photos/a.jpg", "photos/b.jpg", "photos/c.jpg"] {
            let object = fanout_copy_core::memory::Object::new(key.as_bytes().to_vec());
            store.put("fanout-local-source", key, object);
        }
        let config = Config::from_vars(&Vars::from_pairs([(
            "COPY_TOPIC_ARN",
            "arn:aws:sns:us-east-1:1:copy",
        )]))
        .unwrap();
        let (metrics, captured) = Metrics::captured("s3-fanout");
        let fanout: Fanout<MemoryStore, MemorySink, MemoryLedger> = Fanout::new(
            config,
            store,
            MemorySink::default(),
            Some(MemoryLedger::new()),
            None,
            Budget::default(),
        )
        .with_metrics(metrics);
        let event = |text: &str| {
            let mut context = Context::default();
            context.request_id = "r-1".into();
            context.deadline = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
                + 60_000;
            LambdaEvent::new(serde_json::from_str::<FanoutEvent>(text).unwrap(), context)
        };
        let emitted = || captured.take_counts(["Failures", "RunsFailed", "JobsEnqueued"]);
        let manual = include_str!("../../../events/s3-fanout-manual.json");
        let answer = fanout.handle(event(manual)).await.unwrap();
        assert_eq!(answer.enqueued, 3);
        assert_eq!(emitted(), [0, 0, 3], "a run");
        let scheduled = include_str!("../../../events/s3-fanout-scheduled.json");
        assert!(
            fanout.handle(event(scheduled)).await.is_err(),
            "no backup configured"
        );
        assert_eq!(emitted(), [1, 1, 0], "a failed run");
    }

    #[test]
    fn no_backup_in_the_environment_is_fine_for_manual_events_only() {
        let config = Config::from_vars(&Vars::from_pairs([(
            "COPY_TOPIC_ARN",
            "arn:aws:sns:us-east-1:1:copy",
        )]))
        .unwrap();
        assert_eq!(config.backup, None);
        let fanout: Fanout<MemoryStore, MemorySink, MemoryLedger> = Fanout::new(
            config,
            MemoryStore::new(),
            MemorySink::default(),
            None,
            None,
            Budget::default(),
        );
        let context = Context::default();
        let scheduled: FanoutEvent =
            serde_json::from_str(include_str!("../../../events/s3-fanout-scheduled.json")).unwrap();
        let err = fanout.request(scheduled, &context).unwrap_err().to_string();
        assert!(
            err.contains("SOURCE_BUCKET") && err.contains("DEST_BUCKET"),
            "{err}"
        );
        let manual: FanoutEvent =
            serde_json::from_str(include_str!("../../../events/s3-fanout-manual.json")).unwrap();
        let request = fanout.request(manual, &context).unwrap();
        assert!(request.run_id.is_some());
    }
}
