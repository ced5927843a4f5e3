//! The copy engine against a real AWS emulator: what a copy carries, skipping by content (a
//! source uploaded in parts is copied part for part, so the second night of a run plans no job
//! at all), verified copies, pagination, failures and aborts, dry runs.

use aws_config::SdkConfig;
use fanout_copy_core::copier::CopyError;
use fanout_copy_core::engine::{self, Quiet};
use fanout_copy_core::job::{CopyJob, DestinationObject, SourceObject, SCHEMA_VERSION};
use fanout_copy_core::plan::PartSize;
use fanout_copy_core::planner::Planner;
use fanout_copy_core::size::MIB;
use fanout_copy_core::store::StorageClass;
use fanout_copy_core::{Copied, Copier, CopyOptions, Location, RunSpec, Thresholds};
use fanout_copy_s3::S3Store as ObjectStore;
use fanout_tests::copy::{
    body, bytes, carried, create_bucket, keys, open_uploads, put_in_parts, put_object, s3, s3_with,
    Carried, FailPart, ForgeChecksum, ReplaceAnswers, SigningRegions,
};
use fanout_tests::iam::CallRecorder;
use fanout_tests::Emulator;
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;

/// Objects above 5 MiB are copied in 5 MiB parts: an 11 MiB object takes three.
fn tiny_thresholds() -> CopyOptions {
    CopyOptions {
        thresholds: Thresholds::new(5 * MIB, PartSize::Fixed(5 * MIB)).unwrap(),
        ..CopyOptions::default()
    }
}

struct Fixture {
    sdk: SdkConfig,
    client: aws_sdk_s3::Client,
    source: String,
    destination: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let sdk = Emulator::shared().sdk_config().await;
        let source = create_bucket(&sdk, "src").await;
        let destination = create_bucket(&sdk, "dst").await;
        Fixture {
            client: s3(&sdk),
            sdk,
            source,
            destination,
        }
    }

    fn copier(&self, options: CopyOptions) -> Copier<ObjectStore> {
        Copier::new(ObjectStore::from_sdk(&self.sdk), options, 16)
    }

    async fn etag(&self, bucket: &str, key: &str) -> String {
        let head = self.client.head_object().bucket(bucket).key(key).send();
        head.await.unwrap().e_tag.unwrap_or_default()
    }

    fn spec(&self, source_prefix: &str, destination_prefix: &str) -> RunSpec {
        RunSpec {
            run_id: fanout_tests::unique("run"),
            source: Location::new(&self.source, source_prefix),
            destination: Location::new(&self.destination, destination_prefix),
            modified_since: None,
            include_archived: false,
        }
    }

    async fn put(&self, key: &str, len: usize, seed: u8, carried: &Carried) -> String {
        put_object(&self.client, &self.source, key, bytes(len, seed), carried).await
    }

    async fn head(&self, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.client
            .head_object()
            .bucket(&self.destination)
            .key(key)
            .send()
            .await
            .unwrap()
    }

    fn job(&self, key: &str, size: u64, etag: &str) -> CopyJob {
        CopyJob {
            schema_version: SCHEMA_VERSION,
            run_id: "r".into(),
            source: SourceObject {
                bucket: self.source.clone(),
                key: key.into(),
                size,
                etag: etag.into(),
            },
            destination: DestinationObject {
                bucket: self.destination.clone(),
                key: format!("copy/{key}"),
            },
            check_destination: false,
            resume: None,
        }
    }
}

