//! Copies compared by content against a real AWS emulator: a source uploaded in parts is copied
//! part for part, so the second night of a run plans no job at all; a copy whose checksum is not
//! its source's is a failure.

use aws_config::SdkConfig;
use fanout_copy_core::engine::{self, Quiet};
use fanout_copy_core::planner::Planner;
use fanout_copy_core::size::MIB;
use fanout_copy_core::{Copier, CopyOptions, Location, RunSpec};
use fanout_copy_s3::S3Store as ObjectStore;
use fanout_tests::copy::{
    body, bytes, create_bucket, put_in_parts, put_object, s3, s3_with, Carried, ForgeChecksum,
};
use fanout_tests::Emulator;

const M: usize = MIB as usize;

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

    fn spec(&self, destination_prefix: &str) -> RunSpec {
        RunSpec {
            run_id: fanout_tests::unique("night"),
            source: Location::new(&self.source, ""),
            destination: Location::new(&self.destination, destination_prefix),
            modified_since: None,
            include_archived: false,
        }
    }

    async fn etag(&self, bucket: &str, key: &str) -> String {
        let head = self.client.head_object().bucket(bucket).key(key).send();
        head.await.unwrap().e_tag.unwrap_or_default()
    }
}

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
    let first = engine::run(&copier, f.spec("b/"), false, None, &Quiet)
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
    let (listed, skipped, jobs) = jobs_planned(&store, f.spec("b/")).await;
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
    let run = engine::run(&forging, f.spec("forged/"), false, None, &Quiet)
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
    let run = engine::run(&honest, f.spec("honest/"), false, None, &Quiet)
        .await
        .unwrap();
    assert_eq!((run.copied, run.verified, run.failed), (2, 2, 0), "{run:?}");
    assert!(run.to_json_line().contains("\"verified\":2"));
}
