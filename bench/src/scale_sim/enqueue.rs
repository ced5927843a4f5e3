//! Enqueueing a scale run's jobs, in virtual time: by listing, with the project's own fan-out
//! protocol (`FanoutParts::run`: the real planner lists the source beside the destination and
//! hands on a job per object, page by page, continuing in a new invocation before the
//! timeout), or from an S3 Inventory report whose data files are read in parallel, one
//! s3-fanout invocation per file, as `FanoutParts::run_inventory_file` does (modelled: a GET of
//! the file per invocation, its rows a thousand at a time, each job told to look at the
//! destination, which is not listed). Both publish as fanout-sns does: ten jobs per
//! `PublishBatch`, a few batches at once.
//!
//! What comes out is when each batch of jobs becomes visible on the copy queue; the copy side
//! ([`super::copy`]) takes it from there. SNS and SQS push back on nothing here, so the enqueue
//! does not depend on how fast the copies go, and one enqueue serves every concurrency.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fanout_copy_core::completion::Announcer;
use fanout_copy_core::decide::Listed;
use fanout_copy_core::fanout::{Budget, FanoutParts, JobSink, Refused, SinkError, DEFAULT_RESERVE};
use fanout_copy_core::location::Location;
use fanout_copy_core::memory::{MemoryContinuation, MemoryLedger};
use fanout_copy_core::store::{ErrorKind, ObjectLister, Page, StoreError};
use fanout_copy_core::CopyJob;
use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use super::{Keys, Ns, Workload};
use crate::fanout_sim::{paused_runtime, Tally};

/// Keys per ListObjectsV2 page, and rows an inventory reader hands on at a time.
const PAGE: u64 = 1000;

/// How the jobs are enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueue {
    /// One s3-fanout invocation at a time lists the source (and the destination) page by page.
    Listing,
    /// An S3 Inventory report of data files of at most this many rows, each read by an
    /// s3-fanout invocation of its own, all at once.
    Inventory { rows_per_file: u64 },
}

impl Enqueue {
    pub fn label(&self) -> &'static str {
        match self {
            Enqueue::Listing => "listing",
            Enqueue::Inventory { .. } => "inventory",
        }
    }

    /// The inventory's data files for `objects` rows (none for a listing).
    pub fn files(&self, objects: u64) -> u64 {
        match self {
            Enqueue::Listing => 0,
            Enqueue::Inventory { rows_per_file } => objects.div_ceil((*rows_per_file).max(1)),
        }
    }
}

/// The timing of the enqueue side.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueueTiming {
    /// Every request (S3 GET or LIST, `PublishBatch`) takes this long.
    pub latency: Duration,
    /// From the end of a `PublishBatch` to its jobs being visible to the event source; also
    /// from an asynchronous invoke to the invocation.
    pub delivery: Duration,
    /// s3-fanout's timeout; it continues in a new invocation once less than
    /// [`DEFAULT_RESERVE`] is left.
    pub timeout: Duration,
    pub memory_gb: f64,
}

/// Jobs `first..first + count` (in key order) become visible on the queue at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub at: Ns,
    pub first: u64,
    pub count: u32,
}

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub mode: Enqueue,
    /// The jobs look at the destination first: an inventory run does not list it
    /// (`FanoutParts::run_inventory_file`).
    pub check_destination: bool,
    /// Every batch of jobs, by the time it becomes visible.
    pub deliveries: Vec<Delivery>,
    /// From the start to the end of the last `PublishBatch`.
    pub time: Ns,
    /// s3-fanout's requests (`ListObjectsV2`, `GetObject`, `SNS PublishBatch`) and invocations.
    pub requests: BTreeMap<&'static str, u64>,
    pub gb_seconds: f64,
    /// The most `PublishBatch` calls ending in one second.
    pub peak_publish_per_second: u64,
}

fn ns(d: Duration) -> Ns {
    d.as_nanos() as Ns
}