#[tokio::test]
async fn headers_metadata_and_tags_survive_both_copy_paths() {
    let f = Fixture::new().await;
    let sample = Carried::sample();
    f.put("small.jpg", 1000, 1, &sample).await;
    f.put("large.jpg", 11 * MIB as usize, 2, &sample).await;
    let options = CopyOptions {
        storage_class: Some("STANDARD_IA".parse::<StorageClass>().unwrap()),
        ..tiny_thresholds()
    };
    let summary = engine::run(&f.copier(options), f.spec("", "copy/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (summary.copied, summary.failed, summary.bytes_copied),
        (2, 0, 1000 + 11 * MIB),
        "{summary:?}"
    );
    for (key, len, seed) in [("small.jpg", 1000, 1), ("large.jpg", 11 * MIB as usize, 2)] {
        let copy = format!("copy/{key}");
        assert_eq!(
            carried(&f.client, &f.destination, &copy).await,
            sample,
            "{key}"
        );
        assert_eq!(
            body(&f.client, &f.destination, &copy).await,
            bytes(len, seed)
        );
        let head = f.head(&copy).await;
        assert_eq!(
            head.storage_class,
            Some(aws_sdk_s3::types::StorageClass::StandardIa),
            "{key}"
        );
    }
    let large = f.head("copy/large.jpg").await;
    assert!(
        large.e_tag.unwrap().ends_with("-3\""),
        "the large object went through a three-part copy"
    );
}

#[tokio::test]
async fn automatic_parts_fill_the_free_copy_slots() {
    let f = Fixture::new().await;
    let len = 24 * MIB as usize;
    f.put("auto.bin", len, 3, &Carried::default()).await;
    let auto = CopyOptions {
        thresholds: Thresholds::new(5 * MIB, PartSize::Auto).unwrap(),
        ..CopyOptions::default()
    };
    // Two slots: two parts of 12 MiB. Sixteen: 24 MiB / 16 is below 5 MiB, so five parts of
    // 5 MiB (the last 4 MiB).
    for (slots, parts) in [(2, "-2\""), (16, "-5\"")] {
        let copier = Copier::new(ObjectStore::from_sdk(&f.sdk), auto.clone(), slots);
        let prefix = format!("auto-{slots}/");
        let summary = engine::run(&copier, f.spec("", &prefix), false, None, &Quiet)
            .await
            .unwrap();
        assert_eq!((summary.copied, summary.failed), (1, 0), "{summary:?}");
        let copy = format!("{prefix}auto.bin");
        let head = f.head(&copy).await;
        let etag = head.e_tag.unwrap();
        assert!(etag.ends_with(parts), "{slots} slots: ETag {etag}");
        assert_eq!(body(&f.client, &f.destination, &copy).await, bytes(len, 3));
        assert_eq!(
            copier.free_slots(),
            slots,
            "every planned request was let go"
        );
    }
}

#[tokio::test]
async fn a_rerun_skips_what_is_unchanged_and_copies_what_changed() {
    let f = Fixture::new().await;
    let plain = Carried::default();
    for i in 0..5 {
        f.put(&format!("data/{i}.bin"), 2000 + i, i as u8, &plain)
            .await;
    }
    f.put("data/large.bin", 11 * MIB as usize, 9, &plain).await;
    let copier = f.copier(tiny_thresholds());

    let first = engine::run(&copier, f.spec("data/", "b/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((first.copied, first.skipped, first.failed), (6, 0, 0));

    let again = engine::run(&copier, f.spec("data/", "b/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (
            again.copied,
            again.skipped,
            again.failed,
            again.bytes_copied
        ),
        (0, 6, 0, 0),
        "the multipart copy's own ETag differs, but its recorded source ETag matches: {again:?}"
    );

    // Same size, new content; and a new size.
    f.put("data/2.bin", 2002, 200, &plain).await;
    f.put("data/large.bin", 11 * MIB as usize, 77, &plain).await;
    f.put("data/3.bin", 10, 3, &plain).await;
    let third = engine::run(&copier, f.spec("data/", "b/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (third.copied, third.skipped, third.failed),
        (3, 3, 0),
        "{third:?}"
    );
    assert_eq!(
        body(&f.client, &f.destination, "b/2.bin").await,
        bytes(2002, 200)
    );
    assert_eq!(
        body(&f.client, &f.destination, "b/large.bin").await,
        bytes(11 * MIB as usize, 77)
    );
}

#[tokio::test]
async fn thousands_of_keys_page_through_and_nothing_outside_the_prefix_is_copied() {
    let f = Fixture::new().await;
    let inside: Vec<String> = (0..2500)
        .map(|i| format!("in/{:02}/{i:05}", i % 37))
        .collect();
    let outside = ["in", "inbox/1", "index.html", "out/in/1", "a"];
    let all: Vec<String> = inside
        .iter()
        .cloned()
        .chain(outside.iter().map(|k| k.to_string()))
        .collect();
    let f = &f;
    stream::iter(all.iter())
        .for_each_concurrent(32, |key| async move {
            f.put(key, 16, 0, &Carried::default()).await;
        })
        .await;

    let summary = engine::run(
        &f.copier(CopyOptions::default()),
        f.spec("in/", "mirror/"),
        false,
        None,
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.listed, summary.copied, summary.failed),
        (2500, 2500, 0)
    );
    let mut expected: Vec<String> = inside
        .iter()
        .map(|k| k.replacen("in/", "mirror/", 1))
        .collect();
    expected.sort();
    assert_eq!(keys(&f.client, &f.destination).await, expected);

    // A second run pages through both listings side by side and copies nothing.
    let again = engine::run(
        &f.copier(CopyOptions::default()),
        f.spec("in/", "mirror/"),
        false,
        Some(400),
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!((again.listed, again.copied, again.skipped), (2500, 0, 2500));
}

#[tokio::test]
async fn a_missing_source_object_or_destination_bucket_is_a_failure_not_a_crash() {
    let f = Fixture::new().await;
    let copier = f.copier(CopyOptions::default());
    let err = copier
        .copy(&f.job("gone.txt", 10, "\"0123\""))
        .await
        .unwrap_err();
    assert!(matches!(err, CopyError::SourceMissing { .. }), "{err}");
    assert!(!err.transient());

    let etag = f.put("here.txt", 10, 1, &Carried::default()).await;
    let changed = copier
        .copy(&f.job("here.txt", 10, "\"0ld\""))
        .await
        .unwrap_err();
    assert!(
        matches!(changed, CopyError::SourceChanged { .. }),
        "{changed}"
    );
    assert_eq!(
        copier.copy(&f.job("here.txt", 10, &etag)).await.unwrap(),
        Copied::Copied {
            bytes: 10,
            verified: true
        }
    );

    f.put("big.bin", 6 * MIB as usize, 2, &Carried::default())
        .await;
    let nowhere = RunSpec {
        destination: Location::new(fanout_tests::unique("no-such-bucket"), ""),
        ..f.spec("", "")
    };
    let summary = engine::run(&f.copier(tiny_thresholds()), nowhere, false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((summary.copied, summary.failed), (0, 2), "{summary:?}");
    for failure in &summary.failures {
        assert!(failure.error.contains("NoSuchBucket"), "{failure:?}");
    }
}

#[tokio::test]
async fn a_failed_multipart_copy_is_aborted_and_leaves_no_parts() {
    let f = Fixture::new().await;
    let etag = f
        .put("large.bin", 16 * MIB as usize, 3, &Carried::sample())
        .await;
    let failing = Copier::new(
        ObjectStore::new(s3_with(&f.sdk, Some(FailPart(2)))),
        tiny_thresholds(),
        4,
    );
    let err = failing
        .copy(&f.job("large.bin", 16 * MIB, &etag))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UploadPartCopy"), "{err}");
    assert!(
        !matches!(err, CopyError::NotAborted { .. }),
        "the abort itself worked: {err}"
    );
    assert_eq!(
        open_uploads(&f.client, &f.destination).await,
        Vec::<String>::new()
    );
    assert_eq!(keys(&f.client, &f.destination).await, Vec::<String>::new());

    // The same job, without the fault, goes through.
    let copier = f.copier(tiny_thresholds());
    assert_eq!(
        copier
            .copy(&f.job("large.bin", 16 * MIB, &etag))
            .await
            .unwrap(),
        Copied::Copied {
            bytes: 16 * MIB,
            verified: true
        }
    );
}

#[tokio::test]
async fn uploads_whose_creation_answer_was_lost_are_aborted_and_the_copy_goes_on() {
    let f = Fixture::new().await;
    let etag = f
        .put("large.bin", 16 * MIB as usize, 5, &Carried::sample())
        .await;
    let lose = ReplaceAnswers::lose_create_answers(2);
    let copier = Copier::new(
        ObjectStore::new(s3_with(&f.sdk, Some(lose.clone()))),
        tiny_thresholds(),
        4,
    );
    assert_eq!(
        copier
            .copy(&f.job("large.bin", 16 * MIB, &etag))
            .await
            .unwrap(),
        Copied::Copied {
            bytes: 16 * MIB,
            verified: true
        }
    );
    assert_eq!((lose.left(), lose.replaced()), (0, 2));
    // S3 made three uploads; the two whose answers were lost are aborted, the third completed.
    assert_eq!(
        open_uploads(&f.client, &f.destination).await,
        Vec::<String>::new()
    );
    assert_eq!(
        body(&f.client, &f.destination, "copy/large.bin").await,
        bytes(16 * MIB as usize, 5)
    );
}

#[tokio::test]
async fn a_dry_run_copies_nothing_and_modified_since_filters() {
    let f = Fixture::new().await;
    for i in 0..4 {
        f.put(&format!("p/{i}"), 100, i, &Carried::default()).await;
    }
    let summary = engine::run(
        &f.copier(CopyOptions::default()),
        f.spec("p/", ""),
        true,
        None,
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            summary.listed,
            summary.planned,
            summary.planned_bytes,
            summary.copied
        ),
        (4, 4, 400, 0)
    );
    assert!(keys(&f.client, &f.destination).await.is_empty());

    let future = RunSpec {
        modified_since: Some(
            fanout_copy_core::planner::parse_rfc3339("2999-01-01T00:00:00Z").unwrap(),
        ),
        ..f.spec("p/", "")
    };
    let summary = engine::run(
        &f.copier(CopyOptions::default()),
        future,
        false,
        None,
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!((summary.listed, summary.copied), (0, 0));
    assert!(keys(&f.client, &f.destination).await.is_empty());
}

#[tokio::test]
async fn a_folder_marker_at_the_prefix_root_goes_to_the_destination_prefix_or_is_skipped() {
    let f = Fixture::new().await;
    let plain = Carried::default();
    f.put("photos/", 0, 0, &plain).await;
    f.put("photos/a.jpg", 100, 1, &plain).await;
    let copier = f.copier(tiny_thresholds());
    let into_prefix = engine::run(&copier, f.spec("photos/", "backup/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (into_prefix.copied, into_prefix.skipped, into_prefix.failed),
        (2, 0, 0),
        "{into_prefix:?}"
    );
    let whole = create_bucket(&f.sdk, "whole").await;
    let spec = RunSpec {
        destination: Location::new(&whole, ""),
        ..f.spec("photos/", "")
    };
    let into_bucket = engine::run(&copier, spec, false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (into_bucket.copied, into_bucket.skipped, into_bucket.failed),
        (1, 1, 0),
        "the marker would have an empty key: skipped, not failed: {into_bucket:?}"
    );
    assert_eq!(keys(&f.client, &whole).await, vec!["a.jpg".to_owned()]);
    let mut copied = keys(&f.client, &f.destination).await;
    copied.sort();
    assert_eq!(
        copied,
        vec!["backup/".to_owned(), "backup/a.jpg".to_owned()]
    );
}

#[tokio::test]
async fn a_metadata_edit_in_place_is_copied_again() {
    let f = Fixture::new().await;
    let etag = f.put("doc.txt", 300, 4, &Carried::sample()).await;
    let copier = f.copier(tiny_thresholds());
    let first = engine::run(&copier, f.spec("", "c/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!(first.copied, 1);
    // S3's LastModified has a resolution of one second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let edited = f
        .client
        .copy_object()
        .bucket(&f.source)
        .key("doc.txt")
        .copy_source(format!("{}/doc.txt", f.source))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("camera", "edited")
        .send()
        .await
        .unwrap();
    let new_etag = edited.copy_object_result.and_then(|r| r.e_tag);
    assert_eq!(
        new_etag.as_deref(),
        Some(etag.as_str()),
        "same content, same ETag"
    );
    let again = engine::run(&copier, f.spec("", "c/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((again.copied, again.skipped), (1, 0), "{again:?}");
    let metadata = carried(&f.client, &f.destination, "c/doc.txt")
        .await
        .metadata;
    assert_eq!(metadata.get("camera").map(String::as_str), Some("edited"));
}

#[tokio::test]
async fn full_metadata_and_untagged_multipart_sources_copy_cleanly() {
    let f = Fixture::new().await;
    // 2,040 bytes of user metadata: the source ETag record would pass S3's 2 KB.
    let full = Carried {
        metadata: BTreeMap::from([("notes".to_owned(), "n".repeat(2035))]),
        ..Carried::default()
    };
    f.put("full.bin", 1000, 5, &full).await;
    f.put("plain.bin", 11 * MIB as usize, 6, &Carried::default())
        .await;
    let calls = CallRecorder::default();
    let store = ObjectStore::new(s3_with(&f.sdk, Some(calls.clone())));
    let copier = Copier::new(store, tiny_thresholds(), 16);
    let summary = engine::run(&copier, f.spec("", "m/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((summary.copied, summary.failed), (2, 0), "{summary:?}");
    let head = f.head("m/full.bin").await;
    let metadata = head.metadata.unwrap_or_default();
    let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        size <= 2048,
        "{size} bytes of user metadata: S3 would refuse it"
    );
    assert_eq!(metadata.get("notes").map(String::len), Some(2035));
    assert!(calls.operations().contains("S3:UploadPartCopy"));
    assert!(
        !calls.operations().contains("S3:GetObjectTagging"),
        "an untagged source's tags are not read: {:?}",
        calls.operations()
    );
}

#[tokio::test]
async fn archived_objects_are_counted_and_left_alone_or_copied_once_restored() {
    let f = Fixture::new().await;
    f.put("live.txt", 100, 1, &Carried::default()).await;
    for (key, class) in [
        ("cold.txt", aws_sdk_s3::types::StorageClass::Glacier),
        ("thawed.txt", aws_sdk_s3::types::StorageClass::DeepArchive),
    ] {
        f.client
            .put_object()
            .bucket(&f.source)
            .key(key)
            .body(bytes(100, 2).into())
            .storage_class(class)
            .send()
            .await
            .unwrap();
    }
    f.client
        .restore_object()
        .bucket(&f.source)
        .key("thawed.txt")
        .restore_request(aws_sdk_s3::types::RestoreRequest::builder().days(1).build())
        .send()
        .await
        .unwrap();
    let copier = f.copier(tiny_thresholds());
    let default = engine::run(&copier, f.spec("", "a/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (
            default.listed,
            default.copied,
            default.archived,
            default.failed
        ),
        (3, 1, 2, 0),
        "{default:?}"
    );
    let included = RunSpec {
        include_archived: true,
        ..f.spec("", "a/")
    };
    let all = engine::run(&copier, included, false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (all.copied, all.skipped, all.archived, all.failed),
        (1, 1, 0, 1),
        "{all:?}"
    );
    assert_eq!(all.failures[0].key, "cold.txt");
    assert!(
        all.failures[0].error.contains("archived and not restored"),
        "{all:?}"
    );
    assert_eq!(
        body(&f.client, &f.destination, "a/thawed.txt").await,
        bytes(100, 2)
    );
}

#[tokio::test]
async fn a_bucket_in_another_region_is_used_through_a_client_of_its_region() {
    let f = Fixture::new().await;
    let europe = fanout_tests::unique("eu-src");
    f.client
        .create_bucket()
        .bucket(&europe)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let plain = Carried::default();
    put_object(&f.client, &europe, "a.bin", bytes(100, 1), &plain).await;
    put_object(
        &f.client,
        &europe,
        "b.bin",
        bytes(11 * MIB as usize, 2),
        &plain,
    )
    .await;
    let regions = SigningRegions::default();
    let store = ObjectStore::new(s3_with(&f.sdk, Some(regions.clone())));
    let copier = Copier::new(store, tiny_thresholds(), 8);
    let spec = RunSpec {
        source: Location::new(&europe, ""),
        ..f.spec("", "from-eu/")
    };
    let summary = engine::run(&copier, spec, false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((summary.copied, summary.failed), (2, 0), "{summary:?}");
    assert_eq!(regions.of(&europe), vec!["eu-west-1".to_owned()]);
    assert_eq!(regions.of(&f.destination), vec!["us-east-1".to_owned()]);
}

#[tokio::test]
async fn a_head_refused_for_checksums_is_made_again_without_them() {
    let f = Fixture::new().await;
    f.put("k/a.bin", 100, 1, &Carried::sample()).await;
    f.put("k/b.bin", 11 * MIB as usize, 2, &Carried::sample())
        .await;
    let kms = ReplaceAnswers::refuse_checksum_mode();
    let copier = Copier::new(
        ObjectStore::new(s3_with(&f.sdk, Some(kms.clone()))),
        tiny_thresholds(),
        1,
    );
    let summary = engine::run(&copier, f.spec("k/", "kms/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((summary.copied, summary.failed), (2, 0), "{summary:?}");
    assert!(kms.replaced() >= 2);
    assert_eq!(
        carried(&f.client, &f.destination, "kms/b.bin").await,
        Carried::sample()
    );
}

const M: usize = MIB as usize;

/// The jobs a fan-out of `spec` would enqueue: the planner s3-fanout runs, page by page.
async fn jobs_planned(store: &ObjectStore, spec: RunSpec) -> (u64, u64, usize) {
    let mut planner = Planner::new(store, spec, None, Some(3));
    let (mut listed, mut skipped, mut jobs) = (0, 0, 0);
    while let Some(page) = planner.next_page().await.unwrap() {
        listed += page.listed;
        skipped += page.skipped;
        jobs += page.jobs.len();
    }
    (listed, skipped, jobs)
}

#[tokio::test]
async fn the_second_night_of_a_run_with_half_its_objects_in_parts_enqueues_no_job() {
    let f = Fixture::new().await;
    // Half in parts: equal parts and a short last one, unequal parts (first and last alone
    // would take them for equal ones), one part below the multipart threshold, parts with a
    // full-object checksum; half single PUTs.
    let in_parts: [(&str, Vec<usize>, bool); 4] = [
        ("parts/equal.bin", vec![5 * M, 5 * M, M], false),
        ("parts/unequal.bin", vec![6 * M, 5 * M, 7 * M, M], false),
        ("parts/one.bin", vec![2 * M], false),
        ("parts/crc.bin", vec![6 * M, 6 * M], true),
    ];
    for (i, (key, sizes, crc)) in in_parts.iter().enumerate() {
        let data = bytes(sizes.iter().sum(), i as u8);
        let etag = put_in_parts(&f.client, &f.source, key, &data, sizes, *crc).await;
        assert!(
            etag.ends_with(&format!("-{}\"", sizes.len())),
            "{key}: {etag}"
        );
    }
    for i in 0..4 {
        let key = format!("single/{i}.txt");
        let data = bytes(1000 + i, 10 + i as u8);
        put_object(&f.client, &f.source, &key, data, &Carried::default()).await;
    }

    // The first night copies everything, with the copier's defaults.
    let store = ObjectStore::from_sdk(&f.sdk);
    let copier = Copier::new(store.clone(), CopyOptions::default(), 16);
    let first = engine::run(&copier, f.spec("", "b/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((first.copied, first.failed), (8, 0), "{first:?}");
    // The single PUTs and the upload with a checksum: their copies are verified.
    assert_eq!(first.verified, 5, "{first:?}");
    for (i, (key, sizes, _)) in in_parts.iter().enumerate() {
        let copy = format!("b/{key}");
        assert_eq!(
            f.etag(&f.destination, &copy).await,
            f.etag(&f.source, key).await,
            "{key} was copied part for part"
        );
        assert_eq!(
            body(&f.client, &f.destination, &copy).await,
            bytes(sizes.iter().sum(), i as u8)
        );
    }

    // The second night: nothing changed, nothing to enqueue.
    let (listed, skipped, jobs) = jobs_planned(&store, f.spec("", "b/")).await;
    assert_eq!((listed, skipped, jobs), (8, 8, 0));
}

#[tokio::test]
async fn a_copy_whose_checksum_is_forced_to_mismatch_is_a_failure() {
    let f = Fixture::new().await;
    // A single PUT (the SDK sends a CRC32) and an upload in parts with a full-object CRC32.
    put_object(
        &f.client,
        &f.source,
        "one.txt",
        bytes(1000, 1),
        &Carried::default(),
    )
    .await;
    let data = bytes(11 * M, 2);
    put_in_parts(
        &f.client,
        &f.source,
        "parts.bin",
        &data,
        &[6 * M, 5 * M],
        true,
    )
    .await;

    let forge = ForgeChecksum::default();
    let forging = Copier::new(
        ObjectStore::new(s3_with(&f.sdk, Some(forge.clone()))),
        CopyOptions::default(),
        4,
    );
    let run = engine::run(&forging, f.spec("", "forged/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((run.copied, run.verified, run.failed), (0, 0, 2), "{run:?}");
    assert_eq!(forge.forged.load(std::sync::atomic::Ordering::Relaxed), 2);
    for failure in &run.failures {
        assert!(
            failure.error.contains("does not match its source"),
            "{failure:?}"
        );
        assert!(failure.error.contains("AAAAAAAAAAA="), "{failure:?}");
    }
    assert!(!run.succeeded());

    // Without the forgery, both copies are verified.
    let honest = Copier::new(ObjectStore::from_sdk(&f.sdk), CopyOptions::default(), 4);
    let run = engine::run(&honest, f.spec("", "honest/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((run.copied, run.verified, run.failed), (2, 2, 0), "{run:?}");
    assert!(run.to_json_line().contains("\"verified\":2"));
}
