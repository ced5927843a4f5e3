//! The replier's protocol: an Events API message's counts posted in its thread once, however
//! often the message is delivered, raced, or its poster killed mid-way.
//!
//! A claim with a lease (in the words table) lets one attempt post at a time. An attempt that
//! finds an earlier, expired claim does not know whether that attempt posted before it died:
//! it looks in the thread for a reply carrying the message's id in its metadata and posts only
//! if there is none. Then the claim is marked done, and later deliveries post nothing.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use crate::store::StoreError;

/// The most words a reply lists; the rest are summed up as `…and N more`.
pub const MAX_REPLY_WORDS: usize = 50;
/// The longest reply, in characters.
pub const MAX_REPLY_CHARS: usize = 3000;
/// The metadata event type of the app's replies (chat.postMessage `metadata`).
pub const REPLY_EVENT_TYPE: &str = "fanout_counts";
/// How many `ratelimited` answers one attempt waits out before leaving the message for a
/// redelivery.
pub const RATE_LIMIT_WAITS: u32 = 2;
/// The longest `Retry-After` one attempt waits; a longer one leaves it to a redelivery. Two
/// waits stay well inside the function's 10-second timeout, and its 30-second lease.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3);

/// A reply to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The Slack message replied to (`team:channel:ts`): the key of its claim, and the metadata
    /// that finds the reply in the thread.
    pub message_id: String,
    pub channel: String,
    pub thread_ts: String,
    pub text: String,
}

/// `word: N, word: N` for the message's words, at most [`MAX_REPLY_WORDS`] of them and
/// [`MAX_REPLY_CHARS`] characters, then `…and N more`.
pub fn counts_text<'a>(
    words: impl IntoIterator<Item = &'a str>,
    counts: &HashMap<String, i64>,
) -> String {
    let listed: Vec<String> = words
        .into_iter()
        .filter_map(|word| counts.get(word).map(|n| format!("{word}: {n}")))
        .collect();
    let mut text = String::new();
    let mut shown = 0;
    for (i, entry) in listed.iter().enumerate() {
        let more = listed.len() - i;
        // Room for this entry, and for the longest "…and N more" that could follow it.
        let tail = format!(", …and {more} more");
        let separator = if i == 0 { 0 } else { 2 };
        let fits = text.chars().count() + separator + entry.chars().count() + tail.chars().count()
            <= MAX_REPLY_CHARS;
        if i == MAX_REPLY_WORDS || !fits {
            break;
        }
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(entry);
        shown += 1;
    }
    if shown < listed.len() {
        if shown > 0 {
            text.push_str(", ");
        }
        text.push_str(&format!("…and {} more", listed.len() - shown));
    }
    text
}

/// What taking a message's claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This attempt may post. `after_an_attempt`: an earlier attempt's lease expired, and it
    /// may have posted before it stopped.
    Taken { after_an_attempt: bool },
    /// Another attempt holds the lease now.
    Busy,
    /// The reply was posted (or can never be): nothing to do.
    Done,
}

