//! Request-rate control: how many copy requests a copier keeps in flight to each destination
//! bucket, adapted to S3's `SlowDown` (docs/copy.md). S3 allows about 3,500 writes a second
//! per prefix and answers 503 `SlowDown` above that; the SDK retries such an answer a few
//! times, and a copy whose retries all meet it fails. [`Aimd`] halves a bucket's limit when S3
//! slows it down (once per [`COOLDOWN`], so that one burst of refusals counts once) and raises
//! it by one after a limit's worth of answers without a refusal, from 1 up to the copier's
//! concurrency: additive increase, multiplicative decrease, as TCP does.
//!
//! The store reports each answer through [`Pace`]; the copier takes a [`Slot`] before each
//! copy request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// What the store tells about S3's answers, attempt by attempt (the SDK's retries included).
pub trait Pace: Send + Sync + std::fmt::Debug {
    /// A request to `bucket` was answered 503 (`SlowDown`).
    fn slowed(&self, bucket: &str);
    /// A request to `bucket` was answered without being slowed down.
    fn answered(&self, bucket: &str);
}

/// The shortest time between two cuts of one bucket's limit: the refusals of requests already
/// in flight when the first came are one signal, not many.
pub const COOLDOWN: Duration = Duration::from_secs(1);

/// One bucket's window.
#[derive(Debug)]
struct Window {
    limit: usize,
    in_flight: usize,
    /// Answers without a refusal since the limit last grew or was cut.
    answered: usize,
    last_cut: Option<Instant>,
    /// The lowest the limit has been, and how often it was cut: for reports.
    lowest: usize,
    cuts: u64,
    raises: u64,
}

/// Additive increase, multiplicative decrease of the copy requests in flight per bucket.
#[derive(Debug)]
pub struct Aimd {
    ceiling: usize,
    windows: Mutex<HashMap<String, Window>>,
    freed: Notify,
}

/// What [`Aimd`] did to one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceReport {
    pub limit: usize,
    pub lowest: usize,
    pub cuts: u64,
    /// Times the limit grew by one.
    pub raises: u64,
}

impl Aimd {
    /// At most `ceiling` requests in flight to a bucket, and as many until S3 slows it down.
    pub fn new(ceiling: usize) -> Aimd {
        Aimd {
            ceiling: ceiling.max(1),
            windows: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }
    }

    fn with_window<T>(&self, bucket: &str, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut windows = self.windows.lock().expect("pace lock");
        let window = windows.entry(bucket.to_owned()).or_insert(Window {
            limit: self.ceiling,
            in_flight: 0,
            answered: 0,
            last_cut: None,
            lowest: self.ceiling,
            cuts: 0,
            raises: 0,
        });
        f(window)
    }

    /// Waits until a request to `bucket` may start; the slot is given back when dropped.
    pub async fn acquire(self: &Arc<Self>, bucket: &str) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let taken = self.with_window(bucket, |window| {
                let free = window.in_flight < window.limit;
                if free {
                    window.in_flight += 1;
                }
                free
            });
            if taken {
                return Slot {
                    pace: self.clone(),
                    bucket: bucket.to_owned(),
                };
            }
            freed.await;
        }
    }

    /// Where a bucket's limit stands.
    pub fn report(&self, bucket: &str) -> PaceReport {
        self.with_window(bucket, |window| PaceReport {
            limit: window.limit,
            lowest: window.lowest,
            cuts: window.cuts,
            raises: window.raises,
        })
    }
}

impl Pace for Aimd {
    fn slowed(&self, bucket: &str) {
        let now = Instant::now();
        self.with_window(bucket, |window| {
            if window.last_cut.is_some_and(|at| now - at < COOLDOWN) {
                return;
            }
            window.limit = (window.limit / 2).max(1);
            window.lowest = window.lowest.min(window.limit);
            window.answered = 0;
            window.last_cut = Some(now);
            window.cuts += 1;
            tracing::info!(%bucket, limit = window.limit, "S3 slowed the copies down: fewer requests in flight");
        });
    }

    fn answered(&self, bucket: &str) {
        let grew = self.with_window(bucket, |window| {
            window.answered += 1;
            if window.answered >= window.limit && window.limit < self.ceiling {
                window.limit += 1;
                window.answered = 0;
                window.raises += 1;
                true
            } else {
                false
            }
        });
        if grew {
            self.freed.notify_waiters();
        }
    }
}

/// A copy request in flight to a bucket.
#[derive(Debug)]
pub struct Slot {
    pace: Arc<Aimd>,
    bucket: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pace.with_window(&self.bucket, |window| {
            window.in_flight = window.in_flight.saturating_sub(1)
        });
        self.pace.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limit_halves_on_slowdown_once_per_cooldown_and_grows_back_by_one() {
        let pace = Arc::new(Aimd::new(64));
        assert_eq!(pace.report("b").limit, 64);
        pace.slowed("b");
        // A burst of refusals from requests already in flight counts once.
        pace.slowed("b");
        pace.slowed("b");
        assert_eq!(pace.report("b").limit, 32);
        tokio::time::advance(COOLDOWN).await;
        pace.slowed("b");
        assert_eq!(pace.report("b").limit, 16);
        // Another bucket is not slowed down.
        assert_eq!(pace.report("other").limit, 64);
        // 16 answers: one more; 17 more: one more.
        for _ in 0..16 {
            pace.answered("b");
        }
        assert_eq!(pace.report("b").limit, 17);
        for _ in 0..17 {
            pace.answered("b");
        }
        assert_eq!(pace.report("b").limit, 18);
        for _ in 0..10 {
            tokio::time::advance(COOLDOWN).await;
            pace.slowed("b");
        }
        assert_eq!(
            pace.report("b"),
            PaceReport {
                limit: 1,
                lowest: 1,
                cuts: 12,
                raises: 2
            }
        );
        // Never above the ceiling.
        for _ in 0..10_000 {
            pace.answered("b");
        }
        assert_eq!(pace.report("b").limit, 64);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_requests_are_in_flight_than_the_limit() {
        let pace = Arc::new(Aimd::new(4));
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        pace.slowed("b");
        assert_eq!(pace.report("b").limit, 2);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (pace, in_flight, most) = (pace.clone(), in_flight.clone(), most.clone());
                tokio::spawn(async move {
                    let _slot = pace.acquire("b").await;
                    let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    pace.answered("b");
                })
            })
            .collect();
        for task in tasks {
            // A lost wakeup would hang here: fail instead.
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("every request got its slot")
                .unwrap();
        }
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        // Two at first, then more as answers come back: never above the limit of the moment,
        // which grew to at most 4.
        assert!((2..=4).contains(&most), "{most} at once");
        assert!(pace.report("b").limit > 2);
    }
}
