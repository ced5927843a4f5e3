//! Invokes the functions running under `cargo lambda watch`, as the Lambda Invoke API does.

use std::time::Duration;

use serde_json::Value;

/// How long one invocation may take; the first one of each function includes compiling it.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// An invocation that did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("invoking {function}: {source}")]
    Send {
        function: String,
        source: reqwest::Error,
    },
    #[error("reading {function}'s answer: {source}")]
    Read {
        function: String,
        source: reqwest::Error,
    },
    #[error("{function} failed ({status}): {body}")]
    Failed {
        function: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("{function} answered something that is not JSON ({source}): {body}")]
    NotJson {
        function: String,
        source: serde_json::Error,
        body: String,
    },
}

/// Delivers events to the functions running under `cargo lambda watch`.
#[derive(Clone)]
pub struct Invoker {
    http: reqwest::Client,
    base: String,
}

impl Invoker {
    /// An invoker for the `cargo lambda watch` at `base` (`http://host:port`).
    pub fn new(http: reqwest::Client, base: String) -> Invoker {
        Invoker { http, base }
    }

    /// Invokes a function synchronously, as the Lambda Invoke API does.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, InvokeError> {
        let response = self
            .http
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.base
            ))
            .header("content-type", "application/json")
            .body(payload.to_string())
            .timeout(INVOKE_TIMEOUT)
            .send()
            .await
            .map_err(|source| InvokeError::Send {
                function: function.to_owned(),
                source,
            })?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.text().await.map_err(|source| InvokeError::Read {
            function: function.to_owned(),
            source,
        })?;
        if !status.is_success() || function_error {
            return Err(InvokeError::Failed {
                function: function.to_owned(),
                status,
                body,
            });
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|source| InvokeError::NotJson {
            function: function.to_owned(),
            source,
            body,
        })
    }
}
