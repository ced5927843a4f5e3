//! In-memory implementations of the copy traits, for tests of the protocols: an object store
//! (lister and copier, with multipart uploads) that can be told to fail calls, a run ledger, a
//! job sink and a continuation that keep what they are given.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use crate::completion::{CompletionEvent, ReportWriter, RunEvents};
use crate::decide::{Checksum, Listed, Observed};
use crate::fanout::now_rfc3339;
use crate::fanout::{Continuation, ContinueError, JobSink, Refused, RunRequest, SinkError};
use crate::job::CopyJob;
use crate::ledger::{
    LedgerError, Outcome, PageCounts, Position, Recorded, RunLedger, RunRecord, RunStart,
    ANNOUNCE_LEASE,
};
use crate::location::Location;
use crate::plan::Part;
use crate::store::{
    CompletedPart, ContentHeaders, CopyRequest, Created, ErrorKind, ObjectCopier, ObjectHead,
    ObjectLister, ObjectReader, Page, PartHead, StoreError,
};
use crate::summary::Failure;
use crate::uploads::BoxFuture;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An object held in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Object {
    pub data: Vec<u8>,
    pub etag: String,
    pub headers: ContentHeaders,
    pub metadata: HashMap<String, String>,
    pub tags: Vec<(String, String)>,
    pub last_modified: Option<i64>,
    /// In an archive storage class; `restored` once a restore has made it readable.
    pub archived: bool,
    pub restored: bool,
    /// The sizes of the parts it was uploaded in; empty for a single PUT.
    pub parts: Vec<u64>,
    /// Its full-object checksum.
    pub checksum: Option<Checksum>,
}

impl Object {
    /// An object with these bytes, a content ETag and a CRC64NVME checksum, as a single PUT
    /// makes it.
    pub fn new(data: Vec<u8>) -> Self {
        Object {
            etag: content_etag(&[&data], None),
            checksum: Some(full_checksum(DEFAULT_CHECKSUM, &data)),
            data,
            ..Object::default()
        }
    }

    /// An object uploaded in parts of these sizes (which must add up to the data's length):
    /// its ETag depends on the parts, as S3's does.
    pub fn multipart(data: Vec<u8>, sizes: &[u64]) -> Self {
        let mut chunks = Vec::new();
        let mut rest = data.as_slice();
        for &size in sizes {
            let (chunk, after) = rest.split_at(size as usize);
            chunks.push(chunk);
            rest = after;
        }
        assert!(rest.is_empty(), "the parts add up to the data");
        Object {
            etag: content_etag(&chunks, Some(chunks.len())),
            parts: sizes.to_vec(),
            ..Object::new(data)
        }
    }
}

/// The checksum S3 computes on new objects when asked for none.
const DEFAULT_CHECKSUM: &str = "CRC64NVME";

/// A stand-in for a full-object checksum of `algorithm`: a hash of the bytes alone, so that
/// it does not depend on the parts.
fn full_checksum(algorithm: &'static str, data: &[u8]) -> Checksum {
    let mut hasher = DefaultHasher::new();
    ("checksum", algorithm, data).hash(&mut hasher);
    Checksum {
        algorithm,
        value: format!("{:016x}", hasher.finish()),
    }
}

/// A quoted hash of the content, with `-N` for a multipart upload of N parts, as S3 shapes ETags.
fn content_etag(chunks: &[&[u8]], parts: Option<usize>) -> String {
    let mut hasher = DefaultHasher::new();
    chunks.hash(&mut hasher);
    match parts {
        Some(n) => format!("\"{:016x}-{n}\"", hasher.finish()),
        None => format!("\"{:016x}\"", hasher.finish()),
    }
}

#[derive(Debug)]
struct Upload {
    request: CopyRequest,
    parts: BTreeMap<i32, Vec<u8>>,
    initiated: i64,
}

