//! scale-sim: the copy past one account's limits, simulated (docs/scale.md): 10 million
//! objects of 1 MB, a million of 100 MB and a thousand of 1 TB, enqueued by listing and from
//! an S3 Inventory report, copied by s3-copier at a maximum concurrency of 100, 1,000 and
//! 10,000 against S3's per-prefix request rates (`fanout_bench::scale_sim`).
//!
//! Prints Markdown tables; `--json FILE` writes every figure, `--chart FILE` the SVG chart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use fanout_bench::scale_sim::{
    enqueue::enqueue, run, Binding, CopySetup, Enqueue, Keys, Redelivery, RunResult, Workload,
};
use plotters::prelude::*;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The maximum concurrencies of s3-copier to run each workload at.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1_000, 10_000])]
    concurrency: Vec<usize>,
    /// Prefixes the keys are spread over (in key order), each a partition of its own.
    #[arg(long, default_value_t = 100)]
    prefixes: u64,
    /// Rows per S3 Inventory data file.
    #[arg(long, default_value_t = 1_000_000)]
    inventory_rows: u64,
    /// From the end of a publish to the jobs being visible to the event source, in ms.
    #[arg(long, default_value_t = 50)]
    delivery_ms: u64,
    /// The seed of the SDK's backoff jitter.
    #[arg(long, default_value_t = 2016)]
    seed: u64,
    /// Only these workloads (1mb, 100mb, 1tb).
    #[arg(long, value_delimiter = ',', value_parser = ["1mb", "100mb", "1tb"])]
    only: Vec<String>,
    /// Bring failed jobs back after the copy queue's visibility timeout only, as before
    /// s3-copier changed their visibility to its retry delay (for comparison).
    #[arg(long)]
    visibility_only: bool,
    /// Divide every workload's object count by this (a quicker look at the same shapes).
    #[arg(long, default_value_t = 1)]
    divide: u64,
    /// Write every figure to this file, as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the chart (SVG) to this file.
    #[arg(long)]
    chart: Option<PathBuf>,
}

const WORKLOAD_NAMES: [&str; 3] = ["1mb", "100mb", "1tb"];

fn duration(s: f64) -> String {
    if s < 100.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} s ({:.0} min)", s, s / 60.0)
    } else {
        format!("{:.0} s ({:.1} h)", s, s / 3600.0)
    }
}

fn dollars(x: f64) -> String {
    if x >= 100.0 {
        format!("${x:.0}")
    } else if x >= 0.01 {
        format!("${x:.2}")
    } else {
        format!("${x:.4}")
    }
}

fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn enqueue_label(r: &RunResult) -> String {
    match r.enqueue {
        Enqueue::Listing => "listing".into(),
        Enqueue::Inventory { .. } => format!("inventory, {} file(s)", r.enqueue.files(r.objects)),
    }
}

fn n(r: &RunResult, kind: &str) -> u64 {
    r.requests.get(kind).copied().unwrap_or(0)
}

fn main_table(rows: &[RunResult]) {
    println!("| Workload | max concurrency | enqueue | time to enqueue | time to copy | copied (dead-lettered) | peak concurrency | bound by | S3 requests (503s) | cost |");
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |");
    for r in rows {
        let bound = if r.redelivery_wait_s > 0.0 {
            format!(
                "{}; then {} waiting for {} failed jobs' redelivery",
                r.binding.label(),
                duration(r.redelivery_wait_s),
                count(r.redeliveries)
            )
        } else {
            r.binding.label().to_owned()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} ({}) | {} |",
            r.workload,
            count(r.concurrency as u64),
            enqueue_label(r),
            duration(r.enqueue_s),
            duration(r.copy_s),
            count(r.copied),
            count(r.dead_lettered),
            count(r.peak_concurrency as u64),
            bound,
            count(r.s3_requests()),
            count(r.throttled),
            dollars(r.total_cost()),
        );
    }
}

fn requests_table(rows: &[RunResult]) {
    println!("| Workload | max concurrency | enqueue | CopyObject | UploadPartCopy | create + complete | HEAD | LIST (objects, parts) | GET | PublishBatch | SQS | Lambda invocations (GB-s) | DynamoDB | 503 SlowDown | given up, redelivered, dead-lettered |");
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} + {} | {} | {} | {} | {} ({:.0}) | {} | {} | {}, {}, {} |",
            r.workload,
            count(r.concurrency as u64),
            r.enqueue.label(),
            count(n(r, "CopyObject")),
            count(n(r, "UploadPartCopy")),
            count(n(r, "CreateMultipartUpload") + n(r, "CompleteMultipartUpload")),
            count(n(r, "HeadObject")),
            count(n(r, "ListObjectsV2")),
            count(n(r, "ListParts")),
            count(n(r, "GetObject")),
            count(n(r, "SNS PublishBatch")),
            count(
                n(r, "SQS ReceiveMessage")
                    + n(r, "SQS DeleteMessageBatch")
                    + n(r, "SQS ChangeMessageVisibility")
            ),
            count(n(r, "Lambda invocation")),
            r.lambda_gb_s,
            count(n(r, "DynamoDB write") + n(r, "DynamoDB read")),
            count(r.throttled),
            count(r.given_up),
            count(r.redeliveries),
            count(r.dead_lettered),
        );
    }
}

