//! Business metrics in CloudWatch's embedded metric format (EMF).
//!
//! Once per invocation a function writes one JSON object, alone on its line, to stdout: the
//! metrics of what it did (messages counted, records failed, bytes copied…) and a `Failures`
//! metric, which its deployment alarm watches. CloudWatch Logs extracts them into the namespace
//! `fanout`, by `FunctionName` and `Version`, so that the alarms of a canary deployment see the
//! new version's own failures (docs/metrics.md).
//!
//! Lambda sends what a function writes to stdout to its log group. With the JSON log format
//! (`AWS_LAMBDA_LOG_FORMAT=JSON`) a custom runtime's application output is not reformatted, and
//! a log line that is already a JSON object is never encoded again, so the line reaches
//! CloudWatch Logs as the EMF document it is; CloudWatch Logs extracts metrics from any log
//! event that follows the specification, with no agent in Lambda.
//!
//! [`validate`] checks a line against the specification (members, types, limits) and
//! [`Captured`] hands the tests what a handler emitted, validated.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::Vars;

/// The CloudWatch namespace of every fanout metric.
pub const NAMESPACE: &str = "fanout";
/// The dimension naming the function (`AWS_LAMBDA_FUNCTION_NAME`).
pub const FUNCTION_NAME: &str = "FunctionName";
/// The dimension naming the function's version (`AWS_LAMBDA_FUNCTION_VERSION`).
pub const VERSION: &str = "Version";
/// The metric every function emits once per invocation: its business failures, 0 when none.
pub const FAILURES: &str = "Failures";
/// The version of a function outside a published version (local runs, tests).
pub const LATEST: &str = "$LATEST";

/// The names of the metrics beside `Failures` (docs/metrics.md says which function emits which).
pub mod names {
    /// Messages whose words were counted (slack-counter) or multiplied (sns-multiplier) now.
    pub const MESSAGES_COUNTED: &str = "MessagesCounted";
    /// slack-counter: requests answered with a 4xx (bad signature, bad token, bad body).
    pub const REQUESTS_REFUSED: &str = "RequestsRefused";
    /// slack-counter: requests answered with a 5xx.
    pub const SERVER_ERRORS: &str = "ServerErrors";
    /// SNS messages or SQS records that failed, to be delivered again (batch item failures).
    pub const RECORDS_FAILED: &str = "RecordsFailed";
    /// sns-multiplier: messages that can never be applied, sent to the dead-letter queue.
    pub const MESSAGES_DEAD_LETTERED: &str = "MessagesDeadLettered";
    /// slack-replier: replies and slash commands' answers posted to Slack.
    pub const REPLIES_POSTED: &str = "RepliesPosted";
    /// slack-replier: posts Slack refused for good.
    pub const REPLIES_REFUSED: &str = "RepliesRefused";
    /// sns-logger: messages logged.
    pub const MESSAGES_LOGGED: &str = "MessagesLogged";
    /// s3-fanout: invocations that returned an error.
    pub const RUNS_FAILED: &str = "RunsFailed";
    /// s3-fanout: copy jobs published.
    pub const JOBS_ENQUEUED: &str = "JobsEnqueued";
    /// s3-copier: objects copied.
    pub const OBJECTS_COPIED: &str = "ObjectsCopied";
    /// s3-copier: bytes of the objects copied.
    pub const BYTES_COPIED: &str = "BytesCopied";
    /// s3-copier: objects whose copy failed for good.
    pub const COPIES_FAILED: &str = "CopiesFailed";
}

/// A count kept while an invocation's records are handled at once.
#[derive(Debug, Default)]
pub struct Tally(std::sync::atomic::AtomicU64);

impl Tally {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The documented limits of an EMF document.
pub mod limits {
    /// Metric definitions in one directive.
    pub const METRICS_PER_DIRECTIVE: usize = 100;
    /// Dimension keys in one dimension set.
    pub const DIMENSIONS_PER_SET: usize = 30;
    /// A namespace's, a metric's or a dimension's name, in characters.
    pub const NAME_LENGTH: usize = 255;
    /// A dimension's value, in characters.
    pub const DIMENSION_VALUE_LENGTH: usize = 1024;
    /// Values in a metric's array.
    pub const VALUES_PER_METRIC: usize = 100;
    /// A whole log event, in bytes (the smaller of the limits CloudWatch Logs has documented).
    pub const EVENT_BYTES: usize = 256 * 1024;
}

/// The units CloudWatch accepts.
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
}

