//! What the smoke test learns from a stack: its Outputs (where things are) and its Parameters
//! (how it is configured: the multiplier, the SSM parameters holding Slack's secrets, the
//! buckets), from one DescribeStacks call.

use aws_sdk_cloudformation::types::Stack;

use crate::SmokeError;

/// The stack's parameter naming the SSM parameter with Slack's signing secret.
pub const SIGNING_SECRET_PARAMETER: &str = "SlackSigningSecretParameter";
/// The stack's parameter naming the SSM parameter with the legacy verification token.
pub const VERIFICATION_TOKEN_PARAMETER: &str = "SlackVerificationTokenParameter";
/// The stack's parameter with what sns-multiplier adds per occurrence.
pub const MULTIPLIER_PARAMETER: &str = "Multiplier";

/// A stack's Outputs and Parameters as `(key, value)` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackFacts {
    pub name: String,
    pub outputs: Vec<(String, String)>,
    pub parameters: Vec<(String, String)>,
}

/// An SSM parameter holding one of Slack's secrets, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretParameter {
    SigningSecret(String),
    VerificationToken(String),
}

impl SecretParameter {
    pub fn name(&self) -> &str {
        match self {
            SecretParameter::SigningSecret(name) | SecretParameter::VerificationToken(name) => name,
        }
    }
}

impl StackFacts {
    /// The facts in one stack of a DescribeStacks answer.
    pub fn from_described(name: &str, stack: &Stack) -> StackFacts {
        StackFacts {
            name: name.to_owned(),
            outputs: stack
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect(),
            parameters: stack
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_owned(),
                        p.parameter_value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
        }
    }

    /// The value of output `key`, or a message naming the stack and the outputs it has.
    pub fn output(&self, key: &str) -> Result<String, SmokeError> {
        crate::output(&self.outputs, &self.name, key)
    }

    /// The value of output `key`, when the stack has it.
    pub fn optional_output(&self, key: &str) -> Option<&str> {
        lookup(&self.outputs, key)
    }

    /// The value of parameter `key`, when the stack has it and it is not empty.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        lookup(&self.parameters, key).filter(|value| !value.trim().is_empty())
    }

    /// What sns-multiplier adds per occurrence: the stack's `Multiplier` parameter.
    pub fn multiplier(&self) -> Result<i64, SmokeError> {
        let value = self.parameter(MULTIPLIER_PARAMETER).ok_or_else(|| {
            SmokeError::Setup(format!(
                "stack {:?} has no {MULTIPLIER_PARAMETER} parameter; give --multiplier",
                self.name
            ))
        })?;
        value.trim().parse().map_err(|_| {
            SmokeError::Setup(format!(
                "stack {:?}'s {MULTIPLIER_PARAMETER} parameter {value:?} is not a whole number; give --multiplier",
                self.name
            ))
        })
    }

    /// The SSM parameter the stack's counter verifies requests with: its signing secret's, or,
    /// when it has none, its verification token's; `None` when it names neither.
    pub fn secret_parameter(&self) -> Option<SecretParameter> {
        self.parameter(SIGNING_SECRET_PARAMETER)
            .map(|name| SecretParameter::SigningSecret(name.to_owned()))
            .or_else(|| {
                self.parameter(VERIFICATION_TOKEN_PARAMETER)
                    .map(|name| SecretParameter::VerificationToken(name.to_owned()))
            })
    }
}

fn lookup<'f>(pairs: &'f [(String, String)], key: &str) -> Option<&'f str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Describes the stack `name`: its Outputs and Parameters.
pub async fn describe_stack(
    client: &aws_sdk_cloudformation::Client,
    name: &str,
) -> Result<StackFacts, SmokeError> {
    let described = client
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| {
            SmokeError::Setup(format!(
                "could not describe stack {name:?}: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(e)
            ))
        })?;
    let stack = described
        .stacks()
        .first()
        .ok_or_else(|| SmokeError::Setup(format!("there is no stack {name:?}")))?;
    Ok(StackFacts::from_described(name, stack))
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::types::{Output, Parameter, StackStatus};

    use super::*;

    /// A DescribeStacks answer's stack as CloudFormation gives it for a fanout stack (parameters
    /// with defaults are listed too; an empty value is an empty string).
    fn described(parameters: &[(&str, &str)]) -> Stack {
        let mut stack = Stack::builder()
            .stack_name("fanout-test")
            .stack_status(StackStatus::UpdateComplete)
            .outputs(
                Output::builder()
                    .output_key("SlackUrl")
                    .output_value("https://abc.execute-api.eu-west-1.amazonaws.com/slack")
                    .build(),
            )
            .outputs(
                Output::builder()
                    .output_key("WordsTableName")
                    .output_value("fanout-test-WordsTable-1X2Y")
                    .build(),
            );
        for (key, value) in parameters {
            stack = stack.parameters(
                Parameter::builder()
                    .parameter_key(*key)
                    .parameter_value(*value)
                    .build(),
            );
        }
        stack.build()
    }

    #[test]
    fn the_multiplier_and_the_secrets_name_are_read_from_the_parameters() {
        let facts = StackFacts::from_described(
            "fanout-test",
            &described(&[
                ("Multiplier", "7"),
                ("SlackSigningSecretParameter", "/fanout/test/signing-secret"),
                ("SlackVerificationTokenParameter", ""),
                ("SourceBucket", "src"),
            ]),
        );
        assert_eq!(facts.multiplier().unwrap(), 7);
        assert_eq!(
            facts.secret_parameter(),
            Some(SecretParameter::SigningSecret(
                "/fanout/test/signing-secret".into()
            ))
        );
        assert_eq!(
            facts.output("WordsTableName").unwrap(),
            "fanout-test-WordsTable-1X2Y"
        );
        assert_eq!(facts.parameter("SourceBucket"), Some("src"));
        assert_eq!(facts.parameter("SlackVerificationTokenParameter"), None);
        assert_eq!(facts.parameter("NoSuchParameter"), None);
    }

    #[test]
    fn without_a_signing_secret_the_token_parameter_is_used() {
        let facts = StackFacts::from_described(
            "s",
            &described(&[
                ("SlackSigningSecretParameter", ""),
                ("SlackVerificationTokenParameter", "/fanout/token"),
            ]),
        );
        assert_eq!(
            facts.secret_parameter(),
            Some(SecretParameter::VerificationToken("/fanout/token".into()))
        );
        let neither =
            StackFacts::from_described("s", &described(&[("SlackSigningSecretParameter", "")]));
        assert_eq!(neither.secret_parameter(), None);
    }

    #[test]
    fn a_missing_or_bad_multiplier_says_to_give_the_flag() {
        let missing = StackFacts::from_described("s", &described(&[]));
        let err = missing.multiplier().unwrap_err().to_string();
        assert!(
            err.contains("Multiplier") && err.contains("--multiplier"),
            "{err}"
        );
        let bad = StackFacts::from_described("s", &described(&[("Multiplier", "ten")]));
        let err = bad.multiplier().unwrap_err().to_string();
        assert!(
            err.contains("\"ten\"") && err.contains("--multiplier"),
            "{err}"
        );
        let spaced = StackFacts::from_described("s", &described(&[("Multiplier", " 12 ")]));
        assert_eq!(spaced.multiplier().unwrap(), 12);
    }
}
