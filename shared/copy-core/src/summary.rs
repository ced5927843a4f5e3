//! What a run did: counts, bytes and the failed keys.

use std::fmt;

use serde::Serialize;

use crate::size::format_size;

/// One object that could not be copied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub key: String,
    pub error: String,
    /// The object's size, as listed.
    pub size: u64,
    pub class: FailureClass,
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Trying again cannot help: the source is gone or changed, access is denied, the job
    /// could never be published.
    Permanent,
    /// It failed every time it was tried (the job went to the dead-letter queue): a later run
    /// may succeed.
    Transient,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Permanent => "permanent",
            FailureClass::Transient => "transient",
        }
    }

    /// The class of a copy's error.
    pub fn of(err: &crate::copier::CopyError) -> FailureClass {
        if err.transient() {
            FailureClass::Transient
        } else {
            FailureClass::Permanent
        }
    }

    pub fn parse(text: &str) -> Option<FailureClass> {
        match text {
            "permanent" => Some(FailureClass::Permanent),
            "transient" => Some(FailureClass::Transient),
            _ => None,
        }
    }
}

/// The failure report: one JSON object per failed object, each on its own line (JSON Lines),
/// as S3 Batch Operations' completion reports list the tasks that failed.
pub fn failure_report(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(|failure| {
            let line = ReportLine {
                key: &failure.key,
                version: None,
                size: failure.size,
                error_class: failure.class.as_str(),
                message: &failure.error,
            };
            serde_json::to_string(&line).expect("a report line always serializes") + "\n"
        })
        .collect()
}

/// One line of a failure report.
#[derive(Debug, Serialize)]
struct ReportLine<'a> {
    key: &'a str,
    /// Versions are not copied apart: always null.
    version: Option<&'a str>,
    size: u64,
    error_class: &'a str,
    message: &'a str,
}

/// A run's outcome. The CLI prints it; with `--json` as one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RunSummary {
    pub run_id: String,
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    /// Objects listed under the source prefix (and modified since the cutoff, if one was given).
    pub listed: u64,
    pub copied: u64,
    /// Copies whose full-object checksum, computed by S3 on the copy, was found equal to the
    /// source's (of those copied; a copy whose checksum differs is failed).
    pub verified: u64,
    pub skipped: u64,
    /// Archived objects left alone (not restored, or not asked for).
    pub archived: u64,
    pub failed: u64,
    pub bytes_copied: u64,
    /// Objects that needed a copy (with `--dry-run`, what would have been copied).
    pub planned: u64,
    pub planned_bytes: u64,
    pub seconds: f64,
    pub failures: Vec<Failure>,
}

impl RunSummary {
    /// The summary as one line of JSON.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a summary always serializes")
    }

    pub fn succeeded(&self) -> bool {
        self.failed == 0
    }

    /// The failure report: one JSON object per failed object, each on its own line.
    pub fn failure_report(&self) -> String {
        failure_report(&self.failures)
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = if self.seconds > 0.0 {
            format!(
                ", {}/s",
                format_size((self.bytes_copied as f64 / self.seconds) as u64)
            )
        } else {
            String::new()
        };
        if self.dry_run {
            writeln!(
                f,
                "dry run {}: {} listed, {} would be copied ({}), {} unchanged",
                self.run_id,
                self.listed,
                self.planned,
                format_size(self.planned_bytes),
                self.skipped
            )?;
        } else {
            writeln!(
                f,
                "run {}: {} copied ({}, {} verified by checksum), {} skipped, {} failed, of {} listed, in {:.1} s{rate}",
                self.run_id,
                self.copied,
                format_size(self.bytes_copied),
                self.verified,
                self.skipped,
                self.failed,
                self.listed,
                self.seconds
            )?;
        }
        if self.archived > 0 {
            writeln!(
                f,
                "archived: {} objects in GLACIER or DEEP_ARCHIVE left alone: restore them and run again with archived objects included",
                self.archived
            )?;
        }
        for failure in &self.failures {
            writeln!(f, "failed: {}: {}", failure.key, failure.error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_has_the_documented_fields() {
        let summary = RunSummary {
            run_id: "r".into(),
            copied: 2,
            verified: 1,
            failed: 1,
            bytes_copied: 10,
            failures: vec![Failure {
                key: "k".into(),
                error: "NoSuchKey".into(),
                size: 7,
                class: FailureClass::Permanent,
            }],
            ..RunSummary::default()
        };
        let value: serde_json::Value = serde_json::from_str(&summary.to_json_line()).unwrap();
        for field in [
            "run_id",
            "copied",
            "verified",
            "skipped",
            "archived",
            "failed",
            "bytes_copied",
            "seconds",
        ] {
            assert!(value.get(field).is_some(), "{field}");
        }
        assert!(!summary.succeeded());
        let text = summary.to_string();
        assert!(
            text.contains("2 copied (10 B, 1 verified by checksum)"),
            "{text}"
        );
        assert!(text.contains("failed: k: NoSuchKey"), "{text}");
        let report: Vec<serde_json::Value> = summary
            .failure_report()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            report,
            vec![serde_json::json!({"key": "k", "version": null, "size": 7,
                "error_class": "permanent", "message": "NoSuchKey"})]
        );
    }
}
