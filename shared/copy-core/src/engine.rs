//! One process, the whole run: list → plan → copy, with at most the copier's concurrency of
//! objects in progress while the listing goes on. The s3-copy CLI runs this.

use std::time::{Instant, SystemTime};

use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;

use crate::copier::{Copied, Copier, CopyError};
use crate::job::CopyJob;
use crate::planner::{Planner, RunSpec};
use crate::store::{ObjectCopier, ObjectLister, StoreError};
use crate::summary::{Failure, FailureClass, RunSummary};

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
    let now = chrono::DateTime::<chrono::Utc>::from(SystemTime::now());
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), std::process::id())
}

/// Why a run stopped before it had looked at every object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the listing failed, so the run stopped: {error}")]
pub struct RunError {
    pub error: StoreError,
    /// What the run did before it stopped.
    pub summary: Box<RunSummary>,
}

/// Copies everything `spec` names (or, with `dry_run`, only plans it). The listing goes on
/// while the first objects are copied: at most the copier's concurrency of jobs wait between
/// the two.
pub async fn run<S>(
    copier: &Copier<S>,
    spec: RunSpec,
    dry_run: bool,
    page_size: Option<i32>,
    progress: &dyn Progress,
) -> Result<RunSummary, RunError>
where
    S: ObjectLister + ObjectCopier,
{
    let started = Instant::now();
    let mut summary = RunSummary {
        run_id: spec.run_id.clone(),
        source: spec.source.to_string(),
        destination: spec.destination.to_string(),
        dry_run,
        ..RunSummary::default()
    };
    let (jobs, queued) = mpsc::channel(copier.concurrency());
    let planner = Planner::new(copier.store(), spec, None, page_size);
    let listing = plan_all(planner, jobs, dry_run, progress);
    let copies = copy_all(copier, queued, progress);
    let ((planned, listing_error), copied) = futures::join!(listing, copies);
    summary.listed = planned.listed;
    summary.planned = planned.planned;
    summary.planned_bytes = planned.planned_bytes;
    summary.skipped = planned.skipped + copied.skipped;
    summary.archived = planned.archived;
    summary.copied = copied.copied;
    summary.verified = copied.verified;
    summary.bytes_copied = copied.bytes_copied;
    summary.failed = copied.failed;
    summary.failures = copied.failures;
    summary.seconds = started.elapsed().as_secs_f64();
    match listing_error {
        Some(error) => Err(RunError {
            error,
            summary: Box::new(summary),
        }),
        None => Ok(summary),
    }
}

/// Walks the listing, counting what it plans, and queues the jobs (none on a dry run). The
/// queue closes when this returns.
async fn plan_all<L: ObjectLister>(
    mut planner: Planner<L>,
    jobs: mpsc::Sender<CopyJob>,
    dry_run: bool,
    progress: &dyn Progress,
) -> (RunSummary, Option<StoreError>) {
    let mut tally = RunSummary::default();
    loop {
        let page = match planner.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => return (tally, None),
            Err(err) => return (tally, Some(err)),
        };
        tally.listed += page.listed;
        tally.skipped += page.skipped;
        tally.archived += page.archived;
        tally.planned += page.jobs.len() as u64;
        tally.planned_bytes += page.planned_bytes;
        progress.skipped(page.skipped);
        progress.planned(page.jobs.len() as u64, page.planned_bytes);
        if dry_run {
            continue;
        }
        for job in page.jobs {
            if jobs.send(job).await.is_err() {
                return (tally, None);
            }
        }
    }
}

