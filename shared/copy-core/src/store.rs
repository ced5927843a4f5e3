//! The narrow interfaces the copy protocols need from an object store, with the types they
//! speak: a listing ([`ObjectLister`]) and the calls one server-side copy makes
//! ([`ObjectCopier`]). The S3 implementation lives in fanout-copy-s3; [`crate::memory`] has an
//! in-memory one, with failure injection, for tests.

use std::collections::HashMap;
use std::future::Future;

use crate::decide::{Checksum, Listed, Observed};
use crate::location::Location;
use crate::plan::Part;

/// What kind of failure a store call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bucket does not exist.
    NoSuchBucket,
    /// The object does not exist.
    NotFound,
    /// It may pass: throttling, a 5xx, a timeout, a dropped connection.
    Transient,
    /// It will not pass by trying again: access denied, a failed precondition, a bad request.
    Permanent,
}

/// A store call that failed after the adapter's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("S3 {operation} on s3://{bucket}/{key} failed: {detail}")]
pub struct StoreError {
    pub operation: &'static str,
    pub bucket: String,
    pub key: String,
    pub kind: ErrorKind,
    pub detail: String,
}

impl StoreError {
    /// Whether trying the same call again later may succeed.
    pub fn transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<Listed>,
    /// The token for the next page; `None` on the last.
    pub next: Option<String>,
}

/// The headers a copy carries over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// As the store sent it: carried as is, even when it is not a valid HTTP date.
    pub expires: Option<String>,
}

/// A multipart upload just started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub upload_id: String,
    /// Other uploads of the key that attempts whose answers were lost may have made: nobody
    /// learnt their ids. An upload among them that no delivery registered is to be aborted.
    pub maybe_lost: Vec<String>,
}

/// What a HEAD says about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHead {
    pub observed: Observed,
    pub headers: ContentHeaders,
    pub metadata: HashMap<String, String>,
    pub tag_count: Option<i32>,
    /// Archived (GLACIER, DEEP_ARCHIVE, an Intelligent-Tiering archive tier) and not restored,
    /// or its restore still in progress: S3 refuses to copy it (`InvalidObjectState`).
    pub unrestored_archive: bool,
    /// The current version's id, in a bucket that has versioning (`"null"` for an object
    /// written before it was enabled).
    pub version_id: Option<String>,
}

/// An S3 storage class, by its API name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageClass(String);

/// The storage classes S3 knows.
pub const STORAGE_CLASSES: &[&str] = &[
    "AWS_BACKUP_LOW_COST_WARM",
    "AWS_BACKUP_WARM",
    "DEEP_ARCHIVE",
    "EXPRESS_ONEZONE",
    "FSX_ONTAP",
    "FSX_OPENZFS",
    "GLACIER",
    "GLACIER_IR",
    "INTELLIGENT_TIERING",
    "ONEZONE_IA",
    "OUTPOSTS",
    "REDUCED_REDUNDANCY",
    "SNOW",
    "STANDARD",
    "STANDARD_IA",
];

/// A storage class S3 does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an S3 storage class: use one of {classes}", classes = STORAGE_CLASSES.join(", "))]
pub struct UnknownStorageClass(pub String);

impl StorageClass {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for StorageClass {
    type Err = UnknownStorageClass;

    /// Reads a storage class name (`STANDARD_IA`, `GLACIER_IR`…).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let name = name.trim();
        if STORAGE_CLASSES.contains(&name) {
            Ok(StorageClass(name.to_owned()))
        } else {
            Err(UnknownStorageClass(name.to_owned()))
        }
    }
}

