//! What every AWS adapter shares: the SDK configuration, loaded once at init by the default
//! chain (so `AWS_ENDPOINT_URL`, `AWS_REGION` and the credential chain work unchanged), and how
//! a call that failed after the SDK's own retries is classed.
//!
//! This crate links no service SDK: each adapter crate links the one it calls.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use aws_smithy_types::error::display::DisplayErrorContext;

/// How long a call waits to connect (the SDK's own default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// How long an attempt waits for the first byte of its answer before the SDK gives up on it
/// and retries. Without it a request that is never answered (a connection that died without a
/// reset) holds the invocation until Lambda's deadline. It bounds the time to the answer's
/// head, not the body: a long poll (SQS `WaitTimeSeconds`) must stay under it, and S3's copy
/// requests lift it (`fanout_copy_s3`'s `COPY_READ_TIMEOUT`).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Loads the shared SDK configuration once, at init.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// Whether a call that failed after the SDK's retries may succeed later: throttling, 5xx,
/// timeouts and connection failures, judged by the SDK's own lists of throttling and transient
/// error codes. Anything else (validation, access denied, a missing resource) is permanent.
pub fn is_transient<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service.err().code().is_some_and(|code| {
                    THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code)
                })
        }
        _ => false,
    }
}

/// The HTTP status of the response a failed call got, if it got one.
pub fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response()
        .map(|response| response.status().as_u16())
}

/// A pause before trying again a write that collided with another (a DynamoDB transaction
/// conflict, a conditional write that lost a race): 20 ms, 40 ms, … up to 1.28 s, with up to half
/// again of jitter, so that colliding writers part ways.
pub fn collision_backoff(attempt: u32) -> std::time::Duration {
    let base = std::time::Duration::from_millis(20 << attempt.min(6));
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 1000)
        .unwrap_or_default();
    base + base * jitter / 2000
}
