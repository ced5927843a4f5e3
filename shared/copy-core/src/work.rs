//! The copier's protocol for one delivered job: copy the object, then count the outcome in its
//! run. A failure that can never succeed is recorded with the run and not retried; any other
//! failure, or any failure when there is no ledger to record it in, is returned so that the
//! delivery is retried and, in the end, dead-lettered. On the job's last delivery before the
//! dead-letter queue, a failure is recorded with the run as well, with its reason, so that the
//! run learns what it lost.

use std::time::Instant;

use crate::copier::{Copied, Copier, CopyError, Remaining};
use crate::job::{CopyJob, JobError};
use crate::ledger::{LedgerError, RunLedger};
use crate::store::ObjectCopier;

/// Why a delivered job was not handled; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error("{error}; and it could not be recorded: {ledger}")]
    NotRecorded { error: String, ledger: LedgerError },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the copy stopped before the deadline, and its continuation could not be sent: {0}")]
    Continue(String),
}

/// Copies the object the job (a JSON message) names and counts the outcome in its run.
/// `last_delivery`: a failure now sends the job to the dead-letter queue. `remaining`: the
/// time left; a multipart copy that cannot finish in it stops early and its continuation job is
/// returned, for the caller to hand on (nothing is counted until the object is done).
pub async fn copy_and_record<S, R>(
    copier: &Copier<S>,
    ledger: Option<&R>,
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
    match outcome {
        Ok(Copied::Copied { bytes, .. }) => {
            tracing::info!(%run_id, %key, bytes, elapsed_ms, "copied");
            if let Some(ledger) = ledger {
                ledger.record_copied(run_id, bytes).await?;
            }
            Ok(None)
        }
        Ok(Copied::Skipped) => {
            tracing::info!(%run_id, %key, elapsed_ms, "unchanged");
            if let Some(ledger) = ledger {
                ledger.record_skipped(run_id).await?;
            }
            Ok(None)
        }
        Ok(Copied::Paused { continuation }) => {
            tracing::info!(%run_id, %key, elapsed_ms, "paused before the deadline; a continuation goes on");
            Ok(Some(*continuation))
        }
        Err(err) => match ledger {
            Some(ledger) if !err.transient() => {
                tracing::error!(%run_id, %key, elapsed_ms, error = %err, class = "permanent", "failed; recorded with the run");
                ledger
                    .record_failure(run_id, key, &err.to_string())
                    .await
                    .map(|()| None)
                    .map_err(|ledger| JobFailure::NotRecorded {
                        error: err.to_string(),
                        ledger,
                    })
            }
            Some(ledger) if last_delivery => {
                tracing::error!(%run_id, %key, elapsed_ms, error = %err, class = "transient", "failed on its last delivery; recorded with the run, the job goes to the dead-letter queue");
                let reason =
                    format!("{err} (on its last delivery: the job is in the dead-letter queue)");
                match ledger.record_failure(run_id, key, &reason).await {
                    Ok(()) => Err(err.into()),
                    Err(ledger) => Err(JobFailure::NotRecorded {
                        error: err.to_string(),
                        ledger,
                    }),
                }
            }
            _ => {
                let class = if err.transient() {
                    "transient"
                } else {
                    "permanent"
                };
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

    #[tokio::test]
    async fn copies_and_skips_are_counted_in_the_run() {
        let (copier, job) = setup();
        let ledger = MemoryLedger::new();
        copy_and_record(&copier, Some(&ledger), &job, false, &unlimited)
            .await
            .unwrap();
        copy_and_record(&copier, Some(&ledger), &job, false, &unlimited)
            .await
            .unwrap();
        let run = ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!((run.copied, run.bytes_copied, run.skipped), (1, 5, 1));
    }

    #[tokio::test]
    async fn a_permanent_failure_is_recorded_not_retried_unless_there_is_no_ledger() {
        let (copier, job) = setup();
        let job = job.replace("a.txt\",\"size", "gone.txt\",\"size");
        let ledger = MemoryLedger::new();
        copy_and_record(&copier, Some(&ledger), &job, false, &unlimited)
            .await
            .unwrap();
        let run = ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!(run.failed, 1);
        assert_eq!(run.failures[0].0, "gone.txt");
        let unrecorded =
            copy_and_record(&copier, None::<&MemoryLedger>, &job, false, &unlimited).await;
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
        let err = copy_and_record(&copier, Some(&ledger), &job, false, &unlimited)
            .await
            .unwrap_err();
        assert!(
            matches!(err, JobFailure::Copy(ref e) if e.transient()),
            "{err}"
        );
        assert_eq!(ledger.get("run-1").await.unwrap(), None, "nothing counted");
        let bad = copy_and_record(
            &copier,
            Some(&ledger),
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
        let err = copy_and_record(&copier, Some(&ledger), &job, true, &unlimited)
            .await
            .unwrap_err();
        assert!(
            matches!(err, JobFailure::Copy(ref e) if e.transient()),
            "{err}"
        );
        let run = ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!((run.failed, run.copied), (1, 0));
        assert_eq!(run.failures[0].0, "a.txt");
        assert!(
            run.failures[0].1.contains("dead-letter queue"),
            "{:?}",
            run.failures
        );
        // Without a ledger there is nowhere to record it: it is only dead-lettered.
        copier.store().fail("HeadObject", 1, ErrorKind::Transient);
        assert!(
            copy_and_record(&copier, None::<&MemoryLedger>, &job, true, &unlimited)
                .await
                .is_err()
        );
    }
}
