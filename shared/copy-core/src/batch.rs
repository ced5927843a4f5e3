//! S3 Batch Operations: each task of a job names one object, which is copied to the job's
//! destination, and answered with a result S3 records in the job's completion report
//! (docs/batch-operations.md).
//!
//! Results are truthful: `Succeeded` only when the object is in place; `PermanentFailure` when
//! trying again cannot help (the key is missing, access is denied, the task names an old
//! version); `TemporaryFailure` when it may (throttling, a 5xx, a copy paused before the
//! invocation's deadline, which the retry resumes from the parts already copied).

use crate::copier::{Copied, Copier, CopyError, Remaining};
use crate::job::{CopyJob, DestinationObject, SourceObject, SCHEMA_VERSION};
use crate::location::Location;
use crate::store::{ErrorKind, ObjectCopier};

/// What S3 records for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Succeeded,
    /// S3 tries the task again (up to the job's retry limit).
    TemporaryFailure,
    PermanentFailure,
}

impl ResultCode {
    /// The name S3 reads.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultCode::Succeeded => "Succeeded",
            ResultCode::TemporaryFailure => "TemporaryFailure",
            ResultCode::PermanentFailure => "PermanentFailure",
        }
    }
}

/// One task: an object of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub bucket: String,
    /// The key, decoded.
    pub key: String,
    /// The version the manifest names, if it names one.
    pub version_id: Option<String>,
}

/// A task's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    pub code: ResultCode,
    /// A short reason or summary, for the completion report.
    pub message: String,
}