/// The records that make a reply happen once.
pub trait ReplyClaims: Send + Sync {
    /// Takes the claim of `message_id` for `lease`, unless it is done or another attempt's
    /// lease runs.
    fn claim(
        &self,
        message_id: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks the claim done, with what happened (`posted`, `already posted`, a Slack error).
    fn done(
        &self,
        message_id: &str,
        outcome: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why Slack's Web API did not take a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebError {
    /// HTTP 429 (`ratelimited`): to be tried again after the delay.
    #[error("rate limited by Slack: retry after {} s", .0.as_secs())]
    RateLimited(Duration),
    /// An error no retry can fix (`not_in_channel`, `channel_not_found`, `invalid_auth`…).
    #[error("Slack answered {0:?}, which no retry fixes")]
    Permanent(String),
    /// A 5xx, a timeout, a connection that failed: another attempt may succeed.
    #[error("Slack's Web API failed: {0}")]
    Transient(String),
}

/// The two Web API calls a reply needs.
pub trait SlackWeb: Send + Sync {
    /// `chat.postMessage` in the thread, with the message id in its metadata.
    fn post(&self, reply: &Reply) -> impl Future<Output = Result<(), WebError>> + Send;

    /// Whether the thread already holds the app's reply to `reply.message_id`
    /// (`conversations.replies`, with metadata).
    fn already_posted(&self, reply: &Reply) -> impl Future<Output = Result<bool, WebError>> + Send;

    /// Posts a slash command's answer to its `response_url`, to the channel.
    fn respond(
        &self,
        response_url: &str,
        text: &str,
    ) -> impl Future<Output = Result<(), WebError>> + Send;
}

/// What replying did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replied {
    Posted,
    /// An earlier attempt posted it (found in the thread, or the claim was done).
    AlreadyPosted,
    /// Slack refused it for good: logged, marked done, never tried again.
    Refused(String),
}

/// Why a reply is left for a redelivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("another attempt is posting this reply")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Web(WebError),
    /// A handed-over slash command's counting failed.
    #[error(transparent)]
    Count(#[from] crate::once::ApplyError),
}

/// Posts `reply` once (module docs). `wait` sleeps (tests pass a clock that records instead).
pub async fn reply_once<C, W, F, Fut>(
    claims: &C,
    web: &W,
    reply: &Reply,
    lease: Duration,
    wait: F,
) -> Result<Replied, ReplyError>
where
    C: ReplyClaims,
    W: SlackWeb,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let after_an_attempt = match claims.claim(&reply.message_id, lease).await? {
        Claim::Done => return Ok(Replied::AlreadyPosted),
        Claim::Busy => return Err(ReplyError::Busy),
        Claim::Taken { after_an_attempt } => after_an_attempt,
    };
    if after_an_attempt {
        match web.already_posted(reply).await {
            Ok(true) => {
                claims.done(&reply.message_id, "already posted").await?;
                return Ok(Replied::AlreadyPosted);
            }
            Ok(false) => {}
            // not_in_channel, missing_scope…: a post would meet the same.
            Err(WebError::Permanent(code)) => {
                claims.done(&reply.message_id, &code).await?;
                return Ok(Replied::Refused(code));
            }
            Err(err) => return Err(ReplyError::Web(err)),
        }
    }
    post_and_mark(claims, &reply.message_id, || web.post(reply), wait).await
}

/// Posts, waiting out rate limits, then marks the claim done: posted, or refused for good.
async fn post_and_mark<C, P, PFut, F, Fut>(
    claims: &C,
    message_id: &str,
    post: P,
    wait: F,
) -> Result<Replied, ReplyError>
where
    C: ReplyClaims,
    P: Fn() -> PFut,
    PFut: Future<Output = Result<(), WebError>>,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut waits = 0;
    loop {
        match post().await {
            Ok(()) => {
                claims.done(message_id, "posted").await?;
                return Ok(Replied::Posted);
            }
            Err(WebError::RateLimited(delay))
                if waits < RATE_LIMIT_WAITS && delay <= MAX_RATE_LIMIT_WAIT =>
            {
                waits += 1;
                wait(delay).await;
            }
            Err(WebError::Permanent(code)) => {
                claims.done(message_id, &code).await?;
                return Ok(Replied::Refused(code));
            }
            Err(err) => return Err(ReplyError::Web(err)),
        }
    }
}

