//! words-load: the word count under load. Slack messages arrive at a steady rate (50 a second
//! for 60 seconds by default), each carrying the hot words `the` and `a` and 10 others; a pool of
//! real `slack-counter` processes under the fake Lambda Runtime API counts them against moto
//! behind the latency proxy, and a pool of real `sns-multiplier` processes consumes the topic
//! through an SQS queue, as the template wires it.
//!
//! The benchmark plays Slack (it retries a 5xx answer, and an answer slower than Slack's 3 s
//! timeout, up to three times) and the SQS event source mapping (batches of up to 10, the
//! batch item failures left for redelivery). When every message has been acknowledged and the
//! queue is empty, it reads every word's count and compares it with the sum of its
//! multiplicities × (1 + 10): the counts must be exact.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use fanout_bench::faults::FaultPlan;
use fanout_bench::function::{load_average, stop, Function};
use fanout_bench::outcome::{Outcome, RunOptions};
use fanout_bench::proxy::{print_faults, Exchange, Proxy};
use fanout_bench::seeded::SplitMix;
use fanout_bench::slack::{reply, webhook_event, TOKEN};
use fanout_bench::sqs_source::{wait_for_drain, Consumed, Pollers, Queue};
use fanout_bench::stats::{ms, Summary};
use fanout_bench::words::WordsEmulator;
use fanout_tests::runtime_api::RuntimeApi;
use fanout_tests::words::count_of;
use fanout_tests::workspace_root;

/// Slack's timeout: an answer later than this is retried.
const SLACK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an invocation nobody waits for any more may take before it counts as lost.
const ABANDONED_AFTER: Duration = Duration::from_secs(900);
/// How long the multiplier may take with a batch (its function timeout).
const MULTIPLIER_TIMEOUT: Duration = Duration::from_secs(30);
/// The multiplier's factor (its default): each word counts 1 + 10 times in the end.
const MULTIPLIER: i64 = 10;
/// The queue's visibility timeout: a failed record comes back after this.
const VISIBILITY_TIMEOUT_S: i32 = 10;
/// How many times a message Slack gave up on is delivered again after the load.
const LATE_ATTEMPTS: u32 = 10;
/// The hot words every message carries (`the` once or twice).
const HOT_WORDS: [&str; 2] = ["the", "a"];
/// The other words per message, drawn from the vocabulary.
const OTHER_WORDS: usize = 10;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(about = "The word count under load: slack-counter and sns-multiplier pools against moto")]
struct Args {
    /// Slack messages per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// How long messages keep arriving, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u32,
    /// Latency the proxy adds to every AWS request of the functions, in milliseconds.
    #[arg(long, default_value_t = 5.0)]
    latency_ms: f64,
    /// How many distinct words the 10 other words of each message are drawn from.
    #[arg(long, default_value_t = 100)]
    vocabulary: usize,
    /// slack-counter processes (concurrent invocations).
    #[arg(long, default_value_t = 16)]
    counters: usize,
    /// sns-multiplier processes, each fed by an SQS poller of its own.
    #[arg(long, default_value_t = 4)]
    multipliers: usize,
    /// How many times Slack retries a message that got a 5xx or no answer within 3 s.
    #[arg(long, default_value_t = 3)]
    slack_retries: u32,
    /// How long Slack waits before a retry, in milliseconds (Slack's own wait is longer).
    #[arg(long, default_value_t = 1000)]
    retry_after_ms: u64,
    /// How long to wait for the multiplier to empty the queue after the last message.
    #[arg(long, default_value_t = 300)]
    drain_timeout_s: u64,
    /// The slack-counter binary (a release build).
    #[arg(long)]
    counter_bin: Option<PathBuf>,
    /// The sns-multiplier binary (a release build).
    #[arg(long)]
    multiplier_bin: Option<PathBuf>,
    /// Where the functions' logs go; discarded when absent. When given, the run fails if any
    /// function panicked.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Faults the proxies inject into the functions' AWS requests, each a share of requests:
    /// e.g. `throttle=0.1,reset=0.02` (kinds: throttle, 500, reset, hang, hang-seconds, seed;
    /// see docs/reliability.md). None by default.
    #[arg(long, default_value = "")]
    faults: FaultPlan,
    #[command(flatten)]
    run: RunOptions,
}

