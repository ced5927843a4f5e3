//! In-memory implementations of the [`crate::store`] traits, for tests of the protocols: a
//! word-count store with its records, and a publisher that keeps what it published. Both can
//! be told to fail calls, so that tests break the world mid-way.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::message::WordsMessage;
use crate::store::{
    AddOutcome, Claim, ClaimStore, Progress, Publish, PublishError, StoreError, WordCountStore,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Record {
    Claimed,
    Partial(Progress),
    Done,
}

#[derive(Debug, Default)]
struct State {
    counts: HashMap<String, i64>,
    records: HashMap<String, Record>,
    /// Calls still to fail, by operation (`claim`, `counts`, `save_progress`, `mark_done`) or
    /// by word for `add`.
    failures: HashMap<String, usize>,
    calls: Vec<String>,
}

impl State {
    /// Whether this call should fail, counting it down.
    fn fails(&mut self, what: &str) -> bool {
        match self.failures.get_mut(what) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Word counts and records, in memory. Record TTLs are not modelled: a record lives forever.
#[derive(Debug, Default)]
pub struct MemoryWords {
    state: Mutex<State>,
}

fn failed(operation: &'static str) -> StoreError {
    StoreError {
        operation,
        store: "memory".into(),
        detail: "failed on purpose".into(),
    }
}

impl MemoryWords {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the next `times` calls of `operation` fail (`claim`, `counts`, `save_progress`,
    /// `mark_done`).
    pub fn fail(&self, operation: &str, times: usize) {
        self.state().failures.insert(operation.to_owned(), times);
    }

    /// Makes the next `times` adds of `word` fail.
    pub fn fail_word(&self, word: &str, times: usize) {
        self.state().failures.insert(format!("add:{word}"), times);
    }

    /// The word's count, if it was ever counted.
    pub fn count(&self, word: &str) -> Option<i64> {
        self.state().counts.get(word).copied()
    }

    /// Every call made so far, in order (`add:word`, `claim`…).
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }
}

impl WordCountStore for MemoryWords {
    async fn add(&self, deltas: &[(String, i64)]) -> AddOutcome {
        let mut state = self.state();
        let mut outcome = AddOutcome::default();
        for (word, delta) in deltas {
            let call = format!("add:{word}");
            state.calls.push(call.clone());
            if state.fails(&call) {
                outcome.failed.push((word.clone(), failed("add")));
                continue;
            }
            let count = state.counts.entry(word.clone()).or_default();
            *count += delta;
            outcome.applied.push((word.clone(), *count));
        }
        outcome
    }

    async fn counts(&self, words: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        let mut state = self.state();
        state.calls.push("counts".into());
        if state.fails("counts") {
            return Err(failed("counts"));
        }
        Ok(words
            .iter()
            .filter_map(|w| state.counts.get(w).map(|n| (w.clone(), *n)))
            .collect())
    }
}

impl ClaimStore for MemoryWords {
    async fn claim(&self, key: &str, _ttl: Duration) -> Result<Claim, StoreError> {
        let mut state = self.state();
        state.calls.push("claim".into());
        if state.fails("claim") {
            return Err(failed("claim"));
        }
        match state.records.get(key) {
            None => {
                state.records.insert(key.to_owned(), Record::Claimed);
                Ok(Claim::New)
            }
            Some(Record::Partial(progress)) => Ok(Claim::Resume(progress.clone())),
            Some(Record::Claimed | Record::Done) => Ok(Claim::Done),
        }
    }

    async fn save_progress(
        &self,
        key: &str,
        progress: &Progress,
        _ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.calls.push("save_progress".into());
        if state.fails("save_progress") {
            return Err(failed("save_progress"));
        }
        state
            .records
            .insert(key.to_owned(), Record::Partial(progress.clone()));
        Ok(())
    }

    async fn mark_done(&self, key: &str, _ttl: Duration) -> Result<(), StoreError> {
        let mut state = self.state();
        state.calls.push("mark_done".into());
        if state.fails("mark_done") {
            return Err(failed("mark_done"));
        }
        state.records.insert(key.to_owned(), Record::Done);
        Ok(())
    }
}

/// Keeps every message it publishes.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    published: Mutex<Vec<WordsMessage>>,
    failures: Mutex<usize>,
}

impl MemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `times` publishes fail.
    pub fn fail(&self, times: usize) {
        *self.failures.lock().unwrap_or_else(|p| p.into_inner()) = times;
    }

    /// What was published, in order.
    pub fn published(&self) -> Vec<WordsMessage> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Publish for MemoryPublisher {
    async fn publish(&self, message: &WordsMessage) -> Result<(), PublishError> {
        {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if *failures > 0 {
                *failures -= 1;
                return Err(PublishError {
                    operation: "publish",
                    destination: "memory".into(),
                    detail: "failed on purpose".into(),
                });
            }
        }
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message.clone());
        Ok(())
    }
}