impl Unit {
    /// The name CloudWatch reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One metric of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub value: u64,
}

impl Metric {
    pub const fn count(name: &'static str, value: u64) -> Metric {
        Metric {
            name,
            unit: Unit::Count,
            value,
        }
    }

    pub const fn bytes(name: &'static str, value: u64) -> Metric {
        Metric {
            name,
            unit: Unit::Bytes,
            value,
        }
    }
}

/// Where the lines go.
#[derive(Clone)]
enum Sink {
    Stdout,
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// A function's metrics writer: its dimensions, read once at init, and where its lines go.
#[derive(Clone)]
pub struct Metrics {
    function_name: String,
    version: String,
    sink: Sink,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("function_name", &self.function_name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Writes to stdout, with the dimensions Lambda sets (`AWS_LAMBDA_FUNCTION_NAME`,
    /// `AWS_LAMBDA_FUNCTION_VERSION`); without them (tests, local runs), `binary` and `$LATEST`.
    pub fn from_vars(vars: &Vars, binary: &str) -> Metrics {
        Metrics {
            function_name: vars
                .optional("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| binary.to_owned()),
            version: vars
                .optional("AWS_LAMBDA_FUNCTION_VERSION")
                .unwrap_or_else(|| LATEST.to_owned()),
            sink: Sink::Stdout,
        }
    }

    /// [`Metrics::from_vars`] over the process environment.
    pub fn from_env(binary: &str) -> Metrics {
        Metrics::from_vars(&Vars::process(), binary)
    }

    /// Writes to memory, for tests: the lines are read from the [`Captured`].
    pub fn captured(binary: &str) -> (Metrics, Captured) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let metrics = Metrics {
            function_name: binary.to_owned(),
            version: LATEST.to_owned(),
            sink: Sink::Memory(buffer.clone()),
        };
        let captured = Captured {
            buffer,
            function_name: binary.to_owned(),
        };
        (metrics, captured)
    }

    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The EMF document of one invocation at `timestamp_ms`: `Failures` and `metrics`.
    pub fn document(&self, failures: u64, metrics: &[Metric], timestamp_ms: u64) -> Value {
        let all: Vec<Metric> = std::iter::once(Metric::count(FAILURES, failures))
            .chain(metrics.iter().copied())
            .collect();
        let definitions: Vec<Value> = all
            .iter()
            .map(|metric| json!({ "Name": metric.name, "Unit": metric.unit.as_str() }))
            .collect();
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[FUNCTION_NAME, VERSION]],
                    "Metrics": definitions,
                }],
            }),
        );
        document.insert(FUNCTION_NAME.into(), self.function_name.clone().into());
        document.insert(VERSION.into(), self.version.clone().into());
        for metric in all {
            let previous = document.insert(metric.name.into(), metric.value.into());
            debug_assert!(previous.is_none(), "{} is emitted twice", metric.name);
        }
        Value::Object(document)
    }

    /// Writes this invocation's line: `Failures` (0 when none) and `metrics`.
    pub fn emit(&self, failures: u64, metrics: &[Metric]) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let timestamp_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let document = self.document(failures, metrics, timestamp_ms);
        let written = match &self.sink {
            // One line, written whole under the lock, so that no log line lands inside it.
            Sink::Stdout => write_line(&mut std::io::stdout().lock(), &document),
            Sink::Memory(buffer) => write_line(
                &mut *buffer.lock().unwrap_or_else(PoisonError::into_inner),
                &document,
            ),
        };
        if let Err(error) = written {
            tracing::warn!(%error, "the metrics line could not be written");
        }
    }
}