/// Where a copy goes and what it carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyRequest {
    pub source_bucket: String,
    pub source_key: String,
    /// The copy succeeds only while the source has this ETag.
    pub source_etag: String,
    pub bucket: String,
    pub key: String,
    pub headers: ContentHeaders,
    /// User metadata, with the source ETag recorded.
    pub metadata: HashMap<String, String>,
    /// Tags (only a multipart upload needs them given; CopyObject copies them).
    pub tags: Vec<(String, String)>,
    pub storage_class: Option<StorageClass>,
    /// Encrypt the copy with this KMS key (SSE-KMS).
    pub kms_key_id: Option<String>,
    /// Ask the store to compute this full-object checksum (the source's algorithm) on the copy,
    /// to compare with the source's.
    pub checksum_algorithm: Option<&'static str>,
}

impl CopyRequest {
    /// An error of this request's destination object.
    pub fn error(&self, operation: &'static str, kind: ErrorKind, detail: String) -> StoreError {
        StoreError {
            operation,
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            kind,
            detail,
        }
    }
}

/// A part copied into a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub number: i32,
    pub etag: String,
    /// Its size in bytes: a resumed copy checks that the parts already there are the ones it
    /// plans.
    pub size: u64,
    /// The part's checksum, of the upload's checksum algorithm, when it has one.
    pub checksum: Option<String>,
}

/// What a HEAD of one part of an object (`partNumber`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartHead {
    /// The part's size in bytes (the whole object's for an object not uploaded in parts).
    pub size: u64,
    /// How many parts the object was uploaded in; `None` for an object not uploaded in parts.
    pub parts_count: Option<u32>,
}

/// Lists objects, in key order.
pub trait ObjectLister: Send + Sync {
    /// One page of the objects under `location`, after `start_after` or from `token`, at most
    /// `max_keys` (the store's own maximum when `None`).
    fn list(
        &self,
        location: &Location,
        start_after: Option<&str>,
        token: Option<&str>,
        max_keys: Option<i32>,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
}

/// Reads whole objects: an S3 Inventory report's manifest and data files.
pub trait ObjectReader: Send + Sync {
    /// The object's bytes; an error of kind [`ErrorKind::NotFound`] when there is none.
    fn read(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
}

/// The calls a server-side copy makes.
pub trait ObjectCopier: Send + Sync {
    /// The object's size, ETag, headers, metadata and checksum; `None` when there is no object.
    fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectHead>, StoreError>> + Send;

    /// The object's tags, in order.
    fn tags(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// One part of an object uploaded in parts: its size and the number of parts, as long as
    /// the object still has the ETag `etag`.
    fn head_part(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        number: i32,
    ) -> impl Future<Output = Result<PartHead, StoreError>> + Send;

    /// One whole-object copy: metadata and headers replaced by the request's, tags copied.
    /// Answers the copy's full-object checksum when the request asked for one and the store
    /// said it.
    fn copy_object(
        &self,
        request: &CopyRequest,
    ) -> impl Future<Output = Result<Option<Checksum>, StoreError>> + Send;

    /// Starts a multipart upload carrying the request's headers, metadata and tags.
    fn create_multipart(
        &self,
        request: &CopyRequest,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Copies one part's byte range of the source.
    fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: Part,
    ) -> impl Future<Output = Result<CompletedPart, StoreError>> + Send;

    /// Completes the upload from its parts, in any order. Answers the object's full-object
    /// checksum when the request asked for one and the store said it.
    fn complete_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> impl Future<Output = Result<Option<Checksum>, StoreError>> + Send;

    fn abort_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes an object (its current version, in a bucket with versioning); deleting one
    /// that is not there succeeds.
    fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The parts already in an upload; `None` when the upload no longer exists (completed,
    /// aborted, or swept).
    fn uploaded_parts(
        &self,
        request: &CopyRequest,
        upload_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<CompletedPart>>, StoreError>> + Send;
}

impl<T: ObjectLister + ?Sized> ObjectLister for &T {
    fn list(
        &self,
        location: &Location,
        start_after: Option<&str>,
        token: Option<&str>,
        max_keys: Option<i32>,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send {
        (**self).list(location, start_after, token, max_keys)
    }
}
