//! The copy side of a scale run, as a discrete-event simulation: the copy queue and the SQS
//! event source (batches, the maximum concurrency, the documented ramp), s3-copier
//! invocations and their execution environments, and S3 with its per-prefix request rates.
//!
//! Real code decides what is requested: `plan::plan` (or `plan::parts_of` for a source
//! uploaded in parts, found by `decide::parts_in_etag`) lays out each copy, and each execution
//! environment keeps its copy requests within what its own `pace::Aimd` allows, told of every
//! attempt's answer as the S3 adapter tells it. The rest follows `Copier::copy_within` step by
//! step: HEADs, the part layout's HEADs (32 at once), the upload registry's calls,
//! `CreateMultipartUpload`, the parts (at most the per-instance concurrency in flight, none
//! started once less than the pause reserve is left), `CompleteMultipartUpload`, or a
//! continuation job that lists the parts done and goes on.
//!
//! S3 answers a request over its prefix's rate (3,500 writes or 5,500 reads in any one
//! second) with 503 SlowDown after the round trip; the SDK retries it as its standard mode
//! does (up to six attempts, full-jitter exponential backoff from 1 s to 20 s, and a retry
//! quota of 500 tokens per client, 5 per throttled retry, 1 back per first-attempt success);
//! a part whose retries are spent is tried again by the copier (three times, 200 ms then
//! 800 ms apart), and a job whose copy failed comes back as s3-copier brings it back: once
//! its batch is answered, each failed record's visibility is set, one after the other, to
//! `fanout_common::events::retry_delay` of its receive count and message id (or, for
//! comparison, it waits out the queue's visibility timeout); it goes to the dead-letter queue
//! after its fifth receive.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use fanout_common::events::retry_delay;
use fanout_copy_core::copier::{PART_ATTEMPTS, PAUSE_RESERVE};
use fanout_copy_core::decide::parts_in_etag;
use fanout_copy_core::layout::PART_HEADS_IN_FLIGHT;
use fanout_copy_core::pace::{Aimd, Pace, Slot};
use fanout_copy_core::plan::{self, Method, Part};
use futures::FutureExt;

use super::enqueue::Enqueued;
use super::{Binding, CopySetup, Keys, Ns, Redelivery, Workload, SECOND};
use crate::fanout_sim::ramped;
use crate::seeded::SplitMix;

/// The destination bucket, as the copier's pace names it.
const DESTINATION: &str = "dst";
/// The SDK's retry quota per client (aws-smithy-runtime's standard retry strategy).
const RETRY_QUOTA: u32 = 500;
const THROTTLED_RETRY_COST: u32 = 5;
/// The copier's first pause before it tries a failed part again; it grows fourfold.
const PART_RETRY_PAUSE: Ns = 200 * MILLI;
const MILLI: Ns = 1_000_000;
/// ListParts answers at most this many parts a page.
const LIST_PARTS_PAGE: u32 = 1000;

type Id = usize;

/// What one request is, for its cost, its rate limit and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    HeadDestination,
    HeadSource,
    HeadPart,
    CopyObject,
    Create,
    UploadPartCopy,
    Complete,
    ListParts,
    Abort,
    RegistryCurrent,
    RegistryStarted,
    RegistryCopying,
    RegistryEnded,
    PublishContinuation,
}

impl Kind {
    pub(super) const ALL: [Kind; 14] = [
        Kind::HeadDestination,
        Kind::HeadSource,
        Kind::HeadPart,
        Kind::CopyObject,
        Kind::Create,
        Kind::UploadPartCopy,
        Kind::Complete,
        Kind::ListParts,
        Kind::Abort,
        Kind::RegistryCurrent,
        Kind::RegistryStarted,
        Kind::RegistryCopying,
        Kind::RegistryEnded,
        Kind::PublishContinuation,
    ];

