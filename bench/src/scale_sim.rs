//! Planning past one account's limits: the copy of 10 million small objects, a million medium
//! ones or a thousand of a terabyte, enqueued by listing or from an S3 Inventory report, and
//! copied by up to 100, 1,000 or 10,000 s3-copier invocations at once against S3's
//! per-prefix request rates, in virtual time and with no bytes (docs/scale.md).
//!
//! [`enqueue`] runs the project's own fan-out protocol (or models the inventory reader) under
//! tokio's paused clock; [`copy`] is a discrete-event simulation of the queue, Lambda and S3
//! whose copies are laid out by the engine's planner and paced by its `Aimd`. Objects of a
//! workload are identical but for their key, so their plan is made once and shared.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::fanout_sim::{paused_runtime, Lambda, Model, Outcome};

pub mod copy;
pub mod enqueue;

pub use enqueue::{Enqueue, EnqueueTiming, Enqueued};

/// Virtual time, in nanoseconds.
pub type Ns = u64;
pub const SECOND: Ns = 1_000_000_000;

/// S3's documented request rates per partitioned prefix, a second.
pub const S3_WRITES_PER_PREFIX: u32 = 3_500;
pub const S3_READS_PER_PREFIX: u32 = 5_500;
/// The most batches one SQS event source mapping processes at once (its MaximumConcurrency's
/// upper bound).
pub const MAPPING_MAX_CONCURRENCY: usize = 1_000;
/// The copy queue's visibility timeout and maxReceiveCount (infra/template.yaml).
pub const COPY_QUEUE_VISIBILITY: Duration = Duration::from_secs(5400);
pub const COPY_QUEUE_MAX_RECEIVES: u32 = 5;

/// A workload: `objects` objects of `size` bytes, uploaded whole or, when `source_part` is
/// set, in parts of that size (as anything above 5 GB must be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub objects: u64,
    pub size: u64,
    pub source_part: Option<u64>,
}

impl Workload {
    /// The three: 10 million of 1 MB, a million of 100 MB, a thousand of 1 TB (decimal
    /// units; the terabyte objects uploaded in 10,000 parts of 100 MB, the fewest S3 allows).
    pub fn standard() -> Vec<Workload> {
        vec![
            Workload {
                name: "10M × 1 MB".into(),
                objects: 10_000_000,
                size: 1_000_000,
                source_part: None,
            },
            Workload {
                name: "1M × 100 MB".into(),
                objects: 1_000_000,
                size: 100_000_000,
                source_part: None,
            },
            Workload {
                name: "1,000 × 1 TB".into(),
                objects: 1_000,
                size: 1_000_000_000_000,
                source_part: Some(100_000_000),
            },
        ]
    }

    pub fn bytes(&self) -> u64 {
        self.objects * self.size
    }

    /// The sizes of the parts the source was uploaded in, if it was.
    pub fn source_layout(&self) -> Option<Vec<u64>> {
        let part = self.source_part?;
        let count = self.size.div_ceil(part);
        Some((0..count).map(|i| part.min(self.size - i * part)).collect())
    }

    /// The ETag S3 lists: an MD5, with `-N` for an object uploaded in N parts.
    pub fn etag(&self) -> String {
        match self.source_layout() {
            Some(parts) => format!("\"{:032x}-{}\"", self.size, parts.len()),
            None => format!("\"{:032x}\"", self.size),
        }
    }
}

/// Where the keys lie: object `i` of `objects` (in key order) under prefix
/// `i × prefixes / objects`, the same in the source and the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    pub objects: u64,
    pub prefixes: u64,
}

impl Keys {
    pub fn new(objects: u64, prefixes: u64) -> Keys {
        Keys {
            objects,
            prefixes: prefixes.clamp(1, objects.max(1)),
        }
    }

    pub fn prefix(&self, index: u64) -> u64 {
        (u128::from(index) * u128::from(self.prefixes) / u128::from(self.objects.max(1))) as u64
    }

