//! The count-once protocol, checked exhaustively in memory: every interleaving of two
//! deliveries of the same message, with a crash of either at every await point, each run
//! followed by one more delivery (the retry or redelivery that any crash leads to).
//!
//! Each adapter call of a delivery waits at a gate until the driver releases it, so the driver
//! decides the order in which the calls of the deliveries take effect, and may kill a delivery
//! (drop its future) between any two of them. Calls of one delivery commute with each other
//! (chunk writes touch different claims and only add; the publish and the read come after all
//! of them), so the driver only ever releases the oldest waiting call of a delivery: that keeps
//! every distinct outcome and makes the search small enough to be exhaustive.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::noop_waker;
use futures::FutureExt;

use crate::count::{count_message, CountError, CountOutcome};
use crate::memory::{MemoryPublisher, MemoryWords};
use crate::message::{Source, WordsMessage};
use crate::slack::SlackMessage;
use crate::store::{ChunkOutcome, Publish, PublishError, StoreError, WordCountStore};
use crate::tokenize::tokenize;

#[derive(Default)]
struct Gates {
    /// Waiting calls: (call id, delivery).
    waiting: Vec<(u64, usize)>,
    released: HashSet<u64>,
    next: u64,
}

/// A delivery's view of the world: the shared store and publisher behind its gates.
struct Gated<'a> {
    delivery: usize,
    gates: &'a Mutex<Gates>,
    store: &'a MemoryWords,
    publisher: &'a MemoryPublisher,
}

