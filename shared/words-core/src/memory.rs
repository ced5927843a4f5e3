//! In-memory implementations of the [`crate::store`] traits, for tests of the protocols: a
//! word-count store with its claims, and a publisher that keeps what it published. Both can be
//! told to fail calls, before or after they take effect, so that tests break the world mid-way.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::message::WordsMessage;
use crate::reply::{Claim, Reply, ReplyClaims, SlackWeb, WebError};
use crate::store::{
    best_of, ChunkOutcome, Leaderboard, Publish, PublishError, StoreError, WordCountStore,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyState {
    Done,
    Leased { expired: bool },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Before it takes effect: a refused request.
    Before,
    /// After it took effect: a lost answer, or a process killed right after the write.
    After,
}

#[derive(Debug, Default)]
struct State {
    counts: HashMap<String, i64>,
    claims: HashSet<String>,
    /// Reply claims: done, or the lease still runs.
    replies: HashMap<String, ReplyState>,
    /// Calls still to fail, by operation (`apply_chunk`, `counts`).
    faults: HashMap<&'static str, (usize, Fault)>,
    calls: Vec<String>,
}

impl State {
    /// The fault this call meets, if any, counting it down.
    fn fault(&mut self, operation: &'static str) -> Option<Fault> {
        match self.faults.get_mut(operation) {
            Some((left, fault)) if *left > 0 => {
                *left -= 1;
                Some(*fault)
            }
            _ => None,
        }
    }
}

/// Word counts and claims, in memory. Claims never expire here.
#[derive(Debug, Default)]
pub struct MemoryWords {
    state: Mutex<State>,
}

fn failed(operation: &'static str) -> StoreError {
    StoreError {
        operation,
        store: "memory".into(),
        transient: true,
        detail: "failed on purpose".into(),
    }
}

impl MemoryWords {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `times` calls of `operation` (`apply_chunk`, `counts`) fail.
    pub fn fail(&self, operation: &'static str, times: usize, fault: Fault) {
        lock(&self.state).faults.insert(operation, (times, fault));
    }

    /// The word's count, if it was ever counted.
    pub fn count(&self, word: &str) -> Option<i64> {
        lock(&self.state).counts.get(word).copied()
    }

    /// Every call made so far, in order (`apply_chunk #count#m#0`, `counts`).
    pub fn calls(&self) -> Vec<String> {
        lock(&self.state).calls.clone()
    }
}

impl WordCountStore for MemoryWords {
    async fn apply_chunk(
        &self,
        key: &str,
        deltas: &[(String, i64)],
        _ttl: Duration,
    ) -> Result<ChunkOutcome, StoreError> {
        let mut state = lock(&self.state);
        state.calls.push(format!("apply_chunk {key}"));
        let fault = state.fault("apply_chunk");
        if fault == Some(Fault::Before) {
            return Err(failed("apply_chunk"));
        }
        let outcome = if state.claims.insert(key.to_owned()) {
            for (word, delta) in deltas {
                *state.counts.entry(word.clone()).or_default() += delta;
            }
            ChunkOutcome::Applied
        } else {
            ChunkOutcome::AlreadyApplied
        };
        match fault {
            Some(_) => Err(failed("apply_chunk")),
            None => Ok(outcome),
        }
    }

    async fn counts(&self, words: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        let mut state = lock(&self.state);
        state.calls.push("counts".into());
        if state.fault("counts").is_some() {
            return Err(failed("counts"));
        }
        Ok(words
            .iter()
            .filter_map(|w| state.counts.get(w).map(|n| (w.clone(), *n)))
            .collect())
    }
}

/// Keeps every message it publishes.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    published: Mutex<Vec<WordsMessage>>,
    faults: Mutex<(usize, Option<Fault>)>,
}

impl MemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `times` publishes fail.
    pub fn fail(&self, times: usize, fault: Fault) {
        *lock(&self.faults) = (times, Some(fault));
    }

    /// What was published, in order.
    pub fn published(&self) -> Vec<WordsMessage> {
        lock(&self.published).clone()
    }
}

impl Publish for MemoryPublisher {
    async fn publish(&self, message: &WordsMessage) -> Result<(), PublishError> {
        let fault = {
            let mut faults = lock(&self.faults);
            match &mut *faults {
                (left, Some(fault)) if *left > 0 => {
                    *left -= 1;
                    Some(*fault)
                }
                _ => None,
            }
        };
        if fault != Some(Fault::Before) {
            lock(&self.published).push(message.clone());
        }
        match fault {
            Some(_) => Err(PublishError {
                operation: "publish",
                destination: "memory".into(),
                detail: "failed on purpose".into(),
            }),
            None => Ok(()),
        }
    }
}