/// One Slack message: its text and what it should add to each word.
struct SlackMessage {
    serial: usize,
    text: String,
    words: BTreeMap<String, i64>,
}

/// The vocabulary's `index`th word.
fn vocabulary_word(index: usize) -> String {
    format!("load{index:03}")
}

/// Message `serial`: `the` once or twice, `a`, and 10 distinct words of the vocabulary, each
/// once or (one time in four) twice.
fn slack_message(serial: usize, vocabulary: usize) -> SlackMessage {
    let mut random = SplitMix::new(serial as u64);
    let mut tokens: Vec<String> = vec![HOT_WORDS[0].into(); 1 + serial % 2];
    tokens.push(HOT_WORDS[1].into());
    let mut others = BTreeSet::new();
    while others.len() < OTHER_WORDS.min(vocabulary) {
        others.insert(random.below(vocabulary));
    }
    for index in others {
        let repeats = if random.below(4) == 0 { 2 } else { 1 };
        tokens.extend(std::iter::repeat_n(vocabulary_word(index), repeats));
    }
    let mut words = BTreeMap::new();
    for token in &tokens {
        *words.entry(token.clone()).or_insert(0) += 1;
    }
    SlackMessage {
        serial,
        text: tokens.join(" "),
        words,
    }
}

/// One attempt at delivering a Slack message, as Slack saw it.
struct Attempt {
    latency: Duration,
    /// How long the request waited for a free slack-counter process, when one took it.
    queued: Option<Duration>,
    /// The answer's status, `None` when there was none within Slack's timeout.
    status: Option<u16>,
}

impl Attempt {
    /// Slack retries a 5xx and a missing answer, not a 4xx.
    fn retryable(&self) -> bool {
        self.status.is_none_or(|status| status >= 500)
    }
}

/// How one message went: its attempts, the last one acknowledged (200) or not, and the
/// attempts made after the load (for a message Slack had given up on).
struct Delivery {
    serial: usize,
    attempts: Vec<Attempt>,
    late: Vec<Attempt>,
}

impl Delivery {
    fn acknowledged(&self) -> bool {
        let last = self.late.last().or(self.attempts.last());
        last.and_then(|a| a.status) == Some(200)
    }
}

/// The slack-counter processes, and the invocations handed to them that they have not answered
/// yet, whether or not Slack still waits for the answer (a timeout does not stop a Lambda
/// invocation).
#[derive(Clone)]
struct Counters {
    api: Arc<RuntimeApi>,
    in_flight: Arc<AtomicUsize>,
}

impl Counters {
    /// Waits until every invocation has been answered; returns how long that took, or `None`
    /// at the timeout.
    async fn settle(&self, timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            if started.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(started.elapsed())
    }
}

/// Sends one attempt and waits for its answer for `patience`.
async fn attempt(
    counters: &Counters,
    message: &SlackMessage,
    retry: u32,
    patience: Duration,
) -> Attempt {
    let event = webhook_event(message.serial, &message.text, retry);
    let started = Instant::now();
    counters.in_flight.fetch_add(1, Ordering::SeqCst);
    let (api, in_flight) = (counters.api.clone(), counters.in_flight.clone());
    let invocation = tokio::spawn(async move {
        let outcome = api.invoke(event, ABANDONED_AFTER).await;
        in_flight.fetch_sub(1, Ordering::SeqCst);
        outcome
    });
    let (status, queued) = match tokio::time::timeout(patience, invocation).await {
        Ok(Ok(Ok(outcome))) => {
            let status = (!outcome.is_error).then(|| reply(&outcome.body).0);
            (status.flatten(), Some(outcome.delivered - started))
        }
        _ => (None, None),
    };
    Attempt {
        latency: started.elapsed(),
        queued,
        status,
    }
}