/// Records each `PublishBatch` instead of delivering it: the batches' jobs and when they
/// become visible.
struct Recorder {
    start: Instant,
    timing: EnqueueTiming,
    tally: Arc<Tally>,
    keys: Keys,
    deliveries: Mutex<Vec<Delivery>>,
}

impl Recorder {
    /// Publishes jobs `first..first + count` as fanout-sns does: ten a batch, a few batches
    /// at once.
    async fn publish_range(&self, first: u64, count: u64) {
        let batch = fanout_sns::BATCH_SIZE as u64;
        let batches =
            (0..count.div_ceil(batch)).map(|b| (first + b * batch, batch.min(count - b * batch)));
        stream::iter(batches)
            .map(|(first, count)| async move {
                self.tally.add("SNS PublishBatch", 1);
                tokio::time::sleep(self.timing.latency).await;
                let at = ns(self.start.elapsed() + self.timing.delivery);
                let delivery = Delivery {
                    at,
                    first,
                    count: count as u32,
                };
                self.deliveries.lock().expect("recorder").push(delivery);
            })
            .buffer_unordered(fanout_sns::PUBLISH_CONCURRENCY)
            .collect::<()>()
            .await;
    }
}

impl JobSink for Recorder {
    /// A planned page's jobs are consecutive objects of the listing.
    async fn publish(&self, jobs: &[CopyJob]) -> Result<Vec<Refused>, SinkError> {
        if let Some(job) = jobs.first() {
            let first = self.keys.index(&job.source.key).ok_or_else(|| SinkError {
                operation: "SNS PublishBatch",
                destination: "the simulated topic".into(),
                detail: format!("{} is not a key of the workload", job.source.key),
            })?;
            self.publish_range(first, jobs.len() as u64).await;
        }
        Ok(Vec::new())
    }
}

/// The source bucket `src` of a workload, listed from its keys without holding them; the
/// destination `dst` is empty.
struct Bucket {
    workload: Workload,
    keys: Keys,
    latency: Duration,
    tally: Arc<Tally>,
}

impl ObjectLister for Bucket {
    async fn list(
        &self,
        location: &Location,
        start_after: Option<&str>,
        token: Option<&str>,
        max_keys: Option<i32>,
    ) -> Result<Page, StoreError> {
        self.tally.add("ListObjectsV2", 1);
        tokio::time::sleep(self.latency).await;
        if location.bucket != "src" {
            return if location.bucket == "dst" {
                Ok(Page {
                    objects: Vec::new(),
                    next: None,
                })
            } else {
                Err(StoreError {
                    operation: "ListObjectsV2",
                    bucket: location.bucket.clone(),
                    key: String::new(),
                    kind: ErrorKind::NoSuchBucket,
                    detail: "NoSuchBucket".into(),
                })
            };
        }
        let from = match token.or(start_after) {
            Some(key) => self.keys.index(key).map_or(u64::MAX, |i| i + 1),
            None => 0,
        };
        let limit = max_keys.map_or(PAGE, |n| n.max(1) as u64);
        let to = self.workload.objects.min(from.saturating_add(limit));
        let etag = self.workload.etag();
        let objects: Vec<Listed> = (from..to)
            .map(|i| Listed {
                key: self.keys.key(i),
                size: self.workload.size,
                etag: etag.clone(),
                last_modified: None,
                archived: false,
            })
            .collect();
        let next = (to < self.workload.objects).then(|| self.keys.key(to - 1));
        Ok(Page { objects, next })
    }
}

