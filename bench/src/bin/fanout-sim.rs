//! fanout-sim: the Lambda fan-out and the s3-copy engine on the copy model, in virtual time
//! (docs/performance.md, "S3 bulk copier" (c) and (d)). The copy code is fanout-copy-core's own;
//! S3, the queue and Lambda are simulated (`fanout_bench::fanout_sim`).
//!
//! Prints Markdown tables and text bar charts; `--json FILE` writes every figure.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fanout_bench::fanout_sim::{
    engine_run, lambda_run, objects, paused_runtime, sizes, split, Lambda, Model, Outcome,
};
use fanout_copy_core::copier::CopyOptions;
use fanout_copy_core::plan::DEFAULT_CONCURRENCY;
use fanout_copy_core::size::TIB;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The copier's maximum concurrency (the event source's MaximumConcurrency).
    #[arg(long, default_value_t = 1000)]
    max_concurrency: usize,
    /// From the end of a publish to the invocation that gets the job, in milliseconds.
    #[arg(long, default_value_t = 50)]
    delivery_ms: u64,
    /// The seed of the backfill's object sizes.
    #[arg(long, default_value_t = 2016)]
    seed: u64,
    /// Only (c), the 5 TiB object, or only (d), the original's workloads.
    #[arg(long, value_parser = ["c", "d"])]
    only: Option<String>,
    /// Write every figure to this file, as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The original's nightly run, copied one object after another (its 2016 write-up).
const ORIGINAL_SERIAL: Duration = Duration::from_secs(105 * 60);

struct Row {
    name: String,
    outcome: Outcome,
}

fn simulate<F: std::future::Future<Output = Outcome>>(run: F) -> Outcome {
    paused_runtime().block_on(run)
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.2} s")
    }
}

fn dollars(x: f64) -> String {
    if x >= 0.01 {
        format!("${x:.2}")
    } else {
        format!("${x:.4}")
    }
}

fn requests(outcome: &Outcome) -> String {
    let r = &outcome.requests;
    let n = |kind: &str| r.get(kind).copied().unwrap_or(0);
    let mut parts = Vec::new();
    for (kind, short) in [
        ("UploadPartCopy", "UploadPartCopy"),
        ("CopyObject", "CopyObject"),
        ("CreateMultipartUpload", "Create"),
        ("CompleteMultipartUpload", "Complete"),
        ("ListParts", "ListParts"),
        ("HeadObject", "HEAD"),
        ("ListObjectsV2", "List"),
    ] {
        if n(kind) > 0 {
            parts.push(format!("{} {short}", n(kind)));
        }
    }
    parts.join(", ")
}

fn others(outcome: &Outcome) -> String {
    let r = &outcome.requests;
    let n = |kind: &str| r.get(kind).copied().unwrap_or(0);
    if outcome.invocations == 0 {
        return "none (one process)".into();
    }
    format!(
        "{} invocations, {} PublishBatch, {} SQS, {} DynamoDB",
        n("Lambda invocation"),
        n("SNS PublishBatch"),
        n("SQS ReceiveMessage") + n("SQS DeleteMessageBatch"),
        n("DynamoDB write") + n("DynamoDB read"),
    )
}

fn table(rows: &[Row], limit: Duration) {
    println!(
        "| Run | time | × the limit | copier invocations (most at once, longest) | S3 requests | S3 cost | SNS + SQS + Lambda + DynamoDB | their cost |"
    );
    println!("| --- | ---: | ---: | --- | --- | ---: | --- | ---: |");
    for Row { name, outcome } in rows {
        let cost = outcome.cost();
        let s3 = cost.get("S3").copied().unwrap_or(0.0);
        let rest = (cost.iter())
            .filter(|(k, _)| **k != "S3")
            .fold(0.0, |sum, (_, v)| sum + v);
        let invocations = if outcome.invocations == 0 {
            "–".to_owned()
        } else {
            format!(
                "{} ({}, {})",
                outcome.invocations,
                outcome.most_at_once,
                seconds(outcome.longest_invocation)
            )
        };
        println!(
            "| {name} | {} | {:.1}× | {invocations} | {} = {} | {} | {} | {} |",
            seconds(outcome.time),
            outcome.time.as_secs_f64() / limit.as_secs_f64(),
            outcome.s3_requests(),
            requests(outcome),
            dollars(s3),
            others(outcome),
            dollars(rest),
        );
    }
}