/// Delivers a message as Slack does: retried after a 5xx or a timeout, not after a 4xx.
async fn deliver(
    counters: Counters,
    message: Arc<SlackMessage>,
    retries: u32,
    retry_after: Duration,
) -> Delivery {
    let mut attempts = Vec::new();
    for retry in 0..=retries {
        let attempt = attempt(&counters, &message, retry, SLACK_TIMEOUT).await;
        let again = attempt.retryable() && retry < retries;
        attempts.push(attempt);
        if !again {
            break;
        }
        tokio::time::sleep(retry_after).await;
    }
    Delivery {
        serial: message.serial,
        attempts,
        late: Vec::new(),
    }
}

/// After the load, once every invocation has been answered: delivers again, one at a time,
/// each message Slack gave up on (as a user re-sending it would), until it is acknowledged.
/// Every message must end counted exactly once.
async fn complete(
    counters: &Counters,
    messages: &[Arc<SlackMessage>],
    deliveries: &mut [Delivery],
    retry_after: Duration,
) {
    for delivery in deliveries.iter_mut().filter(|d| !d.acknowledged()) {
        let message = &messages[delivery.serial - 1];
        for retry in 0..LATE_ATTEMPTS {
            let attempt = attempt(counters, message, retry + 1, ABANDONED_AFTER).await;
            let again = attempt.retryable();
            delivery.late.push(attempt);
            if !again {
                break;
            }
            tokio::time::sleep(retry_after).await;
        }
    }
}

/// The emulator, the topic's queue, the proxies and the function pools.
struct Stack {
    words: WordsEmulator,
    queue: Queue,
    counter_proxy: Arc<Proxy>,
    multiplier_proxy: Arc<Proxy>,
    counter_api: Arc<RuntimeApi>,
    multiplier_api: Arc<RuntimeApi>,
    processes: Vec<Child>,
    /// How many of `processes` are slack-counters (the first ones).
    counters: usize,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in &mut self.processes {
            stop(child);
        }
    }
}

async fn set_up(args: &Args, latency: Duration) -> Result<Stack, Failure> {
    let binary = |given: &Option<PathBuf>, name: &'static str| {
        let path = given
            .clone()
            .unwrap_or_else(|| workspace_root().join("target/release").join(name));
        Function::new(path, name).map(|mut function| {
            function.log = args.log.clone();
            function
        })
    };
    let (counter, multiplier) = (
        binary(&args.counter_bin, "slack-counter")?,
        binary(&args.multiplier_bin, "sns-multiplier")?,
    );
    let words = WordsEmulator::start("load-words").await?;
    // The multiplier's queue: raw delivery off, as the template has it.
    let (queue, _) = Queue::subscribed(
        &words.direct,
        &words.topic_arn,
        false,
        VISIBILITY_TIMEOUT_S,
        None,
    )
    .await?;
    let multiplier_faults = args.faults.reseeded();
    let (counter_proxy, multiplier_proxy) = (
        Arc::new(words.recording_proxy(latency, args.faults.clone()).await?),
        Arc::new(words.recording_proxy(latency, multiplier_faults).await?),
    );
    let counter = counter
        .env("AWS_ENDPOINT_URL", counter_proxy.url())
        .env("WORDS_TABLE", &words.table)
        .env("WORDS_TOPIC_ARN", &words.topic_arn)
        .env("SLACK_VERIFICATION_TOKEN", TOKEN);
    let multiplier = multiplier
        .env("AWS_ENDPOINT_URL", multiplier_proxy.url())
        .env("WORDS_TABLE", &words.table);
    let (counter_api, multiplier_api) = (RuntimeApi::start().await?, RuntimeApi::start().await?);
    let mut processes = Vec::new();
    for _ in 0..args.counters.max(1) {
        processes.push(counter.spawn(&counter_api)?);
    }
    for _ in 0..args.multipliers.max(1) {
        processes.push(multiplier.spawn(&multiplier_api)?);
    }
    Ok(Stack {
        words,
        queue,
        counter_proxy,
        multiplier_proxy,
        counter_api: Arc::new(counter_api),
        multiplier_api: Arc::new(multiplier_api),
        processes,
        counters: args.counters.max(1),
    })
}

