//! Copy fixtures: buckets, objects with headers, metadata and tags, the runs table, and a way
//! to make one part of a multipart copy fail.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::box_error::BoxError;

use crate::unique;

/// An S3 client for the emulator (path-style addressing).
pub fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    s3_with(sdk, None::<FailPart>)
}

/// An S3 client with an interceptor.
pub fn s3_with(
    sdk: &SdkConfig,
    interceptor: Option<impl Intercept + 'static>,
) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(true);
    if let Some(interceptor) = interceptor {
        config = config.interceptor(interceptor);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// A sample event from `events/`, naming these buckets where it names the local stack's
/// (`fanout-local-source`, `fanout-local-backup`).
pub fn sample_event(file: &str, source: &str, destination: &str) -> serde_json::Value {
    let path = crate::workspace_root().join("events").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .replace("fanout-local-source", source)
        .replace("fanout-local-backup", destination);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Creates a bucket with a unique name and returns the name.
pub async fn create_bucket(sdk: &SdkConfig, prefix: &str) -> String {
    let name = unique(prefix);
    s3(sdk)
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
    name
}

/// Everything a copy must carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl Carried {
    /// A full set of headers, metadata and tags.
    pub fn sample() -> Carried {
        Carried {
            content_type: Some("image/jpeg".into()),
            content_encoding: Some("identity".into()),
            content_disposition: Some("attachment; filename=\"sunrise.jpg\"".into()),
            content_language: Some("en-GB".into()),
            cache_control: Some("max-age=3600".into()),
            expires: Some("Wed, 21 Oct 2037 07:28:00 GMT".into()),
            metadata: BTreeMap::from([
                ("camera".into(), "x100".into()),
                ("taken-by".into(), "ada".into()),
            ]),
            tags: BTreeMap::from([
                ("project".into(), "backup".into()),
                ("team".into(), "data eng".into()),
            ]),
        }
    }
}

/// Puts an object carrying `carried`; returns its ETag.
pub async fn put_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    carried: &Carried,
) -> String {
    let tagging = (!carried.tags.is_empty()).then(|| {
        serde_urlencoded::to_string(&carried.tags)
            .unwrap()
            .replace('+', "%20")
    });
    let expires = carried.expires.clone();
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .set_content_type(carried.content_type.clone())
        .set_content_encoding(carried.content_encoding.clone())
        .set_content_disposition(carried.content_disposition.clone())
        .set_content_language(carried.content_language.clone())
        .set_cache_control(carried.cache_control.clone())
        .set_metadata((!carried.metadata.is_empty()).then(|| {
            carried
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }))
        .set_tagging(tagging)
        .customize()
        .mutate_request(move |request| {
            if let Some(expires) = &expires {
                request.headers_mut().insert("expires", expires.clone());
            }
        })
        .send()
        .await
        .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}"))
        .e_tag
        .unwrap_or_default()
}

/// What a copy carried, read back; user metadata without the key the copy adds.
pub async fn carried(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Carried {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head s3://{bucket}/{key}: {e:?}"));
    let tags = client
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .tag_set
        .into_iter()
        .map(|tag| (tag.key, tag.value))
        .collect();
    Carried {
        content_type: head.content_type,
        content_encoding: head.content_encoding,
        content_disposition: head.content_disposition,
        content_language: head.content_language,
        cache_control: head.cache_control,
        expires: head.expires_string,
        metadata: head
            .metadata
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "fanout-source-etag")
            .collect(),
        tags,
    }
}

/// The object's bytes.
pub async fn body(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

/// Deletes an object.
pub async fn delete(client: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("delete s3://{bucket}/{key}: {e:?}"));
}

/// Every key in the bucket, in order.
pub async fn keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys
}

/// The multipart uploads open in the bucket.
pub async fn open_uploads(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .uploads()
        .iter()
        .map(|u| {
            format!(
                "{}:{}",
                u.key().unwrap_or_default(),
                u.upload_id().unwrap_or_default()
            )
        })
        .collect()
}

/// Bytes that differ from object to object.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Creates a runs table (partition key `run_id`, String) and returns its name.
pub async fn create_runs_table(sdk: &SdkConfig) -> String {
    crate::create_unique_table(sdk, "copy-runs", "run_id", &[]).await
}

/// Makes every request naming this key (its path, or its copy source) unreachable: the
/// connection is refused, as when S3 cannot be reached, a failure the copier classes transient.
#[derive(Debug, Clone)]
pub struct Unreachable(pub String);

impl Intercept for Unreachable {
    fn name(&self) -> &'static str {
        "Unreachable"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let named = |text: &str| {
            text.split('?')
                .next()
                .unwrap_or_default()
                .ends_with(&format!("/{}", self.0))
        };
        let copies = request
            .headers()
            .get("x-amz-copy-source")
            .is_some_and(named);
        if named(request.uri()) || copies {
            // Port 9 (discard) of localhost: nothing listens, the connection is refused.
            let uri = request.uri().to_owned();
            let path = uri.splitn(4, '/').nth(3).unwrap_or_default().to_owned();
            request.set_uri(format!("http://127.0.0.1:9/{path}"))?;
        }
        Ok(())
    }
}

