//! A fan-out run's continuation: the same function invoked again, asynchronously (`Event`),
//! with the continuation as its event.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;
use fanout_aws::DisplayErrorContext;
use fanout_copy_core::fanout::{Continuation, ContinueError, RunRequest};

/// Invokes functions: made once at init, it gives a [`SelfInvoker`] per invocation, for the
/// function ARN the invocation's context names.
#[derive(Debug, Clone)]
pub struct Invoker {
    client: Client,
}

impl Invoker {
    pub fn new(client: Client) -> Self {
        Invoker { client }
    }

    pub fn for_function(&self, function_arn: impl Into<String>) -> SelfInvoker {
        SelfInvoker::new(self.client.clone(), function_arn)
    }
}

/// Invokes one function.
#[derive(Debug, Clone)]
pub struct SelfInvoker {
    client: Client,
    function_arn: String,
}

impl SelfInvoker {
    pub fn new(client: Client, function_arn: impl Into<String>) -> Self {
        SelfInvoker {
            client,
            function_arn: function_arn.into(),
        }
    }
}

impl Continuation for SelfInvoker {
    async fn continue_with(&self, next: &RunRequest) -> Result<(), ContinueError> {
        let error = |detail: String| ContinueError {
            run_id: next.run_id.clone().unwrap_or_default(),
            detail,
        };
        if self.function_arn.is_empty() {
            return Err(error("the invocation context names no function".into()));
        }
        let payload = serde_json::to_vec(next).map_err(|e| error(e.to_string()))?;
        self.client
            .invoke()
            .function_name(&self.function_arn)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| error(DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}
