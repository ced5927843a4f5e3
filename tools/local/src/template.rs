//! Reads infra/template.yaml into the plan of a local stack: the resources to create, with the
//! same names and shapes, and how each function's events reach it. Because the local wiring is
//! derived from the template, the two cannot drift.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

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
    #[error("{0}")]
    Unsupported(String),
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
        let mut parameters = Parameters::new();
        for (name, spec) in mapping(root.get("Parameters")) {
            if let Some(default) = spec.get("Default").and_then(scalar) {
                parameters.insert(name.clone(), default);
            } else {
                parameters.insert(name.clone(), String::new());
            }
        }
        for (name, value) in overrides {
            if !parameters.contains_key(*name) {
                return Err(TemplateError::Unsupported(format!(
                    "the template has no parameter {name}"
                )));
            }
            parameters.insert((*name).to_owned(), (*value).to_owned());
        }
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
                "AWS::DynamoDB::Table" => plan.tables.push(Table {
                    logical_id: id.clone(),
                    name: ctx.physical_name(id),
                    key: props
                        .get("KeySchema")
                        .and_then(Value::as_sequence)
                        .and_then(|keys| {
                            keys.iter()
                                .find(|k| k.get("KeyType").and_then(Value::as_str) == Some("HASH"))
                        })
                        .and_then(|k| k.get("AttributeName"))
                        .and_then(scalar)
                        .ok_or_else(|| {
                            TemplateError::Unsupported(format!("table {id} has no HASH key"))
                        })?,
                    ttl_attribute: props
                        .get("TimeToLiveSpecification")
                        .and_then(|t| t.get("AttributeName"))
                        .and_then(scalar),
                }),
                "AWS::SNS::Topic" => plan.topics.push(Topic {
                    logical_id: id.clone(),
                    name: ctx.physical_name(id),
                }),
                "AWS::SQS::Queue" => {
                    let redrive = props.get("RedrivePolicy").map(|policy| {
                        let target = policy
                            .get("deadLetterTargetArn")
                            .and_then(|v| ctx.referenced_resource(v));
                        let count = policy
                            .get("maxReceiveCount")
                            .and_then(scalar)
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(3);
                        (target, count)
                    });
                    let redrive = match redrive {
                        Some((Some(target), count)) => Some((target, count)),
                        Some((None, _)) => {
                            return Err(TemplateError::Unsupported(format!(
                                "queue {id}'s RedrivePolicy does not name a queue of the template"
                            )))
                        }
                        None => None,
                    };
                    plan.queues.push(Queue {
                        logical_id: id.clone(),
                        name: ctx.physical_name(id),
                        redrive,
                        visibility_timeout: props
                            .get("VisibilityTimeout")
                            .and_then(|v| ctx.resolve(v))
                            .and_then(|v| v.parse().ok()),
                    });
                }
                "AWS::SNS::Subscription" => {
                    if props.get("Protocol").and_then(scalar).as_deref() != Some("sqs") {
                        continue;
                    }
                    let topic = props
                        .get("TopicArn")
                        .and_then(|v| ctx.referenced_resource(v));
                    let queue = props
                        .get("Endpoint")
                        .and_then(|v| ctx.referenced_resource(v));
                    let (Some(topic), Some(queue)) = (topic, queue) else {
                        return Err(TemplateError::Unsupported(format!(
                            "subscription {id} does not join a topic and a queue of the template"
                        )));
                    };
                    let raw = props
                        .get("RawMessageDelivery")
                        .and_then(|v| ctx.resolve(v))
                        .is_some_and(|v| v == "true");
                    plan.subscriptions.push(Subscription { topic, queue, raw });
                }
                "AWS::Serverless::Function" => plan.functions.push(ctx.function(id, resource)?),
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
                        return Err(TemplateError::Unsupported(format!(
                            "{var} is {previous:?} for {other} but {value:?} for {}: one local server cannot run both",
                            function.binary
                        )));
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

fn mapping(value: Option<&Value>) -> Vec<(String, Value)> {
    value
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn resource_type(resource: &Value) -> &str {
    resource
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An intrinsic function call, in short (`!Ref x`) or long (`{Ref: x}`) form.
fn intrinsic(value: &Value) -> Option<(String, Value)> {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let name = if tag == "Ref" || tag == "Condition" {
                tag.to_owned()
            } else {
                format!("Fn::{tag}")
            };
            Some((name, tagged.value.clone()))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k == "Condition" || k.starts_with("Fn::"))
                .then(|| (k.to_owned(), v.clone()))
        }
        _ => None,
    }
}

struct Context<'a> {
    root: &'a Value,
    parameters: &'a Parameters,
    resources: &'a [(String, Value)],
}

