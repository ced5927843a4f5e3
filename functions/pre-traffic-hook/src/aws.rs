//! The hook's AWS side: CodeDeploy (the deployment's AppSpec, the verdict) and Lambda (the
//! new version's invocation).

use aws_sdk_codedeploy::types::LifecycleEventStatus;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use fanout_aws::DisplayErrorContext;
use serde_json::Value;

use crate::{Answer, Deployments, HookError, HookEvent, Invoker};

fn aws_error(operation: &'static str, err: impl std::error::Error) -> HookError {
    HookError::Aws {
        operation,
        detail: DisplayErrorContext(err).to_string(),
    }
}

/// CodeDeploy.
#[derive(Debug, Clone)]
pub struct AwsDeployments {
    client: aws_sdk_codedeploy::Client,
}

impl AwsDeployments {
    pub fn new(client: aws_sdk_codedeploy::Client) -> Self {
        AwsDeployments { client }
    }
}

impl Deployments for AwsDeployments {
    async fn appspec(&self, deployment_id: &str) -> Result<String, HookError> {
        let output = self
            .client
            .get_deployment()
            .deployment_id(deployment_id)
            .send()
            .await
            .map_err(|e| aws_error("CodeDeploy GetDeployment", e))?;
        let revision = output
            .deployment_info()
            .and_then(|info| info.revision())
            .ok_or_else(|| HookError::AppSpec("the deployment has no revision".into()))?;
        let content = (revision.app_spec_content().and_then(|c| c.content()))
            .or_else(|| revision.string().and_then(|s| s.content()));
        content
            .map(str::to_owned)
            .ok_or_else(|| HookError::AppSpec("the revision holds no AppSpec content".into()))
    }

    async fn report(&self, event: &HookEvent, passed: bool) -> Result<(), HookError> {
        let status = if passed {
            LifecycleEventStatus::Succeeded
        } else {
            LifecycleEventStatus::Failed
        };
        self.client
            .put_lifecycle_event_hook_execution_status()
            .deployment_id(&event.deployment_id)
            .lifecycle_event_hook_execution_id(&event.lifecycle_event_hook_execution_id)
            .status(status)
            .send()
            .await
            .map_err(|e| aws_error("CodeDeploy PutLifecycleEventHookExecutionStatus", e))?;
        Ok(())
    }
}

/// Lambda.
#[derive(Debug, Clone)]
pub struct AwsInvoker {
    client: aws_sdk_lambda::Client,
}

impl AwsInvoker {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        AwsInvoker { client }
    }
}

impl Invoker for AwsInvoker {
    async fn invoke(
        &self,
        function: &str,
        version: &str,
        payload: &Value,
    ) -> Result<Answer, HookError> {
        let output = self
            .client
            .invoke()
            .function_name(function)
            .qualifier(version)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| aws_error("Lambda Invoke", e))?;
        let body = (output.payload())
            .map(|blob| serde_json::from_slice(blob.as_ref()).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        Ok(match output.function_error() {
            Some(_) => Answer::Failed(body),
            None => Answer::Returned(body),
        })
    }
}