fn write_line(out: &mut impl Write, document: &Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, document)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// The lines a [`Metrics::captured`] wrote.
#[derive(Clone)]
pub struct Captured {
    buffer: Arc<Mutex<Vec<u8>>>,
    function_name: String,
}

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// Takes what was written since the last call: exactly one line (one invocation's), checked
    /// against the specification and the project's contract ([`check_contract`]), with the
    /// dimensions of a function outside Lambda (its binary's name, `$LATEST`). Panics with the
    /// reason otherwise: it is for tests.
    pub fn take_one(&self) -> Value {
        let text = {
            let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
            let text = String::from_utf8_lossy(&buffer).into_owned();
            buffer.clear();
            text
        };
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.len() == 1 && text.ends_with('\n'),
            "one metrics line per invocation, alone on its line; got {text:?}"
        );
        let document = validate(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]));
        check_contract(&document).unwrap_or_else(|e| panic!("{e}: {}", lines[0]));
        assert_eq!(
            (&document[FUNCTION_NAME], &document[VERSION]),
            (&json!(self.function_name), &json!(LATEST)),
            "the dimensions"
        );
        document
    }

    /// [`Captured::take_one`]'s values of the metrics `names`, in their order.
    pub fn take_counts<const N: usize>(&self, names: [&str; N]) -> [u64; N] {
        let document = self.take_one();
        names.map(|name| {
            document[name]
                .as_u64()
                .unwrap_or_else(|| panic!("no count {name} in {document}"))
        })
    }
}

/// Why a line is not an EMF document, or not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(reason: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(reason.into()))
}

/// How far from now CloudWatch takes a metric's timestamp: up to two weeks before, two hours
/// after.
const PAST: Duration = Duration::from_secs(14 * 24 * 3600);
const FUTURE: Duration = Duration::from_secs(2 * 3600);

/// Checks one log line against CloudWatch's embedded metric format specification: a JSON object
/// and nothing else; `_aws` with a `Timestamp` (epoch milliseconds, in the range CloudWatch
/// takes) and `CloudWatchMetrics` directives, none with members the specification does not
/// define; each directive's `Namespace`, its dimension sets and metric definitions within their
/// limits and names, and every dimension and metric it names a member of the root (a string, a
/// number or an array of numbers). Returns the parsed document.
pub fn validate(line: &str) -> Result<Value, Invalid> {
    if line.len() > limits::EVENT_BYTES {
        return invalid(format!(
            "{} bytes, over the {} of a log event",
            line.len(),
            limits::EVENT_BYTES
        ));
    }
    if line.trim() != line || line.contains('\n') || !line.starts_with('{') {
        return invalid("the log event is not a JSON object alone on its line");
    }
    let document: Value =
        serde_json::from_str(line).or_else(|e| invalid(format!("not JSON: {e}")))?;
    let Some(root) = document.as_object() else {
        return invalid("the root is not an object");
    };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
        return invalid("no _aws object at the root");
    };
    only_members(
        aws,
        "_aws",
        &["Timestamp", "CloudWatchMetrics", "LogGroupName"],
    )?;
    let Some(timestamp) = aws.get("Timestamp").and_then(Value::as_u64) else {
        return invalid("_aws.Timestamp is not a whole number of milliseconds");
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (earliest, latest) = (now.saturating_sub(PAST), now + FUTURE);
    if !(earliest.as_millis()..=latest.as_millis()).contains(&u128::from(timestamp)) {
        return invalid(format!(
            "_aws.Timestamp {timestamp} is not epoch milliseconds within two weeks before and two hours after now"
        ));
    }
    if let Some(group) = aws.get("LogGroupName") {
        if !group.is_string() {
            return invalid("_aws.LogGroupName is not a string");
        }
    }
    let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
        return invalid("_aws.CloudWatchMetrics is not an array");
    };
    if directives.is_empty() {
        return invalid("_aws.CloudWatchMetrics has no directive");
    }
    for (i, directive) in directives.iter().enumerate() {
        directive_is_valid(root, directive)
            .map_err(|Invalid(why)| Invalid(format!("CloudWatchMetrics[{i}]: {why}")))?;
    }
    Ok(document)
}