    pub fn key(&self, index: u64) -> String {
        format!("{:05}/{index:010}", self.prefix(index))
    }

    pub fn index(&self, key: &str) -> Option<u64> {
        key.rsplit_once('/')?.1.parse().ok()
    }
}

/// S3's request rates per prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub writes: u32,
    pub reads: u32,
}

impl Limits {
    pub const S3: Limits = Limits {
        writes: S3_WRITES_PER_PREFIX,
        reads: S3_READS_PER_PREFIX,
    };
}

/// When a job whose copy failed is received again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// As s3-copier does: after answering its batch, it sets each failed record's visibility
    /// to `fanout_common::events::retry_delay` of its receive count and message id
    /// (`ChangeMessageVisibility`, one record after the other, whole seconds).
    RetryDelay,
    /// After the queue's visibility timeout, counted from the receive (for comparison: the
    /// copier before it changed failed records' visibility).
    VisibilityTimeout,
}

impl Redelivery {
    pub fn label(&self) -> &'static str {
        match self {
            Redelivery::RetryDelay => "retry delay",
            Redelivery::VisibilityTimeout => "visibility timeout",
        }
    }
}

/// The copy side's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CopySetup {
    pub model: Model,
    /// s3-copier as deployed, with the event source's ramp.
    pub lambda: Lambda,
    /// SQS event source mappings (queues) sharing the maximum concurrency.
    pub mappings: usize,
    pub limits: Limits,
    pub visibility_timeout: Duration,
    pub max_receives: u32,
    /// When a failed job comes back.
    pub redelivery: Redelivery,
    /// The SDK's backoff jitter.
    pub seed: u64,
}

impl CopySetup {
    /// The deployed stack at `max_concurrency`: one mapping per 1,000 of it.
    pub fn deployed(max_concurrency: usize, delivery: Duration, seed: u64) -> CopySetup {
        CopySetup {
            model: Model::standard(),
            lambda: Lambda {
                ramp: true,
                ..Lambda::deployed(max_concurrency, delivery)
            },
            mappings: max_concurrency.div_ceil(MAPPING_MAX_CONCURRENCY).max(1),
            limits: Limits::S3,
            visibility_timeout: COPY_QUEUE_VISIBILITY,
            max_receives: COPY_QUEUE_MAX_RECEIVES,
            redelivery: Redelivery::RetryDelay,
            seed,
        }
    }

    /// The enqueue side's timing on the same model.
    pub fn enqueue_timing(&self) -> EnqueueTiming {
        EnqueueTiming {
            latency: self.model.latency,
            delivery: self.lambda.delivery,
            timeout: self.lambda.fanout_timeout,
            memory_gb: self.lambda.memory_gb,
        }
    }
}

/// What held a second of the run back; a run is bound by the one that held most seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Binding {
    /// S3 answered SlowDown, a request was backing off after one, or a prefix took 90 % of its
    /// rate.
    PrefixRate,
    /// Jobs waited and every invocation the maximum concurrency allows was running.
    Concurrency,
    /// Jobs waited and the event source's ramp allowed no more yet.
    Ramp,
    /// No job waited: the queue was empty before the enqueue ended.
    Enqueue,
    /// No job waited after the enqueue: the objects in flight were being copied.
    CriticalPath,
    /// Nothing ran but failed jobs waiting to come back (their retry delay, or the queue's
    /// visibility timeout).
    Redelivery,
}

impl Binding {
    pub const ALL: [Binding; 6] = [
        Binding::PrefixRate,
        Binding::Concurrency,
        Binding::Ramp,
        Binding::Enqueue,
        Binding::CriticalPath,
        Binding::Redelivery,
    ];