/// Sends `rate` messages a second for `seconds` seconds, each delivered by a task of its own;
/// returns every delivery and how long sending took.
async fn send_messages(
    args: &Args,
    counters: &Counters,
    messages: &[Arc<SlackMessage>],
) -> Result<(Vec<Delivery>, Duration), Failure> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(messages.len());
    for message in messages {
        tick.tick().await;
        tasks.push(tokio::spawn(deliver(
            counters.clone(),
            message.clone(),
            args.slack_retries,
            Duration::from_millis(args.retry_after_ms),
        )));
    }
    let sending = started.elapsed();
    let mut deliveries = Vec::with_capacity(tasks.len());
    for task in tasks {
        deliveries.push(task.await?);
    }
    Ok((deliveries, sending))
}

/// Each word's count in the table against what the acknowledged messages should have made it.
struct Tally {
    words: usize,
    exact: usize,
    /// (word, expected, found) for every word that is off.
    wrong: Vec<(String, i64, i64)>,
    hot: Vec<(String, i64, i64)>,
}

async fn tally(
    stack: &Stack,
    messages: &[Arc<SlackMessage>],
    deliveries: &[Delivery],
    vocabulary: usize,
) -> Result<Tally, Failure> {
    let mut expected: BTreeMap<String, i64> = (0..vocabulary)
        .map(vocabulary_word)
        .chain(HOT_WORDS.map(str::to_owned))
        .map(|word| (word, 0))
        .collect();
    let by_serial: HashMap<usize, &SlackMessage> =
        messages.iter().map(|m| (m.serial, m.as_ref())).collect();
    for delivery in deliveries {
        for (word, n) in &by_serial[&delivery.serial].words {
            *expected.entry(word.clone()).or_insert(0) += n * (1 + MULTIPLIER);
        }
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.words.direct);
    let mut result = Tally {
        words: expected.len(),
        exact: 0,
        wrong: Vec::new(),
        hot: Vec::new(),
    };
    for (word, want) in expected {
        let found = count_of(&dynamodb, &stack.words.table, &word)
            .await?
            .unwrap_or(0);
        if HOT_WORDS.contains(&word.as_str()) {
            result.hot.push((word.clone(), want, found));
        }
        if found == want {
            result.exact += 1;
        } else {
            result.wrong.push((word, want, found));
        }
    }
    Ok(result)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let latency = Duration::try_from_secs_f64(args.latency_ms / 1000.0)
        .map_err(|_| "--latency-ms must be a number of milliseconds ≥ 0")?;
    let stack = set_up(&args, latency).await?;
    let total = (args.rate * args.seconds) as usize;
    let messages: Vec<Arc<SlackMessage>> = (1..=total)
        .map(|serial| Arc::new(slack_message(serial, args.vocabulary)))
        .collect();
    tokio::time::timeout(Duration::from_secs(20), stack.counter_api.first_poll()).await?;
    tokio::time::timeout(Duration::from_secs(20), stack.multiplier_api.first_poll()).await?;

    let pollers = Pollers::start(
        args.multipliers,
        &stack.queue,
        &stack.multiplier_api,
        MULTIPLIER_TIMEOUT,
    );
    let consumed = pollers.consumed.clone();
    let load_before = load_average();
    let outage = args
        .run
        .outage([stack.counter_proxy.clone(), stack.multiplier_proxy.clone()].to_vec());
    let pids: Vec<(&str, u32)> = stack
        .processes
        .iter()
        .enumerate()
        .map(|(i, child)| {
            let name = if i < stack.counters {
                "slack-counter"
            } else {
                "sns-multiplier"
            };
            (name, child.id())
        })
        .collect();
    let sampler = args.run.sampler(pids);
    eprintln!(
        "sending {total} messages at {}/s with {} ms added per AWS request…",
        args.rate,
        ms(latency)
    );
    let counters = Counters {
        api: stack.counter_api.clone(),
        in_flight: Arc::new(AtomicUsize::new(0)),
    };
    let (mut deliveries, sending) = send_messages(&args, &counters, &messages).await?;
    eprintln!("Slack has stopped waiting; letting the counters finish what they were handed…");
    let settled = counters
        .settle(ABANDONED_AFTER)
        .await
        .ok_or("the counters did not answer every invocation")?;
    let retry_after = Duration::from_millis(args.retry_after_ms);
    complete(&counters, &messages, &mut deliveries, retry_after).await;
    eprintln!("all messages answered; waiting for the multiplier to empty the queue…");
    let drained = wait_for_drain(
        &stack.queue,
        &consumed,
        Duration::from_secs(args.drain_timeout_s),
    )
    .await?;
    pollers.stop().await?;
    let load_after = load_average();
    if let Some(outage) = outage {
        outage.await??;
    }
    let memory = sampler.stop().await;
    let tally = tally(&stack, &messages, &deliveries, args.vocabulary).await?;
    let report = Report {
        args: &args,
        latency,
        sending,
        settled,
        deliveries: &deliveries,
        drained,
        consumed: &consumed,
        counter_log: stack.counter_proxy.take_log(),
        multiplier_log: stack.multiplier_proxy.take_log(),
        tally: &tally,
        load: (load_before, load_after),
    };
    report.print();
    print_faults(&[
        ("slack-counter", &stack.counter_proxy),
        ("sns-multiplier", &stack.multiplier_proxy),
    ]);
    println!();
    memory.print();
    let mut outcome = Outcome::default();
    let mut stack = stack;
    outcome.check_processes(&mut stack.processes, args.log.as_deref());
    let lost = deliveries.iter().filter(|d| !d.acknowledged()).count();
    if !tally.wrong.is_empty() {
        outcome.fail(format!("{} words' counts are not exact", tally.wrong.len()));
    }
    if drained.is_none() {
        outcome.fail("the multiplier's queue was not emptied".into());
    }
    if lost > 0 {
        outcome.fail(format!("{lost} messages were never acknowledged"));
    }
    outcome.finish()
}