/// Enqueues `workload` (keys laid out by `keys`) the way `mode` says.
pub fn enqueue(workload: &Workload, keys: Keys, mode: Enqueue, timing: &EnqueueTiming) -> Enqueued {
    paused_runtime().block_on(async {
        let tally = Arc::new(Tally::default());
        let recorder = Recorder {
            start: Instant::now(),
            timing: timing.clone(),
            tally: tally.clone(),
            keys,
            deliveries: Mutex::default(),
        };
        let billed = match mode {
            Enqueue::Listing => by_listing(workload, &recorder).await,
            Enqueue::Inventory { rows_per_file } => {
                by_inventory(workload.objects, rows_per_file, &recorder).await
            }
        };
        let mut deliveries = recorder.deliveries.into_inner().expect("recorder");
        deliveries.sort_by_key(|d| (d.at, d.first));
        let delivery = ns(timing.delivery);
        let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
        for d in &deliveries {
            *per_second
                .entry((d.at - delivery) / super::SECOND)
                .or_default() += 1;
        }
        let last_publish = deliveries
            .iter()
            .map(|d| d.at - delivery)
            .max()
            .unwrap_or(0);
        let mut requests = tally.counts();
        requests.insert("Lambda invocation", billed.len() as u64);
        // Lambda bills each invocation in whole milliseconds, rounded up.
        let billed_s: f64 = billed
            .iter()
            .map(|d| d.as_nanos().div_ceil(1_000_000) as f64 / 1000.0)
            .sum();
        Enqueued {
            mode,
            check_destination: matches!(mode, Enqueue::Inventory { .. }),
            deliveries,
            time: last_publish,
            requests,
            gb_seconds: billed_s * timing.memory_gb,
            peak_publish_per_second: per_second.values().copied().max().unwrap_or(0),
        }
    })
}

/// s3-fanout over the listing, invocation after invocation; the time each one ran.
async fn by_listing(workload: &Workload, recorder: &Recorder) -> Vec<Duration> {
    let bucket = Bucket {
        workload: workload.clone(),
        keys: recorder.keys,
        latency: recorder.timing.latency,
        tally: recorder.tally.clone(),
    };
    let parts = FanoutParts {
        lister: &bucket,
        sink: recorder,
        ledger: None::<&MemoryLedger>,
        announcer: &Announcer::default(),
        continuation: None::<&MemoryContinuation>,
        budget: Budget::default(),
    };
    let mut request = crate::fanout_sim::run_request("scale");
    let mut billed = Vec::new();
    loop {
        let started = Instant::now();
        let deadline = started + recorder.timing.timeout;
        let answer = parts
            .run(request.clone(), || {
                deadline.saturating_duration_since(Instant::now())
            })
            .await
            .expect("the simulated listing does not fail");
        billed.push(started.elapsed());
        match answer.continuation {
            Some(next) => {
                // s3-fanout invokes itself asynchronously for the rest.
                tokio::time::sleep(recorder.timing.delivery).await;
                request = next;
            }
            None => return billed,
        }
    }
}

/// The inventory's data files, each read by an s3-fanout invocation of its own (started by
/// the one that read `manifest.json`), rows handed on a thousand at a time, continuing in a
/// new invocation (which reads the rest of its file with a ranged GET) before the timeout.
async fn by_inventory(objects: u64, rows_per_file: u64, recorder: &Recorder) -> Vec<Duration> {
    let timing = &recorder.timing;
    let started = Instant::now();
    recorder.tally.add("GetObject", 1);
    tokio::time::sleep(timing.latency).await;
    let mut billed = vec![started.elapsed()];
    let rows = rows_per_file.max(1);
    let files = (0..objects.div_ceil(rows)).map(|f| (f * rows, rows.min(objects - f * rows)));
    let per_file = futures::future::join_all(files.map(|(first, count)| async move {
        let mut billed = Vec::new();
        let mut next = first;
        while next < first + count {
            tokio::time::sleep(timing.delivery).await;
            let started = Instant::now();
            let deadline = started + timing.timeout;
            recorder.tally.add("GetObject", 1);
            tokio::time::sleep(timing.latency).await;
            while next < first + count {
                let page = PAGE.min(first + count - next);
                recorder.publish_range(next, page).await;
                next += page;
                if deadline.saturating_duration_since(Instant::now()) < DEFAULT_RESERVE {
                    break;
                }
            }
            billed.push(started.elapsed());
        }
        billed
    }))
    .await;
    billed.extend(per_file.into_iter().flatten());
    billed
}