impl State {
    /// The checksum a copy of `data` gets: of the algorithm asked for, else S3's default; a
    /// wrong one when told so.
    fn copy_checksum(&mut self, algorithm: Option<&'static str>, data: &[u8]) -> Checksum {
        let mut checksum = full_checksum(algorithm.unwrap_or(DEFAULT_CHECKSUM), data);
        if self.wrong_checksums > 0 {
            self.wrong_checksums -= 1;
            checksum.value = format!("{}-not", checksum.value);
        }
        checksum
    }
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, BTreeMap<String, Object>>,
    uploads: HashMap<String, Upload>,
    next_upload: u64,
    /// The store's clock, in seconds since the Unix epoch: when new uploads are initiated.
    clock: i64,
    /// Calls still to fail, by operation, with the kind of failure.
    failures: HashMap<&'static str, (usize, ErrorKind)>,
    /// Copies still to be given a checksum that is not their content's.
    wrong_checksums: usize,
    calls: Vec<String>,
}

/// Buckets of objects in memory, with multipart uploads.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn create_bucket(&self, bucket: &str) {
        lock(&self.state)
            .buckets
            .entry(bucket.to_owned())
            .or_default();
    }

    pub fn put(&self, bucket: &str, key: &str, object: Object) {
        lock(&self.state)
            .buckets
            .entry(bucket.to_owned())
            .or_default()
            .insert(key.to_owned(), object);
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<Object> {
        lock(&self.state).buckets.get(bucket)?.get(key).cloned()
    }

    /// Sets the time new uploads are initiated at (seconds since the Unix epoch).
    pub fn set_clock(&self, now: i64) {
        lock(&self.state).clock = now;
    }

    /// Starts an upload as someone other than a copier would; returns its id.
    pub fn start_upload(&self, bucket: &str, key: &str) -> String {
        let mut state = lock(&self.state);
        state.next_upload += 1;
        let id = format!("upload-{}", state.next_upload);
        let request = CopyRequest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            ..CopyRequest::default()
        };
        let initiated = state.clock;
        state.uploads.insert(
            id.clone(),
            Upload {
                request,
                parts: BTreeMap::new(),
                initiated,
            },
        );
        id
    }

    /// The ids of the multipart uploads not yet completed or aborted.
    pub fn open_uploads(&self) -> Vec<String> {
        lock(&self.state).uploads.keys().cloned().collect()
    }

    /// Makes the next `times` calls of `operation` (`ListObjectsV2`, `HeadObject`, `CopyObject`,
    /// `UploadPartCopy`, `CompleteMultipartUpload`…) fail with `kind`.
    pub fn fail(&self, operation: &'static str, times: usize, kind: ErrorKind) {
        lock(&self.state).failures.insert(operation, (times, kind));
    }

    /// Gives the next `copies` copies (CopyObject, CompleteMultipartUpload) a checksum that is
    /// not their content's, as a copy that went wrong would have.
    pub fn miscompute_checksums(&self, copies: usize) {
        lock(&self.state).wrong_checksums = copies;
    }

    /// Every call made, in order: the operation and its key (`UploadPartCopy a.bin#3`).
    pub fn calls(&self) -> Vec<String> {
        lock(&self.state).calls.clone()
    }

    /// Logs the call; fails it when told to, or when the bucket is missing.
    fn enter(
        &self,
        operation: &'static str,
        bucket: &str,
        key: &str,
    ) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut state = lock(&self.state);
        state.calls.push(format!("{operation} {key}"));
        let error = |kind, detail: &str| StoreError {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            kind,
            detail: detail.to_owned(),
        };
        if let Some((left, kind)) = state.failures.get_mut(operation) {
            if *left > 0 {
                *left -= 1;
                return Err(error(*kind, "failed on purpose"));
            }
        }
        if !state.buckets.contains_key(bucket) {
            return Err(error(ErrorKind::NoSuchBucket, "NoSuchBucket"));
        }
        Ok(state)
    }

    /// S3's refusal of user metadata over 2 KB (`MetadataTooLarge`).
    fn check_metadata(request: &CopyRequest, operation: &'static str) -> Result<(), StoreError> {
        let size: usize = (request.metadata.iter())
            .map(|(key, value)| key.len() + value.len())
            .sum();
        if size > crate::copier::USER_METADATA_LIMIT {
            return Err(request.error(
                operation,
                ErrorKind::Permanent,
                format!("MetadataTooLarge: {size} bytes of user metadata"),
            ));
        }
        Ok(())
    }

    /// The request's source object, as long as it still has the listed ETag.
    fn source(
        state: &State,
        request: &CopyRequest,
        operation: &'static str,
    ) -> Result<Object, StoreError> {
        let object = (state.buckets.get(&request.source_bucket))
            .and_then(|objects| objects.get(&request.source_key));
        match object {
            Some(object) if object.archived && !object.restored => {
                Err(request.error(operation, ErrorKind::Permanent, "InvalidObjectState".into()))
            }
            Some(object) if object.etag == request.source_etag => Ok(object.clone()),
            Some(_) => {
                Err(request.error(operation, ErrorKind::Permanent, "PreconditionFailed".into()))
            }
            None => Err(request.error(operation, ErrorKind::NotFound, "NoSuchKey".into())),
        }
    }
}

