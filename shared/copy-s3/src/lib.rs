//! The object store over S3: fanout-copy-core's [`ObjectLister`] and [`ObjectCopier`] over
//! `aws_sdk_s3::Client`, with errors that say which call on which object failed and whether
//! trying again could help (from the SDK's typed errors and its own classification).

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;
use aws_sdk_s3::types::{
    ArchiveStatus, ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload,
    MetadataDirective, ObjectStorageClass, ServerSideEncryption, StorageClass, TaggingDirective,
};
use aws_sdk_s3::Client;
use fanout_aws::DisplayErrorContext;
use fanout_copy_core::decide::{Checksum, Listed, Observed, SOURCE_ETAG_METADATA};
use fanout_copy_core::pace::Pace;
use fanout_copy_core::plan::Part;
use fanout_copy_core::store::{
    CompletedPart, ContentHeaders, CopyRequest, Created, ErrorKind, ObjectCopier, ObjectHead,
    ObjectLister, ObjectReader, Page, PartHead, StoreError,
};
use fanout_copy_core::uploads::{OpenUpload, UploadStore};
use fanout_copy_core::Location;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// A store error from a failed SDK call: `kind` when the SDK's typed error already says
/// what it is, else transient or permanent as the SDK classes it.
fn store_error<E>(
    operation: &'static str,
    bucket: &str,
    key: &str,
    kind: Option<ErrorKind>,
    err: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = kind.unwrap_or(if fanout_aws::is_transient(&err) {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    });
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => format!(
            "{code} (HTTP {})",
            fanout_aws::status(&err).unwrap_or_default()
        ),
        _ => DisplayErrorContext(&err).to_string(),
    };
    StoreError {
        operation,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        kind,
        detail,
    }
}

/// The `x-amz-copy-source` value: the source bucket and its URL-encoded key.
fn copy_source(request: &CopyRequest) -> String {
    format!(
        "{}/{}",
        request.source_bucket,
        utf8_percent_encode(&request.source_key, COPY_SOURCE)
    )
}

/// The `x-amz-tagging` value: the tags as a URL query string.
fn tagging(request: &CopyRequest) -> Option<String> {
    (!request.tags.is_empty()).then(|| {
        request
            .tags
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

fn sse(request: &CopyRequest) -> Option<ServerSideEncryption> {
    request
        .kms_key_id
        .as_ref()
        .map(|_| ServerSideEncryption::AwsKms)
}

/// How long a copy request (CopyObject, UploadPartCopy, CompleteMultipartUpload) may wait for
/// its answer's first byte: S3 may hold it until a copy of up to 5 GiB is done, so the
/// functions' shorter `fanout_aws::READ_TIMEOUT` is lifted to Lambda's longest run.
const COPY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The configuration a copy request is sent with: [`COPY_READ_TIMEOUT`].
fn copying() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::new().timeout_config(
        aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(fanout_aws::CONNECT_TIMEOUT)
            .read_timeout(COPY_READ_TIMEOUT)
            .build(),
    )
}

/// How far S3's clock may be from this machine's, when telling which uploads a lost
/// answer may have created.
const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a failed request may still have been carried out: its answer was lost or cut (a
/// timeout, a broken connection, a body that did not parse) or it failed inside S3 or a
/// gateway (5xx). A throttled request (503 `SlowDown`) and a refused one were not.
fn may_have_been_applied<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) | SdkError::DispatchFailure(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error() && service.err().code() != Some("SlowDown")
        }
        _ => false,
    }
}

