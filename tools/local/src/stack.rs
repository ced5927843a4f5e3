//! The local stack: moto server, the resources the template defines, the real function binaries
//! under `cargo lambda watch`, and pollers that deliver queue and topic messages to functions the
//! way Lambda's event sources do.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use fanout_tests::{workspace_root, Emulator};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::template::{queue_arn, topic_arn, Plan, Trigger, ACCOUNT, REGION};

/// Template parameters as the local stack sets them.
pub const LOCAL_PARAMETERS: &[(&str, &str)] = &[
    (
        "SlackSigningSecretParameter",
        "/fanout/local/slack-signing-secret",
    ),
    (
        "SlackVerificationTokenParameter",
        "/fanout/local/slack-verification-token",
    ),
    ("SourceBucket", "fanout-local-source"),
    ("DestinationBucket", "fanout-local-backup"),
    ("CopyMultipartThreshold", "8MiB"),
    ("CopyPartSize", "5MiB"),
];

/// The Slack credentials stored in the local SSM parameters.
pub const SIGNING_SECRET: &str = "local-signing-secret";
pub const VERIFICATION_TOKEN: &str = "local-verification-token";

/// How long one invocation may take; the first one of each function includes compiling it.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Delivers events to the functions running under `cargo lambda watch`.
#[derive(Clone)]
pub struct Invoker {
    http: reqwest::Client,
    base: String,
}

impl Invoker {
    /// Invokes a function synchronously, as the Lambda Invoke API does.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.base
            ))
            .header("content-type", "application/json")
            .body(payload.to_string())
            .timeout(INVOKE_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("invoking {function}: {e}"))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response
            .text()
            .await
            .map_err(|e| format!("reading {function}'s answer: {e}"))?;
        if !status.is_success() || function_error {
            return Err(format!("{function} failed ({status}): {body}"));
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body)
            .map_err(|e| format!("{function} answered something that is not JSON ({e}): {body}"))
    }
}

pub struct Stack {
    pub plan: Plan,
    pub sdk: SdkConfig,
    pub endpoint: String,
    pub invoker: Invoker,
    pub http: reqwest::Client,
    /// `cargo lambda watch`'s address.
    pub watch_url: String,
    /// The lines `cargo lambda watch` and the functions printed so far.
    pub logs: Arc<Mutex<Vec<String>>>,
    queue_urls: BTreeMap<String, String>,
    watch: Child,
    pollers: Vec<JoinHandle<()>>,
    _emulator: Emulator,
}

impl Stack {
    /// Starts everything. With `echo`, the functions' output is printed as it comes.
    pub async fn start(plan: Plan, echo: bool) -> Result<Stack, String> {
        println!("▸ starting moto server (the AWS emulator)…");
        let emulator = tokio::task::spawn_blocking(Emulator::start)
            .await
            .map_err(|e| format!("the emulator did not start: {e}"))?;
        let endpoint = emulator.endpoint.clone();
        let sdk = emulator.sdk_config().await;
        println!("  moto server at {endpoint}");

        println!("▸ creating the resources of infra/template.yaml…");
        let queue_urls = create_resources(&plan, &sdk).await?;

        let port = free_port()?;
        let watch_url = format!("http://127.0.0.1:{port}");
        let env_file = write_env_file(&plan, &endpoint, &watch_url)?;
        println!("▸ starting cargo lambda watch on {watch_url} (the real function binaries)…");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let watch = start_watch(port, &env_file, logs.clone(), echo)?;
        wait_for_port(port, Duration::from_secs(120)).await?;

        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let invoker = Invoker {
            http: http.clone(),
            base: watch_url.clone(),
        };
        let mut stack = Stack {
            plan,
            sdk,
            endpoint,
            invoker,
            http,
            watch_url,
            logs,
            queue_urls,
            watch,
            pollers: Vec::new(),
            _emulator: emulator,
        };
        stack.warm_up().await;
        stack.start_pollers().await?;
        Ok(stack)
    }

