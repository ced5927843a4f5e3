//! The copier's protocol for one delivered job: copy the object, then count the outcome in its
//! run. A failure that can never succeed is recorded with the run and not retried; any other
//! failure, or any failure when there is no ledger to record it in, is returned so that the
//! delivery is retried and, in the end, dead-lettered.

use std::time::Instant;

use crate::copier::{Copied, Copier, CopyError};
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
}

/// Copies the object the job (a JSON message) names and counts the outcome in its run.
pub async fn copy_and_record<S, R>(
    copier: &Copier<S>,
    ledger: Option<&R>,
    message: &str,
) -> Result<(), JobFailure>
where
    S: ObjectCopier,
    R: RunLedger,
{
    let job = CopyJob::from_json(message)?;
    let started = Instant::now();
    let outcome = copier.copy(&job).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let (run_id, key) = (&job.run_id, &job.source.key);
    match outcome {
        Ok(Copied::Copied { bytes }) => {
            tracing::info!(%run_id, %key, bytes, elapsed_ms, "copied");
            if let Some(ledger) = ledger {
                ledger.record_copied(run_id, bytes).await?;
            }
            Ok(())
        }
        Ok(Copied::Skipped) => {
            tracing::info!(%run_id, %key, elapsed_ms, "unchanged");
            if let Some(ledger) = ledger {
                ledger.record_skipped(run_id).await?;
            }
            Ok(())
        }
        Err(err) => match ledger {
            Some(ledger) if !err.transient() => {
                tracing::error!(%run_id, %key, elapsed_ms, error = %err, class = "permanent", "failed; recorded with the run");
                ledger
                    .record_failure(run_id, key, &err.to_string())
                    .await
                    .map_err(|ledger| JobFailure::NotRecorded {
                        error: err.to_string(),
                        ledger,
                    })
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
    use crate::copier::CopyOptions;
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
        };
        store.put("src", "a.txt", object);
        (Copier::new(store, CopyOptions::default(), 4), job.to_json())
    }

    #[tokio::test]
    async fn copies_and_skips_are_counted_in_the_run() {
        let (copier, job) = setup();
        let ledger = MemoryLedger::new();
        copy_and_record(&copier, Some(&ledger), &job).await.unwrap();
        copy_and_record(&copier, Some(&ledger), &job).await.unwrap();
        let run = ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!((run.copied, run.bytes_copied, run.skipped), (1, 5, 1));
    }

    #[tokio::test]
    async fn a_permanent_failure_is_recorded_not_retried_unless_there_is_no_ledger() {
        let (copier, job) = setup();
        let job = job.replace("a.txt\",\"size", "gone.txt\",\"size");
        let ledger = MemoryLedger::new();
        copy_and_record(&copier, Some(&ledger), &job).await.unwrap();
        let run = ledger.get("run-1").await.unwrap().unwrap();
        assert_eq!(run.failed, 1);
        assert_eq!(run.failures[0].0, "gone.txt");
        let unrecorded = copy_and_record(&copier, None::<&MemoryLedger>, &job).await;
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
        let err = copy_and_record(&copier, Some(&ledger), &job)
            .await
            .unwrap_err();
        assert!(
            matches!(err, JobFailure::Copy(ref e) if e.transient()),
            "{err}"
        );
        assert_eq!(ledger.get("run-1").await.unwrap(), None, "nothing counted");
        let bad = copy_and_record(&copier, Some(&ledger), "{\"schema_version\": 1}").await;
        assert!(matches!(bad, Err(JobFailure::Job(_))), "{bad:?}");
    }
}