/// A failed call about the request's destination object.
fn request_error<E>(
    request: &CopyRequest,
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    store_error(operation, &request.bucket, &request.key, None, err)
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
            .set_storage_class(
                request
                    .storage_class
                    .as_ref()
                    .map(|c| StorageClass::from(c.as_str())),
            )
            .set_server_side_encryption(sse(request))
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

/// The checksums S3 knows, by their API names, strongest first.
const CHECKSUM_ALGORITHMS: [&str; 5] = ["CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256"];

/// The checksum value of `algorithm` that an SDK output (any type with the `checksum_*`
/// getters) carries.
macro_rules! checksum_value {
    ($output:expr, $algorithm:expr) => {{
        let output = &$output;
        match $algorithm {
            "CRC64NVME" => output.checksum_crc64_nvme(),
            "CRC32" => output.checksum_crc32(),
            "CRC32C" => output.checksum_crc32_c(),
            "SHA1" => output.checksum_sha1(),
            "SHA256" => output.checksum_sha256(),
            _ => None,
        }
    }};
}

/// A checksum as S3 answers it is of the whole object when S3 says so, or, from before S3 said
/// the type, when it is not a checksum of part checksums (those end in `-N`).
fn full_object(kind: Option<&ChecksumType>, value: &str) -> bool {
    match kind {
        Some(kind) => *kind == ChecksumType::FullObject,
        None => !value.contains('-'),
    }
}

/// The algorithm a request asks S3 to compute on the copy.
fn algorithm(request: &CopyRequest) -> Option<ChecksumAlgorithm> {
    request.checksum_algorithm.map(ChecksumAlgorithm::from)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// S3, seen through the calls a copy makes. Each bucket is used through a client of its own
/// region, learned once per bucket from HeadBucket (S3 answers a request signed for another
/// region with a redirect, which the SDK does not follow).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    regional: Arc<Mutex<HashMap<String, Client>>>,
    /// Told of every answer to a copy request, attempt by attempt: slowed down or not.
    pace: Option<Arc<dyn Pace>>,
}

/// Tells a [`Pace`] how S3 answered each attempt of one copy request to `bucket`.
#[derive(Debug)]
struct PaceSignal {
    pace: Arc<dyn Pace>,
    bucket: String,
}

impl Intercept for PaceSignal {
    fn name(&self) -> &'static str {
        "PaceSignal"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // S3 may put an error in a 200 answer to a copy: not a success either.
        let failed = context
            .output_or_error()
            .is_some_and(|outcome| outcome.is_err());
        match context
            .response()
            .map(|response| response.status().as_u16())
        {
            Some(503) => self.pace.slowed(&self.bucket),
            Some(status) if status < 500 && !failed => self.pace.answered(&self.bucket),
            _ => {}
        }
        Ok(())
    }
}

impl S3Store {
    pub fn new(client: Client) -> Self {
        S3Store {
            client,
            regional: Arc::default(),
            pace: None,
        }
    }

    /// Tells `pace` how S3 answers every attempt of a copy request (CopyObject,
    /// UploadPartCopy), so that the copier can slow down when S3 asks.
    pub fn with_pace(mut self, pace: Arc<dyn Pace>) -> Self {
        self.pace = Some(pace);
        self
    }

    /// A copier over this store that keeps its copy requests to each bucket within what S3
    /// allows: up to `concurrency` in flight, fewer while S3 answers SlowDown (AIMD).
    pub fn paced_copier(
        self,
        options: fanout_copy_core::CopyOptions,
        concurrency: usize,
    ) -> fanout_copy_core::Copier<S3Store> {
        let pace = Arc::new(fanout_copy_core::pace::Aimd::new(concurrency));
        fanout_copy_core::Copier::new(self.with_pace(pace.clone()), options, concurrency)
            .with_pace(pace)
    }

    /// The configuration of a copy request to `bucket`: its timeouts, and its answers told to
    /// the pace.
    fn copy_request(&self, bucket: &str) -> aws_sdk_s3::config::Builder {
        match &self.pace {
            Some(pace) => copying().interceptor(PaceSignal {
                pace: pace.clone(),
                bucket: bucket.to_owned(),
            }),
            None => copying(),
        }
    }

    /// The client for `bucket`'s region (the configured one when it is the same, or when the
    /// region cannot be learned: the call itself then says what is wrong).
    async fn client_for(&self, bucket: &str) -> Client {
        if let Some(client) = lock(&self.regional).get(bucket) {
            return client.clone();
        }
        let region = match self.client.head_bucket().bucket(bucket).send().await {
            Ok(output) => output.bucket_region().map(str::to_owned),
            // A redirect or a refusal still names the bucket's region.
            Err(err) => err
                .raw_response()
                .and_then(|response| response.headers().get("x-amz-bucket-region"))
                .map(str::to_owned),
        };
        let configured = self.client.config().region().map(|r| r.as_ref().to_owned());
        let client = match region {
            Some(region) if Some(&region) != configured.as_ref() => {
                tracing::info!(%bucket, %region, "the bucket is in another region");
                let config = self
                    .client
                    .config()
                    .to_builder()
                    .region(Region::new(region));
                Client::from_conf(config.build())
            }
            _ => self.client.clone(),
        };
        lock(&self.regional).insert(bucket.to_owned(), client.clone());
        client
    }

