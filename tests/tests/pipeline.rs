//! The delivery pipeline (infra/pipeline.yaml), read without an AWS account, against the files
//! it deploys with and the code it runs:
//! - its stages run in order (Source, UpdatePipeline, Build, DeployTest, IntegrationTest, an
//!   optional Approval, DeployProd), each doing its part;
//! - UpdatePipeline deploys the pipeline's own stack from this very file, and the execution
//!   restarts on the new pipeline;
//! - every buildspec command is a target of the Makefile or a binary of the workspace, and the
//!   build's artifact holds what the later stages read;
//! - each parameter file sets every parameter of infra/template.yaml without a default, and
//!   samconfig.toml's test and prod environments deploy the same;
//! - no IAM role or policy of the pipeline or compliance stacks grants an `*` or `service:*`
//!   action, nor passes or assumes any role (`Resource: '*'`).

use std::collections::{BTreeMap, BTreeSet};

use fanout_tests::workspace_root;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

const PIPELINE: &str = "infra/pipeline.yaml";
const COMPLIANCE: &str = "infra/compliance.yaml";
const APPLICATION: &str = "infra/template.yaml";
const BUILDSPECS: &str = "infra/buildspec";

/// The stages, in order; Approval may be left out by a condition.
const STAGES: &[&str] = &[
    "Source",
    "UpdatePipeline",
    "Build",
    "DeployTest",
    "IntegrationTest",
    "Approval",
    "DeployProd",
];
const OPTIONAL_STAGES: &[&str] = &["Approval"];

fn read(path: &str) -> String {
    let full = workspace_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

fn report(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}:\n  - {}",
        problems.join("\n  - ")
    );
}

/// The argument of a CloudFormation function, written short (`!If [...]`) or long
/// (`{Fn::If: [...]}`; `{Ref: ...}`).
fn intrinsic<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag.to_string().trim_start_matches('!') == name => {
            Some(&tagged.value)
        }
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let long = if name == "Ref" {
                name.to_owned()
            } else {
                format!("Fn::{name}")
            };
            mapping.get(long.as_str())
        }
        _ => None,
    }
}

/// The values a template value can take: both branches of an `Fn::If`, nothing for
/// `AWS::NoValue`, else the value itself.
fn alternatives(value: &Value) -> Vec<&Value> {
    if let Some(branches) = intrinsic(value, "If").and_then(Value::as_sequence) {
        return branches.iter().skip(1).flat_map(alternatives).collect();
    }
    if intrinsic(value, "Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
        return Vec::new();
    }
    vec![value]
}

/// A string, or the text of a `!Sub` of one.
fn text(value: &Value) -> Option<&str> {
    value
        .as_str()
        .or_else(|| intrinsic(value, "Sub").and_then(Value::as_str))
}

/// A value or a list of them, as a list (IAM's Action and Resource take both).
fn one_or_many(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Sequence(items)) => items.iter().flat_map(alternatives).collect(),
        Some(value) => alternatives(value),
        None => Vec::new(),
    }
}

struct Template {
    path: &'static str,
    root: Value,
}

impl Template {
    fn load(path: &'static str) -> Template {
        Template {
            path,
            root: yaml(path),
        }
    }

    fn resources(&self) -> &Mapping {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("{} has no Resources", self.path))
    }

    fn of_type<'t>(&'t self, kind: &'t str) -> impl Iterator<Item = (&'t str, &'t Value)> {
        self.resources()
            .iter()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .map(|(id, r)| (id.as_str().unwrap_or_default(), r))
    }

    /// The resource a `!Ref X` or `!GetAtt X.Arn` points at.
    fn referenced(&self, value: &Value) -> Option<&Value> {
        let id = match (intrinsic(value, "Ref"), intrinsic(value, "GetAtt")) {
            (Some(id), _) => id.as_str()?.to_owned(),
            (None, Some(Value::String(dotted))) => dotted.split('.').next()?.to_owned(),
            (None, Some(Value::Sequence(parts))) => parts.first()?.as_str()?.to_owned(),
            _ => return None,
        };
        self.resources().get(id.as_str())
    }

    /// Its parameters: name to default (None: no default).
    fn parameters(&self) -> BTreeMap<String, Option<String>> {
        self.root
            .get("Parameters")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .map(|(name, parameter)| {
                let default = parameter.get("Default").map(scalar);
                (name.as_str().unwrap_or_default().to_owned(), default)
            })
            .collect()
    }

    fn allowed_values(&self, parameter: &str) -> Option<Vec<String>> {
        let allowed = self
            .root
            .get("Parameters")?
            .get(parameter)?
            .get("AllowedValues")?;
        Some(allowed.as_sequence()?.iter().map(scalar).collect())
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// One stage of the pipeline, and whether a condition may leave it out.
struct Stage<'t> {
    name: String,
    conditional: bool,
    actions: Vec<&'t Value>,
}