fn bars(title: &str, rows: &[(String, Duration)]) {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let longest = rows
        .iter()
        .map(|(_, d)| d.as_secs_f64())
        .fold(0.0, f64::max);
    println!("```text\n{title}");
    for (name, d) in rows {
        let n = (d.as_secs_f64() / longest * 50.0).round().max(1.0) as usize;
        println!(
            "{name:width$}  {:50}  {}",
            "#".repeat(n),
            seconds(*d).trim_end_matches(" s")
        );
    }
    println!("```");
}

fn check(name: &str, outcome: &Outcome) {
    if !outcome.verified || !outcome.errors.is_empty() || outcome.copied != outcome.objects {
        eprintln!(
            "fanout-sim: {name}: the copy did not complete as it should: {} of {} copied, verified {}, errors {:?}",
            outcome.copied, outcome.objects, outcome.verified, outcome.errors
        );
        std::process::exit(1);
    }
}

fn to_json(rows: &[Row], limit: Duration) -> Value {
    Value::Array(
        rows.iter()
            .map(|Row { name, outcome }| {
                json!({
                    "run": name,
                    "seconds": outcome.time.as_secs_f64(),
                    "times_limit": outcome.time.as_secs_f64() / limit.as_secs_f64(),
                    "objects": outcome.objects,
                    "bytes": outcome.bytes,
                    "copied": outcome.copied,
                    "invocations": outcome.invocations,
                    "continuations": outcome.continuations,
                    "most_at_once": outcome.most_at_once,
                    "longest_invocation_s": outcome.longest_invocation.as_secs_f64(),
                    "lambda_gb_s": outcome.gb_seconds,
                    "requests": outcome.requests,
                    "cost_usd": outcome.cost(),
                    "verified": outcome.verified,
                })
            })
            .collect(),
    )
}

