//! The Lambda fan-out on the copy model, in virtual time: the real planner, fan-out run, copier
//! and engine of fanout-copy-core against a store that keeps only sizes and ETags and answers
//! each request after the model's time for it. Run under a paused tokio clock, a 5 TiB copy
//! takes seconds of CPU and no bytes.
//!
//! What is simulated around the code: S3 (the model: a latency per request, and for a copy
//! request an overhead plus its bytes at one stream's bandwidth; no aggregate limit, no
//! throttling), SNS → SQS → the event source mapping (a fixed delivery time from publish to
//! invocation), Lambda (a timeout per invocation, a maximum concurrency, optionally the event
//! source's documented ramp), and the run ledger's upload registry (a DynamoDB round trip per
//! call). The clock ticks in whole milliseconds, so each request's time is rounded up to the
//! next millisecond.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fanout_copy_core::completion::Announcer;
use fanout_copy_core::copier::{Copied, Copier, CopyOptions};
use fanout_copy_core::decide::{Checksum, Listed, Observed};
use fanout_copy_core::engine::{self, Quiet};
use fanout_copy_core::fanout::{Budget, FanoutParts, JobSink, Refused, RunRequest, SinkError};
use fanout_copy_core::ledger::LedgerError;
use fanout_copy_core::location::Location;
use fanout_copy_core::memory::{MemoryContinuation, MemoryLedger, MemoryUploads};
use fanout_copy_core::plan::{Part, MAX_PARTS, MIN_PART_SIZE};
use fanout_copy_core::store::{
    CompletedPart, CopyRequest, Created, ErrorKind, ObjectCopier, ObjectHead, ObjectLister, Page,
    PartHead, StoreError,
};
use fanout_copy_core::uploads::{BoxFuture, Copying, UploadRegistry};
use fanout_copy_core::{CopyJob, RunSpec};
use futures::stream::{self, StreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::copy_model::CopyModel;
use crate::seeded::SplitMix;

/// S3's most parts per ListParts page (and keys per ListObjectsV2 page).
const PAGE: u64 = 1000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The S3 copy model of `make bench-copy`, with the latency every request pays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub latency: Duration,
    pub copy: CopyModel,
}

impl Model {
    /// The model docs/performance.md measures with: 5 ms, 35 ms per copy, 75 MiB/s per copy.
    pub fn standard() -> Self {
        Model {
            latency: Duration::from_millis(5),
            copy: CopyModel {
                overhead: Duration::from_millis(35),
                bandwidth_mib_s: Some(75.0),
            },
        }
    }

    /// One copy request (CopyObject, UploadPartCopy) of `bytes`.
    pub fn copy_request(&self, bytes: u64) -> Duration {
        self.latency + self.copy.delay(bytes)
    }

    /// The fastest any tool can copy an object of `size` on the model: CreateMultipartUpload,
    /// then every part at once at the smallest part S3 allows for that size (5 MiB, or
    /// size / 10,000 when that is larger), then CompleteMultipartUpload.
    pub fn limit(&self, size: u64) -> Duration {
        let part = MIN_PART_SIZE.max(size.div_ceil(MAX_PARTS)).min(size);
        self.latency + self.copy_request(part) + self.latency
    }
}

/// Requests by kind, and what each costs.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl Tally {
    pub fn add(&self, kind: &'static str, n: u64) {
        *lock(&self.counts).entry(kind).or_default() += n;
    }

    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.counts).clone()
    }
}

/// Request prices, in US dollars per request (us-east-1, S3 Standard, on demand).
pub fn price(kind: &str) -> f64 {
    match kind {
        // PUT, COPY, POST, LIST: $0.005 per 1,000.
        "CopyObject"
        | "UploadPartCopy"
        | "CreateMultipartUpload"
        | "CompleteMultipartUpload"
        | "ListObjectsV2"
        | "ListParts" => 0.005 / 1000.0,
        // GET and all other: $0.0004 per 1,000.
        "HeadObject" | "GetObjectTagging" | "GetObject" => 0.0004 / 1000.0,
        // DELETE and cancel requests are free.
        "AbortMultipartUpload" => 0.0,
        // One 64 KB chunk per batch of ten small jobs: $0.50 per million.
        "SNS PublishBatch" => 0.50 / 1e6,
        "SQS ReceiveMessage" | "SQS DeleteMessageBatch" | "SQS ChangeMessageVisibility" => {
            0.40 / 1e6
        }
        "Lambda invocation" => 0.20 / 1e6,
        // On-demand: $0.625 per million write units, $0.125 per million read units.
        "DynamoDB write" => 0.625 / 1e6,
        "DynamoDB read" => 0.125 / 1e6,
        _ => 0.0,
    }
}

/// Lambda arm64, per GB-second.
pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;

