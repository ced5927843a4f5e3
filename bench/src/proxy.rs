//! An HTTP/1.1 reverse proxy that delays every request by a fixed latency before passing it on,
//! unchanged, to an upstream (the AWS emulator), and counts what goes through. Copy requests
//! (`x-amz-copy-source`) can be delayed further by a [`CopyModel`] of S3's copy speed.
//!
//! Like any HTTP proxy it drops hop-by-hop headers (`Connection` and the like). That matters
//! here: moto closes its connection after every answer, and passing its `Connection: close` on
//! would make clients reconnect for every request, which they do not have to against AWS.
//!
//! With a [`FaultPlan`] it also injects faults (see [`crate::faults`]), and
//! [`Proxy::go_down`] takes the emulator away for a while: new connections are refused and
//! requests on open ones are closed unanswered.
//!
//! `GET /__latency-proxy/stats` answers the counters as JSON instead of being forwarded (no S3
//! bucket can be named so: bucket names have no underscores).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fanout_tests::serve::serve_http1_or_hang_up;
use futures::{stream, StreamExt};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::copy_model::{range_len, source_target, CopyModel};
use crate::faults::{error_answer, Fault, FaultCounts, FaultPlan, Injector, Service};

/// The path that answers the proxy's counters.
pub const STATS_PATH: &str = "/__latency-proxy/stats";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What a handler returns to close its connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("the proxy hung up")]
struct Hangup;

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    /// `http://host:port` of the upstream.
    pub upstream: Uri,
    /// Added to every request before it is forwarded.
    pub latency: Duration,
    pub copy: CopyModel,
    /// Forward at once and hold the answer until the delay has passed since the request
    /// arrived, so that the upstream's own time counts inside the delay instead of after it.
    pub overlap: bool,
    /// Keep a log of every exchange (for [`Proxy::take_log`]).
    pub record: bool,
    /// The faults to inject (none by default).
    pub faults: FaultPlan,
}

/// The proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Requests received (the proxy's own `HEAD`s and stats requests excluded), those that got
    /// an injected fault included.
    pub requests: u64,
    /// Requests that carried `x-amz-copy-source`.
    pub copy_requests: u64,
    /// The bytes those copies covered, as the copy model saw them (0 when it is off).
    pub copied_bytes: u64,
    /// `HEAD`s the proxy made itself to learn a copy source's size.
    pub size_lookups: u64,
    /// Client connections accepted.
    pub connections: u64,
    /// The faults injected, and the retries seen.
    pub faults: FaultCounts,
}

/// One request that went through the proxy.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// When the request arrived at the proxy.
    pub received: Instant,
    /// When it was sent upstream, after the added delay.
    pub forwarded: Instant,
    /// When the upstream's answer (its head) was handed back.
    pub answered: Instant,
    /// `x-amz-target`'s operation when present (DynamoDB), else the method and path.
    pub operation: String,
    pub status: u16,
}