impl ObjectReader for MemoryStore {
    async fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let state = self.enter("GetObject", bucket, key)?;
        (state.buckets[bucket].get(key))
            .map(|object| object.data.clone())
            .ok_or_else(|| StoreError {
                operation: "GetObject",
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                kind: ErrorKind::NotFound,
                detail: "NoSuchKey".into(),
            })
    }
}

impl ObjectLister for MemoryStore {
    async fn list(
        &self,
        location: &Location,
        start_after: Option<&str>,
        token: Option<&str>,
        max_keys: Option<i32>,
    ) -> Result<Page, StoreError> {
        let state = self.enter("ListObjectsV2", &location.bucket, &location.prefix)?;
        let after = token.or(start_after).unwrap_or_default();
        let limit = max_keys.map_or(1000, |n| n.max(1) as usize);
        let mut matching = state.buckets[&location.bucket]
            .iter()
            .filter(|(key, _)| key.as_str() > after && location.contains(key));
        let objects: Vec<Listed> = matching
            .by_ref()
            .take(limit)
            .map(|(key, object)| Listed {
                key: key.clone(),
                size: object.data.len() as u64,
                etag: object.etag.clone(),
                last_modified: object.last_modified,
                archived: object.archived,
            })
            .collect();
        let next = (matching.next().is_some())
            .then(|| objects.last().map(|object| object.key.clone()))
            .flatten();
        Ok(Page { objects, next })
    }
}

