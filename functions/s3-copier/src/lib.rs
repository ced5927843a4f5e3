//! s3-copier: copies the object each copy job names, server side (docs/copy-jobs.md).
//!
//! Takes SNS events, and SQS events whose bodies are SNS notifications or raw jobs; for SQS it
//! answers with partial batch failures. A job that fails for good (the source is gone or
//! changed, the destination bucket is missing, access is denied) is recorded as failed in the
//! run's item and not retried; any other failure, or any failure when no run table is set, fails
//! the message so that it is retried and, in the end, lands in the dead-letter queue.

use std::time::Instant;

use fanout_common::events::{Batch, Delivery};
use fanout_common::{ConfigError, Vars};
use fanout_copy::copier::{parse_storage_class, Copied, Copier, CopyError, CopyOptions};
use fanout_copy::job::JobError;
use fanout_copy::ledger::{LedgerError, RunLedger};
use fanout_copy::plan::{
    parse_part_size, PartSize, Thresholds, AUTO_MAX_PART_SIZE, DEFAULT_MULTIPART_THRESHOLD,
};
use fanout_copy::size::parse_size;
use fanout_copy::CopyJob;
use serde_json::Value;

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &[
    "COPY_RUNS_TABLE",
    "COPY_MULTIPART_THRESHOLD",
    "COPY_PART_SIZE",
    "COPY_CONCURRENCY",
    "COPY_STORAGE_CLASS",
    "COPY_KMS_KEY_ID",
];

/// The IAM actions this function's code calls (checked against infra/template.yaml): HEAD and
/// copy source reads (s3:GetObject, s3:GetObjectTagging; s3:ListBucket so that a missing object
/// is a 404, not a 403), copy destination writes (s3:PutObject, s3:PutObjectTagging for the tags
/// a copy carries, s3:AbortMultipartUpload), and the run item.
pub const IAM_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:GetObjectTagging",
    "s3:ListBucket",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:AbortMultipartUpload",
    "dynamodb:UpdateItem",
];

/// The part size when `COPY_PART_SIZE` is unset. Unlike the CLI, a copier instance runs beside
/// up to the copier's maximum concurrency of others, so a fan-out is bound by S3's request rate
/// per prefix rather than by one object's parallelism: fixed 16 MiB parts take a third of the
/// requests of 5 MiB ones (docs/copy.md, "The Lambda fan-out, in numbers").
pub const DEFAULT_PART_SIZE: PartSize = PartSize::Fixed(AUTO_MAX_PART_SIZE);
/// Copy requests in flight per instance when `COPY_CONCURRENCY` is unset: one 1 GiB object's
/// 64 parts at once.
pub const DEFAULT_CONCURRENCY: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub runs_table: Option<String>,
    pub options: CopyOptions,
    pub concurrency: usize,
}

const SIZE: &str = "a size in bytes, or a whole number with KiB, MiB or GiB";

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let threshold = vars
            .parsed_with("COPY_MULTIPART_THRESHOLD", SIZE, parse_size)?
            .unwrap_or(DEFAULT_MULTIPART_THRESHOLD);
        let part_size = vars
            .parsed_with(
                "COPY_PART_SIZE",
                "auto, a size in bytes, or a whole number with KiB, MiB or GiB",
                parse_part_size,
            )?
            .unwrap_or(DEFAULT_PART_SIZE);
        let thresholds = Thresholds::new(threshold, part_size).map_err(|e| {
            let var = if matches!(e, fanout_copy::plan::ThresholdError::ThresholdTooLarge(_)) {
                "COPY_MULTIPART_THRESHOLD"
            } else {
                "COPY_PART_SIZE"
            };
            ConfigError::Invalid {
                var,
                value: vars.optional(var).unwrap_or_default(),
                reason: e.to_string(),
                expected:
                    "a multipart threshold of at most 5 GiB and a part size of 5 MiB to 5 GiB",
            }
        })?;
        let concurrency = vars.parsed_or(
            "COPY_CONCURRENCY",
            DEFAULT_CONCURRENCY,
            "a whole number of copy requests in flight at once, 1 or more",
        )?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                var: "COPY_CONCURRENCY",
                value: "0".into(),
                reason: "nothing would be copied".into(),
                expected: "a whole number of copy requests in flight at once, 1 or more",
            });
        }
        Ok(Config {
            runs_table: vars.optional("COPY_RUNS_TABLE"),
            options: CopyOptions {
                thresholds,
                storage_class: vars.parsed_with(
                    "COPY_STORAGE_CLASS",
                    "an S3 storage class such as STANDARD_IA",
                    parse_storage_class,
                )?,
                kms_key_id: vars.optional("COPY_KMS_KEY_ID"),
            },
            concurrency,
        })
    }
}

