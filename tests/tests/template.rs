//! The SAM template (infra/template.yaml) against the code, so that the two cannot drift:
//! - every binary of a function crate under functions/ (as its Cargo.toml names it) has a
//!   template function building it, and back;
//! - each function's environment is exactly what its config reads (`ENV_VARS` in its lib.rs);
//! - each function's role grants exactly the IAM actions its code calls (`IAM_ACTIONS`), plus the
//!   few the platform needs for the function's configuration, and no wildcard;
//! - every function is deployed the same safe way, and every asynchronous invocation has
//!   somewhere to fail to;
//! - and, beneath the template, each function's config reads exactly its `ENV_VARS`.
//!
//! The lists are the function crates' own constants, linked here through [`DECLARED`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use fanout_common::{ConfigError, Vars};
use fanout_tests::workspace_root;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// A function's `Config::from_vars`, without the configuration it returns.
type ReadConfig = fn(&Vars) -> Result<(), ConfigError>;

/// What a function crate declares beside its code.
struct Declared {
    /// The environment variables its configuration reads.
    env_vars: &'static [&'static str],
    /// The IAM actions its code calls.
    iam_actions: &'static [&'static str],
    /// Reads its configuration (its `Config::from_vars`); `None` for a function without one.
    config: Option<ReadConfig>,
    /// A valid configuration, so that the reading goes through every variable.
    valid_env: &'static [(&'static str, &'static str)],
}

/// Every function, by the binary it builds, with its declarations. A new function crate is
/// added here; the tests below say so when it is missing.
const DECLARED: &[(&str, Declared)] = &[
    (
        "slack-counter",
        Declared {
            env_vars: slack_counter::ENV_VARS,
            iam_actions: slack_counter::IAM_ACTIONS,
            config: Some(|vars| slack_counter::Config::from_vars(vars).map(drop)),
            valid_env: &[
                ("WORDS_TABLE", "words"),
                (
                    "WORDS_TOPIC_ARN",
                    "arn:aws:sns:us-east-1:123456789012:words",
                ),
                ("SLACK_SIGNING_SECRET", "secret"),
                (
                    "SLACK_VERIFICATION_TOKEN_PARAM",
                    "/fanout/slack/verification-token",
                ),
            ],
        },
    ),
    (
        "sns-multiplier",
        Declared {
            env_vars: sns_multiplier::ENV_VARS,
            iam_actions: sns_multiplier::IAM_ACTIONS,
            config: Some(|vars| sns_multiplier::Config::from_vars(vars).map(drop)),
            valid_env: &[("WORDS_TABLE", "words"), ("MULTIPLIER", "10")],
        },
    ),
    (
        "slack-replier",
        Declared {
            env_vars: slack_replier::ENV_VARS,
            iam_actions: slack_replier::IAM_ACTIONS,
            config: Some(|vars| slack_replier::Config::from_vars(vars).map(drop)),
            valid_env: &[
                ("WORDS_TABLE", "words"),
                ("SLACK_BOT_TOKEN_PARAM", "/fanout/slack/bot-token"),
                ("SLACK_API_URL", "https://slack.com/api/"),
                ("SLACK_REPLY_LEASE_SECONDS", "30"),
            ],
        },
    ),
    (
        "sns-logger",
        Declared {
            env_vars: sns_logger::ENV_VARS,
            iam_actions: sns_logger::IAM_ACTIONS,
            config: None,
            valid_env: &[],
        },
    ),
    (
        "s3-fanout",
        Declared {
            env_vars: s3_fanout::ENV_VARS,
            iam_actions: s3_fanout::IAM_ACTIONS,
            config: Some(|vars| s3_fanout::Config::from_vars(vars).map(drop)),
            valid_env: &[
                ("SOURCE_BUCKET", "photos"),
                ("SOURCE_PREFIX", "2024/"),
                ("DEST_BUCKET", "photos-backup"),
                ("DEST_PREFIX", "nightly/"),
                ("COPY_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:copy"),
                ("COPY_RUNS_TABLE", "runs"),
            ],
        },
    ),
    (
        "s3-copier",
        Declared {
            env_vars: s3_copier::ENV_VARS,
            iam_actions: s3_copier::IAM_ACTIONS,
            config: Some(|vars| s3_copier::Config::from_vars(vars).map(drop)),
            valid_env: &[
                ("COPY_RUNS_TABLE", "runs"),
                ("COPY_MULTIPART_THRESHOLD", "64MiB"),
                ("COPY_PART_SIZE", "16MiB"),
                ("COPY_CONCURRENCY", "32"),
                ("COPY_STORAGE_CLASS", "STANDARD_IA"),
                ("COPY_KMS_KEY_ID", "alias/backup"),
                ("COPY_RETRY_BASE_SECONDS", "30"),
            ],
        },
    ),
    (
        "pre-traffic-hook",
        Declared {
            env_vars: pre_traffic_hook::ENV_VARS,
            iam_actions: pre_traffic_hook::IAM_ACTIONS,
            config: Some(|vars| pre_traffic_hook::Config::from_vars(vars).map(drop)),
            valid_env: &[
                ("SLACK_COUNTER_FUNCTION", "stack-SlackCounterFunction-1"),
                ("SNS_MULTIPLIER_FUNCTION", "stack-SnsMultiplierFunction-1"),
                ("SLACK_REPLIER_FUNCTION", "stack-SlackReplierFunction-1"),
                ("SNS_LOGGER_FUNCTION", "stack-SnsLoggerFunction-1"),
                ("S3_FANOUT_FUNCTION", "stack-S3FanoutFunction-1"),
                ("S3_COPIER_FUNCTION", "stack-S3CopierFunction-1"),
                ("BACKUP_SOURCE", "s3://photos/"),
                ("BACKUP_DESTINATION", "s3://backup/photos/"),
            ],
        },
    ),
];

/// The functions CodeDeploy invokes during the others' deployments (their PreTraffic hook):
/// no traffic reaches them, so they have no canary, alarms or hook of their own, and a new
/// version of one is in place before any other function's deployment starts.
const HOOKS: &[&str] = &["pre-traffic-hook"];

fn is_hook(binary: &str) -> bool {
    HOOKS.contains(&binary)
}

/// Variables a function reads only in local runs; a deployment must never set them, because
/// their values are the Slack secrets themselves. The template passes the names of SSM
/// SecureString parameters instead (`*_PARAM`), which the counter reads at init.
const LOCAL_ONLY_VARS: &[&str] = &[
    "SLACK_SIGNING_SECRET",
    "SLACK_VERIFICATION_TOKEN",
    "SLACK_BOT_TOKEN",
];

