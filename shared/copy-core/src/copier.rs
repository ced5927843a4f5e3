//! Copies one object, server side: a source uploaded in parts is copied part for part in its
//! own layout (so the copy's ETag is the source's, and a later run skips it at listing); any
//! other, a CopyObject at or below the multipart threshold, else a multipart copy in parts of
//! our own. Parts are copied in parallel, and the upload is aborted if any part fails.
//! Headers, user metadata and tags are carried on both paths; the source ETag is recorded in
//! the destination's metadata so that a later run can tell the copy is current. Where the
//! source has a full-object checksum, the store computes the same on the copy, and a copy whose
//! checksum differs is a failure.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use crate::decide::{same_etag, unchanged, Checksum, SOURCE_ETAG_METADATA};

/// How many times one part is tried before the object is given up, and the first pause between
/// tries (it grows fourfold).
pub const PART_ATTEMPTS: u32 = 3;
const PART_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// S3's limit on an object's user metadata: the UTF-8 bytes of every key and value together.
pub const USER_METADATA_LIMIT: usize = 2048;
use crate::job::{CopyJob, Resume};
use crate::pace::{Aimd, Slot};
use crate::plan::{self, Method, Part, PartSize, Thresholds, TooLarge};
use crate::store::{
    CompletedPart, CopyRequest, ObjectCopier, ObjectHead, StorageClass, StoreError,
};
use crate::uploads::{Copying, UploadRegistry};

/// How copies are made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyOptions {
    pub thresholds: Thresholds,
    /// The destination storage class; the bucket's default when `None`.
    pub storage_class: Option<StorageClass>,
    /// Encrypt the copies with this KMS key (SSE-KMS).
    pub kms_key_id: Option<String>,
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    Copied {
        bytes: u64,
        /// The copy's full-object checksum, computed by the store, is the source's. `false`
        /// when the source has none, or the store gave none of its algorithm.
        verified: bool,
    },
    /// The destination already held the same content.
    Skipped,
    /// A multipart copy stopped before the deadline, its parts so far kept in its upload: the
    /// continuation job finishes it.
    Paused { continuation: Box<CopyJob> },
}

/// How much time is left, as a function the copier asks before it starts each part.
pub type Remaining<'a> = &'a (dyn Fn() -> Duration + Sync);

/// No deadline.
pub fn unlimited() -> Duration {
    Duration::MAX
}

/// Time kept back, at least, for the parts in flight to finish before the deadline; more when
/// parts have been seen to take longer (twice the slowest).
pub const PAUSE_RESERVE: Duration = Duration::from_secs(60);

/// Why an object was not copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("the source object s3://{bucket}/{key} no longer exists")]
    SourceMissing { bucket: String, key: String },
    #[error("the source object s3://{bucket}/{key} changed after it was listed (ETag {listed} then, {now} now); the next run copies the new content")]
    SourceChanged {
        bucket: String,
        key: String,
        listed: String,
        now: String,
    },
    #[error("s3://{bucket}/{key}: {reason}")]
    TooLarge {
        bucket: String,
        key: String,
        reason: TooLarge,
    },
    #[error("the source object s3://{bucket}/{key} is archived and not restored: restore it (aws s3api restore-object) and run again with archived objects included")]
    Archived { bucket: String, key: String },
    #[error("the copy s3://{bucket}/{key} has {algorithm} checksum {copy_checksum} and its source {source_checksum}: the copy does not match its source")]
    ChecksumMismatch {
        bucket: String,
        key: String,
        algorithm: &'static str,
        source_checksum: String,
        copy_checksum: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the registry of multipart uploads could not be read: {0}")]
    Registry(crate::ledger::LedgerError),
    #[error(
        "the multipart upload {upload_id} could not be registered, so it was aborted: {error}"
    )]
    NotRegistered {
        upload_id: String,
        error: crate::ledger::LedgerError,
    },
    #[error("{error}; and the multipart upload {upload_id} could not be aborted ({abort}): a lifecycle rule (AbortIncompleteMultipartUpload) removes it")]
    NotAborted {
        error: Box<CopyError>,
        upload_id: String,
        abort: StoreError,
    },
}

impl CopyError {
    /// Whether trying the same job again later may succeed.
    pub fn transient(&self) -> bool {
        match self {
            CopyError::Store(err) => err.transient(),
            // The copy went wrong in flight: copying it again may not.
            CopyError::NotRegistered { .. }
            | CopyError::Registry(_)
            | CopyError::ChecksumMismatch { .. } => true,
            CopyError::NotAborted { error, .. } => error.transient(),
            _ => false,
        }
    }
}

/// Copies objects with at most `concurrency` copy requests (CopyObject or UploadPartCopy) in
/// flight at once, across every object it copies.
#[derive(Clone)]
pub struct Copier<S> {
    store: S,
    options: CopyOptions,
    permits: Arc<Semaphore>,
    concurrency: usize,
    /// Copy requests planned and not yet finished, across every object: what is left of the
    /// concurrency is what the automatic part size may fill.
    planned: Arc<AtomicUsize>,
    /// Where the multipart uploads it starts are registered until they end, so that a sweep
    /// can abort those a killed copier left behind.
    registry: Option<Arc<dyn UploadRegistry>>,
    /// How many copy requests may be in flight to each destination bucket, adapted to S3's
    /// SlowDown; the concurrency alone when `None`.
    pace: Option<Arc<Aimd>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Copier<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copier")
            .field("store", &self.store)
            .field("options", &self.options)
            .field("concurrency", &self.concurrency)
            .field("registry", &self.registry.is_some())
            .finish()
    }
}

/// One planned copy request, counted in [`Copier::planned`] until it is dropped.
struct Planned(Arc<AtomicUsize>);

impl Planned {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Planned(counter.clone())
    }
}

impl Drop for Planned {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: ObjectCopier> Copier<S> {
    pub fn new(store: S, options: CopyOptions, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Copier {
            store,
            options,
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            planned: Arc::new(AtomicUsize::new(0)),
            registry: None,
            pace: None,
        }
    }

    /// Keeps the copy requests in flight to each destination bucket within what `pace` allows
    /// (the store reports S3's answers to it).
    pub fn with_pace(mut self, pace: Arc<Aimd>) -> Self {
        self.pace = Some(pace);
        self
    }