    /// The name it is counted and priced under (`fanout_sim::price`).
    pub(super) fn billed_as(self) -> &'static str {
        match self {
            Kind::HeadDestination | Kind::HeadSource | Kind::HeadPart => "HeadObject",
            Kind::CopyObject => "CopyObject",
            Kind::Create => "CreateMultipartUpload",
            Kind::UploadPartCopy => "UploadPartCopy",
            Kind::Complete => "CompleteMultipartUpload",
            Kind::ListParts => "ListParts",
            Kind::Abort => "AbortMultipartUpload",
            Kind::RegistryCurrent => "DynamoDB read",
            Kind::RegistryStarted | Kind::RegistryCopying | Kind::RegistryEnded => "DynamoDB write",
            Kind::PublishContinuation => "SNS PublishBatch",
        }
    }

    /// Copy requests wait for a slot of the environment's pace.
    fn paced(self) -> bool {
        matches!(self, Kind::CopyObject | Kind::UploadPartCopy)
    }

    /// The S3 request rate it counts against: the destination's writes, the destination's or
    /// the source's reads. LIST and abort requests are not limited here.
    fn limit(self) -> Option<Limiter> {
        match self {
            Kind::HeadDestination => Some(Limiter::DestinationReads),
            Kind::HeadSource | Kind::HeadPart => Some(Limiter::SourceReads),
            Kind::CopyObject | Kind::Create | Kind::UploadPartCopy | Kind::Complete => {
                Some(Limiter::DestinationWrites)
            }
            _ => None,
        }
    }

    /// S3 requests count against the environment's SDK retry quota.
    fn s3(self) -> bool {
        !matches!(
            self,
            Kind::RegistryCurrent
                | Kind::RegistryStarted
                | Kind::RegistryCopying
                | Kind::RegistryEnded
                | Kind::PublishContinuation
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limiter {
    DestinationWrites,
    DestinationReads,
    SourceReads,
}

/// S3's rate for one kind of request on one prefix: at most `limit` accepted in any one
/// second (a sliding window of the accepted requests' times).
#[derive(Debug)]
struct Window {
    accepted: VecDeque<Ns>,
    second: Ns,
    in_second: u32,
}

impl Window {
    fn new() -> Window {
        Window {
            accepted: VecDeque::new(),
            second: 0,
            in_second: 0,
        }
    }

    /// Whether a request arriving at `now` is accepted; counted if so. Returns the requests
    /// accepted in `now`'s whole second so far.
    fn accept(&mut self, now: Ns, limit: u32) -> Option<u32> {
        while self.accepted.front().is_some_and(|&at| at + SECOND <= now) {
            self.accepted.pop_front();
        }
        if self.accepted.len() >= limit as usize {
            return None;
        }
        self.accepted.push_back(now);
        let second = now / SECOND;
        if second != self.second {
            self.second = second;
            self.in_second = 0;
        }
        self.in_second += 1;
        Some(self.in_second)
    }
}

/// A copy job message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Message {
    object: u64,
    /// Its number, for its `messageId`.
    number: u64,
    receives: u32,
    check_destination: bool,
    /// A continuation: parts `1..=done` are in its upload.
    resume: Option<u32>,
}

/// The SQS `messageId` of message number `number` (a fresh job's is its object's index, a
/// continuation's counts on from the last object): a UUID, the same on each receive.
pub fn message_id(number: u64) -> String {
    let mut random = SplitMix::new(number);
    let (a, b) = (random.next_u64(), random.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// The queue's visible messages, in order; fresh jobs kept as runs of consecutive objects.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Queued>,
    len: u64,
}

#[derive(Debug, Clone, Copy)]
enum Queued {
    Fresh {
        first: u64,
        count: u64,
        check_destination: bool,
    },
    One(Message),
}

impl Queue {
    fn push_fresh(&mut self, first: u64, count: u64, check_destination: bool) {
        self.items.push_back(Queued::Fresh {
            first,
            count,
            check_destination,
        });
        self.len += count;
    }

    fn push(&mut self, message: Message) {
        self.items.push_back(Queued::One(message));
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Message> {
        let message = match self.items.front_mut()? {
            Queued::One(message) => {
                let message = *message;
                self.items.pop_front();
                message
            }
            Queued::Fresh {
                first,
                count,
                check_destination,
            } => {
                let message = Message {
                    object: *first,
                    number: *first,
                    receives: 0,
                    check_destination: *check_destination,
                    resume: None,
                };
                *first += 1;
                *count -= 1;
                if *count == 0 {
                    self.items.pop_front();
                }
                message
            }
        };
        self.len -= 1;
        Some(message)
    }
}

/// An s3-copier execution environment: the copier built at init, with its pace and its SDK
/// client's retry quota, kept from one invocation to the next.
struct Environment {
    pace: Arc<Aimd>,
    retry_tokens: u32,
    /// Copy requests waiting for a slot of the pace, in order.
    waiting: VecDeque<Id>,
}

struct Invocation {
    environment: usize,
    start: Ns,
    jobs_left: u32,
    /// Its failed jobs, in order, and whether each comes back (else it is dead-lettered).
    failed: Vec<(Message, bool)>,
}

/// A job being copied by an invocation.
struct Active {
    message: Message,
    invocation: Id,
    parts: Arc<Vec<Part>>,
    single: bool,
    layout_parts: u32,
    heads_next: u32,
    heads_in_flight: u32,
    list_pages_left: u32,
    next_part: u32,
    parts_in_flight: u32,
    /// Parts started, in order: once one is skipped for the deadline, all after it are.
    parts_started: u32,
    started_a_part: bool,
    paused: bool,
    failed: bool,
    /// The upload's last request (complete, abort, or the continuation) is under way.
    finishing: bool,
    slowest: Ns,
}

struct Request {
    active: Id,
    kind: Kind,
    part: u32,
    /// Attempts of this SDK call so far, and of the copier's tries of a part.
    attempts: u32,
    tries: u32,
    retried: bool,
    slot: Option<Slot>,
    started: Ns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Answer {
        request: Id,
        accepted: bool,
    },
    Retry {
        request: Id,
    },
    /// A continuation published, or a failed job back after its wait.
    Visible {
        message: Message,
        redelivery: bool,
    },
    /// An invocation's last `ChangeMessageVisibility` answered.
    Ended {
        invocation: Id,
    },
    RampTick,
}

/// A slab: ids reused once freed.
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<Id>,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }

    fn insert(&mut self, item: T) -> Id {
        match self.free.pop() {
            Some(id) => {
                self.items[id] = Some(item);
                id
            }
            None => {
                self.items.push(Some(item));
                self.items.len() - 1
            }
        }
    }

    fn remove(&mut self, id: Id) -> T {
        self.free.push(id);
        self.items[id].take().expect("a live id")
    }

    fn get(&mut self, id: Id) -> &mut T {
        self.items[id].as_mut().expect("a live id")
    }
}

/// What the copy side did; see [`super::RunResult`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Copied {
    pub end: Ns,
    pub copied: u64,
    pub copied_once: bool,
    pub counts: Vec<(Kind, u64)>,
    pub throttled: u64,
    pub given_up: u64,
    pub invocations: u64,
    pub continuations: u64,
    pub redeliveries: u64,
    pub dead_lettered: u64,
    pub visibility_changes: u64,
    pub peak_concurrency: usize,
    pub environments: usize,
    pub longest_invocation: Ns,
    pub over_timeout: u64,
    pub billed_ms: u64,
    pub peak_writes_per_prefix: u32,
    pub peak_reads_per_prefix: u32,
    pub lowest_pace: usize,
    pub seconds: Vec<(Binding, u64)>,
}