    /// The uploads of the request's key that started while an attempt whose answer was lost
    /// was under way (`lost`: when each was sent and ended, widened by a few seconds for the
    /// clocks): the ones those attempts may have made. None when they cannot be listed (then
    /// the lifecycle rule is the net).
    async fn lost_uploads(
        &self,
        request: &CopyRequest,
        lost: &[(SystemTime, SystemTime)],
    ) -> Vec<String> {
        if lost.is_empty() {
            return Vec::new();
        }
        let seconds = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        };
        let windows: Vec<(i64, i64)> = lost
            .iter()
            .map(|&(sent, ended)| {
                (
                    seconds(sent.checked_sub(CLOCK_SLACK).unwrap_or(UNIX_EPOCH)),
                    seconds(ended + CLOCK_SLACK),
                )
            })
            .collect();
        let location = Location {
            bucket: request.bucket.clone(),
            prefix: request.key.clone(),
        };
        match self.open_uploads(&location).await {
            Ok(open) => open
                .into_iter()
                .filter(|u| {
                    u.key == request.key
                        && windows
                            .iter()
                            .any(|&(from, to)| (from..=to).contains(&u.initiated))
                })
                .map(|u| u.upload_id)
                .collect(),
            Err(error) => {
                tracing::warn!(key = %request.key, %error, "could not look for uploads whose creation answer was lost");
                Vec::new()
            }
        }
    }

    /// A client for this SDK configuration, retrying in standard mode (exponential backoff with
    /// jitter) up to [`MAX_ATTEMPTS`] times; path-style addressing when an endpoint is set (an
    /// emulator rarely serves virtual hosts).
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .build();
        S3Store::new(Client::from_conf(config))
    }
}

impl ObjectReader for S3Store {
    async fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let output = self
            .client_for(bucket)
            .await
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                let kind = e
                    .as_service_error()
                    .is_some_and(GetObjectError::is_no_such_key)
                    .then_some(ErrorKind::NotFound);
                store_error("GetObject", bucket, key, kind, e)
            })?;
        let body = output.body.collect().await.map_err(|e| StoreError {
            operation: "GetObject",
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            kind: ErrorKind::Transient,
            detail: format!("the body was cut off: {}", DisplayErrorContext(e)),
        })?;
        Ok(body.into_bytes().to_vec())
    }
}

