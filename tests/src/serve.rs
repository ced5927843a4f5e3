//! Serving HTTP/1.1 on a listener, one task per connection: the loop under the Lambda Runtime
//! API stand-in and the benchmark's latency proxy.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Answers every request on `listener` with `handle(state, request)`; calls `accepted` for each
/// connection.
pub async fn serve_http1<S, H, F, B>(
    listener: TcpListener,
    state: Arc<S>,
    handle: H,
    accepted: impl Fn() + Send + 'static,
) where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let answer = move |state, request| {
        let answer = handle(state, request);
        async move { Ok::<_, Infallible>(answer.await) }
    };
    serve_http1_or_hang_up(listener, state, answer, accepted).await
}

/// Like [`serve_http1`], but a handler that returns an error closes the connection without an
/// answer (as a server that crashed or a network that failed would).
pub async fn serve_http1_or_hang_up<S, H, F, B, E>(
    listener: TcpListener,
    state: Arc<S>,
    handle: H,
    accepted: impl Fn() + Send + 'static,
) where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response<B>, E>> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, say: wait a little rather than spin.
                eprintln!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        accepted();
        let (state, handle) = (state.clone(), handle.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(state.clone(), request));
            // A client that goes away mid-request is the client's business.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