/// One second's signs of what held the run back.
#[derive(Debug, Default, Clone, Copy)]
struct SecondSigns {
    throttled: u64,
    busiest_writes: u32,
    busiest_reads: u32,
}

struct Sim<'a> {
    setup: &'a CopySetup,
    workload: &'a Workload,
    keys: Keys,
    enqueue_done: Ns,
    now: Ns,
    events: BinaryHeap<Reverse<(Ns, u64, Event)>>,
    sequence: u64,
    queue: Queue,
    first_visible: Option<Ns>,
    ramp_tick_pending: bool,
    environments: Vec<Environment>,
    idle: Vec<usize>,
    invocations: Slab<Invocation>,
    running: usize,
    actives: Slab<Active>,
    requests: Slab<Request>,
    windows: Vec<Window>,
    random: SplitMix,
    single_plan: Arc<Vec<Part>>,
    multipart_plan: Option<Arc<Vec<Part>>>,
    layout_parts: u32,
    copies: Vec<u8>,
    pending_redeliveries: u64,
    /// Requests waiting out a backoff after S3 slowed them down.
    backing_off: u64,
    slowed: Vec<usize>,
    clock: Ns,
    signs: SecondSigns,
    second: Ns,
    out: Copied,
    counts: [u64; Kind::ALL.len()],
    seconds: [u64; Binding::ALL.len()],
}