/// Which service a request kind is billed by.
pub fn service(kind: &str) -> &'static str {
    match kind.split_once(' ') {
        Some(("SNS", _)) => "SNS",
        Some(("SQS", _)) => "SQS",
        Some(("Lambda", _)) => "Lambda",
        Some(("DynamoDB", _)) => "DynamoDB",
        _ => "S3",
    }
}

#[derive(Debug, Clone)]
struct SimObject {
    size: u64,
    etag: String,
}

#[derive(Debug)]
struct SimUpload {
    bucket: String,
    key: String,
    parts: BTreeMap<i32, u64>,
}

#[derive(Debug, Default)]
struct StoreState {
    buckets: HashMap<String, BTreeMap<String, SimObject>>,
    uploads: HashMap<String, SimUpload>,
    next_upload: u64,
}

/// S3 on the model: objects are a size and an ETag; every call waits the model's time.
#[derive(Debug, Clone)]
pub struct SimStore {
    model: Model,
    state: Arc<Mutex<StoreState>>,
    tally: Arc<Tally>,
}

impl SimStore {
    pub fn new(model: Model, tally: Arc<Tally>) -> Self {
        SimStore {
            model,
            state: Arc::default(),
            tally,
        }
    }

    pub fn create_bucket(&self, bucket: &str) {
        lock(&self.state)
            .buckets
            .entry(bucket.to_owned())
            .or_default();
    }

    pub fn put(&self, bucket: &str, key: &str, size: u64) {
        let etag = format!("\"{:032x}\"", size ^ 0x5eed_0000_0000);
        lock(&self.state)
            .buckets
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), SimObject { size, etag });
    }

    /// The size of each object under `bucket`, by key.
    pub fn sizes(&self, bucket: &str) -> BTreeMap<String, u64> {
        (lock(&self.state).buckets.get(bucket))
            .map(|objects| objects.iter().map(|(k, o)| (k.clone(), o.size)).collect())
            .unwrap_or_default()
    }

    pub fn open_uploads(&self) -> usize {
        lock(&self.state).uploads.len()
    }

    async fn request(&self, kind: &'static str, time: Duration) {
        self.tally.add(kind, 1);
        tokio::time::sleep(time).await;
    }

    fn error(operation: &'static str, bucket: &str, key: &str, detail: &str) -> StoreError {
        StoreError {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            kind: ErrorKind::Permanent,
            detail: detail.to_owned(),
        }
    }

    /// The request's source, while it has the listed ETag.
    fn source(&self, request: &CopyRequest, operation: &'static str) -> Result<u64, StoreError> {
        let state = lock(&self.state);
        let object = (state.buckets.get(&request.source_bucket))
            .and_then(|objects| objects.get(&request.source_key));
        match object {
            Some(object) if object.etag == request.source_etag => Ok(object.size),
            _ => Err(Self::error(
                operation,
                &request.bucket,
                &request.key,
                "no such source",
            )),
        }
    }
}

impl ObjectLister for SimStore {
    async fn list(
        &self,
        location: &Location,
        start_after: Option<&str>,
        token: Option<&str>,
        max_keys: Option<i32>,
    ) -> Result<Page, StoreError> {
        self.request("ListObjectsV2", self.model.latency).await;
        let state = lock(&self.state);
        let objects = (state.buckets.get(&location.bucket)).ok_or_else(|| StoreError {
            kind: ErrorKind::NoSuchBucket,
            ..Self::error("ListObjectsV2", &location.bucket, "", "NoSuchBucket")
        })?;
        let after = token.or(start_after).unwrap_or_default();
        let limit = max_keys.map_or(PAGE as usize, |n| n.max(1) as usize);
        let mut matching = objects
            .iter()
            .filter(|(key, _)| key.as_str() > after && location.contains(key));
        let listed: Vec<Listed> = (matching.by_ref().take(limit))
            .map(|(key, object)| Listed {
                key: key.clone(),
                size: object.size,
                etag: object.etag.clone(),
                last_modified: None,
                archived: false,
            })
            .collect();
        let next = (matching.next().is_some())
            .then(|| listed.last().map(|object| object.key.clone()))
            .flatten();
        Ok(Page {
            objects: listed,
            next,
        })
    }
}

