//! The fan-out run protocol: list a source beside its destination and hand one copy job per
//! object that needs copying to a [`JobSink`], page by page.
//!
//! A listing too long for one invocation continues in the next: after each page, once less
//! than the reserve of time is left, the run hands a continuation (the same request, plus its
//! `run_id` and `start_after`, the last key whose job was handed on) to a [`Continuation`].
//! With a ledger, every page also moves the run's cursor there, conditionally, so that a retried
//! or repeated invocation resumes after the last recorded page instead of enqueuing it again.

use std::future::Future;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::completion::{AnnounceError, Announcer};
use crate::inventory::{self, check_md5, InventoryError, Manifest, Row, Rows};
use crate::job::CopyJob;
use crate::ledger::{LedgerError, Outcome, PageCounts, Position, RunLedger, RunStart};
use crate::location::{check_pair, destination_key, Location};
use crate::planner::{job_for, parse_rfc3339, PlannedPage, Planner, RunSpec};
use crate::store::{ObjectLister, ObjectReader, StoreError};
use crate::summary::{Failure, FailureClass};

/// Time kept back for one more page (list it, publish its jobs, record it) before continuing in
/// a new invocation.
pub const DEFAULT_RESERVE: Duration = Duration::from_secs(30);

/// What a manual event looks like, for error messages.
pub const MANUAL_EVENT_EXAMPLE: &str = r#"{"source": "s3://bucket/prefix/", "destination": "s3://bucket/prefix/", "modified_since": "2016-12-13T00:00:00Z", "dry_run": false} (the last two optional)"#;

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
    /// Copy archived objects too (those restored; the others fail, saying so). By default they
    /// are counted as `archived` and left alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_archived: bool,
    /// Set on continuations (and may be set by hand to resume a run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Start the listing after this source key (for an inventory data file, after this many
    /// rows: [`crate::inventory::cursor`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    /// Set on the run of one data file of an S3 Inventory report: the rows of this file are
    /// the listing, one segment of the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryFile>,
}

/// One data file of an S3 Inventory report, and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryFile {
    pub bucket: String,
    pub key: String,
    /// The manifest's `fileSchema`.
    pub schema: String,
    /// The manifest's MD5 of the file, checked before any row is used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub md5: String,
}

/// What an inventory event looks like, for error messages.
pub const INVENTORY_EVENT_EXAMPLE: &str = r#"{"manifest": "s3://bucket/path/manifest.json", "destination": "s3://bucket/prefix/", "dry_run": false} (dry_run optional)"#;

/// A run over an S3 Inventory report: every current object its manifest's data files list,
/// copied to `destination`; one invocation per data file, all at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryRequest {
    /// `manifest.json`, as `s3://bucket/key`.
    pub manifest: Location,
    pub destination: Location,
    #[serde(default)]
    pub dry_run: bool,
    /// As for a listing: copy archived objects too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_archived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// What the invocation did; the continuation, when there is one, was handed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Answer {
    pub run_id: String,
    pub dry_run: bool,
    pub listed: u64,
    /// Jobs published (none on a dry run).
    pub enqueued: u64,
    pub skipped: u64,
    /// Archived objects left alone.
    pub archived: u64,
    /// Jobs that would be or were published, and their bytes.
    pub planned: u64,
    /// Jobs the sink refused for good: failed, and recorded so in the run.
    #[serde(skip_serializing_if = "is_zero")]
    pub refused: u64,
    pub planned_bytes: u64,
    /// The whole listing is done.
    pub complete: bool,
    /// The run goes on in another invocation with this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation: Option<RunRequest>,
    /// An inventory run: its data files, each read by an invocation of its own.
    #[serde(skip_serializing_if = "is_zero")]
    pub data_files: u64,
    /// The runs of the data files, when there was no continuation to hand them to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_file_runs: Vec<RunRequest>,
}

/// Jobs that could not be handed on, after the adapter's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} to {destination} failed: {detail}")]
pub struct SinkError {
    /// The call, as the sink names it (`SNS PublishBatch`).
    pub operation: &'static str,
    /// Where to: a topic ARN, say.
    pub destination: String,
    pub detail: String,
}

/// A continuation that could not be handed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not invoke the continuation of run {run_id}: {detail}")]
pub struct ContinueError {
    pub run_id: String,
    pub detail: String,
}

/// A job the sink refused for good (SNS's `SenderFault`): handing it on again cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub job: CopyJob,
    pub reason: String,
}

/// Where copy jobs go: a topic, a queue.
pub trait JobSink: Send + Sync {
    /// Hands on every job, trying again on its own any job the sink refused for now. Returns
    /// the jobs it refused for good, to be recorded as failed; an error when some could not be
    /// handed on for now, so that the page is tried again.
    fn publish(
        &self,
        jobs: &[CopyJob],
    ) -> impl Future<Output = Result<Vec<Refused>, SinkError>> + Send;
}

