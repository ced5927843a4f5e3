use fanout_common::{init::init_or_report, telemetry, ConfigError, Vars};
use fanout_copy_core::fanout::Budget;
use fanout_copy_dynamodb::RunTable;
use fanout_copy_s3::S3Store;
use fanout_lambda_invoke::Invoker;
use fanout_sns::JobPublisher;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use s3_fanout::{Config, Fanout, FanoutEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let fanout = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = fanout_aws::sdk_config().await;
        let sns = aws_sdk_sns::Client::new(&sdk);
        let publisher = JobPublisher::new(sns.clone(), &config.topic_arn);
        let ledger = (config.runs_table.as_ref())
            .map(|table| RunTable::new(aws_sdk_dynamodb::Client::new(&sdk), table));
        let invoker = Invoker::new(aws_sdk_lambda::Client::new(&sdk))
            .with_own_name(std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok());
        let store = S3Store::from_sdk(&sdk);
        let announcer = fanout_sns::announcer(
            &sns,
            config.events_topic_arn.as_deref(),
            config.report_url.as_ref(),
            std::sync::Arc::new(store.clone()),
        );
        Ok::<_, ConfigError>(
            Fanout::new(
                config,
                store,
                publisher,
                ledger,
                Some(invoker),
                Budget::default(),
            )
            .with_announcer(announcer),
        )
    })
    .await?;
    let fanout = &fanout;
    run(service_fn(
        move |event: LambdaEvent<FanoutEvent>| async move {
            fanout.respond(event).await.map_err(Error::from)
        },
    ))
    .await
}