/// Simulates the copy of `workload`, whose jobs arrive as `enqueued` says.
pub(super) async fn simulate(
    setup: &CopySetup,
    workload: &Workload,
    keys: Keys,
    enqueued: &Enqueued,
) -> Copied {
    let thresholds = setup.lambda.options.thresholds;
    let free_slots = setup.lambda.per_instance;
    // As the copier decides: a source whose ETag names parts is copied in its own layout.
    let layout = workload
        .source_layout()
        .filter(|_| parts_in_etag(&workload.etag()).is_some());
    let (single_plan, multipart_plan, layout_parts) = match layout {
        Some(sizes) => {
            plan::check_layout(&sizes, workload.size).expect("the workload's layout is S3's");
            let parts = plan::parts_of(&sizes);
            let count = parts.len() as u32;
            (Arc::new(Vec::new()), Some(Arc::new(parts)), count)
        }
        None => match plan::plan(workload.size, &thresholds, free_slots).expect("a plan") {
            Method::Single => (Arc::new(Vec::new()), None, 0),
            Method::Multipart(parts) => (Arc::new(Vec::new()), Some(Arc::new(parts)), 0),
        },
    };
    let prefixes = keys.prefixes as usize;
    let mut sim = Sim {
        setup,
        workload,
        keys,
        enqueue_done: enqueued.deliveries.last().map_or(0, |d| d.at),
        now: 0,
        events: BinaryHeap::new(),
        sequence: 0,
        queue: Queue::default(),
        first_visible: None,
        ramp_tick_pending: false,
        environments: Vec::new(),
        idle: Vec::new(),
        invocations: Slab::new(),
        running: 0,
        actives: Slab::new(),
        requests: Slab::new(),
        windows: (0..prefixes * 3).map(|_| Window::new()).collect(),
        random: SplitMix::new(setup.seed),
        single_plan,
        multipart_plan,
        layout_parts,
        copies: vec![0; workload.objects as usize],
        pending_redeliveries: 0,
        backing_off: 0,
        slowed: Vec::new(),
        clock: 0,
        signs: SecondSigns::default(),
        second: 0,
        out: Copied {
            lowest_pace: setup.lambda.per_instance,
            ..Copied::default()
        },
        counts: [0; Kind::ALL.len()],
        seconds: [0; Binding::ALL.len()],
    };
    sim.run(enqueued).await;
    sim.finish()
}

