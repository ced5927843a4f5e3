//! s3-copy: copies an S3 bucket or prefix into another from one machine, server side, on the
//! same engine as the s3-fanout and s3-copier Lambdas.

mod progress;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use fanout_copy_core::engine::{self, new_run_id};
use fanout_copy_core::location::check_pair;
use fanout_copy_core::plan::{
    parse_part_size, PartSize, DEFAULT_CONCURRENCY, DEFAULT_MULTIPART_THRESHOLD,
};
use fanout_copy_core::planner::{parse_rfc3339, RunSpec};
use fanout_copy_core::size::parse_size;
use fanout_copy_core::store::StorageClass;
use fanout_copy_core::{CopyOptions, Location, RunSummary, Thresholds};
use fanout_copy_s3::S3Store;

/// Copies every object under SOURCE to DESTINATION, server side: large objects in parallel
/// parts, with their headers, metadata and tags; objects whose copy is already current are
/// skipped (compared by content, not time). Exits non-zero if any object failed.
#[derive(Parser, Debug)]
#[command(name = "s3-copy", version)]
struct Args {
    /// Where to copy from: s3://bucket or s3://bucket/prefix
    #[arg(value_name = "SOURCE")]
    source: Location,
    /// Where to copy to: s3://bucket or s3://bucket/prefix (the source prefix is replaced by it)
    #[arg(value_name = "DESTINATION")]
    destination: Location,
    /// Copy requests in flight at once
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY, value_parser = concurrency)]
    concurrency: usize,
    /// Objects above this size are copied in parts (bytes, or KiB, MiB, GiB)
    #[arg(long, value_name = "SIZE", default_value_t = DEFAULT_MULTIPART_THRESHOLD, value_parser = parse_size)]
    multipart_threshold: u64,
    /// The part size, 5 MiB to 5 GiB (raised to keep within 10,000 parts); auto splits each
    /// object into as many parts of 5 to 16 MiB as there are free copy slots
    #[arg(long, value_name = "SIZE", default_value_t = PartSize::Auto, value_parser = parse_part_size)]
    part_size: PartSize,
    /// Only objects modified at or after this time, e.g. 2016-12-13T00:00:00Z
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    modified_since: Option<i64>,
    /// The destination storage class, e.g. STANDARD_IA
    #[arg(long, value_name = "CLASS", value_parser = str::parse::<StorageClass>)]
    storage_class: Option<StorageClass>,
    /// Encrypt the copies with this KMS key (SSE-KMS)
    #[arg(long, value_name = "KEY")]
    kms_key_id: Option<String>,
    /// List and plan only: copy nothing
    #[arg(long)]
    dry_run: bool,
    /// Copy objects in GLACIER or DEEP_ARCHIVE too, once restored (the others fail, saying so);
    /// by default they are counted as archived and left alone
    #[arg(long)]
    include_archived: bool,
    /// End the output with the summary as one line of JSON
    #[arg(long)]
    json: bool,
    /// Write every failed object to FILE as JSON Lines: key, version, size, error_class,
    /// message (an empty file when nothing failed)
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
}

fn concurrency(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a whole number from 1 to 4096")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let thresholds = Thresholds::new(args.multipart_threshold, args.part_size)
        .unwrap_or_else(|e| Args::command().error(ErrorKind::ValueValidation, e).exit());
    if let Err(overlap) = check_pair(&args.source, &args.destination) {
        Args::command()
            .error(ErrorKind::ArgumentConflict, overlap)
            .exit();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("s3-copy: could not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(copy(args, thresholds))
}

async fn copy(args: Args, thresholds: Thresholds) -> ExitCode {
    let sdk = fanout_aws::sdk_config().await;
    let options = CopyOptions {
        thresholds,
        storage_class: args.storage_class,
        kms_key_id: args.kms_key_id,
    };
    let copier = S3Store::from_sdk(&sdk).paced_copier(options, args.concurrency);
    let spec = RunSpec {
        run_id: new_run_id(),
        source: args.source,
        destination: args.destination,
        modified_since: args.modified_since,
        include_archived: args.include_archived,
    };
    let progress = progress::Bar::new(std::io::stderr().is_terminal());
    let result = engine::run(&copier, spec, args.dry_run, None, &progress).await;
    progress.finish();
    let (summary, status) = match result {
        Ok(summary) => {
            let status = if summary.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
            (summary, status)
        }
        Err(err) => {
            eprintln!("s3-copy: {err}");
            (*err.summary, ExitCode::FAILURE)
        }
    };
    report(&summary, args.json);
    if let Some(path) = &args.report {
        if let Err(err) = std::fs::write(path, summary.failure_report()) {
            eprintln!(
                "s3-copy: could not write the report {}: {err}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    status
}

fn report(summary: &RunSummary, json: bool) {
    if json {
        eprint!("{summary}");
        println!("{}", summary.to_json_line());
    } else {
        print!("{summary}");
    }
}
