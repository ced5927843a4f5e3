//! The run ledger: what a run has done, counted by the invocations that do it, and when it is
//! over (docs/runs.md). The DynamoDB implementation lives in fanout-copy-dynamodb;
//! [`crate::memory`] has one in memory.
//!
//! Each object's outcome is recorded once, whatever the deliveries of its job: a redelivered
//! job finds its outcome there and counts nothing again. Its counts go to one of
//! [`COUNTER_SHARDS`] counters, chosen by its key, so that no single item takes every
//! object's write; the listing's own counts go to the run, once a page. A run is over when its
//! listing is complete and every job it planned has an outcome.

use std::collections::BTreeMap;
use std::future::Future;

use crate::summary::Failure;

/// The counters a run's outcomes are spread over. Each takes about 1/64 of a run's writes, so
/// a run is never throttled by its own ledger (DynamoDB allows 1,000 writes a second per item).
pub const COUNTER_SHARDS: usize = 64;

/// The counter an object's outcome goes to: FNV-1a of its source key.
pub fn shard_of(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % COUNTER_SHARDS as u64) as usize
}

/// How long the caller that found a run over has to announce it before another may: a crash
/// in between leaves it to the redelivery of the job (or the retry of the invocation).
pub const ANNOUNCE_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// A ledger call that failed after the adapter's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on the run ledger ({ledger}) failed: {detail}")]
pub struct LedgerError {
    pub operation: &'static str,
    /// Which ledger: a table name, say.
    pub ledger: String,
    pub detail: String,
}

/// How a run started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStart {
    pub run_id: String,
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    /// RFC 3339.
    pub started_at: String,
    /// The listing's segments, read in parallel, each with its own cursor (an inventory's data
    /// files); 0 for one listing.
    pub segments: u64,
}

/// Where one listing, or one segment of it, has got to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    /// The last key (or row) whose job was published and recorded.
    pub cursor: Option<String>,
    /// The last key (or row) of the page being published (see [`RunRecord::publishing`]).
    pub publishing: Option<String>,
}

/// What one page of the listing added to the run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageCounts {
    pub listed: u64,
    /// Jobs published.
    pub enqueued: u64,
    pub skipped: u64,
    pub archived: u64,
    pub planned_bytes: u64,
    /// Every job the page planned (published, or refused and recorded as failed), by counter
    /// shard: each must have an outcome before the run is over.
    pub jobs: BTreeMap<usize, u64>,
}

impl PageCounts {
    /// Counts a planned job of this source key.
    pub fn add_job(&mut self, key: &str) {
        *self.jobs.entry(shard_of(key)).or_default() += 1;
    }
}

/// One object's outcome in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Copied {
        bytes: u64,
        verified: bool,
    },
    /// Found unchanged by the copier.
    Skipped,
    Failed(Failure),
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Copied { .. } => "copied",
            Outcome::Skipped => "skipped",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// Whether an outcome was counted now or had been before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Now,
    /// The object already had an outcome in this run (a redelivered job): nothing was counted.
    Before,
}

/// A run, read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunRecord {
    pub run_id: String,
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    /// RFC 3339.
    pub started_at: String,
    pub listed: u64,
    pub enqueued: u64,
    pub copied: u64,
    /// Unchanged: at listing, or by the copier.
    pub skipped: u64,
    pub failed: u64,
    /// Archived objects left alone.
    pub archived: u64,
    /// Copies whose full-object checksum S3 computed and matched the source's.
    pub verified: u64,
    pub bytes_copied: u64,
    pub planned_bytes: u64,
    /// Jobs planned, and jobs with an outcome.
    pub jobs: u64,
    pub jobs_done: u64,
    pub listing_complete: bool,
    /// The listing's segments (an inventory's data files; 0 for one listing), and those done.
    pub segments: u64,
    pub segments_done: u64,
    /// The last source key whose job was published.
    pub cursor: Option<String>,
    /// The last key of the page being published, written before its jobs are: past the
    /// cursor, a page was published and not recorded (the invocation failed in between).
    pub publishing: Option<String>,
    /// RFC 3339, once the run is over.
    pub completed_at: Option<String>,
    /// Whether the run's completion was announced (its report written, its event published).
    pub announced: bool,
}

impl RunRecord {
    /// The listing is complete and every planned job has an outcome.
    pub fn is_over(&self) -> bool {
        self.listing_done() && self.jobs_done >= self.jobs
    }