impl Stage<'_> {
    /// Its actions of one provider.
    fn actions_of(&self, provider: &str) -> Vec<&Value> {
        self.actions
            .iter()
            .copied()
            .filter(|a| {
                a.get("ActionTypeId")
                    .and_then(|t| t.get("Provider"))
                    .and_then(Value::as_str)
                    == Some(provider)
            })
            .collect()
    }
}

fn configuration<'v>(action: &'v Value, key: &str) -> Option<&'v Value> {
    action.get("Configuration")?.get(key)
}

fn pipeline_resource(template: &Template) -> &Value {
    let pipelines: Vec<_> = template.of_type("AWS::CodePipeline::Pipeline").collect();
    assert_eq!(pipelines.len(), 1, "{PIPELINE} defines one pipeline");
    pipelines[0].1
}

fn stages(template: &Template) -> Vec<Stage<'_>> {
    let listed = pipeline_resource(template)
        .get("Properties")
        .and_then(|p| p.get("Stages"))
        .and_then(Value::as_sequence)
        .expect("the pipeline lists its Stages");
    listed
        .iter()
        .flat_map(|item| {
            let conditional = intrinsic(item, "If").is_some();
            alternatives(item)
                .into_iter()
                .map(move |stage| (stage, conditional))
        })
        .map(|(stage, conditional)| Stage {
            name: stage
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed)")
                .to_owned(),
            conditional,
            actions: one_or_many(stage.get("Actions")),
        })
        .collect()
}

fn stage<'s, 't>(stages: &'s [Stage<'t>], name: &str) -> &'s Stage<'t> {
    stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("the pipeline has no stage {name}"))
}

/// The buildspec a CodeBuild action runs: its project's `Source.BuildSpec`.
fn buildspec_of(template: &Template, action: &Value) -> String {
    let project = configuration(action, "ProjectName")
        .and_then(|p| template.referenced(p))
        .expect("a CodeBuild action names a project of this template");
    project
        .get("Properties")
        .and_then(|p| p.get("Source"))
        .and_then(|s| s.get("BuildSpec"))
        .and_then(Value::as_str)
        .expect("each project reads a buildspec file")
        .to_owned()
}

/// Every command of a buildspec, phase by phase (`commands` and `finally`).
fn buildspec_commands(path: &str) -> Vec<String> {
    let spec = yaml(path);
    let phases = spec
        .get("phases")
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{path} has no phases"));
    phases
        .values()
        .flat_map(|phase| ["commands", "finally"].map(|key| phase.get(key)))
        .flat_map(one_or_many)
        .map(|c| {
            c.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{c:?}"))
        })
        .collect()
}

fn pipeline_parameter_default(template: &Template, name: &str) -> String {
    template
        .parameters()
        .get(name)
        .cloned()
        .flatten()
        .unwrap_or_else(|| panic!("{PIPELINE}'s {name} has no default"))
}