impl TaskResult {
    fn new(code: ResultCode, message: impl Into<String>) -> TaskResult {
        TaskResult {
            code,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> TaskResult {
        TaskResult::new(ResultCode::PermanentFailure, message)
    }
}

/// Where a job's objects go: the destination, and the prefix to strip from each source key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub destination: Location,
    pub source_prefix: String,
}

/// The longest result string S3 keeps in a completion report.
pub const RESULT_STRING_LIMIT: usize = 1024;

impl Target {
    /// Where `task`'s object is copied to, or why it is not copied at all.
    pub fn destination_of(&self, task: &Task) -> Result<DestinationObject, TaskResult> {
        let Some(rest) = task.key.strip_prefix(&self.source_prefix) else {
            return Err(TaskResult::permanent(format!(
                "the key is not under the job's source_prefix {:?}",
                self.source_prefix
            )));
        };
        let key = format!("{}{rest}", self.destination.prefix);
        if key.is_empty() {
            return Err(TaskResult::permanent(
                "the key maps to an empty key in the destination (a folder marker at source_prefix): nothing to copy",
            ));
        }
        // The object is itself under the destination: a copy would read its own output.
        if task.bucket == self.destination.bucket && task.key.starts_with(&self.destination.prefix)
        {
            return Err(TaskResult::permanent(format!(
                "s3://{}/{} is inside the destination {}: a copy would read its own output",
                task.bucket, task.key, self.destination
            )));
        }
        Ok(DestinationObject {
            bucket: self.destination.bucket.clone(),
            key,
        })
    }
}

/// Copies one task's object: its size and ETag read from the source first, the destination
/// looked at so that an object already in place is not copied again. `remaining` tells how
/// long the invocation has: a multipart copy that cannot finish in time stops and answers
/// `TemporaryFailure`, and the retry resumes it when the copier has an upload registry.
pub async fn copy_task<S: ObjectCopier>(
    copier: &Copier<S>,
    job_id: &str,
    target: &Target,
    task: &Task,
    remaining: Remaining<'_>,
) -> TaskResult {
    let result = async {
        let destination = target.destination_of(task)?;
        let head = match copier.store().head(&task.bucket, &task.key).await {
            Ok(Some(head)) => head,
            Ok(None) => {
                return Err(TaskResult::permanent(format!(
                    "NoSuchKey: s3://{}/{} does not exist",
                    task.bucket, task.key
                )))
            }
            Err(error) => return Err(store_failure(&error.kind, error.to_string())),
        };
        if let Some(wanted) = &task.version_id {
            if head.version_id.as_deref().unwrap_or("null") != wanted {
                return Err(TaskResult::permanent(format!(
                    "the task names version {wanted}, and the current version is {}: only current versions are copied",
                    head.version_id.as_deref().unwrap_or("null")
                )));
            }
        }
        let job = CopyJob {
            schema_version: SCHEMA_VERSION,
            run_id: format!("batch-{job_id}"),
            source: SourceObject {
                bucket: task.bucket.clone(),
                key: task.key.clone(),
                size: head.observed.size,
                etag: head.observed.etag.clone(),
            },
            destination,
            check_destination: true,
            resume: None,
        };
        let to = format!("s3://{}/{}", job.destination.bucket, job.destination.key);
        Ok(match copier.copy_within(&job, remaining).await {
            Ok(Copied::Copied { bytes, verified }) => TaskResult::new(
                ResultCode::Succeeded,
                format!(
                    "copied {bytes} bytes to {to}{}",
                    if verified { ", checksum verified" } else { "" }
                ),
            ),
            Ok(Copied::Skipped) => {
                TaskResult::new(ResultCode::Succeeded, format!("already in place at {to}"))
            }
            Ok(Copied::Paused { .. }) => TaskResult::new(
                ResultCode::TemporaryFailure,
                "the copy paused before the invocation's deadline; the retry goes on from the parts copied",
            ),
            Err(error) => copy_failure(&error),
        })
    };
    let mut answer = result.await.unwrap_or_else(|failure| failure);
    shorten(&mut answer.message);
    answer
}

fn store_failure(kind: &ErrorKind, message: String) -> TaskResult {
    match kind {
        ErrorKind::Transient => TaskResult::new(ResultCode::TemporaryFailure, message),
        ErrorKind::NotFound | ErrorKind::NoSuchBucket | ErrorKind::Permanent => {
            TaskResult::permanent(message)
        }
    }
}

fn copy_failure(error: &CopyError) -> TaskResult {
    match error {
        // Changed since this invocation read it: the retry reads it again.
        CopyError::SourceChanged { .. } => {
            TaskResult::new(ResultCode::TemporaryFailure, error.to_string())
        }
        error if error.transient() => {
            TaskResult::new(ResultCode::TemporaryFailure, error.to_string())
        }
        error => TaskResult::permanent(error.to_string()),
    }
}

/// Cuts a message to S3's limit, on a character boundary.
fn shorten(message: &mut String) {
    if message.len() > RESULT_STRING_LIMIT {
        let mut end = RESULT_STRING_LIMIT - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::copier::{unlimited, CopyOptions};
    use crate::memory::{time_for, MemoryStore, MemoryUploads, Object};
    use crate::plan::{PartSize, Thresholds};
    use crate::size::MIB;

    fn copier(store: MemoryStore, registry: Option<&Arc<MemoryUploads>>) -> Copier<MemoryStore> {
        let options = CopyOptions {
            thresholds: Thresholds::new(5 * MIB, PartSize::Fixed(5 * MIB)).unwrap(),
            ..CopyOptions::default()
        };
        let copier = Copier::new(store, options, 2);
        match registry {
            Some(registry) => copier.with_registry(registry.clone()),
            None => copier,
        }
    }

    fn store() -> MemoryStore {
        let store = MemoryStore::new();
        store.create_bucket("src");
        store.create_bucket("dst");
        store
    }

    fn task(key: &str) -> Task {
        Task {
            id: format!("t-{key}"),
            bucket: "src".into(),
            key: key.into(),
            version_id: None,
        }
    }

    fn target(destination: &str, source_prefix: &str) -> Target {
        Target {
            destination: destination.parse().unwrap(),
            source_prefix: source_prefix.into(),
        }
    }

    #[tokio::test]
    async fn a_task_is_copied_to_the_destination_with_the_source_prefix_stripped() {
        let store = store();
        store.put("src", "photos/a b+c.jpg", Object::new(vec![7; 1000]));
        let copier = copier(store, None);
        let target = target("s3://dst/backup/", "photos/");
        let result = copy_task(&copier, "j", &target, &task("photos/a b+c.jpg"), &unlimited).await;
        assert_eq!(result.code, ResultCode::Succeeded, "{result:?}");
        assert!(
            result.message.contains("s3://dst/backup/a b+c.jpg"),
            "{result:?}"
        );
        let copy = copier
            .store()
            .object("dst", "backup/a b+c.jpg")
            .expect("copied");
        assert_eq!(copy.data, vec![7; 1000]);
        // Again: already in place, not copied twice.
        let again = copy_task(&copier, "j", &target, &task("photos/a b+c.jpg"), &unlimited).await;
        assert_eq!(again.code, ResultCode::Succeeded);
        assert!(again.message.starts_with("already in place"), "{again:?}");
        let copies = (copier.store().calls().iter())
            .filter(|c| c.starts_with("CopyObject"))
            .count();
        assert_eq!(copies, 1);
    }

    #[tokio::test]
    async fn what_cannot_succeed_is_a_permanent_failure_and_what_may_is_temporary() {
        let store = store();
        store.put("src", "elsewhere/x", Object::new(vec![1; 10]));
        store.put("src", "photos/", Object::new(Vec::new()));
        store.put("src", "photos/b", Object::new(vec![1; 10]));
        let copier = copier(store, None);
        let t = target("s3://dst/", "photos/");
        let permanent = [
            (task("photos/missing"), "NoSuchKey"),
            (task("elsewhere/x"), "not under the job's source_prefix"),
            (task("photos/"), "empty key"),
            (
                Task {
                    version_id: Some("v-old".into()),
                    ..task("photos/b")
                },
                "names version v-old",
            ),
        ];
        for (task, why) in permanent {
            let result = copy_task(&copier, "j", &t, &task, &unlimited).await;
            assert_eq!(
                result.code,
                ResultCode::PermanentFailure,
                "{task:?}: {result:?}"
            );
            assert!(result.message.contains(why), "{task:?}: {result:?}");
        }
        // An object under the destination: the copy would read its own output.
        let inside = target("s3://src/photos/", "");
        let result = copy_task(&copier, "j", &inside, &task("photos/b"), &unlimited).await;
        assert_eq!(result.code, ResultCode::PermanentFailure, "{result:?}");
        assert!(result.message.contains("its own output"), "{result:?}");
        // A key that merely starts like the destination's prefix is copied.
        let beside = target("s3://src/photos/b-backup/", "");
        let result = copy_task(&copier, "j", &beside, &task("photos/b"), &unlimited).await;
        assert_eq!(result.code, ResultCode::Succeeded, "{result:?}");
        for (operation, kind, code) in [
            (
                "HeadObject",
                ErrorKind::Permanent,
                ResultCode::PermanentFailure,
            ),
            (
                "HeadObject",
                ErrorKind::Transient,
                ResultCode::TemporaryFailure,
            ),
            (
                "CopyObject",
                ErrorKind::Transient,
                ResultCode::TemporaryFailure,
            ),
            (
                "CopyObject",
                ErrorKind::Permanent,
                ResultCode::PermanentFailure,
            ),
        ] {
            // Enough failures to outlast the copier's own tries.
            copier.store().fail(operation, 10, kind);
            let result = copy_task(&copier, "j", &t, &task("photos/b"), &unlimited).await;
            copier.store().fail(operation, 0, kind);
            assert_eq!(result.code, code, "{operation} {kind:?}: {result:?}");
            assert!(copier.store().object("dst", "b").is_none());
        }
        assert!(
            copy_task(&copier, "j", &t, &task("photos/b"), &unlimited)
                .await
                .code
                == ResultCode::Succeeded
        );
    }

    #[tokio::test]
    async fn a_copy_paused_at_the_deadline_is_temporary_and_the_retry_finishes_it() {
        let registry = Arc::new(MemoryUploads::new());
        let store = store();
        store.put("src", "big.bin", Object::new(vec![9; 23 * MIB as usize]));
        let copier = copier(store, Some(&registry));
        let t = target("s3://dst/copy/", "");
        let short = time_for(2, Duration::from_secs(1));
        let first = copy_task(&copier, "j", &t, &task("big.bin"), &short).await;
        assert_eq!(first.code, ResultCode::TemporaryFailure, "{first:?}");
        assert_eq!(copier.store().open_uploads().len(), 1);
        let parts_before = (copier.store().calls().iter())
            .filter(|c| c.starts_with("UploadPartCopy"))
            .count();
        assert!(
            (1..5).contains(&parts_before),
            "{parts_before} parts before the pause"
        );
        let retry = copy_task(&copier, "j", &t, &task("big.bin"), &unlimited).await;
        assert_eq!(retry.code, ResultCode::Succeeded, "{retry:?}");
        let parts = (copier.store().calls().iter())
            .filter(|c| c.starts_with("UploadPartCopy"))
            .count();
        assert_eq!(parts, 5, "no part copied twice");
        assert!(copier.store().open_uploads().is_empty());
        assert!(registry.open().is_empty());
        assert_eq!(
            copier
                .store()
                .object("dst", "copy/big.bin")
                .unwrap()
                .data
                .len(),
            23 * MIB as usize
        );
    }

    #[test]
    fn long_messages_are_cut_to_s3s_limit_on_a_character_boundary() {
        let mut message = "é".repeat(RESULT_STRING_LIMIT);
        shorten(&mut message);
        assert!(message.len() <= RESULT_STRING_LIMIT && message.ends_with("..."));
        let mut short = "fine".to_owned();
        shorten(&mut short);
        assert_eq!(short, "fine");
    }
}
