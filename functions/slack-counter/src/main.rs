use fanout_common::{init::init_or_report, telemetry, Vars};
use fanout_sns::WordsPublisher;
use fanout_ssm::Secrets;
use fanout_words_dynamodb::WordStore;
use lambda_http::{run, service_fn, Error, Request};
use slack_counter::{verifier, Config, Counter, InitError};

// One invocation at a time, I/O bound: a single-threaded runtime costs less CPU per request
// (docs/performance.md), and Lambda gives a small function only a fraction of a core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let counter = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = fanout_aws::sdk_config().await;
        let verifier = verifier(&config, &Secrets::new(aws_sdk_ssm::Client::new(&sdk))).await?;
        let store = WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table);
        let publisher = (config.topic_arn.as_ref())
            .map(|arn| WordsPublisher::new(aws_sdk_sns::Client::new(&sdk), arn));
        let has_topic = publisher.is_some();
        let counter = Counter::new(verifier, store, publisher);
        Ok::<_, InitError>(if has_topic {
            counter.with_command_deadline(config.command_deadline)
        } else {
            counter
        })
    })
    .await?;
    let counter = &counter;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(counter.handle(request).await)
    }))
    .await
}