#[test]
fn stages_run_in_order_and_each_does_its_part() {
    let template = Template::load(PIPELINE);
    let stages = stages(&template);
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    let expected: Vec<&str> = STAGES.to_vec();
    assert_eq!(names, expected, "the pipeline's stages, in order");
    let mut problems = Vec::new();
    for stage in &stages {
        let optional = OPTIONAL_STAGES.contains(&stage.name.as_str());
        if optional != stage.conditional {
            problems.push(format!(
                "{}: {}",
                stage.name,
                if optional {
                    "must be optional (inside an !If on a parameter's condition)"
                } else {
                    "must always run (not inside an !If)"
                }
            ));
        }
    }

    let source = stage(&stages, "Source").actions_of("CodeStarSourceConnection");
    if source.len() != 1 {
        problems.push("Source: one CodeStarSourceConnection action".into());
    }
    for key in ["ConnectionArn", "FullRepositoryId", "BranchName"] {
        if source.iter().any(|a| configuration(a, key).is_none()) {
            problems.push(format!("Source: the connection's {key} is not set"));
        }
    }

    // Build: make test, then sam build and sam package, on arm64.
    let build = stage(&stages, "Build").actions_of("CodeBuild");
    for action in &build {
        let project = configuration(action, "ProjectName")
            .and_then(|p| template.referenced(p))
            .expect("the build names its project");
        let environment = project.get("Properties").and_then(|p| p.get("Environment"));
        let kind = environment
            .and_then(|e| e.get("Type"))
            .and_then(Value::as_str);
        let image = environment
            .and_then(|e| e.get("Image"))
            .and_then(Value::as_str);
        if kind != Some("ARM_CONTAINER") || !image.unwrap_or("").contains("aarch64") {
            problems.push(format!(
                "Build: not on an arm64 image ({kind:?}, {image:?})"
            ));
        }
    }
    let expect_commands = |stage_name: &str, provider_actions: Vec<&Value>, wanted: &[&str]| {
        let commands: Vec<String> = provider_actions
            .iter()
            .flat_map(|a| buildspec_commands(&buildspec_of(&template, a)))
            .collect();
        let mut missing = Vec::new();
        let mut at = 0;
        for want in wanted {
            match commands[at..].iter().position(|c| c.starts_with(want)) {
                Some(found) => at += found + 1,
                None => missing.push(format!(
                    "{stage_name}: no `{want}` (after the ones before it)"
                )),
            }
        }
        missing
    };
    problems.extend(expect_commands(
        "Build",
        build,
        &[
            "make test",
            "make sam-build",
            "make release-digests",
            "make sam-package",
        ],
    ));
    problems.extend(expect_commands(
        "IntegrationTest",
        stage(&stages, "IntegrationTest").actions_of("CodeBuild"),
        &[
            "make smoke-words",
            "make smoke-copy",
            "make check-live-config",
            "make check-dlqs",
        ],
    ));

    // The application stacks: test all at once, production with the canary, then its smoke test.
    for (name, suffix, parameters) in [
        ("DeployTest", "-test", "infra/params/test.json"),
        ("DeployProd", "-prod", "infra/params/prod.json"),
    ] {
        let deploys = stage(&stages, name).actions_of("CloudFormation");
        let [deploy] = deploys.as_slice() else {
            problems.push(format!("{name}: one CloudFormation action"));
            continue;
        };
        let stack = configuration(deploy, "StackName").and_then(text);
        if stack != Some(&format!("${{ApplicationStackName}}{suffix}")) {
            problems.push(format!(
                "{name}: deploys {stack:?}, not ${{ApplicationStackName}}{suffix}"
            ));
        }
        let parameter_file = configuration(deploy, "TemplateConfiguration").and_then(text);
        if !parameter_file.is_some_and(|f| f.ends_with(&format!("::{parameters}"))) {
            problems.push(format!(
                "{name}: its TemplateConfiguration is {parameter_file:?}, not {parameters}"
            ));
        }
        let capabilities = configuration(deploy, "Capabilities")
            .and_then(Value::as_str)
            .unwrap_or("");
        for needed in ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"] {
            if !capabilities.split(',').any(|c| c.trim() == needed) {
                problems.push(format!("{name}: Capabilities lacks {needed}"));
            }
        }
        if configuration(deploy, "RoleArn").is_none() {
            problems.push(format!(
                "{name}: CloudFormation must deploy through a scoped role (RoleArn)"
            ));
        }
    }
    let deploy_prod = stage(&stages, "DeployProd");
    let smoke_after_deploy = deploy_prod.actions_of("CodeBuild").iter().any(|smoke| {
        let order = |a: &Value| a.get("RunOrder").and_then(Value::as_u64).unwrap_or(1);
        let deployed_before = deploy_prod
            .actions_of("CloudFormation")
            .iter()
            .all(|d| order(d) < order(smoke));
        deployed_before
            && buildspec_commands(&buildspec_of(&template, smoke))
                .iter()
                .any(|c| c.starts_with("make smoke-words"))
    });
    if !smoke_after_deploy {
        problems.push("DeployProd: no smoke test (make smoke-words) after the deploy".into());
    }
    let approvals = stage(&stages, "Approval").actions_of("Manual");
    if approvals.len() != 1 {
        problems.push("Approval: one manual approval action".into());
    }
    report("the pipeline's stages", problems);
}