fn directive_is_valid(root: &Map<String, Value>, directive: &Value) -> Result<(), Invalid> {
    let Some(directive) = directive.as_object() else {
        return invalid("not an object");
    };
    only_members(
        directive,
        "the directive",
        &["Namespace", "Dimensions", "Metrics"],
    )?;
    match directive.get("Namespace").and_then(Value::as_str) {
        Some(namespace) => name_is_valid("Namespace", namespace)?,
        None => return invalid("Namespace is not a string"),
    }
    let Some(sets) = directive.get("Dimensions").and_then(Value::as_array) else {
        return invalid("Dimensions is not an array");
    };
    let mut dimensions = Vec::new();
    for set in sets {
        let Some(set) = set.as_array() else {
            return invalid("a dimension set is not an array");
        };
        if set.is_empty() || set.len() > limits::DIMENSIONS_PER_SET {
            return invalid(format!(
                "a dimension set has {} keys, not 1 to {}",
                set.len(),
                limits::DIMENSIONS_PER_SET
            ));
        }
        for key in set {
            let Some(key) = key.as_str() else {
                return invalid("a dimension key is not a string");
            };
            name_is_valid("a dimension", key)?;
            match root.get(key).and_then(Value::as_str) {
                Some(value)
                    if !value.trim().is_empty()
                        && value.chars().count() <= limits::DIMENSION_VALUE_LENGTH => {}
                Some(_) => {
                    return invalid(format!(
                        "dimension {key}'s value is blank or over {} characters",
                        limits::DIMENSION_VALUE_LENGTH
                    ))
                }
                None => {
                    return invalid(format!("dimension {key} has no string member at the root"))
                }
            }
            dimensions.push(key);
        }
    }
    let Some(metrics) = directive.get("Metrics").and_then(Value::as_array) else {
        return invalid("Metrics is not an array");
    };
    if metrics.is_empty() || metrics.len() > limits::METRICS_PER_DIRECTIVE {
        return invalid(format!(
            "{} metric definitions, not 1 to {}",
            metrics.len(),
            limits::METRICS_PER_DIRECTIVE
        ));
    }
    let mut names = Vec::new();
    for definition in metrics {
        let Some(definition) = definition.as_object() else {
            return invalid("a metric definition is not an object");
        };
        only_members(
            definition,
            "a metric definition",
            &["Name", "Unit", "StorageResolution"],
        )?;
        let Some(name) = definition.get("Name").and_then(Value::as_str) else {
            return invalid("a metric definition's Name is not a string");
        };
        name_is_valid("a metric", name)?;
        if names.contains(&name) || dimensions.contains(&name) {
            return invalid(format!("{name} is defined twice"));
        }
        names.push(name);
        if let Some(unit) = definition.get("Unit") {
            if !unit.as_str().is_some_and(|unit| UNITS.contains(&unit)) {
                return invalid(format!("{name}'s Unit {unit} is not a CloudWatch unit"));
            }
        }
        if let Some(resolution) = definition.get("StorageResolution") {
            if !matches!(resolution.as_u64(), Some(1 | 60)) {
                return invalid(format!("{name}'s StorageResolution is not 1 or 60"));
            }
        }
        match root.get(name) {
            Some(Value::Number(_)) => {}
            Some(Value::Array(values))
                if !values.is_empty()
                    && values.len() <= limits::VALUES_PER_METRIC
                    && values.iter().all(Value::is_number) => {}
            _ => {
                return invalid(format!(
                    "metric {name} has no number (or array of up to {} numbers) at the root",
                    limits::VALUES_PER_METRIC
                ))
            }
        }
    }
    Ok(())
}

fn only_members(object: &Map<String, Value>, what: &str, allowed: &[&str]) -> Result<(), Invalid> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => invalid(format!(
            "{what} has a member the specification does not define: {key}"
        )),
        None => Ok(()),
    }
}

/// A name CloudWatch takes: 1 to 255 ASCII characters, not all blank, no control character, not
/// starting with a colon.
fn name_is_valid(what: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty()
        || name.len() > limits::NAME_LENGTH
        || name.trim().is_empty()
        || name.starts_with(':')
        || !name.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
    {
        return invalid(format!(
            "{what} name {name:?} is not 1 to {} printable ASCII characters (not starting with ':')",
            limits::NAME_LENGTH
        ));
    }
    Ok(())
}