impl ObjectCopier for SimStore {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        self.request("HeadObject", self.model.latency).await;
        let state = lock(&self.state);
        let object = state.buckets.get(bucket).and_then(|o| o.get(key));
        Ok(object.map(|object| ObjectHead {
            observed: Observed {
                size: object.size,
                etag: object.etag.clone(),
                recorded_source_etag: None,
                checksum: None,
            },
            ..ObjectHead::default()
        }))
    }

    async fn tags(&self, _bucket: &str, _key: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.request("GetObjectTagging", self.model.latency).await;
        Ok(Vec::new())
    }

    /// The simulated objects are single-part: their one part is the object.
    async fn head_part(
        &self,
        bucket: &str,
        key: &str,
        _etag: &str,
        _number: i32,
    ) -> Result<PartHead, StoreError> {
        self.request("HeadObject", self.model.latency).await;
        let state = lock(&self.state);
        let size = (state.buckets.get(bucket).and_then(|o| o.get(key))).map_or(0, |o| o.size);
        Ok(PartHead {
            size,
            parts_count: None,
        })
    }

    async fn copy_object(&self, request: &CopyRequest) -> Result<Option<Checksum>, StoreError> {
        let size = self.source(request, "CopyObject")?;
        self.request("CopyObject", self.model.copy_request(size))
            .await;
        self.put(&request.bucket, &request.key, size);
        Ok(None)
    }

    async fn create_multipart(&self, request: &CopyRequest) -> Result<Created, StoreError> {
        self.request("CreateMultipartUpload", self.model.latency)
            .await;
        let mut state = lock(&self.state);
        state.next_upload += 1;
        let id = format!("upload-{}", state.next_upload);
        let upload = SimUpload {
            bucket: request.bucket.clone(),
            key: request.key.clone(),
            parts: BTreeMap::new(),
        };
        state.uploads.insert(id.clone(), upload);
        Ok(Created {
            upload_id: id,
            maybe_lost: Vec::new(),
        })
    }

    async fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: Part,
    ) -> Result<CompletedPart, StoreError> {
        let size = self.source(request, "UploadPartCopy")?;
        if part.last >= size {
            return Err(Self::error(
                "UploadPartCopy",
                &request.bucket,
                &request.key,
                "InvalidRange",
            ));
        }
        self.request("UploadPartCopy", self.model.copy_request(part.bytes()))
            .await;
        let mut state = lock(&self.state);
        let upload = state.uploads.get_mut(upload_id).ok_or_else(|| {
            Self::error(
                "UploadPartCopy",
                &request.bucket,
                &request.key,
                "NoSuchUpload",
            )
        })?;
        upload.parts.insert(part.number, part.bytes());
        Ok(CompletedPart {
            number: part.number,
            etag: format!("\"part-{}\"", part.number),
            size: part.bytes(),
            checksum: None,
        })
    }

    async fn complete_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<Checksum>, StoreError> {
        self.request("CompleteMultipartUpload", self.model.latency)
            .await;
        let mut state = lock(&self.state);
        let refuse = |detail| {
            Self::error(
                "CompleteMultipartUpload",
                &request.bucket,
                &request.key,
                detail,
            )
        };
        let upload = state
            .uploads
            .remove(upload_id)
            .ok_or_else(|| refuse("NoSuchUpload"))?;
        let mut numbers: Vec<i32> = parts.iter().map(|part| part.number).collect();
        numbers.sort_unstable();
        if numbers != upload.parts.keys().copied().collect::<Vec<_>>() {
            return Err(refuse("InvalidPart"));
        }
        let size = upload.parts.values().sum();
        drop(state);
        self.put(&upload.bucket, &upload.key, size);
        Ok(None)
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.request("DeleteObject", self.model.latency).await;
        if let Some(objects) = lock(&self.state).buckets.get_mut(bucket) {
            objects.remove(key);
        }
        Ok(())
    }

    async fn abort_multipart(
        &self,
        _request: &CopyRequest,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.request("AbortMultipartUpload", self.model.latency)
            .await;
        lock(&self.state).uploads.remove(upload_id);
        Ok(())
    }

    async fn uploaded_parts(
        &self,
        _request: &CopyRequest,
        upload_id: &str,
    ) -> Result<Option<Vec<CompletedPart>>, StoreError> {
        let done = (lock(&self.state).uploads.get(upload_id)).map(|upload| {
            upload
                .parts
                .iter()
                .map(|(n, s)| (*n, *s))
                .collect::<Vec<_>>()
        });
        // One page per 1,000 parts, one after the other (each names where the next starts).
        let pages = done
            .as_ref()
            .map_or(1, |d| (d.len() as u64).div_ceil(PAGE).max(1));
        for _ in 0..pages {
            self.request("ListParts", self.model.latency).await;
        }
        Ok(done.map(|numbers| {
            (numbers.into_iter())
                .map(|(number, size)| CompletedPart {
                    number,
                    etag: format!("\"part-{number}\""),
                    size,
                    checksum: None,
                })
                .collect()
        }))
    }
}

/// The run table's record of open uploads ([`MemoryUploads`]), one DynamoDB round trip per call.
#[derive(Debug)]
pub struct SimRegistry {
    latency: Duration,
    tally: Arc<Tally>,
    uploads: MemoryUploads,
}

impl SimRegistry {
    pub fn new(latency: Duration, tally: Arc<Tally>) -> Self {
        SimRegistry {
            latency,
            tally,
            uploads: MemoryUploads::new(),
        }
    }