struct Shared {
    upstream: Uri,
    latency_us: AtomicU64,
    copy: CopyModel,
    overlap: bool,
    client: Client<HttpConnector, ProxyBody>,
    requests: AtomicU64,
    copy_requests: AtomicU64,
    copied_bytes: AtomicU64,
    size_lookups: AtomicU64,
    connections: AtomicU64,
    sizes: Mutex<HashMap<String, u64>>,
    log: Option<Mutex<Vec<Exchange>>>,
    injector: Injector,
    down: AtomicBool,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    /// Binds the listening socket and starts serving in the background.
    pub async fn start(config: ProxyConfig) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let shared = Arc::new(Shared {
            upstream: config.upstream,
            latency_us: AtomicU64::new(micros(config.latency)),
            copy: config.copy,
            overlap: config.overlap,
            client: Client::builder(TokioExecutor::new()).build(connector),
            requests: AtomicU64::new(0),
            copy_requests: AtomicU64::new(0),
            copied_bytes: AtomicU64::new(0),
            size_lookups: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            sizes: Mutex::new(HashMap::new()),
            log: config.record.then(|| Mutex::new(Vec::new())),
            injector: Injector::new(config.faults),
            down: AtomicBool::new(false),
        });
        let accept = Mutex::new(Some(accept(listener, shared.clone())));
        Ok(Proxy {
            addr,
            shared,
            accept,
        })
    }

    /// Takes the emulator away for `period`: the listening socket is closed (new connections
    /// are refused) and requests on open connections are closed unanswered; then it listens
    /// again on the same address.
    pub async fn go_down(&self, period: Duration) -> std::io::Result<()> {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.injector.outages.fetch_add(1, Ordering::Relaxed);
        let serving = self.accept.lock().expect("accept lock").take();
        if let Some(serving) = serving {
            serving.abort();
            let _ = serving.await;
        }
        tokio::time::sleep(period).await;
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(err) if tries < 50 => {
                    tries += 1;
                    eprintln!(
                        "latency-proxy: listening again on {} failed ({err}); retrying",
                        self.addr
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err),
            }
        };
        *self.accept.lock().expect("accept lock") = Some(accept(listener, self.shared.clone()));
        self.shared.down.store(false, Ordering::SeqCst);
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` and the listening address: an endpoint URL for SDK clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Changes the added latency for requests that arrive from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_us
            .store(micros(latency), Ordering::Relaxed);
    }

    /// The exchanges logged since the last call (none unless `record` was set), in the order
    /// they were answered.
    pub fn take_log(&self) -> Vec<Exchange> {
        self.shared
            .log
            .as_ref()
            .map(|log| std::mem::take(&mut *log.lock().expect("log lock")))
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(serving) = self.accept.lock().expect("accept lock").take() {
            serving.abort();
        }
    }
}

/// Prints what each function's proxy injected, under a `-- faults` heading.
pub fn print_faults(proxies: &[(&str, &Proxy)]) {
    println!("-- faults");
    for (function, proxy) in proxies {
        println!("{function}: {}", proxy.stats().faults);
    }
}

/// Takes the emulator away behind every one of `proxies` at once, `at` from now, for `period`.
pub fn outage(
    proxies: Vec<Arc<Proxy>>,
    at: Duration,
    period: Duration,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        tokio::time::sleep(at).await;
        eprintln!("the emulator goes away for {:.1} s…", period.as_secs_f64());
        let downs = proxies.iter().map(|proxy| proxy.go_down(period));
        futures::future::join_all(downs)
            .await
            .into_iter()
            .collect::<std::io::Result<Vec<()>>>()
            .map(|_| ())
    })
}

/// Serves `listener` in the background.
fn accept(listener: TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(serve_http1_or_hang_up(
        listener,
        shared.clone(),
        |shared: Arc<Shared>, request| async move { shared.handle(request).await },
        move || {
            shared.connections.fetch_add(1, Ordering::Relaxed);
        },
    ))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl Shared {
    fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            copy_requests: self.copy_requests.load(Ordering::Relaxed),
            copied_bytes: self.copied_bytes.load(Ordering::Relaxed),
            size_lookups: self.size_lookups.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            faults: self.injector.counts(),
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Result<Response<ProxyBody>, Hangup> {
        let received = Instant::now();
        if request.method() == Method::GET && request.uri().path() == STATS_PATH {
            let json = serde_json::to_string(&self.stats()).expect("stats serialize");
            return Ok(text(StatusCode::OK, "application/json", json));
        }
        if self.down.load(Ordering::SeqCst) {
            self.injector
                .refused_while_down
                .fetch_add(1, Ordering::Relaxed);
            return Err(Hangup);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let fault = self.injector.draw(request.method(), request.headers());
        let operation = operation(&request);
        let mut delay = Duration::from_micros(self.latency_us.load(Ordering::Relaxed));
        if let Some(source) = header(request.headers(), "x-amz-copy-source") {
            self.copy_requests.fetch_add(1, Ordering::Relaxed);
            if self.copy.is_enabled() {
                let range = header(request.headers(), "x-amz-copy-source-range");
                let bytes = self.copy_bytes(source, range).await.unwrap_or(0);
                self.copied_bytes.fetch_add(bytes, Ordering::Relaxed);
                delay += self.copy.delay(bytes);
            }
        }
        // Measured from arrival, so the time spent learning a source's size is part of the delay.
        let due = received + delay;
        if !self.overlap {
            tokio::time::sleep_until(due.into()).await;
        }
        match fault {
            Some(fault @ (Fault::Throttle | Fault::ServerError)) => {
                let service = Service::of(request.headers());
                let (status, content_type, body) =
                    error_answer(service, fault, self.injector.alternate());
                return Ok(text(status, content_type, body));
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(self.injector.plan.hang_for).await;
                return Err(Hangup);
            }
            Some(Fault::Reset) | None => {}
        }
        let forwarded = Instant::now();
        let (mut parts, body) = request.into_parts();
        drop_hop_by_hop(&mut parts.headers);
        parts.uri = match self.upstream_uri(&parts.uri) {
            Ok(uri) => uri,
            Err(err) => return Ok(text(StatusCode::BAD_REQUEST, "text/plain", err)),
        };
        let response = match self
            .client
            .request(Request::from_parts(
                parts,
                body.map_err(BoxError::from).boxed(),
            ))
            .await
        {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                drop_hop_by_hop(&mut parts.headers);
                if fault == Some(Fault::Reset) {
                    return cut_short(parts, body).await;
                }
                Response::from_parts(parts, body.map_err(BoxError::from).boxed())
            }
            Err(err) => text(
                StatusCode::BAD_GATEWAY,
                "text/plain",
                format!(
                    "latency-proxy: the upstream {} failed: {err}",
                    self.upstream
                ),
            ),
        };
        if self.overlap {
            tokio::time::sleep_until(due.into()).await;
        }
        if let Some(log) = &self.log {
            log.lock().expect("log lock").push(Exchange {
                received,
                forwarded,
                answered: Instant::now(),
                operation,
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, String> {
        let mut parts = self.upstream.clone().into_parts();
        parts.path_and_query = uri.path_and_query().cloned();
        Uri::from_parts(parts).map_err(|e| format!("latency-proxy: bad request target {uri}: {e}"))
    }

    /// The bytes a copy request covers: its range, else the source object's size (looked up
    /// once per source). `None` when the size cannot be learnt.
    async fn copy_bytes(&self, source: &str, range: Option<&str>) -> Option<u64> {
        if let Some(len) = range.and_then(range_len) {
            return Some(len);
        }
        let Some(target) = source_target(source) else {
            eprintln!("latency-proxy: x-amz-copy-source {source:?} names no object; the copy is delayed by the overhead only");
            return None;
        };
        if let Some(&size) = self.sizes.lock().expect("sizes lock").get(&target) {
            return Some(size);
        }
        let size = self.head_size(&target).await?;
        self.sizes.lock().expect("sizes lock").insert(target, size);
        Some(size)
    }

    async fn head_size(&self, target: &str) -> Option<u64> {
        self.size_lookups.fetch_add(1, Ordering::Relaxed);
        let uri = self.upstream_uri(&target.parse().ok()?).ok()?;
        let failed = |why: String| {
            eprintln!(
                "latency-proxy: HEAD {target} {why}; the copy is delayed by the overhead only"
            );
            None
        };
        let mut request = Request::head(uri)
            .body(Empty::new().map_err(|never| match never {}).boxed())
            .ok()?;
        if let Some(authority) = self.upstream.authority() {
            request
                .headers_mut()
                .insert(HOST, authority.as_str().parse().ok()?);
        }
        let response = match self.client.request(request).await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => return failed(format!("answered {}", response.status())),
            Err(err) => return failed(format!("failed: {err}")),
        };
        response
            .headers()
            .get(CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }
}

/// The emulator's answer cut off halfway: its head and the first half of its body, then the
/// connection is reset. An answer with less than two bytes of body is not answered at all.
async fn cut_short(
    parts: http::response::Parts,
    body: Incoming,
) -> Result<Response<ProxyBody>, Hangup> {
    let body = body.collect().await.map_err(|_| Hangup)?.to_bytes();
    if body.len() < 2 {
        return Err(Hangup);
    }
    let half = body.slice(..body.len() / 2);
    // The error comes a moment after the half, so that the head and the half are written
    // before the connection is dropped.
    let frames = stream::once(async move { Ok::<_, BoxError>(Frame::data(half)) }).chain(
        stream::once(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(Box::new(Hangup) as BoxError)
        }),
    );
    let mut response = Response::from_parts(parts, BodyExt::boxed(StreamBody::new(frames)));
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, body.len().into());
    Ok(response)
}

/// Removes the headers that concern one connection only (RFC 9110, section 7.6.1), and those
/// `Connection` names. Message framing (`Transfer-Encoding`, `Content-Length`) is left to hyper.
fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn operation(request: &Request<Incoming>) -> String {
    match header(request.headers(), "x-amz-target") {
        Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
        None => format!("{} {}", request.method(), request.uri().path()),
    }
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}
