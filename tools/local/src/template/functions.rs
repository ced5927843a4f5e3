//! A `AWS::Serverless::Function`: its binary, environment, event sources and failure queue.

use serde_yaml::Value;

use super::intrinsics::{mapping, scalar, Context};
use super::{Function, TemplateError, Trigger};

pub(super) fn function(
    ctx: &Context,
    id: &str,
    resource: &Value,
) -> Result<Function, TemplateError> {
    let binary = resource
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(scalar)
        .ok_or_else(|| TemplateError::NoBinary(id.to_owned()))?;
    let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
    let env = mapping(props.get("Environment").and_then(|e| e.get("Variables")))
        .into_iter()
        .filter_map(|(var, value)| ctx.resolve(&value).map(|v| (var, v)))
        .collect();
    let triggers = mapping(props.get("Events"))
        .into_iter()
        .map(|(name, event)| trigger(ctx, id, &name, &event))
        .collect::<Result<_, _>>()?;
    Ok(Function {
        logical_id: id.to_owned(),
        binary,
        env,
        triggers,
        failure_queue: failure_queue(ctx, &props),
    })
}

/// One entry of the function's `Events`.
fn trigger(ctx: &Context, id: &str, name: &str, event: &Value) -> Result<Trigger, TemplateError> {
    let ep = event.get("Properties").cloned().unwrap_or(Value::Null);
    let kind = event
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let source = |property: &'static str, kind: &'static str, expected: &'static str| {
        ep.get(property)
            .and_then(|v| ctx.referenced_resource(v))
            .ok_or_else(|| TemplateError::EventSource {
                function: id.to_owned(),
                event: name.to_owned(),
                kind,
                property,
                expected,
            })
    };
    Ok(match kind {
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
        "SQS" => sqs_trigger(ctx, &ep, source("Queue", "SQS", "queue")?),
        "SNS" => Trigger::Sns {
            topic: source("Topic", "SNS", "topic")?,
        },
        "Schedule" | "ScheduleV2" => Trigger::Schedule {
            expression: ep
                .get("Schedule")
                .or_else(|| ep.get("ScheduleExpression"))
                .and_then(|s| ctx.resolve(s))
                .unwrap_or_default(),
        },
        other => {
            return Err(TemplateError::EventType {
                function: id.to_owned(),
                event: name.to_owned(),
                kind: other.to_owned(),
            })
        }
    })
}

/// An SQS event source mapping: its queue, batch size and whether the function reports the
/// records that failed.
fn sqs_trigger(ctx: &Context, ep: &Value, queue: String) -> Trigger {
    Trigger::Sqs {
        queue,
        batch_size: ep
            .get("BatchSize")
            .and_then(|b| ctx.resolve(b))
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
    }
}

/// Where a failed asynchronous invocation goes: the dead-letter queue, else the on-failure
/// destination.
fn failure_queue(ctx: &Context, props: &Value) -> Option<String> {
    props
        .get("DeadLetterQueue")
        .and_then(|d| d.get("TargetArn"))
        .and_then(|t| ctx.referenced_resource(t))
        .or_else(|| {
            props
                .get("EventInvokeConfig")
                .and_then(|c| c.get("DestinationConfig"))
                .and_then(|d| d.get("OnFailure"))
                .and_then(|f| f.get("Destination"))
                .and_then(|t| ctx.referenced_resource(t))
        })
}
