//! Secrets that stay out of a function's environment: read once, at init, from an SSM
//! Parameter Store SecureString parameter (decrypted).

use aws_sdk_ssm::Client;
use fanout_aws::DisplayErrorContext;

/// A parameter that could not be read, or holds nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("could not read SSM parameter {name:?}: {detail}")]
    Read { name: String, detail: String },
    #[error("SSM parameter {name:?} is empty")]
    Empty { name: String },
}

/// Reads SecureString parameters.
#[derive(Debug, Clone)]
pub struct Secrets {
    client: Client,
}

impl Secrets {
    pub fn new(client: Client) -> Self {
        Secrets { client }
    }

    /// The parameter's value, decrypted and trimmed; an error when it is missing or blank.
    pub async fn read(&self, name: &str) -> Result<String, SecretError> {
        let output = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| SecretError::Read {
                name: name.to_owned(),
                detail: DisplayErrorContext(e).to_string(),
            })?;
        let value = output
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or_default()
            .trim();
        if value.is_empty() {
            return Err(SecretError::Empty {
                name: name.to_owned(),
            });
        }
        Ok(value.to_owned())
    }
}