    pub fn label(&self) -> &'static str {
        match self {
            Binding::PrefixRate => "per-prefix request rate",
            Binding::Concurrency => "Lambda concurrency",
            Binding::Ramp => "SQS scale-up ramp",
            Binding::Enqueue => "the enqueue",
            Binding::CriticalPath => "the objects' own critical path",
            Binding::Redelivery => "the wait for failed jobs to come back",
        }
    }
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub workload: String,
    pub objects: u64,
    pub bytes: u64,
    pub concurrency: usize,
    pub enqueue: Enqueue,
    /// From the start to the last job published.
    pub enqueue_s: f64,
    /// From the start to the last object copied (or dead-lettered).
    pub copy_s: f64,
    pub copied: u64,
    /// Every object copied exactly once.
    pub copied_once: bool,
    /// Requests by kind, every service (S3, SNS, SQS, Lambda invocations, DynamoDB).
    pub requests: BTreeMap<&'static str, u64>,
    /// Attempts S3 answered 503 SlowDown (in `requests` too, under their own kind).
    pub throttled: u64,
    /// Requests the SDK (and for a part, the copier) gave up on.
    pub given_up: u64,
    pub redeliveries: u64,
    pub dead_lettered: u64,
    pub continuations: u64,
    pub copier_invocations: u64,
    pub peak_concurrency: usize,
    pub environments: usize,
    pub longest_invocation_s: f64,
    pub over_timeout: u64,
    pub lambda_gb_s: f64,
    pub peak_writes_per_prefix: u32,
    pub peak_reads_per_prefix: u32,
    pub lowest_pace: usize,
    pub peak_publish_per_second: u64,
    pub cost: BTreeMap<&'static str, f64>,
    /// What held most seconds of the copying back (not counting the wait for redeliveries).
    pub binding: Binding,
    /// Seconds in which nothing ran but failed jobs waited to come back.
    pub redelivery_wait_s: f64,
    /// Seconds of the run by what held them back.
    pub seconds: Vec<(Binding, u64)>,
}

impl RunResult {
    pub fn total_cost(&self) -> f64 {
        self.cost.values().sum()
    }

    pub fn s3_requests(&self) -> u64 {
        (self.requests.iter())
            .filter(|(kind, _)| crate::fanout_sim::service(kind) == "S3")
            .map(|(_, n)| n)
            .sum()
    }
}