/// Actions the platform performs with a function's role for every function: writing its log
/// group.
const LOG_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];
/// With `Tracing: Active`, Lambda sends the function's trace segments with its role.
const XRAY_ACTIONS: &[&str] = &["xray:PutTraceSegments", "xray:PutTelemetryRecords"];
/// An SQS event source mapping polls the queue with the function's role; the queues are
/// KMS-encrypted, so receiving needs `kms:Decrypt` on their key.
const SQS_POLLER_ACTIONS: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "kms:Decrypt",
];
/// Lambda sends failed asynchronous invocations to an SQS OnFailure destination or DLQ with the
/// function's role; the queues are KMS-encrypted.
const SQS_FAILURE_ACTIONS: &[&str] = &["sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt"];
/// The tables are encrypted with the stack's key, and DynamoDB decrypts a table's key as the
/// caller.
const ENCRYPTED_TABLE_ACTIONS: &[&str] = &["kms:Decrypt"];
/// Publishing to a KMS-encrypted topic needs a data key from the topic's key.
const ENCRYPTED_PUBLISH_ACTIONS: &[&str] = &["kms:GenerateDataKey", "kms:Decrypt"];
/// What encryption with a KMS key implies. Granted on keys only (the stack's key, or a key the
/// deployer names in a `*KmsKeyArn` parameter, e.g. for SSE-KMS objects), these are allowed
/// beside a function's IAM_ACTIONS, since the SDK calls that need them (PutObject, GetObject,
/// GetParameter of a SecureString) name no KMS operation.
const KEY_ACTIONS: &[&str] = &["kms:GenerateDataKey", "kms:Decrypt"];
/// The only actions that may be granted on `Resource: '*'`: X-Ray has no resource-level
/// permissions for them.
const RESOURCE_STAR_ACTIONS: &[&str] = XRAY_ACTIONS;
/// Properties every function has, with these values (its own, or from Globals).
const SAME_FOR_EVERY_FUNCTION: &[(&str, &str)] = &[
    ("Runtime", "provided.al2023"),
    ("Handler", "bootstrap"),
    // The workspace root, relative to infra/: cargo-lambda builds the binary there.
    ("CodeUri", ".."),
    ("Tracing", "Active"),
    ("AutoPublishAlias", "live"),
];
/// Event sources that invoke a function asynchronously.
const ASYNC_EVENT_TYPES: &[&str] = &[
    "SNS",
    "S3",
    "Schedule",
    "ScheduleV2",
    "EventBridgeRule",
    "CloudWatchEvent",
];

/// The template, with CloudFormation's short tags (`!Ref X`, `!GetAtt A.B`, `!Sub s`, ...)
/// rewritten to their long forms (`{Ref: X}`, `{Fn::GetAtt: A.B}`, `{Fn::Sub: s}`).
struct Template {
    resources: Mapping,
    globals: Value,
    /// The whole template (Parameters, Conditions, Outputs...).
    root: Value,
}

impl Template {
    /// infra/template.yaml, or the file `FANOUT_TEMPLATE` names (to try a variant of it).
    fn load() -> Template {
        let path = std::env::var_os("FANOUT_TEMPLATE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("infra/template.yaml"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        let root = long_form(root);
        let resources = root
            .get("Resources")
            .and_then(Value::as_mapping)
            .cloned()
            .expect("the template has a Resources mapping");
        let globals = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Value::Null);
        Template {
            resources,
            globals,
            root,
        }
    }

    fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.resources.get(logical_id)
    }

    fn resources_of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.resources
            .iter()
            .filter(move |(_, resource)| resource.get("Type").and_then(Value::as_str) == Some(kind))
            .map(|(id, resource)| (id.as_str().expect("resource ids are strings"), resource))
    }

    /// The template's functions, by the binary they are built from.
    fn functions(&self) -> BTreeMap<String, Function<'_>> {
        self.resources_of_type("AWS::Serverless::Function")
            .map(|(id, resource)| {
                let binary = resource
                    .get("Metadata")
                    .and_then(|m| m.get("BuildProperties"))
                    .and_then(|b| b.get("Binary"))
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| {
                        panic!("template function {id} has no Metadata.BuildProperties.Binary")
                    });
                (
                    binary.to_owned(),
                    Function {
                        id: id.to_owned(),
                        resource,
                        template: self,
                    },
                )
            })
            .collect()
    }
}

struct Function<'t> {
    id: String,
    resource: &'t Value,
    template: &'t Template,
}

impl<'t> Function<'t> {
    /// A property of the function, or of `Globals.Function` when the function does not set it.
    fn property(&self, name: &str) -> Option<&'t Value> {
        self.resource
            .get("Properties")
            .and_then(|p| p.get(name))
            .or_else(|| self.template.globals.get(name))
    }

    /// The value of one of its own environment variables.
    fn variable(&self, name: &str) -> Option<&'t Value> {
        self.resource
            .get("Properties")
            .and_then(|p| p.get("Environment"))
            .and_then(|env| env.get("Variables"))
            .and_then(|vars| vars.get(name))
    }

    /// The environment variables it sets, its own and those in Globals.
    fn environment(&self) -> BTreeSet<String> {
        let own = self
            .resource
            .get("Properties")
            .and_then(|p| p.get("Environment"));
        let global = self.template.globals.get("Environment");
        [own, global]
            .into_iter()
            .flatten()
            .filter_map(|env| env.get("Variables").and_then(Value::as_mapping))
            .flat_map(|vars| vars.keys())
            .map(|k| k.as_str().expect("variable names are strings").to_owned())
            .collect()
    }

    /// Its event sources: `(Type, event)`.
    fn events(&self) -> Vec<(&'t str, &'t Value)> {
        self.property("Events")
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|events| events.values())
            .map(|event| {
                let kind = event.get("Type").and_then(Value::as_str).unwrap_or("");
                (kind, event)
            })
            .collect()
    }

    /// Where failed asynchronous invocations go: `(destination type, target)`.
    fn async_failure_targets(&self) -> Vec<(&'t str, &'t Value)> {
        let on_failure = self
            .property("EventInvokeConfig")
            .and_then(|c| c.get("DestinationConfig"))
            .and_then(|d| d.get("OnFailure"))
            .map(|f| (f.get("Type"), f.get("Destination")));
        let dlq = self
            .property("DeadLetterQueue")
            .map(|d| (d.get("Type"), d.get("TargetArn")));
        [on_failure, dlq]
            .into_iter()
            .flatten()
            .filter_map(|(kind, target)| Some((kind?.as_str()?, target?)))
            .collect()
    }

    /// The logical id of the function's IAM role.
    fn role_id(&self) -> Result<String, String> {
        let role = self.property("Role").ok_or_else(|| {
            format!(
                "{} has no Role: give it an explicit AWS::IAM::Role, so that its grants can be checked",
                self.id
            )
        })?;
        referenced_id(role).ok_or_else(|| {
            format!(
                "{}'s Role is not a !GetAtt of a role in this template: {role:?}",
                self.id
            )
        })
    }
}