impl Gated<'_> {
    async fn gate(&self) {
        let id = {
            let mut gates = self.gates.lock().unwrap();
            gates.next += 1;
            let id = gates.next;
            gates.waiting.push((id, self.delivery));
            id
        };
        futures::future::poll_fn(|_| {
            let mut gates = self.gates.lock().unwrap();
            if gates.released.remove(&id) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl WordCountStore for Gated<'_> {
    async fn apply_chunk(
        &self,
        key: &str,
        deltas: &[(String, i64)],
        ttl: Duration,
    ) -> Result<ChunkOutcome, StoreError> {
        self.gate().await;
        self.store.apply_chunk(key, deltas, ttl).await
    }

    async fn counts(&self, words: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        self.gate().await;
        self.store.counts(words).await
    }
}

impl Publish for Gated<'_> {
    async fn publish(&self, message: &WordsMessage) -> Result<(), PublishError> {
        self.gate().await;
        self.publisher.publish(message).await
    }
}

#[derive(Debug, Clone, Copy)]
enum Choice {
    Release(u64),
    Kill(usize),
}

type Delivery<'a> = Pin<Box<dyn Future<Output = Result<CountOutcome, CountError>> + 'a>>;

fn slack(words: usize) -> SlackMessage {
    let text: Vec<String> = (0..words)
        .map(|i| format!("w{i} ").repeat(1 + i % 3))
        .collect();
    SlackMessage {
        source: Source::EventsApi,
        message_id: "T1:C1:1481660433.000004".into(),
        team_id: Some("T1".into()),
        channel_id: Some("C1".into()),
        user_id: Some("U1".into()),
        text: text.concat(),
        addressed: false,
        thread_ts: None,
        response_url: None,
    }
}

/// One run: the deliveries, scheduled by `choices` as far as they go (then the first option
/// each time), then one more delivery to completion. Returns the number of options at each
/// step, for the search to enumerate.
fn run(message: &SlackMessage, deliveries: usize, kills: usize, choices: &[usize]) -> Vec<usize> {
    let (store, publisher) = (MemoryWords::new(), MemoryPublisher::new());
    let gates = Mutex::new(Gates::default());
    let views: Vec<Gated> = (0..deliveries)
        .map(|delivery| Gated {
            delivery,
            gates: &gates,
            store: &store,
            publisher: &publisher,
        })
        .collect();
    let mut live: Vec<Option<Delivery>> = views
        .iter()
        .map(|view| Some(Box::pin(count_message(view, view, message.clone())) as Delivery))
        .collect();
    let (mut kills_left, mut widths) = (kills, Vec::new());
    let waker = noop_waker();
    loop {
        for slot in live.iter_mut() {
            if let Some(delivery) = slot {
                if let Poll::Ready(outcome) =
                    delivery.as_mut().poll(&mut Context::from_waker(&waker))
                {
                    check_answer(message, outcome);
                    *slot = None;
                }
            }
        }
        let options = options(&gates, &live, kills_left);
        if options.is_empty() {
            break;
        }
        let pick = choices.get(widths.len()).copied().unwrap_or(0);
        widths.push(options.len());
        match options[pick] {
            Choice::Release(id) => {
                let mut gates = gates.lock().unwrap();
                gates.waiting.retain(|(waiting, _)| *waiting != id);
                gates.released.insert(id);
            }
            Choice::Kill(delivery) => {
                live[delivery] = None;
                gates
                    .lock()
                    .unwrap()
                    .waiting
                    .retain(|(_, d)| *d != delivery);
                kills_left -= 1;
            }
        }
    }
    // In memory and ungated, the delivery never waits.
    let retry = count_message(&store, &publisher, message.clone())
        .now_or_never()
        .expect("an ungated delivery completes at once");
    check_answer(
        message,
        retry.map_err(|e| panic!("the final delivery failed: {e}")),
    );
    for (word, n) in tokenize(&message.text).iter() {
        assert_eq!(
            store.count(word),
            Some(n as i64),
            "{word} after {choices:?}"
        );
    }
    assert!(
        !publisher.published().is_empty(),
        "never published: {choices:?}"
    );
    widths
}

/// The oldest waiting call of each live delivery, and a kill of each while kills are left.
fn options(gates: &Mutex<Gates>, live: &[Option<Delivery>], kills_left: usize) -> Vec<Choice> {
    let gates = gates.lock().unwrap();
    let mut options = Vec::new();
    for (delivery, slot) in live.iter().enumerate() {
        if slot.is_none() {
            continue;
        }
        if let Some((id, _)) = gates.waiting.iter().find(|(_, d)| *d == delivery) {
            options.push(Choice::Release(*id));
        }
        if kills_left > 0 {
            options.push(Choice::Kill(delivery));
        }
    }
    options
}

/// A delivery that answered: its counts include at least its own words.
fn check_answer(message: &SlackMessage, outcome: Result<CountOutcome, CountError>) {
    if let Ok(CountOutcome::Counted(counted)) = outcome {
        for (word, n) in tokenize(&message.text).iter() {
            assert!(
                counted.counts.get(word).copied().unwrap_or(0) >= n as i64,
                "{word}"
            );
        }
    }
}

/// Runs every schedule, depth first; how many there were.
fn explore(words: usize, deliveries: usize, kills: usize) -> usize {
    let message = slack(words);
    let mut choices: Vec<usize> = Vec::new();
    let mut runs = 0;
    loop {
        let widths = run(&message, deliveries, kills, &choices);
        runs += 1;
        choices.resize(widths.len(), 0);
        // The next schedule: the deepest step that has an untried option, the first option after.
        while let Some(last) = choices.len().checked_sub(1) {
            if choices[last] + 1 < widths[last] {
                choices[last] += 1;
                break;
            }
            choices.pop();
        }
        if choices.is_empty() {
            return runs;
        }
    }
}

#[test]
fn one_delivery_crashed_at_every_point_then_retried() {
    for words in [1, 26, 250] {
        let runs = explore(words, 1, 1);
        eprintln!("one delivery, {words} words: {runs} schedules");
        assert!(runs > 3, "{words} words: {runs} schedules");
    }
}

#[test]
fn two_deliveries_in_every_interleaving_with_a_crash_anywhere() {
    for (words, at_least) in [(1, 50), (26, 50), (250, 500)] {
        let runs = explore(words, 2, 1);
        eprintln!("two deliveries, {words} words: {runs} schedules");
        assert!(runs >= at_least, "{words} words: only {runs} schedules");
    }
}

#[test]
fn two_deliveries_both_crashing() {
    let runs = explore(26, 2, 2);
    eprintln!("two deliveries, both crashing: {runs} schedules");
    assert!(runs > 100, "{runs}");
}