impl Sim<'_> {
    async fn run(&mut self, enqueued: &Enqueued) {
        let deliveries = &enqueued.deliveries;
        let mut next = 0;
        loop {
            let heap_at = self.events.peek().map(|Reverse((at, _, _))| *at);
            let delivery_at = deliveries.get(next).map(|d| d.at);
            let at = match (heap_at, delivery_at) {
                (None, None) => break,
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
            };
            self.tick_to(at);
            self.now = at;
            if delivery_at == Some(at) {
                let d = deliveries[next];
                next += 1;
                let check = enqueued.check_destination;
                self.queue.push_fresh(d.first, u64::from(d.count), check);
                self.first_visible.get_or_insert(at);
            } else {
                let Reverse((_, _, event)) = self.events.pop().expect("an event");
                self.handle(event);
            }
            if !self.slowed.is_empty() {
                if self.now > self.clock {
                    tokio::time::advance(std::time::Duration::from_nanos(self.now - self.clock))
                        .await;
                    self.clock = self.now;
                }
                for environment in std::mem::take(&mut self.slowed) {
                    let pace = &self.environments[environment].pace;
                    pace.slowed(DESTINATION);
                    self.out.lowest_pace = self.out.lowest_pace.min(pace.report(DESTINATION).limit);
                }
            }
            self.dispatch();
        }
        self.tick_to(self.now + SECOND);
    }

    fn finish(mut self) -> Copied {
        self.out.end = self.now;
        self.out.copied_once = self.copies.iter().all(|&n| n == 1);
        self.out.counts = Kind::ALL
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (*k, n))
            .collect();
        self.out.environments = self.environments.len();
        self.out.seconds = Binding::ALL
            .iter()
            .zip(self.seconds)
            .filter(|(_, n)| *n > 0)
            .map(|(b, n)| (*b, n))
            .collect();
        self.out
    }

    fn schedule(&mut self, at: Ns, event: Event) {
        self.sequence += 1;
        self.events.push(Reverse((at, self.sequence, event)));
    }

    /// Closes the seconds before `at`, each named after what held the run back in it.
    fn tick_to(&mut self, at: Ns) {
        while (self.second + 1) * SECOND <= at {
            let binding = self.binding();
            self.seconds[binding as usize] += 1;
            self.signs = SecondSigns::default();
            self.second += 1;
        }
    }

    fn binding(&self) -> Binding {
        let limits = &self.setup.limits;
        let s = self.signs;
        // A prefix that takes nothing (a test's) is held back only when it refuses a request.
        let near = |n: u32, limit: u32| limit > 0 && u64::from(n) * 10 >= u64::from(limit) * 9;
        if s.throttled > 0
            || self.backing_off > 0
            || near(s.busiest_writes, limits.writes)
            || near(s.busiest_reads, limits.reads)
        {
            Binding::PrefixRate
        } else if self.queue.len > 0 {
            if self.running >= self.setup.lambda.max_concurrency {
                Binding::Concurrency
            } else {
                Binding::Ramp
            }
        } else if (self.second + 1) * SECOND <= self.enqueue_done {
            Binding::Enqueue
        } else if self.running == 0 && self.pending_redeliveries > 0 {
            Binding::Redelivery
        } else {
            Binding::CriticalPath
        }
    }

    /// Invocations the event sources allow now: each mapping ramps up on its own, and they
    /// share the maximum concurrency.
    fn allowed(&self) -> usize {
        let lambda = &self.setup.lambda;
        if !lambda.ramp {
            return lambda.max_concurrency;
        }
        let since = self.now - self.first_visible.unwrap_or(self.now);
        let mappings = self.setup.mappings.max(1);
        let per_mapping = lambda.max_concurrency.div_ceil(mappings);
        (mappings * ramped(per_mapping, std::time::Duration::from_nanos(since)))
            .min(lambda.max_concurrency)
    }

    fn dispatch(&mut self) {
        while self.queue.len > 0 && self.running < self.allowed() {
            self.invoke();
        }
        if self.queue.len > 0
            && self.running >= self.allowed()
            && self.allowed() < self.setup.lambda.max_concurrency
            && !self.ramp_tick_pending
        {
            let since = self.now - self.first_visible.unwrap_or(self.now);
            let next = self.now + (SECOND - since % SECOND);
            self.ramp_tick_pending = true;
            self.schedule(next, Event::RampTick);
        }
    }

    fn invoke(&mut self) {
        let environment = self.idle.pop().unwrap_or_else(|| {
            self.environments.push(Environment {
                pace: Arc::new(Aimd::new(self.setup.lambda.per_instance)),
                retry_tokens: RETRY_QUOTA,
                waiting: VecDeque::new(),
            });
            self.environments.len() - 1
        });
        let mut batch = Vec::with_capacity(self.setup.lambda.batch_size);
        while batch.len() < self.setup.lambda.batch_size {
            match self.queue.pop() {
                Some(message) => batch.push(message),
                None => break,
            }
        }
        self.running += 1;
        self.out.invocations += 1;
        self.out.peak_concurrency = self.out.peak_concurrency.max(self.running);
        let invocation = self.invocations.insert(Invocation {
            environment,
            start: self.now,
            jobs_left: batch.len() as u32,
            failed: Vec::new(),
        });
        // The handler takes up to RECORD_CONCURRENCY records at once; a batch is never larger.
        for mut message in batch {
            message.receives += 1;
            self.start_job(message, invocation);
        }
    }

    fn start_job(&mut self, message: Message, invocation: Id) {
        let multipart = self.multipart_plan.clone();
        let active = self.actives.insert(Active {
            message,
            invocation,
            single: multipart.is_none(),
            parts: multipart.unwrap_or_else(|| self.single_plan.clone()),
            layout_parts: self.layout_parts,
            heads_next: 1,
            heads_in_flight: 0,
            list_pages_left: 0,
            next_part: 0,
            parts_in_flight: 0,
            parts_started: 0,
            started_a_part: false,
            paused: false,
            failed: false,
            finishing: false,
            slowest: 0,
        });
        let first = if message.check_destination {
            Kind::HeadDestination
        } else {
            Kind::HeadSource
        };
        self.request(active, first, 0);
    }

    fn request(&mut self, active: Id, kind: Kind, part: u32) {
        let request = self.requests.insert(Request {
            active,
            kind,
            part,
            attempts: 0,
            tries: 1,
            retried: false,
            slot: None,
            started: self.now,
        });
        if kind.paced() {
            let environment = self.environment_of(active);
            self.environments[environment].waiting.push_back(request);
            self.pump(environment);
        } else {
            self.attempt(request);
        }
    }

    fn environment_of(&mut self, active: Id) -> usize {
        let invocation = self.actives.get(active).invocation;
        self.invocations.get(invocation).environment
    }

    /// Starts the waiting copy requests the environment's pace has slots for.
    fn pump(&mut self, environment: usize) {
        loop {
            let Some(&request) = self.environments[environment].waiting.front() else {
                return;
            };
            let pace = self.environments[environment].pace.clone();
            let Some(slot) = pace.acquire(DESTINATION).now_or_never() else {
                return;
            };
            self.environments[environment].waiting.pop_front();
            self.requests.get(request).slot = Some(slot);
            self.with_slot(request);
        }
    }

    /// A copy request got its slot: the copier's checks before a part, then the request.
    fn with_slot(&mut self, request: Id) {
        let (active_id, kind) = {
            let r = self.requests.get(request);
            (r.active, r.kind)
        };
        if kind == Kind::UploadPartCopy {
            let deadline = self.deadline_of(active_id);
            let now = self.now;
            let a = self.actives.get(active_id);
            let too_late = {
                let remaining = deadline.saturating_sub(now);
                remaining < (PAUSE_RESERVE.as_nanos() as Ns).max(a.slowest * 2)
            };
            let skip = a.failed || a.paused || (a.started_a_part && too_late);
            if skip {
                if !a.failed && !a.paused {
                    a.paused = true;
                }
                a.parts_in_flight -= 1;
                self.release(request);
                self.after_parts(active_id);
                return;
            }
            a.started_a_part = true;
            a.parts_started += 1;
            self.requests.get(request).started = now;
        }
        self.attempt(request);
    }

    fn deadline_of(&mut self, active: Id) -> Ns {
        let invocation = self.actives.get(active).invocation;
        self.invocations.get(invocation).start + self.setup.lambda.timeout.as_nanos() as Ns
    }

    /// Ends a request, giving back its pace slot.
    fn release(&mut self, request: Id) {
        let r = self.requests.remove(request);
        if r.slot.is_some() {
            let environment = self.environment_of(r.active);
            drop(r);
            self.pump(environment);
        }
    }

    fn duration(&self, kind: Kind, part: u32) -> Ns {
        let model = &self.setup.model;
        let d = match kind {
            Kind::CopyObject => model.copy_request(self.workload.size),
            Kind::UploadPartCopy => {
                let parts = self.multipart_plan.as_ref().expect("a multipart plan");
                model.copy_request(parts[part as usize].bytes())
            }
            _ => model.latency,
        };
        d.as_nanos() as Ns
    }

    /// One attempt of a request: S3 accepts it within its prefix's rate, else answers 503
    /// after the round trip.
    fn attempt(&mut self, request: Id) {
        let (kind, part, active) = {
            let r = self.requests.get(request);
            r.attempts += 1;
            (r.kind, r.part, r.active)
        };
        let accepted = match kind.limit() {
            None => true,
            Some(limiter) => {
                let object = self.actives.get(active).message.object;
                let prefix = self.keys.prefix(object) as usize;
                let (index, limit) = match limiter {
                    Limiter::DestinationWrites => (prefix * 3, self.setup.limits.writes),
                    Limiter::DestinationReads => (prefix * 3 + 1, self.setup.limits.reads),
                    Limiter::SourceReads => (prefix * 3 + 2, self.setup.limits.reads),
                };
                match self.windows[index].accept(self.now, limit) {
                    Some(in_second) => {
                        if limiter == Limiter::DestinationWrites {
                            self.signs.busiest_writes = self.signs.busiest_writes.max(in_second);
                            self.out.peak_writes_per_prefix =
                                self.out.peak_writes_per_prefix.max(in_second);
                        } else {
                            self.signs.busiest_reads = self.signs.busiest_reads.max(in_second);
                            self.out.peak_reads_per_prefix =
                                self.out.peak_reads_per_prefix.max(in_second);
                        }
                        true
                    }
                    None => false,
                }
            }
        };
        let at = if accepted {
            self.counts[kind as usize] += 1;
            self.now + self.duration(kind, part)
        } else {
            self.out.throttled += 1;
            self.signs.throttled += 1;
            self.now + self.setup.model.latency.as_nanos() as Ns
        };
        self.schedule(at, Event::Answer { request, accepted });
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Answer { request, accepted } => self.answer(request, accepted),
            Event::Retry { request } => {
                self.backing_off -= 1;
                self.attempt(request)
            }
            Event::Visible {
                message,
                redelivery,
            } => {
                if redelivery {
                    self.pending_redeliveries -= 1;
                }
                self.queue.push(message);
            }
            Event::RampTick => self.ramp_tick_pending = false,
            Event::Ended { invocation } => self.end(invocation),
        }
    }

    fn answer(&mut self, request: Id, accepted: bool) {
        let (kind, active) = {
            let r = self.requests.get(request);
            (r.kind, r.active)
        };
        let environment = self.environment_of(active);
        if accepted {
            if kind.s3() {
                let retried = self.requests.get(request).retried;
                let e = &mut self.environments[environment];
                let back = if retried { THROTTLED_RETRY_COST } else { 1 };
                e.retry_tokens = (e.retry_tokens + back).min(RETRY_QUOTA);
            }
            if kind.paced() {
                self.environments[environment].pace.answered(DESTINATION);
            }
            self.succeeded(request);
            return;
        }
        if kind.paced() {
            self.slowed.push(environment);
        }
        let r = self.requests.get(request);
        let e = &mut self.environments[environment];
        if r.attempts < fanout_copy_s3::MAX_ATTEMPTS && e.retry_tokens >= THROTTLED_RETRY_COST {
            e.retry_tokens -= THROTTLED_RETRY_COST;
            r.retried = true;
            let cap = (1u64 << (r.attempts - 1).min(10)).min(20) as f64;
            let delay = (self.random.unit() * cap * SECOND as f64) as Ns;
            self.backing_off += 1;
            self.schedule(self.now + delay, Event::Retry { request });
        } else if kind == Kind::UploadPartCopy && r.tries < PART_ATTEMPTS {
            let pause = PART_RETRY_PAUSE * 4u64.pow(r.tries - 1);
            r.tries += 1;
            r.attempts = 0;
            r.retried = false;
            self.backing_off += 1;
            self.schedule(self.now + pause, Event::Retry { request });
        } else {
            self.out.given_up += 1;
            self.failed(request);
        }
    }

    /// What follows a request that succeeded.
    fn succeeded(&mut self, request: Id) {
        let (kind, active, started) = {
            let r = self.requests.get(request);
            (r.kind, r.active, r.started)
        };
        let now = self.now;
        match kind {
            Kind::HeadDestination => {
                self.release(request);
                self.request(active, Kind::HeadSource, 0);
            }
            Kind::HeadSource => {
                self.release(request);
                if self.layout_parts > 0 {
                    self.actives.get(active).heads_in_flight = 1;
                    self.actives.get(active).heads_next = 2;
                    self.request(active, Kind::HeadPart, 1);
                } else {
                    self.plan_copy(active);
                }
            }
            Kind::HeadPart => {
                self.release(request);
                self.actives.get(active).heads_in_flight -= 1;
                self.more_heads(active);
            }
            Kind::CopyObject => {
                self.release(request);
                self.job_done(active, Outcome::Copied);
            }
            Kind::ListParts => {
                self.release(request);
                let a = self.actives.get(active);
                a.list_pages_left -= 1;
                if a.list_pages_left > 0 {
                    self.request(active, Kind::ListParts, 0);
                } else {
                    self.start_parts(active);
                }
            }
            Kind::RegistryCurrent => {
                self.release(request);
                self.request(active, Kind::Create, 0);
            }
            Kind::Create => {
                self.release(request);
                self.request(active, Kind::RegistryStarted, 0);
            }
            Kind::RegistryStarted => {
                self.release(request);
                self.request(active, Kind::RegistryCopying, 0);
            }
            Kind::RegistryCopying => {
                self.release(request);
                self.start_parts(active);
            }
            Kind::UploadPartCopy => {
                let a = self.actives.get(active);
                a.slowest = a.slowest.max(now - started);
                a.parts_in_flight -= 1;
                self.release(request);
                self.start_parts(active);
            }
            Kind::Complete | Kind::Abort => {
                self.release(request);
                self.request(active, Kind::RegistryEnded, 0);
            }
            Kind::RegistryEnded => {
                self.release(request);
                let outcome = if self.actives.get(active).failed {
                    Outcome::Failed
                } else {
                    Outcome::Copied
                };
                self.job_done(active, outcome);
            }
            Kind::PublishContinuation => {
                self.release(request);
                self.job_done(active, Outcome::Paused);
            }
        }
    }

    /// A request the SDK (and for a part, the copier) gave up on.
    fn failed(&mut self, request: Id) {
        let (kind, active) = {
            let r = self.requests.get(request);
            (r.kind, r.active)
        };
        self.release(request);
        match kind {
            Kind::UploadPartCopy => {
                let a = self.actives.get(active);
                a.failed = true;
                a.parts_in_flight -= 1;
                self.after_parts(active);
            }
            Kind::HeadPart => {
                let a = self.actives.get(active);
                a.failed = true;
                a.heads_in_flight -= 1;
                if a.heads_in_flight == 0 {
                    self.job_done(active, Outcome::Failed);
                }
            }
            // The upload is aborted, then the job fails.
            Kind::Complete => {
                self.actives.get(active).failed = true;
                self.request(active, Kind::Abort, 0);
            }
            _ => self.job_done(active, Outcome::Failed),
        }
    }

    /// The source's part layout: part 1's HEAD tells the count, then the rest, 32 at once.
    fn more_heads(&mut self, active: Id) {
        let a = self.actives.get(active);
        if a.failed {
            if a.heads_in_flight == 0 {
                self.job_done(active, Outcome::Failed);
            }
            return;
        }
        let mut start = Vec::new();
        while a.heads_next <= a.layout_parts && (a.heads_in_flight as usize) < PART_HEADS_IN_FLIGHT
        {
            start.push(a.heads_next);
            a.heads_next += 1;
            a.heads_in_flight += 1;
        }
        let done = a.heads_in_flight == 0;
        for number in start {
            self.request(active, Kind::HeadPart, number);
        }
        if done {
            self.plan_copy(active);
        }
    }

    fn plan_copy(&mut self, active: Id) {
        let a = self.actives.get(active);
        if a.single {
            self.request(active, Kind::CopyObject, 0);
            return;
        }
        match a.message.resume {
            Some(done) => {
                a.next_part = done;
                a.parts_started = done;
                a.list_pages_left = done.div_ceil(LIST_PARTS_PAGE).max(1);
                self.request(active, Kind::ListParts, 0);
            }
            None => self.request(active, Kind::RegistryCurrent, 0),
        }
    }

    /// Hands the next parts to the pace, at most the per-instance concurrency of them at once
    /// for one object (the copier's `buffer_unordered`).
    fn start_parts(&mut self, active: Id) {
        let per_instance = self.setup.lambda.per_instance as u32;
        let a = self.actives.get(active);
        let total = a.parts.len() as u32;
        let mut start = Vec::new();
        while !a.failed && !a.paused && a.next_part < total && a.parts_in_flight < per_instance {
            start.push(a.next_part);
            a.next_part += 1;
            a.parts_in_flight += 1;
        }
        for part in start {
            self.request(active, Kind::UploadPartCopy, part);
        }
        self.after_parts(active);
    }

    /// Once no part is in flight: complete, pause with a continuation, or abort.
    fn after_parts(&mut self, active: Id) {
        let a = self.actives.get(active);
        let total = a.parts.len() as u32;
        if a.finishing || a.parts_in_flight > 0 || (a.next_part < total && !a.failed && !a.paused) {
            return;
        }
        a.finishing = true;
        if a.failed {
            self.request(active, Kind::Abort, 0);
        } else if a.paused {
            self.request(active, Kind::PublishContinuation, 0);
        } else {
            self.request(active, Kind::Complete, 0);
        }
    }

    fn job_done(&mut self, active: Id, outcome: Outcome) {
        let a = self.actives.remove(active);
        let invocation = a.invocation;
        let received = self.invocations.get(invocation).start;
        let message = a.message;
        match outcome {
            Outcome::Copied => {
                let copies = &mut self.copies[message.object as usize];
                *copies = copies.saturating_add(1);
                self.out.copied += 1;
            }
            Outcome::Paused => {
                // Parts start in order and all those started finish before the pause: the
                // upload holds parts 1..=parts_started.
                self.out.continuations += 1;
                let continuation = Message {
                    object: message.object,
                    number: self.workload.objects + self.out.continuations,
                    receives: 0,
                    check_destination: true,
                    resume: Some(a.parts_started),
                };
                let at = self.now + self.setup.lambda.delivery.as_nanos() as Ns;
                self.schedule(
                    at,
                    Event::Visible {
                        message: continuation,
                        redelivery: false,
                    },
                );
            }
            Outcome::Failed => {
                let again = message.receives < self.setup.max_receives;
                if again {
                    // The upload was aborted: the job starts over when it is received again.
                    self.out.redeliveries += 1;
                    self.pending_redeliveries += 1;
                } else {
                    self.out.dead_lettered += 1;
                }
                match self.setup.redelivery {
                    Redelivery::RetryDelay => {
                        (self.invocations.get(invocation).failed).push((message, again));
                    }
                    Redelivery::VisibilityTimeout if again => {
                        let at = received + self.setup.visibility_timeout.as_nanos() as Ns;
                        self.schedule(at.max(self.now), Self::back(message));
                    }
                    Redelivery::VisibilityTimeout => {}
                }
            }
        }
        let inv = self.invocations.get(invocation);
        inv.jobs_left -= 1;
        if inv.jobs_left > 0 {
            return;
        }
        // The batch is answered; s3-copier then changes each failed record's visibility, one
        // after the other, before the invocation returns.
        let failed = std::mem::take(&mut inv.failed);
        if failed.is_empty() {
            self.end(invocation);
            return;
        }
        let latency = self.setup.model.latency.as_nanos() as Ns;
        let mut at = self.now;
        for (message, again) in failed {
            at += latency;
            self.out.visibility_changes += 1;
            if again {
                let id = message_id(message.number);
                let wait = retry_delay(message.receives, &id).as_secs() * SECOND;
                self.schedule(at + wait, Self::back(message));
            }
        }
        self.schedule(at, Event::Ended { invocation });
    }

    /// A failed job visible again; the upload was aborted, so it starts over.
    fn back(message: Message) -> Event {
        Event::Visible {
            message: Message {
                resume: None,
                ..message
            },
            redelivery: true,
        }
    }

    /// The invocation returns: its environment is free for the next.
    fn end(&mut self, invocation: Id) {
        let inv = self.invocations.remove(invocation);
        let took = self.now - inv.start;
        self.out.billed_ms += took.div_ceil(MILLI);
        self.out.longest_invocation = self.out.longest_invocation.max(took);
        if took > self.setup.lambda.timeout.as_nanos() as Ns {
            self.out.over_timeout += 1;
        }
        self.running -= 1;
        self.idle.push(inv.environment);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Copied,
    Paused,
    Failed,
}