impl ObjectCopier for MemoryStore {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        let state = self.enter("HeadObject", bucket, key)?;
        Ok(state.buckets[bucket].get(key).map(|object| {
            let mut metadata = object.metadata.clone();
            let recorded_source_etag = metadata.remove(crate::decide::SOURCE_ETAG_METADATA);
            ObjectHead {
                observed: Observed {
                    size: object.data.len() as u64,
                    etag: object.etag.clone(),
                    recorded_source_etag,
                    checksum: object.checksum.clone(),
                },
                headers: object.headers.clone(),
                metadata,
                tag_count: (!object.tags.is_empty()).then_some(object.tags.len() as i32),
                unrestored_archive: object.archived && !object.restored,
                version_id: None,
            }
        }))
    }

    async fn tags(&self, bucket: &str, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        let state = self.enter("GetObjectTagging", bucket, key)?;
        Ok(state.buckets[bucket]
            .get(key)
            .map(|o| o.tags.clone())
            .unwrap_or_default())
    }

    async fn head_part(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        number: i32,
    ) -> Result<PartHead, StoreError> {
        let state = self.enter("HeadObjectPart", bucket, key)?;
        let error = |kind, detail: &str| StoreError {
            operation: "HeadObject",
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            kind,
            detail: detail.to_owned(),
        };
        let object = (state.buckets[bucket].get(key))
            .ok_or_else(|| error(ErrorKind::NotFound, "NotFound"))?;
        if object.etag != etag {
            return Err(error(ErrorKind::Permanent, "PreconditionFailed"));
        }
        let part = usize::try_from(number).ok().and_then(|n| n.checked_sub(1));
        match (object.parts.is_empty(), part) {
            (true, Some(0)) => Ok(PartHead {
                size: object.data.len() as u64,
                parts_count: None,
            }),
            (false, Some(i)) if i < object.parts.len() => Ok(PartHead {
                size: object.parts[i],
                parts_count: Some(object.parts.len() as u32),
            }),
            _ => Err(error(ErrorKind::Permanent, "InvalidPartNumber")),
        }
    }

    async fn copy_object(&self, request: &CopyRequest) -> Result<Option<Checksum>, StoreError> {
        let mut state = self.enter("CopyObject", &request.bucket, &request.key)?;
        let source = Self::source(&state, request, "CopyObject")?;
        Self::check_metadata(request, "CopyObject")?;
        let checksum = state.copy_checksum(request.checksum_algorithm, &source.data);
        let copy = Object {
            etag: content_etag(&[&source.data], None),
            headers: request.headers.clone(),
            metadata: request.metadata.clone(),
            archived: false,
            restored: false,
            parts: Vec::new(),
            checksum: Some(checksum.clone()),
            ..source
        };
        let objects = state.buckets.get_mut(&request.bucket).expect("entered");
        objects.insert(request.key.clone(), copy);
        Ok(request.checksum_algorithm.map(|_| checksum))
    }

    async fn create_multipart(&self, request: &CopyRequest) -> Result<Created, StoreError> {
        let mut state = self.enter("CreateMultipartUpload", &request.bucket, &request.key)?;
        Self::check_metadata(request, "CreateMultipartUpload")?;
        state.next_upload += 1;
        let id = format!("upload-{}", state.next_upload);
        let upload = Upload {
            request: request.clone(),
            parts: BTreeMap::new(),
            initiated: state.clock,
        };
        state.uploads.insert(id.clone(), upload);
        Ok(Created {
            upload_id: id,
            maybe_lost: Vec::new(),
        })
    }

    async fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: Part,
    ) -> Result<CompletedPart, StoreError> {
        let key = format!("{}#{}", request.key, part.number);
        let mut state = self.enter("UploadPartCopy", &request.bucket, &key)?;
        let source = Self::source(&state, request, "UploadPartCopy")?;
        let range = (part.first as usize)..=(part.last as usize);
        let bytes = source.data.get(range).map(<[u8]>::to_vec).ok_or_else(|| {
            request.error(
                "UploadPartCopy",
                ErrorKind::Permanent,
                "InvalidRange".into(),
            )
        })?;
        let etag = content_etag(&[&bytes], None);
        let size = bytes.len() as u64;
        let upload = state.uploads.get_mut(upload_id).ok_or_else(|| {
            request.error(
                "UploadPartCopy",
                ErrorKind::Permanent,
                "NoSuchUpload".into(),
            )
        })?;
        let checksum = (upload.request.checksum_algorithm)
            .map(|algorithm| full_checksum(algorithm, &bytes).value);
        upload.parts.insert(part.number, bytes);
        Ok(CompletedPart {
            number: part.number,
            etag,
            size,
            checksum,
        })
    }

    async fn complete_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<Checksum>, StoreError> {
        let mut state = self.enter("CompleteMultipartUpload", &request.bucket, &request.key)?;
        let no_upload = || {
            request.error(
                "CompleteMultipartUpload",
                ErrorKind::Permanent,
                "NoSuchUpload".into(),
            )
        };
        let upload = state.uploads.get(upload_id).ok_or_else(no_upload)?;
        let mut numbers: Vec<i32> = parts.iter().map(|part| part.number).collect();
        numbers.sort_unstable();
        if numbers != upload.parts.keys().copied().collect::<Vec<_>>() {
            return Err(request.error(
                "CompleteMultipartUpload",
                ErrorKind::Permanent,
                "InvalidPart".into(),
            ));
        }
        let upload = state.uploads.remove(upload_id).ok_or_else(no_upload)?;
        let chunks: Vec<&[u8]> = upload.parts.values().map(Vec::as_slice).collect();
        let data = chunks.concat();
        let algorithm = upload.request.checksum_algorithm;
        let checksum = state.copy_checksum(algorithm, &data);
        let object = Object {
            etag: content_etag(&chunks, Some(chunks.len())),
            parts: chunks.iter().map(|chunk| chunk.len() as u64).collect(),
            data,
            headers: upload.request.headers.clone(),
            metadata: upload.request.metadata.clone(),
            tags: upload.request.tags.clone(),
            checksum: Some(checksum.clone()),
            ..Object::default()
        };
        let objects = state.buckets.get_mut(&request.bucket).expect("entered");
        objects.insert(request.key.clone(), object);
        Ok(algorithm.map(|_| checksum))
    }

    async fn abort_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        use crate::uploads::UploadStore;
        self.abort_upload(&request.bucket, &request.key, upload_id)
            .await
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let mut state = self.enter("DeleteObject", bucket, key)?;
        if let Some(objects) = state.buckets.get_mut(bucket) {
            objects.remove(key);
        }
        Ok(())
    }

    async fn uploaded_parts(
        &self,
        request: &CopyRequest,
        upload_id: &str,
    ) -> Result<Option<Vec<CompletedPart>>, StoreError> {
        let state = self.enter("ListParts", &request.bucket, &request.key)?;
        Ok(state.uploads.get(upload_id).map(|upload| {
            (upload.parts.iter())
                .map(|(number, bytes)| CompletedPart {
                    number: *number,
                    etag: content_etag(&[bytes], None),
                    size: bytes.len() as u64,
                    checksum: (upload.request.checksum_algorithm)
                        .map(|algorithm| full_checksum(algorithm, bytes).value),
                })
                .collect()
        }))
    }
}

