//! The story the demo tells, step by step, and what each step must produce.

use serde_json::json;

use super::{now, show, summary, Demo, Transcript};
use crate::settings::{SIGNING_SECRET, VERIFICATION_TOKEN};

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

impl Demo<'_> {
    pub(super) async fn run(&self, t: &mut Transcript) {
        let run_stamp = now();
        self.original_story(t, run_stamp).await;
        let event = self.signed_message(t, run_stamp).await;
        self.forged_message(t, &event).await;
        self.backups(t).await;
        t.step(6, "The post-deploy smoke test, against this local stack");
        self.smoke_test(t).await;
        self.leaderboard(t).await;
    }

    /// Step 7: the leaderboard, asked with a slash command.
    async fn leaderboard(&self, t: &mut Transcript) {
        t.step(7, "The leaderboard: /wordcount top 3");
        let command = serde_urlencoded::to_string([
            ("token", VERIFICATION_TOKEN),
            ("team_id", "T0DEMO"),
            ("channel_id", "C0DEMO"),
            ("user_id", "U0DEMO"),
            ("command", "/wordcount"),
            ("text", "top 3"),
            ("trigger_id", &format!("{}.demo.top", now())),
        ])
        .unwrap_or_default();
        let (status, text) = self.post_signed(&command, FORM).await;
        let first = text.lines().next().unwrap_or_default().to_owned();
        t.check(
            "the three most counted words, awsadvent first, only to the one who asked",
            status == 200 && text.lines().count() == 3 && first.starts_with("1. awsadvent: "),
            format!("{status} {}", text.replace('\n', " | ")),
        );
    }

    /// Waits for the stand-in Slack Web API to receive a reply in `thread_ts`.
    async fn wait_for_reply(&self, channel: &str, thread_ts: &str) -> Option<String> {
        let stand_in = self.stack.slack_stand_in.as_ref()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let reply = stand_in
                .posts()
                .into_iter()
                .find(|p| p.channel == channel && p.thread_ts.as_deref() == Some(thread_ts));
            if reply.is_some() || std::time::Instant::now() > deadline {
                return reply.map(|p| p.text);
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Step 1: a Slack outgoing webhook counts words, the multiplier and the logger follow.
    async fn original_story(&self, t: &mut Transcript, run_stamp: u64) {
        t.step(
            1,
            "The original's story: \"awsadvent some words\" as a Slack outgoing webhook",
        );
        let first_ts = format!("{run_stamp}.000100");
        let (status, text) = self
            .post_signed(&webhook("awsadvent some words", &first_ts), FORM)
            .await;
        t.check(
            "slack-counter replies with the counts",
            status == 200 && text == "awsadvent: 1, some: 1, words: 1",
            format!("{status} {text:?}"),
        );

        t.note("WordsTopic → MultiplierQueue → sns-multiplier adds 10 to each word…");
        let counts = self
            .wait_for_counts(&["awsadvent", "some", "words"], 11)
            .await;
        t.check(
            "sns-multiplier took every word to 11",
            counts.iter().all(|(_, n)| *n == Some(11)),
            show(&counts),
        );

        let second = webhook("awsadvent some words", &format!("{run_stamp}.000200"));
        let (status, text) = self.post_signed(&second, FORM).await;
        // The reply reads the counts while the message is published, so the multiplier's 10 for
        // this very message may already be in them (docs/counting.md, "what exactly once means").
        t.check(
            "the same words as a new message",
            status == 200
                && (text == "awsadvent: 12, some: 12, words: 12"
                    || text == "awsadvent: 22, some: 22, words: 22"),
            format!("{status} {text:?}"),
        );
        let counts = self
            .wait_for_counts(&["awsadvent", "some", "words"], 22)
            .await;
        t.check(
            "and sns-multiplier added its 10 once: 22",
            counts.iter().all(|(_, n)| *n == Some(22)),
            show(&counts),
        );

        let message_id = format!("C0DEMO:{first_ts}");
        let line = self.wait_for_log_line(&message_id).await;
        t.check(
            "sns-logger wrote one JSON line for the message",
            line.is_some(),
            line.clone().unwrap_or_else(|| "no line".into()),
        );
    }

    /// Step 2: an Events API message, signed; returns its body for step 3 to forge.
    async fn signed_message(&self, t: &mut Transcript, run_stamp: u64) -> String {
        t.step(2, "A signed Events API message");
        let event = json!({"token": VERIFICATION_TOKEN, "team_id": "T0DEMO", "type": "event_callback", "event_id": format!("Ev{run_stamp}"),
            "event": {"type": "message", "channel": "C0DEMO", "user": "U0DEMO", "text": "Signed events count too :tada:", "ts": format!("{run_stamp}.000300")}})
        .to_string();
        let (status, text) = self.post_signed(&event, JSON).await;
        t.check(
            "counted",
            status == 200 && text.starts_with("signed: 1") && text.contains(":tada:: 1"),
            format!("{status} {text:?}"),
        );
        // Slack ignores an Events API answer's body: slack-replier posts the counts in the
        // message's thread, through the Web API (here the stand-in).
        if self.stack.slack_stand_in.is_some() {
            t.note("WordsTopic → ReplierQueue → slack-replier posts the counts in the thread…");
            let thread = format!("{run_stamp}.000300");
            let reply = self.wait_for_reply("C0DEMO", &thread).await;
            t.check(
                &format!("a threaded reply in C0DEMO, thread {thread}"),
                reply.as_deref().is_some_and(|r| r.starts_with("signed: 1")),
                format!("{reply:?}"),
            );
        } else {
            t.note("SLACK_API_URL is set: the reply goes to that Slack, not checked here");
        }
        event
    }

    /// Step 3: the same message altered and signed with the wrong secret.
    async fn forged_message(&self, t: &mut Transcript, event: &str) {
        t.step(3, "A forged request (signed with the wrong secret)");
        let forged = event.replace("Signed events", "Forged events");
        let (status, reply) = self.post(&forged, JSON, "not-the-secret").await;
        t.check(
            "refused with 401",
            status == 401,
            format!("{status} {}", reply["error"].as_str().unwrap_or_default()),
        );
        let forged_count = self.count("forged").await;
        t.check(
            "nothing counted",
            forged_count.is_none(),
            format!("count of \"forged\": {forged_count:?}"),
        );
    }

    /// Steps 4 and 5: a nightly backup copies everything, the next night's skips everything.
    async fn backups(&self, t: &mut Transcript) {
        t.step(
            4,
            "A backup run: s3-fanout → CopyTopic → CopyQueue → s3-copier",
        );
        match self.fill_source_bucket().await {
            Ok(note) => t.note(note),
            Err(err) => t.check("fill the source bucket", false, err),
        }
        if let Some(run) = self.backup(t, "2016-12-13T03:00:00Z").await {
            t.check(
                "every object copied, none failed",
                run.copied == run.listed && run.failed == 0,
                summary(&run),
            );
        }

        t.step(
            5,
            "The next night's backup: nothing changed, so everything is skipped",
        );
        if let Some(run) = self.backup(t, "2016-12-14T03:00:00Z").await {
            t.check(
                "everything skipped",
                run.copied == 0 && run.failed == 0 && run.skipped == run.listed,
                summary(&run),
            );
        }
    }

    /// Posts a request signed with the right secret; returns the status and the reply's text.
    async fn post_signed(&self, body: &str, content_type: &str) -> (u16, String) {
        let (status, reply) = self.post(body, content_type, SIGNING_SECRET).await;
        let text = reply["text"].as_str().unwrap_or_default().to_owned();
        (status, text)
    }
}

/// A Slack outgoing webhook's form body.
fn webhook(text: &str, timestamp: &str) -> String {
    serde_urlencoded::to_string([
        ("token", VERIFICATION_TOKEN),
        ("team_id", "T0DEMO"),
        ("team_domain", "demo"),
        ("channel_id", "C0DEMO"),
        ("channel_name", "general"),
        ("timestamp", timestamp),
        ("user_id", "U0DEMO"),
        ("user_name", "steve"),
        ("text", text),
        ("trigger_word", "awsadvent"),
    ])
    .unwrap_or_default()
}