impl ObjectLister for S3Store {
    async fn list(
        &self,
        location: &Location,
        start_after: Option<&str>,
        token: Option<&str>,
        max_keys: Option<i32>,
    ) -> Result<Page, StoreError> {
        let output = self
            .client_for(&location.bucket)
            .await
            .list_objects_v2()
            .bucket(&location.bucket)
            .prefix(&location.prefix)
            .set_start_after(start_after.map(str::to_owned))
            .set_continuation_token(token.map(str::to_owned))
            .set_max_keys(max_keys)
            .send()
            .await
            .map_err(|e| {
                let kind = e
                    .as_service_error()
                    .is_some_and(ListObjectsV2Error::is_no_such_bucket)
                    .then_some(ErrorKind::NoSuchBucket);
                store_error("ListObjectsV2", &location.bucket, &location.prefix, kind, e)
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
                    archived: matches!(
                        object.storage_class(),
                        Some(ObjectStorageClass::Glacier | ObjectStorageClass::DeepArchive)
                    ),
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
}

/// Whether a HEAD shows an archived object that S3 will not copy yet: in GLACIER or
/// DEEP_ARCHIVE, or an Intelligent-Tiering archive tier, without a finished restore
/// (`x-amz-restore: ongoing-request="false", …`).
fn unrestored_archive(
    class: Option<&StorageClass>,
    tier: Option<&ArchiveStatus>,
    restore: Option<&str>,
) -> bool {
    let archived = matches!(
        class,
        Some(StorageClass::Glacier | StorageClass::DeepArchive)
    ) || tier.is_some();
    let restored = restore.is_some_and(|r| r.contains("ongoing-request=\"false\""));
    archived && !restored
}

impl ObjectCopier for S3Store {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        let client = self.client_for(bucket).await;
        let head = |checksums: bool| {
            let request = client.head_object().bucket(bucket).key(key);
            let request = if checksums {
                request.checksum_mode(ChecksumMode::Enabled)
            } else {
                request
            };
            request.send()
        };
        // Checksum mode needs kms:Decrypt when the object is encrypted with a customer key;
        // a role without it still gets everything else, and the copy goes on without the
        // checksum comparison.
        let mut outcome = head(true).await;
        if outcome.as_ref().is_err_and(|err| {
            err.raw_response()
                .is_some_and(|r| r.status().as_u16() == 403)
        }) {
            tracing::warn!(%bucket, %key, "HEAD with checksums refused (a KMS key this role may not use); trying without");
            outcome = head(false).await;
        }
        let output = match outcome {
            Ok(output) => output,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(HeadObjectError::is_not_found) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(store_error("HeadObject", bucket, key, None, err)),
        };
        let mut metadata = output.metadata().cloned().unwrap_or_default();
        let recorded_source_etag = metadata.remove(SOURCE_ETAG_METADATA);
        let checksum = CHECKSUM_ALGORITHMS.into_iter().find_map(|algorithm| {
            checksum_value!(output, algorithm)
                .filter(|value| full_object(output.checksum_type(), value))
                .map(|value| Checksum {
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
            unrestored_archive: unrestored_archive(
                output.storage_class(),
                output.archive_status(),
                output.restore(),
            ),
            version_id: output.version_id().map(str::to_owned),
        }))
    }

    async fn tags(&self, bucket: &str, key: &str) -> Result<Vec<(String, String)>, StoreError> {
        let output = self
            .client_for(bucket)
            .await
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| store_error("GetObjectTagging", bucket, key, None, e))?;
        Ok(output
            .tag_set()
            .iter()
            .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
            .collect())
    }

    async fn head_part(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
        number: i32,
    ) -> Result<PartHead, StoreError> {
        let output = self
            .client_for(bucket)
            .await
            .head_object()
            .bucket(bucket)
            .key(key)
            .if_match(etag)
            .part_number(number)
            .send()
            .await
            .map_err(|err| {
                // A HEAD's error has no body: its status says what it is.
                let kind = match err.raw_response().map(|r| r.status().as_u16()) {
                    Some(404) => Some(ErrorKind::NotFound),
                    Some(403 | 412 | 416) => Some(ErrorKind::Permanent),
                    _ => None,
                };
                store_error("HeadObject", bucket, key, kind, err)
            })?;
        Ok(PartHead {
            size: output.content_length().unwrap_or_default().max(0) as u64,
            parts_count: output
                .parts_count()
                .and_then(|count| u32::try_from(count).ok()),
        })
    }

    async fn copy_object(&self, request: &CopyRequest) -> Result<Option<Checksum>, StoreError> {
        let builder = self
            .client_for(&request.bucket)
            .await
            .copy_object()
            .bucket(&request.bucket)
            .key(&request.key)
            .copy_source(copy_source(request))
            .copy_source_if_match(&request.source_etag)
            .metadata_directive(MetadataDirective::Replace)
            .tagging_directive(TaggingDirective::Copy)
            .set_checksum_algorithm(algorithm(request));
        let output = carry!(builder, request)
            .config_override(self.copy_request(&request.bucket))
            .send()
            .await
            .map_err(|e| request_error(request, "CopyObject", e))?;
        let result = output.copy_object_result();
        Ok(request.checksum_algorithm.and_then(|algorithm| {
            let value = result.and_then(|result| checksum_value!(result, algorithm))?;
            full_object(result.and_then(|r| r.checksum_type()), value).then(|| Checksum {
                algorithm,
                value: value.to_owned(),
            })
        }))
    }

    /// Each attempt is sent alone (without the SDK's retries), so that an attempt whose
    /// answer was lost is known: S3 may have created that upload, and nobody would ever learn
    /// its id, complete it or abort it (the registry and the sweep know only the ids they were
    /// told). Once an attempt answers, the uploads of this key that started meanwhile are
    /// listed for the copier to abort (`Created::maybe_lost`); when none does, they are
    /// aborted here.
    async fn create_multipart(&self, request: &CopyRequest) -> Result<Created, StoreError> {
        let client = self.client_for(&request.bucket).await;
        // When each attempt whose answer may have been lost was sent and ended.
        let mut lost: Vec<(SystemTime, SystemTime)> = Vec::new();
        let mut attempt = 0;
        let output = loop {
            attempt += 1;
            let builder = client
                .create_multipart_upload()
                .bucket(&request.bucket)
                .key(&request.key)
                .set_tagging(tagging(request))
                .set_checksum_algorithm(algorithm(request))
                .set_checksum_type(algorithm(request).map(|_| ChecksumType::FullObject));
            let sent_at = SystemTime::now();
            let sent = carry!(builder, request)
                .config_override(
                    aws_sdk_s3::config::Builder::new().retry_config(RetryConfig::disabled()),
                )
                .send()
                .await;
            let err = match sent {
                Ok(output) => break output,
                Err(err) => err,
            };
            if may_have_been_applied(&err) {
                lost.push((sent_at, SystemTime::now()));
            }
            if attempt >= MAX_ATTEMPTS || !fanout_aws::is_transient(&err) {
                let error = request_error(request, "CreateMultipartUpload", err);
                for upload_id in self.lost_uploads(request, &lost).await {
                    if let Err(error) = self
                        .abort_upload(&request.bucket, &request.key, &upload_id)
                        .await
                    {
                        tracing::warn!(key = %request.key, %upload_id, %error, "could not abort an upload whose creation answer was lost");
                    }
                }
                return Err(error);
            }
            // Twice the collision backoff: 0.6 s to 2.6 s, about 10 s over the attempts, as
            // long as a short outage.
            tokio::time::sleep(fanout_aws::collision_backoff(attempt + 3) * 2).await;
        };
        let upload_id = output.upload_id().map(str::to_owned).ok_or_else(|| {
            request.error(
                "CreateMultipartUpload",
                ErrorKind::Permanent,
                "S3 returned no upload id".into(),
            )
        })?;
        let maybe_lost = self
            .lost_uploads(request, &lost)
            .await
            .into_iter()
            .filter(|id| *id != upload_id)
            .collect();
        Ok(Created {
            upload_id,
            maybe_lost,
        })
    }

    async fn copy_part(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        part: Part,
    ) -> Result<CompletedPart, StoreError> {
        let output = self
            .client_for(&request.bucket)
            .await
            .upload_part_copy()
            .bucket(&request.bucket)
            .key(&request.key)
            .upload_id(upload_id)
            .part_number(part.number)
            .copy_source(copy_source(request))
            .copy_source_range(part.range())
            .copy_source_if_match(&request.source_etag)
            .customize()
            .config_override(self.copy_request(&request.bucket))
            .send()
            .await
            .map_err(|e| request_error(request, "UploadPartCopy", e))?;
        let result = output.copy_part_result();
        let etag = result.and_then(|result| result.e_tag()).unwrap_or_default();
        let checksum = (request.checksum_algorithm)
            .and_then(|algorithm| result.and_then(|result| checksum_value!(result, algorithm)));
        Ok(CompletedPart {
            number: part.number,
            etag: etag.to_owned(),
            size: part.bytes(),
            checksum: checksum.map(str::to_owned),
        })
    }

    async fn complete_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
        mut parts: Vec<CompletedPart>,
    ) -> Result<Option<Checksum>, StoreError> {
        parts.sort_by_key(|part| part.number);
        let parts = parts
            .into_iter()
            .map(|part| {
                let builder = aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(part.number)
                    .e_tag(part.etag);
                match (request.checksum_algorithm, part.checksum) {
                    (Some("CRC64NVME"), Some(value)) => builder.checksum_crc64_nvme(value),
                    (Some("CRC32"), Some(value)) => builder.checksum_crc32(value),
                    (Some("CRC32C"), Some(value)) => builder.checksum_crc32_c(value),
                    _ => builder,
                }
                .build()
            })
            .collect();
        let output = self
            .client_for(&request.bucket)
            .await
            .complete_multipart_upload()
            .bucket(&request.bucket)
            .key(&request.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .customize()
            .config_override(copying())
            .send()
            .await
            .map_err(|e| request_error(request, "CompleteMultipartUpload", e))?;
        Ok(request.checksum_algorithm.and_then(|algorithm| {
            let value = checksum_value!(output, algorithm)?;
            full_object(output.checksum_type(), value).then(|| Checksum {
                algorithm,
                value: value.to_owned(),
            })
        }))
    }

    async fn abort_multipart(
        &self,
        request: &CopyRequest,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.abort_upload(&request.bucket, &request.key, upload_id)
            .await
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.client_for(bucket)
            .await
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| store_error("DeleteObject", bucket, key, None, e))?;
        Ok(())
    }

    /// Every page of ListParts; `None` on NoSuchUpload.
    async fn uploaded_parts(
        &self,
        request: &CopyRequest,
        upload_id: &str,
    ) -> Result<Option<Vec<CompletedPart>>, StoreError> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let output = match self
                .client_for(&request.bucket)
                .await
                .list_parts()
                .bucket(&request.bucket)
                .key(&request.key)
                .upload_id(upload_id)
                .set_part_number_marker(marker)
                .send()
                .await
            {
                Ok(output) => output,
                Err(err) if err.code() == Some("NoSuchUpload") => return Ok(None),
                Err(err) => return Err(request_error(request, "ListParts", err)),
            };
            parts.extend(output.parts().iter().filter_map(|part| {
                Some(CompletedPart {
                    number: part.part_number()?,
                    etag: part.e_tag()?.to_owned(),
                    size: part.size()?.max(0) as u64,
                    checksum: (request.checksum_algorithm)
                        .and_then(|algorithm| checksum_value!(part, algorithm))
                        .map(str::to_owned),
                })
            }));
            match output.next_part_number_marker() {
                Some(next) if output.is_truncated().unwrap_or(false) => {
                    marker = Some(next.to_owned())
                }
                _ => return Ok(Some(parts)),
            }
        }
    }
}