/// Runs in memory, with the same rules as the DynamoDB ledger: counters only add, the cursor
/// only moves forward, an object's outcome is recorded once, and a run is complete once.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    runs: Mutex<HashMap<String, MemoryRun>>,
}

#[derive(Debug, Default)]
struct MemoryRun {
    record: RunRecord,
    outcomes: HashMap<String, &'static str>,
    failures: Vec<Failure>,
    /// The one listing's position, and each segment's, by segment.
    listing: Position,
    segments: HashMap<String, Position>,
    /// Until when the announcement is claimed.
    announcing_until: Option<std::time::Instant>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn update<T>(
        &self,
        run_id: &str,
        change: impl FnOnce(&mut MemoryRun) -> T,
    ) -> Result<T, LedgerError> {
        let mut runs = lock(&self.runs);
        let run = runs.entry(run_id.to_owned()).or_insert_with(|| MemoryRun {
            record: RunRecord {
                run_id: run_id.to_owned(),
                ..RunRecord::default()
            },
            ..MemoryRun::default()
        });
        Ok(change(run))
    }
}

impl RunLedger for MemoryLedger {
    async fn start(&self, start: &RunStart) -> Result<(), LedgerError> {
        self.update(&start.run_id, |run| {
            let run = &mut run.record;
            if run.source.is_empty() {
                run.source = start.source.clone();
                run.destination = start.destination.clone();
                run.dry_run = start.dry_run;
                run.started_at = start.started_at.clone();
                run.segments = start.segments;
            }
        })
    }

    async fn record_page(
        &self,
        run_id: &str,
        segment: Option<&str>,
        counts: &PageCounts,
        cursor: Option<&str>,
        complete: bool,
    ) -> Result<bool, LedgerError> {
        self.update(run_id, |memory| {
            let position = match segment {
                Some(segment) => memory.segments.entry(segment.to_owned()).or_default(),
                None => &mut memory.listing,
            };
            if let Some(cursor) = cursor {
                if position.cursor.as_deref() >= Some(cursor) {
                    return false;
                }
                position.cursor = Some(cursor.to_owned());
            }
            let run = &mut memory.record;
            run.cursor = memory.listing.cursor.clone();
            run.listed += counts.listed;
            run.enqueued += counts.enqueued;
            run.skipped += counts.skipped;
            run.archived += counts.archived;
            run.planned_bytes += counts.planned_bytes;
            run.jobs += counts.jobs.values().sum::<u64>();
            match segment {
                Some(_) => run.segments_done += u64::from(complete),
                None => run.listing_complete = complete,
            }
            true
        })
    }

    async fn publishing(
        &self,
        run_id: &str,
        segment: Option<&str>,
        last_key: &str,
    ) -> Result<(), LedgerError> {
        self.update(run_id, |run| {
            let position = match segment {
                Some(segment) => run.segments.entry(segment.to_owned()).or_default(),
                None => &mut run.listing,
            };
            position.publishing = Some(last_key.to_owned());
            run.record.publishing = run.listing.publishing.clone();
        })
    }

    async fn position(&self, run_id: &str, segment: Option<&str>) -> Result<Position, LedgerError> {
        Ok(lock(&self.runs)
            .get(run_id)
            .and_then(|run| match segment {
                Some(segment) => run.segments.get(segment).cloned(),
                None => Some(run.listing.clone()),
            })
            .unwrap_or_default())
    }

    async fn with_outcomes(
        &self,
        run_id: &str,
        keys: &[String],
    ) -> Result<Vec<String>, LedgerError> {
        Ok(lock(&self.runs).get(run_id).map_or_else(Vec::new, |run| {
            (keys.iter())
                .filter(|key| run.outcomes.contains_key(*key))
                .cloned()
                .collect()
        }))
    }

