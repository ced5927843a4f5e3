//! One process, the whole run: list → plan → copy, with at most the copier's concurrency of
//! objects in progress while the listing goes on. The s3-copy CLI runs this.

use std::time::{Instant, SystemTime};

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use futures::future::{self, Either};
use futures::stream::{self, StreamExt};

use crate::copier::{Copied, Copier, CopyError};
use crate::job::CopyJob;
use crate::planner::{PlannedPage, Planner, RunSpec};
use crate::store::StoreError;
use crate::summary::{Failure, RunSummary};

/// Hears how a run goes, for a progress display.
pub trait Progress: Send + Sync {
    /// More objects are known to need copying.
    fn planned(&self, _objects: u64, _bytes: u64) {}
    /// Objects were found unchanged.
    fn skipped(&self, _objects: u64) {}
    /// One object is done: copied (with its bytes), skipped, or failed.
    fn finished(&self, _key: &str, _outcome: &Result<Copied, CopyError>) {}
}

/// No progress display.
pub struct Quiet;
impl Progress for Quiet {}

/// A run id: the UTC time it started and the process id, `20161213T202033Z-4242`.
pub fn new_run_id() -> String {
    let now = DateTime::from(SystemTime::now())
        .fmt(Format::DateTime)
        .unwrap_or_default();
    let compact: String = now
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let compact = if compact.ends_with('Z') {
        compact
    } else {
        format!("{compact}Z")
    };
    format!("{compact}-{}", std::process::id())
}

enum Step {
    /// A page, with the number of jobs it planned (which follow it).
    Page(PlannedPage, u64),
    Job(CopyJob),
    ListingFailed(StoreError),
}

enum Done {
    Page(PlannedPage, u64),
    Job(CopyJob, Result<Copied, CopyError>),
    Planned,
    ListingFailed(StoreError),
}

/// Why a run stopped before it had looked at every object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the listing failed, so the run stopped: {error}")]
pub struct RunError {
    pub error: StoreError,
    /// What the run did before it stopped.
    pub summary: Box<RunSummary>,
}

/// Copies everything `spec` names (or, with `dry_run`, only plans it).
pub async fn run(
    copier: &Copier,
    spec: RunSpec,
    dry_run: bool,
    page_size: Option<i32>,
    progress: &dyn Progress,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let mut summary = RunSummary {
        run_id: spec.run_id.clone(),
        source: spec.source.to_string(),
        destination: spec.destination.to_string(),
        dry_run,
        ..RunSummary::default()
    };
    let planner = Planner::new(copier.store().clone(), spec, None, page_size);
    let pages = stream::unfold(Some(planner), |planner| async move {
        let mut planner = planner?;
        match planner.next_page().await {
            Ok(Some(page)) => Some((Ok(page), Some(planner))),
            Ok(None) => None,
            Err(err) => Some((Err(err), None)),
        }
    });
    let steps = pages.flat_map(|page| match page {
        Ok(mut page) => {
            let jobs = std::mem::take(&mut page.jobs);
            let count = jobs.len() as u64;
            let steps =
                std::iter::once(Step::Page(page, count)).chain(jobs.into_iter().map(Step::Job));
            stream::iter(steps.collect::<Vec<_>>())
        }
        Err(err) => stream::iter(vec![Step::ListingFailed(err)]),
    });
    let outcomes = steps
        .map(|step| match step {
            Step::Job(job) if !dry_run => Either::Left(async move {
                let outcome = copier.copy(&job).await;
                Done::Job(job, outcome)
            }),
            Step::Job(_) => Either::Right(future::ready(Done::Planned)),
            Step::Page(page, count) => Either::Right(future::ready(Done::Page(page, count))),
            Step::ListingFailed(err) => Either::Right(future::ready(Done::ListingFailed(err))),
        })
        .buffer_unordered(copier.concurrency());
    let mut outcomes = std::pin::pin!(outcomes);
    let mut listing_error = None;
    while let Some(done) = outcomes.next().await {
        match done {
            Done::Page(page, count) => {
                summary.listed += page.listed;
                summary.skipped += page.skipped;
                summary.planned += count;
                summary.planned_bytes += page.planned_bytes;
                progress.skipped(page.skipped);
                progress.planned(count, page.planned_bytes);
            }
            Done::Planned => {}
            Done::Job(job, outcome) => {
                progress.finished(&job.source.key, &outcome);
                match outcome {
                    Ok(Copied::Copied { bytes }) => {
                        summary.copied += 1;
                        summary.bytes_copied += bytes;
                    }
                    Ok(Copied::Skipped) => summary.skipped += 1,
                    Err(err) => {
                        tracing::warn!(key = %job.source.key, error = %err, "copy failed");
                        summary.failed += 1;
                        summary.failures.push(Failure {
                            key: job.source.key,
                            error: err.to_string(),
                        });
                    }
                }
            }
            Done::ListingFailed(err) => listing_error = Some(err),
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    match listing_error {
        Some(error) => Err(RunError {
            error,
            summary: Box::new(summary),
        }),
        None => Ok(summary),
    }
}
