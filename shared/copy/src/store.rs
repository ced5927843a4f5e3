//! The object store: the few S3 calls a copy needs, over `aws_sdk_s3::Client`, with errors that
//! say which call on which object failed and whether trying again could help.

use std::collections::HashMap;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, MetadataDirective,
    ServerSideEncryption, StorageClass, TaggingDirective,
};
use aws_sdk_s3::Client;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::decide::{Checksum, Listed, Observed, SOURCE_ETAG_METADATA};
use crate::location::Location;
use crate::plan::Part;

/// Characters kept as they are in a copy source: RFC 3986's unreserved ones and `/`.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// Characters kept as they are in a tagging header (a URL query string).
const TAG: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Attempts per S3 call, the first included: copies meet SlowDown under load.
pub const MAX_ATTEMPTS: u32 = 6;

/// Error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
];

/// An S3 call that failed after the SDK's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("S3 {operation} on s3://{bucket}/{key} failed: {detail}")]
pub struct StoreError {
    pub operation: &'static str,
    pub bucket: String,
    pub key: String,
    /// S3's error code (`NoSuchKey`, `NoSuchBucket`, `PreconditionFailed`…), if it sent one.
    pub code: Option<String>,
    /// Whether the failure may pass (throttling, 5xx, timeouts, connection errors).
    pub transient: bool,
    pub detail: String,
}

impl StoreError {
    fn from_sdk<E>(
        operation: &'static str,
        bucket: &str,
        key: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err
            .code()
            .map(str::to_owned)
            .or_else(|| (status == Some(404)).then(|| "NotFound".to_owned()));
        let transient = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => {
                status.is_some_and(|s| s >= 500)
                    || code
                        .as_deref()
                        .is_some_and(|c| TRANSIENT_CODES.contains(&c))
            }
            _ => false,
        };
        let detail = match (&code, err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => format!("{code} (HTTP {})", status.unwrap_or_default()),
            _ => DisplayErrorContext(&err).to_string(),
        };
        StoreError {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code,
            transient,
            detail,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
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
    /// As S3 sent it: carried as is, even when it is not a valid HTTP date.
    pub expires: Option<String>,
}

/// What a HEAD says about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectHead {
    pub observed: Observed,
    pub headers: ContentHeaders,
    pub metadata: HashMap<String, String>,
    pub tag_count: Option<i32>,
}

/// Where a copy goes and what it carries.
#[derive(Debug, Clone, Default)]
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
    pub kms_key_id: Option<String>,
}

impl CopyRequest {
    fn copy_source(&self) -> String {
        format!(
            "{}/{}",
            self.source_bucket,
            utf8_percent_encode(&self.source_key, COPY_SOURCE)
        )
    }

    fn tagging(&self) -> Option<String> {
        (!self.tags.is_empty()).then(|| {
            self.tags
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, TAG),
                        utf8_percent_encode(v, TAG)
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    fn sse(&self) -> Option<ServerSideEncryption> {
        self.kms_key_id
            .as_ref()
            .map(|_| ServerSideEncryption::AwsKms)
    }

    fn error<E>(&self, operation: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        StoreError::from_sdk(operation, &self.bucket, &self.key, err)
    }
}

/// Sets what a copy carries on a CopyObject or CreateMultipartUpload builder (the SDK gives the
/// two no common trait).
macro_rules! carry {
    ($builder:expr, $request:expr) => {{
        let request: &CopyRequest = $request;
        let headers = &request.headers;
        $builder
            .set_metadata(Some(request.metadata.clone()))
            .set_content_type(headers.content_type.clone())
            .set_content_encoding(headers.content_encoding.clone())
            .set_content_disposition(headers.content_disposition.clone())
            .set_content_language(headers.content_language.clone())
            .set_cache_control(headers.cache_control.clone())
            .set_storage_class(request.storage_class.clone())
            .set_server_side_encryption(request.sse())
            .set_ssekms_key_id(request.kms_key_id.clone())
            .customize()
            .mutate_request(with_raw_header("expires", headers.expires.clone()))
    }};
}

/// Sets a raw header on a request: for `Expires`, whose value is carried as S3 sent it.
fn with_raw_header(
    name: &'static str,
    value: Option<String>,
) -> impl Fn(&mut aws_sdk_s3::config::http::HttpRequest) + Send + Sync + 'static {
    move |request| {
        if let Some(value) = &value {
            // A value that came in a response header is a valid header value.
            let _ = request.headers_mut().try_insert(name, value.clone());
        }
    }
}

/// S3, seen through the calls a copy makes.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    client: Client,
}

impl ObjectStore {
    pub fn new(client: Client) -> Self {
        ObjectStore { client }
    }

