//! The template's parameters, tables, queues and subscriptions, read into the plan's types.

use serde_yaml::Value;

use super::intrinsics::{mapping, scalar, Context};
use super::{Parameters, Queue, Subscription, Table, TemplateError};

/// The parameters' defaults, with `overrides` in their place.
pub(super) fn parameters(
    root: &Value,
    overrides: &[(&str, &str)],
) -> Result<Parameters, TemplateError> {
    let mut parameters: Parameters = mapping(root.get("Parameters"))
        .into_iter()
        .map(|(name, spec)| {
            let default = spec.get("Default").and_then(scalar).unwrap_or_default();
            (name, default)
        })
        .collect();
    for (name, value) in overrides {
        if !parameters.contains_key(*name) {
            return Err(TemplateError::UnknownParameter((*name).to_owned()));
        }
        parameters.insert((*name).to_owned(), (*value).to_owned());
    }
    Ok(parameters)
}

pub(super) fn table(ctx: &Context, id: &str, props: &Value) -> Result<Table, TemplateError> {
    let key = props
        .get("KeySchema")
        .and_then(Value::as_sequence)
        .and_then(|keys| {
            keys.iter()
                .find(|k| k.get("KeyType").and_then(Value::as_str) == Some("HASH"))
        })
        .and_then(|k| k.get("AttributeName"))
        .and_then(scalar)
        .ok_or_else(|| TemplateError::NoHashKey(id.to_owned()))?;
    Ok(Table {
        logical_id: id.to_owned(),
        name: ctx.physical_name(id),
        key,
        ttl_attribute: props
            .get("TimeToLiveSpecification")
            .and_then(|t| t.get("AttributeName"))
            .and_then(scalar),
        indexes: indexes(id, props)?,
    })
}

/// A table's `GlobalSecondaryIndexes`, each with a HASH and a RANGE key.
fn indexes(id: &str, props: &Value) -> Result<Vec<fanout_tests::NumberIndex>, TemplateError> {
    let Some(indexes) = props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
    else {
        return Ok(Vec::new());
    };
    indexes
        .iter()
        .map(|index| {
            let key = |kind: &str| {
                index
                    .get("KeySchema")
                    .and_then(Value::as_sequence)
                    .and_then(|keys| {
                        keys.iter()
                            .find(|k| k.get("KeyType").and_then(Value::as_str) == Some(kind))
                    })
                    .and_then(|k| k.get("AttributeName"))
                    .and_then(scalar)
            };
            match (
                index.get("IndexName").and_then(scalar),
                key("HASH"),
                key("RANGE"),
            ) {
                (Some(name), Some(partition_key), Some(sort_key)) => {
                    Ok(fanout_tests::NumberIndex {
                        name,
                        partition_key,
                        sort_key,
                    })
                }
                _ => Err(TemplateError::NoHashKey(format!(
                    "{id}'s GlobalSecondaryIndexes"
                ))),
            }
        })
        .collect()
}

pub(super) fn queue(ctx: &Context, id: &str, props: &Value) -> Result<Queue, TemplateError> {
    let redrive = match props.get("RedrivePolicy") {
        None => None,
        Some(policy) => {
            let target = policy
                .get("deadLetterTargetArn")
                .and_then(|v| ctx.referenced_resource(v))
                .ok_or_else(|| TemplateError::RedriveTarget(id.to_owned()))?;
            let count = policy
                .get("maxReceiveCount")
                .and_then(scalar)
                .and_then(|c| c.parse().ok())
                .unwrap_or(3);
            Some((target, count))
        }
    };
    Ok(Queue {
        logical_id: id.to_owned(),
        name: ctx.physical_name(id),
        redrive,
        visibility_timeout: props
            .get("VisibilityTimeout")
            .and_then(|v| ctx.resolve(v))
            .and_then(|v| v.parse().ok()),
    })
}

/// A topic-to-queue subscription; `None` for other protocols, which have no local wiring.
pub(super) fn subscription(
    ctx: &Context,
    id: &str,
    props: &Value,
) -> Result<Option<Subscription>, TemplateError> {
    if props.get("Protocol").and_then(scalar).as_deref() != Some("sqs") {
        return Ok(None);
    }
    let topic = props
        .get("TopicArn")
        .and_then(|v| ctx.referenced_resource(v));
    let queue = props
        .get("Endpoint")
        .and_then(|v| ctx.referenced_resource(v));
    let (Some(topic), Some(queue)) = (topic, queue) else {
        return Err(TemplateError::SubscriptionEnds(id.to_owned()));
    };
    let raw = props
        .get("RawMessageDelivery")
        .and_then(|v| ctx.resolve(v))
        .is_some_and(|v| v == "true");
    Ok(Some(Subscription { topic, queue, raw }))
}
