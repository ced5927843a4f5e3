//! What every AWS adapter shares: the SDK configuration, loaded once at init by the default
//! chain (so `AWS_ENDPOINT_URL`, `AWS_REGION` and the credential chain work unchanged), and how
//! a call that failed after the SDK's own retries is classed.
//!
//! This crate links no service SDK: each adapter crate links the one it calls.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub use aws_smithy_types::error::display::DisplayErrorContext;

/// Loads the shared SDK configuration once, at init.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
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