    /// A client for this SDK configuration, retrying in standard mode (exponential backoff with
    /// jitter) up to [`MAX_ATTEMPTS`] times; path-style addressing when an endpoint is set (an
    /// emulator rarely serves virtual hosts).
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .build();
        ObjectStore::new(Client::from_conf(config))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One page of the objects under `location`, in key order, after `start_after` or from
    /// `token`.
    pub async fn list(
        &self,
        location: &Location,
        start_after: Option<&str>,
        token: Option<&str>,
        max_keys: Option<i32>,
    ) -> Result<Page, StoreError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&location.bucket)
            .prefix(&location.prefix)
            .set_start_after(start_after.map(str::to_owned))
            .set_continuation_token(token.map(str::to_owned))
            .set_max_keys(max_keys)
            .send()
            .await
            .map_err(|e| {
                StoreError::from_sdk("ListObjectsV2", &location.bucket, &location.prefix, e)
            })?;
        let objects = output
            .contents()
            .iter()
            .filter_map(|object| {
                Some(Listed {
                    key: object.key()?.to_owned(),
                    size: object.size().unwrap_or_default().max(0) as u64,
                    etag: object.e_tag().unwrap_or_default().to_owned(),
                    last_modified: object.last_modified().map(|t| t.secs()),
                })
            })
            .collect();
        let next = output
            .is_truncated()
            .unwrap_or(false)
            .then(|| output.next_continuation_token().map(str::to_owned))
            .flatten();
        Ok(Page { objects, next })
    }

    /// The object's size, ETag, headers, metadata and checksum; `None` when there is no object.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        let output = match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => {
                let err = StoreError::from_sdk("HeadObject", bucket, key, err);
                return if err.is("NotFound") || err.is("NoSuchKey") {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let mut metadata = output.metadata().cloned().unwrap_or_default();
        let recorded_source_etag = metadata.remove(SOURCE_ETAG_METADATA);
        let full_object = output.checksum_type() == Some(&ChecksumType::FullObject);
        let checksum = [
            ("CRC64NVME", output.checksum_crc64_nvme()),
            ("CRC32", output.checksum_crc32()),
            ("CRC32C", output.checksum_crc32_c()),
            ("SHA1", output.checksum_sha1()),
            ("SHA256", output.checksum_sha256()),
        ]
        .into_iter()
        .find_map(|(algorithm, value)| {
            value.filter(|_| full_object).map(|value| Checksum {
                algorithm,
                value: value.to_owned(),
            })
        });
        Ok(Some(ObjectHead {
            observed: Observed {
                size: output.content_length().unwrap_or_default().max(0) as u64,
                etag: output.e_tag().unwrap_or_default().to_owned(),
                recorded_source_etag,
                checksum,
            },
            headers: ContentHeaders {
                content_type: output.content_type().map(str::to_owned),
                content_encoding: output.content_encoding().map(str::to_owned),
                content_disposition: output.content_disposition().map(str::to_owned),
                content_language: output.content_language().map(str::to_owned),
                cache_control: output.cache_control().map(str::to_owned),
                expires: output.expires_string().map(str::to_owned),
            },
            metadata,
            tag_count: output.tag_count(),
        }))
    }

    /// The object's tags, in order.
    pub async fn tags(&self, bucket: &str, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        let output = self
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("GetObjectTagging", bucket, key, e))?;
        Ok(output
            .tag_set()
            .iter()
            .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
            .collect())
    }

    /// One CopyObject: metadata and headers replaced by the request's, tags copied.
    pub async fn copy_object(&self, request: &CopyRequest) -> Result<(), StoreError> {
        let builder = self
            .client
            .copy_object()
            .bucket(&request.bucket)
            .key(&request.key)
            .copy_source(request.copy_source())
            .copy_source_if_match(&request.source_etag)
            .metadata_directive(MetadataDirective::Replace)
            .tagging_directive(TaggingDirective::Copy);
        carry!(builder, request)
            .send()
            .await
            .map_err(|e| request.error("CopyObject", e))?;
        Ok(())
    }

    /// Starts a multipart upload carrying the request's headers, metadata and tags.
    pub async fn create_multipart(&self, request: &CopyRequest) -> Result<String, StoreError> {
        let builder = self
            .client
            .create_multipart_upload()
            .bucket(&request.bucket)
            .key(&request.key)
            .set_tagging(request.tagging());
        let output = carry!(builder, request)
            .send()
            .await
            .map_err(|e| request.error("CreateMultipartUpload", e))?;
        output
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError {
                operation: "CreateMultipartUpload",
                bucket: request.bucket.clone(),
                key: request.key.clone(),
                code: None,
                transient: false,
                detail: "S3 returned no upload id".into(),
            })
    }

    /// Copies one part's byte range of the source.
    pub async fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: Part,
    ) -> Result<CompletedPart, StoreError> {
        let output = self
            .client
            .upload_part_copy()
            .bucket(&request.bucket)
            .key(&request.key)
            .upload_id(upload_id)
            .part_number(part.number)
            .copy_source(request.copy_source())
            .copy_source_range(part.range())
            .copy_source_if_match(&request.source_etag)
            .send()
            .await
            .map_err(|e| request.error("UploadPartCopy", e))?;
        let etag = output
            .copy_part_result()
            .and_then(|result| result.e_tag())
            .unwrap_or_default();
        Ok(CompletedPart::builder()
            .part_number(part.number)
            .e_tag(etag)
            .build())
    }

    pub async fn complete_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        mut parts: Vec<CompletedPart>,
    ) -> Result<(), StoreError> {
        parts.sort_by_key(|part| part.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&request.bucket)
            .key(&request.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| request.error("CompleteMultipartUpload", e))?;
        Ok(())
    }

    pub async fn abort_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(&request.bucket)
            .key(&request.key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| request.error("AbortMultipartUpload", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_and_tags_are_url_encoded() {
        let request = CopyRequest {
            source_bucket: "src".into(),
            source_key: "a dir/ü+x?.txt".into(),
            tags: vec![
                ("team".into(), "data eng".into()),
                ("a&b".into(), "=".into()),
            ],
            ..CopyRequest::default()
        };
        assert_eq!(request.copy_source(), "src/a%20dir/%C3%BC%2Bx%3F.txt");
        assert_eq!(
            request.tagging().as_deref(),
            Some("team=data%20eng&a%26b=%3D")
        );
        assert_eq!(CopyRequest::default().tagging(), None);
    }
}