    /// The round trip, then the registry's answer.
    fn call<'a, T: Send + 'a>(
        &'a self,
        kind: &'static str,
        answer: BoxFuture<'a, Result<T, LedgerError>>,
    ) -> BoxFuture<'a, Result<T, LedgerError>> {
        Box::pin(async move {
            self.tally.add(kind, 1);
            tokio::time::sleep(self.latency).await;
            answer.await
        })
    }
}

impl UploadRegistry for SimRegistry {
    fn started<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        self.call(
            "DynamoDB write",
            self.uploads.started(bucket, key, upload_id),
        )
    }

    fn ended<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        self.call("DynamoDB write", self.uploads.ended(bucket, key, upload_id))
    }

    fn is_open<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        self.call(
            "DynamoDB read",
            self.uploads.is_open(bucket, key, upload_id),
        )
    }

    fn copying<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload: &'a Copying,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        self.call("DynamoDB write", self.uploads.copying(bucket, key, upload))
    }

    fn current<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Copying>, LedgerError>> {
        self.call("DynamoDB read", self.uploads.current(bucket, key))
    }
}

/// The Lambda side of the fan-out.
#[derive(Debug, Clone, PartialEq)]
pub struct Lambda {
    /// The copier's options and requests in flight per instance (s3-copier's configuration).
    pub options: CopyOptions,
    pub per_instance: usize,
    /// The event source's MaximumConcurrency (and the copier's reserved concurrency).
    pub max_concurrency: usize,
    /// Jobs per invocation, at most (the event source's BatchSize).
    pub batch_size: usize,
    /// Records of a batch handled at once (fanout-common's `RECORD_CONCURRENCY`).
    pub record_concurrency: usize,
    /// The function timeout of s3-copier; s3-fanout's is [`Lambda::fanout_timeout`].
    pub timeout: Duration,
    pub fanout_timeout: Duration,
    /// From the end of a PublishBatch to the invocation that gets its jobs: SNS to SQS, the
    /// event source's poll, the invoke.
    pub delivery: Duration,
    /// The event source's standard scaling: 5 concurrent batches at first, then up to 300
    /// more a minute. Off: all of `max_concurrency` at once.
    pub ramp: bool,
    pub memory_gb: f64,
}

impl Lambda {
    /// The deployed stack's settings: s3-copier's built-in configuration (fixed 16 MiB parts,
    /// 64 requests in flight per instance), the template's BatchSize of 10, Lambda's 900 s.
    pub fn deployed(max_concurrency: usize, delivery: Duration) -> Self {
        let config = s3_copier::Config::from_vars(&fanout_common::Vars::from_pairs([]))
            .expect("the copier's defaults are valid");
        Lambda {
            options: config.options,
            per_instance: config.concurrency,
            max_concurrency,
            batch_size: 10,
            record_concurrency: fanout_common::events::RECORD_CONCURRENCY,
            timeout: Duration::from_secs(900),
            fanout_timeout: Duration::from_secs(300),
            delivery,
            ramp: false,
            memory_gb: 0.25,
        }
    }
}

/// What a simulated run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// From the start to the last object copied.
    pub time: Duration,
    pub objects: u64,
    pub bytes: u64,
    pub copied: u64,
    pub skipped: u64,
    pub errors: Vec<String>,
    /// Copier invocations (the fan-out's own are in `requests`).
    pub invocations: u64,
    pub continuations: u64,
    pub most_at_once: usize,
    pub longest_invocation: Duration,
    pub gb_seconds: f64,
    pub requests: BTreeMap<&'static str, u64>,
    /// Every source object has a destination of its size, and no upload is left open.
    pub verified: bool,
}

impl Outcome {
    /// Cost by service, in dollars: requests, plus Lambda's GB-seconds.
    pub fn cost(&self) -> BTreeMap<&'static str, f64> {
        let mut cost = BTreeMap::new();
        for (kind, n) in &self.requests {
            *cost.entry(service(kind)).or_default() += *n as f64 * price(kind);
        }
        if self.gb_seconds > 0.0 {
            *cost.entry("Lambda").or_default() += self.gb_seconds * LAMBDA_GB_SECOND;
        }
        cost
    }

    /// Requests S3 bills (abort is free, but counted in `requests`).
    pub fn s3_requests(&self) -> u64 {
        (self.requests.iter())
            .filter(|(kind, _)| service(kind) == "S3")
            .map(|(_, n)| n)
            .sum()
    }
}

/// The source objects of a workload, by key, in bucket `src`; copied into bucket `dst`.
pub fn store_with(model: Model, objects: &[(String, u64)]) -> (SimStore, Arc<Tally>) {
    let tally = Arc::new(Tally::default());
    let store = SimStore::new(model, tally.clone());
    store.create_bucket("src");
    store.create_bucket("dst");
    for (key, size) in objects {
        store.put("src", key, *size);
    }
    (store, tally)
}

fn verify(store: &SimStore) -> bool {
    store.open_uploads() == 0 && store.sizes("src") == store.sizes("dst")
}

