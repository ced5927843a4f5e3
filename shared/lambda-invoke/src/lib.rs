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
    /// The function's own name, for a context that names no ARN.
    own_name: Option<String>,
}

impl Invoker {
    pub fn new(client: Client) -> Self {
        Invoker {
            client,
            own_name: None,
        }
    }

    /// The function's own name (`AWS_LAMBDA_FUNCTION_NAME`, which Lambda sets), invoked when
    /// the context's ARN is not one: a local Lambda emulator such as `cargo lambda watch`
    /// names no real ARN, while its Invoke API serves each function by name.
    pub fn with_own_name(mut self, own_name: Option<String>) -> Self {
        self.own_name = own_name.filter(|name| !name.is_empty());
        self
    }

    /// Invokes the function the context names: the ARN it was invoked by (with its alias, so
    /// that a continuation runs the same version), or else the function's own name.
    pub fn for_function(&self, function_arn: &str) -> SelfInvoker {
        let target = match &self.own_name {
            Some(name) if !function_arn.starts_with("arn:") => name.clone(),
            _ => function_arn.to_owned(),
        };
        SelfInvoker::new(self.client.clone(), target)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn invoker(own_name: Option<&str>) -> Invoker {
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .build();
        Invoker::new(Client::from_conf(config)).with_own_name(own_name.map(str::to_owned))
    }

    #[test]
    fn the_context_arn_is_invoked_and_the_own_name_only_when_there_is_no_arn() {
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:fanout-S3Fanout-1A2B:live";
        let named = invoker(Some("fanout-S3Fanout-1A2B"));
        assert_eq!(
            named.for_function(arn).function_arn,
            arn,
            "the alias is kept"
        );
        // cargo lambda watch names every function "function-arn".
        let local = named.for_function("function-arn");
        assert_eq!(local.function_arn, "fanout-S3Fanout-1A2B");
        assert_eq!(
            invoker(None).for_function("function-arn").function_arn,
            "function-arn"
        );
        assert_eq!(invoker(Some("")).for_function("").function_arn, "");
    }
}
