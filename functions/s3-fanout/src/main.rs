use fanout_common::{aws, init::init_or_report, telemetry, ConfigError, Vars};
use fanout_copy::{ledger::RunLedger, publish::JobPublisher, ObjectStore};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use s3_fanout::{Budget, Config, Fanout, SelfInvoker};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let fanout = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = aws::sdk_config().await;
        let publisher = JobPublisher::new(aws_sdk_sns::Client::new(&sdk), &config.topic_arn);
        let ledger = (config.runs_table.as_ref())
            .map(|table| RunLedger::new(aws_sdk_dynamodb::Client::new(&sdk), table));
        let continuer = SelfInvoker::new(aws_sdk_lambda::Client::new(&sdk));
        let store = ObjectStore::from_sdk(&sdk);
        Ok::<_, ConfigError>(Fanout::new(
            config,
            store,
            publisher,
            ledger,
            Some(continuer),
            Budget::default(),
        ))
    })
    .await?;
    let fanout = &fanout;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(serde_json::to_value(fanout.handle(event).await?)?)
    }))
    .await
}