    /// The whole listing is done: the one listing, or every segment.
    pub fn listing_done(&self) -> bool {
        self.listing_complete || (self.segments > 0 && self.segments_done >= self.segments)
    }

    /// Seconds from the run's start to its completion (or to `now`), when both are known.
    pub fn seconds(&self, now: &str) -> Option<f64> {
        let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
        let start = parse(&self.started_at)?;
        let end = parse(self.completed_at.as_deref().unwrap_or(now))?;
        Some((end - start).num_milliseconds().max(0) as f64 / 1000.0)
    }
}

/// Where runs are counted.
pub trait RunLedger: Send + Sync {
    /// Records how the run started; a second start of the same run changes nothing.
    fn start(&self, start: &RunStart) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Adds a published page's counts and moves the cursor of the listing (or of its
    /// `segment`) to `cursor`, once: `false` when the cursor was already there or past it (the
    /// page was recorded before). `complete`: the listing (or the segment) is done.
    fn record_page(
        &self,
        run_id: &str,
        segment: Option<&str>,
        counts: &PageCounts,
        cursor: Option<&str>,
        complete: bool,
    ) -> impl Future<Output = Result<bool, LedgerError>> + Send;

    /// A page whose last key is `last_key` is about to be published.
    fn publishing(
        &self,
        run_id: &str,
        segment: Option<&str>,
        last_key: &str,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Where the listing (or its `segment`) has got to.
    fn position(
        &self,
        run_id: &str,
        segment: Option<&str>,
    ) -> impl Future<Output = Result<Position, LedgerError>> + Send;

    /// Those of `keys` that have an outcome in the run.
    fn with_outcomes(
        &self,
        run_id: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<String>, LedgerError>> + Send;

    /// Records the outcome of the job for source `key`, once per run: a second outcome for the
    /// same key counts nothing ([`Recorded::Before`]).
    fn record_outcome(
        &self,
        run_id: &str,
        key: &str,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<Recorded, LedgerError>> + Send;

    /// The run, if it exists.
    fn get(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<RunRecord>, LedgerError>> + Send;

    /// Every failure recorded in the run.
    fn failures(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<Failure>, LedgerError>> + Send;

    /// When the run is over and its completion not yet announced: marks it complete (its
    /// `completed_at` set once) and returns it, for the caller to announce, with the
    /// announcement claimed for [`ANNOUNCE_LEASE`] so that callers finding it over at once do
    /// not all announce it; `None` otherwise. `shard`: the counter the caller just wrote, looked
    /// at first, so that most calls read one item.
    fn complete(
        &self,
        run_id: &str,
        shard: Option<usize>,
    ) -> impl Future<Output = Result<Option<RunRecord>, LedgerError>> + Send;

    /// The announcement [`RunLedger::complete`] claimed failed: the next caller may try.
    fn release(&self, run_id: &str) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// The run's completion was announced.
    fn announced(&self, run_id: &str) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_every_shard() {
        let mut counts = [0_u32; COUNTER_SHARDS];
        for i in 0..6_400 {
            counts[shard_of(&format!("photos/2026/{i:05}.jpg"))] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min >= 60 && *max <= 150, "uneven: {min}..{max}");
        assert_eq!(shard_of("a"), shard_of("a"));
    }

    #[test]
    fn a_run_is_over_when_its_listing_is_and_every_job_has_an_outcome() {
        let mut run = RunRecord {
            jobs: 2,
            jobs_done: 2,
            ..RunRecord::default()
        };
        assert!(!run.is_over(), "the listing goes on");
        run.listing_complete = true;
        assert!(run.is_over());
        run.jobs = 3;
        assert!(!run.is_over());
    }

    #[test]
    fn a_listing_in_segments_is_done_when_every_segment_is() {
        let mut run = RunRecord {
            segments: 3,
            segments_done: 2,
            ..RunRecord::default()
        };
        assert!(!run.listing_done() && !run.is_over());
        run.segments_done = 3;
        assert!(run.listing_done() && run.is_over());
        assert!(
            !RunRecord::default().listing_done(),
            "one listing, not done"
        );
    }

    #[test]
    fn seconds_run_from_start_to_completion() {
        let run = RunRecord {
            started_at: "2026-11-30T03:00:00Z".into(),
            completed_at: Some("2026-11-30T03:01:30Z".into()),
            ..RunRecord::default()
        };
        assert_eq!(run.seconds("2026-12-01T00:00:00Z"), Some(90.0));
        assert_eq!(RunRecord::default().seconds("2026-12-01T00:00:00Z"), None);
    }
}
