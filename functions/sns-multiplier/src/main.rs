use fanout_common::{aws, init::init_or_report, telemetry, ConfigError, Vars};
use fanout_words::store::WordStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use sns_multiplier::{Config, Multiplier};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let multiplier = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = aws::sdk_config().await;
        let store = WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table);
        Ok::<_, ConfigError>(Multiplier::new(store, config.multiplier))
    })
    .await?;
    let multiplier = &multiplier;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        multiplier.handle(event.payload).await
    }))
    .await
}
