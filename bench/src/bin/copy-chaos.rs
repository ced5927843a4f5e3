//! copy-chaos: a backup run with AWS misbehaving. The real `s3-fanout` and a pool of real
//! `s3-copier` processes run under the fake Lambda Runtime API against moto, behind the fault
//! proxy (10 % `SlowDown`, 2 % 500s by default, and the emulator gone for 5 s in the middle);
//! the copy queue is fed by the SQS event source mapping played for real (batch item failures,
//! the visibility timeout, a dead-letter queue after 5 receives, as the template has it). The
//! visibility timeout is 10 s, not the template's 90 minutes, so that a job whose delivery is
//! slowed by the faults is also delivered again while the first delivery still runs.
//!
//! A few source objects are deleted after the listing and before the copy, as happens when
//! a backup runs while people work: those must be reported failed, with their reason.
//!
//! The run must keep the copier's promises: every object copied with identical bytes, metadata
//! and tags, or listed in the run's failure report with its reason, never silently missing;
//! every job in the dead-letter queue reported; no multipart upload left open; the run announced
//! complete; no function process crashed or panicked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use bytes::Bytes;
use clap::Parser;
use fanout_bench::faults::FaultPlan;
use fanout_bench::function::{stop, Function};
use fanout_bench::outcome::{Outcome, RunOptions};
use fanout_bench::proxy::{print_faults, Proxy, ProxyConfig};
use fanout_bench::seeded::SplitMix;
use fanout_bench::sqs_source::{wait_for_drain, Pollers, Queue};
use fanout_tests::copy::{
    body, carried, create_bucket, create_runs_table, open_uploads, put_object, s3, Carried,
};
use fanout_tests::runtime_api::RuntimeApi;
use fanout_tests::{sdk_config, workspace_root, Emulator};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const MIB: usize = 1024 * 1024;
/// The copier's function timeout in the template.
const COPIER_TIMEOUT: Duration = Duration::from_secs(900);
/// The copy queue's receives before the dead-letter queue (the template's maxReceiveCount).
const MAX_RECEIVES: u32 = 5;

#[derive(Debug, Parser)]
#[command(about = "A backup run through s3-fanout and s3-copier with faults injected into AWS")]
struct Args {
    /// Source objects.
    #[arg(long, default_value_t = 200)]
    objects: usize,
    /// Of which this many are large enough for a multipart copy.
    #[arg(long, default_value_t = 20)]
    multipart: usize,
    /// The size of each multipart object, in MiB (copied in 5 MiB parts above 8 MiB).
    #[arg(long, default_value_t = 12)]
    multipart_mib: usize,
    /// Of the others, this many are deleted from the source after the listing.
    #[arg(long, default_value_t = 3)]
    vanish: usize,
    /// s3-copier processes.
    #[arg(long, default_value_t = 4)]
    copiers: usize,
    /// Faults injected into the functions' AWS requests (see docs/reliability.md).
    #[arg(long, default_value = "throttle=0.1,500=0.02")]
    faults: FaultPlan,
    /// The copy queue's visibility timeout: a failed job, or one still being copied, comes back
    /// after this.
    #[arg(long, default_value_t = 10)]
    visibility_timeout_s: i32,
    /// How long the run may take to be announced complete.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Where the binaries are (default: target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the functions' logs go; when given, a panic in them fails the run.
    #[arg(long)]
    log: Option<PathBuf>,
    #[command(flatten)]
    run: RunOptions,
}