    async fn record_outcome(
        &self,
        run_id: &str,
        key: &str,
        outcome: &Outcome,
    ) -> Result<Recorded, LedgerError> {
        self.update(run_id, |run| {
            if run.outcomes.contains_key(key) {
                return Recorded::Before;
            }
            run.outcomes.insert(key.to_owned(), outcome.name());
            let record = &mut run.record;
            record.jobs_done += 1;
            match outcome {
                Outcome::Copied { bytes, verified } => {
                    record.copied += 1;
                    record.bytes_copied += bytes;
                    record.verified += u64::from(*verified);
                }
                Outcome::Skipped => record.skipped += 1,
                Outcome::Failed(failure) => {
                    record.failed += 1;
                    run.failures.push(failure.clone());
                }
            }
            Recorded::Now
        })
    }

    async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, LedgerError> {
        Ok(lock(&self.runs).get(run_id).map(|run| run.record.clone()))
    }

    async fn failures(&self, run_id: &str) -> Result<Vec<Failure>, LedgerError> {
        Ok(lock(&self.runs)
            .get(run_id)
            .map(|run| run.failures.clone())
            .unwrap_or_default())
    }

    async fn complete(
        &self,
        run_id: &str,
        _shard: Option<usize>,
    ) -> Result<Option<RunRecord>, LedgerError> {
        self.update(run_id, |run| {
            let now = std::time::Instant::now();
            let claimed = run.announcing_until.is_some_and(|until| until > now);
            if !run.record.is_over() || run.record.announced || claimed {
                return None;
            }
            run.announcing_until = Some(now + ANNOUNCE_LEASE);
            run.record.completed_at.get_or_insert_with(now_rfc3339);
            Some(run.record.clone())
        })
    }

    async fn release(&self, run_id: &str) -> Result<(), LedgerError> {
        self.update(run_id, |run| run.announcing_until = None)
    }

    async fn announced(&self, run_id: &str) -> Result<(), LedgerError> {
        self.update(run_id, |run| run.record.announced = true)
    }
}

/// Keeps the completion events published to it.
#[derive(Debug, Default)]
pub struct MemoryEvents {
    events: Mutex<Vec<CompletionEvent>>,
    failures: Mutex<usize>,
}

impl MemoryEvents {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn events(&self) -> Vec<CompletionEvent> {
        lock(&self.events).clone()
    }

    /// Fails the next `times` publishes.
    pub fn fail(&self, times: usize) {
        *lock(&self.failures) = times;
    }
}

impl RunEvents for MemoryEvents {
    fn publish<'a>(&'a self, event: &'a CompletionEvent) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut failures = lock(&self.failures);
            if *failures > 0 {
                *failures -= 1;
                return Err("the topic is unavailable".to_owned());
            }
            lock(&self.events).push(event.clone());
            Ok(())
        })
    }
}

impl ReportWriter for MemoryStore {
    fn write<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: String,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.put(bucket, key, Object::new(body.into_bytes()));
            Ok(())
        })
    }
}

/// Keeps the jobs handed to it; can be told to refuse the next calls, or some jobs for good.
#[derive(Debug, Default)]
pub struct MemorySink {
    jobs: Mutex<Vec<CopyJob>>,
    failures: Mutex<usize>,
    refused_keys: Mutex<Vec<String>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn jobs(&self) -> Vec<CopyJob> {
        lock(&self.jobs).clone()
    }

    pub fn fail(&self, times: usize) {
        *lock(&self.failures) = times;
    }

    /// Refuses the job of this source key for good, every time.
    pub fn refuse(&self, key: &str) {
        lock(&self.refused_keys).push(key.to_owned());
    }
}

impl JobSink for MemorySink {
    async fn publish(&self, jobs: &[CopyJob]) -> Result<Vec<Refused>, SinkError> {
        let mut failures = lock(&self.failures);
        if *failures > 0 {
            *failures -= 1;
            return Err(SinkError {
                operation: "publish",
                destination: "memory".into(),
                detail: "failed on purpose".into(),
            });
        }
        let refused_keys = lock(&self.refused_keys);
        let (refused, taken): (Vec<&CopyJob>, Vec<&CopyJob>) = jobs
            .iter()
            .partition(|job| refused_keys.contains(&job.source.key));
        lock(&self.jobs).extend(taken.into_iter().cloned());
        Ok(refused
            .into_iter()
            .map(|job| Refused {
                job: job.clone(),
                reason: "refused on purpose".into(),
            })
            .collect())
    }
}