#[test]
fn update_pipeline_deploys_its_own_stack_from_this_file_and_restarts() {
    let template = Template::load(PIPELINE);
    let stages = stages(&template);
    let source_artifact = stage(&stages, "Source")
        .actions
        .iter()
        .flat_map(|a| one_or_many(a.get("OutputArtifacts")))
        .find_map(|artifact| artifact.get("Name").and_then(Value::as_str))
        .expect("the source action names its output artifact");
    let updates = stage(&stages, "UpdatePipeline").actions_of("CloudFormation");
    let [update] = updates.as_slice() else {
        panic!("UpdatePipeline has one CloudFormation action");
    };
    let mut problems = Vec::new();
    let stack = configuration(update, "StackName").and_then(|s| intrinsic(s, "Ref"));
    if stack.and_then(Value::as_str) != Some("AWS::StackName") {
        problems.push(format!(
            "StackName must be the pipeline's own stack (!Ref AWS::StackName), not {stack:?}"
        ));
    }
    let wanted = format!("{source_artifact}::{PIPELINE}");
    let path = configuration(update, "TemplatePath").and_then(text);
    if path != Some(wanted.as_str()) {
        problems.push(format!("TemplatePath is {path:?}, not {wanted}"));
    }
    let mode = configuration(update, "ActionMode").and_then(Value::as_str);
    if mode != Some("CREATE_UPDATE") {
        problems.push(format!("ActionMode is {mode:?}, not CREATE_UPDATE"));
    }
    if configuration(update, "RoleArn").is_none() {
        problems.push("CloudFormation must update the pipeline through a scoped role".into());
    }
    let properties = pipeline_resource(&template).get("Properties");
    let restarts = properties
        .and_then(|p| p.get("RestartExecutionOnUpdate"))
        .and_then(Value::as_bool);
    if restarts != Some(true) {
        problems.push("RestartExecutionOnUpdate must be true".into());
    }
    let kind = properties
        .and_then(|p| p.get("PipelineType"))
        .and_then(Value::as_str);
    if kind != Some("V2") {
        problems.push(format!("PipelineType is {kind:?}, not V2"));
    }

    // Its parameter file: parameters of this template, and every one without a default.
    let configured = configuration(update, "TemplateConfiguration").and_then(text);
    match configured.and_then(|c| c.strip_prefix(&format!("{source_artifact}::"))) {
        Some(file) => problems.extend(parameter_file_problems(&template, file)),
        None => problems.push(format!(
            "TemplateConfiguration {configured:?} is not a file of the source"
        )),
    }
    report("UpdatePipeline", problems);
}

/// The Makefile's targets (`name:` at the start of a line, not `name :=`).
fn make_targets() -> BTreeSet<String> {
    read("Makefile")
        .lines()
        .filter(|line| !line.starts_with('\t') && !line.starts_with('#'))
        .filter_map(|line| {
            let (names, rest) = line.split_once(':')?;
            (!rest.starts_with('=') && !names.contains('=')).then_some(names)
        })
        .flat_map(str::split_whitespace)
        .filter(|name| !name.contains('$') && !name.starts_with('.'))
        .map(str::to_owned)
        .collect()
}

#[derive(Deserialize)]
struct Workspace {
    workspace: Members,
}

#[derive(Deserialize)]
struct Members {
    members: Vec<String>,
}

#[derive(Deserialize)]
struct Manifest {
    package: Package,
    #[serde(default)]
    bin: Vec<BinTarget>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
}

#[derive(Deserialize)]
struct BinTarget {
    name: String,
}

/// Every binary the workspace builds, as Cargo names them: `[[bin]]` targets, the package's
/// own (src/main.rs), and src/bin/'s.
fn workspace_binaries() -> BTreeSet<String> {
    let root = workspace_root();
    let workspace: Workspace =
        toml::from_str(&read("Cargo.toml")).expect("the workspace's Cargo.toml lists its members");
    let mut binaries = BTreeSet::new();
    for member in workspace.workspace.members {
        let manifest: Manifest = toml::from_str(&read(&format!("{member}/Cargo.toml")))
            .unwrap_or_else(|e| panic!("{member}/Cargo.toml: {e}"));
        binaries.extend(manifest.bin.into_iter().map(|b| b.name));
        let dir = root.join(&member);
        if dir.join("src/main.rs").is_file() {
            binaries.insert(manifest.package.name);
        }
        let bin_dir = dir.join("src/bin");
        for entry in std::fs::read_dir(bin_dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = if path.is_dir() && path.join("main.rs").is_file() {
                path.file_name()
            } else if path.extension().is_some_and(|e| e == "rs") {
                path.file_stem()
            } else {
                None
            };
            binaries.extend(name.and_then(|n| n.to_str()).map(str::to_owned));
        }
    }
    binaries
}

/// Why a buildspec command is neither `make <targets>` nor a workspace binary, if it is not.
fn command_problem(
    command: &str,
    targets: &BTreeSet<String>,
    binaries: &BTreeSet<String>,
) -> Option<String> {
    const SHELL: &[&str] = &["&&", "||", ";", "|", "`", "$(", ">", "<", "\n"];
    if let Some(operator) = SHELL.iter().find(|op| command.contains(**op)) {
        return Some(format!(
            "`{command}`: one command a line, without `{}`",
            operator.escape_default()
        ));
    }
    let mut words = command.split_whitespace();
    let program = words.next()?;
    if program == "make" {
        let goals: Vec<&str> = words
            .filter(|w| !w.starts_with('-') && !w.contains('='))
            .collect();
        if goals.is_empty() {
            return Some(format!("`{command}`: name the Make target"));
        }
        let unknown: Vec<&str> = goals
            .into_iter()
            .filter(|g| !targets.contains(*g))
            .collect();
        return (!unknown.is_empty()).then(|| {
            format!(
                "`{command}`: no such Makefile target: {}",
                unknown.join(", ")
            )
        });
    }
    let (dir, name) = program.rsplit_once('/').unwrap_or(("", program));
    let built_here = dir.is_empty()
        || ["target/debug", "target/release"].contains(&dir.trim_start_matches("./"));
    if built_here && binaries.contains(name) {
        None
    } else {
        Some(format!(
            "`{command}`: `{program}` is neither make nor a binary of the workspace"
        ))
    }
}