    /// The queue URL of a template queue, or of a subscription queue the stack made.
    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.queue_urls.get(logical_id).map(String::as_str)
    }

    /// The function URL of the function behind the template's HTTP route.
    pub fn slack_url(&self) -> Option<String> {
        self.plan.functions.iter().find_map(|f| {
            f.triggers
                .iter()
                .any(|t| matches!(t, Trigger::Http { .. }))
                .then(|| format!("{}/lambda-url/{}/", self.watch_url, f.binary))
        })
    }

    /// Starts every function once, so that compiling it (cargo lambda watch builds a function on
    /// its first invocation) happens before any real event arrives. The warm-up event is empty;
    /// the functions refuse it, which is all this needs.
    async fn warm_up(&self) {
        println!("▸ building and starting the functions (the first time takes a few minutes)…");
        for function in &self.plan.functions {
            let started = std::time::Instant::now();
            let _ = self.invoker.invoke(&function.binary, &json!({})).await;
            println!(
                "  {} ready ({:.1} s)",
                function.binary,
                started.elapsed().as_secs_f64()
            );
        }
    }

    async fn start_pollers(&mut self) -> Result<(), String> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        for function in self.plan.functions.clone() {
            for trigger in &function.triggers {
                let poller = match trigger {
                    Trigger::Sqs {
                        queue,
                        batch_size,
                        report_failures,
                    } => {
                        let queue = self
                            .plan
                            .queue(queue)
                            .ok_or_else(|| format!("no queue {queue}"))?
                            .clone();
                        let url = self
                            .queue_url(&queue.logical_id)
                            .unwrap_or_default()
                            .to_owned();
                        println!("  {} ──> {}", queue.logical_id, function.binary);
                        Poller {
                            sqs: sqs.clone(),
                            invoker: self.invoker.clone(),
                            function: function.binary.clone(),
                            queue_url: url,
                            source: Source::Sqs {
                                queue_arn: queue_arn(&queue.name),
                                batch_size: (*batch_size).clamp(1, 10) as i32,
                                report_failures: *report_failures,
                            },
                        }
                    }
                    Trigger::Sns { topic } => {
                        let topic = self
                            .plan
                            .topic(topic)
                            .ok_or_else(|| format!("no topic {topic}"))?
                            .clone();
                        // Lambda subscribes the function itself; locally a queue stands in for
                        // the subscription and the poller turns its messages into SNS events.
                        let name = format!("{}-from-{}", function.binary, topic.logical_id);
                        let url = create_queue(&sqs, &name, None, None).await?;
                        sns.subscribe()
                            .topic_arn(topic_arn(&topic.name))
                            .protocol("sqs")
                            .endpoint(queue_arn(&name))
                            .send()
                            .await
                            .map_err(|e| format!("subscribing {name}: {e}"))?;
                        let failure_queue = function
                            .failure_queue
                            .as_ref()
                            .and_then(|q| self.queue_url(q))
                            .map(str::to_owned);
                        println!("  {} ──> {}", topic.logical_id, function.binary);
                        self.queue_urls.insert(name, url.clone());
                        Poller {
                            sqs: sqs.clone(),
                            invoker: self.invoker.clone(),
                            function: function.binary.clone(),
                            queue_url: url,
                            source: Source::Sns {
                                topic_arn: topic_arn(&topic.name),
                                failure_queue,
                            },
                        }
                    }
                    Trigger::Http { method, path } => {
                        println!(
                            "  HTTP {method} {path} ──> {} (at {}/lambda-url/{}/)",
                            function.binary, self.watch_url, function.binary
                        );
                        continue;
                    }
                    Trigger::Schedule { expression } => {
                        println!(
                            "  schedule {expression} ──> {} (triggered by hand locally)",
                            function.binary
                        );
                        continue;
                    }
                };
                self.pollers.push(tokio::spawn(poller.run()));
            }
        }
        Ok(())
    }

    /// How to use the running stack.
    pub fn usage(&self) -> String {
        let mut out = String::new();
        let slack = self.slack_url().unwrap_or_default();
        let _ = writeln!(
            out,
            "\nfanout is running locally. Ctrl-C stops everything.\n"
        );
        let _ = writeln!(out, "  AWS emulator (moto):   {}", self.endpoint);
        let _ = writeln!(out, "  Lambda (cargo lambda): {}", self.watch_url);
        let _ = writeln!(out, "  Slack URL:             {slack}\n");
        let _ = writeln!(
            out,
            "Count some words, as a Slack outgoing webhook would (the local verification token):"
        );
        let _ = writeln!(
            out,
            "  curl -s {slack} -d token={VERIFICATION_TOKEN} -d channel_id=C1 -d timestamp=$(date +%s).000001 -d trigger_word=hello --data-urlencode 'text=hello local world'\n"
        );
        let _ = writeln!(
            out,
            "Invoke a function with a sample event (in another shell, from the repository):"
        );
        let _ = writeln!(out, "  export PATH=\"$PWD/.venv/bin:$PATH\"");
        let port = self.watch_url.rsplit(':').next().unwrap_or_default();
        let _ = writeln!(out, "  cargo lambda invoke --invoke-port {port} sns-logger --data-file events/sns-logger-sns.json\n");
        let _ = writeln!(
            out,
            "Look at the tables, topics and buckets with the aws CLI:"
        );
        let _ = writeln!(out, "  export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION={REGION}", self.endpoint);
        for table in &self.plan.tables {
            let _ = writeln!(out, "  aws dynamodb scan --table-name {}", table.name);
        }
        let _ = writeln!(
            out,
            "  aws s3 ls s3://{}/ --recursive",
            self.plan
                .parameters
                .get("DestinationBucket")
                .cloned()
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "  (the aws CLI: pip install awscli, or .venv/bin/python -m pip install awscli)"
        );
        out
    }

    /// Stops the pollers and every process the stack started.
    pub async fn stop(mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
        if let Some(pid) = self.watch.id() {
            let group = -(pid as i32);
            // SAFETY: kill(2) with a negative pid signals the process group we created.
            unsafe { libc::kill(group, libc::SIGTERM) };
            if tokio::time::timeout(Duration::from_secs(5), self.watch.wait())
                .await
                .is_err()
            {
                unsafe { libc::kill(group, libc::SIGKILL) };
                let _ = self.watch.wait().await;
            }
            // Function processes are in the same group; make sure none outlives us.
            unsafe { libc::kill(group, libc::SIGKILL) };
        }
    }
}

