use super::*;
use crate::project::workspace_root;
use crate::settings::LOCAL_PARAMETERS;

fn real_plan() -> Plan {
    let path = workspace_root().join("infra/template.yaml");
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
    let functions = workspace_root().join("functions");
    for entry in std::fs::read_dir(&functions).unwrap() {
        let dir = entry.unwrap().path();
        let binary = dir.file_name().unwrap().to_string_lossy().into_owned();
        let path = dir.join("Cargo.toml");
        let manifest: toml::Table = std::fs::read_to_string(&path)
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()));
        let Some(env) = ["package", "metadata", "lambda", "env"]
            .iter()
            .try_fold(&manifest, |table, key| table.get(*key)?.as_table())
        else {
            continue;
        };
        let function = function(&plan, &binary);
        for (var, value) in env {
            let value = value.as_str().unwrap_or_else(|| {
                panic!("{binary}'s Cargo.toml sets {var} to {value:?}, which is not a string")
            });
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