impl Context<'_> {
    fn resource(&self, id: &str) -> Option<&Value> {
        self.resources
            .iter()
            .find(|(rid, _)| rid == id)
            .map(|(_, r)| r)
    }

    /// A resource's local name: the name its properties give, else its logical id.
    fn physical_name(&self, id: &str) -> String {
        let Some(resource) = self.resource(id) else {
            return id.to_owned();
        };
        let property = match resource_type(resource) {
            "AWS::DynamoDB::Table" => "TableName",
            "AWS::SNS::Topic" => "TopicName",
            "AWS::SQS::Queue" => "QueueName",
            "AWS::Serverless::Function" => "FunctionName",
            _ => "Name",
        };
        resource
            .get("Properties")
            .and_then(|p| p.get(property))
            .and_then(|v| self.resolve(v))
            .unwrap_or_else(|| id.to_owned())
    }

    /// The logical id a value points at (`!Ref Q`, `!GetAtt Q.Arn`), if it is a resource.
    fn referenced_resource(&self, value: &Value) -> Option<String> {
        let (name, arg) = intrinsic(value)?;
        let id = match name.as_str() {
            "Ref" => scalar(&arg)?,
            "Fn::GetAtt" => self.get_att_parts(&arg)?.0,
            _ => return None,
        };
        self.resource(&id).map(|_| id)
    }

    fn get_att_parts(&self, arg: &Value) -> Option<(String, String)> {
        match arg {
            Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
            Value::Sequence(parts) if parts.len() == 2 => {
                Some((scalar(&parts[0])?, scalar(&parts[1])?))
            }
            _ => None,
        }
    }

    /// What `!Ref id` gives for a resource or parameter, locally.
    fn reference(&self, id: &str) -> Option<String> {
        match id {
            "AWS::Region" => return Some(REGION.into()),
            "AWS::AccountId" => return Some(ACCOUNT.into()),
            "AWS::StackName" => return Some(STACK.into()),
            "AWS::Partition" => return Some("aws".into()),
            "AWS::URLSuffix" => return Some("amazonaws.com".into()),
            "AWS::NoValue" => return None,
            _ => {}
        }
        if let Some(value) = self.parameters.get(id) {
            return Some(value.clone());
        }
        let resource = self.resource(id)?;
        let name = self.physical_name(id);
        Some(match resource_type(resource) {
            "AWS::SNS::Topic" => topic_arn(&name),
            "AWS::SQS::Queue" => format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"),
            _ => name,
        })
    }

    fn get_att(&self, id: &str, attribute: &str) -> Option<String> {
        let resource = self.resource(id)?;
        let name = self.physical_name(id);
        Some(match (resource_type(resource), attribute) {
            ("AWS::SQS::Queue", "Arn") => queue_arn(&name),
            ("AWS::SQS::Queue", "QueueName") | ("AWS::SNS::Topic", "TopicName") => name,
            ("AWS::SNS::Topic", "TopicArn") => topic_arn(&name),
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
            }
            _ => format!("{id}.{attribute}"),
        })
    }

    fn condition(&self, name: &str) -> bool {
        self.root
            .get("Conditions")
            .and_then(|c| c.get(name))
            .is_some_and(|c| self.truth(c))
    }

    fn truth(&self, value: &Value) -> bool {
        let Some((name, arg)) = intrinsic(value) else {
            return scalar(value).is_some_and(|v| v == "true");
        };
        let args = arg.as_sequence().cloned().unwrap_or_default();
        match name.as_str() {
            "Condition" => scalar(&arg).is_some_and(|c| self.condition(&c)),
            "Fn::Not" => !args.first().is_some_and(|a| self.truth(a)),
            "Fn::And" => args.iter().all(|a| self.truth(a)),
            "Fn::Or" => args.iter().any(|a| self.truth(a)),
            "Fn::Equals" => args.len() == 2 && self.resolve(&args[0]) == self.resolve(&args[1]),
            _ => false,
        }
    }

    /// A value as a string, with intrinsic functions evaluated locally; `None` for
    /// `AWS::NoValue` and for what cannot be resolved.
    fn resolve(&self, value: &Value) -> Option<String> {
        let Some((name, arg)) = intrinsic(value) else {
            return scalar(value);
        };
        match name.as_str() {
            "Ref" => self.reference(&scalar(&arg)?),
            "Fn::GetAtt" => {
                let (id, attribute) = self.get_att_parts(&arg)?;
                self.get_att(&id, &attribute)
            }
            "Fn::If" => {
                let args = arg.as_sequence()?;
                let branch = if self.condition(&scalar(args.first()?)?) {
                    args.get(1)?
                } else {
                    args.get(2)?
                };
                self.resolve(branch)
            }
            "Fn::Sub" => {
                let template = match &arg {
                    Value::Sequence(parts) => scalar(parts.first()?)?,
                    other => scalar(other)?,
                };
                Some(self.substitute(&template))
            }
            "Fn::Join" => {
                let args = arg.as_sequence()?;
                let separator = scalar(args.first()?)?;
                let parts: Vec<String> = args
                    .get(1)?
                    .as_sequence()?
                    .iter()
                    .filter_map(|p| self.resolve(p))
                    .collect();
                Some(parts.join(&separator))
            }
            _ => None,
        }
    }

    fn substitute(&self, template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + len];
            let value = match name.split_once('.') {
                Some((id, attribute)) if self.resource(id).is_some() => self.get_att(id, attribute),
                _ => self.reference(name),
            };
            out.push_str(&value.unwrap_or_default());
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }

    fn function(&self, id: &str, resource: &Value) -> Result<Function, TemplateError> {
        let binary = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(scalar)
            .ok_or_else(|| {
                TemplateError::Unsupported(format!(
                    "function {id} has no Metadata.BuildProperties.Binary"
                ))
            })?;
        let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
        let env = mapping(props.get("Environment").and_then(|e| e.get("Variables")))
            .into_iter()
            .filter_map(|(var, value)| self.resolve(&value).map(|v| (var, v)))
            .collect();
        let mut triggers = Vec::new();
        for (name, event) in mapping(props.get("Events")) {
            let ep = event.get("Properties").cloned().unwrap_or(Value::Null);
            let kind = event
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let trigger = match kind {
                "HttpApi" | "Api" => Trigger::Http {
                    method: ep
                        .get("Method")
                        .and_then(scalar)
                        .unwrap_or_else(|| "ANY".into())
                        .to_uppercase(),
                    path: ep
                        .get("Path")
                        .and_then(scalar)
                        .unwrap_or_else(|| "/".into()),
                },
                "SQS" => Trigger::Sqs {
                    queue: ep
                        .get("Queue")
                        .and_then(|q| self.referenced_resource(q))
                        .ok_or_else(|| {
                            TemplateError::Unsupported(format!(
                                "{id}.{name}: the SQS event's Queue is not a queue of the template"
                            ))
                        })?,
                    batch_size: ep
                        .get("BatchSize")
                        .and_then(|b| self.resolve(b))
                        .and_then(|b| b.parse().ok())
                        .unwrap_or(10),
                    report_failures: ep
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_sequence)
                        .is_some_and(|types| {
                            types
                                .iter()
                                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                        }),
                },
                "SNS" => Trigger::Sns {
                    topic: ep
                        .get("Topic")
                        .and_then(|t| self.referenced_resource(t))
                        .ok_or_else(|| {
                            TemplateError::Unsupported(format!(
                                "{id}.{name}: the SNS event's Topic is not a topic of the template"
                            ))
                        })?,
                },
                "Schedule" | "ScheduleV2" => Trigger::Schedule {
                    expression: ep
                        .get("Schedule")
                        .or_else(|| ep.get("ScheduleExpression"))
                        .and_then(|s| self.resolve(s))
                        .unwrap_or_default(),
                },
                other => {
                    return Err(TemplateError::Unsupported(format!(
                        "{id}.{name}: event type {other} has no local equivalent yet"
                    )))
                }
            };
            triggers.push(trigger);
        }
        let failure_queue = props
            .get("DeadLetterQueue")
            .and_then(|d| d.get("TargetArn"))
            .and_then(|t| self.referenced_resource(t))
            .or_else(|| {
                props
                    .get("EventInvokeConfig")
                    .and_then(|c| c.get("DestinationConfig"))
                    .and_then(|d| d.get("OnFailure"))
                    .and_then(|f| f.get("Destination"))
                    .and_then(|t| self.referenced_resource(t))
            });
        Ok(Function {
            logical_id: id.to_owned(),
            binary,
            env,
            triggers,
            failure_queue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::LOCAL_PARAMETERS;

    fn real_plan() -> Plan {
        let path = fanout_tests::workspace_root().join("infra/template.yaml");
        Plan::from_file(&path, LOCAL_PARAMETERS).unwrap_or_else(|e| panic!("{e}"))
    }

    fn function<'a>(plan: &'a Plan, binary: &str) -> &'a Function {
        plan.functions
            .iter()
            .find(|f| f.binary == binary)
            .unwrap_or_else(|| panic!("the template has no function with Binary {binary}"))
    }

    #[test]
    fn the_template_wires_every_event_source_the_local_stack_plays() {
        let plan = real_plan();
        let counter = function(&plan, "slack-counter");
        assert!(counter.triggers.contains(&Trigger::Http {
            method: "POST".into(),
            path: "/slack".into()
        }));
        let multiplier = function(&plan, "sns-multiplier");
        let logger = function(&plan, "sns-logger");
        let words_topic = |trigger: &Trigger| match trigger {
            Trigger::Sns { topic } => topic == "WordsTopic",
            Trigger::Sqs { queue, .. } => plan
                .subscriptions
                .iter()
                .any(|s| s.topic == "WordsTopic" && &s.queue == queue),
            _ => false,
        };
        assert!(
            multiplier.triggers.iter().any(words_topic),
            "WordsTopic reaches sns-multiplier: {:?}",
            multiplier.triggers
        );
        assert!(
            logger.triggers.iter().any(words_topic),
            "WordsTopic reaches sns-logger: {:?}",
            logger.triggers
        );
        let copier = function(&plan, "s3-copier");
        assert!(
            copier.triggers.iter().any(|t| matches!(t, Trigger::Sqs { queue, report_failures: true, .. } if queue == "CopyQueue")),
            "{:?}",
            copier.triggers
        );
        assert!(plan.subscriptions.contains(&Subscription {
            topic: "CopyTopic".into(),
            queue: "CopyQueue".into(),
            raw: true
        }));
        let fanout = function(&plan, "s3-fanout");
        assert!(fanout
            .triggers
            .iter()
            .any(|t| matches!(t, Trigger::Schedule { .. })));
        assert_eq!(fanout.env["COPY_TOPIC_ARN"], topic_arn("CopyTopic"));
        assert_eq!(counter.env["WORDS_TOPIC_ARN"], topic_arn("WordsTopic"));
        plan.merged_env()
            .expect("one cargo lambda watch can run every function");
    }

    /// `[package.metadata.lambda.env]` lets a developer run `cargo lambda watch` by hand against
    /// the local stack; its values must be the names the stack gives the template's resources.
    #[test]
    fn cargo_lambda_metadata_env_matches_the_local_stack() {
        let plan = real_plan();
        let functions = fanout_tests::workspace_root().join("functions");
        for entry in std::fs::read_dir(&functions).unwrap() {
            let dir = entry.unwrap().path();
            let binary = dir.file_name().unwrap().to_string_lossy().into_owned();
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let Some(section) = manifest.split("[package.metadata.lambda.env]").nth(1) else {
                continue;
            };
            let function = function(&plan, &binary);
            for line in section
                .lines()
                .take_while(|l| !l.trim_start().starts_with('['))
            {
                let Some((var, value)) = line.split_once('=') else {
                    continue;
                };
                let (var, value) = (var.trim(), value.trim().trim_matches('"'));
                if var.starts_with('#') {
                    continue;
                }
                assert_eq!(
                    function.env.get(var).map(String::as_str),
                    Some(value),
                    "{binary}'s Cargo.toml sets {var}={value:?} for cargo lambda watch, but the local stack derives {:?} from the template",
                    function.env.get(var)
                );
            }
        }
    }

    #[test]
    fn intrinsics_resolve_locally() {
        let template: Value = serde_yaml::from_str(
            r#"
Parameters:
  Secret: { Type: String, Default: "" }
  Bucket: { Type: String, Default: default-bucket }
Conditions:
  HasSecret: !Not [!Equals [!Ref Secret, ""]]
Resources:
  Jobs: { Type: AWS::SQS::Queue, Properties: { QueueName: jobs } }
  Topic: { Type: AWS::SNS::Topic }
  Fn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker } }
    Properties:
      Environment:
        Variables:
          SECRET: !If [HasSecret, !Ref Secret, !Ref AWS::NoValue]
          BUCKET: !Ref Bucket
          QUEUE_ARN: !GetAtt Jobs.Arn
          QUEUE_NAME: { "Fn::GetAtt": [Jobs, QueueName] }
          TOPIC: !Ref Topic
          WHERE: !Sub "${AWS::Region}/${Bucket}/${Jobs.QueueName}"
      Events:
        Work: { Type: SQS, Properties: { Queue: !GetAtt Jobs.Arn, BatchSize: 5 } }
"#,
        )
        .unwrap();
        let plan = Plan::from_value(&template, &[]).unwrap();
        let env = &plan.functions[0].env;
        assert_eq!(env.get("SECRET"), None, "AWS::NoValue removes the variable");
        assert_eq!(env["BUCKET"], "default-bucket");
        assert_eq!(env["QUEUE_ARN"], queue_arn("jobs"));
        assert_eq!(env["QUEUE_NAME"], "jobs");
        assert_eq!(env["TOPIC"], topic_arn("Topic"));
        assert_eq!(env["WHERE"], "us-east-1/default-bucket/jobs");
        assert_eq!(
            plan.functions[0].triggers,
            vec![Trigger::Sqs {
                queue: "Jobs".into(),
                batch_size: 5,
                report_failures: false
            }]
        );

        let plan = Plan::from_value(&template, &[("Secret", "/s"), ("Bucket", "b")]).unwrap();
        assert_eq!(plan.functions[0].env["SECRET"], "/s");
        assert!(Plan::from_value(&template, &[("NoSuchParameter", "x")]).is_err());
    }
}