/// Copies `workload`, enqueued as `enqueued` says, with `setup`.
pub fn run(workload: &Workload, keys: Keys, enqueued: &Enqueued, setup: &CopySetup) -> RunResult {
    // The copy's own clock; each environment's pace reads tokio's, moved along with it.
    let copied = paused_runtime().block_on(copy::simulate(setup, workload, keys, enqueued));
    let mut requests = enqueued.requests.clone();
    for (kind, n) in &copied.counts {
        *requests.entry(kind.billed_as()).or_default() += n;
    }
    *requests.entry("Lambda invocation").or_default() += copied.invocations;
    *requests.entry("SQS ReceiveMessage").or_default() += copied.invocations;
    *requests.entry("SQS DeleteMessageBatch").or_default() += copied.invocations;
    if copied.visibility_changes > 0 {
        requests.insert("SQS ChangeMessageVisibility", copied.visibility_changes);
    }
    if copied.throttled > 0 {
        requests.insert("503 SlowDown", copied.throttled);
    }
    let lambda_gb_s =
        copied.billed_ms as f64 / 1000.0 * setup.lambda.memory_gb + enqueued.gb_seconds;
    let cost = Outcome {
        requests: requests.clone(),
        gb_seconds: lambda_gb_s,
        ..Outcome::default()
    }
    .cost();
    // What bound the copying; the wait for failed jobs is reported on its own.
    let binding = (copied.seconds.iter())
        .filter(|(binding, _)| *binding != Binding::Redelivery)
        .max_by_key(|(binding, n)| (*n, std::cmp::Reverse(*binding)))
        .map_or(Binding::CriticalPath, |(binding, _)| *binding);
    let redelivery_wait_s = (copied.seconds.iter())
        .filter(|(binding, _)| *binding == Binding::Redelivery)
        .map(|(_, n)| *n as f64)
        .sum();
    RunResult {
        workload: workload.name.clone(),
        objects: workload.objects,
        bytes: workload.bytes(),
        concurrency: setup.lambda.max_concurrency,
        enqueue: enqueued.mode,
        enqueue_s: enqueued.time as f64 / SECOND as f64,
        copy_s: copied.end as f64 / SECOND as f64,
        copied: copied.copied,
        copied_once: copied.copied_once,
        requests,
        throttled: copied.throttled,
        given_up: copied.given_up,
        redeliveries: copied.redeliveries,
        dead_lettered: copied.dead_lettered,
        continuations: copied.continuations,
        copier_invocations: copied.invocations,
        peak_concurrency: copied.peak_concurrency,
        environments: copied.environments,
        longest_invocation_s: copied.longest_invocation as f64 / SECOND as f64,
        over_timeout: copied.over_timeout,
        lambda_gb_s,
        peak_writes_per_prefix: copied.peak_writes_per_prefix,
        peak_reads_per_prefix: copied.peak_reads_per_prefix,
        lowest_pace: copied.lowest_pace,
        peak_publish_per_second: enqueued.peak_publish_per_second,
        cost,
        binding,
        redelivery_wait_s,
        seconds: copied.seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout_sim::price;

    fn setup(concurrency: usize) -> CopySetup {
        CopySetup::deployed(concurrency, Duration::from_millis(50), 1)
    }

    fn simulate(workload: &Workload, prefixes: u64, mode: Enqueue, setup: &CopySetup) -> RunResult {
        let keys = Keys::new(workload.objects, prefixes);
        let enqueued = enqueue::enqueue(workload, keys, mode, &setup.enqueue_timing());
        run(workload, keys, &enqueued, setup)
    }

    fn small(objects: u64, size: u64) -> Workload {
        Workload {
            name: "test".into(),
            objects,
            size,
            source_part: None,
        }
    }

    #[test]
    fn ten_small_objects_take_the_time_worked_out_by_hand() {
        // Listing: the source (5 ms) and the empty destination (5 ms), one PublishBatch (5 ms),
        // 50 ms of delivery; then one invocation copies all ten at once: a HEAD (5 ms) and a
        // CopyObject of 1,000,000 bytes (5 + 35 ms + 1e6 bytes at 75 MiB/s).
        let run = simulate(&small(10, 1_000_000), 1, Enqueue::Listing, &setup(100));
        let copy = 0.005 + 0.035 + 1e6 / (75.0 * 1024.0 * 1024.0);
        let expected = 0.015 + 0.050 + 0.005 + copy;
        assert!(
            (run.copy_s - expected).abs() < 1e-6,
            "{} {expected}",
            run.copy_s
        );
        assert!((run.enqueue_s - 0.015).abs() < 1e-9, "{}", run.enqueue_s);
        assert_eq!(run.requests["ListObjectsV2"], 2);
        assert_eq!(run.requests["SNS PublishBatch"], 1);
        assert_eq!(run.requests["HeadObject"], 10);
        assert_eq!(run.requests["CopyObject"], 10);
        assert_eq!((run.copier_invocations, run.peak_concurrency), (1, 1));
        assert!(run.copied_once && run.throttled == 0);
    }

    #[test]
    fn an_inventory_reads_its_files_at_once() {
        // 2,500 rows, files of 1,000: three s3-fanout invocations after the manifest's GET, each
        // a GET of its file then 100 (or 50) PublishBatch, eight at once.
        let workload = small(2_500, 1_000);
        let mode = Enqueue::Inventory {
            rows_per_file: 1_000,
        };
        let enqueued = enqueue::enqueue(
            &workload,
            Keys::new(2_500, 1),
            mode,
            &setup(10).enqueue_timing(),
        );
        assert_eq!(enqueued.requests["GetObject"], 4);
        assert_eq!(enqueued.requests["SNS PublishBatch"], 250);
        assert_eq!(enqueued.requests["Lambda invocation"], 4);
        // Manifest 5 ms, invoke 50 ms, file 5 ms, 13 rounds of 5 ms.
        assert!((enqueued.time as f64 / 1e9 - (0.005 + 0.050 + 0.005 + 0.065)).abs() < 1e-9);
        let jobs: u64 = enqueued.deliveries.iter().map(|d| u64::from(d.count)).sum();
        assert_eq!(jobs, 2_500);
        assert!(enqueued.check_destination);
    }

    #[test]
    fn one_hot_prefix_never_takes_more_than_its_rate_and_every_object_is_copied_once() {
        // 20,000 objects on one prefix, 200 invocations of 10 copies each wanting ~37,000
        // writes a second: S3 takes 3,500, and the rest is slowed down and retried.
        let workload = small(20_000, 1_000_000);
        let setup = CopySetup {
            lambda: Lambda {
                ramp: false,
                ..setup(200).lambda
            },
            ..setup(200)
        };
        let run = simulate(
            &workload,
            1,
            Enqueue::Inventory {
                rows_per_file: 5_000,
            },
            &setup,
        );
        assert!(run.throttled > 0, "{run:?}");
        assert!(
            run.peak_writes_per_prefix <= S3_WRITES_PER_PREFIX,
            "{run:?}"
        );
        assert!(run.peak_reads_per_prefix <= S3_READS_PER_PREFIX, "{run:?}");
        assert_eq!(run.binding, Binding::PrefixRate, "{run:?}");
        assert!(run.copied_once, "{run:?}");
        assert_eq!(run.dead_lettered, 0);
        // No faster than the prefix allows.
        assert!(run.copy_s >= 20_000.0 / 3_500.0, "{}", run.copy_s);
    }

    #[test]
    fn a_job_failing_once_comes_back_after_its_retry_delay_not_the_visibility_timeout() {
        // One 1 MB object on a prefix that takes no write: every attempt of its copy is
        // refused, so each receive fails after the SDK's six attempts (at most 31 s of
        // backoff). Two receives at most: it comes back once, fails again and is dead-lettered.
        let workload = small(1, 1_000_000);
        let mut setup = setup(10);
        setup.limits.writes = 0;
        setup.max_receives = 2;
        let run = simulate(&workload, 1, Enqueue::Listing, &setup);
        assert_eq!(
            (run.copied, run.redeliveries, run.dead_lettered),
            (0, 1, 1),
            "{run:?}"
        );
        // s3-copier changes the failed record's visibility after each receive.
        assert_eq!(run.requests["SQS ChangeMessageVisibility"], 2);
        let delay = fanout_common::events::retry_delay(1, &copy::message_id(0));
        let wait = delay.as_secs() as f64;
        assert!((15.0..30.0).contains(&wait), "{delay:?}");
        assert!(
            (run.redelivery_wait_s - wait).abs() <= 1.0,
            "waited {} s for a retry delay of {wait} s",
            run.redelivery_wait_s
        );
        assert!(run.copy_s < wait + 2.0 * 32.0, "{}", run.copy_s);

        // With the visibility timeout alone, it waits 5,400 s from its first receive.
        setup.redelivery = Redelivery::VisibilityTimeout;
        let before = simulate(&workload, 1, Enqueue::Listing, &setup);
        assert_eq!((before.redeliveries, before.dead_lettered), (1, 1));
        assert!(!before.requests.contains_key("SQS ChangeMessageVisibility"));
        assert!(before.copy_s > 5_400.0, "{}", before.copy_s);
        assert!(before.redelivery_wait_s > 5_400.0 - 40.0, "{before:?}");
    }

    #[test]
    fn a_run_bound_by_concurrency_never_exceeds_it() {
        // 20,000 objects over 100 prefixes, 5 invocations at most: 50 copies in flight.
        let run = simulate(
            &small(20_000, 1_000_000),
            100,
            Enqueue::Inventory {
                rows_per_file: 5_000,
            },
            &setup(5),
        );
        assert_eq!(run.peak_concurrency, 5);
        assert_eq!(run.binding, Binding::Concurrency, "{run:?}");
        assert_eq!(run.throttled, 0);
        assert!(run.copied_once);
        // 2,000 invocations of ten 1 MB copies, five at a time: 400 rounds of a HEAD of the
        // destination (an inventory's jobs look first), one of the source and a 52.7 ms copy.
        let round = 0.005 + 0.005 + 0.040 + 1e6 / (75.0 * 1024.0 * 1024.0);
        assert!(
            run.copy_s > 400.0 * round && run.copy_s < 400.0 * round + 1.0,
            "{}",
            run.copy_s
        );
    }

    #[test]
    fn the_ramp_binds_a_fresh_queue() {
        // Five invocations at first, five more a second: a 1,000 limit is never reached.
        let run = simulate(
            &small(20_000, 1_000_000),
            100,
            Enqueue::Inventory {
                rows_per_file: 2_000,
            },
            &setup(1_000),
        );
        assert!(run.peak_concurrency < 1_000);
        assert_eq!(run.binding, Binding::Ramp, "{run:?}");
    }

    #[test]
    fn a_copy_longer_than_an_invocation_continues_with_every_part_copied_once() {
        // One 100 GB object in 10,000 parts of 10 MB at 64 at a time: 157 waves of ~172 ms,
        // 27 s; a 70 s timeout leaves 10 s before the 60 s reserve, so it continues.
        let workload = Workload {
            name: "big".into(),
            objects: 1,
            size: 100_000_000_000,
            source_part: Some(10_000_000),
        };
        let mut setup = setup(10);
        setup.lambda.timeout = Duration::from_secs(70);
        let run = simulate(&workload, 1, Enqueue::Listing, &setup);
        assert!(run.copied_once, "{run:?}");
        assert!(run.continuations >= 1, "{run:?}");
        assert_eq!(
            run.requests["UploadPartCopy"], 10_000,
            "no part copied twice"
        );
        assert_eq!(run.requests["CreateMultipartUpload"], 1);
        assert_eq!(run.requests["CompleteMultipartUpload"], 1);
        // The part layout is learned once per invocation.
        assert_eq!(
            run.requests["HeadObject"],
            (1 + 10_000) * (1 + run.continuations) + run.continuations
        );
        assert!(run.longest_invocation_s <= 70.0, "{run:?}");
    }

    #[test]
    fn costs_add_up() {
        let run = simulate(
            &small(5_000, 100_000_000),
            10,
            Enqueue::Listing,
            &setup(100),
        );
        assert!(run.copied_once);
        // 100 MB in 16 MiB parts: 6 parts, a create and a complete, a registry read and three
        // writes.
        assert_eq!(run.requests["UploadPartCopy"], 30_000);
        assert_eq!(run.requests["DynamoDB write"], 15_000);
        let s3: f64 = (run.requests.iter())
            .filter(|(k, _)| crate::fanout_sim::service(k) == "S3")
            .map(|(k, n)| *n as f64 * price(k))
            .sum();
        assert!((run.cost["S3"] - s3).abs() < 1e-12);
        let lambda = run.requests["Lambda invocation"] as f64 * price("Lambda invocation")
            + run.lambda_gb_s * crate::fanout_sim::LAMBDA_GB_SECOND;
        assert!((run.cost["Lambda"] - lambda).abs() < 1e-12);
        let by_service: f64 = run.cost.values().sum();
        assert!((run.total_cost() - by_service).abs() < 1e-12);
        let sqs = 2 * run.copier_invocations;
        assert_eq!(
            run.requests["SQS ReceiveMessage"] + run.requests["SQS DeleteMessageBatch"],
            sqs
        );
    }

    #[test]
    fn keys_lie_under_their_prefixes_in_order() {
        let keys = Keys::new(10, 3);
        let all: Vec<String> = (0..10).map(|i| keys.key(i)).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted);
        assert_eq!(keys.prefix(0), 0);
        assert_eq!(keys.prefix(9), 2);
        assert_eq!(keys.index(&keys.key(7)), Some(7));
        let tb = &Workload::standard()[2];
        assert_eq!(tb.source_layout().map(|l| l.len()), Some(10_000));
        assert!(tb.etag().ends_with("-10000\""));
    }
}
