//! The init phase: configuration and clients are built once, before the first invocation. When
//! that fails, the error is logged and posted to the Runtime API's init error endpoint, so that
//! Lambda reports a clear `Runtime.InitError` naming the problem instead of a crash later on.

use std::fmt::Display;
use std::future::Future;

use lambda_runtime_api_client::{body::Body, build_request, PooledClient};

/// Runs the init future; on error, reports it and returns it so `main` can exit non-zero.
pub async fn init_or_report<T, E, F>(init: F) -> Result<T, lambda_runtime::Error>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    match init.await {
        Ok(value) => Ok(value),
        Err(err) => {
            let message = err.to_string();
            tracing::error!(error = %message, "init failed");
            report_init_error(&message).await;
            Err(message.into())
        }
    }
}

/// Posts the error to `/runtime/init/error` when running under a Lambda Runtime API.
async fn report_init_error(message: &str) {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return;
    }
    let body = serde_json::json!({ "errorType": "Runtime.ConfigError", "errorMessage": message });
    let request = build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.ConfigError")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()));
    let outcome = match request {
        Ok(request) => PooledClient::builder()
            .build()
            .call(request)
            .await
            .map(|response| response.status()),
        Err(err) => Err(err.into()),
    };
    match outcome {
        Ok(status) if status.is_success() => {}
        Ok(status) => tracing::warn!(%status, "the Runtime API refused the init error report"),
        Err(err) => tracing::warn!(error = %err, "could not post the init error report"),
    }
}