#[derive(Debug, Default)]
struct QueueState {
    visible: VecDeque<CopyJob>,
    /// Jobs published and not yet done: delivered, in flight or being copied.
    outstanding: u64,
    running: usize,
    fanout_done: bool,
    last_done: Option<Instant>,
    copied: u64,
    skipped: u64,
    errors: Vec<String>,
    invocations: u64,
    continuations: u64,
    most_at_once: usize,
    longest: Duration,
    billed_ms: u128,
}

/// The copy topic, its queue and the event source: what is published becomes visible to the
/// pollers after the delivery time.
struct Queue {
    state: Mutex<QueueState>,
    wake: Notify,
    latency: Duration,
    delivery: Duration,
    tally: Arc<Tally>,
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, QueueState> {
        lock(&self.state)
    }

    fn done_with_one(&self, outcome: Result<Copied, String>) {
        let mut state = self.state();
        match outcome {
            Ok(Copied::Copied { .. }) => state.copied += 1,
            Ok(Copied::Skipped) => state.skipped += 1,
            Ok(Copied::Paused { .. }) => state.continuations += 1,
            Err(error) => state.errors.push(error),
        }
        state.outstanding -= 1;
        state.last_done = Some(Instant::now());
        drop(state);
        self.wake.notify_one();
    }
}

/// The copy topic, as s3-fanout and s3-copier publish to it (fanout-sns's JobPublisher: ten
/// jobs per PublishBatch, a few batches at once).
#[derive(Clone)]
struct Topic(Arc<Queue>);

impl JobSink for Topic {
    async fn publish(&self, jobs: &[CopyJob]) -> Result<Vec<Refused>, SinkError> {
        let queue = &self.0;
        queue.state().outstanding += jobs.len() as u64;
        // Owned batches, as the publisher's: borrowed ones make a future not provably Send.
        let batches = jobs.chunks(fanout_sns::BATCH_SIZE).map(<[CopyJob]>::to_vec);
        stream::iter(batches)
            .map(|batch| async move {
                queue.tally.add("SNS PublishBatch", 1);
                tokio::time::sleep(queue.latency).await;
                let queue = self.0.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(queue.delivery).await;
                    queue.state().visible.extend(batch);
                    queue.wake.notify_one();
                });
            })
            .buffer_unordered(fanout_sns::PUBLISH_CONCURRENCY)
            .collect::<()>()
            .await;
        Ok(Vec::new())
    }
}

/// A current-thread runtime on tokio's paused clock: virtual time that jumps to the next timer
/// whenever nothing can run.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
}

/// The manual event of a run from bucket `src` to bucket `dst` (read as s3-fanout reads it,
/// so that fields the event may leave out keep their defaults).
pub fn run_request(run_id: &str) -> RunRequest {
    serde_json::from_value(serde_json::json!({
        "source": "s3://src/",
        "destination": "s3://dst/",
        "run_id": run_id,
    }))
    .expect("a valid run request")
}

/// Runs `objects` through the Lambda fan-out: one s3-fanout invocation lists the source and
/// publishes a job per object; s3-copier invocations take batches of jobs off the queue, each
/// with its own deadline, and publish the continuation of any copy that pauses.
pub async fn lambda_run(model: Model, lambda: &Lambda, objects: &[(String, u64)]) -> Outcome {
    let (store, tally) = store_with(model, objects);
    let registry: Arc<dyn UploadRegistry> =
        Arc::new(SimRegistry::new(model.latency, tally.clone()));
    let queue = Arc::new(Queue {
        state: Mutex::default(),
        wake: Notify::new(),
        latency: model.latency,
        delivery: lambda.delivery,
        tally: tally.clone(),
    });
    let topic = Topic(queue.clone());
    let start = Instant::now();

    let fanout = async {
        tally.add("Lambda invocation", 1);
        let deadline = start + lambda.fanout_timeout;
        let parts = FanoutParts {
            lister: &store,
            sink: &topic,
            ledger: None::<&MemoryLedger>,
            announcer: &Announcer::default(),
            continuation: None::<&MemoryContinuation>,
            budget: Budget::default(),
        };
        let request = run_request("sim");
        let answer = parts
            .run(request, || {
                deadline.saturating_duration_since(Instant::now())
            })
            .await;
        let billed = start.elapsed().as_millis() + 1;
        let mut state = queue.state();
        state.billed_ms += billed;
        state.fanout_done = true;
        if let Err(error) = answer {
            state.errors.push(format!("s3-fanout: {error}"));
        }
        drop(state);
        queue.wake.notify_one();
    };

    let dispatch = async {
        loop {
            let notified = queue.wake.notified();
            match take_batch(&queue, lambda, start.elapsed()) {
                Next::Done => return,
                Next::Invoke(batch) => {
                    let (queue, topic) = (queue.clone(), topic.clone());
                    let (store, registry, lambda) =
                        (store.clone(), registry.clone(), lambda.clone());
                    tokio::spawn(async move {
                        invoke(&queue, &topic, store, registry, &lambda, batch).await;
                    });
                }
                Next::Wait { waiting } => {
                    match next_raise(lambda, start.elapsed()).filter(|_| waiting) {
                        Some(at) => {
                            tokio::select! {
                                () = notified => {}
                                () = tokio::time::sleep_until(start + at) => {}
                            }
                        }
                        None => notified.await,
                    }
                }
            }
        }
    };
    futures::join!(fanout, dispatch);

    let state = queue.state();
    Outcome {
        time: state.last_done.map_or(Duration::ZERO, |t| t - start),
        objects: objects.len() as u64,
        bytes: objects.iter().map(|(_, size)| size).sum(),
        copied: state.copied,
        skipped: state.skipped,
        errors: state.errors.clone(),
        invocations: state.invocations,
        continuations: state.continuations,
        most_at_once: state.most_at_once,
        longest_invocation: state.longest,
        gb_seconds: state.billed_ms as f64 / 1000.0 * lambda.memory_gb,
        requests: tally.counts(),
        verified: verify(&store),
    }
}