enum Source {
    Sqs {
        queue_arn: String,
        batch_size: i32,
        report_failures: bool,
    },
    Sns {
        topic_arn: String,
        failure_queue: Option<String>,
    },
}

/// One event source mapping: receive from a queue, invoke, delete what was handled.
struct Poller {
    sqs: aws_sdk_sqs::Client,
    invoker: Invoker,
    function: String,
    queue_url: String,
    source: Source,
}

impl Poller {
    async fn run(self) {
        loop {
            let max = match &self.source {
                Source::Sqs { batch_size, .. } => *batch_size,
                Source::Sns { .. } => 1,
            };
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(max)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(err) => {
                    eprintln!(
                        "  ! polling for {}: {}",
                        self.function,
                        aws_sdk_sqs::error::DisplayErrorContext(err)
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let handled = match &self.source {
                Source::Sqs {
                    queue_arn,
                    report_failures,
                    ..
                } => {
                    self.deliver_sqs(&messages, queue_arn, *report_failures)
                        .await
                }
                Source::Sns {
                    topic_arn,
                    failure_queue,
                } => {
                    self.deliver_sns(&messages, topic_arn, failure_queue.as_deref())
                        .await
                }
            };
            for message in messages
                .iter()
                .filter(|m| handled.contains(&m.message_id.clone().unwrap_or_default()))
            {
                let _ = self
                    .sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                    .send()
                    .await;
            }
        }
    }

    /// Invokes the function with an SQS event; returns the ids of the messages it handled.
    async fn deliver_sqs(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
        queue_arn: &str,
        report_failures: bool,
    ) -> Vec<String> {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: BTreeMap<String, String> = m
                    .attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v))
                    .collect();
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": REGION,
                })
            })
            .collect();
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| m.message_id.clone())
            .collect();
        match self
            .invoker
            .invoke(&self.function, &json!({ "Records": records }))
            .await
        {
            Ok(answer) if report_failures => {
                let failed: Vec<String> = answer["batchItemFailures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect();
                if !failed.is_empty() {
                    eprintln!(
                        "  ! {} reported {} failed record(s); SQS will redeliver them",
                        self.function,
                        failed.len()
                    );
                }
                ids.into_iter().filter(|id| !failed.contains(id)).collect()
            }
            Ok(_) => ids,
            Err(err) => {
                eprintln!("  ! {err}; SQS will redeliver the batch");
                Vec::new()
            }
        }
    }

    /// Invokes the function with an SNS event for each notification, asynchronously as Lambda
    /// does: up to 3 attempts, then the event goes to the function's failure queue.
    async fn deliver_sns(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
        topic_arn: &str,
        failure_queue: Option<&str>,
    ) -> Vec<String> {
        let mut handled = Vec::new();
        for message in messages {
            let notification: Value =
                serde_json::from_str(message.body.as_deref().unwrap_or_default())
                    .unwrap_or(Value::Null);
            let event = json!({"Records": [{
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": format!("{topic_arn}:local-{}", self.function),
                "Sns": {
                    "Type": "Notification",
                    "MessageId": notification["MessageId"],
                    "TopicArn": topic_arn,
                    "Subject": notification["Subject"],
                    "Message": notification["Message"],
                    "Timestamp": notification["Timestamp"],
                    "SignatureVersion": "1",
                    "Signature": "local",
                    "SigningCertUrl": "http://localhost/local.pem",
                    "UnsubscribeUrl": "http://localhost/unsubscribe",
                    "MessageAttributes": notification.get("MessageAttributes").cloned().unwrap_or(json!({})),
                }
            }]});
            let mut outcome = Err(String::new());
            for _attempt in 0..3 {
                outcome = self.invoker.invoke(&self.function, &event).await;
                if outcome.is_ok() {
                    break;
                }
            }
            if let Err(err) = outcome {
                eprintln!("  ! {err}; after 3 attempts the event goes to the failure queue");
                if let Some(queue) = failure_queue {
                    let _ = self
                        .sqs
                        .send_message()
                        .queue_url(queue)
                        .message_body(event.to_string())
                        .send()
                        .await;
                }
            }
            handled.extend(message.message_id.clone());
        }
        handled
    }
}