impl Leaderboard for MemoryWords {
    async fn top(
        &self,
        n: usize,
        skip: fn(&str) -> bool,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut state = lock(&self.state);
        state.calls.push("top".into());
        if state.fault("top").is_some() {
            return Err(failed("top"));
        }
        let counts = state
            .counts
            .iter()
            .filter(|(word, _)| !skip(word))
            .map(|(word, count)| (word.clone(), *count))
            .collect();
        Ok(best_of([counts], n))
    }
}

impl MemoryWords {
    /// Lets every running reply lease expire, as time passing would.
    pub fn expire_leases(&self) {
        for state in lock(&self.state).replies.values_mut() {
            if let ReplyState::Leased { expired } = state {
                *expired = true;
            }
        }
    }
}

impl ReplyClaims for MemoryWords {
    async fn claim(&self, message_id: &str, _lease: Duration) -> Result<Claim, StoreError> {
        let mut state = lock(&self.state);
        state.calls.push(format!("claim {message_id}"));
        let claim = match state.replies.get(message_id) {
            None => Claim::Taken {
                after_an_attempt: false,
            },
            Some(ReplyState::Done) => Claim::Done,
            Some(ReplyState::Leased { expired: false }) => Claim::Busy,
            Some(ReplyState::Leased { expired: true }) => Claim::Taken {
                after_an_attempt: true,
            },
        };
        if let Claim::Taken { .. } = claim {
            state
                .replies
                .insert(message_id.to_owned(), ReplyState::Leased { expired: false });
        }
        Ok(claim)
    }

    async fn done(&self, message_id: &str, _outcome: &str) -> Result<(), StoreError> {
        lock(&self.state)
            .replies
            .insert(message_id.to_owned(), ReplyState::Done);
        Ok(())
    }
}

/// Slack's Web API in memory: the replies posted, and failures to meet.
#[derive(Debug, Default)]
pub struct MemorySlack {
    state: Mutex<SlackState>,
}

#[derive(Debug, Default)]
struct SlackState {
    posts: Vec<Reply>,
    responses: Vec<(String, String)>,
    attempts: usize,
    failures: Vec<WebError>,
    lost_answers: usize,
}

impl MemorySlack {
    pub fn new() -> Self {
        Self::default()
    }

    /// The replies posted, in order.
    pub fn posts(&self) -> Vec<Reply> {
        lock(&self.state).posts.clone()
    }

    /// The answers posted to response URLs, as `(url, text)`.
    pub fn responses(&self) -> Vec<(String, String)> {
        lock(&self.state).responses.clone()
    }

    /// How many posts were tried.
    pub fn attempts(&self) -> usize {
        lock(&self.state).attempts
    }

    /// The next post fails with `error`, before it is posted.
    pub fn fail_next(&self, error: WebError) {
        lock(&self.state).failures.push(error);
    }

    /// The next `n` posts are posted, but their answers are lost (a poster killed mid-way).
    pub fn lose_answers(&self, n: usize) {
        lock(&self.state).lost_answers = n;
    }
}

impl SlackWeb for MemorySlack {
    async fn post(&self, reply: &Reply) -> Result<(), WebError> {
        let mut state = lock(&self.state);
        state.attempts += 1;
        if !state.failures.is_empty() {
            return Err(state.failures.remove(0));
        }
        state.posts.push(reply.clone());
        if state.lost_answers > 0 {
            state.lost_answers -= 1;
            return Err(WebError::Transient("the answer was lost".into()));
        }
        Ok(())
    }

    async fn respond(&self, response_url: &str, text: &str) -> Result<(), WebError> {
        let mut state = lock(&self.state);
        state.attempts += 1;
        if !state.failures.is_empty() {
            return Err(state.failures.remove(0));
        }
        state
            .responses
            .push((response_url.to_owned(), text.to_owned()));
        Ok(())
    }

    async fn already_posted(&self, reply: &Reply) -> Result<bool, WebError> {
        Ok(lock(&self.state)
            .posts
            .iter()
            .any(|p| p.message_id == reply.message_id && p.thread_ts == reply.thread_ts))
    }
}
