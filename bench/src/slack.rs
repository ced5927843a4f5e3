//! The Slack requests the benchmarks send: an outgoing-webhook post in an API Gateway HTTP API
//! (v2) event, as slack-counter receives it.

use bytes::Bytes;

/// The verification token the benchmarks configure and send.
pub const TOKEN: &str = "bench-verification-token";

/// A webhook post of `text` in channel `C0BENCH`, at timestamp `1700000000.<serial>`: each
/// serial is a message of its own. `retry` is Slack's `X-Slack-Retry-Num` (0 for the first
/// attempt, sent without the header).
pub fn webhook_event(serial: usize, text: &str, retry: u32) -> Bytes {
    let timestamp = format!("1700000000.{serial:06}");
    let trigger_word = text.split_whitespace().next().unwrap_or_default();
    let body = serde_urlencoded::to_string([
        ("token", TOKEN),
        ("team_id", "T0BENCH"),
        ("team_domain", "bench"),
        ("channel_id", "C0BENCH"),
        ("channel_name", "bench"),
        ("timestamp", timestamp.as_str()),
        ("user_id", "U0BENCH"),
        ("user_name", "bench"),
        ("text", text),
        ("trigger_word", trigger_word),
    ])
    .expect("a form encodes");
    let mut headers = serde_json::json!({
        "content-type": "application/x-www-form-urlencoded",
        "host": "bench.execute-api.us-east-1.amazonaws.com",
        "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)"
    });
    if retry > 0 {
        headers["x-slack-retry-num"] = retry.to_string().into();
        headers["x-slack-retry-reason"] = "http_error".into();
    }
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /slack",
        "rawPath": "/slack",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": "POST",
                "path": "/slack",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Slackbot 1.0"
            },
            "requestId": format!("bench-{serial}-{retry}"),
            "routeKey": "POST /slack",
            "stage": "$default",
            "time": "14/Nov/2023:22:13:20 +0000",
            "timeEpoch": 1700000000000u64
        },
        "body": body,
        "isBase64Encoded": false
    });
    Bytes::from(event.to_string())
}

/// The status code of a function's API Gateway answer and the `text` of its JSON body.
pub fn reply(answer: &[u8]) -> (Option<u16>, String) {
    let response: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
    let status = response["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok());
    let text = response["body"]
        .as_str()
        .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
        .and_then(|body| body["text"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, text)
}
