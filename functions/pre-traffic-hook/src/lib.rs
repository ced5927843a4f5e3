//! pre-traffic-hook: CodeDeploy's PreTraffic hook of every function's deployment
//! (docs/deploy.md, "How a deployment rolls out, and rolls back").
//!
//! Before a deployment moves any traffic to a new version, CodeDeploy invokes this function with
//! the deployment's id. It reads which function and version the deployment is about (the
//! deployment's AppSpec), invokes that version, by number, never the alias, with a synthetic
//! event that touches no data, checks the answer, and tells CodeDeploy `Succeeded` or `Failed`.
//! A failed hook stops the deployment before a single request reaches the new version, and
//! CloudFormation rolls the stack update back.
//!
//! What each probe shows (the new version started: its configuration read, its secrets and
//! clients made; and the part of its work that needs no data):
//! - slack-counter: a request with a forged signature is refused with 401;
//! - sns-multiplier, slack-replier: a words message with no words (nothing counted, nothing to
//!   reply to) is handled with no failure;
//! - sns-logger: the same message, through SNS, is logged;
//! - s3-copier: S3's event that an object of the hook's own prefix was deleted is handled (a
//!   deletion is not propagated unless configured, and then there is no copy to delete);
//! - s3-fanout: a sweep of the backup destination for uploads older than a year lists the
//!   destination's open uploads and aborts nothing.

use std::future::Future;

use fanout_common::{ConfigError, Vars};
use serde::Deserialize;
use serde_json::{json, Value};

pub mod aws;

/// The environment variables this function reads (checked against infra/template.yaml).
pub const ENV_VARS: &[&str] = &[
    "BACKUP_SOURCE",
    "SLACK_COUNTER_FUNCTION",
    "SNS_MULTIPLIER_FUNCTION",
    "SLACK_REPLIER_FUNCTION",
    "SNS_LOGGER_FUNCTION",
    "S3_FANOUT_FUNCTION",
    "S3_COPIER_FUNCTION",
    "BACKUP_DESTINATION",
];

/// The IAM actions this function's code calls (checked against infra/template.yaml).
pub const IAM_ACTIONS: &[&str] = &[
    "codedeploy:GetDeployment",
    "codedeploy:PutLifecycleEventHookExecutionStatus",
    "lambda:InvokeFunction",
];

/// The event CodeDeploy invokes a lifecycle hook with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookEvent {
    pub deployment_id: String,
    pub lifecycle_event_hook_execution_id: String,
}

/// The stack's functions, each probed its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SlackCounter,
    SnsMultiplier,
    SlackReplier,
    SnsLogger,
    S3Fanout,
    S3Copier,
}

impl Kind {
    const ALL: [(Kind, &'static str); 6] = [
        (Kind::SlackCounter, "SLACK_COUNTER_FUNCTION"),
        (Kind::SnsMultiplier, "SNS_MULTIPLIER_FUNCTION"),
        (Kind::SlackReplier, "SLACK_REPLIER_FUNCTION"),
        (Kind::SnsLogger, "SNS_LOGGER_FUNCTION"),
        (Kind::S3Fanout, "S3_FANOUT_FUNCTION"),
        (Kind::S3Copier, "S3_COPIER_FUNCTION"),
    ];
}

/// The hook's configuration: the stack's function names, and where s3-fanout's probe sweeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    functions: Vec<(Kind, String)>,
    backup_source: String,
    backup_destination: String,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let functions = (Kind::ALL.iter())
            .map(|(kind, var)| {
                Ok((
                    *kind,
                    vars.required(var, "the name of a function of the stack")?,
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Config {
            functions,
            backup_source: vars.required(
                "BACKUP_SOURCE",
                "the s3:// URL s3-fanout backs up (s3-copier's probe names its bucket)",
            )?,
            backup_destination: vars.required(
                "BACKUP_DESTINATION",
                "the s3:// URL s3-copier copies to (s3-fanout's probe sweeps it)",
            )?,
        })
    }

    fn backup_source_bucket(&self) -> &str {
        let rest = self
            .backup_source
            .strip_prefix("s3://")
            .unwrap_or(&self.backup_source);
        rest.split('/').next().unwrap_or(rest)
    }

    fn kind_of(&self, function: &str) -> Option<Kind> {
        // The AppSpec may name a function by name or by ARN.
        let name = function.rsplit(':').next().unwrap_or(function);
        (self.functions.iter())
            .find(|(_, configured)| configured == name || configured == function)
            .map(|(kind, _)| *kind)
    }
}

/// What a deployment shifts: the alias's function and the version it moves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub function: String,
    pub version: String,
}

/// Why the hook could not judge a deployment (it is then reported `Failed` when possible).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("the deployment's AppSpec names no Lambda function and target version: {0}")]
    AppSpec(String),
    #[error("{operation} failed: {detail}")]
    Aws {
        operation: &'static str,
        detail: String,
    },
}

