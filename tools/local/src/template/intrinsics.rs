//! CloudFormation's intrinsic functions, evaluated as they would be for a stack in the emulator:
//! `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::If` and the conditions.

use serde_yaml::Value;

use super::{queue_arn, topic_arn, Parameters, ACCOUNT, REGION, STACK};

/// What an intrinsic function needs to see: the whole template, its parameters and resources.
pub(super) struct Context<'a> {
    pub root: &'a Value,
    pub parameters: &'a Parameters,
    pub resources: &'a [(String, Value)],
}

impl Context<'_> {
    fn resource(&self, id: &str) -> Option<&Value> {
        self.resources
            .iter()
            .find(|(rid, _)| rid == id)
            .map(|(_, r)| r)
    }

    /// A resource's local name: the name its properties give, else its logical id.
    pub fn physical_name(&self, id: &str) -> String {
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
    pub fn referenced_resource(&self, value: &Value) -> Option<String> {
        let (name, arg) = intrinsic(value)?;
        let id = match name.as_str() {
            "Ref" => scalar(&arg)?,
            "Fn::GetAtt" => get_att_parts(&arg)?.0,
            _ => return None,
        };
        self.resource(&id).map(|_| id)
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
    pub fn resolve(&self, value: &Value) -> Option<String> {
        let Some((name, arg)) = intrinsic(value) else {
            return scalar(value);
        };
        match name.as_str() {
            "Ref" => self.reference(&scalar(&arg)?),
            "Fn::GetAtt" => {
                let (id, attribute) = get_att_parts(&arg)?;
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

/// `Fn::GetAtt`'s argument, `Id.Attribute` or `[Id, Attribute]`.
fn get_att_parts(arg: &Value) -> Option<(String, String)> {
    match arg {
        Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
        Value::Sequence(parts) if parts.len() == 2 => {
            Some((scalar(&parts[0])?, scalar(&parts[1])?))
        }
        _ => None,
    }
}

/// A mapping's entries with string keys; empty for anything else.
pub(super) fn mapping(value: Option<&Value>) -> Vec<(String, Value)> {
    value
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// A string, number or boolean as text.
pub(super) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn resource_type(resource: &Value) -> &str {
    resource
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}
