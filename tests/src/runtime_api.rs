//! A stand-in for the Lambda Runtime API (the `2018-06-01` HTTP interface a function's runtime
//! polls), so that a real function binary can be driven and timed outside Lambda: events are
//! handed out on `GET /runtime/invocation/next`, answers collected from `POST …/{id}/response` or
//! `…/error`, and an init failure from `POST /runtime/init/error`. Times are taken here, at the
//! API, which is where Lambda itself measures an invocation. The benchmarks time functions with
//! it; the tests check what a function reports when its init fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::serve::serve_http1;

const PREFIX: &str = "/2018-06-01/runtime/";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:under-test";

/// How one invocation went, timed at the API.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When the event was handed to the function (its `next` request answered).
    pub delivered: Instant,
    /// When the function's answer had fully arrived.
    pub answered: Instant,
    /// The answer: the function's response, or its error report.
    pub body: Bytes,
    pub is_error: bool,
}

impl Outcome {
    /// The invocation's duration as Lambda would bill it.
    pub fn duration(&self) -> Duration {
        self.answered - self.delivered
    }
}

/// Why an invocation produced no outcome.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the runtime API stopped before the function answered")]
    Dropped,
}

/// An invocation queued or in progress.
struct Pending {
    delivered: Option<Instant>,
    answer: oneshot::Sender<Outcome>,
}

struct Shared {
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Bytes)>>,
    waiting: Mutex<HashMap<String, Pending>>,
    first_poll: watch::Sender<Option<Instant>>,
    init_error: watch::Sender<Option<String>>,
    requests: Mutex<Vec<String>>,
}

