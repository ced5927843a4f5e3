//! The copier's protocol for one delivered job: copy the object, then count the outcome in its
//! run. A failure that can never succeed is recorded with the run and not retried; any other
//! failure, or any failure when there is no ledger to record it in, is returned so that the
//! delivery is retried and, in the end, dead-lettered. On the job's last delivery before the
//! dead-letter queue, a failure is recorded with the run as well, with its reason, so that the
//! run learns what it lost.

use std::time::Instant;

use crate::completion::{AnnounceError, Announcer};
use crate::copier::{Copied, Copier, CopyError, Remaining};
use crate::job::{CopyJob, JobError};
use crate::ledger::{shard_of, LedgerError, Outcome, Recorded, RunLedger};
use crate::store::ObjectCopier;
use crate::summary::{Failure, FailureClass};

/// Why a delivered job was not handled; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error("{error}; and it could not be recorded: {cause}")]
    NotRecorded {
        error: String,
        cause: Box<JobFailure>,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Announce(#[from] AnnounceError),
    #[error("the copy stopped before the deadline, and its continuation could not be sent: {0}")]
    Continue(String),
    /// An S3 event (continuous backup) that may apply later, or that this configuration
    /// cannot apply.
    #[error("the S3 event was not applied: {0}")]
    Event(String),
}

/// A failure whose recording failed; an announcement that failed after the failure was
/// recorded is reported as what it is.
fn not_recorded(err: &CopyError, cause: JobFailure) -> JobFailure {
    match cause {
        JobFailure::Announce(_) => cause,
        cause => JobFailure::NotRecorded {
            error: err.to_string(),
            cause: Box::new(cause),
        },
    }
}

/// Where a delivered job's outcome goes: its run's ledger, and what the run is announced with
/// when that outcome was its last.
pub struct Runs<'a, R> {
    pub ledger: &'a R,
    pub announcer: &'a Announcer,
}

impl<R> Clone for Runs<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Runs<'_, R> {}

impl<R: RunLedger> Runs<'_, R> {
    /// Records the outcome once, then announces the run if that made it complete (also when the
    /// outcome was recorded by an earlier delivery that did not get that far).
    async fn record(&self, run_id: &str, key: &str, outcome: &Outcome) -> Result<(), JobFailure> {
        if self.ledger.record_outcome(run_id, key, outcome).await? == Recorded::Before {
            tracing::info!(%run_id, %key, "the outcome was recorded by an earlier delivery");
        }
        self.announcer
            .after_outcome(self.ledger, run_id, Some(shard_of(key)))
            .await?;
        Ok(())
    }
}