/// Posts a slash command's late answer to its `response_url` once, under the same claims as a
/// threaded reply. A response URL cannot be read back, so an attempt that died after Slack
/// took its answer and before the claim was marked done is followed by a second answer: once,
/// except in that window (docs/slack.md).
pub async fn respond_once<C, W, F, Fut>(
    claims: &C,
    web: &W,
    message_id: &str,
    response_url: &str,
    text: &str,
    lease: Duration,
    wait: F,
) -> Result<Replied, ReplyError>
where
    C: ReplyClaims,
    W: SlackWeb,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    match claims.claim(message_id, lease).await? {
        Claim::Done => return Ok(Replied::AlreadyPosted),
        Claim::Busy => return Err(ReplyError::Busy),
        Claim::Taken { .. } => {}
    }
    post_and_mark(claims, message_id, || web.respond(response_url, text), wait).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemorySlack, MemoryWords};
    use futures::FutureExt;

    fn reply(id: &str) -> Reply {
        Reply {
            message_id: id.into(),
            channel: "C1".into(),
            thread_ts: "1.0".into(),
            text: "hello: 1".into(),
        }
    }

    const LEASE: Duration = Duration::from_secs(30);

    async fn run(
        claims: &MemoryWords,
        slack: &MemorySlack,
        id: &str,
    ) -> Result<Replied, ReplyError> {
        reply_once(claims, slack, &reply(id), LEASE, |_| async {}).await
    }

    #[test]
    fn replies_are_capped_and_say_how_many_more() {
        let counts: HashMap<String, i64> = (0..80).map(|i| (format!("w{i}"), i)).collect();
        let words: Vec<String> = (0..80).map(|i| format!("w{i}")).collect();
        let text = counts_text(words.iter().map(String::as_str), &counts);
        assert!(text.starts_with("w0: 0, w1: 1"), "{text}");
        assert!(text.ends_with(", w49: 49, …and 30 more"), "{text}");
        let long: String = "x".repeat(120);
        let counts: HashMap<String, i64> = (0..40).map(|i| (format!("{long}{i}"), 1)).collect();
        let words: Vec<String> = (0..40).map(|i| format!("{long}{i}")).collect();
        let text = counts_text(words.iter().map(String::as_str), &counts);
        assert!(text.chars().count() <= MAX_REPLY_CHARS, "{}", text.len());
        assert!(text.ends_with(" more"), "{text}");
        assert_eq!(
            counts_text(
                ["a", "b"],
                &HashMap::from([("a".into(), 2), ("b".into(), 12)])
            ),
            "a: 2, b: 12"
        );
    }

    #[test]
    fn a_reply_is_posted_once_however_often_it_is_delivered() {
        let (claims, slack) = (MemoryWords::new(), MemorySlack::new());
        for _ in 0..3 {
            run(&claims, &slack, "T:C1:1.0")
                .now_or_never()
                .unwrap()
                .unwrap();
        }
        assert_eq!(slack.posts().len(), 1);
    }

    #[test]
    fn a_poster_that_died_after_posting_is_not_followed_by_a_second_post() {
        let (claims, slack) = (MemoryWords::new(), MemorySlack::new());
        // The first attempt posts, then dies before marking its claim done; its lease expires.
        slack.lose_answers(1);
        let first = run(&claims, &slack, "T:C1:1.0").now_or_never().unwrap();
        assert!(
            matches!(first, Err(ReplyError::Web(WebError::Transient(_)))),
            "{first:?}"
        );
        assert_eq!(slack.posts().len(), 1);
        // A second attempt while the lease runs stands back.
        let busy = run(&claims, &slack, "T:C1:1.0").now_or_never().unwrap();
        assert_eq!(busy, Err(ReplyError::Busy));
        claims.expire_leases();
        let again = run(&claims, &slack, "T:C1:1.0").now_or_never().unwrap();
        assert_eq!(again, Ok(Replied::AlreadyPosted));
        assert_eq!(slack.posts().len(), 1);
        // A poster that died before posting: the next attempt posts.
        slack.fail_next(WebError::Transient("connection reset".into()));
        assert!(run(&claims, &slack, "T:C1:2.0")
            .now_or_never()
            .unwrap()
            .is_err());
        claims.expire_leases();
        assert_eq!(
            run(&claims, &slack, "T:C1:2.0").now_or_never().unwrap(),
            Ok(Replied::Posted)
        );
        assert_eq!(slack.posts().len(), 2);
    }

    #[test]
    fn rate_limits_are_waited_out_and_permanent_errors_end_the_reply() {
        let (claims, slack) = (MemoryWords::new(), MemorySlack::new());
        slack.fail_next(WebError::RateLimited(Duration::from_secs(1)));
        let waited = std::sync::Mutex::new(Vec::new());
        let replied = reply_once(&claims, &slack, &reply("T:C1:3.0"), LEASE, |d| {
            waited.lock().unwrap().push(d);
            async {}
        })
        .now_or_never()
        .unwrap();
        assert_eq!(replied, Ok(Replied::Posted));
        assert_eq!(*waited.lock().unwrap(), vec![Duration::from_secs(1)]);
        assert_eq!(slack.posts().len(), 1);

        slack.fail_next(WebError::Permanent("invalid_auth".into()));
        let refused = run(&claims, &slack, "T:C1:4.0").now_or_never().unwrap();
        assert_eq!(refused, Ok(Replied::Refused("invalid_auth".into())));
        // Done: a redelivery does not try again.
        assert_eq!(
            run(&claims, &slack, "T:C1:4.0").now_or_never().unwrap(),
            Ok(Replied::AlreadyPosted)
        );
        assert_eq!(slack.attempts(), 3);

        // A delay longer than an attempt waits is left to a redelivery.
        slack.fail_next(WebError::RateLimited(
            MAX_RATE_LIMIT_WAIT + Duration::from_secs(1),
        ));
        let left = run(&claims, &slack, "T:C1:5.0").now_or_never().unwrap();
        assert!(matches!(
            left,
            Err(ReplyError::Web(WebError::RateLimited(_)))
        ));
    }
}