impl UploadStore for S3Store {
    /// Every page of ListMultipartUploads under the prefix.
    async fn open_uploads(&self, location: &Location) -> Result<Vec<OpenUpload>, StoreError> {
        let (bucket, prefix) = (&location.bucket, &location.prefix);
        let mut open = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let output = self
                .client_for(bucket)
                .await
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .map_err(|e| store_error("ListMultipartUploads", bucket, prefix, None, e))?;
            open.extend(output.uploads().iter().filter_map(|upload| {
                Some(OpenUpload {
                    key: upload.key()?.to_owned(),
                    upload_id: upload.upload_id()?.to_owned(),
                    initiated: upload.initiated().map(|t| t.secs()).unwrap_or_default(),
                })
            }));
            if !output.is_truncated().unwrap_or(false) {
                return Ok(open);
            }
            key_marker = output.next_key_marker().map(str::to_owned);
            id_marker = output.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(open);
            }
        }
    }

    async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        let aborted = self
            .client_for(bucket)
            .await
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match aborted {
            Ok(_) => Ok(()),
            // Already completed or aborted: nothing is left of it either way.
            Err(err) if err.code() == Some("NoSuchUpload") => Ok(()),
            Err(err) => Err(store_error("AbortMultipartUpload", bucket, key, None, err)),
        }
    }
}

