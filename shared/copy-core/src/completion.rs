//! A run that knows when it is over (docs/runs.md): after each outcome (and after the listing's
//! last page) the ledger is asked whether the run is over; the first invocation to find it so
//! writes the failure report and publishes the completion event, then marks the run announced.
//! A crash in between leaves the run unannounced, and the redelivered job announces it: the
//! event is published at least once.

use std::sync::Arc;

use serde::Serialize;

use crate::ledger::{LedgerError, RunLedger, RunRecord};
use crate::location::Location;
use crate::summary::failure_report;
use crate::uploads::BoxFuture;

/// A run's completion event, published as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionEvent {
    pub run_id: String,
    /// Always `complete`.
    pub status: &'static str,
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    pub listed: u64,
    pub enqueued: u64,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    pub archived: u64,
    pub verified: u64,
    pub bytes_copied: u64,
    pub started_at: String,
    pub completed_at: String,
    pub seconds: f64,
    /// The failure report's s3:// URL; `null` when none was written.
    pub report: Option<String>,
}

impl CompletionEvent {
    pub fn new(run: &RunRecord, report: Option<String>) -> Self {
        let completed_at = run.completed_at.clone().unwrap_or_default();
        CompletionEvent {
            run_id: run.run_id.clone(),
            status: "complete",
            source: run.source.clone(),
            destination: run.destination.clone(),
            dry_run: run.dry_run,
            listed: run.listed,
            enqueued: run.enqueued,
            copied: run.copied,
            skipped: run.skipped,
            failed: run.failed,
            archived: run.archived,
            verified: run.verified,
            bytes_copied: run.bytes_copied,
            seconds: run.seconds(&completed_at).unwrap_or_default(),
            started_at: run.started_at.clone(),
            completed_at,
            report,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event always serializes")
    }
}

/// Where completion events go (an SNS topic when deployed).
pub trait RunEvents: Send + Sync {
    fn publish<'a>(&'a self, event: &'a CompletionEvent) -> BoxFuture<'a, Result<(), String>>;
}

/// Where failure reports are written (S3 when deployed).
pub trait ReportWriter: Send + Sync {
    fn write<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: String,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Why a run's completion could not be announced; the caller fails its delivery so that the
/// redelivery announces it.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the failure report {url} could not be written: {detail}")]
    Report { url: String, detail: String },
    #[error("the completion event of run {run_id} could not be published: {detail}")]
    Event { run_id: String, detail: String },
}

/// What a finished run is announced with: a failure report under a prefix, and an event.
#[derive(Clone, Default)]
pub struct Announcer {
    reports: Option<(Location, Arc<dyn ReportWriter>)>,
    events: Option<Arc<dyn RunEvents>>,
}

impl Announcer {
    /// Reports are written as `<prefix>/<run_id>/failures.jsonl` (`COPY_REPORT_URL`).
    pub fn with_reports(mut self, prefix: Location, writer: Arc<dyn ReportWriter>) -> Self {
        self.reports = Some((prefix, writer));
        self
    }

    /// Events are published there (`RUN_EVENTS_TOPIC_ARN`).
    pub fn with_events(mut self, events: Arc<dyn RunEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// Where a run's failure report goes, if reports are written.
    pub fn report_location(&self, run_id: &str) -> Option<Location> {
        let (prefix, _) = self.reports.as_ref()?;
        let base = prefix.prefix.trim_end_matches('/');
        let key = if base.is_empty() {
            format!("{run_id}/failures.jsonl")
        } else {
            format!("{base}/{run_id}/failures.jsonl")
        };
        Some(Location {
            bucket: prefix.bucket.clone(),
            prefix: key,
        })
    }

    /// Writes the run's report and publishes its event.
    async fn publish<R: RunLedger>(
        &self,
        ledger: &R,
        run: &RunRecord,
    ) -> Result<CompletionEvent, AnnounceError> {
        let run_id = &run.run_id;
        let report = match (&self.reports, self.report_location(run_id)) {
            (Some((_, writer)), Some(location)) => {
                let failures = ledger.failures(run_id).await?;
                let url = location.to_string();
                writer
                    .write(
                        &location.bucket,
                        &location.prefix,
                        failure_report(&failures),
                    )
                    .await
                    .map_err(|detail| AnnounceError::Report {
                        url: url.clone(),
                        detail,
                    })?;
                Some(url)
            }
            _ => None,
        };
        let event = CompletionEvent::new(run, report);
        if let Some(events) = &self.events {
            events
                .publish(&event)
                .await
                .map_err(|detail| AnnounceError::Event {
                    run_id: run_id.clone(),
                    detail,
                })?;
        }
        Ok(event)
    }

    /// If the run is over and not yet announced: writes its report, publishes its event and
    /// marks it announced. Returns the event when this call announced the run.
    pub async fn after_outcome<R: RunLedger>(
        &self,
        ledger: &R,
        run_id: &str,
        shard: Option<usize>,
    ) -> Result<Option<CompletionEvent>, AnnounceError> {
        let Some(run) = ledger.complete(run_id, shard).await? else {
            return Ok(None);
        };
        let event = match self.publish(ledger, &run).await {
            Ok(event) => event,
            Err(err) => {
                // Let the next caller (the redelivery) announce it.
                if let Err(release) = ledger.release(run_id).await {
                    tracing::warn!(run_id, error = %release, "the announcement could not be released; it may be made again once its lease ends");
                }
                return Err(err);
            }
        };
        ledger.announced(run_id).await?;
        tracing::info!(
            run_id,
            copied = event.copied,
            skipped = event.skipped,
            failed = event.failed,
            archived = event.archived,
            report = ?event.report,
            "the run is complete"
        );
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Outcome, PageCounts};
    use crate::memory::{MemoryEvents, MemoryLedger};

    #[tokio::test]
    async fn callers_finding_a_run_over_at_once_announce_it_once() {
        let ledger = MemoryLedger::new();
        let mut page = PageCounts::default();
        page.add_job("a");
        ledger
            .record_page("r", None, &page, Some("a"), true)
            .await
            .unwrap();
        let copied = Outcome::Copied {
            bytes: 1,
            verified: false,
        };
        ledger.record_outcome("r", "a", &copied).await.unwrap();
        let events = Arc::new(MemoryEvents::new());
        let announcer = Announcer::default().with_events(events.clone());
        let (first, second) = tokio::join!(
            announcer.after_outcome(&ledger, "r", None),
            announcer.after_outcome(&ledger, "r", None)
        );
        assert_eq!(
            (first.unwrap().is_some() as u8) + (second.unwrap().is_some() as u8),
            1
        );
        assert_eq!(events.events().len(), 1);
        assert!(announcer
            .after_outcome(&ledger, "r", None)
            .await
            .unwrap()
            .is_none());
    }

    #[test]
    fn reports_go_under_their_prefix_by_run() {
        let writer: Arc<dyn ReportWriter> = Arc::new(crate::memory::MemoryStore::new());
        let at = |url: &str| {
            Announcer::default()
                .with_reports(url.parse().unwrap(), writer.clone())
                .report_location("run-1")
                .unwrap()
                .to_string()
        };
        assert_eq!(at("s3://bkt"), "s3://bkt/run-1/failures.jsonl");
        assert_eq!(
            at("s3://bkt/reports/"),
            "s3://bkt/reports/run-1/failures.jsonl"
        );
        assert_eq!(Announcer::default().report_location("run-1"), None);
    }
}
