//! The copy job as s3-copier reads it. Never a panic; a job that reads round-trips.
#![no_main]

use fanout_copy_core::CopyJob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    if let Ok(job) = CopyJob::from_json(body) {
        let again = CopyJob::from_json(&job.to_json()).expect("a job reads back");
        assert_eq!(again.to_json(), job.to_json());
    }
});