/// Copies the queued jobs, as many at once as the copier allows, until the queue closes.
async fn copy_all<S: ObjectCopier>(
    copier: &Copier<S>,
    queued: mpsc::Receiver<CopyJob>,
    progress: &dyn Progress,
) -> RunSummary {
    let jobs = stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|job| (job, queued))
    });
    let mut outcomes = std::pin::pin!(jobs
        .map(|job| async move {
            let outcome = copier.copy(&job).await;
            (job, outcome)
        })
        .buffer_unordered(copier.concurrency()));
    let mut tally = RunSummary::default();
    while let Some((job, outcome)) = outcomes.next().await {
        progress.finished(&job.source.key, &outcome);
        match outcome {
            Ok(Copied::Copied { bytes, verified }) => {
                tally.copied += 1;
                tally.bytes_copied += bytes;
                tally.verified += u64::from(verified);
            }
            Ok(Copied::Skipped) => tally.skipped += 1,
            // One process has no deadline, so a copy never pauses here; were it to, it would
            // not be done, and says so.
            Ok(Copied::Paused { .. }) => {
                tally.failed += 1;
                tally.failures.push(Failure {
                    size: job.source.size,
                    key: job.source.key,
                    error: "the copy stopped before it was finished".into(),
                    class: FailureClass::Transient,
                });
            }
            Err(err) => {
                tracing::warn!(key = %job.source.key, error = %err, "copy failed");
                tally.failed += 1;
                tally.failures.push(Failure {
                    size: job.source.size,
                    key: job.source.key,
                    error: err.to_string(),
                    class: FailureClass::of(&err),
                });
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copier::CopyOptions;
    use crate::memory::{MemoryStore, Object};
    use crate::store::ErrorKind;

    fn spec() -> RunSpec {
        RunSpec {
            run_id: new_run_id(),
            source: "s3://src/".parse().unwrap(),
            destination: "s3://dst/copy/".parse().unwrap(),
            modified_since: None,
            include_archived: false,
        }
    }

    fn store(objects: usize) -> MemoryStore {
        let store = MemoryStore::new();
        store.create_bucket("dst");
        for i in 0..objects {
            store.put("src", &format!("k{i:04}"), Object::new(vec![i as u8; 100]));
        }
        store
    }

    #[tokio::test]
    async fn copies_everything_then_skips_everything() {
        let copier = Copier::new(store(30), CopyOptions::default(), 4);
        let first = run(&copier, spec(), false, Some(7), &Quiet).await.unwrap();
        assert_eq!((first.listed, first.copied, first.failed), (30, 30, 0));
        assert_eq!(first.verified, 30, "every copy's checksum is its source's");
        assert_eq!(first.bytes_copied, 3000);
        let again = run(&copier, spec(), false, Some(7), &Quiet).await.unwrap();
        assert_eq!((again.listed, again.copied, again.skipped), (30, 0, 30));
        let dry = run(&copier, spec(), true, None, &Quiet).await.unwrap();
        assert_eq!((dry.planned, dry.copied), (0, 0));
    }

    #[tokio::test]
    async fn a_second_night_with_half_the_sources_in_parts_plans_no_job() {
        use crate::size::MIB;
        let store = MemoryStore::new();
        store.create_bucket("dst");
        for i in 0..4u8 {
            let single = Object::new(vec![i; 1000 + usize::from(i)]);
            store.put("src", &format!("single-{i}"), single);
            // Equal parts, unequal parts, and one part below the multipart threshold.
            let sizes = match i {
                0 => vec![5 * MIB, 5 * MIB, MIB],
                1 => vec![7 * MIB, 5 * MIB, 6 * MIB],
                2 => vec![2 * MIB],
                _ => vec![8 * MIB, 8 * MIB],
            };
            let total = sizes.iter().sum::<u64>() as usize;
            let object = Object::multipart(vec![i; total], &sizes);
            store.put("src", &format!("parts-{i}"), object);
        }
        let copier = Copier::new(store, CopyOptions::default(), 8);
        let first = run(&copier, spec(), false, None, &Quiet).await.unwrap();
        assert_eq!((first.copied, first.verified, first.failed), (8, 8, 0));
        let second = run(&copier, spec(), true, None, &Quiet).await.unwrap();
        assert_eq!((second.listed, second.skipped, second.planned), (8, 8, 0));
    }

    #[tokio::test]
    async fn a_folder_marker_at_the_source_prefix_is_copied_or_skipped() {
        let store = MemoryStore::new();
        store.create_bucket("dst");
        store.put("src", "photos/", Object::new(Vec::new()));
        store.put("src", "photos/a.jpg", Object::new(vec![1; 10]));
        let copier = Copier::new(store, CopyOptions::default(), 2);
        let at = |source: &str, destination: &str| RunSpec {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            ..spec()
        };
        // (destination, copied, skipped): into a prefix the marker is the prefix's
        // own marker; into a whole bucket it has no key to go to: skipped, not failed.
        for (destination, copied, skipped) in [("s3://dst/backup/", 2, 0), ("s3://dst", 1, 1)] {
            let summary = run(
                &copier,
                at("s3://src/photos/", destination),
                false,
                None,
                &Quiet,
            )
            .await
            .unwrap();
            assert_eq!(
                (
                    summary.listed,
                    summary.copied,
                    summary.skipped,
                    summary.failed
                ),
                (2, copied, skipped, 0),
                "{destination}"
            );
        }
        assert!(copier.store().object("dst", "backup/").is_some());
        assert!(copier.store().object("dst", "a.jpg").is_some());
        assert!(copier.store().object("dst", "").is_none());
    }

    #[tokio::test]
    async fn archived_objects_are_left_alone_unless_included_and_restored() {
        let store = store(2);
        let archived = |restored| Object {
            archived: true,
            restored,
            ..Object::new(vec![7; 50])
        };
        store.put("src", "cold", archived(false));
        store.put("src", "thawed", archived(true));
        let copier = Copier::new(store, CopyOptions::default(), 2);
        let default = run(&copier, spec(), false, None, &Quiet).await.unwrap();
        assert_eq!(
            (
                default.listed,
                default.copied,
                default.archived,
                default.failed
            ),
            (4, 2, 2, 0)
        );
        assert!(
            default.to_string().contains("archived: 2 objects"),
            "{default}"
        );
        let included = RunSpec {
            include_archived: true,
            ..spec()
        };
        let all = run(&copier, included, false, None, &Quiet).await.unwrap();
        assert_eq!(
            (all.copied, all.skipped, all.archived, all.failed),
            (1, 2, 0, 1),
            "{all:?}"
        );
        assert_eq!(all.failures[0].key, "cold");
        assert!(all.failures[0].error.contains("archived and not restored"));
        assert!(copier.store().object("dst", "copy/thawed").is_some());
    }

    #[tokio::test]
    async fn failures_are_kept_and_a_broken_listing_stops_the_run() {
        let copier = Copier::new(store(5), CopyOptions::default(), 2);
        copier.store().fail("CopyObject", 2, ErrorKind::Permanent);
        let summary = run(&copier, spec(), false, None, &Quiet).await.unwrap();
        assert_eq!((summary.copied, summary.failed), (3, 2));
        assert_eq!(summary.failures.len(), 2);
        copier
            .store()
            .fail("ListObjectsV2", 1, ErrorKind::Transient);
        let err = run(&copier, spec(), false, None, &Quiet).await.unwrap_err();
        assert!(err.error.transient(), "{err}");
    }
}
