//! Where a message that can never be applied goes: a dead-letter queue, at once, with the
//! reason, instead of after every retry the queue allows.
//!
//! The SQS implementation lives in an adapter crate (fanout-sqs); [`MemoryDeadLetters`] keeps
//! them in memory, for tests.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use crate::message::preview;

/// The longest reason sent with a dead letter, in characters: the reason travels beside the
/// message, which has its own size limit.
pub const MAX_REASON_CHARS: usize = 1000;

/// Why a message could not be dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead-letter queue is configured")]
    NotConfigured,
    #[error("{operation} to {destination} failed: {detail}")]
    Failed {
        /// The call, as the queue names it (`SQS SendMessage`).
        operation: &'static str,
        /// Where to: a queue URL, say.
        destination: String,
        detail: String,
    },
}

/// A queue for messages that failed permanently.
pub trait DeadLetters: Send + Sync {
    /// Sends `body`, the message as it was delivered, with `reason`, why it can never be applied.
    fn send(
        &self,
        body: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
}

/// No dead-letter queue: every send fails with [`DeadLetterError::NotConfigured`], so the
/// message stays where it is (an SQS queue's own redrive policy dead-letters it in the end).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeadLetters;

impl DeadLetters for NoDeadLetters {
    async fn send(&self, _body: &str, _reason: &str) -> Result<(), DeadLetterError> {
        Err(DeadLetterError::NotConfigured)
    }
}

/// A function whose queue is optional: `None` is [`NoDeadLetters`].
impl<D: DeadLetters> DeadLetters for Option<D> {
    async fn send(&self, body: &str, reason: &str) -> Result<(), DeadLetterError> {
        match self {
            Some(queue) => queue.send(body, reason).await,
            None => Err(DeadLetterError::NotConfigured),
        }
    }
}

/// `reason`, cut to at most [`MAX_REASON_CHARS`] characters (with `…` where it was cut).
pub fn bounded_reason(reason: &str) -> String {
    preview(reason, MAX_REASON_CHARS)
}

/// A message sent to a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: String,
    pub reason: String,
}

/// Dead letters kept in memory; it can be told to fail sends.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    state: Mutex<(Vec<DeadLetter>, usize)>,
}

impl MemoryDeadLetters {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, (Vec<DeadLetter>, usize)> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the next `times` sends fail.
    pub fn fail(&self, times: usize) {
        self.state().1 = times;
    }

    /// What was sent, in order.
    pub fn sent(&self) -> Vec<DeadLetter> {
        self.state().0.clone()
    }
}

impl DeadLetters for MemoryDeadLetters {
    async fn send(&self, body: &str, reason: &str) -> Result<(), DeadLetterError> {
        let mut state = self.state();
        if state.1 > 0 {
            state.1 -= 1;
            return Err(DeadLetterError::Failed {
                operation: "send",
                destination: "memory".into(),
                detail: "failed on purpose".into(),
            });
        }
        state.0.push(DeadLetter {
            body: body.to_owned(),
            reason: reason.to_owned(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_keeps_what_was_sent_and_fails_when_told() {
        let queue = MemoryDeadLetters::new();
        queue.fail(1);
        assert!(matches!(
            queue.send("a", "why").await,
            Err(DeadLetterError::Failed { .. })
        ));
        queue.send("b", "because").await.unwrap();
        assert_eq!(
            queue.sent(),
            vec![DeadLetter {
                body: "b".into(),
                reason: "because".into()
            }]
        );
    }

    #[tokio::test]
    async fn without_a_queue_nothing_is_sent() {
        assert_eq!(
            NoDeadLetters.send("a", "why").await,
            Err(DeadLetterError::NotConfigured)
        );
        let none: Option<MemoryDeadLetters> = None;
        assert_eq!(
            none.send("a", "why").await,
            Err(DeadLetterError::NotConfigured)
        );
        let some = Some(MemoryDeadLetters::new());
        some.send("a", "why").await.unwrap();
        assert_eq!(some.as_ref().unwrap().sent().len(), 1);
    }

    #[test]
    fn reasons_are_bounded() {
        assert_eq!(bounded_reason("short"), "short");
        let exact = "é".repeat(MAX_REASON_CHARS);
        assert_eq!(bounded_reason(&exact), exact);
        let long = bounded_reason(&"é".repeat(MAX_REASON_CHARS + 1));
        assert_eq!(long.chars().count(), MAX_REASON_CHARS);
        assert!(long.ends_with('…'));
    }
}
