use fanout_common::{aws, init::init_or_report, telemetry, ConfigError, Vars};
use fanout_copy::{ledger::RunLedger, Copier, ObjectStore};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use s3_copier::{Config, CopyHandler};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let handler = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = aws::sdk_config().await;
        let copier = Copier::new(
            ObjectStore::from_sdk(&sdk),
            config.options,
            config.concurrency,
        );
        let ledger = (config.runs_table.as_ref())
            .map(|table| RunLedger::new(aws_sdk_dynamodb::Client::new(&sdk), table));
        Ok::<_, ConfigError>(CopyHandler::new(copier, ledger))
    })
    .await?;
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler.handle(event.payload).await
    }))
    .await
}
