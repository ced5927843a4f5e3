use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The logger's output is its product: always JSON, one flat object per line.
    fanout_common::telemetry::init_json();
    run(service_fn(|event: LambdaEvent<Value>| {
        sns_logger::handle(event.payload)
    }))
    .await
}
