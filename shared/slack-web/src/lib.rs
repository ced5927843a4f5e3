//! Slack's Web API, the two calls a reply needs: `chat.postMessage` (in the thread, with the
//! message's id in the reply's metadata) and `conversations.replies` (to find that reply again),
//! as fanout-words-core's [`SlackWeb`].
//!
//! Errors are classed as Slack documents them: HTTP 429 (`ratelimited`) with its `Retry-After`;
//! `internal_error`, `fatal_error`, `service_unavailable`, `request_timeout`, any 5xx and any
//! failed connection are transient; every other error code (`not_in_channel`,
//! `channel_not_found`, `invalid_auth`…) is permanent.

use std::time::Duration;

use fanout_words_core::reply::{Reply, SlackWeb, WebError, REPLY_EVENT_TYPE};
use serde_json::{json, Value};

/// The Web API methods this crate calls, with the bot scopes they need (for a public channel's
/// thread, a private one's).
pub const METHODS: &[(&str, &[&str])] = &[
    ("chat.postMessage", &["chat:write"]),
    (
        "conversations.replies",
        &["channels:history", "groups:history"],
    ),
];

/// Slack's Web API base URL.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

/// Error codes that another attempt may not meet.
const TRANSIENT_CODES: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// How many pages of a thread are read looking for a reply.
const MAX_THREAD_PAGES: usize = 5;

/// A bot token and the API's base URL.
#[derive(Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl SlackApi {
    /// `base`, with or without its trailing slash (`SLACK_API_URL`).
    pub fn new(base: &str, token: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        SlackApi {
            http,
            base: format!("{}/", base.trim_end_matches('/')),
            token: token.into(),
        }
    }

    /// Sends a call; Slack's answer as JSON when it says `ok`.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, WebError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| WebError::Transient(e.to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(1), Duration::from_secs);
        if status.as_u16() == 429 {
            return Err(WebError::RateLimited(retry_after));
        }
        if status.is_server_error() {
            return Err(WebError::Transient(format!("HTTP {status}")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| WebError::Transient(e.to_string()))?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|e| WebError::Transient(format!("HTTP {status}, not JSON: {e}")))?;
        if answer["ok"] == true {
            return Ok(answer);
        }
        let code = answer["error"]
            .as_str()
            .unwrap_or("unknown_error")
            .to_owned();
        Err(if code == "ratelimited" {
            WebError::RateLimited(retry_after)
        } else if TRANSIENT_CODES.contains(&code.as_str()) {
            WebError::Transient(code)
        } else {
            WebError::Permanent(code)
        })
    }

    fn url(&self, method: &str) -> String {
        format!("{}{method}", self.base)
    }
}

/// Whether a message of the thread is the app's reply to `message_id`.
fn is_reply_to(message: &Value, message_id: &str) -> bool {
    let metadata = &message["metadata"];
    metadata["event_type"] == REPLY_EVENT_TYPE
        && metadata["event_payload"]["message_id"] == message_id
}

impl SlackApi {
    /// Whether `response_url` is one of Slack's (or, for tests and the local stack, on the
    /// configured API's host): a forged message must not make the replier post elsewhere.
    fn is_slacks(&self, response_url: &reqwest::Url) -> bool {
        let slack =
            response_url.scheme() == "https" && response_url.host_str() == Some("hooks.slack.com");
        let configured = reqwest::Url::parse(&self.base)
            .is_ok_and(|base| base.origin() == response_url.origin());
        slack || configured
    }
}

impl SlackWeb for SlackApi {
    async fn respond(&self, response_url: &str, text: &str) -> Result<(), WebError> {
        let url = reqwest::Url::parse(response_url)
            .map_err(|e| WebError::Permanent(format!("response_url: {e}")))?;
        if !self.is_slacks(&url) {
            return Err(WebError::Permanent(format!(
                "response_url {} is not Slack's (hooks.slack.com)",
                url.origin().ascii_serialization()
            )));
        }
        let body = json!({ "response_type": "in_channel", "text": text });
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            // Without the URL: a response_url lets anyone post to the channel.
            .map_err(|e| WebError::Transient(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = response.text().await.unwrap_or_default();
        Err(match status.as_u16() {
            429 => WebError::RateLimited(Duration::from_secs(1)),
            500.. => WebError::Transient(format!("HTTP {status}")),
            // 404 expired_url, used_url, and the like: the URL will not take it later.
            _ => WebError::Permanent(format!("HTTP {status} {}", detail.trim())),
        })
    }

    async fn post(&self, reply: &Reply) -> Result<(), WebError> {
        let body = json!({
            "channel": reply.channel,
            "thread_ts": reply.thread_ts,
            "text": reply.text,
            "unfurl_links": false,
            "metadata": {
                "event_type": REPLY_EVENT_TYPE,
                "event_payload": { "message_id": reply.message_id },
            },
        });
        let request = self
            .http
            .post(self.url("chat.postMessage"))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string());
        self.call(request).await.map(drop)
    }

    async fn already_posted(&self, reply: &Reply) -> Result<bool, WebError> {
        let mut cursor: Option<String> = None;
        for _page in 0..MAX_THREAD_PAGES {
            let mut query = vec![
                ("channel", reply.channel.clone()),
                ("ts", reply.thread_ts.clone()),
                ("include_all_metadata", "true".into()),
                ("limit", "200".into()),
            ];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.clone()));
            }
            let url = reqwest::Url::parse_with_params(&self.url("conversations.replies"), &query)
                .map_err(|e| WebError::Permanent(format!("SLACK_API_URL: {e}")))?;
            let answer = self.call(self.http.get(url)).await?;
            let messages = answer["messages"].as_array().cloned().unwrap_or_default();
            if messages.iter().any(|m| is_reply_to(m, &reply.message_id)) {
                return Ok(true);
            }
            cursor = answer["response_metadata"]["next_cursor"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_takes_a_trailing_slash_or_not() {
        for base in ["http://127.0.0.1:9/api", "http://127.0.0.1:9/api/"] {
            assert_eq!(
                SlackApi::new(base, "x").url("chat.postMessage"),
                "http://127.0.0.1:9/api/chat.postMessage"
            );
        }
        assert!(!format!("{:?}", SlackApi::new(DEFAULT_API_URL, "xoxb-secret")).contains("xoxb"));
    }

    #[test]
    fn answers_go_only_to_slacks_response_urls() {
        let api = SlackApi::new("http://127.0.0.1:9/api/", "x");
        for (url, allowed) in [
            ("https://hooks.slack.com/commands/T1/1/abc", true),
            ("http://hooks.slack.com/commands/T1/1/abc", false),
            ("https://hooks.slack.com.evil.example/commands", false),
            ("https://example.com/commands", false),
            ("http://127.0.0.1:9/response/1", true),
            ("http://127.0.0.1:10/response/1", false),
        ] {
            assert_eq!(
                api.is_slacks(&reqwest::Url::parse(url).unwrap()),
                allowed,
                "{url}"
            );
        }
    }

    #[test]
    fn the_apps_reply_is_found_by_its_metadata() {
        let reply = json!({"text": "a: 1", "metadata": {"event_type": REPLY_EVENT_TYPE, "event_payload": {"message_id": "T:C:1.0"}}});
        assert!(is_reply_to(&reply, "T:C:1.0"));
        assert!(!is_reply_to(&reply, "T:C:2.0"));
        assert!(!is_reply_to(&json!({"text": "a: 1"}), "T:C:1.0"));
    }
}