/// Rewrites `!Tag value` to `{Fn::Tag: value}` (`{Ref: value}` for `!Ref`), recursively.
fn long_form(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let key = if name == "Ref" || name == "Condition" {
                name.to_owned()
            } else {
                format!("Fn::{name}")
            };
            let mut mapping = Mapping::new();
            mapping.insert(Value::String(key), long_form(tagged.value));
            Value::Mapping(mapping)
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(long_form).collect()),
        Value::Mapping(mapping) => Value::Mapping(
            mapping
                .into_iter()
                .map(|(k, v)| (k, long_form(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The logical id a `{Ref: X}` or `{Fn::GetAtt: X.Attr | [X, Attr]}` points at.
fn referenced_id(value: &Value) -> Option<String> {
    if let Some(id) = value.get("Ref").and_then(Value::as_str) {
        return Some(id.to_owned());
    }
    match value.get("Fn::GetAtt")? {
        Value::String(dotted) => dotted.split('.').next().map(str::to_owned),
        Value::Sequence(parts) => parts.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The parts of a Cargo.toml that say which binaries a crate builds.
#[derive(Deserialize)]
struct Manifest {
    package: Package,
    #[serde(default)]
    bin: Vec<Target>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
}

#[derive(Deserialize)]
struct Target {
    name: String,
}

/// The binaries of the function crates under functions/, each with its crate's folder: the
/// `[[bin]]` targets of its Cargo.toml, or, without any, the package's own binary
/// (src/main.rs), as Cargo builds them.
fn function_binaries() -> BTreeMap<String, String> {
    let dir = workspace_root().join("functions");
    let mut binaries = BTreeMap::new();
    let folders = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.join("Cargo.toml").is_file());
    for folder in folders {
        let path = folder.join("Cargo.toml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let manifest: Manifest = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a crate manifest: {e}", path.display()));
        let mut names: Vec<String> = manifest.bin.into_iter().map(|bin| bin.name).collect();
        if names.is_empty() && folder.join("src/main.rs").is_file() {
            names.push(manifest.package.name);
        }
        let name = folder
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 folder names");
        for binary in names {
            binaries.insert(binary, format!("functions/{name}"));
        }
    }
    binaries
}

/// The template's functions, each with the list `list` picks from its declarations; a function
/// missing from [`DECLARED`] is a problem.
fn with_declared_list<'t>(
    template: &'t Template,
    list: fn(&Declared) -> &'static [&'static str],
    problems: &mut Vec<String>,
) -> Vec<(String, Function<'t>, BTreeSet<String>)> {
    template
        .functions()
        .into_iter()
        .filter_map(|(binary, function)| {
            match DECLARED.iter().find(|(name, _)| *name == binary) {
                Some((_, declared)) => {
                    let items = list(declared).iter().map(|s| s.to_string()).collect();
                    Some((binary, function, items))
                }
                None => {
                    problems.push(format!(
                        "{binary}: not in DECLARED (tests/tests/template.rs); add its ENV_VARS and IAM_ACTIONS there"
                    ));
                    None
                }
            }
        })
        .collect()
}

/// The Allow statements of a role: its inline policies, and AWS::IAM::Policy resources attached
/// to it. A statement under `Fn::If` counts in each branch that is not `AWS::NoValue`.
fn role_statements<'t>(template: &'t Template, role_id: &str) -> Result<Vec<&'t Value>, String> {
    let role = template
        .resource(role_id)
        .filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::IAM::Role"))
        .ok_or_else(|| format!("{role_id} is not an AWS::IAM::Role in the template"))?;
    let properties = role.get("Properties");
    if properties
        .and_then(|p| p.get("ManagedPolicyArns"))
        .is_some()
    {
        return Err(format!(
            "{role_id} attaches managed policies, which this test cannot see into: write the statements inline"
        ));
    }
    let mut documents: Vec<&Value> = properties
        .and_then(|p| p.get("Policies"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|policy| policy.get("PolicyDocument"))
        .collect();
    for (_, policy) in template.resources_of_type("AWS::IAM::Policy") {
        let attached = policy
            .get("Properties")
            .and_then(|p| p.get("Roles"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .any(|r| referenced_id(r).as_deref() == Some(role_id));
        if attached {
            documents.extend(
                policy
                    .get("Properties")
                    .and_then(|p| p.get("PolicyDocument")),
            );
        }
    }
    let mut statements = Vec::new();
    for document in documents {
        for statement in document
            .get("Statement")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            statements.extend(branches(statement));
        }
    }
    Ok(statements
        .into_iter()
        .filter(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow"))
        .collect())
}

/// The values an `Fn::If` can take (both branches, without `AWS::NoValue`), or the value itself.
fn branches(value: &Value) -> Vec<&Value> {
    match value.get("Fn::If").and_then(Value::as_sequence) {
        Some(parts) if parts.len() == 3 => parts[1..]
            .iter()
            .flat_map(branches)
            .filter(|v| v.get("Ref").and_then(Value::as_str) != Some("AWS::NoValue"))
            .collect(),
        _ => vec![value],
    }
}

fn strings(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Sequence(items)) => items.iter().flat_map(branches).collect(),
        Some(other) => branches(other),
        None => Vec::new(),
    }
}

/// Whether a statement's resource is a KMS key: `!GetAtt <AWS::KMS::Key>.Arn`, or `!Ref` of a
/// parameter named `*KmsKeyArn`.
fn is_kms_key(template: &Template, resource: &Value) -> bool {
    let Some(id) = referenced_id(resource) else {
        return false;
    };
    let is_key = template
        .resource(&id)
        .and_then(|r| r.get("Type"))
        .and_then(Value::as_str)
        == Some("AWS::KMS::Key");
    is_key || (resource.get("Ref").is_some() && id.ends_with("KmsKeyArn"))
}

/// What the platform itself needs from this function's role, given its configuration.
fn implied_actions(
    binary: &str,
    function: &Function,
    code_actions: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut implied: BTreeSet<&str> = LOG_ACTIONS.iter().copied().collect();
    if function.property("Tracing").and_then(Value::as_str) == Some("Active") {
        implied.extend(XRAY_ACTIONS);
    }
    if function.events().iter().any(|(kind, _)| *kind == "SQS") {
        implied.extend(SQS_POLLER_ACTIONS);
    }
    for (kind, _) in function.async_failure_targets() {
        match kind {
            "SQS" => implied.extend(SQS_FAILURE_ACTIONS),
            other => panic!("{binary}: unexpected failure destination type {other}"),
        }
    }
    if code_actions.contains("sns:Publish") {
        implied.extend(ENCRYPTED_PUBLISH_ACTIONS);
    }
    if code_actions.iter().any(|a| a.starts_with("dynamodb:")) {
        implied.extend(ENCRYPTED_TABLE_ACTIONS);
    }
    implied.into_iter().map(str::to_owned).collect()
}

fn report(problems: Vec<String>) {
    if !problems.is_empty() {
        let mut message = String::from("infra/template.yaml does not match the code:\n");
        for problem in problems {
            let _ = writeln!(message, "  - {problem}");
        }
        panic!("{message}");
    }
}

fn listed(items: &BTreeSet<String>) -> String {
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[test]
fn every_function_crate_has_a_template_function_and_back() {
    let template = Template::load();
    let in_template: BTreeSet<String> = template.functions().into_keys().collect();
    let binaries = function_binaries();
    assert!(
        !binaries.is_empty(),
        "no function crates found under functions/"
    );
    let mut problems = Vec::new();
    for (binary, folder) in &binaries {
        if !in_template.contains(binary) {
            problems.push(format!(
                "{folder} builds binary {binary}, but no template function has Metadata.BuildProperties.Binary: {binary}"
            ));
        }
    }
    for extra in in_template.iter().filter(|b| !binaries.contains_key(*b)) {
        problems.push(format!(
            "the template builds binary {extra}, but no crate under functions/ builds it"
        ));
    }
    for (declared, _) in DECLARED {
        if !binaries.contains_key(*declared) {
            problems.push(format!(
                "DECLARED (tests/tests/template.rs) lists {declared}, but no crate under functions/ builds it"
            ));
        }
    }
    report(problems);
}

#[test]
fn each_function_gets_exactly_the_environment_its_config_reads() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (binary, function, reads) in with_declared_list(&template, |d| d.env_vars, &mut problems) {
        let sets = function.environment();
        let expected: BTreeSet<String> = reads
            .iter()
            .filter(|v| !LOCAL_ONLY_VARS.contains(&v.as_str()))
            .cloned()
            .collect();
        let missing: BTreeSet<String> = expected.difference(&sets).cloned().collect();
        let extra: BTreeSet<String> = sets.difference(&reads).cloned().collect();
        let secrets: BTreeSet<String> = sets
            .iter()
            .filter(|v| LOCAL_ONLY_VARS.contains(&v.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{binary} ({}): its config reads {} (ENV_VARS), which the template does not set",
                function.id,
                listed(&missing)
            ));
        }
        if !extra.is_empty() {
            problems.push(format!(
                "{binary} ({}): the template sets {}, which its config does not read (not in ENV_VARS)",
                function.id,
                listed(&extra)
            ));
        }
        if !secrets.is_empty() {
            problems.push(format!(
                "{binary} ({}): the template sets {}, a plaintext secret; pass the SSM parameter name in the *_PARAM variable instead",
                function.id,
                listed(&secrets)
            ));
        }
    }
    report(problems);
}

