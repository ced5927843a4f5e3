//! A gate in front of the emulator: it passes every request on, except that it holds the Nth
//! request of one operation, before passing it on or after its answer came back, and never lets
//! it through. A test points a real function binary at the gate, waits until the request is
//! held, and kills the process there: the world as it is when Lambda kills an invocation
//! mid-way.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::serve::serve_http1;

/// Where the held request stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// It never reaches the emulator: the call did not happen.
    BeforeForwarding,
    /// The emulator did it, and the answer never reaches the caller.
    AfterAnswer,
}

struct State {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Uri,
    /// Matched against the `X-Amz-Target` header (JSON protocols) or the form body's
    /// `Action=` (query protocols): `TransactWriteItems`, `Publish`…
    operation: &'static str,
    nth: usize,
    hold: Hold,
    seen: AtomicUsize,
    held: Notify,
}

/// A running gate.
pub struct Gate {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Gate {
    /// Listens on a free local port and passes requests on to `upstream` (`http://host:port`).
    pub async fn start(
        upstream: &str,
        operation: &'static str,
        nth: usize,
        hold: Hold,
    ) -> std::io::Result<Gate> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            client: Client::builder(TokioExecutor::new()).build_http(),
            upstream: upstream.parse().map_err(std::io::Error::other)?,
            operation,
            nth,
            hold,
            seen: AtomicUsize::new(0),
            held: Notify::new(),
        });
        let task = tokio::spawn(serve_http1(listener, state.clone(), pass, || {}));
        Ok(Gate { addr, state, task })
    }

    /// The URL to give as `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the Nth request of the operation is held.
    pub async fn held(&self) {
        self.state.held.notified().await
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pass(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return answer(StatusCode::BAD_REQUEST, format!("gate: {err}")),
    };
    let target = (parts.headers.get("x-amz-target"))
        .and_then(|value| value.to_str().ok())
        .is_some_and(|target| target.ends_with(&format!(".{}", state.operation)))
        || String::from_utf8_lossy(&body).contains(&format!("Action={}&", state.operation))
        || (state.operation == "UploadPartCopy" && is_upload_part_copy(&parts));
    let held = target && state.seen.fetch_add(1, Ordering::SeqCst) + 1 == state.nth;
    if held && state.hold == Hold::BeforeForwarding {
        return hold_forever(&state).await;
    }
    let mut upstream = state.upstream.clone().into_parts();
    upstream.path_and_query = parts.uri.path_and_query().cloned();
    parts.uri = match Uri::from_parts(upstream) {
        Ok(uri) => uri,
        Err(err) => return answer(StatusCode::BAD_REQUEST, format!("gate: {err}")),
    };
    parts.headers.remove(http::header::CONNECTION);
    let response = match state
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(response) => response,
        Err(err) => return answer(StatusCode::BAD_GATEWAY, format!("gate: {err}")),
    };
    let (mut parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return answer(StatusCode::BAD_GATEWAY, format!("gate: {err}")),
    };
    if held {
        return hold_forever(&state).await;
    }
    parts.headers.remove(http::header::CONNECTION);
    Response::from_parts(parts, Full::new(body))
}

/// S3's UploadPartCopy: a PUT of a part (`partNumber` in the query) from a copy source.
fn is_upload_part_copy(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::PUT
        && parts.headers.contains_key("x-amz-copy-source")
        && parts.uri.query().is_some_and(|q| q.contains("partNumber="))
}

async fn hold_forever(state: &State) -> Response<Full<Bytes>> {
    state.held.notify_one();
    std::future::pending().await
}

fn answer(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}
