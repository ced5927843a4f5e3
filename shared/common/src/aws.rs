//! AWS client construction: the SDK's default chain, so `AWS_ENDPOINT_URL`, `AWS_REGION` and the
//! credential chain work unchanged, with the SDK's own retry configuration.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the shared SDK configuration once, at init.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Whether the configuration points at an endpoint other than AWS's own (an emulator, say).
/// S3 clients use path-style addressing then, since emulators rarely serve virtual hosts.
pub fn endpoint_overridden(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
}