#[test]
fn each_function_role_grants_exactly_the_actions_its_code_calls() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (binary, function, code_actions) in
        with_declared_list(&template, |d| d.iam_actions, &mut problems)
    {
        let statements = match function
            .role_id()
            .and_then(|role| role_statements(&template, &role).map(|s| (role, s)))
        {
            Ok(found) => found,
            Err(problem) => {
                problems.push(format!("{binary}: {problem}"));
                continue;
            }
        };
        let (role_id, statements) = statements;
        let mut granted = BTreeSet::new();
        let mut encryption = BTreeSet::new();
        for statement in statements {
            let actions: Vec<String> = strings(statement.get("Action"))
                .into_iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
                problems.push(format!(
                    "{binary}: {role_id} uses NotAction/NotResource, which grants more than it names"
                ));
            }
            for action in &actions {
                if action.contains('*') {
                    problems.push(format!(
                        "{binary}: {role_id} grants the wildcard action {action}"
                    ));
                }
            }
            let resources = strings(statement.get("Resource"));
            if resources.is_empty() {
                problems.push(format!(
                    "{binary}: {role_id} has a statement without Resource for {}",
                    actions.join(", ")
                ));
            }
            if resources.iter().any(|r| r.as_str() == Some("*")) {
                for action in actions
                    .iter()
                    .filter(|a| !RESOURCE_STAR_ACTIONS.contains(&a.as_str()))
                {
                    problems.push(format!(
                        "{binary}: {role_id} grants {action} on Resource '*'; name the resources"
                    ));
                }
            }
            let on_keys_only = !resources.is_empty()
                && resources.iter().all(|r| is_kms_key(&template, r))
                && actions.iter().all(|a| KEY_ACTIONS.contains(&a.as_str()));
            if on_keys_only {
                encryption.extend(actions.iter().cloned());
            }
            granted.extend(actions);
        }
        let implied = implied_actions(&binary, &function, &code_actions);
        let expected: BTreeSet<String> = code_actions.union(&implied).cloned().collect();
        let missing: BTreeSet<String> = expected.difference(&granted).cloned().collect();
        let extra: BTreeSet<String> = granted
            .difference(&expected)
            .filter(|a| !encryption.contains(*a))
            .cloned()
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{binary}: {role_id} lacks {} (in IAM_ACTIONS or needed by its configuration)",
                listed(&missing)
            ));
        }
        if !extra.is_empty() {
            problems.push(format!(
                "{binary}: {role_id} grants {}, which its code does not call (not in IAM_ACTIONS) and its configuration does not need",
                listed(&extra)
            ));
        }
    }
    report(problems);
}

#[test]
fn every_function_is_deployed_the_same_safe_way() {
    let template = Template::load();
    let mut problems = Vec::new();
    let expect = |problems: &mut Vec<String>, binary: &str, what: &str, ok: bool| {
        if !ok {
            problems.push(format!("{binary}: {what}"));
        }
    };
    for (binary, function) in template.functions() {
        let p = |name| function.property(name);
        let metadata = function.resource.get("Metadata");
        expect(
            &mut problems,
            &binary,
            "Metadata.BuildMethod must be rust-cargolambda",
            metadata
                .and_then(|m| m.get("BuildMethod"))
                .and_then(Value::as_str)
                == Some("rust-cargolambda"),
        );
        for (property, wanted) in SAME_FOR_EVERY_FUNCTION {
            let found = p(property);
            if found.and_then(Value::as_str) != Some(wanted) {
                problems.push(format!(
                    "{binary}: {property} must be {wanted}, not {found:?}"
                ));
            }
        }
        expect(
            &mut problems,
            &binary,
            "Architectures must be [arm64]",
            p("Architectures")
                .and_then(Value::as_sequence)
                .map(|a| a.as_slice())
                == Some(&[Value::String("arm64".into())][..]),
        );
        let alarms = p("DeploymentPreference")
            .and_then(|d| d.get("Alarms"))
            .and_then(Value::as_sequence)
            .map(|a| a.len())
            .unwrap_or(0);
        expect(
            &mut problems,
            &binary,
            "DeploymentPreference needs the errors and throttles alarms of the new version",
            is_hook(&binary)
                || alarms >= 2
                    && p("DeploymentPreference")
                        .and_then(|d| d.get("Type"))
                        .and_then(referenced_id)
                        .as_deref()
                        == Some("DeploymentType"),
        );
        let retention = p("LoggingConfig")
            .and_then(|l| l.get("LogGroup"))
            .and_then(referenced_id)
            .and_then(|group| template.resource(&group))
            .and_then(|group| group.get("Properties"))
            .and_then(|props| props.get("RetentionInDays"));
        expect(
            &mut problems,
            &binary,
            "LoggingConfig.LogGroup must be a log group of this template with RetentionInDays",
            retention.is_some(),
        );
    }
    for binary in ["slack-counter", "s3-copier"] {
        if let Some(function) = template.functions().get(binary) {
            expect(
                &mut problems,
                binary,
                "needs ReservedConcurrentExecutions, so that a runaway cannot starve the account",
                function.property("ReservedConcurrentExecutions").is_some(),
            );
        }
    }
    report(problems);
}