impl fanout_copy_core::completion::ReportWriter for S3Store {
    /// Writes the report (JSON Lines) with a PutObject, in the bucket's own region.
    fn write<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        body: String,
    ) -> fanout_copy_core::uploads::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client_for(bucket)
                .await
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type("application/x-ndjson")
                .body(body.into_bytes().into())
                .send()
                .await
                .map_err(|e| DisplayErrorContext(e).to_string())?;
            Ok(())
        })
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
        assert_eq!(copy_source(&request), "src/a%20dir/%C3%BC%2Bx%3F.txt");
        assert_eq!(
            tagging(&request).as_deref(),
            Some("team=data%20eng&a%26b=%3D")
        );
        assert_eq!(tagging(&CopyRequest::default()), None);
    }

    #[test]
    fn only_whole_object_checksums_are_compared() {
        assert!(full_object(Some(&ChecksumType::FullObject), "AAAA"));
        assert!(!full_object(Some(&ChecksumType::Composite), "AAAA-3"));
        assert!(
            full_object(None, "qkAZ4Q=="),
            "a single PUT's, from before S3 said the type"
        );
        assert!(!full_object(None, "qkAZ4Q==-3"));
    }

    #[test]
    fn the_core_knows_every_storage_class_the_sdk_knows() {
        assert_eq!(
            fanout_copy_core::store::STORAGE_CLASSES,
            StorageClass::values()
        );
    }
}