struct Report<'a> {
    args: &'a Args,
    latency: Duration,
    sending: Duration,
    /// How long the counters took, after Slack's last attempt, to answer what they were handed.
    settled: Duration,
    deliveries: &'a [Delivery],
    drained: Option<Duration>,
    consumed: &'a Consumed,
    counter_log: Vec<Exchange>,
    multiplier_log: Vec<Exchange>,
    tally: &'a Tally,
    load: (String, String),
}

fn summary_line(label: &str, samples: &[Duration]) -> String {
    match Summary::of(samples) {
        Some(s) => format!(
            "{label:<40} p50 {:>8} ms   p99 {:>8} ms   max {:>8} ms   (n={})",
            ms(s.median),
            ms(s.p99),
            ms(s.max),
            s.count
        ),
        None => format!("{label:<40} no samples"),
    }
}

/// Requests by operation: how many, how many were answered with something other than 200, and
/// the emulator's time for them (forwarded to answered).
struct Operation {
    count: usize,
    refused: usize,
    emulator: Vec<Duration>,
}

fn by_operation(log: &[Exchange]) -> BTreeMap<&str, Operation> {
    let mut operations = BTreeMap::new();
    for exchange in log {
        let name = match exchange.operation.as_str() {
            "POST /" => "SNS Publish (POST /)",
            other => other,
        };
        let entry = operations.entry(name).or_insert(Operation {
            count: 0,
            refused: 0,
            emulator: Vec::new(),
        });
        entry.count += 1;
        entry.refused += usize::from(exchange.status != 200);
        entry.emulator.push(exchange.answered - exchange.forwarded);
    }
    operations
}