/// Creates the template's tables, topics, queues and subscriptions, the SSM parameters that
/// hold the local Slack credentials, and the backup buckets. Returns the queue URLs.
async fn create_resources(
    plan: &Plan,
    sdk: &SdkConfig,
) -> Result<BTreeMap<String, String>, String> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    for table in &plan.tables {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TimeToLiveSpecification,
        };
        dynamodb
            .create_table()
            .table_name(&table.name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&table.key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(&table.key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await
            .map_err(|e| {
                format!(
                    "creating table {}: {}",
                    table.name,
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })?;
        if let Some(attribute) = &table.ttl_attribute {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(attribute)
                .enabled(true)
                .build()
                .map_err(|e| e.to_string())?;
            dynamodb
                .update_time_to_live()
                .table_name(&table.name)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "TTL on {}: {}",
                        table.name,
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
        }
        println!("  table {} (key {})", table.name, table.key);
    }
    let sns = aws_sdk_sns::Client::new(sdk);
    for topic in &plan.topics {
        sns.create_topic()
            .name(&topic.name)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "creating topic {}: {}",
                    topic.name,
                    aws_sdk_sns::error::DisplayErrorContext(e)
                )
            })?;
        println!("  topic {}", topic.name);
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut urls = BTreeMap::new();
    // Dead-letter queues first: a redrive policy names an existing queue.
    let mut queues = plan.queues.clone();
    queues.sort_by_key(|q| q.redrive.is_some());
    for queue in &queues {
        let redrive = queue.redrive.as_ref().map(|(target, count)| {
            let target = plan
                .queue(target)
                .map(|q| q.name.clone())
                .unwrap_or_default();
            json!({"deadLetterTargetArn": queue_arn(&target), "maxReceiveCount": count}).to_string()
        });
        let url = create_queue(&sqs, &queue.name, redrive, queue.visibility_timeout).await?;
        println!(
            "  queue {}{}",
            queue.name,
            queue
                .redrive
                .as_ref()
                .map(|(t, n)| format!(" (after {n} receives: {t})"))
                .unwrap_or_default()
        );
        urls.insert(queue.logical_id.clone(), url);
    }
    for subscription in &plan.subscriptions {
        let topic = plan
            .topic(&subscription.topic)
            .ok_or("a subscription names an unknown topic")?;
        let queue = plan
            .queue(&subscription.queue)
            .ok_or("a subscription names an unknown queue")?;
        let mut subscribe = sns
            .subscribe()
            .topic_arn(topic_arn(&topic.name))
            .protocol("sqs")
            .endpoint(queue_arn(&queue.name));
        if subscription.raw {
            subscribe = subscribe.attributes("RawMessageDelivery", "true");
        }
        subscribe.send().await.map_err(|e| {
            format!(
                "subscribing {} to {}: {}",
                queue.name,
                topic.name,
                aws_sdk_sns::error::DisplayErrorContext(e)
            )
        })?;
        println!(
            "  {} ──> {}{}",
            topic.name,
            queue.name,
            if subscription.raw {
                " (raw delivery)"
            } else {
                ""
            }
        );
    }
    let ssm = aws_sdk_ssm::Client::new(sdk);
    for (parameter, value) in [
        ("SlackSigningSecretParameter", SIGNING_SECRET),
        ("SlackVerificationTokenParameter", VERIFICATION_TOKEN),
    ] {
        let Some(name) = plan.parameters.get(parameter).filter(|n| !n.is_empty()) else {
            continue;
        };
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "SSM parameter {name}: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                )
            })?;
        println!("  SSM SecureString {name}");
    }
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    for parameter in ["SourceBucket", "DestinationBucket"] {
        if let Some(bucket) = plan.parameters.get(parameter).filter(|b| !b.is_empty()) {
            s3.create_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "bucket {bucket}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                })?;
            println!("  bucket {bucket}");
        }
    }
    Ok(urls)
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    redrive: Option<String>,
    visibility: Option<u32>,
) -> Result<String, String> {
    let mut create = sqs.create_queue().queue_name(name);
    if let Some(policy) = redrive {
        create = create.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    if let Some(seconds) = visibility {
        create = create.attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    create
        .send()
        .await
        .map_err(|e| {
            format!(
                "creating queue {name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .queue_url
        .ok_or_else(|| format!("no URL for queue {name}"))
}

/// The functions' environment as the template sets it, pointed at the emulator.
fn write_env_file(
    plan: &Plan,
    endpoint: &str,
    watch_url: &str,
) -> Result<std::path::PathBuf, String> {
    let mut env = plan.merged_env().map_err(|e| e.to_string())?;
    env.insert("AWS_ENDPOINT_URL".into(), endpoint.into());
    // s3-fanout continues long listings by invoking itself: locally, through cargo lambda.
    env.insert("AWS_ENDPOINT_URL_LAMBDA".into(), watch_url.into());
    env.insert("AWS_REGION".into(), REGION.into());
    env.insert("AWS_DEFAULT_REGION".into(), REGION.into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
    env.insert("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into());
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let dir = workspace_root().join("target/local-stack");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("functions-{}.env", std::process::id()));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn start_watch(
    port: u16,
    env_file: &std::path::Path,
    logs: Arc<Mutex<Vec<String>>>,
    echo: bool,
) -> Result<Child, String> {
    let root = workspace_root();
    let venv_bin = root.join(".venv/bin");
    if !venv_bin.join("cargo-lambda").exists() {
        return Err(format!(
            "cargo-lambda not found in {}: run `make dev-tools` first",
            venv_bin.display()
        ));
    }
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("cargo");
    command
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            "--ignore-changes",
            "--env-file",
        ])
        .arg(env_file)
        .current_dir(&root)
        .env("PATH", path)
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("SLACK_VERIFICATION_TOKEN")
        .env_remove("AWS_PROFILE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    // SAFETY: prctl in the child before exec; if this process dies, the watch server is told to stop.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting cargo lambda watch: {e}"))?;
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child.stderr.take().map(|s| Box::new(s) as _),
    ]
    .into_iter()
    .flatten()
    {
        let logs = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    println!("  │ {line}");
                }
                logs.lock().unwrap().push(line);
            }
        });
    }
    Ok(child)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