fn cost_table(rows: &[RunResult]) {
    println!("| Workload | max concurrency | enqueue | S3 | Lambda | SQS | SNS | DynamoDB | total | per TB copied |");
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let c = |service: &str| r.cost.get(service).copied().unwrap_or(0.0);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            count(r.concurrency as u64),
            r.enqueue.label(),
            dollars(c("S3")),
            dollars(c("Lambda")),
            dollars(c("SQS")),
            dollars(c("SNS")),
            dollars(c("DynamoDB")),
            dollars(r.total_cost()),
            dollars(r.total_cost() / (r.copied as f64 * (r.bytes / r.objects) as f64) * 1e12),
        );
    }
}

fn limits_table(rows: &[RunResult]) {
    println!("| Workload | max concurrency | enqueue | seconds by what held them back | busiest prefix, writes/s (reads/s) | lowest pace | continuations | longest invocation | PublishBatch/s at most |");
    println!("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let seconds: Vec<String> = (r.seconds.iter())
            .map(|(b, s)| format!("{} {}", b.label(), count(*s)))
            .collect();
        println!(
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} |",
            r.workload,
            count(r.concurrency as u64),
            r.enqueue.label(),
            seconds.join(", "),
            count(u64::from(r.peak_writes_per_prefix)),
            count(u64::from(r.peak_reads_per_prefix)),
            r.lowest_pace,
            count(r.continuations),
            duration(r.longest_invocation_s),
            count(r.peak_publish_per_second),
        );
    }
}

fn to_json(r: &RunResult) -> Value {
    json!({
        "workload": r.workload,
        "objects": r.objects,
        "bytes": r.bytes,
        "max_concurrency": r.concurrency,
        "enqueue": r.enqueue.label(),
        "inventory_files": r.enqueue.files(r.objects),
        "enqueue_s": r.enqueue_s,
        "copy_s": r.copy_s,
        "copied": r.copied,
        "copied_once": r.copied_once,
        "bound_by": r.binding.label(),
        "redelivery_wait_s": r.redelivery_wait_s,
        "seconds_by_binding": r.seconds.iter().map(|(b, s)| (b.label().to_owned(), json!(s))).collect::<serde_json::Map<_, _>>(),
        "requests": r.requests,
        "throttled": r.throttled,
        "given_up": r.given_up,
        "redeliveries": r.redeliveries,
        "dead_lettered": r.dead_lettered,
        "continuations": r.continuations,
        "copier_invocations": r.copier_invocations,
        "peak_concurrency": r.peak_concurrency,
        "execution_environments": r.environments,
        "longest_invocation_s": r.longest_invocation_s,
        "invocations_over_timeout": r.over_timeout,
        "lambda_gb_s": r.lambda_gb_s,
        "peak_writes_per_prefix": r.peak_writes_per_prefix,
        "peak_reads_per_prefix": r.peak_reads_per_prefix,
        "lowest_pace": r.lowest_pace,
        "peak_publish_batch_per_s": r.peak_publish_per_second,
        "cost_usd": r.cost,
        "total_cost_usd": r.total_cost(),
    })
}