/// Why a message was not handled; it is retried.
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

pub struct CopyHandler {
    copier: Copier,
    ledger: Option<RunLedger>,
}

impl CopyHandler {
    pub fn new(copier: Copier, ledger: Option<RunLedger>) -> Self {
        CopyHandler { copier, ledger }
    }

    /// Handles an SNS or SQS event.
    pub async fn handle(&self, event: Value) -> Result<Value, lambda_runtime::Error> {
        let batch = Batch::from_value(event)?;
        Ok(batch.handle(|delivery| self.copy(delivery)).await?)
    }

    /// Copies one job's object and counts the outcome in its run.
    pub async fn copy(&self, delivery: Delivery) -> Result<(), JobFailure> {
        let job = CopyJob::from_json(&delivery.body)?;
        let started = Instant::now();
        let outcome = self.copier.copy(&job).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (run_id, key) = (&job.run_id, &job.source.key);
        match outcome {
            Ok(Copied::Copied { bytes }) => {
                tracing::info!(%run_id, %key, bytes, elapsed_ms, "copied");
                if let Some(ledger) = &self.ledger {
                    ledger.record_copied(run_id, bytes).await?;
                }
                Ok(())
            }
            Ok(Copied::Skipped) => {
                tracing::info!(%run_id, %key, elapsed_ms, "unchanged");
                if let Some(ledger) = &self.ledger {
                    ledger.record_skipped(run_id).await?;
                }
                Ok(())
            }
            Err(err) => match &self.ledger {
                Some(ledger) if !err.transient() => {
                    tracing::error!(%run_id, %key, elapsed_ms, error = %err, "failed; recorded with the run");
                    ledger
                        .record_failure(run_id, key, &err.to_string())
                        .await
                        .map_err(|ledger| JobFailure::NotRecorded {
                            error: err.to_string(),
                            ledger,
                        })
                }
                _ => {
                    tracing::error!(%run_id, %key, elapsed_ms, error = %err, transient = err.transient(), "failed; the message will be retried");
                    Err(err.into())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout_copy::size::MIB;

    #[test]
    fn defaults_and_knobs() {
        let config = Config::from_vars(&Vars::from_pairs([])).unwrap();
        assert_eq!(
            config.options.thresholds,
            Thresholds::new(DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE).unwrap()
        );
        assert_eq!(config.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(config.runs_table, None);
        let config = Config::from_vars(&Vars::from_pairs([
            ("COPY_MULTIPART_THRESHOLD", "8MiB"),
            ("COPY_PART_SIZE", "5242880"),
            ("COPY_CONCURRENCY", "10"),
            ("COPY_STORAGE_CLASS", "STANDARD_IA"),
            ("COPY_KMS_KEY_ID", "alias/backup"),
            ("COPY_RUNS_TABLE", "runs"),
        ]))
        .unwrap();
        assert_eq!(config.options.thresholds.multipart_threshold(), 8 * MIB);
        assert_eq!(
            config.options.thresholds.part_size(),
            PartSize::Fixed(5 * MIB)
        );
        assert_eq!(config.concurrency, 10);
        assert_eq!(config.options.kms_key_id.as_deref(), Some("alias/backup"));
        let config = Config::from_vars(&Vars::from_pairs([("COPY_PART_SIZE", "auto")])).unwrap();
        assert_eq!(config.options.thresholds.part_size(), PartSize::Auto);
    }

    #[test]
    fn bad_knobs_name_their_variable() {
        for (var, value) in [
            ("COPY_MULTIPART_THRESHOLD", "8MB"),
            ("COPY_MULTIPART_THRESHOLD", "6GiB"),
            ("COPY_PART_SIZE", "1MiB"),
            ("COPY_PART_SIZE", "automatic"),
            ("COPY_CONCURRENCY", "0"),
            ("COPY_CONCURRENCY", "many"),
            ("COPY_STORAGE_CLASS", "cheap"),
        ] {
            let err = Config::from_vars(&Vars::from_pairs([(var, value)])).unwrap_err();
            assert_eq!(err.var(), Some(var), "{var}={value}: {err}");
        }
    }
}