/// Whether a path matches a buildspec artifact pattern (`*` within one path segment, `**`
/// across them).
fn matches(pattern: &str, path: &str) -> bool {
    fn segments(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => segments(&p[1..], s) || (!s.is_empty() && segments(p, &s[1..])),
            (Some(pat), Some(seg)) => glob(pat, seg) && segments(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn glob(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, tail)) => {
                text.starts_with(head)
                    && (head.len()..=text.len())
                        .any(|i| text.is_char_boundary(i) && glob(tail, &text[i..]))
            }
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    segments(&p, &s)
}

#[test]
fn every_buildspec_command_is_a_make_target_or_a_workspace_binary() {
    let targets = make_targets();
    let binaries = workspace_binaries();
    let mut problems = Vec::new();
    let dir = workspace_root().join(BUILDSPECS);
    let mut specs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name.ends_with(".yml"))
        .map(|name| format!("{BUILDSPECS}/{name}"))
        .collect();
    specs.sort();
    assert!(!specs.is_empty(), "no buildspec in {BUILDSPECS}");
    for spec in &specs {
        let commands = buildspec_commands(spec);
        if commands.is_empty() {
            problems.push(format!("{spec}: no commands"));
        }
        problems.extend(
            commands
                .iter()
                .filter_map(|c| command_problem(c, &targets, &binaries))
                .map(|p| format!("{spec}: {p}")),
        );
    }

    // Each project runs one of these files, and each file is run by a project.
    let template = Template::load(PIPELINE);
    let used: BTreeSet<String> = template
        .of_type("AWS::CodeBuild::Project")
        .filter_map(|(id, project)| {
            let spec = project
                .get("Properties")
                .and_then(|p| p.get("Source"))
                .and_then(|s| s.get("BuildSpec"))
                .and_then(Value::as_str);
            if spec.is_none_or(|s| !specs.iter().any(|f| f == s)) {
                problems.push(format!(
                    "project {id} runs {spec:?}, not a file of {BUILDSPECS}"
                ));
            }
            spec.map(str::to_owned)
        })
        .collect();
    for spec in specs.iter().filter(|s| !used.contains(*s)) {
        problems.push(format!("{spec}: no project runs it"));
    }

    // The build's artifact holds every file the later stages read from it.
    let stages = stages(&template);
    let build = stage(&stages, "Build").actions_of("CodeBuild");
    let artifact = build
        .iter()
        .flat_map(|a| one_or_many(a.get("OutputArtifacts")))
        .find_map(|a| a.get("Name").and_then(Value::as_str))
        .expect("the build names its output artifact");
    let build_spec = yaml(&buildspec_of(&template, build[0]));
    let files: Vec<String> = one_or_many(build_spec.get("artifacts").and_then(|a| a.get("files")))
        .into_iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    let actions: Vec<&Value> = stages
        .iter()
        .flat_map(|s| s.actions.iter().copied())
        .collect();
    let mut read_later: BTreeSet<String> = actions
        .iter()
        .flat_map(|a| ["TemplatePath", "TemplateConfiguration"].map(|k| configuration(a, k)))
        .flatten()
        .filter_map(text)
        .filter_map(|p| p.strip_prefix(&format!("{artifact}::")))
        .map(str::to_owned)
        .collect();
    // A build that starts from the artifact reads its buildspec, the Makefile, and the
    // binaries its commands name from it.
    let from_artifact = actions.iter().filter(|a| {
        one_or_many(a.get("InputArtifacts"))
            .iter()
            .any(|i| i.get("Name").and_then(Value::as_str) == Some(artifact))
    });
    for action in from_artifact.filter(|a| configuration(a, "ProjectName").is_some()) {
        let spec = buildspec_of(&template, action);
        let commands = buildspec_commands(&spec);
        read_later.extend(
            commands
                .iter()
                .flat_map(|c| c.split_whitespace())
                .map(|w| w.split_once('=').map_or(w, |(_, value)| value))
                .filter(|w| w.starts_with("target/"))
                .map(str::to_owned),
        );
        read_later.extend([spec, "Makefile".to_owned()]);
    }
    for path in read_later {
        if !files.iter().any(|pattern| matches(pattern, &path)) {
            problems.push(format!(
                "{path} is read from the {artifact} artifact, which does not hold it"
            ));
        }
    }
    report("the buildspecs", problems);
}