/// Checks what the deployment alarms rely on: one directive in the namespace `fanout`, with the
/// one dimension set `[FunctionName, Version]`, and a `Failures` count among its metrics.
pub fn check_contract(document: &Value) -> Result<(), Invalid> {
    let directives = &document["_aws"]["CloudWatchMetrics"];
    if directives.as_array().map(Vec::len) != Some(1) {
        return invalid("not exactly one directive");
    }
    let directive = &directives[0];
    if directive["Namespace"] != NAMESPACE {
        return invalid(format!("the namespace is not {NAMESPACE}"));
    }
    if directive["Dimensions"] != json!([[FUNCTION_NAME, VERSION]]) {
        return invalid(format!(
            "the dimensions are not [[{FUNCTION_NAME}, {VERSION}]]"
        ));
    }
    let failures = (directive["Metrics"].as_array().into_iter().flatten())
        .find(|definition| definition["Name"] == FAILURES);
    match failures {
        Some(definition) if definition["Unit"] == "Count" && document[FAILURES].is_u64() => Ok(()),
        _ => invalid(format!("no {FAILURES} count")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    fn sample() -> Value {
        let metrics = Metrics::from_vars(
            &Vars::from_pairs([
                ("AWS_LAMBDA_FUNCTION_NAME", "fanout-S3CopierFunction-AbC123"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
            ]),
            "s3-copier",
        );
        metrics.document(
            2,
            &[
                Metric::count("ObjectsCopied", 3),
                Metric::bytes("BytesCopied", 5_000_000_000),
            ],
            now_ms(),
        )
    }

    #[test]
    fn a_document_is_valid_and_names_its_function_and_version() {
        let document = sample();
        let line = serde_json::to_string(&document).unwrap();
        assert_eq!(validate(&line).unwrap(), document);
        check_contract(&document).unwrap();
        assert_eq!(document["FunctionName"], "fanout-S3CopierFunction-AbC123");
        assert_eq!(document["Version"], "7");
        assert_eq!(document["Failures"], 2);
        assert_eq!(document["BytesCopied"], 5_000_000_000_u64);
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "fanout");
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "Failures", "Unit": "Count"},
                {"Name": "ObjectsCopied", "Unit": "Count"},
                {"Name": "BytesCopied", "Unit": "Bytes"},
            ])
        );
    }

    #[test]
    fn without_the_lambda_variables_the_binary_and_latest() {
        let metrics = Metrics::from_vars(&Vars::from_pairs([]), "sns-logger");
        assert_eq!(
            (metrics.function_name(), metrics.version()),
            ("sns-logger", "$LATEST")
        );
        let blank = Vars::from_pairs([("AWS_LAMBDA_FUNCTION_VERSION", " ")]);
        assert_eq!(Metrics::from_vars(&blank, "x").version(), "$LATEST");
    }

    #[test]
    fn an_emitted_line_is_captured_whole_once_per_call() {
        let (metrics, captured) = Metrics::captured("slack-counter");
        metrics.emit(0, &[Metric::count("MessagesCounted", 1)]);
        let document = captured.take_one();
        assert_eq!(document["MessagesCounted"], 1);
        assert_eq!(document["Failures"], 0);
        let timestamp = document["_aws"]["Timestamp"].as_u64().unwrap();
        assert!(now_ms().abs_diff(timestamp) < 60_000, "{timestamp}");
        assert_eq!(captured.text(), "", "taken");
        metrics.emit(1, &[]);
        metrics.emit(1, &[]);
        let twice = std::panic::catch_unwind(|| captured.take_one());
        assert!(twice.is_err(), "two lines are two invocations");
    }

    fn remove(document: &mut Value, key: &str) {
        document.as_object_mut().unwrap().remove(key);
    }

    /// Breaks one thing at a time in a valid document: every one must be refused, for the
    /// reason given.
    #[test]
    fn the_validator_refuses_what_the_specification_does_not_allow() {
        type Breakage = Box<dyn Fn(&mut Value)>;
        let breakages: Vec<(&str, Breakage)> = vec![
            ("no _aws object", Box::new(|d| remove(d, "_aws"))),
            (
                "Timestamp",
                Box::new(|d| d["_aws"]["Timestamp"] = json!("now")),
            ),
            (
                "Timestamp",
                Box::new(|d| d["_aws"]["Timestamp"] = json!(now_ms() / 1000)),
            ),
            (
                "Timestamp",
                Box::new(|d| remove(&mut d["_aws"], "Timestamp")),
            ),
            (
                "does not define: Extra",
                Box::new(|d| d["_aws"]["Extra"] = json!(1)),
            ),
            (
                "not an array",
                Box::new(|d| d["_aws"]["CloudWatchMetrics"] = json!({})),
            ),
            (
                "no directive",
                Box::new(|d| d["_aws"]["CloudWatchMetrics"] = json!([])),
            ),
            (
                "Namespace",
                Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!(7)),
            ),
            (
                "Namespace name",
                Box::new(|d| {
                    d["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!("n".repeat(256))
                }),
            ),
            (
                "dimension set is not an array",
                Box::new(|d| {
                    d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!(["FunctionName"])
                }),
            ),
            (
                "dimension FunctionName has no string",
                Box::new(|d| d["FunctionName"] = json!(1)),
            ),
            (
                "dimension Version has no string",
                Box::new(|d| remove(d, "Version")),
            ),
            ("blank", Box::new(|d| d["Version"] = json!(" "))),
            (
                "keys, not 1 to 30",
                Box::new(|d| {
                    let keys: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
                    for key in &keys {
                        d[key.as_str()] = json!("v");
                    }
                    d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([keys]);
                }),
            ),
            (
                "metric definitions, not 1 to 100",
                Box::new(|d| {
                    let names: Vec<Value> = (0..101)
                        .map(|i| {
                            d[format!("M{i}").as_str()] = json!(i);
                            json!({"Name": format!("M{i}")})
                        })
                        .collect();
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!(names);
                }),
            ),
            (
                "metric definitions, not 1 to 100",
                Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!([])),
            ),
            (
                "metric name",
                Box::new(|d| {
                    let long = "m".repeat(256);
                    d[long.as_str()] = json!(1);
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"] = json!(long);
                }),
            ),
            (
                "metric ObjectsCopied has no number",
                Box::new(|d| d["ObjectsCopied"] = json!("3")),
            ),
            (
                "metric BytesCopied has no number",
                Box::new(|d| remove(d, "BytesCopied")),
            ),
            (
                "metric ObjectsCopied has no number",
                Box::new(|d| d["ObjectsCopied"] = json!([1, "2"])),
            ),
            (
                "not a CloudWatch unit",
                Box::new(|d| {
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"] = json!("Objects")
                }),
            ),
            (
                "StorageResolution",
                Box::new(|d| {
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["StorageResolution"] = json!(5)
                }),
            ),
            (
                "does not define: Value",
                Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Value"] = json!(3)),
            ),
            (
                "defined twice",
                Box::new(|d| {
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"] = json!("Failures")
                }),
            ),
            (
                "defined twice",
                Box::new(|d| {
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"] = json!("Version")
                }),
            ),
        ];
        for (reason, breakage) in &breakages {
            let mut document = sample();
            breakage(&mut document);
            let line = serde_json::to_string(&document).unwrap();
            let err = validate(&line).expect_err(reason);
            assert!(err.0.contains(reason), "{reason:?} not in {err:?}");
        }
        let line = serde_json::to_string(&sample()).unwrap();
        for framed in [
            format!(" {line}"),
            format!("{line} extra"),
            format!("INFO {line}"),
            line.replace(',', ",\n"),
        ] {
            assert!(validate(&framed).is_err(), "{framed:.40}");
        }
        let big = json!({"_aws": sample()["_aws"], "pad": "x".repeat(limits::EVENT_BYTES)});
        assert!(validate(&big.to_string())
            .unwrap_err()
            .0
            .contains("log event"));
    }

    #[test]
    fn the_contract_wants_fanout_function_and_version_and_failures() {
        let valid = sample();
        check_contract(&valid).unwrap();
        let mut other = valid.clone();
        other["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!("other");
        assert!(check_contract(&other).is_err());
        let mut dims = valid.clone();
        dims["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([["FunctionName"]]);
        assert!(check_contract(&dims).is_err());
        let mut without = Metrics::captured("x").0.document(0, &[], now_ms());
        without["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!([]);
        assert!(check_contract(&without).is_err());
    }
}