fn main() {
    let args = Args::parse();
    let model = Model::standard();
    let delivery = Duration::from_millis(args.delivery_ms);
    let deployed = Lambda::deployed(args.max_concurrency, delivery);
    let cli_options = CopyOptions::default();
    let mut report = serde_json::Map::new();
    report.insert(
        "model".into(),
        json!({"latency_ms": 5, "copy_overhead_ms": 35, "copy_bandwidth_mib_s": 75,
               "delivery_ms": args.delivery_ms, "max_concurrency": args.max_concurrency,
               "per_instance": deployed.per_instance, "batch_size": deployed.batch_size,
               "timeout_s": deployed.timeout.as_secs(), "seed": args.seed}),
    );

    if args.only.as_deref() != Some("d") {
        let object = vec![("huge.bin".to_owned(), 5 * TIB)];
        let limit = model.limit(5 * TIB);
        let lambda = simulate(lambda_run(model, &deployed, &object));
        check("(c) Lambda", &lambda);
        let engine = simulate(engine_run(
            model,
            cli_options.clone(),
            DEFAULT_CONCURRENCY,
            &object,
        ));
        check("(c) s3-copy", &engine);
        let part = (5 * TIB).div_ceil(10_000);
        let other = split(model, &deployed, 5 * TIB, part);
        println!("## (c) one 5 TiB object\n");
        println!(
            "The model's limit: {} ({} parts of {} bytes)\n",
            seconds(limit),
            10_000,
            part
        );
        let rows = vec![
            Row {
                name: "Lambda fan-out, one copier at a time with continuations".into(),
                outcome: lambda,
            },
            Row {
                name: format!("s3-copy, one process, {DEFAULT_CONCURRENCY} in flight"),
                outcome: engine,
            },
        ];
        table(&rows, limit);
        println!(
            "\nSplit into part jobs (arithmetic): {} ({:.1}× the limit), {} copier invocations, {} PublishBatch, {} wave(s), {} counter writes, {:.0} GB-s of Lambda; besides S3, {}\n",
            seconds(other.time),
            other.time.as_secs_f64() / limit.as_secs_f64(),
            other.invocations,
            other.publish_batches,
            other.waves,
            other.counter_writes,
            other.gb_seconds,
            dollars(other.cost_besides_s3),
        );
        bars(
            "One 5 TiB object on the model (s)",
            &[
                ("continuations (the project)".into(), rows[0].outcome.time),
                ("s3-copy, one process".into(), rows[1].outcome.time),
                ("split into part jobs".into(), other.time),
                ("model limit".into(), limit),
            ],
        );
        report.insert("c_limit_s".into(), json!(limit.as_secs_f64()));
        report.insert("c".into(), to_json(&rows, limit));
        report.insert(
            "c_split".into(),
            json!({"seconds": other.time.as_secs_f64(), "invocations": other.invocations,
                   "publish_batches": other.publish_batches, "waves": other.waves,
                   "counter_writes": other.counter_writes, "lambda_gb_s": other.gb_seconds,
                   "cost_besides_s3_usd": other.cost_besides_s3}),
        );
    }

    if args.only.as_deref() != Some("c") {
        let workloads = [
            ("nightly", objects("nightly/", &[700_000_000; 250])),
            (
                "backfill",
                objects("backfill/", &sizes(1500, 1_000_000_000_000, args.seed)),
            ),
        ];
        let mut all = serde_json::Map::new();
        for (name, objects) in &workloads {
            let largest = objects.iter().map(|(_, s)| *s).max().unwrap_or(0);
            let limit = model.limit(largest);
            let mut rows = Vec::new();
            for (batch, ramp) in [(10, false), (1, false), (10, true), (1, true)] {
                let lambda = Lambda {
                    batch_size: batch,
                    ramp,
                    ..deployed.clone()
                };
                let outcome = simulate(lambda_run(model, &lambda, objects));
                let label = format!(
                    "Lambda, batches of {batch}, {}",
                    if ramp {
                        "the event source's ramp"
                    } else {
                        "all 1,000 at once"
                    }
                );
                check(&label, &outcome);
                rows.push(Row {
                    name: label,
                    outcome,
                });
            }
            let engine = simulate(engine_run(
                model,
                cli_options.clone(),
                DEFAULT_CONCURRENCY,
                objects,
            ));
            check("s3-copy", &engine);
            rows.push(Row {
                name: format!("s3-copy, one process, {DEFAULT_CONCURRENCY} in flight"),
                outcome: engine,
            });
            let bytes: u64 = objects.iter().map(|(_, s)| s).sum();
            println!(
                "\n## (d) {name}: {} objects, {} bytes, largest {} (limit {})\n",
                objects.len(),
                bytes,
                largest,
                seconds(limit)
            );
            table(&rows, limit);
            if *name == "nightly" {
                println!(
                    "| the original, one object after another (2016) | {} | {:.0}× | | | | | |",
                    seconds(ORIGINAL_SERIAL),
                    ORIGINAL_SERIAL.as_secs_f64() / limit.as_secs_f64()
                );
            }
            println!();
            let mut chart: Vec<(String, Duration)> = (rows.iter())
                .map(|row| (row.name.clone(), row.outcome.time))
                .collect();
            chart.push(("model limit".into(), limit));
            bars(&format!("(d) {name} on the model (s)"), &chart);
            all.insert(
                (*name).into(),
                json!({"limit_s": limit.as_secs_f64(), "runs": to_json(&rows, limit)}),
            );
        }
        report.insert("d".into(), Value::Object(all));
    }

    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&Value::Object(report)).expect("JSON");
        if let Err(error) = std::fs::write(&path, text + "\n") {
            eprintln!("fanout-sim: cannot write {}: {error}", path.display());
            std::process::exit(1);
        }
    }
}