#[test]
fn every_asynchronous_invocation_and_queue_has_somewhere_to_fail_to() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (binary, function) in template.functions() {
        for (kind, event) in function.events() {
            let properties = event.get("Properties");
            if ASYNC_EVENT_TYPES.contains(&kind) && function.async_failure_targets().is_empty() {
                problems.push(format!(
                    "{binary}: its {kind} event invokes it asynchronously, but it has neither EventInvokeConfig.DestinationConfig.OnFailure nor DeadLetterQueue"
                ));
            }
            if matches!(kind, "SNS") && properties.and_then(|p| p.get("RedrivePolicy")).is_none() {
                problems.push(format!(
                    "{binary}: its SNS subscription has no RedrivePolicy for messages SNS cannot deliver"
                ));
            }
            if matches!(kind, "Schedule" | "EventBridgeRule" | "CloudWatchEvent")
                && properties.and_then(|p| p.get("DeadLetterConfig")).is_none()
            {
                problems.push(format!(
                    "{binary}: its {kind} rule has no DeadLetterConfig for events it cannot deliver"
                ));
            }
            if kind == "SQS" {
                let queue = properties
                    .and_then(|p| p.get("Queue"))
                    .and_then(referenced_id)
                    .and_then(|id| template.resource(&id).map(|q| (id, q)));
                match queue {
                    Some((id, queue)) => {
                        let redrive = queue.get("Properties").and_then(|p| p.get("RedrivePolicy"));
                        if redrive.is_none() {
                            problems.push(format!(
                                "{binary}: its queue {id} has no RedrivePolicy (dead-letter queue)"
                            ));
                        }
                        // A function told its queue's maxReceiveCount must be told the truth.
                        let told = function.variable("COPY_MAX_RECEIVES");
                        let max = redrive.and_then(|r| r.get("maxReceiveCount"));
                        let number = |v: Option<&Value>| {
                            v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                        };
                        if told.is_some() && number(told) != number(max) {
                            problems.push(format!(
                                "{binary}: COPY_MAX_RECEIVES is {told:?} but its queue {id} has maxReceiveCount {max:?}"
                            ));
                        }
                    }
                    None => problems.push(format!(
                        "{binary}: its SQS event's Queue is not a queue of this template"
                    )),
                }
                let reports_failures = properties
                    .and_then(|p| p.get("FunctionResponseTypes"))
                    .and_then(Value::as_sequence)
                    .is_some_and(|t| {
                        t.iter()
                            .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                    });
                if !reports_failures {
                    problems.push(format!(
                        "{binary}: its SQS event lacks FunctionResponseTypes: [ReportBatchItemFailures]"
                    ));
                }
            }
        }
    }
    report(problems);
}

/// The variables `config` looks up when it reads `env`, set or not, and how the reading ended.
fn variables_read(
    config: ReadConfig,
    env: &[(&'static str, &'static str)],
) -> (BTreeSet<String>, Result<(), ConfigError>) {
    let read = Arc::new(Mutex::new(BTreeSet::new()));
    let log = read.clone();
    let vars = Vars::from_pairs(env.iter().copied()).observed(move |name| {
        log.lock().unwrap().insert(name.to_owned());
    });
    let outcome = config(&vars);
    let read = read.lock().unwrap().clone();
    (read, outcome)
}