/// What is wrong with a CloudFormation template configuration file for a template: a
/// parameter it does not have, one without a default left out, a value it does not allow.
fn parameter_file_problems(template: &Template, file: &str) -> Vec<String> {
    let values = parameter_file(file);
    let parameters = template.parameters();
    let mut problems = Vec::new();
    for (name, default) in &parameters {
        if default.is_none() && !values.contains_key(name) {
            problems.push(format!(
                "{file} does not set {name}, which {} gives no default",
                template.path
            ));
        }
    }
    for (name, value) in &values {
        if !parameters.contains_key(name) {
            problems.push(format!(
                "{file} sets {name}, not a parameter of {}",
                template.path
            ));
        }
        if let Some(allowed) = template.allowed_values(name) {
            if !allowed.contains(value) {
                problems.push(format!("{file}: {name}={value} is not one of {allowed:?}"));
            }
        }
    }
    problems
}

/// A template configuration file's `Parameters` (their values must be strings).
fn parameter_file(file: &str) -> BTreeMap<String, String> {
    let json: serde_json::Value = serde_json::from_str(&read(file))
        .unwrap_or_else(|e| panic!("{file} is not valid JSON: {e}"));
    json.get("Parameters")
        .and_then(serde_json::Value::as_object)
        .unwrap_or_else(|| panic!("{file} has no Parameters object"))
        .iter()
        .map(|(name, value)| {
            let value = value.as_str().unwrap_or_else(|| {
                panic!("{file}: {name} must be a string, as CloudFormation reads it")
            });
            (name.clone(), value.to_owned())
        })
        .collect()
}

fn file_tags(file: &str) -> BTreeMap<String, String> {
    let json: serde_json::Value = serde_json::from_str(&read(file)).expect("valid JSON");
    json.get("Tags")
        .and_then(serde_json::Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// The application's parameter files, by environment, as the deploy actions name them.
fn application_parameter_files() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("test", "infra/params/test.json".to_owned()),
        ("prod", "infra/params/prod.json".to_owned()),
    ])
}

#[test]
fn each_parameter_file_sets_every_parameter_without_a_default() {
    let application = Template::load(APPLICATION);
    let pipeline = Template::load(PIPELINE);
    let mut problems = Vec::new();
    let files = application_parameter_files();
    for file in files.values() {
        problems.extend(parameter_file_problems(&application, file));
    }

    let test = parameter_file(&files["test"]);
    let prod = parameter_file(&files["prod"]);
    if test.get("DeploymentType").map(String::as_str) != Some("AllAtOnce") {
        problems.push("the test stack deploys all at once (DeploymentType AllAtOnce)".into());
    }
    let prod_rollout = prod
        .get("DeploymentType")
        .cloned()
        .or_else(|| application.parameters()["DeploymentType"].clone());
    if !prod_rollout
        .as_deref()
        .is_some_and(|t| t.starts_with("Canary"))
    {
        problems.push(format!(
            "production deploys with a canary, not {prod_rollout:?}"
        ));
    }
    // The copy smoke test reads and writes under fanout-smoke/ of the test buckets.
    for prefixed in ["SourcePrefix", "DestinationPrefix", "ReportUrl"] {
        if test.get(prefixed).is_some_and(|v| !v.is_empty()) {
            problems.push(format!(
                "{}: {prefixed} must stay empty: the copy smoke test's grants assume it",
                files["test"]
            ));
        }
    }

    // The pipeline's grants name the test buckets and the Slack secrets: the same as the stacks'.
    let pipeline_values = parameter_file("infra/params/pipeline.json");
    let pipeline_value = |name: &str| {
        pipeline_values
            .get(name)
            .cloned()
            .unwrap_or_else(|| pipeline_parameter_default(&pipeline, name))
    };
    let stack_value = |values: &BTreeMap<String, String>, name: &str| {
        values
            .get(name)
            .cloned()
            .or_else(|| application.parameters()[name].clone())
            .unwrap_or_default()
    };
    for (pipeline_name, values, name) in [
        ("TestSourceBucket", &test, "SourceBucket"),
        ("TestDestinationBucket", &test, "DestinationBucket"),
        (
            "TestSlackSigningSecretParameter",
            &test,
            "SlackSigningSecretParameter",
        ),
        (
            "ProdSlackSigningSecretParameter",
            &prod,
            "SlackSigningSecretParameter",
        ),
    ] {
        let (granted, deployed) = (pipeline_value(pipeline_name), stack_value(values, name));
        if granted != deployed {
            problems.push(format!(
                "infra/params/pipeline.json's {pipeline_name} is {granted:?}, the stack's {name} {deployed:?}"
            ));
        }
    }
    report("the parameter files", problems);
}