/// Makes every UploadPartCopy of one part number fail, as S3 would if the source vanished
/// mid-copy: the request is sent for a key that does not exist.
#[derive(Debug, Clone)]
pub struct FailPart(pub u32);

impl Intercept for FailPart {
    fn name(&self) -> &'static str {
        "FailPart"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let part = format!("partNumber={}&", self.0);
        let uri = request.uri().to_owned();
        let is_part = uri.contains(&part) || uri.ends_with(&part[..part.len() - 1]);
        if let Some(source) = request.headers().get("x-amz-copy-source") {
            if is_part {
                let bucket = source.split('/').next().unwrap_or_default().to_owned();
                request
                    .headers_mut()
                    .insert("x-amz-copy-source", format!("{bucket}/no-such-part-source"));
            }
        }
        Ok(())
    }
}

/// Makes SNS seem to refuse two entries of the first PublishBatch call of ten (the ids are the
/// entries' places in the call): `for_now` as a throttled entry, `for_good` as a sender fault.
/// SNS (moto) did publish them; only the answer says otherwise. Records every call's number of
/// entries.
#[derive(Debug, Clone, Default)]
pub struct RefuseEntries {
    pub for_now: &'static str,
    pub for_good: &'static str,
    pub calls: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Intercept for RefuseEntries {
    fn name(&self) -> &'static str {
        "RefuseEntries"
    }

    fn modify_before_completion(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
        use aws_sdk_sns::types::BatchResultErrorEntry;
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        let Some(output) = output.downcast_mut::<PublishBatchOutput>() else {
            return Ok(());
        };
        let successful = output.successful.get_or_insert_with(Vec::new);
        self.calls.lock().unwrap().push(successful.len());
        if successful.len() < 10 {
            return Ok(());
        }
        let mut failed = Vec::new();
        successful.retain(|entry| {
            let fault = match entry.id().unwrap_or_default() {
                id if id == self.for_now => false,
                id if id == self.for_good => true,
                _ => return true,
            };
            failed.push(
                BatchResultErrorEntry::builder()
                    .id(entry.id().unwrap_or_default())
                    .code(if fault {
                        "InvalidParameter"
                    } else {
                        "Throttled"
                    })
                    .message("refused by the test")
                    .sender_fault(fault)
                    .build()
                    .expect("every field set"),
            );
            false
        });
        output.failed = Some(failed);
        Ok(())
    }
}

/// Records the region each S3 request was signed for, by bucket (path-style requests), except
/// HeadBucket, which asks where a bucket is and may be sent anywhere.
#[derive(Debug, Clone, Default)]
pub struct SigningRegions {
    seen: std::sync::Arc<std::sync::Mutex<BTreeMap<String, std::collections::BTreeSet<String>>>>,
}