/// Object `index`'s bytes: a sequence no other object or offset shares, so that a part copied
/// to the wrong place, or from the wrong object, is seen.
fn content(index: usize, len: usize) -> Vec<u8> {
    let mut random = SplitMix::new((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&random.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One source object.
struct Object {
    key: String,
    index: usize,
    len: usize,
    carried: Carried,
}

fn objects(args: &Args) -> Vec<Object> {
    (0..args.objects)
        .map(|index| {
            let multipart = index < args.multipart;
            let len = if multipart {
                args.multipart_mib * MIB
            } else {
                1 + (index * 7919) % (256 * 1024)
            };
            Object {
                key: format!(
                    "chaos/{}/{index:04}.bin",
                    if multipart { "large" } else { "small" }
                ),
                index,
                len,
                carried: if index % 3 == 0 {
                    Carried::sample()
                } else {
                    Carried::default()
                },
            }
        })
        .collect()
}

/// One line of the run's failure report.
#[derive(Debug, serde::Deserialize)]
struct Failed {
    key: String,
    error_class: String,
    message: String,
}

struct World {
    _emulator: Emulator,
    direct: SdkConfig,
    source: String,
    destination: String,
    queue: Queue,
    dead_letters: Queue,
    events: Queue,
    fanout_proxy: Arc<Proxy>,
    copier_proxy: Arc<Proxy>,
    fanout_api: Arc<RuntimeApi>,
    copier_api: Arc<RuntimeApi>,
    processes: Vec<Child>,
}

impl Drop for World {
    fn drop(&mut self) {
        for child in &mut self.processes {
            stop(child);
        }
    }
}

async fn topic(direct: &SdkConfig, name: &str) -> Result<String, Failure> {
    Ok(aws_sdk_sns::Client::new(direct)
        .create_topic()
        .name(format!("{name}-{}", std::process::id()))
        .send()
        .await?
        .topic_arn
        .ok_or("moto created a topic without an ARN")?)
}

async fn proxy(emulator: &Emulator, faults: FaultPlan) -> Result<Arc<Proxy>, Failure> {
    Ok(Arc::new(
        Proxy::start(ProxyConfig {
            listen: "127.0.0.1:0".parse()?,
            upstream: emulator.endpoint.parse()?,
            latency: Duration::ZERO,
            copy: Default::default(),
            overlap: false,
            record: false,
            faults,
        })
        .await?,
    ))
}

async fn set_up(args: &Args, objects: &[Object]) -> Result<World, Failure> {
    let bin_dir = args
        .bin_dir
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release"));
    let binary = |name: &'static str| {
        Function::new(bin_dir.join(name), name).map(|mut function| {
            function.log = args.log.clone();
            function
        })
    };
    let (fanout, copier) = (binary("s3-fanout")?, binary("s3-copier")?);
    eprintln!("starting moto server…");
    let emulator = Emulator::start();
    let direct = sdk_config(&emulator.endpoint).await;
    let (source, destination) = (
        create_bucket(&direct, "chaos-source").await,
        create_bucket(&direct, "chaos-backup").await,
    );
    let runs_table = create_runs_table(&direct).await;
    let jobs_topic = topic(&direct, "chaos-jobs").await?;
    let events_topic = topic(&direct, "chaos-run-events").await?;
    let (queue, dead_letters) = Queue::subscribed(
        &direct,
        &jobs_topic,
        true,
        args.visibility_timeout_s,
        Some(MAX_RECEIVES),
    )
    .await?;
    let (events, _) = Queue::subscribed(&direct, &events_topic, true, 30, None).await?;
    eprintln!("putting {} objects in the source…", objects.len());
    let client = s3(&direct);
    for object in objects {
        put_object(
            &client,
            &source,
            &object.key,
            content(object.index, object.len),
            &object.carried,
        )
        .await;
    }
    let fanout_proxy = proxy(&emulator, args.faults.clone()).await?;
    let copier_proxy = proxy(&emulator, args.faults.reseeded()).await?;
    let report_url = format!("s3://{destination}/fanout-reports");
    let fanout = fanout
        .env("AWS_ENDPOINT_URL", fanout_proxy.url())
        .env("COPY_TOPIC_ARN", &jobs_topic)
        .env("COPY_RUNS_TABLE", &runs_table)
        .env("RUN_EVENTS_TOPIC_ARN", &events_topic)
        .env("COPY_REPORT_URL", &report_url);
    let copier = copier
        .env("AWS_ENDPOINT_URL", copier_proxy.url())
        .env("COPY_TOPIC_ARN", &jobs_topic)
        .env("COPY_RUNS_TABLE", &runs_table)
        .env("RUN_EVENTS_TOPIC_ARN", &events_topic)
        .env("COPY_REPORT_URL", &report_url)
        .env("COPY_MULTIPART_THRESHOLD", "8MiB")
        .env("COPY_PART_SIZE", "5MiB")
        .env("COPY_MAX_RECEIVES", MAX_RECEIVES.to_string())
        // Failed jobs come back after 1 s, 2 s, 4 s…: the run's minutes, not the template's.
        .env("COPY_RETRY_BASE_SECONDS", "1");
    let (fanout_api, copier_api) = (RuntimeApi::start().await?, RuntimeApi::start().await?);
    let mut processes = vec![fanout.spawn(&fanout_api)?];
    for _ in 0..args.copiers.max(1) {
        processes.push(copier.spawn(&copier_api)?);
    }
    Ok(World {
        _emulator: emulator,
        direct,
        source,
        destination,
        queue,
        dead_letters: dead_letters.ok_or("no dead-letter queue")?,
        events,
        fanout_proxy,
        copier_proxy,
        fanout_api: Arc::new(fanout_api),
        copier_api: Arc::new(copier_api),
        processes,
    })
}

/// Starts the run as an operator would: the manual event, invoked again (same run id) until
/// it answers; follows its continuations. Returns what it listed and enqueued.
async fn fan_out(world: &World, run_id: &str) -> Result<(u64, u64, u32), Failure> {
    let mut event = serde_json::json!({
        "source": format!("s3://{}/", world.source),
        "destination": format!("s3://{}/", world.destination),
        "run_id": run_id,
    });
    let (mut listed, mut enqueued, mut attempts) = (0, 0, 0);
    loop {
        attempts += 1;
        let outcome = world
            .fanout_api
            .invoke(Bytes::from(event.to_string()), COPIER_TIMEOUT)
            .await?;
        if outcome.is_error {
            eprintln!(
                "s3-fanout failed ({}); invoking it again",
                String::from_utf8_lossy(&outcome.body)
            );
            if attempts > 10 {
                return Err("s3-fanout failed 10 times".into());
            }
            continue;
        }
        let answer: serde_json::Value = serde_json::from_slice(&outcome.body)?;
        listed += answer["listed"].as_u64().unwrap_or(0);
        enqueued += answer["enqueued"].as_u64().unwrap_or(0);
        match answer.get("continuation") {
            Some(next) if !next.is_null() => event = next.clone(),
            _ => return Ok((listed, enqueued, attempts)),
        }
    }
}

/// Waits for the run's completion event on the events queue.
async fn completion(
    world: &World,
    run_id: &str,
    timeout: Duration,
) -> Result<Option<serde_json::Value>, Failure> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        for body in world.events.drain().await? {
            let event: serde_json::Value = serde_json::from_str(&body)?;
            if event["run_id"] == run_id && event["status"] == "complete" {
                return Ok(Some(event));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(None)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    if args.vanish + args.multipart > args.objects {
        return Err("--multipart and --vanish add up to more than --objects".into());
    }
    let objects = objects(&args);
    let world = set_up(&args, &objects).await?;
    tokio::time::timeout(Duration::from_secs(20), world.fanout_api.first_poll()).await?;
    tokio::time::timeout(Duration::from_secs(20), world.copier_api.first_poll()).await?;
    let started = Instant::now();
    let run_id = format!("chaos-{}", std::process::id());
    let (listed, enqueued, fanout_attempts) = fan_out(&world, &run_id).await?;
    eprintln!("s3-fanout listed {listed} objects and enqueued {enqueued} jobs");

    // Deleted after the listing, before the copy.
    let client = s3(&world.direct);
    let vanished: BTreeSet<String> = objects[args.multipart..args.multipart + args.vanish]
        .iter()
        .map(|o| o.key.clone())
        .collect();
    for key in &vanished {
        client
            .delete_object()
            .bucket(&world.source)
            .key(key)
            .send()
            .await?;
    }

    let pids: Vec<(&str, u32)> = world
        .processes
        .iter()
        .enumerate()
        .map(|(i, c)| (if i == 0 { "s3-fanout" } else { "s3-copier" }, c.id()))
        .collect();
    let sampler = args.run.sampler(pids);
    let pollers = Pollers::start(
        args.copiers,
        &world.queue,
        &world.copier_api,
        COPIER_TIMEOUT,
    );
    let consumed = pollers.consumed.clone();
    let outage = args
        .run
        .outage([world.fanout_proxy.clone(), world.copier_proxy.clone()].to_vec());
    eprintln!("copying…");
    let copying = Instant::now();
    let event = completion(&world, &run_id, Duration::from_secs(args.timeout_s)).await?;
    let elapsed = started.elapsed();
    let outage_missed = args
        .run
        .down_at_s
        .is_some_and(|at| copying.elapsed().as_secs_f64() < at);
    let drained = wait_for_drain(&world.queue, &consumed, Duration::from_secs(60)).await?;
    pollers.stop().await?;
    if let Some(outage) = outage {
        outage.await??;
    }
    let memory = sampler.stop().await;

    let mut outcome = Outcome::default();
    if outage_missed {
        outcome.fail("the run completed before the outage began: nothing was tested".into());
    }
    let report = check(
        &world,
        &objects,
        &vanished,
        &run_id,
        event.as_ref(),
        &mut outcome,
    )
    .await?;
    if drained.is_none() {
        outcome.fail("the copy queue was not emptied".into());
    }

    println!(
        "backup under faults: {} objects ({} multipart of {} MiB, {} deleted after listing), \
         {} s3-copier processes; faults {}",
        objects.len(),
        args.multipart,
        args.multipart_mib,
        vanished.len(),
        args.copiers,
        serde_json::to_string(&args.faults)?
    );
    println!("s3-fanout: listed {listed}, enqueued {enqueued}, in {fanout_attempts} invocations");
    match &event {
        Some(event) => println!(
            "run complete after {:.1} s: copied {}, skipped {}, failed {}, bytes copied {}",
            elapsed.as_secs_f64(),
            event["copied"],
            event["skipped"],
            event["failed"],
            event["bytes_copied"]
        ),
        None => println!(
            "the run was NOT announced complete within {} s",
            args.timeout_s
        ),
    }
    println!(
        "copier batches: {}, records: {}, records failed and redelivered: {}",
        consumed.batches.load(std::sync::atomic::Ordering::Relaxed),
        consumed.records.load(std::sync::atomic::Ordering::Relaxed),
        consumed.failed.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "checked: {} objects identical (bytes, metadata, tags), {} reported failed, \
         {} jobs in the dead-letter queue, {} uploads left open",
        report.identical,
        report.failed.len(),
        report.dead_letters,
        report.open_uploads
    );
    for (key, (class, message)) in &report.failed {
        let why = if vanished.contains(key) {
            "deleted after listing"
        } else {
            "NOT deleted: failed under the faults"
        };
        println!("  failed {key} ({why}): {class}: {message}");
    }
    print_faults(&[
        ("s3-fanout", &world.fanout_proxy),
        ("s3-copier", &world.copier_proxy),
    ]);
    println!();
    memory.print();
    let mut world = world;
    outcome.check_processes(&mut world.processes, args.log.as_deref());
    outcome.finish()
}

/// What the checks found.
struct Checked {
    identical: usize,
    failed: BTreeMap<String, (String, String)>,
    dead_letters: usize,
    open_uploads: usize,
}

async fn check(
    world: &World,
    objects: &[Object],
    vanished: &BTreeSet<String>,
    run_id: &str,
    event: Option<&serde_json::Value>,
    outcome: &mut Outcome,
) -> Result<Checked, Failure> {
    let client = s3(&world.direct);
    if event.is_none() {
        outcome.fail("the run was not announced complete".into());
    }
    let report_key = format!("fanout-reports/{run_id}/failures.jsonl");
    let failed: BTreeMap<String, (String, String)> = if event.is_some() {
        String::from_utf8(body(&client, &world.destination, &report_key).await)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str::<Failed>(line).map(|f| (f.key, (f.error_class, f.message)))
            })
            .collect::<Result<_, _>>()?
    } else {
        BTreeMap::new()
    };
    let mut identical = 0;
    for object in objects {
        if let Some((class, _)) = failed.get(&object.key) {
            if vanished.contains(&object.key) && class != "permanent" {
                outcome.fail(format!(
                    "{}, deleted after listing, is reported {class}, not permanent",
                    object.key
                ));
            }
            continue;
        }
        if vanished.contains(&object.key) {
            outcome.fail(format!(
                "{}, deleted after listing, is not in the failure report",
                object.key
            ));
            continue;
        }
        let copied = match client
            .get_object()
            .bucket(&world.destination)
            .key(&object.key)
            .send()
            .await
        {
            Ok(copied) => copied,
            Err(_) => {
                outcome.fail(format!(
                    "{} is neither in the backup nor in the failure report",
                    object.key
                ));
                continue;
            }
        };
        let bytes = copied.body.collect().await?.into_bytes();
        if bytes != content(object.index, object.len) {
            outcome.fail(format!("{}'s copy has other bytes", object.key));
        } else if carried(&client, &world.destination, &object.key).await
            != carried(&client, &world.source, &object.key).await
        {
            outcome.fail(format!("{}'s copy lost its metadata or tags", object.key));
        } else {
            identical += 1;
        }
    }
    let dead_letters = world.dead_letters.drain().await?;
    for job in &dead_letters {
        let job: serde_json::Value = serde_json::from_str(job)?;
        let key = job["source"]["key"].as_str().unwrap_or_default();
        if !failed.contains_key(key) {
            outcome.fail(format!(
                "the job for {key} is in the dead-letter queue but not in the failure report"
            ));
        }
    }
    let open = open_uploads(&client, &world.destination).await;
    if !open.is_empty() {
        outcome.fail(format!(
            "{} multipart uploads left open: {open:?}",
            open.len()
        ));
    }
    if let Some(event) = event {
        let number = |k: &str| event[k].as_u64().unwrap_or(0);
        if number("failed") != failed.len() as u64 {
            outcome.fail(format!(
                "the event says {} failed, the report lists {}",
                number("failed"),
                failed.len()
            ));
        }
        let accounted =
            number("copied") + number("skipped") + number("failed") + number("archived");
        if number("listed") != objects.len() as u64 || accounted != number("listed") {
            outcome.fail(format!(
                "the event does not account for every object: listed {}, copied + skipped + \
                 failed + archived {accounted}, objects {}",
                number("listed"),
                objects.len()
            ));
        }
    }
    Ok(Checked {
        identical,
        failed,
        dead_letters: dead_letters.len(),
        open_uploads: open.len(),
    })
}