/// What the event source does next.
enum Next {
    Done,
    Invoke(Vec<CopyJob>),
    /// Until a job is delivered, an invocation ends, or (when jobs are `waiting`) the ramp
    /// allows more.
    Wait {
        waiting: bool,
    },
}

/// Takes the next batch off the queue when an invocation may start now.
fn take_batch(queue: &Queue, lambda: &Lambda, elapsed: Duration) -> Next {
    let mut state = queue.state();
    if state.fanout_done && state.outstanding == 0 {
        return Next::Done;
    }
    let waiting = !state.visible.is_empty();
    if !waiting || state.running >= allowed(lambda, elapsed) {
        return Next::Wait { waiting };
    }
    let take = lambda.batch_size.min(state.visible.len());
    let batch: Vec<CopyJob> = state.visible.drain(..take).collect();
    state.running += 1;
    state.invocations += 1;
    state.most_at_once = state.most_at_once.max(state.running);
    Next::Invoke(batch)
}

/// Concurrent invocations the event source allows `elapsed` after the run started.
fn allowed(lambda: &Lambda, elapsed: Duration) -> usize {
    if !lambda.ramp {
        return lambda.max_concurrency;
    }
    ramped(lambda.max_concurrency, elapsed)
}

/// What one SQS event source mapping's standard scaling allows `elapsed` after messages
/// appeared: 5 concurrent batches at first, then 300 more a minute (5 more a second), up to
/// `max_concurrency`.
pub fn ramped(max_concurrency: usize, elapsed: Duration) -> usize {
    (5 + 5 * elapsed.as_secs() as usize).min(max_concurrency)
}

/// When the ramp next allows more, if it ever does.
fn next_raise(lambda: &Lambda, elapsed: Duration) -> Option<Duration> {
    (lambda.ramp && allowed(lambda, elapsed) < lambda.max_concurrency)
        .then(|| Duration::from_secs(elapsed.as_secs() + 1))
}

/// One s3-copier invocation: a batch of jobs, handled as the function's handler does (each
/// job copied within the invocation's deadline; a paused copy's continuation published).
async fn invoke(
    queue: &Queue,
    topic: &Topic,
    store: SimStore,
    registry: Arc<dyn UploadRegistry>,
    lambda: &Lambda,
    batch: Vec<CopyJob>,
) {
    queue.tally.add("Lambda invocation", 1);
    queue.tally.add("SQS ReceiveMessage", 1);
    let started = Instant::now();
    let deadline = started + lambda.timeout;
    let remaining = move || deadline.saturating_duration_since(Instant::now());
    let copier =
        Copier::new(store, lambda.options.clone(), lambda.per_instance).with_registry(registry);
    stream::iter(batch)
        .map(|job| {
            let (copier, remaining) = (&copier, &remaining);
            async move {
                let outcome = match copier.copy_within(&job, remaining).await {
                    Ok(Copied::Paused { continuation }) => {
                        match topic.publish(std::slice::from_ref(&*continuation)).await {
                            Ok(_) => Ok(Copied::Paused { continuation }),
                            Err(error) => Err(error.to_string()),
                        }
                    }
                    other => other.map_err(|error| error.to_string()),
                };
                queue.done_with_one(outcome);
            }
        })
        .buffer_unordered(lambda.record_concurrency)
        .collect::<()>()
        .await;
    queue.tally.add("SQS DeleteMessageBatch", 1);
    let took = started.elapsed();
    let mut state = queue.state();
    if took > lambda.timeout {
        state
            .errors
            .push(format!("an invocation ran {took:?}, past its timeout"));
    }
    state.running -= 1;
    state.longest = state.longest.max(took);
    // Lambda bills each invocation in whole milliseconds, rounded up.
    state.billed_ms += took.as_millis() + u128::from(took.subsec_nanos() % 1_000_000 != 0);
    drop(state);
    queue.wake.notify_one();
}

