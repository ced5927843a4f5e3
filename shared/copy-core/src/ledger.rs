//! The run ledger: what a run has done, counted by the invocations that do it (docs/runs.md).
//! The DynamoDB implementation lives in fanout-copy-dynamodb; [`crate::memory`] has one in
//! memory.

use std::future::Future;

/// Failures kept with a run; more are only counted.
pub const MAX_FAILURES_KEPT: usize = 200;

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
}

/// What one page of the listing added to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageCounts {
    pub listed: u64,
    pub enqueued: u64,
    pub skipped: u64,
    pub archived: u64,
    pub planned_bytes: u64,
}

/// A run, read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunRecord {
    pub run_id: String,
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    pub listed: u64,
    pub enqueued: u64,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Archived objects left alone.
    pub archived: u64,
    pub bytes_copied: u64,
    pub planned_bytes: u64,
    pub listing_complete: bool,
    /// The last source key whose job was published.
    pub cursor: Option<String>,
    /// `(key, error)`, the first [`MAX_FAILURES_KEPT`].
    pub failures: Vec<(String, String)>,
}

/// Where runs are counted.
pub trait RunLedger: Send + Sync {
    /// Records how the run started; a second start of the same run changes nothing.
    fn start(&self, start: &RunStart) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Adds a published page's counts and moves the listing cursor to `cursor`, once: `false`
    /// when the cursor was already there or past it (the page was recorded before).
    fn record_page(
        &self,
        run_id: &str,
        counts: PageCounts,
        cursor: Option<&str>,
        listing_complete: bool,
    ) -> impl Future<Output = Result<bool, LedgerError>> + Send;

    /// Counts one object copied.
    fn record_copied(
        &self,
        run_id: &str,
        bytes: u64,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Counts one object found unchanged by the copier.
    fn record_skipped(&self, run_id: &str) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Counts one failed object and keeps its key and error while there is room.
    fn record_failure(
        &self,
        run_id: &str,
        key: &str,
        error: &str,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// The run, if it exists.
    fn get(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Option<RunRecord>, LedgerError>> + Send;
}
