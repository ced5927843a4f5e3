//! No orphaned uploads: every multipart upload a copier starts is registered as fanout's until
//! it is completed or aborted ([`UploadRegistry`]), and a sweep aborts the registered uploads
//! under a destination that are older than a limit ([`sweep`]): the ones a copier killed in the
//! middle left behind. Uploads fanout did not start are never touched.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::ledger::LedgerError;
use crate::location::Location;
use crate::store::StoreError;

/// A boxed future, so that a copier can hold a registry of any kind.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the uploads fanout starts are written down.
pub trait UploadRegistry: Send + Sync {
    /// An upload was created for `bucket`/`key`.
    fn started<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// The upload was completed or aborted.
    fn ended<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// Whether fanout started this upload and has not ended it.
    fn is_open<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>>;

    /// Records what the upload just started for `bucket`/`key` copies, so that a delivery of
    /// the same job after a crash resumes it.
    fn copying<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload: &'a Copying,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// The last upload started for `bucket`/`key`, as [`UploadRegistry::copying`] recorded it.
    fn current<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Copying>, LedgerError>>;
}

/// What a multipart upload copies: resumable by a delivery of the same source and layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copying {
    pub upload_id: String,
    pub source_etag: String,
    pub part_size: u64,
}

/// A multipart upload not yet completed or aborted, as S3 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    /// When it was created, in seconds since the Unix epoch.
    pub initiated: i64,
}

/// The calls a sweep makes on a bucket.
pub trait UploadStore: Send + Sync {
    /// Every open upload whose key starts with the location's prefix.
    fn open_uploads(
        &self,
        location: &Location,
    ) -> impl Future<Output = Result<Vec<OpenUpload>, StoreError>> + Send;

    fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The sweep event: `{"sweep": "s3://bucket/prefix/", "older_than_hours": 24}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    pub sweep: Location,
    #[serde(default = "default_hours")]
    pub older_than_hours: u64,
}

/// Uploads older than this are stale when the request does not say.
pub const DEFAULT_STALE_HOURS: u64 = 24;

fn default_hours() -> u64 {
    DEFAULT_STALE_HOURS
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Stale uploads fanout had started, now aborted.
    pub aborted: u64,
    /// fanout's uploads younger than the limit: a copy may still be working on them.
    pub fresh: u64,
    /// Uploads fanout did not start: left alone.
    pub others: u64,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] LedgerError),
}

/// Aborts the uploads under `request.sweep` that fanout started and that were created more
/// than `older_than_hours` before `now` (seconds since the Unix epoch).
pub async fn sweep<S: UploadStore>(
    store: &S,
    registry: &dyn UploadRegistry,
    request: &SweepRequest,
    now: i64,
) -> Result<Swept, SweepError> {
    let location = &request.sweep;
    let limit = i64::try_from(request.older_than_hours.saturating_mul(3600)).unwrap_or(i64::MAX);
    let mut swept = Swept::default();
    for upload in store.open_uploads(location).await? {
        let (bucket, key, id) = (&location.bucket, &upload.key, &upload.upload_id);
        if !registry.is_open(bucket, key, id).await? {
            swept.others += 1;
        } else if now.saturating_sub(upload.initiated) < limit {
            swept.fresh += 1;
        } else {
            store.abort_upload(bucket, key, id).await?;
            registry.ended(bucket, key, id).await?;
            tracing::info!(%bucket, %key, upload_id = %id, initiated = upload.initiated, "aborted a stale upload");
            swept.aborted += 1;
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::copier::{Copier, CopyOptions};
    use crate::job::{CopyJob, DestinationObject, SourceObject, SCHEMA_VERSION};
    use crate::memory::{MemoryStore, MemoryUploads, Object};
    use crate::plan::{PartSize, Thresholds};
    use crate::size::MIB;
    use crate::store::ErrorKind;

    const HOUR: i64 = 3600;

    fn big_job(store: &MemoryStore, key: &str) -> CopyJob {
        let object = Object::new(vec![3; 11 * MIB as usize]);
        let job = CopyJob {
            schema_version: SCHEMA_VERSION,
            run_id: "r".into(),
            source: SourceObject {
                bucket: "src".into(),
                key: key.into(),
                size: object.data.len() as u64,
                etag: object.etag.clone(),
            },
            destination: DestinationObject {
                bucket: "dst".into(),
                key: format!("backup/{key}"),
            },
            check_destination: false,
            resume: None,
        };
        store.put("src", key, object);
        job
    }

    fn copier(store: MemoryStore, registry: &Arc<MemoryUploads>) -> Copier<MemoryStore> {
        let options = CopyOptions {
            thresholds: Thresholds::new(5 * MIB, PartSize::Fixed(5 * MIB)).unwrap(),
            ..CopyOptions::default()
        };
        Copier::new(store, options, 2).with_registry(registry.clone())
    }

    #[tokio::test]
    async fn an_upload_is_registered_until_it_is_completed_or_aborted() {
        let store = MemoryStore::new();
        store.create_bucket("dst");
        let (done, failing) = (big_job(&store, "done.bin"), big_job(&store, "failing.bin"));
        let registry = Arc::new(MemoryUploads::new());
        let copier = copier(store, &registry);
        copier.copy(&done).await.unwrap();
        copier
            .store()
            .fail("UploadPartCopy", 3, ErrorKind::Permanent);
        assert!(copier.copy(&failing).await.is_err());
        assert!(registry.open().is_empty(), "{:?}", registry.open());
        assert!(copier.store().open_uploads().is_empty());
        // An upload that could not be aborted stays registered: the sweep's to abort.
        copier
            .store()
            .fail("CompleteMultipartUpload", 1, ErrorKind::Permanent);
        copier
            .store()
            .fail("AbortMultipartUpload", 1, ErrorKind::Transient);
        assert!(copier.copy(&failing).await.is_err());
        assert_eq!(registry.open().len(), 1);
        assert_eq!(copier.store().open_uploads().len(), 1);
    }

    #[tokio::test]
    async fn the_sweep_aborts_only_fanouts_stale_uploads() {
        let store = MemoryStore::new();
        store.create_bucket("dst");
        let registry = MemoryUploads::new();
        // fanout's, created at hour 0 and hour 30; someone else's at hour 0; and one of
        // fanout's outside the swept prefix.
        let mut ours = Vec::new();
        for (at, key) in [
            (0, "backup/old.bin"),
            (30 * HOUR, "backup/new.bin"),
            (0, "elsewhere/x"),
        ] {
            store.set_clock(at);
            let id = store.start_upload("dst", key);
            registry.started("dst", key, &id).await.unwrap();
            ours.push(id);
        }
        store.set_clock(0);
        let theirs = store.start_upload("dst", "backup/theirs.bin");
        let request = SweepRequest {
            sweep: "s3://dst/backup/".parse().unwrap(),
            older_than_hours: 24,
        };
        let swept = sweep(&store, &registry, &request, 31 * HOUR).await.unwrap();
        assert_eq!(
            swept,
            Swept {
                aborted: 1,
                fresh: 1,
                others: 1
            }
        );
        let mut open = store.open_uploads();
        open.sort();
        let mut expected = vec![ours[1].clone(), ours[2].clone(), theirs];
        expected.sort();
        assert_eq!(open, expected);
        assert!(!registry
            .is_open("dst", "backup/old.bin", &ours[0])
            .await
            .unwrap());
        // Run again: nothing more to do.
        let again = sweep(&store, &registry, &request, 31 * HOUR).await.unwrap();
        assert_eq!(again.aborted, 0);
    }

    #[test]
    fn the_sweep_event_reads_with_a_default_limit_and_refuses_others() {
        let request: SweepRequest = serde_json::from_str(r#"{"sweep": "s3://bkt/p/"}"#).unwrap();
        assert_eq!(request.older_than_hours, DEFAULT_STALE_HOURS);
        assert_eq!(request.sweep, Location::new("bkt", "p/"));
        assert!(serde_json::from_str::<SweepRequest>(r#"{"sweep": "bkt/p"}"#).is_err());
        assert!(serde_json::from_str::<SweepRequest>(
            r#"{"sweep": "s3://bkt/", "older_than_hours": -1}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<SweepRequest>(r#"{"sweep": "s3://bkt/", "extra": 1}"#).is_err()
        );
    }
}