/// Starts the rest of a run elsewhere: another invocation of the same function.
pub trait Continuation: Send + Sync {
    fn continue_with(
        &self,
        next: &RunRequest,
    ) -> impl Future<Output = Result<(), ContinueError>> + Send;
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("{0}; a manual event looks like {MANUAL_EVENT_EXAMPLE}")]
    BadEvent(String),
    /// The event needs configuration the function does not have.
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    Listing(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] SinkError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Continue(#[from] ContinueError),
    #[error(transparent)]
    Announce(#[from] AnnounceError),
    #[error(transparent)]
    Sweep(#[from] crate::uploads::SweepError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

/// How much one invocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Keys per listing page; the store's maximum when `None`.
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

/// The parts a fan-out run works with.
pub struct FanoutParts<'a, L, J, R, C> {
    pub lister: &'a L,
    pub sink: &'a J,
    pub ledger: Option<&'a R>,
    /// What a run is announced with when it is over (with a ledger).
    pub announcer: &'a Announcer,
    /// Without one, a continuation is only returned in the answer.
    pub continuation: Option<&'a C>,
    pub budget: Budget,
}

impl<L, J, R, C> FanoutParts<'_, L, J, R, C>
where
    L: ObjectLister,
    J: JobSink,
    R: RunLedger,
    C: Continuation,
{
    /// Runs one invocation's share of the run `request` names (its `run_id` set);
    /// `remaining` tells how much time the invocation has left.
    pub async fn run(
        &self,
        request: RunRequest,
        remaining: impl Fn() -> Duration,
    ) -> Result<Answer, FanoutError> {
        check_pair(&request.source, &request.destination)
            .map_err(|e| FanoutError::BadEvent(e.to_string()))?;
        let modified_since = (request.modified_since.as_deref())
            .map(parse_rfc3339)
            .transpose()
            .map_err(|e| FanoutError::BadEvent(format!("modified_since: {e}")))?;
        let run_id = request.run_id.clone().unwrap_or_default();
        let (start_after, published_before) = self.resume_point(&request, &run_id).await?;
        let spec = RunSpec {
            run_id: run_id.clone(),
            source: request.source.clone(),
            destination: request.destination.clone(),
            modified_since,
            include_archived: request.include_archived,
        };
        let mut planner = Planner::new(
            self.lister,
            spec,
            start_after.clone(),
            self.budget.page_size,
        );
        let mut answer = Answer {
            run_id: run_id.clone(),
            dry_run: request.dry_run,
            ..Answer::default()
        };
        let mut cursor = start_after;
        while let Some(page) = planner.next_page().await? {
            let published = published_before.as_deref();
            if !self
                .hand_on(&page, &request, published, &mut answer)
                .await?
            {
                tracing::warn!(run_id = %run_id, start_after = ?cursor, "this page was recorded by another invocation of the run; stopping here");
                break;
            }
            cursor = page.last_key.or(cursor);
            if !page.more {
                answer.complete = true;
                break;
            }
            if remaining() < self.budget.reserve {
                answer.continuation = Some(RunRequest {
                    run_id: Some(run_id.clone()),
                    start_after: cursor.clone(),
                    ..request.clone()
                });
                break;
            }
        }
        if let (Some(next), Some(continuation)) = (&answer.continuation, self.continuation) {
            continuation.continue_with(next).await?;
        }
        log(&answer);
        Ok(answer)
    }
}

impl<L, J, R, C> FanoutParts<'_, L, J, R, C>
where
    L: ObjectReader,
    J: JobSink,
    R: RunLedger,
    C: Continuation,
{
    /// Starts a run over an S3 Inventory report: reads its manifest, records the run with one
    /// segment per data file, and hands each data file's run on (or returns them, without a
    /// continuation), so that every file is read at once by an invocation of its own.
    pub async fn start_inventory(
        &self,
        request: InventoryRequest,
        run_id: String,
    ) -> Result<Answer, FanoutError> {
        let location = &request.manifest;
        let bad = |detail: String| {
            FanoutError::BadEvent(format!(
                "{detail}; an inventory event looks like {INVENTORY_EVENT_EXAMPLE}"
            ))
        };
        if location.prefix.is_empty() || location.prefix.ends_with('/') {
            return Err(bad(format!(
                "manifest {location} names no manifest.json object"
            )));
        }
        let json = self.lister.read(&location.bucket, &location.prefix).await?;
        let manifest = Manifest::parse(location, &json)?;
        let source = Location::new(manifest.source_bucket.clone(), "");
        check_pair(&source, &request.destination).map_err(|e| bad(e.to_string()))?;
        let runs: Vec<RunRequest> = (manifest.files.iter())
            .map(|file| RunRequest {
                source: source.clone(),
                destination: request.destination.clone(),
                modified_since: None,
                dry_run: request.dry_run,
                include_archived: request.include_archived,
                run_id: Some(run_id.clone()),
                start_after: None,
                inventory: Some(InventoryFile {
                    bucket: location.bucket.clone(),
                    key: file.key.clone(),
                    schema: manifest.schema.clone(),
                    md5: file.md5.clone(),
                }),
            })
            .collect();
        if let Some(ledger) = self.ledger {
            ledger
                .start(&RunStart {
                    run_id: run_id.clone(),
                    source: source.to_string(),
                    destination: request.destination.to_string(),
                    dry_run: request.dry_run,
                    started_at: now_rfc3339(),
                    segments: runs.len() as u64,
                })
                .await?;
            if runs.is_empty() {
                let counts = PageCounts::default();
                ledger
                    .record_page(&run_id, None, &counts, None, true)
                    .await?;
                self.announcer.after_outcome(ledger, &run_id, None).await?;
            }
        }
        let mut answer = Answer {
            run_id: run_id.clone(),
            dry_run: request.dry_run,
            complete: runs.is_empty(),
            data_files: runs.len() as u64,
            ..Answer::default()
        };
        match self.continuation {
            Some(continuation) => {
                stream::iter(&runs)
                    .map(|run| continuation.continue_with(run))
                    .buffer_unordered(HANDED_AT_ONCE)
                    .try_collect::<Vec<()>>()
                    .await?;
            }
            None => answer.data_file_runs = runs,
        }
        tracing::info!(run_id = %run_id, manifest = %location, source = %source, data_files = answer.data_files, "inventory run started");
        Ok(answer)
    }

    /// Runs one invocation's share of one inventory data file's run: the file's rows from its
    /// cursor on, a page at a time, each current object a job (the copier skips what the
    /// destination already has).
    pub async fn run_inventory_file(
        &self,
        request: RunRequest,
        remaining: impl Fn() -> Duration,
    ) -> Result<Answer, FanoutError> {
        let Some(file) = request.inventory.clone() else {
            return Err(FanoutError::BadEvent(
                "the run names no inventory data file".into(),
            ));
        };
        let run_id = request.run_id.clone().unwrap_or_default();
        let (start_after, _) = self.resume_point(&request, &run_id).await?;
        let start = match start_after.as_deref() {
            Some(after) => inventory::rows_of(after).ok_or_else(|| {
                FanoutError::BadEvent(format!(
                    "start_after {after:?} is not a row of an inventory data file"
                ))
            })?,
            None => 0,
        };
        let bytes = self.lister.read(&file.bucket, &file.key).await?;
        check_md5(&file.key, &bytes, Some(&file.md5))?;
        let mut rows = Rows::new(&file.key, &file.schema, bytes.as_slice())?.peekable();
        for _ in 0..start {
            if rows.next().transpose()?.is_none() {
                break;
            }
        }
        let spec = RunSpec {
            run_id: run_id.clone(),
            source: request.source.clone(),
            destination: request.destination.clone(),
            modified_since: None,
            include_archived: request.include_archived,
        };
        let page_size = self.budget.page_size.map_or(1000, |n| n.max(1) as u64);
        let mut answer = Answer {
            run_id: run_id.clone(),
            dry_run: request.dry_run,
            ..Answer::default()
        };
        let mut read = start;
        loop {
            let mut page = PlannedPage::default();
            for row in rows.by_ref().take(page_size as usize) {
                read += 1;
                if let Row::Current(object) = row? {
                    plan_row(&spec, object, &mut page);
                }
            }
            page.last_key = Some(inventory::cursor(read));
            page.more = rows.peek().is_some();
            if !self.hand_on(&page, &request, None, &mut answer).await? {
                tracing::warn!(run_id = %run_id, file = %file.key, row = read, "this page was recorded by another invocation of the run; stopping here");
                break;
            }
            if !page.more {
                answer.complete = true;
                break;
            }
            if remaining() < self.budget.reserve {
                answer.continuation = Some(RunRequest {
                    start_after: page.last_key.clone(),
                    ..request.clone()
                });
                break;
            }
        }
        if let (Some(next), Some(continuation)) = (&answer.continuation, self.continuation) {
            continuation.continue_with(next).await?;
        }
        log(&answer);
        Ok(answer)
    }
}

/// Continuations handed on at once when an inventory run starts.
const HANDED_AT_ONCE: usize = 16;

/// Adds one current object of an inventory to its page: a job, or an archived object left
/// alone. The destination is not listed: each job looks at it (`check_destination`).
fn plan_row(spec: &RunSpec, object: crate::decide::Listed, page: &mut PlannedPage) {
    page.listed += 1;
    if object.archived && !spec.include_archived {
        page.archived += 1;
        return;
    }
    let Some(key) = destination_key(&spec.source, &spec.destination, &object.key) else {
        return;
    };
    page.planned_bytes += object.size;
    page.jobs.push(job_for(spec, object, key, true));
}

impl<L, J, R, C> FanoutParts<'_, L, J, R, C>
where
    J: JobSink,
    R: RunLedger,
    C: Continuation,
{
    /// Records the run's start; where to start the listing: after the request's `start_after`
    /// or the ledger's cursor, whichever is further; and the last key of a page past the
    /// cursor that an earlier invocation published and did not record.
    async fn resume_point(
        &self,
        request: &RunRequest,
        run_id: &str,
    ) -> Result<(Option<String>, Option<String>), FanoutError> {
        let Some(ledger) = self.ledger else {
            return Ok((request.start_after.clone(), None));
        };
        let segment = request.inventory.as_ref().map(|file| file.key.as_str());
        if segment.is_none() {
            // A data file's run was started by its inventory's.
            ledger
                .start(&RunStart {
                    run_id: run_id.to_owned(),
                    source: request.source.to_string(),
                    destination: request.destination.to_string(),
                    dry_run: request.dry_run,
                    started_at: now_rfc3339(),
                    segments: 0,
                })
                .await?;
        }
        let Position { cursor, publishing } = ledger.position(run_id, segment).await?;
        let published = publishing.filter(|last| Some(last) > cursor.as_ref());
        Ok((request.start_after.clone().max(cursor), published))
    }

    /// Publishes a page's jobs and records it; `false` when another invocation recorded it first.
    /// `published_before`: the last key of a page an earlier invocation published and did not
    /// record; objects up to it that its jobs already copied now look unchanged, and are
    /// counted as the jobs they were.
    async fn hand_on(
        &self,
        page: &PlannedPage,
        request: &RunRequest,
        published_before: Option<&str>,
        answer: &mut Answer,
    ) -> Result<bool, FanoutError> {
        let segment = request.inventory.as_ref().map(|file| file.key.as_str());
        let ledger = self.ledger.filter(|_| !request.dry_run);
        if let (Some(ledger), Some(last), false) = (ledger, &page.last_key, page.jobs.is_empty()) {
            ledger.publishing(&answer.run_id, segment, last).await?;
        }
        let refused = if request.dry_run {
            Vec::new()
        } else {
            self.sink.publish(&page.jobs).await?
        };
        let enqueued = if request.dry_run {
            0
        } else {
            (page.jobs.len() - refused.len()) as u64
        };
        let mut counts = PageCounts {
            listed: page.listed,
            enqueued,
            skipped: page.skipped,
            archived: page.archived,
            planned_bytes: page.planned_bytes,
            ..PageCounts::default()
        };
        if !request.dry_run {
            for job in &page.jobs {
                counts.add_job(&job.source.key);
            }
        }
        if let (Some(ledger), Some(published)) = (ledger, published_before) {
            let maybe_jobs: Vec<String> = (page.skipped_keys.iter())
                .filter(|key| key.as_str() <= published)
                .cloned()
                .collect();
            for key in ledger.with_outcomes(&answer.run_id, &maybe_jobs).await? {
                counts.add_job(&key);
                counts.skipped -= 1;
            }
        }
        if let Some(ledger) = self.ledger {
            let run_id = &answer.run_id;
            // The refused jobs' outcomes first: recorded once, they are safe to record again
            // if the page is tried again, and the page then counts them among its jobs.
            record_refused(ledger, run_id, &refused).await?;
            let last = page.last_key.as_deref();
            let recorded = ledger
                .record_page(run_id, segment, &counts, last, !page.more)
                .await?;
            if !page.more {
                // Also when a retry finds the page recorded: the crash may have come before
                // the announcement.
                self.announcer.after_outcome(ledger, run_id, None).await?;
            }
            if !recorded {
                return Ok(false);
            }
        }
        for Refused { job, reason } in &refused {
            let key = &job.source.key;
            tracing::error!(run_id = %answer.run_id, %key, %reason, class = "permanent", "the copy job was refused; recorded as failed");
        }
        answer.listed += counts.listed;
        answer.enqueued += counts.enqueued;
        answer.skipped += counts.skipped;
        answer.archived += counts.archived;
        answer.planned += page.jobs.len() as u64;
        answer.planned_bytes += counts.planned_bytes;
        answer.refused += refused.len() as u64;
        Ok(true)
    }
}

/// Records each job the sink refused for good as failed in its run.
async fn record_refused<R: RunLedger>(
    ledger: &R,
    run_id: &str,
    refused: &[Refused],
) -> Result<(), LedgerError> {
    for Refused { job, reason } in refused {
        let failure = Failure {
            key: job.source.key.clone(),
            error: format!("the copy job could not be published: {reason}"),
            size: job.source.size,
            class: FailureClass::Permanent,
        };
        ledger
            .record_outcome(run_id, &job.source.key, &Outcome::Failed(failure))
            .await?;
    }
    Ok(())
}

fn log(answer: &Answer) {
    tracing::info!(
        run_id = %answer.run_id,
        listed = answer.listed,
        enqueued = answer.enqueued,
        skipped = answer.skipped,
        archived = answer.archived,
        planned_bytes = answer.planned_bytes,
        complete = answer.complete,
        continued_after = ?answer.continuation.as_ref().and_then(|c| c.start_after.as_deref()),
        "fanned out"
    );
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::memory::{
        MemoryContinuation, MemoryEvents, MemoryLedger, MemorySink, MemoryStore, Object,
    };
    use std::sync::Arc;

    struct World {
        store: MemoryStore,
        sink: MemorySink,
        ledger: MemoryLedger,
        continuation: MemoryContinuation,
        events: Arc<MemoryEvents>,
        announcer: Announcer,
    }

    impl World {
        fn new(objects: usize) -> World {
            let store = MemoryStore::new();
            store.create_bucket("dst");
            for i in 0..objects {
                store.put(
                    "src",
                    &format!("photos/{i:03}.jpg"),
                    Object::new(vec![i as u8; 10]),
                );
            }
            store.put("src", "other/outside.jpg", Object::new(vec![1]));
            let events = Arc::new(MemoryEvents::new());
            World {
                store,
                sink: MemorySink::new(),
                ledger: MemoryLedger::new(),
                continuation: MemoryContinuation::new(),
                announcer: Announcer::default().with_events(events.clone()),
                events,
            }
        }

        fn parts(
            &self,
            ledger: bool,
        ) -> FanoutParts<'_, MemoryStore, MemorySink, MemoryLedger, MemoryContinuation> {
            FanoutParts {
                lister: &self.store,
                sink: &self.sink,
                ledger: ledger.then_some(&self.ledger),
                announcer: &self.announcer,
                continuation: Some(&self.continuation),
                budget: Budget {
                    page_size: Some(4),
                    reserve: Duration::from_secs(30),
                },
            }
        }

        /// Each job's key, with how many times it was enqueued.
        fn enqueued(&self) -> BTreeMap<String, usize> {
            let mut keys = BTreeMap::new();
            for job in self.sink.jobs() {
                *keys.entry(job.source.key).or_default() += 1;
            }
            keys
        }
    }

    fn request(run_id: &str) -> RunRequest {
        RunRequest {
            source: "s3://src/photos/".parse().unwrap(),
            destination: "s3://dst/backup/".parse().unwrap(),
            modified_since: None,
            dry_run: false,
            include_archived: false,
            run_id: Some(run_id.into()),
            start_after: None,
            inventory: None,
        }
    }

    /// No time left after any page: every page ends the invocation with a continuation.
    fn hurried() -> Duration {
        Duration::ZERO
    }

    #[tokio::test]
    async fn a_long_listing_continues_page_by_page_and_enqueues_each_object_once() {
        let world = World::new(25);
        let mut next = vec![request("run-1")];
        let mut invocations = 0;
        while let Some(request) = next.pop() {
            invocations += 1;
            let answer = world.parts(true).run(request, hurried).await.unwrap();
            next.extend(world.continuation.take());
            assert_eq!(answer.complete, next.is_empty(), "{answer:?}");
        }
        assert_eq!(invocations, 7, "25 objects in pages of 4");
        let enqueued = world.enqueued();
        assert_eq!(enqueued.len(), 25);
        assert!(enqueued.values().all(|n| *n == 1), "{enqueued:?}");
        assert!(enqueued.keys().all(|key| key.starts_with("photos/")));
        let run = world.ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!((run.listed, run.enqueued, run.skipped), (25, 25, 0));
        assert!(run.listing_complete);
        assert_eq!(run.cursor.as_deref(), Some("photos/024.jpg"));
        let job = &world.sink.jobs()[0];
        assert_eq!(job.destination.key, "backup/000.jpg");
    }

    #[tokio::test]
    async fn a_continuation_delivered_twice_enqueues_nothing_twice() {
        let world = World::new(10);
        world
            .parts(true)
            .run(request("run-2"), hurried)
            .await
            .unwrap();
        let continuation = world.continuation.take().pop().expect("a continuation");
        for _ in 0..2 {
            let mut next = vec![continuation.clone()];
            while let Some(request) = next.pop() {
                world.parts(true).run(request, hurried).await.unwrap();
                next.extend(world.continuation.take());
            }
        }
        let enqueued = world.enqueued();
        assert_eq!(enqueued.len(), 10);
        assert!(enqueued.values().all(|n| *n == 1), "{enqueued:?}");
        let run = world.ledger.get("run-2").await.unwrap().unwrap();
        assert_eq!((run.listed, run.enqueued), (10, 10));
    }

    #[tokio::test]
    async fn a_failed_publish_fails_the_invocation_and_its_retry_finishes_the_run() {
        let world = World::new(6);
        world.sink.fail(1);
        let err = world
            .parts(true)
            .run(request("run-3"), || Duration::from_secs(900))
            .await
            .unwrap_err();
        assert!(matches!(err, FanoutError::Publish(_)), "{err}");
        let answer = world
            .parts(true)
            .run(request("run-3"), || Duration::from_secs(900))
            .await
            .unwrap();
        assert!(answer.complete);
        assert_eq!(world.enqueued().len(), 6);
        let run = world.ledger.get("run-3").await.unwrap().unwrap();
        assert_eq!((run.listed, run.enqueued), (6, 6));
    }

    #[tokio::test]
    async fn a_job_refused_for_good_is_failed_in_its_run_and_the_page_goes_on() {
        let world = World::new(6);
        world.sink.refuse("photos/002.jpg");
        let answer = world
            .parts(true)
            .run(request("run-r"), || Duration::from_secs(900))
            .await
            .unwrap();
        assert!(answer.complete);
        assert_eq!((answer.enqueued, answer.refused), (5, 1));
        assert_eq!(world.enqueued().len(), 5);
        let run = world.ledger.get("run-r").await.unwrap().unwrap();
        assert_eq!((run.listed, run.enqueued, run.failed), (6, 5, 1));
        let failures = world.ledger.failures("run-r").await.unwrap();
        assert_eq!(failures[0].key, "photos/002.jpg");
        assert!(failures[0].error.contains("could not be published"));
        assert!(world.events.events().is_empty(), "five jobs are still out");
    }

    #[tokio::test]
    async fn a_page_published_and_not_recorded_counts_the_jobs_it_sent_when_tried_again() {
        // An invocation published the first page (four jobs) and failed before recording it;
        // two of its jobs were copied meanwhile.
        let world = World::new(6);
        let ledger = &world.ledger;
        let run = "run-crash";
        ledger
            .start(&RunStart {
                run_id: run.into(),
                source: "s3://src/photos/".into(),
                destination: "s3://dst/backup/".into(),
                dry_run: false,
                started_at: now_rfc3339(),
                segments: 0,
            })
            .await
            .unwrap();
        ledger
            .publishing(run, None, "photos/003.jpg")
            .await
            .unwrap();
        for i in 0..2 {
            let key = format!("photos/{i:03}.jpg");
            let object = world.store.object("src", &key).unwrap();
            world
                .store
                .put("dst", &format!("backup/{i:03}.jpg"), object);
            let copied = Outcome::Copied {
                bytes: 10,
                verified: true,
            };
            ledger.record_outcome(run, &key, &copied).await.unwrap();
        }
        // The retry lists from the start: the two copies look unchanged, yet they were jobs.
        let answer = world
            .parts(true)
            .run(request(run), || Duration::from_secs(900))
            .await
            .unwrap();
        assert!(answer.complete);
        assert_eq!((answer.enqueued, answer.skipped), (4, 0), "{answer:?}");
        let record = ledger.get(run).await.unwrap().unwrap();
        assert_eq!(
            (record.jobs, record.jobs_done, record.skipped, record.copied),
            (6, 2, 0, 2),
            "{record:?}"
        );
        assert!(world.events.events().is_empty(), "four jobs are still out");
        for i in 2..6 {
            let key = format!("photos/{i:03}.jpg");
            ledger
                .record_outcome(run, &key, &Outcome::Skipped)
                .await
                .unwrap();
        }
        world
            .announcer
            .after_outcome(ledger, run, None)
            .await
            .unwrap();
        assert_eq!(world.events.events().len(), 1);
    }

    #[tokio::test]
    async fn a_run_whose_jobs_all_have_outcomes_by_the_end_of_the_listing_is_announced_by_it() {
        let world = World::new(2);
        world.sink.refuse("photos/000.jpg");
        world.sink.refuse("photos/001.jpg");
        let answer = world
            .parts(true)
            .run(request("run-all-refused"), || Duration::from_secs(900))
            .await
            .unwrap();
        assert_eq!(answer.refused, 2);
        let events = world.events.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].failed, events[0].enqueued), (2, 0));
        let run = world.ledger.get("run-all-refused").await.unwrap().unwrap();
        assert!(run.completed_at.is_some() && run.announced, "{run:?}");
    }

    #[tokio::test]
    async fn archived_objects_are_counted_in_the_answer_and_the_run() {
        let world = World::new(3);
        let cold = Object {
            archived: true,
            ..Object::new(vec![1; 10])
        };
        world.store.put("src", "photos/cold.jpg", cold);
        let answer = world
            .parts(true)
            .run(request("run-a"), || Duration::from_secs(900))
            .await
            .unwrap();
        assert_eq!((answer.listed, answer.enqueued, answer.archived), (4, 3, 1));
        let run = world.ledger.get("run-a").await.unwrap().unwrap();
        assert_eq!((run.listed, run.enqueued, run.archived), (4, 3, 1));
    }

    #[tokio::test]
    async fn without_a_ledger_or_on_a_dry_run() {
        let world = World::new(5);
        let dry = RunRequest {
            dry_run: true,
            ..request("run-4")
        };
        let answer = world
            .parts(false)
            .run(dry, || Duration::from_secs(900))
            .await;
        let answer = answer.unwrap();
        assert_eq!((answer.planned, answer.enqueued), (5, 0));
        assert!(world.sink.jobs().is_empty());
        assert_eq!(world.ledger.get("run-4").await.unwrap(), None);
    }

    #[tokio::test]
    async fn bad_requests_are_refused_before_anything_is_listed() {
        let world = World::new(1);
        let overlap = RunRequest {
            destination: "s3://src/photos/copy/".parse().unwrap(),
            ..request("run-5")
        };
        let since = RunRequest {
            modified_since: Some("last week".into()),
            ..request("run-5")
        };
        for bad in [overlap, since] {
            let err = world.parts(true).run(bad, hurried).await.unwrap_err();
            assert!(matches!(err, FanoutError::BadEvent(_)), "{err}");
            assert!(
                err.to_string().contains("a manual event looks like"),
                "{err}"
            );
        }
        assert!(world.store.calls().is_empty());
    }

    mod inventories {
        use super::*;
        use crate::inventory::tests::{gzip, SCHEMA};
        use md5::Digest;

        const MANIFEST: &str = "src/daily/2026-11-30T01-00Z/manifest.json";

        /// An inventory of `src` in `files` data files of `rows` rows each: current objects,
        /// and every fourth row an older version, every seventh a delete marker.
        fn inventory(world: &World, files: usize, rows: usize, md5: bool) -> Vec<String> {
            world.store.create_bucket("inventories");
            let mut current = Vec::new();
            let mut listed = Vec::new();
            for f in 0..files {
                let mut lines = Vec::new();
                for r in 0..rows {
                    let key = format!("data/{f}/{r:03} x+y.bin");
                    let encoded = key.replace('+', "%2B").replace(' ', "+");
                    let (latest, marker) = match r {
                        r if r % 7 == 6 => ("true", "true"),
                        r if r % 4 == 3 => ("false", "false"),
                        _ => ("true", "false"),
                    };
                    if latest == "true" && marker == "false" {
                        current.push(key.clone());
                    }
                    let size = if marker == "true" { "" } else { "10" };
                    let fields = [
                        "src",
                        &encoded,
                        "v",
                        latest,
                        marker,
                        size,
                        "2026-11-29T10:00:00.000Z",
                        "abc",
                        "STANDARD",
                        "false",
                    ];
                    lines.push(fields.map(str::to_owned).to_vec());
                }
                let lines: Vec<Vec<&str>> = (lines.iter())
                    .map(|line| line.iter().map(String::as_str).collect())
                    .collect();
                let data = gzip(&lines);
                let key = format!("src/daily/data/{f}.csv.gz");
                let digest = hex::encode(md5::Md5::digest(&data));
                listed.push(serde_json::json!({
                    "key": key, "size": data.len(), "MD5checksum": if md5 { digest } else { String::new() }
                }));
                world.store.put("inventories", &key, Object::new(data));
            }
            let manifest = serde_json::json!({
                "sourceBucket": "src", "destinationBucket": "arn:aws:s3:::inventories",
                "version": "2016-11-30", "creationTimestamp": "1764464400000",
                "fileFormat": "CSV", "fileSchema": SCHEMA, "files": listed,
            });
            world.store.put(
                "inventories",
                MANIFEST,
                Object::new(manifest.to_string().into_bytes()),
            );
            current.sort();
            current
        }

        fn request(run_id: &str) -> InventoryRequest {
            InventoryRequest {
                manifest: format!("s3://inventories/{MANIFEST}").parse().unwrap(),
                destination: "s3://dst/backup/".parse().unwrap(),
                dry_run: false,
                include_archived: false,
                run_id: None,
            }
            .with_run_id(run_id)
        }

        impl InventoryRequest {
            fn with_run_id(mut self, run_id: &str) -> Self {
                self.run_id = Some(run_id.into());
                self
            }
        }

        /// Runs every data file's run and its continuations to the end, `deliveries` times
        /// each; the invocations made.
        async fn run_files(world: &World, deliveries: usize) -> usize {
            let mut next = world.continuation.take();
            let mut invocations = 0;
            while let Some(request) = next.pop() {
                for _ in 0..deliveries {
                    invocations += 1;
                    let parts = world.parts(true);
                    parts
                        .run_inventory_file(request.clone(), hurried)
                        .await
                        .unwrap();
                }
                next.extend(world.continuation.take());
            }
            invocations
        }

        #[tokio::test]
        async fn every_current_object_of_every_data_file_is_enqueued_once_and_counted() {
            let world = World::new(0);
            let current = inventory(&world, 3, 10, true);
            let started = world
                .parts(true)
                .start_inventory(request("inv-1"), "inv-1".into())
                .await
                .unwrap();
            assert_eq!((started.data_files, started.complete), (3, false));
            let run = world.ledger.get("inv-1").await.unwrap().unwrap();
            assert_eq!((run.source.as_str(), run.segments), ("s3://src/", 3));
            assert_eq!(
                run_files(&world, 1).await,
                9,
                "3 files of 10 rows in pages of 4"
            );
            let enqueued = world.enqueued();
            assert_eq!(enqueued.keys().cloned().collect::<Vec<_>>(), current);
            assert!(enqueued.values().all(|n| *n == 1), "{enqueued:?}");
            let job = world
                .sink
                .jobs()
                .into_iter()
                .find(|job| job.source.key == "data/0/000 x+y.bin")
                .unwrap();
            assert_eq!(job.destination.key, "backup/data/0/000 x+y.bin");
            assert_eq!((job.source.size, job.source.etag.as_str()), (10, "\"abc\""));
            assert!(job.check_destination);
            let run = world.ledger.get("inv-1").await.unwrap().unwrap();
            let n = current.len() as u64;
            assert_eq!(
                (run.listed, run.enqueued, run.jobs, run.segments_done),
                (n, n, n, 3)
            );
            assert!(run.listing_done() && !run.is_over(), "{run:?}");
        }

        #[tokio::test]
        async fn each_data_file_run_delivered_twice_enqueues_nothing_twice() {
            let world = World::new(0);
            let current = inventory(&world, 3, 9, true);
            world
                .parts(true)
                .start_inventory(request("inv-2"), "inv-2".into())
                .await
                .unwrap();
            run_files(&world, 2).await;
            let enqueued = world.enqueued();
            assert_eq!(enqueued.len(), current.len());
            assert!(enqueued.values().all(|n| *n == 1), "{enqueued:?}");
            let run = world.ledger.get("inv-2").await.unwrap().unwrap();
            assert_eq!(
                (run.listed, run.enqueued, run.segments_done),
                (current.len() as u64, current.len() as u64, 3)
            );
        }

        #[tokio::test]
        async fn a_failed_publish_fails_the_file_and_its_retry_counts_exactly() {
            let world = World::new(0);
            let current = inventory(&world, 2, 12, true);
            world
                .parts(true)
                .start_inventory(request("inv-3"), "inv-3".into())
                .await
                .unwrap();
            let files = world.continuation.take();
            world.sink.fail(1);
            let plenty = || Duration::from_secs(900);
            let err = world
                .parts(true)
                .run_inventory_file(files[0].clone(), plenty)
                .await
                .unwrap_err();
            assert!(matches!(err, FanoutError::Publish(_)), "{err}");
            for file in files {
                let answer = world
                    .parts(true)
                    .run_inventory_file(file, plenty)
                    .await
                    .unwrap();
                assert!(answer.complete, "{answer:?}");
            }
            assert_eq!(world.enqueued().len(), current.len());
            let run = world.ledger.get("inv-3").await.unwrap().unwrap();
            let n = current.len() as u64;
            assert_eq!(
                (run.listed, run.enqueued, run.jobs, run.segments_done),
                (n, n, n, 2)
            );
        }

        #[tokio::test]
        async fn a_run_with_every_job_done_is_announced_once_its_last_file_is_read() {
            let world = World::new(0);
            for key in inventory(&world, 2, 3, true) {
                world.sink.refuse(&key);
            }
            world
                .parts(true)
                .start_inventory(request("inv-4"), "inv-4".into())
                .await
                .unwrap();
            run_files(&world, 1).await;
            let events = world.events.events();
            assert_eq!(events.len(), 1, "{events:?}");
        }

        #[tokio::test]
        async fn an_inventory_of_no_data_files_is_a_run_complete_at_once() {
            let world = World::new(0);
            inventory(&world, 0, 0, true);
            let answer = world
                .parts(true)
                .start_inventory(request("inv-5"), "inv-5".into())
                .await
                .unwrap();
            assert!(answer.complete && answer.data_files == 0);
            assert_eq!(world.events.events().len(), 1);
        }

        #[tokio::test]
        async fn without_a_continuation_the_data_file_runs_are_answered() {
            let world = World::new(0);
            inventory(&world, 2, 3, false);
            let mut parts = world.parts(false);
            parts.continuation = None;
            let answer = parts
                .start_inventory(request("inv-6"), "inv-6".into())
                .await
                .unwrap();
            assert_eq!(answer.data_file_runs.len(), 2);
            let file = answer.data_file_runs[1].inventory.clone().unwrap();
            assert_eq!(
                (file.bucket.as_str(), file.key.as_str()),
                ("inventories", "src/daily/data/1.csv.gz")
            );
            assert!(world.continuation.take().is_empty());
        }

        #[tokio::test]
        async fn bad_inventories_are_refused_with_what_to_do() {
            let world = World::new(0);
            inventory(&world, 1, 3, true);
            let parts = world.parts(true);
            let refused = [
                // The manifest is missing.
                (
                    "s3://inventories/nothing/manifest.json",
                    "s3://dst/backup/",
                    "NoSuchKey",
                ),
                // A folder, not a manifest.
                (
                    "s3://inventories/src/",
                    "s3://dst/backup/",
                    "an inventory event looks like",
                ),
                // The destination is inside the inventoried bucket.
                (
                    &format!("s3://inventories/{MANIFEST}"),
                    "s3://src/copy/",
                    "overlap",
                ),
            ];
            for (manifest, destination, expected) in refused {
                let bad = InventoryRequest {
                    manifest: manifest.parse().unwrap(),
                    destination: destination.parse().unwrap(),
                    ..request("bad")
                };
                let err = parts.start_inventory(bad, "bad".into()).await.unwrap_err();
                assert!(err.to_string().contains(expected), "{expected}: {err}");
            }
            // A Parquet inventory.
            let parquet = serde_json::json!({"sourceBucket": "src", "fileFormat": "Parquet", "fileSchema": "message s3.inventory { }", "files": []});
            world.store.put(
                "inventories",
                "parquet/manifest.json",
                Object::new(parquet.to_string().into_bytes()),
            );
            let request = InventoryRequest {
                manifest: "s3://inventories/parquet/manifest.json".parse().unwrap(),
                ..request("bad")
            };
            let err = parts
                .start_inventory(request, "bad".into())
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    FanoutError::Inventory(InventoryError::Unsupported { .. })
                ),
                "{err}"
            );
            assert!(
                world.sink.jobs().is_empty() && world.ledger.get("bad").await.unwrap().is_none()
            );
        }

        #[tokio::test]
        async fn a_damaged_data_file_is_refused_before_any_job() {
            let world = World::new(0);
            inventory(&world, 1, 3, true);
            world
                .parts(true)
                .start_inventory(request("inv-7"), "inv-7".into())
                .await
                .unwrap();
            let file = world.continuation.take().pop().unwrap();
            let key = &file.inventory.as_ref().unwrap().key;
            world.store.put(
                "inventories",
                key,
                Object::new(gzip(&[vec![
                    "src", "k", "v", "true", "false", "1", "", "e", "STANDARD", "false",
                ]])),
            );
            let err = world
                .parts(true)
                .run_inventory_file(file, hurried)
                .await
                .unwrap_err();
            assert!(
                matches!(err, FanoutError::Inventory(InventoryError::Checksum { .. })),
                "{err}"
            );
            assert!(world.sink.jobs().is_empty());
        }
    }
}
