//! A stand-in for Slack's Web API on a free local port: no emulator serves it. It answers the
//! two calls fanout makes, `chat.postMessage` (recorded, with its thread and metadata) and
//! `conversations.replies` (the recorded posts of that thread), checks the bot token, and can be
//! told to answer the next posts with an error, a 429 with `Retry-After`, or not at all (a post
//! recorded, its answer held, for a test that kills the poster).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::serve::serve_http1;

/// A post the stand-in received.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub channel: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub metadata: Value,
}

/// How the stand-in answers the next post.
#[derive(Debug, Clone)]
pub enum Answer {
    /// HTTP 429 with `Retry-After: secs`; nothing posted.
    RateLimited(u64),
    /// `{"ok": false, "error": code}`; nothing posted.
    Error(&'static str),
    /// Posted, and the answer never sent (the connection is held until the server stops).
    PostAndHold,
}

#[derive(Default)]
struct State {
    token: String,
    posts: Vec<Post>,
    /// What was posted to response URLs (`/response/…`), as `(path, body)`.
    responses: Vec<(String, Value)>,
    /// Every call, as `method` (with `429` or the error code when it failed).
    calls: Vec<String>,
    script: VecDeque<Answer>,
}

/// The stand-in server; it stops when dropped.
pub struct SlackApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl Drop for SlackApi {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl SlackApi {
    /// Starts on a free port, accepting `token` as the bot token.
    pub async fn start(token: &str) -> std::io::Result<SlackApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            ..State::default()
        }));
        let accept = tokio::spawn(serve_http1(
            listener,
            state.clone(),
            |state: Arc<Mutex<State>>, request| async move { handle(&state, request).await },
            || {},
        ));
        Ok(SlackApi {
            addr,
            state,
            accept,
        })
    }

    /// The value for `SLACK_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// The posts so far, in order.
    pub fn posts(&self) -> Vec<Post> {
        self.state.lock().unwrap().posts.clone()
    }

    /// A response URL of this stand-in (`/response/<id>`).
    pub fn response_url(&self, id: &str) -> String {
        format!("http://{}/response/{id}", self.addr)
    }

    /// What was posted to its response URLs, as `(path, body)`.
    pub fn responses(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().responses.clone()
    }

    /// A function that reads the posts so far, usable after the server has moved.
    pub fn posts_handle(&self) -> impl Fn() -> Vec<Post> + Send + 'static {
        let state = self.state.clone();
        move || state.lock().unwrap().posts.clone()
    }

    /// Every call so far (`chat.postMessage`, `chat.postMessage 429`…).
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The next post is answered so.
    pub fn then(&self, answer: Answer) {
        self.state.lock().unwrap().script.push_back(answer);
    }
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

async fn handle(state: &Mutex<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if path.starts_with("/response/") {
        // A slash command's response_url: no token, answered "ok" as Slack does.
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut state = state.lock().unwrap();
        state.calls.push("response_url".into());
        state.responses.push((path, body));
        return Response::new(Full::new(Bytes::from_static(b"ok")));
    }
    let method = path.trim_start_matches("/api/").to_owned();
    let token = state.lock().unwrap().token.clone();
    if authorized.as_deref() != Some(&format!("Bearer {token}")) {
        state
            .lock()
            .unwrap()
            .calls
            .push(format!("{method} invalid_auth"));
        return json_response(
            StatusCode::OK,
            json!({"ok": false, "error": "invalid_auth"}),
        );
    }
    match method.as_str() {
        "chat.postMessage" => post_message(state, &body).await,
        "conversations.replies" => replies(state, &query),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error": "unknown_method"}),
        ),
    }
}

async fn post_message(state: &Mutex<State>, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return json_response(
            StatusCode::OK,
            json!({"ok": false, "error": "invalid_json"}),
        );
    };
    let post = Post {
        channel: request["channel"].as_str().unwrap_or_default().to_owned(),
        thread_ts: request["thread_ts"].as_str().map(str::to_owned),
        text: request["text"].as_str().unwrap_or_default().to_owned(),
        metadata: request["metadata"].clone(),
    };
    let answer = {
        let mut state = state.lock().unwrap();
        let answer = state.script.pop_front();
        let call = match &answer {
            Some(Answer::RateLimited(_)) => "chat.postMessage 429".to_owned(),
            Some(Answer::Error(code)) => format!("chat.postMessage {code}"),
            Some(Answer::PostAndHold) => "chat.postMessage held".to_owned(),
            None => "chat.postMessage".to_owned(),
        };
        state.calls.push(call);
        if matches!(answer, None | Some(Answer::PostAndHold)) {
            state.posts.push(post.clone());
        }
        answer
    };
    match answer {
        None => {
            let ts = format!(
                "{}.{:06}",
                1_700_000_000 + state.lock().unwrap().posts.len(),
                1
            );
            json_response(
                StatusCode::OK,
                json!({"ok": true, "channel": post.channel, "ts": ts}),
            )
        }
        Some(Answer::RateLimited(secs)) => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header("retry-after", secs.to_string())
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(
                r#"{"ok":false,"error":"ratelimited"}"#,
            )))
            .expect("a valid response"),
        Some(Answer::Error(code)) => {
            json_response(StatusCode::OK, json!({"ok": false, "error": code}))
        }
        Some(Answer::PostAndHold) => std::future::pending().await,
    }
}

fn replies(state: &Mutex<State>, query: &str) -> Response<Full<Bytes>> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (channel, ts) = (param("channel"), param("ts"));
    let mut state = state.lock().unwrap();
    state.calls.push("conversations.replies".into());
    let with_metadata = param("include_all_metadata") == "true";
    let messages: Vec<Value> = state
        .posts
        .iter()
        .filter(|p| p.channel == channel && p.thread_ts.as_deref() == Some(ts.as_str()))
        .map(|p| {
            let mut message = json!({"type": "message", "text": p.text, "thread_ts": ts});
            if with_metadata {
                message["metadata"] = p.metadata.clone();
            }
            message
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({"ok": true, "messages": messages, "has_more": false}),
    )
}