impl SigningRegions {
    /// The regions requests to `bucket` were signed for.
    pub fn of(&self, bucket: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .get(bucket)
            .map(|regions| regions.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Intercept for SigningRegions {
    fn name(&self) -> &'static str {
        "SigningRegions"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let path = request.uri().split("://").nth(1).unwrap_or(request.uri());
        let path = path.split('?').next().unwrap_or_default();
        let mut segments = path.split('/').skip(1);
        let bucket = segments.next().unwrap_or_default().to_owned();
        let has_key = segments.next().is_some_and(|key| !key.is_empty());
        if request.method() == "HEAD" && !has_key {
            return Ok(());
        }
        // Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/s3/aws4_request, …
        let region = (request.headers().get("authorization"))
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|credential| credential.split('/').nth(2))
            .unwrap_or_default()
            .to_owned();
        self.seen
            .lock()
            .unwrap()
            .entry(bucket)
            .or_default()
            .insert(region);
        Ok(())
    }
}

/// Uploads `data` in parts of these sizes (the last may be smaller than 5 MiB, no other); with
/// `checksum`, asking for a full-object CRC32 checksum. (S3 makes CRC64NVME by default; moto
/// computes CRC64NVME only with the optional awscrt, else a CRC32 under its name, which the
/// SDK then refuses on GET.) Returns the object's ETag (`"…-N"`).
pub async fn put_in_parts(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    data: &[u8],
    sizes: &[usize],
    checksum: bool,
) -> String {
    use aws_sdk_s3::types::{
        ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart,
    };
    assert_eq!(
        sizes.iter().sum::<usize>(),
        data.len(),
        "the parts tile the data"
    );
    let algorithm = checksum.then_some(ChecksumAlgorithm::Crc32);
    let upload = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .set_checksum_algorithm(algorithm.clone())
        .set_checksum_type(checksum.then_some(ChecksumType::FullObject))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create upload s3://{bucket}/{key}: {e:?}"));
    let upload_id = upload.upload_id().expect("an upload id").to_owned();
    let mut parts = Vec::new();
    let mut first = 0;
    for (i, size) in sizes.iter().enumerate() {
        let number = i as i32 + 1;
        let part = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .set_checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(data[first..first + size].to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload part {number} of s3://{bucket}/{key}: {e:?}"));
        first += size;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag)
                .set_checksum_crc32(part.checksum_crc32)
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete s3://{bucket}/{key}: {e:?}"))
        .e_tag
        .unwrap_or_default()
}

/// Makes every CopyObject and CompleteMultipartUpload answer carry a full-object checksum that
/// is not the copy's, as a copy that went wrong in S3 would; counts the answers it changed.
#[derive(Debug, Clone, Default)]
pub struct ForgeChecksum {
    pub forged: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// A checksum no content of the tests has (valid base64 of eight bytes).
pub const FORGED_CHECKSUM: &str = "AAAAAAAAAAA=";

impl Intercept for ForgeChecksum {
    fn name(&self) -> &'static str {
        "ForgeChecksum"
    }

    fn modify_before_completion(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
        use aws_sdk_s3::operation::copy_object::CopyObjectOutput;
        use aws_sdk_s3::types::{ChecksumType, CopyObjectResult};
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        let forged = Some(FORGED_CHECKSUM.to_owned());
        if let Some(copy) = output.downcast_mut::<CopyObjectOutput>() {
            let result = copy
                .copy_object_result
                .get_or_insert_with(|| CopyObjectResult::builder().build());
            result.checksum_crc64_nvme = forged.clone();
            result.checksum_crc32 = forged.clone();
            result.checksum_crc32_c = forged;
            result.checksum_type = Some(ChecksumType::FullObject);
        } else if let Some(complete) = output.downcast_mut::<CompleteMultipartUploadOutput>() {
            complete.checksum_crc64_nvme = forged.clone();
            complete.checksum_crc32 = forged.clone();
            complete.checksum_crc32_c = forged;
            complete.checksum_type = Some(ChecksumType::FullObject);
        } else {
            return Ok(());
        }
        self.forged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Replaces S3's answer to the requests it picks, up to a number of them: the status, and the
/// body unless it keeps it; counts the answers it replaced.
#[derive(Debug, Clone)]
pub struct ReplaceAnswers {
    picks: fn(&aws_smithy_runtime_api::http::Request) -> bool,
    status: u16,
    body: Option<&'static str>,
    left: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    replaced: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ReplaceAnswers {
    /// S3 refuses (403) every HEAD sent with checksum mode, as it does when the object is
    /// encrypted with a KMS key the caller may not decrypt with.
    pub fn refuse_checksum_mode() -> ReplaceAnswers {
        ReplaceAnswers {
            picks: |request| {
                request.method() == "HEAD" && request.headers().contains_key("x-amz-checksum-mode")
            },
            status: 403,
            body: None,
            left: std::sync::Arc::new(usize::MAX.into()),
            replaced: Default::default(),
        }
    }

    /// The answers of the first `times` CreateMultipartUpload requests are lost: S3 (moto)
    /// created the upload, and the client gets a 500 instead of its id, as when a connection
    /// breaks after S3 acted.
    pub fn lose_create_answers(times: usize) -> ReplaceAnswers {
        ReplaceAnswers {
            picks: |request| request.method() == "POST" && request.uri().contains("?uploads"),
            status: 500,
            body: Some("<Error><Code>InternalError</Code><Message>lost</Message></Error>"),
            left: std::sync::Arc::new(times.into()),
            replaced: Default::default(),
        }
    }

    /// How many answers were replaced.
    pub fn replaced(&self) -> usize {
        self.replaced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many more it would replace.
    pub fn left(&self) -> usize {
        self.left.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Marks an attempt whose answer is to be replaced.
#[derive(Debug, Clone)]
struct Picked;

impl aws_smithy_types::config_bag::Storable for Picked {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for ReplaceAnswers {
    fn name(&self) -> &'static str {
        "ReplaceAnswers"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if (self.picks)(context.request()) {
            cfg.interceptor_state().store_put(Picked);
        } else {
            cfg.interceptor_state().unset::<Picked>();
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut<
            '_,
        >,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use std::sync::atomic::Ordering;
        let replace = cfg.load::<Picked>().is_some()
            && (self.left)
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if !replace {
            return Ok(());
        }
        let response = context.response_mut();
        *response.status_mut() = self.status.try_into()?;
        if let Some(body) = self.body {
            *response.body_mut() = aws_smithy_types::body::SdkBody::from(body);
        }
        self.replaced.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
