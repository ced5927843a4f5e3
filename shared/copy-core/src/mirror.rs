//! Continuous backup (docs/copy.md): S3's events for the source bucket, delivered by an
//! EventBridge rule to the copy queue. An object created is copied within seconds; an object
//! deleted is removed from the backup only when deletions are propagated, and only when the
//! source has not been written again since. The nightly listing stays the reconciliation: it
//! copies whatever an event missed.

use crate::batch::{copy_task, ResultCode, Target, Task, TaskResult};
use crate::copier::{Copier, Remaining};
use crate::location::Location;
use crate::store::{ErrorKind, ObjectCopier};

/// What happened to an object of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Deleted,
}

/// One S3 event: the object, as the event names it (its key not encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// The event's id, for the logs.
    pub id: String,
    pub change: Change,
    pub bucket: String,
    pub key: String,
}

/// Where events are applied: the source prefix (`SOURCE_PREFIX`), the destination
/// (`DEST_BUCKET`, `DEST_PREFIX`), and whether deletions are propagated (`PROPAGATE_DELETES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub source_prefix: String,
    pub destination: Location,
    pub propagate_deletes: bool,
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Copied(String),
    Deleted(String),
    /// Nothing to do: outside the source prefix, a deletion not propagated, a source written
    /// again since its deletion.
    Ignored(String),
    /// It can never be applied (the object is gone, access is denied…): the event is dropped
    /// with this reason, and the nightly run copies or reports the object.
    Refused(String),
}

impl Mirror {
    fn target(&self) -> Target {
        Target {
            destination: self.destination.clone(),
            source_prefix: self.source_prefix.clone(),
        }
    }

    /// Applies one event. `Err`: it may pass later (throttling, a 5xx, a copy paused at the
    /// deadline), so the event is to be delivered again.
    pub async fn apply<S: ObjectCopier>(
        &self,
        copier: &Copier<S>,
        event: &ObjectEvent,
        remaining: Remaining<'_>,
    ) -> Result<Applied, TaskResult> {
        if !event.key.starts_with(&self.source_prefix) {
            return Ok(Applied::Ignored(format!(
                "s3://{}/{} is outside SOURCE_PREFIX {:?}",
                event.bucket, event.key, self.source_prefix
            )));
        }
        let task = Task {
            id: event.id.clone(),
            bucket: event.bucket.clone(),
            key: event.key.clone(),
            version_id: None,
        };
        match event.change {
            Change::Created => {
                let result = copy_task(copier, &event.id, &self.target(), &task, remaining).await;
                match result.code {
                    ResultCode::Succeeded => Ok(Applied::Copied(result.message)),
                    ResultCode::TemporaryFailure => Err(result),
                    ResultCode::PermanentFailure => Ok(Applied::Refused(result.message)),
                }
            }
            Change::Deleted => self.delete(copier, &task).await,
        }
    }

