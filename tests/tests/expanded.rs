//! The template as CloudFormation deploys it: infra/template.yaml through the SAM transform,
//! run offline (`tools/sam_expand.py`, the aws-sam-translator that `make infra-tools` pins),
//! with the test and prod parameter files (infra/params/) and release digests
//! (fanout-release) over stand-in artifacts:
//! - a function's version changes exactly when its code or configuration does;
//! - the deployments' CodeDeploy role is the stack's own, scoped, not the managed one;
//! - the key is retained; every alarm notifies; every dead-letter queue has a depth alarm;
//! - every function's deployment alarms include its business failures, on the new version.
//!
//! It needs `.venv-infra` (`make infra-tools`); without it, it fails and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use fanout_tests::workspace_root;
use serde_json::Value;

/// A folder of its own under target/, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        // Tests run at once, each with folders of its own.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = workspace_root()
            .join("target/infra-expand-tests")
            .join(format!("{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn template() -> serde_yaml::Value {
    let path = workspace_root().join("infra/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Stand-in artifacts, one folder per function, as `sam build` lays them out.
fn artifacts(dir: &Path, template: &serde_yaml::Value) -> PathBuf {
    let build = dir.join("build");
    for function in fanout_release::functions(template) {
        std::fs::create_dir_all(build.join(&function)).unwrap();
        std::fs::write(build.join(&function).join("bootstrap"), &function).unwrap();
    }
    build
}

/// A parameter file's parameters.
fn parameters(environment: &str) -> BTreeMap<String, String> {
    let path = workspace_root().join(format!("infra/params/{environment}.json"));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (file["Parameters"].as_object().unwrap().iter())
        .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
        .collect()
}

/// The template expanded with these parameters and the digests of the artifacts in `build`.
fn expand(dir: &Path, name: &str, build: &Path, given: &BTreeMap<String, String>) -> Value {
    let template = template();
    let mut values = given.clone();
    values.extend(fanout_release::digests(&template, build, given).unwrap());
    let params = dir.join(format!("{name}.params.json"));
    let file = serde_json::json!({ "Parameters": values });
    std::fs::write(&params, file.to_string()).unwrap();
    let out = dir.join(format!("{name}.json"));
    let root = workspace_root();
    let python = root.join(".venv-infra/sam/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make infra-tools`",
        python.display()
    );
    let run = Command::new(&python)
        .arg(root.join("tools/sam_expand.py"))
        .arg(root.join("infra/template.yaml"))
        .arg(&params)
        .arg(&out)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "the SAM transform failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

fn resources<'a>(expanded: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    (expanded["Resources"].as_object().unwrap().iter())
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

/// Each function's version resource, by function.
fn versions(expanded: &Value) -> BTreeMap<String, String> {
    resources(expanded, "AWS::Lambda::Version")
        .into_iter()
        .map(|(id, version)| {
            let function = version["Properties"]["FunctionName"]["Ref"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (function, id.to_owned())
        })
        .collect()
}

fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeSet<String> {
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn a_function_version_changes_exactly_when_its_code_or_configuration_does() {
    let scratch = Scratch::new("versions");
    let dir = &scratch.0;
    let build = artifacts(dir, &template());
    let test = parameters("test");
    let base = versions(&expand(dir, "base", &build, &test));
    assert_eq!(base.len(), 7, "{base:?}");

    // The same again: nothing changes.
    assert_eq!(versions(&expand(dir, "again", &build, &test)), base);

    // A parameter one function uses: that function only.
    let mut multiplied = test.clone();
    multiplied.insert("Multiplier".into(), "20".into());
    let other = versions(&expand(dir, "multiplier", &build, &multiplied));
    assert_eq!(
        changed(&base, &other),
        BTreeSet::from(["SnsMultiplierFunction".to_owned()])
    );

    // A parameter of the copy: the functions that read it.
    let mut parts = test.clone();
    parts.insert("CopyPartSize".into(), "64MiB".into());
    let other = versions(&expand(dir, "parts", &build, &parts));
    let moved = changed(&base, &other);
    assert!(
        moved.contains("S3CopierFunction") && !moved.contains("SnsMultiplierFunction"),
        "{moved:?}"
    );

    // New code for one function: that function only.
    std::fs::write(build.join("S3FanoutFunction/bootstrap"), "new code").unwrap();
    let other = versions(&expand(dir, "code", &build, &test));
    assert_eq!(
        changed(&base, &other),
        BTreeSet::from(["S3FanoutFunction".to_owned()])
    );
}

/// The test and prod stacks, expanded.
fn stacks() -> Vec<(&'static str, Value, Scratch)> {
    ["test", "prod"]
        .into_iter()
        .map(|environment| {
            let scratch = Scratch::new(environment);
            let build = artifacts(&scratch.0, &template());
            let expanded = expand(&scratch.0, environment, &build, &parameters(environment));
            (environment, expanded, scratch)
        })
        .collect()
}

/// The logical id a `Ref` or `Fn::GetAtt` names.
fn named(value: &Value) -> Option<&str> {
    value["Ref"]
        .as_str()
        .or_else(|| value["Fn::GetAtt"][0].as_str())
        .or_else(|| value["Fn::GetAtt"].as_str()?.split('.').next())
}

#[test]
fn deployments_use_a_scoped_role_of_the_stack() {
    for (environment, expanded, _scratch) in stacks() {
        let groups = resources(&expanded, "AWS::CodeDeploy::DeploymentGroup");
        assert_eq!(groups.len(), 6, "{environment}");
        for (id, group) in groups {
            let role_id = named(&group["Properties"]["ServiceRoleArn"])
                .unwrap_or_else(|| panic!("{environment} {id}: the role is not the stack's"));
            let role = &expanded["Resources"][role_id];
            assert_eq!(role["Type"], "AWS::IAM::Role", "{environment} {id}");
            let managed = role["Properties"]["ManagedPolicyArns"].to_string();
            assert!(
                !managed.contains("AWSCodeDeployRoleForLambda"),
                "{environment} {role_id}: the managed role grants lambda:UpdateAlias and sns:Publish on *"
            );
            let policies = role["Properties"]["Policies"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                !policies.is_empty(),
                "{environment} {role_id} has no policy of its own"
            );
            for statement in policies.iter().flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            }) {
                let actions = statement["Action"].to_string();
                assert!(
                    !actions.contains("\"*\"") && !actions.contains(":*\""),
                    "{environment} {role_id}: {statement}"
                );
                let touches_functions = actions.contains("lambda:");
                if touches_functions {
                    assert_ne!(
                        statement["Resource"], "*",
                        "{environment} {role_id}: {statement}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_key_is_retained_and_every_alarm_notifies() {
    for (environment, expanded, _scratch) in stacks() {
        let keys = resources(&expanded, "AWS::KMS::Key");
        assert!(!keys.is_empty());
        for (id, key) in keys {
            assert_eq!(key["DeletionPolicy"], "Retain", "{environment} {id}");
            assert_eq!(key["UpdateReplacePolicy"], "Retain", "{environment} {id}");
            assert!(
                key["Properties"]["PendingWindowInDays"].is_number(),
                "{environment} {id}"
            );
        }
        let alarms = resources(&expanded, "AWS::CloudWatch::Alarm");
        assert!(!alarms.is_empty());
        for (id, alarm) in alarms {
            let actions = alarm["Properties"]["AlarmActions"].as_array();
            assert!(
                actions.is_some_and(|a| !a.is_empty()),
                "{environment} {id} notifies nobody"
            );
        }
    }
}

#[test]
fn every_dead_letter_queue_has_a_depth_alarm() {
    for (environment, expanded, _scratch) in stacks() {
        let alarms = resources(&expanded, "AWS::CloudWatch::Alarm");
        // Every queue that is some queue's or function's dead-letter target.
        let text = expanded["Resources"].to_string();
        let dlqs: Vec<&str> = resources(&expanded, "AWS::SQS::Queue")
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| {
                id.ends_with("DLQ")
                    || text.contains(&format!(
                        "\"deadLetterTargetArn\":{{\"Fn::GetAtt\":[\"{id}\""
                    ))
            })
            .collect();
        assert!(dlqs.len() >= 4, "{environment}: {dlqs:?}");
        for dlq in dlqs {
            let watched = alarms.iter().any(|(_, alarm)| {
                let p = &alarm["Properties"];
                p["Namespace"] == "AWS/SQS"
                    && p["MetricName"] == "ApproximateNumberOfMessagesVisible"
                    && p["Dimensions"].to_string().contains(&format!("\"{dlq}\""))
            });
            assert!(watched, "{environment}: no depth alarm watches {dlq}");
        }
    }
}

#[test]
fn every_deployment_watches_the_new_versions_business_failures() {
    for (environment, expanded, _scratch) in stacks() {
        let versions = versions(&expanded);
        for (id, group) in resources(&expanded, "AWS::CodeDeploy::DeploymentGroup") {
            let function = id.strip_suffix("DeploymentGroup").unwrap();
            let version = &versions[function];
            let alarms = group["Properties"]["AlarmConfiguration"]["Alarms"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let watches_failures = alarms.iter().any(|alarm| {
                let Some(alarm_id) = named(&alarm["Name"]) else {
                    return false;
                };
                let p = &expanded["Resources"][alarm_id]["Properties"];
                p["Namespace"] == "fanout"
                    && p["MetricName"] == "Failures"
                    && p["Dimensions"]
                        .to_string()
                        .contains(&format!("\"{version}\""))
            });
            assert!(
                watches_failures,
                "{environment} {id}: no deployment alarm watches fanout/Failures of {version}"
            );
        }
    }
}