/// Runs `objects` through the s3-copy engine in one process (no deadline, no queue).
pub async fn engine_run(
    model: Model,
    options: CopyOptions,
    concurrency: usize,
    objects: &[(String, u64)],
) -> Outcome {
    let (store, tally) = store_with(model, objects);
    let copier = Copier::new(store.clone(), options, concurrency);
    let spec = RunSpec {
        run_id: "sim".into(),
        source: "s3://src/".parse().expect("a location"),
        destination: "s3://dst/".parse().expect("a location"),
        modified_since: None,
        include_archived: false,
    };
    let start = Instant::now();
    let (summary, errors) = match engine::run(&copier, spec, false, None, &Quiet).await {
        Ok(summary) => {
            let errors = summary.failures.iter().map(|f| f.error.clone()).collect();
            (summary, errors)
        }
        Err(error) => (*error.summary.clone(), vec![error.to_string()]),
    };
    Outcome {
        time: start.elapsed(),
        objects: objects.len() as u64,
        bytes: objects.iter().map(|(_, size)| size).sum(),
        copied: summary.copied,
        skipped: summary.skipped,
        errors,
        invocations: 0,
        continuations: 0,
        most_at_once: 1,
        longest_invocation: Duration::ZERO,
        gb_seconds: 0.0,
        requests: tally.counts(),
        verified: verify(&store),
    }
}

/// Sizes for `count` objects of `total` bytes in all, each between half and one and a half
/// times the mean, drawn from `seed` (splitmix64), summing to `total` exactly.
pub fn sizes(count: usize, total: u64, seed: u64) -> Vec<u64> {
    let mut random = SplitMix::new(seed);
    let weights: Vec<f64> = (0..count).map(|_| 0.5 + random.unit()).collect();
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<u64> = (weights.iter())
        .map(|w| (w / sum * total as f64) as u64)
        .collect();
    let short = total - sizes.iter().sum::<u64>();
    if let Some(first) = sizes.first_mut() {
        *first += short;
    }
    sizes
}

/// Keys for sizes, in listing order.
pub fn objects(prefix: &str, sizes: &[u64]) -> Vec<(String, u64)> {
    (sizes.iter().enumerate())
        .map(|(i, size)| (format!("{prefix}{i:05}"), *size))
        .collect()
}

/// The other design, on the model's arithmetic: the first copier splits a big object into one
/// job per part, fanned out over the queue, many copiers copy parts at once, and the one that
/// copies the last part lists the parts and completes the upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub time: Duration,
    pub invocations: u64,
    pub publish_batches: u64,
    /// Part copies in flight at once: invocations × parts each, at most.
    pub waves: u64,
    /// A counter per part done (one DynamoDB write each), so that the last one knows it is.
    pub counter_writes: u64,
    pub gb_seconds: f64,
    /// SNS, SQS, Lambda and DynamoDB; S3's requests are those of the other design, plus the
    /// ListParts pages.
    pub cost_besides_s3: f64,
}