/// Keeps the continuations handed to it, for the test to run them.
#[derive(Debug, Default)]
pub struct MemoryContinuation {
    continued: Mutex<Vec<RunRequest>>,
}

impl MemoryContinuation {
    pub fn new() -> Self {
        Self::default()
    }

    /// The continuations handed on since the last call.
    pub fn take(&self) -> Vec<RunRequest> {
        std::mem::take(&mut lock(&self.continued))
    }
}

impl Continuation for MemoryContinuation {
    async fn continue_with(&self, next: &RunRequest) -> Result<(), ContinueError> {
        lock(&self.continued).push(next.clone());
        Ok(())
    }
}

impl crate::uploads::UploadStore for MemoryStore {
    async fn open_uploads(
        &self,
        location: &Location,
    ) -> Result<Vec<crate::uploads::OpenUpload>, StoreError> {
        let state = self.enter("ListMultipartUploads", &location.bucket, &location.prefix)?;
        let mut open: Vec<_> = (state.uploads.iter())
            .filter(|(_, u)| {
                u.request.bucket == location.bucket && location.contains(&u.request.key)
            })
            .map(|(id, u)| crate::uploads::OpenUpload {
                key: u.request.key.clone(),
                upload_id: id.clone(),
                initiated: u.initiated,
            })
            .collect();
        open.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(open)
    }

    async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.enter("AbortMultipartUpload", bucket, key)?;
        state.uploads.remove(upload_id);
        Ok(())
    }
}

/// The uploads registered as fanout's, in memory.
#[derive(Debug, Default)]
pub struct MemoryUploads {
    open: Mutex<std::collections::BTreeSet<(String, String, String)>>,
    copying: Mutex<HashMap<(String, String), crate::uploads::Copying>>,
}

impl MemoryUploads {
    pub fn new() -> Self {
        Self::default()
    }

    /// The uploads registered and not ended: `(bucket, key, upload id)`.
    pub fn open(&self) -> Vec<(String, String, String)> {
        lock(&self.open).iter().cloned().collect()
    }
}

fn entry(bucket: &str, key: &str, upload_id: &str) -> (String, String, String) {
    (bucket.to_owned(), key.to_owned(), upload_id.to_owned())
}

impl crate::uploads::UploadRegistry for MemoryUploads {
    fn started<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> crate::uploads::BoxFuture<'a, Result<(), LedgerError>> {
        lock(&self.open).insert(entry(bucket, key, upload_id));
        Box::pin(async { Ok(()) })
    }

    fn ended<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> crate::uploads::BoxFuture<'a, Result<(), LedgerError>> {
        lock(&self.open).remove(&entry(bucket, key, upload_id));
        Box::pin(async { Ok(()) })
    }

    fn is_open<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload_id: &'a str,
    ) -> crate::uploads::BoxFuture<'a, Result<bool, LedgerError>> {
        let open = lock(&self.open).contains(&entry(bucket, key, upload_id));
        Box::pin(async move { Ok(open) })
    }

    fn copying<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        upload: &'a crate::uploads::Copying,
    ) -> crate::uploads::BoxFuture<'a, Result<(), LedgerError>> {
        lock(&self.copying).insert((bucket.to_owned(), key.to_owned()), upload.clone());
        Box::pin(async { Ok(()) })
    }

    fn current<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
    ) -> crate::uploads::BoxFuture<'a, Result<Option<crate::uploads::Copying>, LedgerError>> {
        let current = lock(&self.copying)
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned();
        Box::pin(async move { Ok(current) })
    }
}

/// The time left, as a test's invocation sees it: ten minutes for the first `asks` times it is
/// asked (as many parts start), then `after`, as if the deadline had come close.
pub fn time_for(
    asks: usize,
    after: std::time::Duration,
) -> impl Fn() -> std::time::Duration + Sync {
    let asked = std::sync::atomic::AtomicUsize::new(0);
    move || {
        if asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < asks {
            std::time::Duration::from_secs(600)
        } else {
            after
        }
    }
}