    /// Registers every multipart upload it starts until the upload ends.
    pub fn with_registry(mut self, registry: Arc<dyn UploadRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Whether the uploads it starts are registered, so that a copy paused at a deadline can
    /// be resumed by another delivery of its job.
    pub fn has_registry(&self) -> bool {
        self.registry.is_some()
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Copy requests that could start now without waiting for one already planned.
    pub fn free_slots(&self) -> usize {
        self.concurrency
            .saturating_sub(self.planned.load(Ordering::Relaxed))
    }

    /// Copies the job's object, unless the destination already holds its content.
    pub async fn copy(&self, job: &CopyJob) -> Result<Copied, CopyError> {
        self.copy_within(job, &unlimited).await
    }

    /// Copies the job's object; a multipart copy that cannot finish in the time `remaining`
    /// tells stops starting parts once less than the reserve is left, and answers
    /// [`Copied::Paused`] with the job that goes on from there.
    pub async fn copy_within(
        &self,
        job: &CopyJob,
        remaining: Remaining<'_>,
    ) -> Result<Copied, CopyError> {
        let Some(source) = self.source_to_copy(job).await? else {
            // A continuation whose object another delivery of the job has copied meanwhile:
            // its upload will never be completed.
            if let Some(resume) = &job.resume {
                let request = self.request(job, &ObjectHead::default());
                if let Err(error) = self.discard(&request, &resume.upload_id).await {
                    tracing::warn!(key = %job.destination.key, upload_id = %resume.upload_id, %error, "the upload of a continuation no longer needed was not aborted; the sweep will");
                }
            }
            return Ok(Copied::Skipped);
        };
        let src = &job.source;
        let layout = self.source_layout(job).await?;
        let method = match &layout {
            Some(sizes) => Method::Multipart(plan::parts_of(sizes)),
            None => {
                let thresholds = match &job.resume {
                    // The same layout as the upload being resumed.
                    Some(resume) => Thresholds::new(
                        self.options.thresholds.multipart_threshold(),
                        PartSize::Fixed(resume.part_size),
                    )
                    .unwrap_or(self.options.thresholds),
                    None => self.options.thresholds,
                };
                plan::plan(src.size, &thresholds, self.free_slots()).map_err(|reason| {
                    CopyError::TooLarge {
                        bucket: src.bucket.clone(),
                        key: src.key.clone(),
                        reason,
                    }
                })?
            }
        };
        // Counted from now, so that objects planned meanwhile see these slots as taken.
        let planned: Vec<_> = (0..method.copy_requests())
            .map(|_| Planned::new(&self.planned))
            .collect();
        let mut request = self.request(job, &source);
        let source_checksum = source.observed.checksum.as_ref();
        let answered = match method {
            Method::Single => {
                let _planned = planned;
                let _permit = self.permit(&request.bucket).await;
                self.store.copy_object(&request).await?
            }
            Method::Multipart(parts) => {
                // S3 computes full-object checksums of uploads in parts for the CRC algorithms
                // only.
                if !request
                    .checksum_algorithm
                    .is_some_and(|algorithm| algorithm.starts_with("CRC"))
                {
                    request.checksum_algorithm = None;
                }
                // S3 leaves the tag count out when there are no tags.
                if source.tag_count.is_some_and(|count| count > 0) {
                    request.tags = self.store.tags(&src.bucket, &src.key).await?;
                }
                let at = Deadline {
                    remaining,
                    slowest_ms: AtomicU64::new(0),
                };
                let source_layout = layout.is_some();
                match (self.multipart(&request, job, parts, planned, &at, source_layout)).await? {
                    Finished::Completed(checksum) => checksum,
                    Finished::Paused(resume) => {
                        // A continuation looks at the destination first: the upload may have
                        // been completed by a delivery of this job that was not acknowledged.
                        let continuation = CopyJob {
                            resume: Some(resume),
                            check_destination: true,
                            ..job.clone()
                        };
                        return Ok(Copied::Paused {
                            continuation: Box::new(continuation),
                        });
                    }
                }
            }
        };
        let verified = self.verify(&request, source_checksum, answered).await?;
        Ok(Copied::Copied {
            bytes: src.size,
            verified,
        })
    }

    /// The source's own part layout, when the copy is made part for part: for a source
    /// uploaded in parts whose copy can keep its ETag (not under SSE-KMS, whose ETags are not
    /// the content's), and for the continuation of such a copy.
    async fn source_layout(&self, job: &CopyJob) -> Result<Option<Vec<u64>>, CopyError> {
        let wanted = match &job.resume {
            Some(resume) => resume.source_layout,
            None => self.options.kms_key_id.is_none(),
        };
        if !wanted {
            return Ok(None);
        }
        let src = &job.source;
        Ok(
            crate::layout::source_layout(&self.store, &src.bucket, &src.key, src.size, &src.etag)
                .await?,
        )
    }

    /// Whether the copy's full-object checksum (as the store answered the copy, else as a HEAD
    /// of the copy says) is the source's: `false` when the copy did not ask for one, or either
    /// has none of one algorithm; an error when they differ.
    async fn verify(
        &self,
        request: &CopyRequest,
        source: Option<&Checksum>,
        answered: Option<Checksum>,
    ) -> Result<bool, CopyError> {
        let Some(source) = source.filter(|_| request.checksum_algorithm.is_some()) else {
            return Ok(false);
        };
        let copy = match answered {
            Some(checksum) if checksum.algorithm == source.algorithm => Some(checksum),
            _ => (self.store.head(&request.bucket, &request.key).await?)
                .and_then(|head| head.observed.checksum),
        };
        match copy {
            Some(copy) if copy.algorithm == source.algorithm => {
                if copy.value == source.value {
                    Ok(true)
                } else {
                    tracing::error!(key = %request.key, algorithm = source.algorithm, source = %source.value, copy = %copy.value, "the copy's checksum is not its source's");
                    Err(CopyError::ChecksumMismatch {
                        bucket: request.bucket.clone(),
                        key: request.key.clone(),
                        algorithm: source.algorithm,
                        source_checksum: source.value.clone(),
                        copy_checksum: copy.value,
                    })
                }
            }
            _ => Ok(false),
        }
    }

    /// The source's HEAD, when it still is what was listed and the destination does not
    /// already hold it; `None` when the destination does.
    async fn source_to_copy(&self, job: &CopyJob) -> Result<Option<ObjectHead>, CopyError> {
        let (src, dst) = (&job.source, &job.destination);
        let destination = if job.check_destination {
            let head = self.store.head(&dst.bucket, &dst.key).await?;
            if let Some(head) = &head {
                // A destination with a checksum of its own is compared with the source's
                // first: its record of the source may belong to a copy that did not match.
                if head.observed.checksum.is_none()
                    && unchanged(src.size, &src.etag, None, &head.observed)
                {
                    return Ok(None);
                }
            }
            head.map(|head| head.observed)
        } else {
            None
        };
        let source = (self.store.head(&src.bucket, &src.key).await?).ok_or_else(|| {
            CopyError::SourceMissing {
                bucket: src.bucket.clone(),
                key: src.key.clone(),
            }
        })?;
        if source.unrestored_archive {
            return Err(CopyError::Archived {
                bucket: src.bucket.clone(),
                key: src.key.clone(),
            });
        }
        if !same_etag(&source.observed.etag, &src.etag) || source.observed.size != src.size {
            return Err(CopyError::SourceChanged {
                bucket: src.bucket.clone(),
                key: src.key.clone(),
                listed: src.etag.clone(),
                now: source.observed.etag.clone(),
            });
        }
        let checksum = source.observed.checksum.as_ref();
        match &destination {
            Some(dest) if unchanged(src.size, &src.etag, checksum, dest) => Ok(None),
            _ => Ok(Some(source)),
        }
    }

    fn request(&self, job: &CopyJob, source: &ObjectHead) -> CopyRequest {
        let mut metadata = source.metadata.clone();
        // The record is only added where it fits in S3's 2 KB of user metadata: without it, a
        // later run compares the destination by checksum, or copies it again.
        let used: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if used + SOURCE_ETAG_METADATA.len() + job.source.etag.len() <= USER_METADATA_LIMIT {
            metadata.insert(SOURCE_ETAG_METADATA.to_owned(), job.source.etag.clone());
        }
        CopyRequest {
            source_bucket: job.source.bucket.clone(),
            source_key: job.source.key.clone(),
            source_etag: job.source.etag.clone(),
            bucket: job.destination.bucket.clone(),
            key: job.destination.key.clone(),
            headers: source.headers.clone(),
            metadata,
            tags: Vec::new(),
            storage_class: self.options.storage_class.clone(),
            kms_key_id: self.options.kms_key_id.clone(),
            checksum_algorithm: source.observed.checksum.as_ref().map(|c| c.algorithm),
        }
    }

    /// Waits until a copy request to `bucket` may start: within the concurrency, and within
    /// the pace S3 allows that bucket.
    async fn permit(&self, bucket: &str) -> (tokio::sync::SemaphorePermit<'_>, Option<Slot>) {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the copier never closes its semaphore");
        let slot = match &self.pace {
            Some(pace) => Some(pace.acquire(bucket).await),
            None => None,
        };
        (permit, slot)
    }

    /// Copies one part; a transient failure (after the store's own retries) is tried again,
    /// alone, after a pause, before the object is given up.
    async fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: Part,
    ) -> Result<crate::store::CompletedPart, StoreError> {
        let mut pause = PART_RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            match self.store.copy_part(request, upload_id, part).await {
                Err(err) if err.transient() && attempt < PART_ATTEMPTS => {
                    tracing::warn!(key = %request.key, part = part.number, attempt, error = %err, "a part failed; trying it again");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// The upload to copy into, with the parts already in it: the continuation's own, or the
    /// one a delivery of the same job started before it crashed (same source, same parts),
    /// while it still exists; else a new one, registered (and an older one of the same object
    /// for another source aborted).
    async fn upload_for(
        &self,
        request: &CopyRequest,
        job: &CopyJob,
        parts: &[Part],
    ) -> Result<(String, Vec<CompletedPart>), CopyError> {
        if let Some(resume) = &job.resume {
            match self
                .store
                .uploaded_parts(request, &resume.upload_id)
                .await?
            {
                Some(done) if fits(&done, parts) => return Ok((resume.upload_id.clone(), done)),
                Some(_) => {
                    tracing::warn!(key = %request.key, upload_id = %resume.upload_id, "the upload to resume has parts of another layout; starting a new one");
                    self.discard(request, &resume.upload_id).await?;
                }
                None => {
                    tracing::warn!(key = %request.key, upload_id = %resume.upload_id, "the upload to resume no longer exists; starting a new one")
                }
            }
        } else if let Some(found) = self.previous_upload(request, parts).await? {
            return Ok(found);
        }
        let part_size = parts.first().map_or(0, Part::bytes);
        let created = self.store.create_multipart(request).await?;
        self.abort_lost(request, &created.maybe_lost).await;
        let upload_id = created.upload_id;
        let Some(registry) = &self.registry else {
            return Ok((upload_id, Vec::new()));
        };
        let copying = Copying {
            upload_id: upload_id.clone(),
            source_etag: request.source_etag.clone(),
            part_size,
        };
        let (bucket, key) = (&request.bucket, &request.key);
        let registered = match registry.started(bucket, key, &upload_id).await {
            Ok(()) => registry.copying(bucket, key, &copying).await,
            Err(error) => Err(error),
        };
        let Err(error) = registered else {
            return Ok((upload_id, Vec::new()));
        };
        Err(
            match self.store.abort_multipart(request, &upload_id).await {
                Ok(()) => CopyError::NotRegistered { upload_id, error },
                Err(abort) => CopyError::NotAborted {
                    error: Box::new(CopyError::NotRegistered {
                        upload_id: upload_id.clone(),
                        error,
                    }),
                    upload_id,
                    abort,
                },
            },
        )
    }

    /// Aborts the uploads that attempts whose answers were lost made, unless a delivery
    /// registered one as its own (a delivery of the same job running at the same time).
    async fn abort_lost(&self, request: &CopyRequest, lost: &[String]) {
        for upload_id in lost {
            let (bucket, key) = (&request.bucket, &request.key);
            let owned = match &self.registry {
                Some(registry) => registry.is_open(bucket, key, upload_id).await,
                None => Ok(false),
            };
            let outcome = match owned {
                Ok(true) => continue,
                Ok(false) => self.store.abort_multipart(request, upload_id).await,
                Err(error) => {
                    tracing::warn!(%key, %upload_id, %error, "an upload whose creation answer was lost is left for the sweep: the registry could not say whose it is");
                    continue;
                }
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(%key, %upload_id, "aborted an upload whose creation answer was lost")
                }
                Err(error) => {
                    tracing::warn!(%key, %upload_id, %error, "could not abort an upload whose creation answer was lost")
                }
            }
        }
    }

    /// Aborts an upload that will not be completed, and lets the registry know.
    async fn discard(&self, request: &CopyRequest, upload_id: &str) -> Result<(), CopyError> {
        self.store.abort_multipart(request, upload_id).await?;
        if let Some(registry) = &self.registry {
            if let Err(error) = registry
                .ended(&request.bucket, &request.key, upload_id)
                .await
            {
                tracing::warn!(key = %request.key, %upload_id, %error, "the aborted upload is still registered");
            }
        }
        Ok(())
    }

    /// The upload a crashed delivery of this job left open, to resume: only for the same
    /// source content and parts. One for other content is aborted.
    async fn previous_upload(
        &self,
        request: &CopyRequest,
        parts: &[Part],
    ) -> Result<Option<(String, Vec<CompletedPart>)>, CopyError> {
        let part_size = parts.first().map_or(0, Part::bytes);
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        let (bucket, key) = (&request.bucket, &request.key);
        let previous = (registry.current(bucket, key).await).map_err(CopyError::Registry)?;
        let Some(previous) = previous else {
            return Ok(None);
        };
        let Some(done) = (self.store)
            .uploaded_parts(request, &previous.upload_id)
            .await?
        else {
            return Ok(None);
        };
        if previous.source_etag == request.source_etag
            && previous.part_size == part_size
            && fits(&done, parts)
        {
            tracing::info!(%key, upload_id = %previous.upload_id, parts = done.len(), "resuming the upload an earlier delivery of this job started");
            return Ok(Some((previous.upload_id, done)));
        }
        self.discard(request, &previous.upload_id).await?;
        Ok(None)
    }

    /// Copies the parts not yet in the upload in parallel and completes it; on any failure,
    /// lets the parts in flight finish, starts no more, and aborts the upload so that no parts
    /// are left behind. When the deadline comes near, starts no more parts and answers where
    /// the copy stopped: the upload stays open, for the continuation.
    async fn multipart(
        &self,
        request: &CopyRequest,
        job: &CopyJob,
        parts: Vec<Part>,
        planned: Vec<Planned>,
        at: &Deadline<'_>,
        source_layout: bool,
    ) -> Result<Finished, CopyError> {
        let part_size = parts.first().map_or(0, Part::bytes);
        let (upload_id, done) = self.upload_for(request, job, &parts).await?;
        let (failed, paused) = (AtomicBool::new(false), AtomicBool::new(false));
        // Every invocation copies one part at least, however little time it has: a copy
        // always moves on, and never continues forever.
        let started = AtomicBool::new(false);
        let todo = (parts.into_iter().zip(planned))
            .filter(|(part, _)| !done.iter().any(|d| d.number == part.number));
        let results: Vec<Result<_, StoreError>> = stream::iter(todo)
            .map(|(part, planned)| {
                let (failed, paused, started, upload_id) = (&failed, &paused, &started, &upload_id);
                async move {
                    let _planned = planned;
                    let _permit = self.permit(&request.bucket).await;
                    if failed.load(Ordering::Relaxed) || paused.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    let first = !started.swap(true, Ordering::SeqCst);
                    if !first && at.too_late() {
                        paused.store(true, Ordering::Relaxed);
                        return Ok(None);
                    }
                    // tokio's clock, as the sleeps are: the same as the system's, except under a
                    // paused clock (tests, the copy simulation), where parts take virtual time.
                    let started = tokio::time::Instant::now();
                    let outcome = self.copy_part(request, upload_id, part).await;
                    at.took(started.elapsed());
                    if outcome.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    outcome.map(Some)
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let outcome = match results.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(_) if paused.load(Ordering::Relaxed) => {
                tracing::info!(key = %request.key, %upload_id, "stopping before the deadline; a continuation finishes the copy");
                return Ok(Finished::Paused(Resume {
                    upload_id,
                    part_size,
                    source_layout,
                }));
            }
            Ok(completed) => {
                let mut all = done;
                all.extend(completed.into_iter().flatten());
                self.store
                    .complete_multipart(request, &upload_id, all)
                    .await
            }
            Err(err) => Err(err),
        };
        let ended = match outcome {
            Ok(checksum) => Ok(Finished::Completed(checksum)),
            Err(err) => match self.store.abort_multipart(request, &upload_id).await {
                Ok(()) => Err(err.into()),
                Err(abort) => {
                    // Still open: it stays registered, for the sweep.
                    return Err(CopyError::NotAborted {
                        error: Box::new(err.into()),
                        upload_id,
                        abort,
                    });
                }
            },
        };
        if let Some(registry) = &self.registry {
            if let Err(error) = registry
                .ended(&request.bucket, &request.key, &upload_id)
                .await
            {
                // The upload is gone either way; the sweep skips what S3 no longer lists.
                tracing::warn!(key = %request.key, %upload_id, %error, "the ended upload is still registered");
            }
        }
        ended
    }
}

/// How a multipart copy ended in this invocation.
enum Finished {
    /// Completed; with the copy's checksum when the store answered one.
    Completed(Option<Checksum>),
    /// Stopped before the deadline: where to go on from.
    Paused(Resume),
}

/// Whether the parts already in an upload are parts of this plan (same numbers, same sizes):
/// an upload made for another layout cannot be completed with it.
fn fits(done: &[CompletedPart], parts: &[Part]) -> bool {
    done.iter().all(|part| {
        usize::try_from(part.number - 1)
            .ok()
            .and_then(|i| parts.get(i))
            .is_some_and(|planned| planned.bytes() == part.size)
    })
}

/// The time left, and the slowest part seen so far.
struct Deadline<'a> {
    remaining: Remaining<'a>,
    slowest_ms: AtomicU64,
}

impl Deadline<'_> {
    /// Whether a part started now might not finish before the deadline.
    fn too_late(&self) -> bool {
        let slowest = Duration::from_millis(self.slowest_ms.load(Ordering::Relaxed));
        (self.remaining)() < PAUSE_RESERVE.max(slowest * 2)
    }

    fn took(&self, duration: Duration) {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.slowest_ms.fetch_max(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::time_for;

    #[test]
    fn storage_classes_are_checked() {
        assert_eq!(
            "STANDARD_IA"
                .parse::<StorageClass>()
                .map(|c| c.as_str().to_owned()),
            Ok("STANDARD_IA".to_owned())
        );
        let err = "cheap".parse::<StorageClass>().unwrap_err().to_string();
        assert!(
            err.contains("\"cheap\" is not an S3 storage class"),
            "{err}"
        );
        assert!(err.contains("GLACIER_IR"), "{err}");
    }

    #[test]
    fn only_store_failures_that_may_pass_are_transient() {
        let store = |transient| {
            CopyError::Store(StoreError {
                operation: "CopyObject",
                bucket: "b".into(),
                key: "k".into(),
                kind: if transient {
                    crate::store::ErrorKind::Transient
                } else {
                    crate::store::ErrorKind::Permanent
                },
                detail: "x".into(),
            })
        };
        assert!(store(true).transient());
        assert!(!store(false).transient());
        assert!(!CopyError::SourceMissing {
            bucket: "b".into(),
            key: "k".into()
        }
        .transient());
    }

    use crate::job::{DestinationObject, SourceObject, SCHEMA_VERSION};
    use crate::memory::{MemoryStore, MemoryUploads, Object};
    use crate::plan::PartSize;
    use crate::size::MIB;
    use crate::store::ErrorKind;

    fn store_with(key: &str, len: usize) -> (MemoryStore, CopyJob) {
        let store = MemoryStore::new();
        store.create_bucket("dst");
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut object = Object::new(data);
        object.metadata.insert("owner".into(), "ops".into());
        object.headers.content_type = Some("image/jpeg".into());
        object.tags = vec![("team".into(), "data".into())];
        let etag = object.etag.clone();
        store.put("src", key, object);
        let job = CopyJob {
            schema_version: SCHEMA_VERSION,
            run_id: "run-1".into(),
            source: SourceObject {
                bucket: "src".into(),
                key: key.into(),
                size: len as u64,
                etag,
            },
            destination: DestinationObject {
                bucket: "dst".into(),
                key: format!("backup/{key}"),
            },
            check_destination: false,
            resume: None,
        };
        (store, job)
    }

    /// Time left, as an invocation sees it: plenty for the first `asks` times the copier asks,
    /// then `after`.
    fn five_mib_parts() -> CopyOptions {
        CopyOptions {
            thresholds: Thresholds::new(5 * MIB, PartSize::Fixed(5 * MIB)).unwrap(),
            ..CopyOptions::default()
        }
    }

    #[tokio::test]
    async fn a_copy_request_waits_for_a_slot_of_the_pace() {
        let (store, job) = store_with("a.jpg", 1000);
        let pace = Arc::new(crate::pace::Aimd::new(1));
        let copier = Copier::new(store, five_mib_parts(), 4).with_pace(pace.clone());
        let held = pace.acquire(&job.destination.bucket).await;
        let copy = copier.copy(&job);
        tokio::pin!(copy);
        let early = tokio::time::timeout(Duration::from_millis(50), &mut copy).await;
        assert!(early.is_err(), "copied without a slot: {early:?}");
        drop(held);
        assert!(matches!(copy.await.unwrap(), Copied::Copied { .. }));
    }

    #[tokio::test]
    async fn a_small_object_is_one_copy_with_its_headers_and_metadata() {
        let (store, job) = store_with("a.jpg", 1000);
        let copier = Copier::new(store, five_mib_parts(), 4);
        assert_eq!(
            copier.copy(&job).await,
            Ok(Copied::Copied {
                bytes: 1000,
                verified: true
            })
        );
        let copy = copier.store().object("dst", "backup/a.jpg").unwrap();
        let source = copier.store().object("src", "a.jpg").unwrap();
        assert_eq!(copy.data, source.data);
        assert_eq!(copy.headers, source.headers);
        assert_eq!(copy.metadata.get("owner").map(String::as_str), Some("ops"));
        assert_eq!(
            copy.metadata.get(SOURCE_ETAG_METADATA),
            Some(&job.source.etag)
        );
        let calls = copier.store().calls();
        assert!(
            calls.contains(&"CopyObject backup/a.jpg".to_owned()),
            "{calls:?}"
        );
        assert!(
            !calls.iter().any(|c| c.starts_with("CreateMultipartUpload")),
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn a_large_object_is_copied_in_parts_with_its_tags() {
        let len = 12 * MIB as usize + 7;
        let (store, job) = store_with("big.bin", len);
        let copier = Copier::new(store, five_mib_parts(), 4);
        assert_eq!(
            copier.copy(&job).await,
            Ok(Copied::Copied {
                bytes: len as u64,
                verified: true
            })
        );
        let store = copier.store();
        let copy = store.object("dst", "backup/big.bin").unwrap();
        assert_eq!(copy.data, store.object("src", "big.bin").unwrap().data);
        assert!(copy.etag.ends_with("-3\""), "three parts: {}", copy.etag);
        assert_eq!(copy.tags, vec![("team".to_owned(), "data".to_owned())]);
        let parts = store
            .calls()
            .iter()
            .filter(|c| c.starts_with("UploadPartCopy"))
            .count();
        assert_eq!(parts, 3);
        assert!(store.open_uploads().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_that_fails_is_tried_again_alone() {
        let (store, job) = store_with("big.bin", 11 * MIB as usize);
        store.fail(
            "UploadPartCopy",
            PART_ATTEMPTS as usize - 1,
            ErrorKind::Transient,
        );
        let copier = Copier::new(store, five_mib_parts(), 1);
        assert!(copier.copy(&job).await.is_ok());
        let store = copier.store();
        let parts: Vec<_> = store
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("UploadPartCopy"))
            .collect();
        // Part 1 three times (two failures), then parts 2 and 3 once each.
        assert_eq!(parts.len(), 3 + PART_ATTEMPTS as usize - 1, "{parts:?}");
        assert_eq!(
            store.object("dst", "backup/big.bin").unwrap().data,
            store.object("src", "big.bin").unwrap().data
        );
        assert!(store.open_uploads().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_that_keeps_failing_aborts_the_upload() {
        let (store, job) = store_with("big.bin", 11 * MIB as usize);
        store.fail(
            "UploadPartCopy",
            PART_ATTEMPTS as usize,
            ErrorKind::Transient,
        );
        let copier = Copier::new(store, five_mib_parts(), 1);
        let err = copier.copy(&job).await.unwrap_err();
        assert!(err.transient(), "{err}");
        assert!(
            copier.store().open_uploads().is_empty(),
            "no upload left open"
        );
        assert!(copier.store().object("dst", "backup/big.bin").is_none());
        assert!(copier
            .store()
            .calls()
            .contains(&"AbortMultipartUpload backup/big.bin".to_owned()));
    }

    #[tokio::test]
    async fn a_failed_abort_names_the_upload_left_behind() {
        let (store, job) = store_with("big.bin", 11 * MIB as usize);
        store.fail("CompleteMultipartUpload", 1, ErrorKind::Permanent);
        store.fail("AbortMultipartUpload", 1, ErrorKind::Transient);
        let copier = Copier::new(store, five_mib_parts(), 2);
        match copier.copy(&job).await {
            Err(CopyError::NotAborted { upload_id, .. }) => {
                assert_eq!(copier.store().open_uploads(), vec![upload_id]);
            }
            other => panic!("not a NotAborted: {other:?}"),
        }
    }

    /// Copies `job` in invocations that each have time for `parts` part copies; returns the
    /// number of invocations.
    async fn in_invocations(copier: &Copier<MemoryStore>, mut job: CopyJob, parts: usize) -> usize {
        for invocation in 1.. {
            let remaining = time_for(parts, Duration::from_secs(1));
            match copier.copy_within(&job, &remaining).await.unwrap() {
                Copied::Paused { continuation } => {
                    assert!(continuation.resume.is_some() && continuation.check_destination);
                    job = *continuation;
                }
                Copied::Copied { bytes, .. } => {
                    assert_eq!(bytes, job.source.size);
                    return invocation;
                }
                Copied::Skipped => panic!("nothing was copied yet"),
            }
        }
        unreachable!("the loop only ends by returning")
    }

    fn count(calls: &[String], operation: &str) -> usize {
        calls.iter().filter(|c| c.starts_with(operation)).count()
    }

    #[tokio::test]
    async fn a_copy_that_cannot_finish_in_time_pauses_and_its_continuations_finish_it() {
        let len = 40 * MIB as usize + 3;
        let (store, job) = store_with("huge.bin", len);
        let registry = Arc::new(MemoryUploads::new());
        let copier = Copier::new(store, five_mib_parts(), 2).with_registry(registry.clone());
        // Nine parts, time for three per invocation.
        assert_eq!(in_invocations(&copier, job, 3).await, 3);
        let store = copier.store();
        assert_eq!(
            store.object("dst", "backup/huge.bin").unwrap().data,
            store.object("src", "huge.bin").unwrap().data
        );
        let calls = store.calls();
        assert_eq!(count(&calls, "UploadPartCopy"), 9, "no part copied twice");
        assert_eq!(
            count(&calls, "CreateMultipartUpload"),
            1,
            "one upload, resumed"
        );
        assert_eq!(count(&calls, "ListParts"), 2);
        assert!(store.open_uploads().is_empty());
        assert!(registry.open().is_empty());
    }

    #[tokio::test]
    async fn a_continuation_whose_object_another_delivery_copied_aborts_its_upload() {
        let (store, job) = store_with("huge.bin", 40 * MIB as usize);
        // Without the registry, as when the two deliveries run at once: the second does not
        // take the first's upload over.
        let copier = Copier::new(store, five_mib_parts(), 2);
        let remaining = time_for(3, Duration::from_secs(1));
        let Copied::Paused { continuation } = copier.copy_within(&job, &remaining).await.unwrap()
        else {
            panic!("not paused");
        };
        // Another delivery of the original job, with time enough, copies the whole object.
        assert!(matches!(
            copier.copy(&job).await.unwrap(),
            Copied::Copied { .. }
        ));
        assert_eq!(copier.store().open_uploads().len(), 1, "the paused one");
        assert_eq!(copier.copy(&continuation).await.unwrap(), Copied::Skipped);
        assert!(copier.store().open_uploads().is_empty());
    }

    #[tokio::test]
    async fn a_redelivery_after_a_crash_resumes_the_upload_it_left() {
        let len = 22 * MIB as usize;
        let (store, job) = store_with("crash.bin", len);
        let registry = Arc::new(MemoryUploads::new());
        let copier = Copier::new(store, five_mib_parts(), 1).with_registry(registry.clone());
        // The first delivery copies two parts, then dies (its continuation is never sent).
        let two = time_for(1, Duration::ZERO);
        assert!(matches!(
            copier.copy_within(&job, &two).await,
            Ok(Copied::Paused { .. })
        ));
        // The same job, delivered again: the same upload, only the missing parts.
        assert_eq!(
            copier.copy(&job).await,
            Ok(Copied::Copied {
                bytes: len as u64,
                verified: true
            })
        );
        let calls = copier.store().calls();
        assert_eq!(count(&calls, "CreateMultipartUpload"), 1);
        assert_eq!(count(&calls, "UploadPartCopy"), 5, "two parts, then three");
        assert!(copier.store().open_uploads().is_empty());
        assert!(registry.open().is_empty());
    }

    #[tokio::test]
    async fn an_upload_left_for_older_content_is_aborted_not_resumed() {
        let (store, job) = store_with("changed.bin", 12 * MIB as usize);
        let registry = Arc::new(MemoryUploads::new());
        let copier = Copier::new(store, five_mib_parts(), 1).with_registry(registry.clone());
        let none = || Duration::ZERO;
        assert!(matches!(
            copier.copy_within(&job, &none).await,
            Ok(Copied::Paused { .. })
        ));
        // The source changes; the next night's job names the new content.
        let newer = Object::new(vec![9; 12 * MIB as usize]);
        let job = CopyJob {
            source: SourceObject {
                etag: newer.etag.clone(),
                ..job.source
            },
            ..job
        };
        copier.store().put("src", "changed.bin", newer);
        copier.copy(&job).await.unwrap();
        let calls = copier.store().calls();
        assert_eq!(count(&calls, "CreateMultipartUpload"), 2);
        assert_eq!(count(&calls, "AbortMultipartUpload"), 1);
        assert!(copier.store().open_uploads().is_empty());
        assert!(registry.open().is_empty());
        assert_eq!(
            copier
                .store()
                .object("dst", "backup/changed.bin")
                .unwrap()
                .data,
            vec![9; 12 * MIB as usize]
        );
    }

    #[tokio::test]
    async fn a_continuation_whose_upload_is_gone_starts_over() {
        let len = 12 * MIB as usize;
        let (store, job) = store_with("gone.bin", len);
        let copier = Copier::new(store, five_mib_parts(), 1);
        let once = time_for(1, Duration::ZERO);
        let Ok(Copied::Paused { continuation }) = copier.copy_within(&job, &once).await else {
            panic!("the copy should pause after one part");
        };
        // The sweep (or anyone) aborted the upload meanwhile.
        for id in copier.store().open_uploads() {
            use crate::uploads::UploadStore;
            copier
                .store()
                .abort_upload("dst", "backup/gone.bin", &id)
                .await
                .unwrap();
        }
        assert_eq!(
            copier.copy(&continuation).await,
            Ok(Copied::Copied {
                bytes: len as u64,
                verified: true
            })
        );
        assert_eq!(count(&copier.store().calls(), "CreateMultipartUpload"), 2);
        assert!(copier.store().open_uploads().is_empty());
    }

    #[tokio::test]
    async fn an_untagged_multipart_source_costs_no_tagging_request() {
        let (store, job) = store_with("big.bin", 11 * MIB as usize);
        let mut untagged = store.object("src", "big.bin").unwrap();
        untagged.tags.clear();
        store.put("src", "big.bin", untagged);
        let copier = Copier::new(store, five_mib_parts(), 4);
        copier.copy(&job).await.unwrap();
        let calls = copier.store().calls();
        assert!(
            !calls.iter().any(|c| c.starts_with("GetObjectTagging")),
            "{calls:?}"
        );
        assert!(copier
            .store()
            .object("dst", "backup/big.bin")
            .unwrap()
            .tags
            .is_empty());
    }

    #[tokio::test]
    async fn metadata_near_the_limit_is_copied_without_the_etag_record() {
        for len in [1000, 11 * MIB as usize] {
            let (store, job) = store_with("full.bin", len);
            let mut full = store.object("src", "full.bin").unwrap();
            // 2,040 bytes of the 2,048 S3 allows: no room left for the record.
            full.metadata
                .insert("notes".into(), "n".repeat(2040 - 8 - 5));
            store.put("src", "full.bin", full);
            let copier = Copier::new(store, five_mib_parts(), 4);
            assert_eq!(
                copier.copy(&job).await,
                Ok(Copied::Copied {
                    bytes: len as u64,
                    verified: true
                }),
                "{len} bytes"
            );
            let copy = copier.store().object("dst", "backup/full.bin").unwrap();
            assert_eq!(copy.metadata.get("notes").map(String::len), Some(2027));
            assert!(!copy.metadata.contains_key(SOURCE_ETAG_METADATA));
        }
    }

    #[tokio::test]
    async fn a_missing_or_changed_source_is_a_permanent_failure() {
        let (store, mut job) = store_with("a.jpg", 100);
        let copier = Copier::new(store, five_mib_parts(), 2);
        job.source.etag = "\"other\"".into();
        let changed = copier.copy(&job).await.unwrap_err();
        assert!(
            matches!(changed, CopyError::SourceChanged { .. }),
            "{changed}"
        );
        job.source.key = "gone.jpg".into();
        let missing = copier.copy(&job).await.unwrap_err();
        assert!(
            matches!(missing, CopyError::SourceMissing { .. }),
            "{missing}"
        );
        assert!(!changed.transient() && !missing.transient());
    }

    #[tokio::test]
    async fn an_unchanged_destination_is_skipped() {
        let (store, mut job) = store_with("a.jpg", 100);
        let copier = Copier::new(store, five_mib_parts(), 2);
        copier.copy(&job).await.unwrap();
        job.check_destination = true;
        assert_eq!(copier.copy(&job).await, Ok(Copied::Skipped));
    }

    /// A source uploaded in parts of these sizes, with tags and metadata, and its job.
    fn multipart_source(key: &str, sizes: &[u64]) -> (MemoryStore, CopyJob) {
        let (store, mut job) = store_with(key, sizes.iter().sum::<u64>() as usize);
        let plain = store.object("src", key).unwrap();
        let object = Object {
            metadata: plain.metadata,
            headers: plain.headers,
            tags: plain.tags,
            ..Object::multipart(plain.data, sizes)
        };
        job.source.etag = object.etag.clone();
        store.put("src", key, object);
        (store, job)
    }

    #[tokio::test]
    async fn a_source_in_parts_is_copied_part_for_part_and_keeps_its_etag() {
        // Below the multipart threshold, in parts unlike the copier's own: its parts still.
        for sizes in [vec![6 * MIB, 5 * MIB, 7 * MIB, 1000], vec![3 * MIB]] {
            let (store, job) = multipart_source("parts.bin", &sizes);
            let options = CopyOptions {
                thresholds: Thresholds::new(64 * MIB, PartSize::Fixed(8 * MIB)).unwrap(),
                ..CopyOptions::default()
            };
            let copier = Copier::new(store, options, 4);
            let total = sizes.iter().sum();
            assert_eq!(
                copier.copy(&job).await,
                Ok(Copied::Copied {
                    bytes: total,
                    verified: true
                })
            );
            let store = copier.store();
            let (copy, source) = (
                store.object("dst", "backup/parts.bin").unwrap(),
                store.object("src", "parts.bin").unwrap(),
            );
            assert_eq!(copy.data, source.data);
            assert_eq!(copy.etag, source.etag, "the same parts, so the same ETag");
            assert_eq!(copy.parts, sizes);
            assert_eq!(copy.tags, source.tags);
            assert_eq!(count(&store.calls(), "UploadPartCopy"), sizes.len());
        }
    }

    #[tokio::test]
    async fn under_sse_kms_a_source_in_parts_gets_parts_of_our_own() {
        let sizes = [6 * MIB, 6 * MIB];
        let (store, job) = multipart_source("kms.bin", &sizes);
        let options = CopyOptions {
            kms_key_id: Some("alias/backup".into()),
            ..five_mib_parts()
        };
        let copier = Copier::new(store, options, 4);
        copier.copy(&job).await.unwrap();
        let calls = copier.store().calls();
        assert_eq!(count(&calls, "HeadObjectPart"), 0, "{calls:?}");
        assert_eq!(count(&calls, "UploadPartCopy"), 3, "5, 5 and 2 MiB");
        // Its ETag says nothing of its source, its checksum does: unchanged.
        let check = CopyJob {
            check_destination: true,
            ..job
        };
        assert_eq!(copier.copy(&check).await, Ok(Copied::Skipped));
    }

    #[tokio::test]
    async fn a_continuation_of_a_copy_part_for_part_keeps_the_source_layout() {
        let sizes = [7 * MIB, 5 * MIB, 6 * MIB, 2 * MIB];
        let (store, job) = multipart_source("long.bin", &sizes);
        let registry = Arc::new(MemoryUploads::new());
        let copier = Copier::new(store, five_mib_parts(), 1).with_registry(registry.clone());
        let once = time_for(1, Duration::ZERO);
        let Ok(Copied::Paused { continuation }) = copier.copy_within(&job, &once).await else {
            panic!("the copy should pause after a part or two");
        };
        let resume = continuation.resume.clone().unwrap();
        assert!(resume.source_layout, "{resume:?}");
        assert_eq!(resume.part_size, 7 * MIB);
        let job_json = continuation.to_json();
        assert!(job_json.contains("\"source_layout\":true"), "{job_json}");
        // Two parts were copied before the pause; the continuation copies the other two.
        assert_eq!(in_invocations(&copier, *continuation, 1).await, 1);
        let store = copier.store();
        let (copy, source) = (
            store.object("dst", "backup/long.bin").unwrap(),
            store.object("src", "long.bin").unwrap(),
        );
        assert_eq!((copy.data, copy.etag), (source.data, source.etag));
        assert_eq!(count(&store.calls(), "UploadPartCopy"), 4, "no part twice");
        assert_eq!(count(&store.calls(), "CreateMultipartUpload"), 1);
        assert!(store.open_uploads().is_empty());
    }

    #[tokio::test]
    async fn an_upload_of_another_layout_is_not_resumed() {
        let sizes = [7 * MIB, 6 * MIB];
        let (store, job) = multipart_source("other.bin", &sizes);
        // A continuation of a copy in parts of our own (5 MiB), which this copier now makes
        // part for part: its parts are not the plan's.
        let own = Copier::new(store, five_mib_parts(), 1);
        let upload_id = own.store().start_upload("dst", "backup/other.bin");
        let request = own.request(
            &job,
            &own.store().head("src", "other.bin").await.unwrap().unwrap(),
        );
        let part = Part {
            number: 1,
            first: 0,
            last: 5 * MIB - 1,
        };
        own.store()
            .copy_part(&request, &upload_id, part)
            .await
            .unwrap();
        let continuation = CopyJob {
            resume: Some(Resume {
                upload_id: upload_id.clone(),
                part_size: 5 * MIB,
                source_layout: true,
            }),
            ..job
        };
        assert!(matches!(
            own.copy(&continuation).await,
            Ok(Copied::Copied { .. })
        ));
        let store = own.store();
        assert!(store
            .calls()
            .contains(&"AbortMultipartUpload backup/other.bin".to_owned()));
        let (copy, source) = (
            store.object("dst", "backup/other.bin").unwrap(),
            store.object("src", "other.bin").unwrap(),
        );
        assert_eq!((copy.data, copy.etag), (source.data, source.etag));
        assert!(store.open_uploads().is_empty());
    }

    #[tokio::test]
    async fn a_copy_whose_checksum_is_not_the_sources_is_a_failure() {
        for len in [1000, 11 * MIB as usize] {
            let (store, job) = store_with("bad.bin", len);
            store.miscompute_checksums(1);
            let copier = Copier::new(store, five_mib_parts(), 4);
            let err = copier.copy(&job).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    CopyError::ChecksumMismatch {
                        algorithm: "CRC64NVME",
                        ..
                    }
                ),
                "{len}: {err}"
            );
            assert!(err.transient());
            assert!(
                err.to_string().contains("does not match its source"),
                "{err}"
            );
            // It recorded its source, yet a look at it does not take it for the source…
            let check = CopyJob {
                check_destination: true,
                ..job.clone()
            };
            assert_eq!(
                copier.copy(&check).await,
                Ok(Copied::Copied {
                    bytes: len as u64,
                    verified: true
                }),
                "{len}: copied again"
            );
            // …and once copied right, it is.
            assert_eq!(copier.copy(&check).await, Ok(Copied::Skipped));
        }
    }

    #[tokio::test]
    async fn a_source_without_a_checksum_is_copied_unverified() {
        let (store, job) = store_with("old.bin", 1000);
        let mut old = store.object("src", "old.bin").unwrap();
        old.checksum = None;
        store.put("src", "old.bin", old);
        let copier = Copier::new(store, five_mib_parts(), 4);
        assert_eq!(
            copier.copy(&job).await,
            Ok(Copied::Copied {
                bytes: 1000,
                verified: false
            })
        );
    }
}
