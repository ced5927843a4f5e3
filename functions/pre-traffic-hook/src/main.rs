use fanout_common::{init::init_or_report, telemetry, ConfigError, Vars};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use pre_traffic_hook::{aws::AwsDeployments, aws::AwsInvoker, Config, Hook, HookEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let hook = init_or_report(async {
        let config = Config::from_vars(&Vars::process())?;
        let sdk = fanout_aws::sdk_config().await;
        let deployments = AwsDeployments::new(aws_sdk_codedeploy::Client::new(&sdk));
        let invoker = AwsInvoker::new(aws_sdk_lambda::Client::new(&sdk));
        Ok::<_, ConfigError>(Hook::new(config, deployments, invoker))
    })
    .await?;
    let hook = &hook;
    run(service_fn(
        move |event: LambdaEvent<HookEvent>| async move {
            hook.handle(&event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
