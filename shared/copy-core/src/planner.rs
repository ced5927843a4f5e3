//! Listing → plan: walks the source listing page by page beside the destination listing and
//! turns each source object into a copy job, or a skip when the destination already matches.
//!
//! A planner can start after any key, so a long listing can stop after a page and go on later
//! (in another invocation) from the last key it planned.

use crate::decide::{decide, Decision, DestinationCursor, Listed, Seek};
use crate::job::{CopyJob, DestinationObject, SourceObject, SCHEMA_VERSION};
use crate::location::{destination_key, Location, FOLDER_MARKER_SKIPPED};
use crate::store::{ErrorKind, ObjectLister, StoreError};

/// What to copy, where, and which objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub run_id: String,
    pub source: Location,
    pub destination: Location,
    /// Only objects modified at or after this time (seconds since the Unix epoch).
    pub modified_since: Option<i64>,
    /// Copy archived objects too (those restored; the others fail, saying so). By default they
    /// are counted as archived and left alone.
    pub include_archived: bool,
}

/// A `modified_since` value that is not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 date-time such as 2016-12-13T00:00:00Z")]
pub struct BadTime(pub String);

/// Reads an RFC 3339 date-time (`Z` or a `±hh:mm` offset) into seconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Result<i64, BadTime> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.timestamp())
        .map_err(|_| BadTime(text.to_owned()))
}

/// One planned page of the source listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlannedPage {
    /// The objects that need copying (or a look at the destination first).
    pub jobs: Vec<CopyJob>,
    /// Objects listed on this page (after the `modified_since` filter).
    pub listed: u64,
    /// Objects whose destination already matches.
    pub skipped: u64,
    /// The source keys of those whose destination matched (not the folder markers).
    pub skipped_keys: Vec<String>,
    /// Archived objects left alone (see [`RunSpec::include_archived`]).
    pub archived: u64,
    /// The bytes of the jobs.
    pub planned_bytes: u64,
    /// The last key of the page: the next page starts after it.
    pub last_key: Option<String>,
    /// Whether another page follows.
    pub more: bool,
}

/// The copy job of a listed source object in a run.
pub fn job_for(
    spec: &RunSpec,
    object: Listed,
    destination_key: String,
    check_destination: bool,
) -> CopyJob {
    CopyJob {
        schema_version: SCHEMA_VERSION,
        run_id: spec.run_id.clone(),
        source: SourceObject {
            bucket: spec.source.bucket.clone(),
            key: object.key,
            size: object.size,
            etag: object.etag,
        },
        destination: DestinationObject {
            bucket: spec.destination.bucket.clone(),
            key: destination_key,
        },
        check_destination,
        resume: None,
    }
}

/// Walks the two listings in step.
pub struct Planner<L> {
    store: L,
    spec: RunSpec,
    page_size: Option<i32>,
    start_after: Option<String>,
    source_token: Option<String>,
    source_done: bool,
    destination: DestinationCursor,
    destination_token: Option<String>,
    destination_started: bool,
}

impl<L: ObjectLister> Planner<L> {
    /// A planner from the start of the listing, or after `start_after`. `page_size` caps the
    /// keys per listing page (S3's own maximum, 1,000, when `None`).
    pub fn new(
        store: L,
        spec: RunSpec,
        start_after: Option<String>,
        page_size: Option<i32>,
    ) -> Self {
        Planner {
            store,
            spec,
            page_size,
            start_after,
            source_token: None,
            source_done: false,
            destination: DestinationCursor::default(),
            destination_token: None,
            destination_started: false,
        }
    }

    /// The next page of the plan; `None` when the listing is done.
    pub async fn next_page(&mut self) -> Result<Option<PlannedPage>, StoreError> {
        if self.source_done {
            return Ok(None);
        }
        let start_after = if self.source_token.is_none() {
            self.start_after.clone()
        } else {
            None
        };
        let page = self
            .store
            .list(
                &self.spec.source,
                start_after.as_deref(),
                self.source_token.as_deref(),
                self.page_size,
            )
            .await?;
        self.source_done = page.next.is_none();
        self.source_token = page.next;
        let mut planned = PlannedPage {
            more: !self.source_done,
            ..PlannedPage::default()
        };
        for object in page.objects {
            planned.last_key = Some(object.key.clone());
            let recent = match (self.spec.modified_since, object.last_modified) {
                (Some(since), Some(modified)) => modified >= since,
                _ => true,
            };
            let Some(key) = destination_key(&self.spec.source, &self.spec.destination, &object.key)
            else {
                continue;
            };
            if !recent {
                continue;
            }
            planned.listed += 1;
            if object.archived && !self.spec.include_archived {
                planned.archived += 1;
                continue;
            }
            if key.is_empty() {
                tracing::info!(run_id = %self.spec.run_id, key = %object.key, reason = FOLDER_MARKER_SKIPPED, "skipped");
                planned.skipped += 1;
                continue;
            }
            let existing = self.find_destination(&key).await?;
            let decision = decide(&object, existing.as_ref());
            if decision == Decision::Skip {
                planned.skipped += 1;
                planned.skipped_keys.push(object.key);
                continue;
            }
            planned.planned_bytes += object.size;
            planned.jobs.push(self.job(object, key, decision));
        }
        Ok(Some(planned))
    }

    fn job(&self, object: Listed, destination_key: String, decision: Decision) -> CopyJob {
        job_for(
            &self.spec,
            object,
            destination_key,
            decision == Decision::Check,
        )
    }

    /// The destination object at `key`, reading destination pages as far as needed.
    async fn find_destination(&mut self, key: &str) -> Result<Option<Listed>, StoreError> {
        loop {
            match self.destination.seek(key) {
                Seek::Found(listed) => return Ok(Some(listed)),
                Seek::Absent => return Ok(None),
                Seek::NeedMore => self.next_destination_page().await?,
            }
        }
    }

    async fn next_destination_page(&mut self) -> Result<(), StoreError> {
        // On a resumed run, the destination is read from where the source resumes.
        let start_after = if self.destination_started {
            None
        } else {
            self.start_after
                .as_deref()
                .and_then(|key| destination_key(&self.spec.source, &self.spec.destination, key))
        };
        let result = self
            .store
            .list(
                &self.spec.destination,
                start_after.as_deref(),
                self.destination_token.as_deref(),
                self.page_size,
            )
            .await;
        self.destination_started = true;
        match result {
            Ok(page) => {
                let last = page.next.is_none();
                self.destination_token = page.next;
                self.destination.push_page(page.objects, last);
                Ok(())
            }
            // Every copy into a missing bucket fails, and is reported, one by one.
            Err(err) if err.kind == ErrorKind::NoSuchBucket => {
                self.destination = DestinationCursor::empty();
                Ok(())
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:01:00Z"), Ok(60));
        assert_eq!(parse_rfc3339("2016-12-13T20:20:33+00:00"), Ok(1481660433));
        assert_eq!(parse_rfc3339("2016-12-13T21:20:33+01:00"), Ok(1481660433));
        assert_eq!(parse_rfc3339("2016-12-13T19:50:33.5-00:30"), Ok(1481660433));
        assert!(parse_rfc3339("2016-12-13T20:20:33+0x:00").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
        assert!(parse_rfc3339("2016-12-13")
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,30}") {
            let _ = parse_rfc3339(&text);
        }
    }
}