#[test]
fn samconfig_test_and_prod_deploy_what_the_pipeline_deploys() {
    let pipeline = Template::load(PIPELINE);
    let application_name = parameter_file("infra/params/pipeline.json")
        .get("ApplicationStackName")
        .cloned()
        .unwrap_or_else(|| pipeline_parameter_default(&pipeline, "ApplicationStackName"));
    let samconfig: toml::Table =
        toml::from_str(&read("infra/samconfig.toml")).expect("samconfig.toml is valid TOML");
    let mut problems = Vec::new();
    for (environment, file) in application_parameter_files() {
        let section = |command: &str| {
            samconfig
                .get(environment)
                .and_then(|e| e.get(command))
                .and_then(|c| c.get("parameters"))
        };
        let stack = section("global")
            .and_then(|p| p.get("stack_name"))
            .and_then(toml::Value::as_str);
        let wanted = format!("{application_name}-{environment}");
        if stack != Some(wanted.as_str()) {
            problems.push(format!(
                "samconfig's {environment} stack is {stack:?}, the pipeline's {wanted}"
            ));
        }
        let deploy = section("deploy");
        let overrides: BTreeMap<String, String> =
            match deploy.and_then(|d| d.get("parameter_overrides")) {
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                    .collect(),
                other => {
                    problems.push(format!(
                    "samconfig's {environment}.deploy has no parameter_overrides list: {other:?}"
                ));
                    continue;
                }
            };
        if overrides != parameter_file(&file) {
            problems.push(format!(
                "samconfig's {environment} parameter_overrides {overrides:?} differ from {file}"
            ));
        }
        let tags: BTreeMap<String, String> = deploy
            .and_then(|d| d.get("tags"))
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        if tags != file_tags(&file) {
            problems.push(format!(
                "samconfig's {environment} tags {tags:?} differ from {file}'s Tags"
            ));
        }
    }
    report("samconfig.toml", problems);
}

/// Whether an IAM action pattern (`iam:Pass*`) covers an action (`iam:PassRole`).
fn action_covers(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match pattern.split_once('*') {
        None => pattern == action,
        Some((head, tail)) => action.starts_with(head) && action[head.len()..].ends_with(tail),
    }
}

/// The policy documents of a template's roles and policies, with where each is.
fn policy_documents(template: &Template) -> Vec<(String, &Value)> {
    let mut documents = Vec::new();
    for (id, role) in template.of_type("AWS::IAM::Role") {
        let policies = one_or_many(role.get("Properties").and_then(|p| p.get("Policies")));
        for policy in policies {
            let name = policy.get("PolicyName").map(scalar).unwrap_or_default();
            if let Some(document) = policy.get("PolicyDocument") {
                documents.push((format!("{}: {id} ({name})", template.path), document));
            }
        }
    }
    for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        for (id, policy) in template.of_type(kind) {
            if let Some(document) = policy
                .get("Properties")
                .and_then(|p| p.get("PolicyDocument"))
            {
                documents.push((format!("{}: {id}", template.path), document));
            }
        }
    }
    documents
}

fn iam_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, role) in template.of_type("AWS::IAM::Role") {
        let managed = one_or_many(
            role.get("Properties")
                .and_then(|p| p.get("ManagedPolicyArns")),
        );
        for arn in managed.into_iter().filter_map(text) {
            if ["AdministratorAccess", "PowerUserAccess", "IAMFullAccess"]
                .iter()
                .any(|broad| arn.ends_with(&format!("/{broad}")))
            {
                problems.push(format!("{}: {id} attaches {arn}", template.path));
            }
        }
    }
    for (place, document) in policy_documents(template) {
        for statement in one_or_many(document.get("Statement")) {
            if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                continue;
            }
            if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
                problems.push(format!("{place}: an Allow with NotAction/NotResource"));
            }
            let actions: Vec<String> = one_or_many(statement.get("Action"))
                .into_iter()
                .map(scalar)
                .collect();
            for action in &actions {
                if action == "*" || action.ends_with(":*") {
                    problems.push(format!("{place}: grants the action {action}"));
                }
            }
            let on_everything = one_or_many(statement.get("Resource"))
                .into_iter()
                .any(|r| r.as_str() == Some("*"));
            for guarded in ["iam:PassRole", "sts:AssumeRole"] {
                if on_everything && actions.iter().any(|a| action_covers(a, guarded)) {
                    problems.push(format!("{place}: {guarded} on Resource '*'"));
                }
            }
        }
    }
    problems
}