#[test]
fn each_function_config_reads_exactly_its_env_vars() {
    let mut problems = Vec::new();
    for (binary, declared) in DECLARED {
        let env_vars: BTreeSet<String> = declared.env_vars.iter().map(|v| v.to_string()).collect();
        let mut read = BTreeSet::new();
        if let Some(config) = declared.config {
            // Unset, a configuration stops at the first variable it requires; the valid one
            // goes through every variable.
            let (unset, _) = variables_read(config, &[]);
            let (valid, outcome) = variables_read(config, declared.valid_env);
            if let Err(err) = outcome {
                problems.push(format!(
                    "{binary}: its valid_env in DECLARED is not a valid configuration ({err})"
                ));
            }
            read.extend(unset);
            read.extend(valid);
        }
        let undeclared: BTreeSet<String> = read.difference(&env_vars).cloned().collect();
        let unread: BTreeSet<String> = env_vars.difference(&read).cloned().collect();
        if !undeclared.is_empty() {
            problems.push(format!(
                "{binary}: its config reads {}, which its ENV_VARS does not list",
                listed(&undeclared)
            ));
        }
        if !unread.is_empty() {
            problems.push(format!(
                "{binary}: its ENV_VARS lists {}, which its config does not read",
                listed(&unread)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ENV_VARS does not match what the config reads:\n  - {}",
        problems.join("\n  - ")
    );
}

#[test]
fn short_tags_become_long_forms() {
    let value: Value = serde_yaml::from_str(
        "a: !Ref X\nb: !GetAtt Y.Arn\nc: !If [C, !Sub 'x${Z}', !Ref AWS::NoValue]\n",
    )
    .unwrap();
    let value = long_form(value);
    assert_eq!(referenced_id(&value["a"]).as_deref(), Some("X"));
    assert_eq!(referenced_id(&value["b"]).as_deref(), Some("Y"));
    let c = branches(&value["c"]);
    assert_eq!(c.len(), 1);
    assert!(c[0].get("Fn::Sub").is_some());
}

// --- Hardening: what a deletion keeps, who may deploy, who may deliver -----------------------

fn require(what: &str, problems: Vec<String>) {
    if !problems.is_empty() {
        let mut message = format!("infra/template.yaml: {what}:\n");
        for problem in problems {
            let _ = writeln!(message, "  - {problem}");
        }
        panic!("{message}");
    }
}

fn property<'v>(resource: &'v Value, name: &str) -> Option<&'v Value> {
    resource.get("Properties").and_then(|p| p.get(name))
}

/// The statements of a resource policy (a queue, topic or key policy), each `Fn::If` branch
/// counted.
fn policy_statements(document: Option<&Value>) -> Vec<&Value> {
    document
        .and_then(|d| d.get("Statement"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .flat_map(branches)
        .collect()
}

/// Whether a statement denies every request not sent over TLS.
fn denies_plain_http(statement: &Value) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Deny")
        && statement.get("Principal").and_then(Value::as_str) == Some("*")
        && statement
            .get("Condition")
            .and_then(|c| c.get("Bool"))
            .and_then(|b| b.get("aws:SecureTransport"))
            .is_some_and(|v| v.as_str() == Some("false") || v.as_bool() == Some(false))
}

#[test]
fn the_key_and_the_tables_outlive_the_stack() {
    let template = Template::load();
    let mut problems = Vec::new();
    let stateful = template
        .resources_of_type("AWS::KMS::Key")
        .chain(template.resources_of_type("AWS::DynamoDB::Table"));
    for (id, resource) in stateful {
        for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
            if resource.get(policy).and_then(Value::as_str) != Some("Retain") {
                problems.push(format!("{id} needs {policy}: Retain"));
            }
        }
    }
    for (id, table) in template.resources_of_type("AWS::DynamoDB::Table") {
        if property(table, "DeletionProtectionEnabled").and_then(Value::as_bool) != Some(true) {
            problems.push(format!("{id} needs DeletionProtectionEnabled: true"));
        }
    }
    for (id, key) in template.resources_of_type("AWS::KMS::Key") {
        if property(key, "PendingWindowInDays").and_then(Value::as_u64) != Some(30) {
            problems.push(format!(
                "{id} needs PendingWindowInDays: 30, the longest wait before a scheduled deletion"
            ));
        }
    }
    require("retention", problems);
}

#[test]
fn codedeploy_shifts_aliases_with_a_role_scoped_to_this_stack() {
    let template = Template::load();
    let mut problems = Vec::new();
    let mut roles = BTreeSet::new();
    let mut deployment_alarms = BTreeSet::new();
    for (binary, function) in template.functions() {
        if is_hook(&binary) {
            continue;
        }
        let preference = function.property("DeploymentPreference");
        match preference.and_then(|p| p.get("Role")).and_then(referenced_id) {
            Some(role) => {
                roles.insert(role);
            }
            None => problems.push(format!(
                "{binary}: DeploymentPreference.Role must be a role of this template (SAM's own gets AWSCodeDeployRoleForLambda: every alias and topic of the account)"
            )),
        }
        deployment_alarms.extend(
            preference
                .and_then(|p| p.get("Alarms"))
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(referenced_id),
        );
    }
    if roles.len() > 1 {
        problems.push(format!(
            "the functions deploy with several roles: {roles:?}"
        ));
    }
    let functions: BTreeSet<String> = template
        .functions()
        .values()
        .map(|f| f.id.clone())
        .collect();
    for role in &roles {
        let trusted = template
            .resource(role)
            .and_then(|r| property(r, "AssumeRolePolicyDocument"))
            .map(|d| policy_statements(Some(d)))
            .unwrap_or_default()
            .iter()
            .all(|s| {
                s.get("Principal")
                    .and_then(|p| p.get("Service"))
                    .and_then(Value::as_str)
                    == Some("codedeploy.amazonaws.com")
            });
        if !trusted {
            problems.push(format!(
                "{role} must be assumable by codedeploy.amazonaws.com only"
            ));
        }
        let statements = match role_statements(&template, role) {
            Ok(statements) => statements,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let mut described = BTreeSet::new();
        for statement in statements {
            let actions: Vec<&str> = strings(statement.get("Action"))
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            let resources = strings(statement.get("Resource"));
            for action in &actions {
                if action.contains('*') {
                    problems.push(format!("{role} grants the wildcard action {action}"));
                }
            }
            if resources.iter().any(|r| r.as_str() == Some("*")) {
                problems.push(format!("{role} grants {actions:?} on Resource '*'"));
            }
            for resource in &resources {
                let target = resource
                    .get("Fn::Sub")
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_prefix("${"))
                    .and_then(|s| s.split(['.', '}']).next())
                    .map(str::to_owned)
                    .or_else(|| referenced_id(resource));
                let Some(target) = target else {
                    problems.push(format!(
                        "{role}: {resource:?} is not a resource of this template"
                    ));
                    continue;
                };
                let kind = template
                    .resource(&target)
                    .and_then(|r| r.get("Type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                for action in &actions {
                    let fits = match action.split(':').next() {
                        Some("lambda") => functions.contains(&target),
                        Some("cloudwatch") => kind == "AWS::CloudWatch::Alarm",
                        Some("sns") => target == "AlarmTopic",
                        Some("kms") => kind == "AWS::KMS::Key",
                        _ => false,
                    };
                    if !fits {
                        problems.push(format!("{role} grants {action} on {target} ({kind})"));
                    }
                }
                if actions.contains(&"cloudwatch:DescribeAlarms") {
                    described.insert(target);
                }
            }
        }
        for alarm in deployment_alarms.difference(&described) {
            problems.push(format!(
                "{role} cannot describe {alarm}, an alarm a deployment watches"
            ));
        }
    }
    require("CodeDeploy's role", problems);
}

#[test]
fn queues_and_topics_refuse_requests_without_tls() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (kind, policy_kind, list) in [
        ("AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "Queues"),
        ("AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "Topics"),
    ] {
        let mut covered = BTreeSet::new();
        for (_, policy) in template.resources_of_type(policy_kind) {
            let statements = policy_statements(property(policy, "PolicyDocument"));
            let denied: BTreeSet<String> = statements
                .iter()
                .filter(|s| denies_plain_http(s))
                .flat_map(|s| strings(s.get("Resource")))
                .filter_map(referenced_id)
                .collect();
            for member in strings(property(policy, list))
                .into_iter()
                .filter_map(referenced_id)
            {
                if denied.contains(&member) {
                    covered.insert(member);
                }
            }
        }
        for (id, _) in template.resources_of_type(kind) {
            if !covered.contains(id) {
                problems.push(format!(
                    "{id} has no {policy_kind} denying requests without TLS (aws:SecureTransport false)"
                ));
            }
        }
    }
    require("TLS only", problems);
}

#[test]
fn service_principals_are_scoped_to_their_source() {
    let template = Template::load();
    let mut problems = Vec::new();
    let mut documents: Vec<(String, &Value)> = Vec::new();
    for (kind, property_name) in [
        ("AWS::SQS::QueuePolicy", "PolicyDocument"),
        ("AWS::SNS::TopicPolicy", "PolicyDocument"),
        ("AWS::KMS::Key", "KeyPolicy"),
    ] {
        for (id, resource) in template.resources_of_type(kind) {
            documents.extend(property(resource, property_name).map(|d| (id.to_owned(), d)));
        }
    }
    for (id, document) in documents {
        for statement in policy_statements(Some(document)) {
            let service = statement.get("Principal").and_then(|p| p.get("Service"));
            if service.is_none() || statement.get("Effect").and_then(Value::as_str) != Some("Allow")
            {
                continue;
            }
            let keys: Vec<&str> = statement
                .get("Condition")
                .and_then(Value::as_mapping)
                .into_iter()
                .flat_map(|operators| operators.values())
                .filter_map(Value::as_mapping)
                .flat_map(|keys| keys.keys())
                .filter_map(Value::as_str)
                .collect();
            let scoped = keys.iter().any(|k| {
                k.eq_ignore_ascii_case("aws:SourceArn") || k.starts_with("kms:EncryptionContext:")
            });
            if !scoped {
                let sid = statement.get("Sid").and_then(Value::as_str).unwrap_or("?");
                problems.push(format!(
                    "{id}'s statement {sid} admits {service:?} without an aws:SourceArn condition (aws:SourceAccount admits every topic or rule of the account)"
                ));
            }
        }
    }
    require("service principals", problems);
}

// --- Alarms that reach someone -------------------------------------------------------------------

/// The topic every alarm notifies.
const ALARM_TOPIC: &str = "AlarmTopic";

/// The alarms on `namespace`/`metric` with a dimension `dimension` naming `target` (a `!Ref` or
/// `!GetAtt` of it).
fn alarms_on<'t>(
    template: &'t Template,
    namespace: &str,
    metric: &str,
    dimension: &str,
    target: &str,
) -> Vec<&'t str> {
    template
        .resources_of_type("AWS::CloudWatch::Alarm")
        .filter(|(_, alarm)| {
            let p = |name| property(alarm, name).and_then(Value::as_str);
            p("Namespace") == Some(namespace)
                && p("MetricName") == Some(metric)
                && dimension_of(alarm, dimension)
                    .and_then(referenced_id)
                    .as_deref()
                    == Some(target)
        })
        .map(|(id, _)| id)
        .collect()
}

fn dimension_of<'v>(alarm: &'v Value, name: &str) -> Option<&'v Value> {
    property(alarm, "Dimensions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .find(|d| d.get("Name").and_then(Value::as_str) == Some(name))
        .and_then(|d| d.get("Value"))
}