async fn wait_for_port(port: u16, limit: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "cargo lambda watch did not listen on port {port} within {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The plan, as `fanout-local plan` prints it.
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    for table in &plan.tables {
        let _ = writeln!(out, "table    {} (key {})", table.name, table.key);
    }
    for topic in &plan.topics {
        let _ = writeln!(out, "topic    {}", topic.name);
    }
    for queue in &plan.queues {
        let _ = writeln!(
            out,
            "queue    {}{}",
            queue.name,
            queue
                .redrive
                .as_ref()
                .map(|(t, n)| format!(" -> {t} after {n}"))
                .unwrap_or_default()
        );
    }
    for s in &plan.subscriptions {
        let _ = writeln!(
            out,
            "wire     {} -> {}{}",
            s.topic,
            s.queue,
            if s.raw { " (raw)" } else { "" }
        );
    }
    for function in &plan.functions {
        for trigger in &function.triggers {
            let source = match trigger {
                Trigger::Http { method, path } => format!("HTTP {method} {path}"),
                Trigger::Sqs { queue, .. } => queue.clone(),
                Trigger::Sns { topic } => topic.clone(),
                Trigger::Schedule { expression } => format!("schedule {expression}"),
            };
            let _ = writeln!(out, "wire     {source} -> {}", function.binary);
        }
        for (var, value) in &function.env {
            let _ = writeln!(out, "env      {} {var}={value}", function.binary);
        }
    }
    let _ = writeln!(out, "account  {ACCOUNT} in {REGION}");
    out
}