/// A running fake Runtime API for one function process; it stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<(String, Bytes)>,
    next_id: AtomicU64,
    accept: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on a free local port.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (queue, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(events),
            waiting: Mutex::new(HashMap::new()),
            first_poll: watch::channel(None).0,
            init_error: watch::channel(None).0,
            requests: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(serve_http1(
            listener,
            shared.clone(),
            |shared: Arc<Shared>, request| async move { shared.handle(request).await },
            || {},
        ));
        Ok(RuntimeApi {
            addr,
            shared,
            queue,
            next_id: AtomicU64::new(1),
            accept,
        })
    }

    /// The value for the function's `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first asked for an invocation: the end of its init phase.
    pub async fn first_poll(&self) -> Instant {
        let mut seen = self.shared.first_poll.subscribe();
        let at = *seen
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives as long as the API");
        at.expect("waited for Some")
    }

    /// The error the function reported from its init phase, if any.
    pub fn init_error(&self) -> Option<String> {
        self.shared.init_error.borrow().clone()
    }

    /// The request line of every request received so far, in order: `METHOD /path HTTP/1.1`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    /// A command that runs the function `binary` under this API with only the environment
    /// Lambda gives a function named `name` (region, the Runtime API's address, its name,
    /// version, memory and log group), plus test credentials. The caller adds the AWS endpoint
    /// and the function's own configuration.
    pub fn function_command(&self, binary: &Path, name: &str) -> Command {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", self.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing");
        command
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: Bytes, timeout: Duration) -> Result<Outcome, InvokeError> {
        let id = format!(
            "request-{:08}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let (answer, outcome) = oneshot::channel();
        self.shared.waiting.lock().expect("waiting lock").insert(
            id.clone(),
            Pending {
                delivered: None,
                answer,
            },
        );
        self.queue
            .send((id.clone(), event))
            .map_err(|_| InvokeError::Dropped)?;
        match tokio::time::timeout(timeout, outcome).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(InvokeError::Dropped),
            Err(_) => {
                self.shared
                    .waiting
                    .lock()
                    .expect("waiting lock")
                    .remove(&id);
                Err(InvokeError::TimedOut(timeout))
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Shared {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        self.requests.lock().expect("requests lock").push(format!(
            "{} {} {:?}",
            request.method(),
            request.uri(),
            request.version()
        ));
        let path = request.uri().path().to_owned();
        let Some(route) = path.strip_prefix(PREFIX) else {
            return reply(StatusCode::NOT_FOUND, "not a Runtime API path");
        };
        match (request.method().clone(), route) {
            (Method::GET, "invocation/next") => self.next().await,
            (Method::POST, "init/error") => {
                let body = collect(request).await;
                self.init_error
                    .send_replace(Some(String::from_utf8_lossy(&body).into_owned()));
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            (Method::POST, route) => match route
                .strip_prefix("invocation/")
                .and_then(|rest| rest.split_once('/'))
            {
                Some((id, kind @ ("response" | "error"))) => {
                    let is_error = kind == "error";
                    let id = id.to_owned();
                    let body = collect(request).await;
                    self.answer(&id, body, is_error)
                }
                _ => reply(StatusCode::NOT_FOUND, "unknown invocation route"),
            },
            _ => reply(StatusCode::NOT_FOUND, "unknown Runtime API route"),
        }
    }

    async fn next(&self) -> Response<Full<Bytes>> {
        self.first_poll.send_if_modified(|first| {
            let unset = first.is_none();
            if unset {
                *first = Some(Instant::now());
            }
            unset
        });
        let Some((id, event)) = self.events.lock().await.recv().await else {
            return reply(StatusCode::GONE, "no more events");
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + Duration::from_secs(30);
        if let Some(pending) = self.waiting.lock().expect("waiting lock").get_mut(&id) {
            pending.delivered = Some(Instant::now());
        }
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &id)
            .header(
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string(),
            )
            .header("lambda-runtime-invoked-function-arn", FUNCTION_ARN)
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0",
            )
            .body(Full::new(event))
            .expect("a valid response")
    }

    fn answer(&self, id: &str, body: Bytes, is_error: bool) -> Response<Full<Bytes>> {
        let answered = Instant::now();
        let Some(Pending { delivered, answer }) =
            self.waiting.lock().expect("waiting lock").remove(id)
        else {
            return reply(
                StatusCode::BAD_REQUEST,
                "unknown or already answered request id",
            );
        };
        let _ = answer.send(Outcome {
            delivered: delivered.unwrap_or(answered),
            answered,
            body,
            is_error,
        });
        reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
    }
}

async fn collect(request: Request<Incoming>) -> Bytes {
    request
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default()
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    use super::*;

    fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    #[tokio::test]
    async fn the_runtime_api_hands_out_events_and_collects_answers() {
        let api = RuntimeApi::start().await.unwrap();
        let base = format!("http://{}/2018-06-01/runtime", api.address());
        let function = tokio::spawn(async move {
            let client = client();
            for _ in 0..2 {
                let next = client
                    .request(
                        Request::get(format!("{base}/invocation/next"))
                            .body(Full::default())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let id = next.headers()["lambda-runtime-aws-request-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert!(next.headers().contains_key("lambda-runtime-deadline-ms"));
                let event = next.into_body().collect().await.unwrap().to_bytes();
                let kind = if event.as_ref() == b"fail" {
                    "error"
                } else {
                    "response"
                };
                let answer = client
                    .request(
                        Request::post(format!("{base}/invocation/{id}/{kind}"))
                            .body(Full::new(Bytes::from(format!("echo {event:?}"))))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                assert_eq!(answer.status(), StatusCode::ACCEPTED);
            }
        });
        let timeout = Duration::from_secs(30);
        let ok = api
            .invoke(Bytes::from_static(b"hello"), timeout)
            .await
            .unwrap();
        assert!(!ok.is_error);
        assert_eq!(ok.body, Bytes::from_static(b"echo b\"hello\""));
        assert!(ok.delivered <= ok.answered);
        let failed = api
            .invoke(Bytes::from_static(b"fail"), timeout)
            .await
            .unwrap();
        assert!(failed.is_error);
        api.first_poll().await;
        assert_eq!(api.init_error(), None);
        function.await.unwrap();
    }

    #[tokio::test]
    async fn an_init_error_is_kept_and_every_request_line_is_logged() {
        let api = RuntimeApi::start().await.unwrap();
        let base = format!("http://{}/2018-06-01/runtime", api.address());
        let answer = client()
            .request(
                Request::post(format!("{base}/init/error"))
                    .body(Full::new(Bytes::from_static(b"{\"errorMessage\":\"X\"}")))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let unknown = client()
            .request(
                Request::get(format!("{base}/nothing?here"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            api.init_error().as_deref(),
            Some("{\"errorMessage\":\"X\"}")
        );
        assert_eq!(
            api.requests(),
            [
                "POST /2018-06-01/runtime/init/error HTTP/1.1",
                "GET /2018-06-01/runtime/nothing?here HTTP/1.1",
            ]
        );
    }
}
