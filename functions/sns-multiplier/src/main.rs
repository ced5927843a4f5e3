use fanout_common::events::Batch;
use fanout_common::{init::init_or_report, telemetry, ConfigError, Vars};
use fanout_sqs::SqsDeadLetters;
use fanout_words_dynamodb::WordStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use sns_multiplier::{Config, Multiplier};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let multiplier = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = fanout_aws::sdk_config().await;
        let store = WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table);
        let dead_letters = (config.dead_letter_queue_url.as_ref())
            .map(|url| SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), url));
        Ok::<_, ConfigError>(
            Multiplier::new(store, config.multiplier).with_dead_letters(dead_letters),
        )
    })
    .await?;
    let multiplier = &multiplier;
    run(service_fn(move |event: LambdaEvent<Batch>| async move {
        multiplier.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