impl Report<'_> {
    fn print(&self) {
        self.print_slack();
        self.print_requests();
        self.print_counts();
    }

    fn print_slack(&self) {
        let args = self.args;
        let sent = self.deliveries.len();
        println!(
            "word count under load: {sent} Slack messages at {}/s for {} s (sent in {:.1} s), \
             {} ms added per AWS request; {} slack-counter and {} sns-multiplier processes",
            args.rate,
            args.seconds,
            self.sending.as_secs_f64(),
            ms(self.latency),
            args.counters,
            args.multipliers
        );
        println!(
            "each message: `the` (once or twice), `a`, and 10 of {} other words",
            args.vocabulary
        );
        println!(
            "load average before/after: {} / {}",
            self.load.0, self.load.1
        );
        println!();
        let first: Vec<Duration> = self
            .deliveries
            .iter()
            .map(|d| d.attempts[0].latency)
            .collect();
        let all: Vec<Duration> = self
            .deliveries
            .iter()
            .flat_map(|d| d.attempts.iter().map(|a| a.latency))
            .collect();
        println!("-- Slack's side");
        println!("{}", summary_line("reply latency, first attempts", &first));
        println!("{}", summary_line("reply latency, every attempt", &all));
        let queued: Vec<Duration> = self
            .deliveries
            .iter()
            .flat_map(|d| d.attempts.iter().filter_map(|a| a.queued))
            .collect();
        println!(
            "{}",
            summary_line("  of which waiting for a free process", &queued)
        );
        let mut statuses = BTreeMap::new();
        for attempt in self.deliveries.iter().flat_map(|d| &d.attempts) {
            let key = attempt
                .status
                .map_or("no answer within 3 s".to_owned(), |s| s.to_string());
            *statuses.entry(key).or_insert(0usize) += 1;
        }
        println!("answers during the load: {statuses:?}");
        let retries = all.len() - sent;
        println!(
            "Slack retries during the load: {retries} ({:.3} per message)",
            retries as f64 / sent.max(1) as f64
        );
        println!(
            "the counters answered the last invocation {:.1} s after Slack's last attempt",
            self.settled.as_secs_f64()
        );
        let gave_up = self
            .deliveries
            .iter()
            .filter(|d| !d.late.is_empty())
            .count();
        let late: usize = self.deliveries.iter().map(|d| d.late.len()).sum();
        let acknowledged = self.deliveries.iter().filter(|d| d.acknowledged()).count();
        println!(
            "messages Slack gave up on: {gave_up}, delivered again after the load: {late} times; \
             acknowledged in the end: {acknowledged} of {sent}"
        );
        println!();
    }

    fn print_requests(&self) {
        let sent = self.deliveries.len().max(1) as f64;
        for (function, log) in [
            ("slack-counter", &self.counter_log),
            ("sns-multiplier", &self.multiplier_log),
        ] {
            println!("-- {function}'s AWS requests");
            for (name, operation) in by_operation(log) {
                println!(
                    "{name:<30} {:>6} = {:>6.3} per message, {} answered other than 200",
                    operation.count,
                    operation.count as f64 / sent,
                    operation.refused
                );
                println!(
                    "{}",
                    summary_line("  the emulator's time", &operation.emulator)
                );
            }
            let dynamodb = log.iter().filter(|e| e.operation != "POST /").count();
            println!(
                "DynamoDB requests per message: {:.3}",
                dynamodb as f64 / sent
            );
        }
        let consumed = self.consumed;
        println!(
            "multiplier batches: {}, records: {}, records failed and redelivered: {}",
            consumed.batches.load(Ordering::Relaxed),
            consumed.records.load(Ordering::Relaxed),
            consumed.failed.load(Ordering::Relaxed)
        );
        match self.drained {
            Some(after) => println!(
                "queue empty {:.1} s after the last reply",
                after.as_secs_f64()
            ),
            None => println!(
                "the queue was NOT empty after {} s",
                self.args.drain_timeout_s
            ),
        }
        println!();
    }

    fn print_counts(&self) {
        let tally = self.tally;
        println!(
            "-- counts (each word: the sum of its multiplicities × {})",
            1 + MULTIPLIER
        );
        for (word, want, found) in &tally.hot {
            println!("{word:<8} expected {want:>8}  found {found:>8}");
        }
        println!(
            "exact: {} of {} words{}",
            tally.exact,
            tally.words,
            if tally.wrong.is_empty() {
                ""
            } else {
                " — NOT EXACT"
            }
        );
        for (word, want, found) in &tally.wrong {
            println!("  {word}: expected {want}, found {found}");
        }
    }
}
