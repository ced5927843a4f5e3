use fanout_common::{init::init_or_report, telemetry, ConfigError, Vars};
use fanout_copy_dynamodb::RunTable;
use fanout_copy_s3::S3Store;
use fanout_sns::JobPublisher;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use s3_copier::{Config, CopierEvent, CopyHandler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let handler = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = fanout_aws::sdk_config().await;
        let store = S3Store::from_sdk(&sdk);
        let sns = aws_sdk_sns::Client::new(&sdk);
        let announcer = fanout_sns::announcer(
            &sns,
            config.events_topic_arn.as_deref(),
            config.report_url.as_ref(),
            std::sync::Arc::new(store.clone()),
        );
        let mut copier = store.paced_copier(config.options.clone(), config.concurrency);
        let ledger = (config.runs_table.as_ref())
            .map(|table| RunTable::new(aws_sdk_dynamodb::Client::new(&sdk), table));
        if let Some(ledger) = &ledger {
            // Every multipart upload is registered until it ends, for the sweep.
            copier = copier.with_registry(std::sync::Arc::new(ledger.clone()));
        }
        let continuations =
            (config.topic_arn.as_ref()).map(|topic| JobPublisher::new(sns.clone(), topic));
        Ok::<_, ConfigError>(
            CopyHandler::new(copier, ledger)
                .with_max_receives(config.max_receives)
                .with_continuations(continuations)
                .with_announcer(announcer)
                .with_batch_destination(config.batch_destination.clone())
                .with_mirror(config.mirror.clone())
                .with_redelivery(Some(fanout_sqs::Redelivery::new(aws_sdk_sqs::Client::new(
                    &sdk,
                ))))
                .with_retry_base(config.retry_base),
        )
    })
    .await?;
    let handler = &handler;
    run(service_fn(
        move |event: LambdaEvent<CopierEvent>| async move {
            let deadline = event.context.deadline();
            handler
                .handle_event(event.payload, Some(deadline))
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