/// Copies the object the job (a JSON message) names and records the outcome in its run.
/// `last_delivery`: a failure now sends the job to the dead-letter queue. `remaining`: the
/// time left; a multipart copy that cannot finish in it stops early and its continuation job is
/// returned, for the caller to hand on (nothing is recorded until the object is done).
pub async fn copy_and_record<S, R>(
    copier: &Copier<S>,
    runs: Option<Runs<'_, R>>,
    message: &str,
    last_delivery: bool,
    remaining: Remaining<'_>,
) -> Result<Option<CopyJob>, JobFailure>
where
    S: ObjectCopier,
    R: RunLedger,
{
    let job = CopyJob::from_json(message)?;
    let started = Instant::now();
    let outcome = copier.copy_within(&job, remaining).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let (run_id, key) = (&job.run_id, &job.source.key);
    let failure = |err: &CopyError, message: String| {
        Outcome::Failed(Failure {
            key: key.clone(),
            error: message,
            size: job.source.size,
            class: FailureClass::of(err),
        })
    };
    match outcome {
        Ok(Copied::Copied { bytes, verified }) => {
            tracing::info!(%run_id, %key, bytes, verified, elapsed_ms, "copied");
            if let Some(runs) = runs {
                runs.record(run_id, key, &Outcome::Copied { bytes, verified })
                    .await?;
            }
            Ok(None)
        }
        Ok(Copied::Skipped) => {
            tracing::info!(%run_id, %key, elapsed_ms, "unchanged");
            if let Some(runs) = runs {
                runs.record(run_id, key, &Outcome::Skipped).await?;
            }
            Ok(None)
        }
        Ok(Copied::Paused { continuation }) => {
            tracing::info!(%run_id, %key, elapsed_ms, "paused before the deadline; a continuation goes on");
            Ok(Some(*continuation))
        }
        Err(err) => match runs {
            Some(runs) if !err.transient() => {
                tracing::error!(%run_id, %key, elapsed_ms, error = %err, class = "permanent", "failed; recorded with the run");
                let outcome = failure(&err, err.to_string());
                runs.record(run_id, key, &outcome)
                    .await
                    .map(|()| None)
                    .map_err(|cause| not_recorded(&err, cause))
            }
            Some(runs) if last_delivery => {
                tracing::error!(%run_id, %key, elapsed_ms, error = %err, class = "transient", "failed on its last delivery; recorded with the run, the job goes to the dead-letter queue");
                let reason =
                    format!("{err} (on its last delivery: the job is in the dead-letter queue)");
                match runs.record(run_id, key, &failure(&err, reason)).await {
                    Ok(()) => Err(err.into()),
                    Err(cause) => Err(not_recorded(&err, cause)),
                }
            }
            _ => {
                let class = FailureClass::of(&err).as_str();
                tracing::error!(%run_id, %key, elapsed_ms, error = %err, class, "failed; the message will be retried");
                Err(err.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copier::{unlimited, CopyOptions};
    use crate::job::{DestinationObject, SourceObject, SCHEMA_VERSION};
    use crate::memory::{MemoryLedger, MemoryStore, Object};
    use crate::store::ErrorKind;

    fn setup() -> (Copier<MemoryStore>, String) {
        let store = MemoryStore::new();
        store.create_bucket("dst");
        let object = Object::new(b"hello".to_vec());
        let job = CopyJob {
            schema_version: SCHEMA_VERSION,
            run_id: "run-1".into(),
            source: SourceObject {
                bucket: "src".into(),
                key: "a.txt".into(),
                size: 5,
                etag: object.etag.clone(),
            },
            destination: DestinationObject {
                bucket: "dst".into(),
                key: "a.txt".into(),
            },
            check_destination: true,
            resume: None,
        };
        store.put("src", "a.txt", object);
        (Copier::new(store, CopyOptions::default(), 4), job.to_json())
    }

    static NO_ANNOUNCER: std::sync::LazyLock<Announcer> =
        std::sync::LazyLock::new(Announcer::default);

    fn runs(ledger: &MemoryLedger) -> Option<Runs<'_, MemoryLedger>> {
        Some(Runs {
            ledger,
            announcer: &NO_ANNOUNCER,
        })
    }

    #[tokio::test]
    async fn an_object_is_counted_once_however_often_its_job_is_delivered() {
        let (copier, job) = setup();
        let ledger = MemoryLedger::new();
        copy_and_record(&copier, runs(&ledger), &job, false, &unlimited)
            .await
            .unwrap();
        // Delivered again (the first delivery's deletion was lost): unchanged now, not counted.
        copy_and_record(&copier, runs(&ledger), &job, false, &unlimited)
            .await
            .unwrap();
        let run = ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!(
            (run.copied, run.bytes_copied, run.verified, run.skipped),
            (1, 5, 1, 0),
            "the copy's checksum matched its source's"
        );
        assert_eq!(run.jobs_done, 1);
    }

    #[tokio::test]
    async fn the_last_outcome_of_a_run_announces_it_with_its_report() {
        use crate::completion::Announcer;
        use crate::ledger::PageCounts;
        use crate::memory::MemoryEvents;
        use std::sync::Arc;

        let (copier, good) = setup();
        let poison = good.replace("a.txt", "gone.txt");
        let ledger = MemoryLedger::new();
        let mut page = PageCounts {
            listed: 2,
            enqueued: 2,
            ..PageCounts::default()
        };
        page.add_job("a.txt");
        page.add_job("gone.txt");
        ledger
            .record_page("run-1", None, &page, Some("gone.txt"), true)
            .await
            .unwrap();
        let events = Arc::new(MemoryEvents::new());
        let reports = Arc::new(MemoryStore::new());
        reports.create_bucket("reports");
        let announcer = Announcer::default()
            .with_reports("s3://reports/nightly".parse().unwrap(), reports.clone())
            .with_events(events.clone());
        let runs = Some(Runs {
            ledger: &ledger,
            announcer: &announcer,
        });
        copy_and_record(&copier, runs, &good, false, &unlimited)
            .await
            .unwrap();
        assert!(events.events().is_empty(), "one job has no outcome yet");
        // The poison job's failure is its run's last outcome; the event cannot be published
        // at first, so the delivery fails and its redelivery announces the run.
        events.fail(1);
        let err = copy_and_record(&copier, runs, &poison, false, &unlimited)
            .await
            .unwrap_err();
        assert!(matches!(err, JobFailure::Announce(_)), "{err}");
        copy_and_record(&copier, runs, &poison, false, &unlimited)
            .await
            .unwrap();
        let published = events.events();
        assert_eq!(published.len(), 1, "{published:?}");
        let event = &published[0];
        assert_eq!(
            (event.copied, event.failed, event.status),
            (1, 1, "complete")
        );
        assert_eq!(
            event.report.as_deref(),
            Some("s3://reports/nightly/run-1/failures.jsonl")
        );
        let report = reports
            .object("reports", "nightly/run-1/failures.jsonl")
            .expect("the report is written");
        let line: serde_json::Value = serde_json::from_slice(&report.data).unwrap();
        assert_eq!(line["key"], "gone.txt");
        assert_eq!(line["error_class"], "permanent");
        // Once announced, later outcomes announce nothing again.
        copy_and_record(&copier, runs, &good, false, &unlimited)
            .await
            .unwrap();
        assert_eq!(events.events().len(), 1);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_recorded_not_retried_unless_there_is_no_ledger() {
        let (copier, job) = setup();
        let job = job.replace("a.txt\",\"size", "gone.txt\",\"size");
        let ledger = MemoryLedger::new();
        copy_and_record(&copier, runs(&ledger), &job, false, &unlimited)
            .await
            .unwrap();
        let run = ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!(run.failed, 1);
        let failures = ledger.failures("run-1").await.unwrap();
        assert_eq!(failures[0].key, "gone.txt");
        assert_eq!(failures[0].class, FailureClass::Permanent);
        let unrecorded =
            copy_and_record(&copier, None::<Runs<MemoryLedger>>, &job, false, &unlimited).await;
        assert!(
            matches!(unrecorded, Err(JobFailure::Copy(_))),
            "{unrecorded:?}"
        );
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_and_a_bad_message_refused() {
        let (copier, job) = setup();
        copier.store().fail("HeadObject", 1, ErrorKind::Transient);
        let ledger = MemoryLedger::new();
        let err = copy_and_record(&copier, runs(&ledger), &job, false, &unlimited)
            .await
            .unwrap_err();
        assert!(
            matches!(err, JobFailure::Copy(ref e) if e.transient()),
            "{err}"
        );
        assert_eq!(ledger.get("run-1").await.unwrap(), None, "nothing counted");
        let bad = copy_and_record(
            &copier,
            runs(&ledger),
            "{\"schema_version\": 1}",
            false,
            &unlimited,
        )
        .await;
        assert!(matches!(bad, Err(JobFailure::Job(_))), "{bad:?}");
    }

    #[tokio::test]
    async fn a_transient_failure_on_the_last_delivery_is_recorded_and_still_dead_lettered() {
        let (copier, job) = setup();
        copier.store().fail("HeadObject", 1, ErrorKind::Transient);
        let ledger = MemoryLedger::new();
        let err = copy_and_record(&copier, runs(&ledger), &job, true, &unlimited)
            .await
            .unwrap_err();
        assert!(
            matches!(err, JobFailure::Copy(ref e) if e.transient()),
            "{err}"
        );
        let run = ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!((run.failed, run.copied), (1, 0));
        let failures = ledger.failures("run-1").await.unwrap();
        assert_eq!(failures[0].key, "a.txt");
        assert_eq!(failures[0].class, FailureClass::Transient);
        assert!(
            failures[0].error.contains("dead-letter queue"),
            "{failures:?}"
        );
        // Without a ledger there is nowhere to record it: it is only dead-lettered.
        copier.store().fail("HeadObject", 1, ErrorKind::Transient);
        assert!(
            copy_and_record(&copier, None::<Runs<MemoryLedger>>, &job, true, &unlimited)
                .await
                .is_err()
        );
    }
}