/// [`Split`] for one object of `size` in parts of `part_size`.
pub fn split(model: Model, lambda: &Lambda, size: u64, part_size: u64) -> Split {
    let parts = size.div_ceil(part_size);
    let publish_batches = parts.div_ceil(fanout_sns::BATCH_SIZE as u64);
    let publish_rounds = publish_batches.div_ceil(fanout_sns::PUBLISH_CONCURRENCY as u64);
    let per_invocation = (lambda.batch_size.min(lambda.per_instance)) as u64;
    let invocations = parts.div_ceil(per_invocation);
    let waves = parts.div_ceil(per_invocation * lambda.max_concurrency as u64);
    let list_pages = parts.div_ceil(PAGE);
    let l = model.latency;
    // Listing and publishing the object's job; the first copier: HEAD, create, publish the
    // part jobs; the parts in waves, each counted as done; then ListParts and complete.
    let time = l * 3
        + lambda.delivery
        + l * 2
        + l * publish_rounds as u32
        + lambda.delivery
        + (model.copy_request(part_size) + l) * waves as u32
        + l * list_pages as u32
        + l;
    // Each part invocation copies its parts at once and counts each one done.
    let busy = (model.copy_request(part_size) + l).as_secs_f64();
    let gb_seconds = invocations as f64 * busy * lambda.memory_gb;
    let copier_invocations = 1 + invocations;
    let cost_besides_s3 = (copier_invocations + 1) as f64 * price("Lambda invocation")
        + gb_seconds * LAMBDA_GB_SECOND
        + (1 + publish_batches) as f64 * price("SNS PublishBatch")
        + 2.0 * copier_invocations as f64 * price("SQS ReceiveMessage")
        + parts as f64 * price("DynamoDB write");
    Split {
        time,
        invocations: copier_invocations,
        publish_batches: 1 + publish_batches,
        waves,
        counter_writes: parts,
        gb_seconds,
        cost_besides_s3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_copy_core::plan::{PartSize, Thresholds};
    use fanout_copy_core::size::{MIB, TIB};

    fn lambda(options: CopyOptions, per_instance: usize, timeout: Duration) -> Lambda {
        Lambda {
            options,
            per_instance,
            max_concurrency: 1000,
            batch_size: 10,
            record_concurrency: 10,
            timeout,
            fanout_timeout: Duration::from_secs(300),
            delivery: Duration::from_millis(50),
            ramp: false,
            memory_gb: 0.25,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_small_object_takes_the_models_time_exactly() {
        // 15 MiB, below the 16 MiB threshold: one CopyObject of 5 + 35 + 200 ms.
        let model = Model::standard();
        let options = CopyOptions::default();
        let run = lambda_run(
            model,
            &lambda(options, 64, Duration::from_secs(900)),
            &[("a".into(), 15 * MIB)],
        )
        .await;
        assert!(run.verified && run.errors.is_empty(), "{run:?}");
        // List the source, list the destination, PublishBatch, delivery, HEAD, CopyObject.
        let expected = 5 + 5 + 5 + 50 + 5 + 240;
        assert_eq!(run.time, Duration::from_millis(expected));
        assert_eq!(run.requests["ListObjectsV2"], 2);
        assert_eq!(run.requests["CopyObject"], 1);
        assert_eq!(
            run.requests["Lambda invocation"], 2,
            "the fan-out and one copier"
        );
        assert_eq!(run.invocations, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_longer_than_an_invocation_pauses_in_time_and_a_continuation_finishes_it() {
        // 16 MiB parts at 0.1 MiB/s: 160.04 s each, one at a time. After four parts less than
        // twice the slowest is left of 900 s, so the fifth and sixth go to a continuation.
        let model = Model {
            copy: CopyModel {
                overhead: Duration::from_millis(35),
                bandwidth_mib_s: Some(0.1),
            },
            ..Model::standard()
        };
        let options = CopyOptions {
            thresholds: Thresholds::new(16 * MIB, PartSize::Fixed(16 * MIB)).unwrap(),
            ..CopyOptions::default()
        };
        let timeout = Duration::from_secs(900);
        let run = lambda_run(
            model,
            &lambda(options, 1, timeout),
            &[("big".into(), 96 * MIB)],
        )
        .await;
        assert!(run.verified && run.errors.is_empty(), "{run:?}");
        assert_eq!((run.invocations, run.continuations), (2, 1));
        assert_eq!(run.requests["UploadPartCopy"], 6, "no part copied twice");
        assert_eq!(run.requests["CreateMultipartUpload"], 1);
        assert_eq!(run.requests["ListParts"], 1);
        assert!(run.longest_invocation <= timeout, "{run:?}");
        // Six parts back to back, plus what lies around them.
        assert!(run.time > Duration::from_millis(6 * 160_040));
        assert!(run.time < Duration::from_millis(6 * 160_040 + 1_000));
    }

    #[test]
    fn the_limit_is_one_smallest_part_between_create_and_complete() {
        let model = Model::standard();
        // docs/performance.md's (a) and (b): 5 + 106.67 + 5 ms.
        let limit = model.limit(256 * MIB).as_secs_f64();
        assert!((limit - 0.116_667).abs() < 1e-6, "{limit}");
        // 5 TiB: 10,000 parts of 549,755,814 bytes, 7.03 s each.
        let part = (5 * TIB).div_ceil(10_000) as f64;
        let expected = 0.005 + 0.005 + 0.035 + part / (75.0 * MIB as f64) + 0.005;
        assert!((model.limit(5 * TIB).as_secs_f64() - expected).abs() < 1e-9);
    }

    #[test]
    fn workload_sizes_add_up_and_repeat() {
        let a = sizes(1500, 1_000_000_000_000, 2016);
        assert_eq!(a.iter().sum::<u64>(), 1_000_000_000_000);
        assert_eq!(a, sizes(1500, 1_000_000_000_000, 2016));
        // Uniform in [0.5, 1.5) times the mean before scaling to the total, which moves them
        // by a few percent at most for 1,500 draws.
        let mean = 1e12 / 1500.0;
        assert!(a
            .iter()
            .all(|&s| (s as f64) > 0.45 * mean && (s as f64) < 1.55 * mean));
        let (min, max) = (a.iter().min().unwrap(), a.iter().max().unwrap());
        assert!(*max as f64 / *min as f64 <= 3.0, "{min} {max}");
        assert_ne!(a, sizes(1500, 1_000_000_000_000, 7), "the seed matters");
    }
}
