//! Logging: `tracing`, formatted as JSON when `AWS_LAMBDA_LOG_FORMAT=JSON` (Lambda's advanced
//! logging controls), at the level of `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.

/// Installs the Lambda runtime's default subscriber, which reads the variables above.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Installs a subscriber that always writes one flat JSON object per event, whatever the
/// environment says: for functions whose output is itself a structured log.
pub fn init_json() {
    use lambda_runtime::tracing::subscriber;
    subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_env_filter(
            subscriber::EnvFilter::builder()
                .with_default_directive(subscriber::filter::LevelFilter::INFO.into())
                .from_env_lossy(),
        )
        .init();
}