#[test]
fn no_role_or_policy_grants_everything_or_passes_any_role() {
    let mut problems = Vec::new();
    let mut documents = 0;
    for path in [PIPELINE, COMPLIANCE] {
        let template = Template::load(path);
        documents += policy_documents(&template).len();
        problems.extend(iam_problems(&template));
    }
    assert!(documents > 0, "no IAM policy found: the test reads nothing");
    report("IAM grants", problems);
}

#[test]
fn the_iam_check_finds_what_it_forbids() {
    let broken = Template {
        path: "a broken template",
        root: serde_yaml::from_str(
            r#"
Resources:
  Everything:
    Type: AWS::IAM::Role
    Properties:
      ManagedPolicyArns: [!Sub "arn:${AWS::Partition}:iam::aws:policy/AdministratorAccess"]
      Policies:
        - PolicyName: all
          PolicyDocument:
            Statement:
              - { Effect: Allow, Action: "*", Resource: "*" }
              - { Effect: Allow, Action: [s3:*], Resource: !Sub "arn:${AWS::Partition}:s3:::b" }
              - Effect: Allow
                Action: [iam:PassRole, sts:AssumeRole]
                Resource: ["*"]
  Loose:
    Type: AWS::IAM::Policy
    Properties:
      PolicyDocument:
        Statement:
          - !If [C, { Effect: Allow, Action: "iam:Pass*", Resource: "*" }, !Ref AWS::NoValue]
"#,
        )
        .expect("valid YAML"),
    };
    let problems = iam_problems(&broken);
    for expected in [
        "AdministratorAccess",
        "grants the action *",
        "grants the action s3:*",
        "Everything (all): iam:PassRole on Resource '*'",
        "Everything (all): sts:AssumeRole on Resource '*'",
        "Loose: iam:PassRole on Resource '*'",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "not found: {expected}; found {problems:#?}"
        );
    }
}

#[test]
fn a_command_outside_make_and_the_workspace_is_refused() {
    let targets = BTreeSet::from(["test".to_owned()]);
    let binaries = BTreeSet::from(["fanout-smoke".to_owned()]);
    for (command, allowed) in [
        ("make test", true),
        ("make test STACK=$STACK", true),
        ("target/debug/fanout-smoke --stack x", true),
        ("fanout-smoke --stack x", true),
        ("make tset", false),
        ("make", false),
        ("curl https://example.com", false),
        ("make test && rm -rf /", false),
        ("/usr/bin/fanout-smoke", false),
    ] {
        assert_eq!(
            command_problem(command, &targets, &binaries).is_none(),
            allowed,
            "{command}"
        );
    }
    assert!(matches("infra/params/*.json", "infra/params/test.json"));
    assert!(matches("target/**/*", "target/debug/fanout-smoke"));
    assert!(!matches("infra/params/*.json", "infra/pipeline.yaml"));
}

#[test]
fn the_compliance_stack_validates_its_trail_and_checks_encryption_and_concurrency() {
    let template = Template::load(COMPLIANCE);
    let mut problems = Vec::new();
    let trails: Vec<_> = template.of_type("AWS::CloudTrail::Trail").collect();
    for (id, trail) in &trails {
        let properties = trail.get("Properties");
        let property = |name: &str| properties.and_then(|p| p.get(name));
        if property("EnableLogFileValidation").and_then(Value::as_bool) != Some(true) {
            problems.push(format!("{id}: EnableLogFileValidation"));
        }
        if property("KMSKeyId").is_none() {
            problems.push(format!("{id}: no KMSKeyId"));
        }
        let bucket = property("S3BucketName").and_then(|b| template.referenced(b));
        let encrypted = bucket
            .and_then(|b| b.get("Properties"))
            .and_then(|p| p.get("BucketEncryption"))
            .is_some();
        if !encrypted {
            problems.push(format!(
                "{id}: its bucket is not this stack's encrypted bucket"
            ));
        }
    }
    if trails.len() != 1 {
        problems.push(format!("{} trails, not one", trails.len()));
    }
    let rules: BTreeSet<String> = template
        .of_type("AWS::Config::ConfigRule")
        .filter_map(|(_, rule)| {
            let source = rule.get("Properties")?.get("Source")?;
            Some(scalar(source.get("SourceIdentifier")?))
        })
        .collect();
    for wanted in [
        "LAMBDA_CONCURRENCY_CHECK",
        "DYNAMODB_TABLE_ENCRYPTED_KMS",
        "SNS_ENCRYPTED_KMS",
    ] {
        if !rules.contains(wanted) {
            problems.push(format!("no AWS Config rule {wanted}"));
        }
    }
    report("the compliance stack", problems);
}