/// Every value under a key named `key`, anywhere in `value`.
fn values_under<'v>(value: &'v Value, key: &str, found: &mut Vec<&'v Value>) {
    match value {
        Value::Mapping(mapping) => {
            for (k, v) in mapping {
                if k.as_str() == Some(key) {
                    found.push(v);
                }
                values_under(v, key, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| values_under(v, key, found)),
        _ => {}
    }
}

#[test]
fn every_alarm_notifies_the_alarm_topic() {
    let template = Template::load();
    let mut problems = Vec::new();
    match template.resource(ALARM_TOPIC) {
        Some(topic) if topic.get("Type").and_then(Value::as_str) == Some("AWS::SNS::Topic") => {
            // An encrypted topic: CloudWatch must be able to use its key, and to publish.
            let key = property(topic, "KmsMasterKeyId").and_then(referenced_id);
            let admits_cloudwatch = |statements: Vec<&Value>, action: &str| {
                statements.iter().any(|s| {
                    s.get("Effect").and_then(Value::as_str) == Some("Allow")
                        && s.get("Principal")
                            .and_then(|p| p.get("Service"))
                            .and_then(Value::as_str)
                            == Some("cloudwatch.amazonaws.com")
                        && strings(s.get("Action"))
                            .iter()
                            .any(|a| a.as_str() == Some(action))
                })
            };
            if let Some(key) = key {
                let policy = template
                    .resource(&key)
                    .and_then(|k| property(k, "KeyPolicy"));
                for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
                    if !admits_cloudwatch(policy_statements(policy), action) {
                        problems.push(format!(
                            "{key}'s policy does not let CloudWatch {action}: alarms cannot publish to the encrypted {ALARM_TOPIC}"
                        ));
                    }
                }
            }
            let topic_policies: Vec<&Value> = template
                .resources_of_type("AWS::SNS::TopicPolicy")
                .filter(|(_, p)| {
                    strings(property(p, "Topics"))
                        .into_iter()
                        .any(|t| referenced_id(t).as_deref() == Some(ALARM_TOPIC))
                })
                .flat_map(|(_, p)| policy_statements(property(p, "PolicyDocument")))
                .collect();
            if !admits_cloudwatch(topic_policies, "sns:Publish") {
                problems.push(format!(
                    "no topic policy lets CloudWatch publish to {ALARM_TOPIC}"
                ));
            }
        }
        _ => problems.push(format!("the template has no SNS topic {ALARM_TOPIC}")),
    }
    for (id, alarm) in template.resources_of_type("AWS::CloudWatch::Alarm") {
        let notifies = strings(property(alarm, "AlarmActions"))
            .into_iter()
            .any(|a| referenced_id(a).as_deref() == Some(ALARM_TOPIC));
        if !notifies {
            problems.push(format!("{id} has no AlarmActions to {ALARM_TOPIC}"));
        }
    }
    require("alarm notifications", problems);
}

#[test]
fn every_dead_letter_queue_has_a_depth_alarm() {
    let template = Template::load();
    let mut targets = Vec::new();
    for (_, resource) in template.resources.iter() {
        values_under(resource, "deadLetterTargetArn", &mut targets);
        values_under(resource, "DeadLetterConfig", &mut targets);
        values_under(resource, "OnFailure", &mut targets);
    }
    let dlqs: BTreeSet<String> = targets
        .into_iter()
        .map(|t| t.get("Arn").or(t.get("Destination")).unwrap_or(t))
        .filter_map(referenced_id)
        .filter(|id| {
            template
                .resource(id)
                .and_then(|r| r.get("Type"))
                .and_then(Value::as_str)
                == Some("AWS::SQS::Queue")
        })
        .collect();
    let mut problems = Vec::new();
    if dlqs.len() < 5 {
        problems.push(format!("only {dlqs:?} found as dead-letter queues"));
    }
    for dlq in &dlqs {
        let alarms = alarms_on(
            &template,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            dlq,
        );
        if alarms.is_empty() {
            problems.push(format!(
                "{dlq} is a dead-letter queue without an ApproximateNumberOfMessagesVisible alarm"
            ));
        }
    }
    require("dead-letter queues", problems);
}

#[test]
fn every_delivery_that_can_be_lost_has_an_alarm() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (binary, function) in template.functions() {
        if !function.async_failure_targets().is_empty()
            && alarms_on(
                &template,
                "AWS/Lambda",
                "DestinationDeliveryFailures",
                "FunctionName",
                &function.id,
            )
            .is_empty()
        {
            problems.push(format!(
                "{binary}: nothing watches DestinationDeliveryFailures of its OnFailure destination"
            ));
        }
        // The copier's queue: a backlog nobody sees misses the next run.
        if binary == "s3-copier" {
            for (_, event) in function.events() {
                let queue = event
                    .get("Properties")
                    .and_then(|p| p.get("Queue"))
                    .and_then(referenced_id);
                if let Some(queue) = queue {
                    let age = alarms_on(
                        &template,
                        "AWS/SQS",
                        "ApproximateAgeOfOldestMessage",
                        "QueueName",
                        &queue,
                    );
                    if age.is_empty() {
                        problems.push(format!("nothing watches the age of {queue}'s oldest job"));
                    }
                }
            }
        }
    }
    // A topic whose subscriptions redrive: SNS moving messages aside, or failing to.
    let mut redriving = BTreeSet::new();
    for (_, subscription) in template.resources_of_type("AWS::SNS::Subscription") {
        if property(subscription, "RedrivePolicy").is_some() {
            redriving.extend(property(subscription, "TopicArn").and_then(referenced_id));
        }
    }
    for (_, function) in template.functions() {
        for (kind, event) in function.events() {
            let properties = event.get("Properties");
            if kind == "SNS" && properties.and_then(|p| p.get("RedrivePolicy")).is_some() {
                redriving.extend(
                    properties
                        .and_then(|p| p.get("Topic"))
                        .and_then(referenced_id),
                );
            }
        }
    }
    for topic in &redriving {
        for metric in [
            "NumberOfNotificationsRedrivenToDlq",
            "NumberOfNotificationsFailedToRedriveToDlq",
        ] {
            if alarms_on(&template, "AWS/SNS", metric, "TopicName", topic).is_empty() {
                problems.push(format!("nothing watches {metric} of {topic}"));
            }
        }
    }
    if redriving.len() < 2 {
        problems.push(format!("only {redriving:?} found redriving"));
    }
    require("lost deliveries", problems);
}

// --- A canary that sees failures -------------------------------------------------------------

/// Whether `value` is `!GetAtt <function>.Version.Version`: the version SAM publishes for this
/// deployment, the new one.
fn is_new_version(value: Option<&Value>, function: &str) -> bool {
    let wanted = format!("{function}.Version.Version");
    match value.and_then(|v| v.get("Fn::GetAtt")) {
        Some(Value::String(dotted)) => *dotted == wanted,
        Some(Value::Sequence(parts)) => {
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            parts.join(".") == wanted
        }
        _ => false,
    }
}