    async fn delete<S: ObjectCopier>(
        &self,
        copier: &Copier<S>,
        task: &Task,
    ) -> Result<Applied, TaskResult> {
        if !self.propagate_deletes {
            return Ok(Applied::Ignored(
                "deletions are not propagated (PROPAGATE_DELETES is false)".into(),
            ));
        }
        let destination = match self.target().destination_of(task) {
            Ok(destination) => destination,
            Err(refused) => return Ok(Applied::Refused(refused.message)),
        };
        let store = copier.store();
        let failed = |error: crate::store::StoreError| match error.kind {
            ErrorKind::Transient => Err(TaskResult {
                code: ResultCode::TemporaryFailure,
                message: error.to_string(),
            }),
            _ => Ok(Applied::Refused(error.to_string())),
        };
        // Written again since (events may arrive out of order): the copy stays.
        match store.head(&task.bucket, &task.key).await {
            Ok(Some(_)) => {
                return Ok(Applied::Ignored(format!(
                    "s3://{}/{} exists again: its copy is kept",
                    task.bucket, task.key
                )))
            }
            Ok(None) => {}
            Err(error) => return failed(error),
        }
        match store
            .delete_object(&destination.bucket, &destination.key)
            .await
        {
            Ok(()) => Ok(Applied::Deleted(format!(
                "deleted s3://{}/{}",
                destination.bucket, destination.key
            ))),
            Err(error) => failed(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copier::{unlimited, CopyOptions};
    use crate::memory::{MemoryStore, Object};

    fn setup(propagate_deletes: bool) -> (Copier<MemoryStore>, Mirror) {
        let store = MemoryStore::new();
        store.create_bucket("src");
        store.create_bucket("dst");
        let mirror = Mirror {
            source_prefix: "photos/".into(),
            destination: "s3://dst/backup/".parse().unwrap(),
            propagate_deletes,
        };
        (Copier::new(store, CopyOptions::default(), 4), mirror)
    }

    fn event(change: Change, key: &str) -> ObjectEvent {
        ObjectEvent {
            id: "e-1".into(),
            change,
            bucket: "src".into(),
            key: key.into(),
        }
    }

    #[tokio::test]
    async fn a_created_object_is_copied_and_one_outside_the_prefix_is_not() {
        let (copier, mirror) = setup(false);
        copier
            .store()
            .put("src", "photos/a.jpg", Object::new(vec![1; 100]));
        copier
            .store()
            .put("src", "other/b.jpg", Object::new(vec![2; 100]));
        let applied = mirror
            .apply(&copier, &event(Change::Created, "photos/a.jpg"), &unlimited)
            .await
            .unwrap();
        assert!(matches!(applied, Applied::Copied(_)), "{applied:?}");
        assert_eq!(
            copier.store().object("dst", "backup/a.jpg").unwrap().data,
            vec![1; 100]
        );
        let outside = mirror
            .apply(&copier, &event(Change::Created, "other/b.jpg"), &unlimited)
            .await
            .unwrap();
        assert!(matches!(outside, Applied::Ignored(_)), "{outside:?}");
        assert!(copier.store().object("dst", "backup/b.jpg").is_none());
        // Gone before its event was applied: refused, not retried.
        let gone = mirror
            .apply(
                &copier,
                &event(Change::Created, "photos/gone.jpg"),
                &unlimited,
            )
            .await
            .unwrap();
        assert!(matches!(gone, Applied::Refused(ref why) if why.contains("NoSuchKey")));
        // Throttled: delivered again.
        copier.store().fail("HeadObject", 1, ErrorKind::Transient);
        let later = mirror
            .apply(&copier, &event(Change::Created, "photos/a.jpg"), &unlimited)
            .await
            .unwrap_err();
        assert_eq!(later.code, ResultCode::TemporaryFailure);
    }

    #[tokio::test]
    async fn a_deletion_removes_the_copy_only_when_propagated_and_the_source_is_still_gone() {
        for propagate in [false, true] {
            let (copier, mirror) = setup(propagate);
            let store = copier.store();
            store.put("dst", "backup/a.jpg", Object::new(vec![1; 10]));
            store.put("dst", "backup/b.jpg", Object::new(vec![2; 10]));
            store.put("dst", "elsewhere/a.jpg", Object::new(vec![3; 10]));
            // b.jpg was deleted, then written again before its event came.
            store.put("src", "photos/b.jpg", Object::new(vec![2; 10]));
            for key in ["photos/a.jpg", "photos/b.jpg"] {
                let applied = mirror
                    .apply(&copier, &event(Change::Deleted, key), &unlimited)
                    .await
                    .unwrap();
                let expected = propagate && key == "photos/a.jpg";
                assert_eq!(
                    matches!(applied, Applied::Deleted(_)),
                    expected,
                    "{propagate} {key}: {applied:?}"
                );
            }
            assert_eq!(store.object("dst", "backup/a.jpg").is_none(), propagate);
            assert!(store.object("dst", "backup/b.jpg").is_some());
            assert!(store.object("dst", "elsewhere/a.jpg").is_some());
            let deletes = (store.calls().iter())
                .filter(|c| c.starts_with("DeleteObject"))
                .count();
            assert_eq!(deletes, usize::from(propagate));
        }
    }

    #[tokio::test]
    async fn a_deletion_that_fails_for_now_is_delivered_again() {
        let (copier, mirror) = setup(true);
        copier
            .store()
            .put("dst", "backup/a.jpg", Object::new(vec![1; 10]));
        copier.store().fail("DeleteObject", 1, ErrorKind::Transient);
        let deleted = event(Change::Deleted, "photos/a.jpg");
        let later = mirror
            .apply(&copier, &deleted, &unlimited)
            .await
            .unwrap_err();
        assert_eq!(later.code, ResultCode::TemporaryFailure);
        let applied = mirror.apply(&copier, &deleted, &unlimited).await.unwrap();
        assert!(matches!(applied, Applied::Deleted(_)));
        assert!(copier.store().object("dst", "backup/a.jpg").is_none());
    }
}
