//! Reads infra/template.yaml into the plan of a local stack: the resources to create, with the
//! same names and shapes, and how each function's events reach it. Because the local wiring is
//! derived from the template, the two cannot drift.
//!
//! `intrinsics` evaluates `!Ref`, `!GetAtt`, `!Sub`, `!If`… the way CloudFormation would for a
//! stack in the emulator; `functions` reads a function's events, environment and failure queue;
//! `read` the parameters, tables, queues and subscriptions; this module puts the plan together.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

use intrinsics::{mapping, resource_type, Context};
use read::{parameters, queue, subscription, table};

mod functions;
mod intrinsics;
mod read;
#[cfg(test)]
mod tests;

/// The account and region the emulator uses; ARNs are built with them.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
/// The stack name, as `AWS::StackName` resolves locally.
pub const STACK: &str = "fanout-local";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub logical_id: String,
    pub name: String,
    pub key: String,
    pub ttl_attribute: Option<String>,
    /// Its global secondary indexes (numeric keys, as the words table's leaderboard).
    pub indexes: Vec<fanout_tests::NumberIndex>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub logical_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub logical_id: String,
    pub name: String,
    /// The DLQ's logical id and the receive count after which a message moves there.
    pub redrive: Option<(String, u32)>,
    pub visibility_timeout: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: String,
    pub queue: String,
    pub raw: bool,
}

/// How events reach a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Http {
        method: String,
        path: String,
    },
    Sqs {
        queue: String,
        batch_size: u32,
        report_failures: bool,
    },
    Sns {
        topic: String,
    },
    Schedule {
        expression: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub logical_id: String,
    pub binary: String,
    pub env: BTreeMap<String, String>,
    pub triggers: Vec<Trigger>,
    /// Where a failed asynchronous invocation goes (a queue's logical id).
    pub failure_queue: Option<String>,
}

/// A named value of the template's `Parameters`, after local overrides.
pub type Parameters = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub parameters: Parameters,
    pub tables: Vec<Table>,
    pub topics: Vec<Topic>,
    pub queues: Vec<Queue>,
    pub subscriptions: Vec<Subscription>,
    pub functions: Vec<Function>,
}

/// The template could not be read into a plan.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not YAML: {source}")]
    Yaml {
        path: String,
        source: serde_yaml::Error,
    },
    #[error("the template has no parameter {0}")]
    UnknownParameter(String),
    #[error("table {0} has no HASH key")]
    NoHashKey(String),
    #[error("queue {0}'s RedrivePolicy does not name a queue of the template")]
    RedriveTarget(String),
    #[error("subscription {0} does not join a topic and a queue of the template")]
    SubscriptionEnds(String),
    #[error("function {0} has no Metadata.BuildProperties.Binary")]
    NoBinary(String),
    #[error(
        "{function}.{event}: the {kind} event's {property} is not a {expected} of the template"
    )]
    EventSource {
        function: String,
        event: String,
        kind: &'static str,
        property: &'static str,
        expected: &'static str,
    },
    #[error("{function}.{event}: event type {kind} has no local equivalent yet")]
    EventType {
        function: String,
        event: String,
        kind: String,
    },
    #[error("{var} is {first_value:?} for {first} but {second_value:?} for {second}: one local server cannot run both")]
    ConflictingEnv {
        var: String,
        first: String,
        first_value: String,
        second: String,
        second_value: String,
    },
}

impl Plan {
    /// Reads the template at `path`, with `overrides` in place of the parameters' defaults.
    pub fn from_file(path: &Path, overrides: &[(&str, &str)]) -> Result<Plan, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let root: Value = serde_yaml::from_str(&text).map_err(|source| TemplateError::Yaml {
            path: path.display().to_string(),
            source,
        })?;
        Plan::from_value(&root, overrides)
    }

    pub fn from_value(root: &Value, overrides: &[(&str, &str)]) -> Result<Plan, TemplateError> {
        let parameters = parameters(root, overrides)?;
        let resources = mapping(root.get("Resources"));
        let ctx = Context {
            root,
            parameters: &parameters,
            resources: &resources,
        };
        let mut plan = Plan {
            parameters: parameters.clone(),
            tables: Vec::new(),
            topics: Vec::new(),
            queues: Vec::new(),
            subscriptions: Vec::new(),
            functions: Vec::new(),
        };
        for (id, resource) in &resources {
            let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
            match resource_type(resource) {
                "AWS::DynamoDB::Table" => plan.tables.push(table(&ctx, id, &props)?),
                "AWS::SNS::Topic" => plan.topics.push(Topic {
                    logical_id: id.clone(),
                    name: ctx.physical_name(id),
                }),
                "AWS::SQS::Queue" => plan.queues.push(queue(&ctx, id, &props)?),
                "AWS::SNS::Subscription" => {
                    if let Some(subscription) = subscription(&ctx, id, &props)? {
                        plan.subscriptions.push(subscription);
                    }
                }
                "AWS::Serverless::Function" => plan
                    .functions
                    .push(functions::function(&ctx, id, resource)?),
                _ => {}
            }
        }
        Ok(plan)
    }

    /// The environment of every function merged, for one `cargo lambda watch` that runs them
    /// all. Two functions that set one variable differently are an error.
    pub fn merged_env(&self) -> Result<BTreeMap<String, String>, TemplateError> {
        let mut merged: BTreeMap<String, (String, String)> = BTreeMap::new();
        for function in &self.functions {
            for (var, value) in &function.env {
                if let Some((other, previous)) = merged.get(var) {
                    if previous != value {
                        return Err(TemplateError::ConflictingEnv {
                            var: var.clone(),
                            first: other.clone(),
                            first_value: previous.clone(),
                            second: function.binary.clone(),
                            second_value: value.clone(),
                        });
                    }
                }
                merged.insert(var.clone(), (function.binary.clone(), value.clone()));
            }
        }
        Ok(merged
            .into_iter()
            .map(|(var, (_, value))| (var, value))
            .collect())
    }

    pub fn queue(&self, logical_id: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    pub fn topic(&self, logical_id: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.logical_id == logical_id)
    }
}

pub fn topic_arn(name: &str) -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT}:{name}")
}

pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}