#[test]
fn every_deployment_watches_the_new_version_and_its_handled_failures() {
    let template = Template::load();
    let mut problems = Vec::new();
    for (binary, function) in template.functions() {
        if is_hook(&binary) {
            continue;
        }
        let hook = function
            .property("DeploymentPreference")
            .and_then(|p| p.get("Hooks"))
            .and_then(|h| h.get("PreTraffic"))
            .and_then(referenced_id);
        if hook.as_deref() != Some("PreTrafficHookFunction") {
            problems.push(format!(
                "{binary}: its deployment has no PreTraffic hook (PreTrafficHookFunction), so a version that cannot start takes the canary's traffic: {hook:?}"
            ));
        }
        let alarms: Vec<String> = function
            .property("DeploymentPreference")
            .and_then(|p| p.get("Alarms"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(referenced_id)
            .collect();
        let mut watched = BTreeSet::new();
        for id in &alarms {
            let Some(alarm) = template.resource(id) else {
                problems.push(format!(
                    "{binary}: its deployment alarm {id} is not in the template"
                ));
                continue;
            };
            let p = |name| property(alarm, name).and_then(Value::as_str).unwrap_or("");
            let (namespace, metric) = (p("Namespace"), p("MetricName"));
            let on_function = dimension_of(alarm, "FunctionName").and_then(referenced_id)
                == Some(function.id.clone());
            let version_dimension = if namespace == "fanout" {
                "Version"
            } else {
                "ExecutedVersion"
            };
            let on_new_version =
                is_new_version(dimension_of(alarm, version_dimension), &function.id);
            if !(on_function && on_new_version) {
                problems.push(format!(
                    "{binary}: {id} ({namespace}/{metric}) does not watch the new version alone (FunctionName = the function, {version_dimension} = !GetAtt {}.Version.Version): the alias's metrics roll back a fix for an incident already under way",
                    function.id
                ));
                continue;
            }
            watched.insert(format!("{namespace}/{metric}"));
        }
        for wanted in [
            "fanout/Failures",
            "AWS/Lambda/Errors",
            "AWS/Lambda/Throttles",
        ] {
            if !watched.contains(wanted) {
                problems.push(format!(
                    "{binary}: no deployment alarm watches {wanted} of the new version"
                ));
            }
        }
    }
    require("deployment alarms", problems);
}

// --- Entry points: SlackEndpoint --------------------------------------------------------------

/// Each way in, the condition that keeps its resources, and the resource types that make it.
const ENTRY_POINTS: &[(&str, &str, &[&str])] = &[
    ("HttpApi", "UseHttpApi", &["AWS::Serverless::HttpApi"]),
    (
        "Alb",
        "UseAlb",
        &[
            "AWS::EC2::SecurityGroup",
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "AWS::ElasticLoadBalancingV2::Listener",
            "AWS::ElasticLoadBalancingV2::ListenerRule",
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            "AWS::WAFv2::WebACLAssociation",
        ],
    ),
    ("FunctionUrl", "UseFunctionUrl", &["AWS::Lambda::Url"]),
];

/// Whether condition `name` holds only when SlackEndpoint is `value`: it is that equality, or
/// an `Fn::And` with a condition that is.
fn holds_only_for(template: &Template, name: &str, value: &str) -> bool {
    let Some(condition) = template.root.get("Conditions").and_then(|c| c.get(name)) else {
        return false;
    };
    let is_equality = |c: &Value| {
        c.get("Fn::Equals")
            .and_then(Value::as_sequence)
            .is_some_and(|parts| {
                parts
                    .iter()
                    .any(|p| referenced_id(p).as_deref() == Some("SlackEndpoint"))
                    && parts.iter().any(|p| p.as_str() == Some(value))
            })
    };
    is_equality(condition)
        || condition
            .get("Fn::And")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .any(|part| {
                part.get("Condition")
                    .and_then(Value::as_str)
                    .is_some_and(|inner| inner != name && holds_only_for(template, inner, value))
            })
}

#[test]
fn each_slack_endpoint_exists_only_when_chosen() {
    let template = Template::load();
    let mut problems = Vec::new();
    let parameter = template
        .root
        .get("Parameters")
        .and_then(|p| p.get("SlackEndpoint"));
    let allowed: BTreeSet<&str> = parameter
        .and_then(|p| p.get("AllowedValues"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let expected: BTreeSet<&str> = ENTRY_POINTS.iter().map(|(value, _, _)| *value).collect();
    if allowed != expected {
        problems.push(format!(
            "SlackEndpoint allows {allowed:?}, not the entry points {expected:?}"
        ));
    }
    if parameter
        .and_then(|p| p.get("Default"))
        .and_then(Value::as_str)
        != Some("HttpApi")
    {
        problems.push("SlackEndpoint's default must stay HttpApi (existing stacks)".into());
    }
    for (value, condition, kinds) in ENTRY_POINTS {
        if !holds_only_for(&template, condition, value) {
            problems.push(format!(
                "the condition {condition} is not SlackEndpoint = {value}"
            ));
        }
        for kind in *kinds {
            for (id, resource) in template.resources_of_type(kind) {
                let kept_by = resource.get("Condition").and_then(Value::as_str);
                let fits = kept_by.is_some_and(|c| holds_only_for(&template, c, value));
                // The HTTP API stays (the counter's HttpApi event needs it), switched off.
                let switched_off = *value == "HttpApi"
                    && property(resource, "DisableExecuteApiEndpoint")
                        .and_then(|d| d.get("Fn::If"))
                        .and_then(Value::as_sequence)
                        .is_some_and(|parts| {
                            parts.first().and_then(Value::as_str) == Some(*condition)
                                && parts.get(1).and_then(Value::as_bool) == Some(false)
                                && parts.get(2).and_then(Value::as_bool) == Some(true)
                        });
                if !fits && !switched_off {
                    problems.push(format!(
                        "{id} ({kind}) is not kept out unless SlackEndpoint is {value} (its Condition is {kept_by:?})"
                    ));
                }
            }
        }
    }
    // The ways in: permissions on the counter for a load balancer or a public URL.
    for (id, permission) in template.resources_of_type("AWS::Lambda::Permission") {
        let principal = property(permission, "Principal").and_then(Value::as_str);
        let public = principal == Some("*");
        let balancer = principal == Some("elasticloadbalancing.amazonaws.com");
        let wanted = if public {
            Some("FunctionUrl")
        } else if balancer {
            Some("Alb")
        } else {
            None
        };
        if let Some(value) = wanted {
            let kept_by = permission.get("Condition").and_then(Value::as_str);
            if !kept_by.is_some_and(|c| holds_only_for(&template, c, value)) {
                problems.push(format!(
                    "{id} lets {principal:?} invoke the counter, but not only when SlackEndpoint is {value}"
                ));
            }
            if public
                && property(permission, "FunctionUrlAuthType").is_none()
                && property(permission, "InvokedViaFunctionUrl").and_then(Value::as_bool)
                    != Some(true)
            {
                problems.push(format!(
                    "{id} lets anyone invoke the counter, not only through its function URL"
                ));
            }
        }
    }
    // SlackUrl says where Slack should call, whichever way in.
    let slack_url = template
        .root
        .get("Outputs")
        .and_then(|o| o.get("SlackUrl"))
        .map(|o| serde_yaml::to_string(o).unwrap_or_default())
        .unwrap_or_default();
    for (_, condition, _) in ENTRY_POINTS.iter().filter(|(v, _, _)| *v != "HttpApi") {
        if !slack_url.contains(condition) {
            problems.push(format!(
                "the output SlackUrl does not depend on {condition}"
            ));
        }
    }
    require("entry points", problems);
}