/// The function and target version an AppSpec (JSON or YAML) names.
pub fn target(appspec: &str) -> Result<Target, HookError> {
    let bad = |why: &str| HookError::AppSpec(why.to_owned());
    let spec: Value = serde_yaml::from_str(appspec).map_err(|e| bad(&e.to_string()))?;
    let resources = spec
        .get("Resources")
        .or_else(|| spec.get("resources"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no Resources list"))?;
    let properties = (resources.iter())
        .filter_map(Value::as_object)
        .flat_map(|resource| resource.values())
        .find(|resource| resource["Type"] == "AWS::Lambda::Function")
        .map(|resource| &resource["Properties"])
        .ok_or_else(|| bad("no AWS::Lambda::Function resource"))?;
    let text = |name: &str| match &properties[name] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Ok(Target {
        function: text("Name").ok_or_else(|| bad("no Name"))?,
        version: text("TargetVersion").ok_or_else(|| bad("no TargetVersion"))?,
    })
}

/// The synthetic event a function of `kind` is probed with: a sample event from `events/`,
/// carrying what touches no data.
pub fn probe(kind: Kind, config: &Config, now_ms: u64) -> Value {
    let sample =
        |text: &str| -> Value { serde_json::from_str(text).expect("the sample event is JSON") };
    match kind {
        Kind::SlackCounter => {
            // A Slack request whose signature is forged: a working counter refuses it.
            let mut event = sample(include_str!(
                "../../../events/slack-counter-http-api-url-verification.json"
            ));
            let seconds = (now_ms / 1000).to_string();
            event["headers"]["x-slack-request-timestamp"] = json!(seconds);
            event["headers"]["x-slack-signature"] = json!(format!("v0={}", "0".repeat(64)));
            event["requestContext"]["requestId"] = json!("pre-traffic-hook");
            event["requestContext"]["timeEpoch"] = json!(now_ms);
            event
        }
        Kind::SnsMultiplier | Kind::SlackReplier => {
            // A message with no words and nothing to reply to: nothing is counted or posted.
            let mut event = sample(include_str!("../../../events/sns-multiplier-sqs.json"));
            let mut record = event["Records"][1].take();
            record["messageId"] = json!(format!("pre-traffic-hook-{now_ms}"));
            record["body"] = json!(wordless_message(now_ms).to_string());
            json!({ "Records": [record] })
        }
        Kind::SnsLogger => {
            let mut event = sample(include_str!("../../../events/sns-logger-sns.json"));
            let mut record = event["Records"][0].take();
            record["Sns"]["MessageId"] = json!(format!("pre-traffic-hook-{now_ms}"));
            record["Sns"]["Message"] = json!(wordless_message(now_ms).to_string());
            json!({ "Records": [record] })
        }
        Kind::S3Copier => {
            // S3 saying that an object of the hook's own prefix was deleted: never propagated
            // unless deletions are, and then a copy that does not exist is deleted.
            let mut event = sample(include_str!(
                "../../../events/s3-copier-sqs-eventbridge-object-deleted.json"
            ));
            let mut record = event["Records"][0].take();
            let mut body: Value = serde_json::from_str(record["body"].as_str().unwrap_or_default())
                .unwrap_or_default();
            body["detail"]["bucket"]["name"] = json!(config.backup_source_bucket());
            body["resources"] = json!([format!("arn:aws:s3:::{}", config.backup_source_bucket())]);
            body["detail"]["object"]["key"] = json!(format!("{PROBE_PREFIX}{now_ms}"));
            record["messageId"] = json!(format!("pre-traffic-hook-{now_ms}"));
            record["body"] = json!(body.to_string());
            json!({ "Records": [record] })
        }
        Kind::S3Fanout => json!({
            "sweep": config.backup_destination,
            "older_than_hours": PROBE_SWEEP_HOURS,
        }),
    }
}

/// The key prefix of the object s3-copier's probe is told about.
pub const PROBE_PREFIX: &str = "fanout-pre-traffic-hook/";

/// A words message with no words, from no real channel.
fn wordless_message(now_ms: u64) -> Value {
    json!({
        "schema_version": 1,
        "message_id": format!("pre-traffic-hook:{now_ms}"),
        "source": "events_api",
        "team_id": "TPRETRAFFIC",
        "channel_id": "CPRETRAFFIC",
        "user_id": "UPRETRAFFIC",
        "text": "",
        "words": {},
    })
}

/// s3-fanout's probe sweeps only uploads older than this: none a working stack has.
pub const PROBE_SWEEP_HOURS: u64 = 24 * 365;

/// How an invoked version answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The function returned this payload.
    Returned(Value),
    /// The function failed (`FunctionError`), with its error payload.
    Failed(Value),
}

/// Whether the answer of a version of `kind` to its probe is right; why not otherwise.
pub fn judge(kind: Kind, answer: &Answer) -> Result<(), String> {
    let payload = match answer {
        Answer::Failed(error) => return Err(format!("the new version failed: {error}")),
        Answer::Returned(payload) => payload,
    };
    let right = match kind {
        Kind::SlackCounter => payload["statusCode"] == 401,
        Kind::SnsMultiplier | Kind::SlackReplier | Kind::S3Copier => {
            payload["batchItemFailures"] == json!([])
        }
        Kind::SnsLogger => payload.is_null(),
        Kind::S3Fanout => payload["aborted"] == 0,
    };
    if right {
        Ok(())
    } else {
        Err(format!("the new version answered its probe with {payload}"))
    }
}

/// Where deployments are read and their hooks' verdicts sent: CodeDeploy.
pub trait Deployments: Send + Sync {
    /// The deployment's AppSpec.
    fn appspec(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<String, HookError>> + Send;

    /// The hook's verdict.
    fn report(
        &self,
        event: &HookEvent,
        passed: bool,
    ) -> impl Future<Output = Result<(), HookError>> + Send;
}

/// Invokes one version of a function: Lambda.
pub trait Invoker: Send + Sync {
    fn invoke(
        &self,
        function: &str,
        version: &str,
        payload: &Value,
    ) -> impl Future<Output = Result<Answer, HookError>> + Send;
}

/// What the hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub function: String,
    pub version: String,
    pub passed: bool,
    pub reason: String,
}

/// The hook: a configuration, CodeDeploy and Lambda.
pub struct Hook<D, I> {
    config: Config,
    deployments: D,
    invoker: I,
}

impl<D: Deployments, I: Invoker> Hook<D, I> {
    pub fn new(config: Config, deployments: D, invoker: I) -> Self {
        Hook {
            config,
            deployments,
            invoker,
        }
    }

    /// Judges the deployment and reports the verdict to CodeDeploy. An error reading the
    /// deployment or invoking the version is reported as `Failed` too, so that a hook that
    /// cannot tell never lets a deployment through.
    pub async fn handle(&self, event: &HookEvent) -> Result<Value, HookError> {
        let verdict = self.judge(event).await;
        let (passed, reason, function, version) = match &verdict {
            Ok(v) => (
                v.passed,
                v.reason.clone(),
                v.function.clone(),
                v.version.clone(),
            ),
            Err(e) => (false, e.to_string(), String::new(), String::new()),
        };
        if passed {
            tracing::info!(deployment_id = %event.deployment_id, %function, %version, "the new version answered its probe; traffic may move");
        } else {
            tracing::error!(deployment_id = %event.deployment_id, %function, %version, %reason, "the new version failed its probe; the deployment stops");
        }
        self.deployments.report(event, passed).await?;
        let verdict = verdict?;
        Ok(json!({
            "function": verdict.function,
            "version": verdict.version,
            "passed": verdict.passed,
            "reason": verdict.reason,
        }))
    }

    async fn judge(&self, event: &HookEvent) -> Result<Verdict, HookError> {
        let target = target(&self.deployments.appspec(&event.deployment_id).await?)?;
        let Some(kind) = self.config.kind_of(&target.function) else {
            return Ok(Verdict {
                reason: format!("{} is not a function of this stack", target.function),
                function: target.function,
                version: target.version,
                passed: false,
            });
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let probe = probe(kind, &self.config, now_ms);
        let answer = (self.invoker)
            .invoke(&target.function, &target.version, &probe)
            .await?;
        let judged = judge(kind, &answer);
        Ok(Verdict {
            passed: judged.is_ok(),
            reason: judged
                .err()
                .unwrap_or_else(|| "answered as expected".into()),
            function: target.function,
            version: target.version,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn config() -> Config {
        Config::from_vars(&Vars::from_pairs([
            ("SLACK_COUNTER_FUNCTION", "stack-SlackCounter-1"),
            ("SNS_MULTIPLIER_FUNCTION", "stack-SnsMultiplier-1"),
            ("SLACK_REPLIER_FUNCTION", "stack-SlackReplier-1"),
            ("SNS_LOGGER_FUNCTION", "stack-SnsLogger-1"),
            ("S3_FANOUT_FUNCTION", "stack-S3Fanout-1"),
            ("S3_COPIER_FUNCTION", "stack-S3Copier-1"),
            ("BACKUP_SOURCE", "s3://photos-bucket/2016/"),
            ("BACKUP_DESTINATION", "s3://backup/photos/"),
        ]))
        .unwrap()
    }

    fn appspec(function: &str, version: &str) -> String {
        json!({"version": 0.0, "Resources": [{"fn": {"Type": "AWS::Lambda::Function", "Properties":
            {"Name": function, "Alias": "live", "CurrentVersion": "3", "TargetVersion": version}}}]})
        .to_string()
    }

    #[derive(Default)]
    struct Recorded {
        reports: Mutex<Vec<(String, bool)>>,
        invoked: Mutex<Vec<(String, String, Value)>>,
    }

    struct World<'a> {
        appspec: Result<String, HookError>,
        answer: Result<Answer, HookError>,
        recorded: &'a Recorded,
    }

    impl Deployments for World<'_> {
        async fn appspec(&self, _: &str) -> Result<String, HookError> {
            self.appspec.clone()
        }

        async fn report(&self, event: &HookEvent, passed: bool) -> Result<(), HookError> {
            let id = event.lifecycle_event_hook_execution_id.clone();
            self.recorded.reports.lock().unwrap().push((id, passed));
            Ok(())
        }
    }

    impl Invoker for World<'_> {
        async fn invoke(&self, f: &str, v: &str, payload: &Value) -> Result<Answer, HookError> {
            let call = (f.to_owned(), v.to_owned(), payload.clone());
            self.recorded.invoked.lock().unwrap().push(call);
            self.answer.clone()
        }
    }

    #[test]
    fn the_sample_event_is_codedeploys_hook_event() {
        let event: HookEvent = serde_json::from_str(include_str!(
            "../../../events/pre-traffic-hook-codedeploy.json"
        ))
        .unwrap();
        assert_eq!(event.deployment_id, "d-7UFOOB9GC");
        assert!(!event.lifecycle_event_hook_execution_id.is_empty());
    }

    fn event() -> HookEvent {
        serde_json::from_value(
            json!({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "h-1"}),
        )
        .unwrap()
    }

    async fn run(
        appspec: Result<String, HookError>,
        answer: Result<Answer, HookError>,
    ) -> (Result<Value, HookError>, Recorded) {
        let recorded = Recorded::default();
        let world = World {
            appspec,
            answer,
            recorded: &recorded,
        };
        let hook = Hook::new(config(), &world, &world);
        let result = hook.handle(&event()).await;
        (result, recorded)
    }

    impl<T: Deployments> Deployments for &T {
        async fn appspec(&self, id: &str) -> Result<String, HookError> {
            (*self).appspec(id).await
        }
        async fn report(&self, event: &HookEvent, passed: bool) -> Result<(), HookError> {
            (*self).report(event, passed).await
        }
    }

    impl<T: Invoker> Invoker for &T {
        async fn invoke(&self, f: &str, v: &str, p: &Value) -> Result<Answer, HookError> {
            (*self).invoke(f, v, p).await
        }
    }

    #[tokio::test]
    async fn a_version_that_answers_right_lets_the_deployment_go_on() {
        let spec = appspec("stack-SnsMultiplier-1", "7");
        let answer = Answer::Returned(json!({"batchItemFailures": []}));
        let (result, recorded) = run(Ok(spec), Ok(answer)).await;
        assert_eq!(result.unwrap()["passed"], true);
        assert_eq!(
            *recorded.reports.lock().unwrap(),
            [("h-1".to_owned(), true)]
        );
        let invoked = recorded.invoked.lock().unwrap();
        assert_eq!(
            (invoked[0].0.as_str(), invoked[0].1.as_str()),
            ("stack-SnsMultiplier-1", "7")
        );
        assert_eq!(invoked[0].2["Records"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_wrong_answer_a_failure_or_an_error_stops_the_deployment() {
        let spec = || Ok(appspec("stack-S3Copier-1", "2"));
        let failing = [
            (
                spec(),
                Ok(Answer::Returned(
                    json!({"batchItemFailures": [{"itemIdentifier": "x"}]}),
                )),
            ),
            (
                spec(),
                Ok(Answer::Failed(
                    json!({"errorMessage": "COPY_RUNS_TABLE: no such table"}),
                )),
            ),
            (
                spec(),
                Err(HookError::Aws {
                    operation: "Lambda Invoke",
                    detail: "throttled".into(),
                }),
            ),
            (
                Ok(appspec("another-stack-fn", "2")),
                Ok(Answer::Returned(json!({"batchItemFailures": []}))),
            ),
            (Ok("{}".into()), Ok(Answer::Returned(Value::Null))),
            (
                Err(HookError::Aws {
                    operation: "CodeDeploy GetDeployment",
                    detail: "denied".into(),
                }),
                Ok(Answer::Returned(Value::Null)),
            ),
        ];
        for (appspec, answer) in failing {
            let (_, recorded) = run(appspec.clone(), answer.clone()).await;
            assert_eq!(
                *recorded.reports.lock().unwrap(),
                [("h-1".to_owned(), false)],
                "{appspec:?} {answer:?}"
            );
        }
    }

    #[test]
    fn each_kind_is_judged_on_its_own_answer() {
        let ok = |kind, payload: Value| judge(kind, &Answer::Returned(payload));
        assert!(ok(Kind::SlackCounter, json!({"statusCode": 401})).is_ok());
        assert!(
            ok(Kind::SlackCounter, json!({"statusCode": 200})).is_err(),
            "a forged request accepted"
        );
        assert!(ok(Kind::SlackCounter, json!({"statusCode": 503})).is_err());
        assert!(ok(Kind::SnsLogger, Value::Null).is_ok());
        assert!(ok(
            Kind::S3Fanout,
            json!({"aborted": 0, "fresh": 0, "others": 0})
        )
        .is_ok());
        assert!(ok(Kind::S3Fanout, json!({"aborted": 2})).is_err());
        assert!(ok(Kind::S3Copier, json!({})).is_err());
    }

    #[test]
    fn probes_touch_no_data() {
        let config = config();
        let counter = probe(Kind::SlackCounter, &config, 1_796_000_000_000);
        assert_eq!(
            counter["headers"]["x-slack-request-timestamp"],
            "1796000000"
        );
        assert!(counter["headers"]["x-slack-signature"]
            .as_str()
            .unwrap()
            .starts_with("v0=000"));
        let fanout = probe(Kind::S3Fanout, &config, 0);
        assert_eq!(fanout["sweep"], "s3://backup/photos/");
        assert_eq!(fanout["older_than_hours"], PROBE_SWEEP_HOURS);
        for kind in [Kind::SnsMultiplier, Kind::SlackReplier] {
            let event = probe(kind, &config, 7);
            let body: Value =
                serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
            assert_eq!(
                (body["words"].clone(), body["message_id"].clone()),
                (json!({}), json!("pre-traffic-hook:7"))
            );
        }
        let logger = probe(Kind::SnsLogger, &config, 7);
        assert!(logger["Records"][0]["Sns"]["Message"]
            .as_str()
            .unwrap()
            .contains("\"words\":{}"));
        let copier = probe(Kind::S3Copier, &config, 7);
        let body: Value =
            serde_json::from_str(copier["Records"][0]["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["detail-type"], "Object Deleted");
        assert_eq!(body["detail"]["bucket"]["name"], "photos-bucket");
        assert_eq!(body["detail"]["object"]["key"], "fanout-pre-traffic-hook/7");
    }

    #[test]
    fn the_target_is_read_from_a_json_or_yaml_appspec() {
        let target = target(&appspec("fn-1", "12")).unwrap();
        assert_eq!(
            (target.function.as_str(), target.version.as_str()),
            ("fn-1", "12")
        );
        let yaml = "version: 0.0\nResources:\n  - fn:\n      Type: AWS::Lambda::Function\n      Properties:\n        Name: arn:aws:lambda:us-east-1:1:function:stack-SnsLogger-1\n        Alias: live\n        CurrentVersion: 1\n        TargetVersion: 2\n";
        let target = super::target(yaml).unwrap();
        assert_eq!(target.version, "2");
        assert_eq!(config().kind_of(&target.function), Some(Kind::SnsLogger));
        assert!(super::target("Resources: []").is_err());
        assert!(super::target("not: [an appspec").is_err());
    }

    #[test]
    fn every_function_name_is_required() {
        let err =
            Config::from_vars(&Vars::from_pairs([("SLACK_COUNTER_FUNCTION", "x")])).unwrap_err();
        assert_eq!(err.var(), Some("SNS_MULTIPLIER_FUNCTION"));
    }
}
