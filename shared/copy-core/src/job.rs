//! The copy job: one message per object, from s3-fanout to s3-copier (docs/copy-jobs.md).

use serde::{Deserialize, Serialize};

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The object to copy, as it was listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceObject {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// The listed ETag: the copy is made only from this exact content (`CopySourceIfMatch`).
    pub etag: String,
}

/// Where the copy goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationObject {
    pub bucket: String,
    pub key: String,
}

/// Copy one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyJob {
    pub schema_version: u32,
    pub run_id: String,
    pub source: SourceObject,
    pub destination: DestinationObject,
    /// The destination has the same size but another ETag: look at it (its recorded source
    /// ETag, its checksum) before copying.
    #[serde(default)]
    pub check_destination: bool,
    /// Set on a continuation: the multipart copy a copier started and stopped before its
    /// invocation's deadline, to be finished without copying its parts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// Where a multipart copy stopped: its upload (whose parts S3 lists) and its part layout, so
/// that the parts still to copy are the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub upload_id: String,
    /// The size of the first part (all but the last, unless `source_layout`).
    pub part_size: u64,
    /// The copy is made part for part in the source's own layout, learned again from the source
    /// by the continuation: the job pins the source's ETag, and so its layout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub source_layout: bool,
}

/// A message that is not a copy job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the message is not a copy job: {0}")]
    BadJson(String),
    #[error("the copy job has schema_version {0}; this code reads version {SCHEMA_VERSION}")]
    UnsupportedVersion(u32),
}

impl CopyJob {
    pub fn from_json(body: &str) -> Result<CopyJob, JobError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let version: Version =
            serde_json::from_str(body).map_err(|e| JobError::BadJson(e.to_string()))?;
        if version.schema_version != SCHEMA_VERSION {
            return Err(JobError::UnsupportedVersion(version.schema_version));
        }
        serde_json::from_str(body).map_err(|e| JobError::BadJson(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a copy job always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"{"schema_version":1,"run_id":"r-1","source":{"bucket":"src","key":"photos/a.jpg","size":734003200,"etag":"\"9b2cf535f27731c974343645a3985328-88\""},"destination":{"bucket":"dst","key":"backup/a.jpg"},"check_destination":false}"#;

    #[test]
    fn round_trips_the_documented_shape() {
        let job = CopyJob::from_json(SAMPLE).unwrap();
        assert_eq!(job.source.size, 734_003_200);
        assert_eq!(job.destination.key, "backup/a.jpg");
        assert_eq!(job.to_json(), SAMPLE);
    }

    #[test]
    fn refuses_other_messages_clearly() {
        assert!(matches!(
            CopyJob::from_json("hello"),
            Err(JobError::BadJson(_))
        ));
        assert_eq!(
            CopyJob::from_json(&SAMPLE.replace("\"schema_version\":1", "\"schema_version\":2")),
            Err(JobError::UnsupportedVersion(2))
        );
        let err = CopyJob::from_json(r#"{"schema_version":1,"run_id":"r"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        // check_destination may be left out.
        let lean = SAMPLE.replace(",\"check_destination\":false", "");
        assert!(!CopyJob::from_json(&lean).unwrap().check_destination);
    }

    #[test]
    fn a_continuation_says_whether_it_copies_in_the_source_layout() {
        let own = format!(
            "{},\"resume\":{{\"upload_id\":\"u\",\"part_size\":5242880}}}}",
            SAMPLE.trim_end_matches('}')
        );
        let job = CopyJob::from_json(&own).unwrap();
        let resume = job.resume.clone().unwrap();
        assert_eq!((resume.part_size, resume.source_layout), (5_242_880, false));
        assert_eq!(
            job.to_json(),
            own,
            "the flag is left out when it is not set"
        );
        let source = own.replace("5242880}", "5242880,\"source_layout\":true}");
        let job = CopyJob::from_json(&source).unwrap();
        assert!(job.resume.as_ref().unwrap().source_layout);
        assert_eq!(job.to_json(), source);
    }
}