/// Time to copy by run, listing beside inventory, on a log scale; a tick for the time to
/// enqueue.
fn chart(rows: &[RunResult], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut groups: Vec<(String, Option<&RunResult>, Option<&RunResult>)> = Vec::new();
    for r in rows {
        let label = format!("{} @ {}", r.workload, count(r.concurrency as u64));
        let at = match groups.iter().position(|(l, _, _)| *l == label) {
            Some(at) => at,
            None => {
                groups.push((label, None, None));
                groups.len() - 1
            }
        };
        match r.enqueue {
            Enqueue::Listing => groups[at].1 = Some(r),
            Enqueue::Inventory { .. } => groups[at].2 = Some(r),
        }
    }
    let longest = rows.iter().map(|r| r.copy_s).fold(1.0, f64::max);
    let top = 10f64.powf(longest.log10().ceil() + 0.3);
    let root = SVGBackend::new(path, (1100, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Time to copy, by workload @ maximum concurrency (log scale; tick: time to enqueue)",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(70)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..groups.len() as f64, (1f64..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("seconds")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let listing = RGBColor(70, 110, 180);
    let inventory = RGBColor(230, 140, 40);
    for (i, (_, l, inv)) in groups.iter().enumerate() {
        let x = i as f64;
        for (r, from, color) in [(l, 0.15, listing), (inv, 0.5, inventory)] {
            let Some(r) = r else { continue };
            let (left, right) = (x + from, x + from + 0.33);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(left, 1.0), (right, r.copy_s.max(1.0))],
                color.filled(),
            )))?;
            let e = r.enqueue_s.max(1.0);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(left, e), (right, e)],
                BLACK.stroke_width(2),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{:.0}", r.copy_s),
                (left, r.copy_s.max(1.0) * 1.15),
                ("sans-serif", 12),
            )))?;
        }
    }
    for (i, (label, _, _)) in groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 1.0));
        let (workload, concurrency) = label.split_once(" @ ").unwrap_or((label, ""));
        for (line, text) in [workload, &format!("max {concurrency}")].iter().enumerate() {
            root.draw(&Text::new(
                text.to_string(),
                (
                    px - 4 * text.chars().count() as i32,
                    py + 10 + 18 * line as i32,
                ),
                ("sans-serif", 14),
            ))?;
        }
    }
    for (row, (name, color)) in [("listing", listing), ("inventory", inventory)]
        .into_iter()
        .enumerate()
    {
        let y = 50 + 22 * row as i32;
        root.draw(&Rectangle::new([(120, y), (136, y + 14)], color.filled()))?;
        root.draw(&Text::new(name, (142, y), ("sans-serif", 14)))?;
    }
    root.present()?;
    Ok(())
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    let delivery = Duration::from_millis(args.delivery_ms);
    let redelivery = if args.visibility_only {
        Redelivery::VisibilityTimeout
    } else {
        Redelivery::RetryDelay
    };
    let mut rows = Vec::new();
    for (name, mut workload) in WORKLOAD_NAMES.iter().zip(Workload::standard()) {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        workload.objects = (workload.objects / args.divide.max(1)).max(1);
        let keys = Keys::new(workload.objects, args.prefixes);
        let timing = CopySetup::deployed(1, delivery, args.seed).enqueue_timing();
        for mode in [
            Enqueue::Listing,
            Enqueue::Inventory {
                rows_per_file: args.inventory_rows,
            },
        ] {
            let enqueued = enqueue(&workload, keys, mode, &timing);
            for &concurrency in &args.concurrency {
                let setup = CopySetup {
                    redelivery,
                    ..CopySetup::deployed(concurrency, delivery, args.seed)
                };
                let result = run(&workload, keys, &enqueued, &setup);
                eprintln!(
                    "scale-sim: {} at {} by {}: {:.0} s simulated, {:.1} s of CPU so far",
                    workload.name,
                    concurrency,
                    mode.label(),
                    result.copy_s,
                    started.elapsed().as_secs_f64()
                );
                rows.push(result);
            }
        }
    }
    // By workload, then concurrency, listing before inventory.
    let standard = Workload::standard();
    rows.sort_by_key(|r| {
        let workload = standard.iter().position(|w| r.workload == w.name);
        (workload, r.concurrency, r.enqueue != Enqueue::Listing)
    });
    println!(
        "## Scale simulation: {} prefixes, inventory files of {} rows, {} ms delivery, failed jobs back after their {}\n",
        args.prefixes,
        count(args.inventory_rows),
        args.delivery_ms,
        redelivery.label(),
    );
    main_table(&rows);
    println!("\n### Requests\n");
    requests_table(&rows);
    println!("\n### Cost (us-east-1 list prices)\n");
    cost_table(&rows);
    println!("\n### What held each run back\n");
    limits_table(&rows);
    let failed: Vec<&RunResult> = rows
        .iter()
        .filter(|r| !r.copied_once && r.dead_lettered == 0)
        .collect();
    if let Some(path) = &args.chart {
        if let Err(error) = chart(&rows, path) {
            eprintln!("scale-sim: cannot draw {}: {error}", path.display());
            std::process::exit(1);
        }
    }
    if let Some(path) = &args.json {
        let report = json!({
            "settings": {
                "prefixes": args.prefixes, "inventory_rows_per_file": args.inventory_rows,
                "delivery_ms": args.delivery_ms, "seed": args.seed, "divide": args.divide,
                "failed_jobs_back_after": redelivery.label(),
                "writes_per_prefix_s": fanout_bench::scale_sim::S3_WRITES_PER_PREFIX,
                "reads_per_prefix_s": fanout_bench::scale_sim::S3_READS_PER_PREFIX,
                "bindings": Binding::ALL.iter().map(|b| b.label()).collect::<Vec<_>>(),
            },
            "runs": rows.iter().map(to_json).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&report).expect("JSON");
        if let Err(error) = std::fs::write(path, text + "\n") {
            eprintln!("scale-sim: cannot write {}: {error}", path.display());
            std::process::exit(1);
        }
    }
    eprintln!(
        "scale-sim: {} runs in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        for r in failed {
            eprintln!(
                "scale-sim: {} at {} by {}: {} of {} objects copied exactly once",
                r.workload,
                r.concurrency,
                r.enqueue.label(),
                r.copied,
                r.objects
            );
        }
        std::process::exit(1);
    }
}
