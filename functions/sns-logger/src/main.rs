use fanout_common::events::Batch;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The logger's output is its product: always JSON, one flat object per line.
    fanout_common::telemetry::init_json();
    let logger = &sns_logger::Logger::default();
    run(service_fn(move |event: LambdaEvent<Batch>| async move {
        logger.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
