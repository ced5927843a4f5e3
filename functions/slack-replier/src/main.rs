use fanout_common::events::Batch;
use fanout_common::{init::init_or_report, telemetry, Vars};
use fanout_slack_web::SlackApi;
use fanout_ssm::Secrets;
use fanout_words_dynamodb::WordStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use slack_replier::{bot_token, Config, InitError, Replier};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let replier = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = fanout_aws::sdk_config().await;
        let token = bot_token(&config, &Secrets::new(aws_sdk_ssm::Client::new(&sdk))).await?;
        let store = WordStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table);
        // Without a bot token, slash commands' late answers still go to their response URLs.
        let slack = SlackApi::new(&config.api_url, token.clone().unwrap_or_default());
        let replier = Replier::new(store, Some(slack), config.lease);
        Ok::<_, InitError>(if token.is_some() {
            replier
        } else {
            replier.without_threaded_replies()
        })
    })
    .await?;
    let replier = &replier;
    run(service_fn(move |event: LambdaEvent<Batch>| async move {
        replier.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
