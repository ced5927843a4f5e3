//! The copy product's smoke test, the equivalent of `tools/stack-checks.sh copy` with one
//! object: seed it under a reserved prefix of the stack's source bucket, start a run limited to
//! that prefix through s3-fanout's alias `live` (a manual event, as an operator starts one), wait
//! until the destination holds a copy of the same size and ETag (or, when the copy is encrypted
//! so that the ETags differ, the same bytes) and, with a runs table, until the run is complete
//! with the object `copied`; then delete both objects.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;

use crate::stack::StackFacts;
use crate::SmokeError;

/// Every key the copy check writes in the source and destination buckets starts with this.
pub const COPY_PREFIX: &str = "fanout-smoke/";
/// Every run the copy check starts has an id starting with this; a failure report of such a
/// run is written under `fanout-reports/<run id>/` (the stack's default ReportUrl).
pub const RUN_PREFIX: &str = "fanout-smoke-";
const REPORTS_PREFIX: &str = "fanout-reports/";

/// Where the copy product of a stack is: what the copy check needs from its Outputs and
/// Parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTarget {
    /// s3-fanout's function name (the `S3FanoutFunctionName` output); its alias `live` is invoked.
    pub function: String,
    pub source_bucket: String,
    pub destination_bucket: String,
    /// The runs table (`RunsTableName`), when the stack has one.
    pub runs_table: Option<String>,
    /// Whether a run's failure report goes to the destination bucket (an empty `ReportUrl`).
    pub reports_in_destination: bool,
}

impl CopyTarget {
    /// The stack's copy product; `None` when its parameters name no buckets (a stack without
    /// one), an error when they do but the function output is missing.
    pub fn from_stack(facts: &StackFacts) -> Result<Option<CopyTarget>, SmokeError> {
        let (Some(source), Some(destination)) = (
            facts.parameter("SourceBucket"),
            facts.parameter("DestinationBucket"),
        ) else {
            return Ok(None);
        };
        Ok(Some(CopyTarget {
            function: facts.output("S3FanoutFunctionName")?,
            source_bucket: source.to_owned(),
            destination_bucket: destination.to_owned(),
            runs_table: facts.optional_output("RunsTableName").map(str::to_owned),
            reports_in_destination: facts.parameter("ReportUrl").is_none(),
        }))
    }
}

/// One copy check: its run id, its object's key (the same in both buckets) and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRun {
    pub run_id: String,
    pub key: String,
    pub body: String,
}

impl CopyRun {
    /// A run with an id no other run has: [`RUN_PREFIX`] and the time in nanoseconds.
    pub fn unique() -> CopyRun {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos();
        CopyRun::new(&crate::words::base36(nanos))
    }

    /// The run `fanout-smoke-<suffix>`, its object `fanout-smoke/<run id>/object.txt`.
    pub fn new(suffix: &str) -> CopyRun {
        let run_id = format!("{RUN_PREFIX}{suffix}");
        CopyRun {
            key: format!("{COPY_PREFIX}{run_id}/object.txt"),
            body: format!("fanout copy smoke test {run_id}\n"),
            run_id,
        }
    }

    /// The prefix the run is limited to, in both buckets.
    pub fn prefix(&self) -> String {
        format!("{COPY_PREFIX}{}/", self.run_id)
    }

    /// The manual event that starts the run: only the run's prefix, to the same prefix.
    pub fn event(&self, target: &CopyTarget) -> serde_json::Value {
        let prefix = self.prefix();
        serde_json::json!({
            "source": format!("s3://{}/{prefix}", target.source_bucket),
            "destination": format!("s3://{}/{prefix}", target.destination_bucket),
            "run_id": self.run_id,
        })
    }

    /// Where s3-fanout writes the run's failure report under the default ReportUrl.
    pub fn report_key(&self) -> String {
        format!("{REPORTS_PREFIX}{}/failures.jsonl", self.run_id)
    }

    /// The run's object item in the runs table.
    pub fn object_item(&self) -> String {
        format!("object#{}#{}", self.run_id, self.key)
    }
}

/// Whether the copy check may write or delete `key`: under [`COPY_PREFIX`], or a report of one
/// of its runs.
pub fn is_reserved_key(key: &str) -> bool {
    let under = |prefix: &str| key.len() > prefix.len() && key.starts_with(prefix);
    under(COPY_PREFIX)
        || key
            .strip_prefix(REPORTS_PREFIX)
            .is_some_and(|rest| rest.len() > RUN_PREFIX.len() && rest.starts_with(RUN_PREFIX))
}

/// An object's size and ETag (quotes and all, as S3 gives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    pub size: i64,
    pub etag: String,
}

/// How a copy compares with its source by size and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Same size, same ETag: the same bytes.
    Same,
    /// Same size, another ETag: a copy encrypted with SSE-KMS has an ETag that is not the MD5 of
    /// its bytes, so the bytes must be compared.
    CompareBytes,
    /// Not the same object.
    WrongSize,
}

pub fn compare(source: &ObjectFacts, copy: &ObjectFacts) -> Comparison {
    if source.size != copy.size {
        Comparison::WrongSize
    } else if source.etag == copy.etag {
        Comparison::Same
    } else {
        Comparison::CompareBytes
    }
}

/// The clients the copy check calls.
#[derive(Debug, Clone)]
pub struct CopyClients {
    pub s3: aws_sdk_s3::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl CopyClients {
    pub fn new(sdk: &aws_config::SdkConfig) -> CopyClients {
        // Path-style addressing when the endpoint is overridden (an emulator has no bucket
        // subdomains).
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        CopyClients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            lambda: aws_sdk_lambda::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
        }
    }
}

fn s3_error<E>(action: &'static str, url: String) -> impl FnOnce(E) -> SmokeError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| SmokeError::S3 {
        action,
        url,
        reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// Writes the run's object in the source bucket; its size and ETag.
pub async fn seed(
    s3: &aws_sdk_s3::Client,
    target: &CopyTarget,
    run: &CopyRun,
) -> Result<ObjectFacts, SmokeError> {
    let url = format!("s3://{}/{}", target.source_bucket, run.key);
    let put = s3
        .put_object()
        .bucket(&target.source_bucket)
        .key(&run.key)
        .content_type("text/plain")
        .body(ByteStream::from(run.body.clone().into_bytes()))
        .send()
        .await
        .map_err(s3_error("write", url))?;
    Ok(ObjectFacts {
        size: run.body.len() as i64,
        etag: put.e_tag().unwrap_or_default().to_owned(),
    })
}

/// Invokes s3-fanout's alias `live` with the run's manual event, and waits for its answer.
pub async fn start(
    lambda: &aws_sdk_lambda::Client,
    target: &CopyTarget,
    run: &CopyRun,
) -> Result<(), SmokeError> {
    let function = format!("{}:live", target.function);
    let failed = |reason: String| SmokeError::Invoke {
        function: function.clone(),
        reason,
    };
    let answer = lambda
        .invoke()
        .function_name(&target.function)
        .qualifier("live")
        .payload(aws_sdk_lambda::primitives::Blob::new(
            run.event(target).to_string(),
        ))
        .send()
        .await
        .map_err(|e| failed(aws_sdk_lambda::error::DisplayErrorContext(e).to_string()))?;
    let payload = answer
        .payload()
        .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
        .unwrap_or_default();
    match answer.function_error() {
        Some(kind) => Err(failed(format!("{kind}: {payload}"))),
        None => Ok(()),
    }
}

/// What the wait saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub copy: ObjectFacts,
    /// Whether the bytes were compared (the ETags differ).
    pub bytes_compared: bool,
    /// When the run completed, as the runs table says (with a runs table).
    pub completed_at: Option<String>,
    pub waited: Duration,
}

/// Polls the destination until the run's copy is there and matches `source`, and, with a runs
/// table, until the run is complete and its object `copied`; at most `timeout`.
pub async fn wait_for_copy(
    clients: &CopyClients,
    target: &CopyTarget,
    run: &CopyRun,
    source: &ObjectFacts,
    timeout: Duration,
) -> Result<Copied, SmokeError> {
    let url = format!("s3://{}/{}", target.destination_bucket, run.key);
    let started = Instant::now();
    let deadline = started + timeout;
    let mut verified: Option<(ObjectFacts, bool)> = None;
    let mut completed_at: Option<String> = None;
    loop {
        if verified.is_none() {
            if let Some(copy) = find_copy(&clients.s3, target, run).await? {
                let bytes_compared = match compare(source, &copy) {
                    Comparison::Same => false,
                    Comparison::CompareBytes => {
                        let bytes = read(&clients.s3, &target.destination_bucket, &run.key).await?;
                        if bytes != run.body.as_bytes() {
                            return Err(SmokeError::CopyMismatch {
                                url,
                                reason: "its bytes are not the source's".into(),
                            });
                        }
                        true
                    }
                    Comparison::WrongSize => {
                        return Err(SmokeError::CopyMismatch {
                            url,
                            reason: format!("{} bytes, the source has {}", copy.size, source.size),
                        })
                    }
                };
                verified = Some((copy, bytes_compared));
            }
        }
        if let (Some(table), None) = (&target.runs_table, &completed_at) {
            completed_at =
                text_attribute(&clients.dynamodb, table, &run.run_id, "completed_at").await?;
        }
        let run_done = target.runs_table.is_none() || completed_at.is_some();
        if let (Some((copy, bytes_compared)), true) = (&verified, run_done) {
            if let Some(table) = &target.runs_table {
                let outcome =
                    text_attribute(&clients.dynamodb, table, &run.object_item(), "outcome").await?;
                if outcome.as_deref() != Some("copied") {
                    return Err(SmokeError::CopyOutcome {
                        run_id: run.run_id.clone(),
                        key: run.key.clone(),
                        outcome: outcome.unwrap_or_else(|| "none".into()),
                    });
                }
            }
            return Ok(Copied {
                copy: copy.clone(),
                bytes_compared: *bytes_compared,
                completed_at,
                waited: started.elapsed(),
            });
        }
        if Instant::now() >= deadline {
            let missing = if verified.is_none() {
                format!("there is no copy at {url}")
            } else {
                format!(
                    "the copy is there, but the run {} is not complete in {}",
                    run.run_id,
                    target.runs_table.as_deref().unwrap_or_default()
                )
            };
            return Err(SmokeError::CopyTimeout {
                waited_s: started.elapsed().as_secs(),
                missing,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The run's copy in the destination, found by listing its key (a listing under the reserved
/// prefix needs only `s3:ListBucket` limited to it; a HEAD of a missing key would be refused
/// without `s3:ListBucket` on the whole bucket).
async fn find_copy(
    s3: &aws_sdk_s3::Client,
    target: &CopyTarget,
    run: &CopyRun,
) -> Result<Option<ObjectFacts>, SmokeError> {
    let listed = s3
        .list_objects_v2()
        .bucket(&target.destination_bucket)
        .prefix(&run.key)
        .send()
        .await
        .map_err(s3_error(
            "list",
            format!("s3://{}/{}", target.destination_bucket, run.key),
        ))?;
    Ok(listed
        .contents()
        .iter()
        .find(|object| object.key() == Some(run.key.as_str()))
        .map(|object| ObjectFacts {
            size: object.size().unwrap_or_default(),
            etag: object.e_tag().unwrap_or_default().to_owned(),
        }))
}

async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, SmokeError> {
    let url = format!("s3://{bucket}/{key}");
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(s3_error("read", url.clone()))?;
    let bytes = object.body.collect().await.map_err(|e| SmokeError::S3 {
        action: "read",
        url,
        reason: e.to_string(),
    })?;
    Ok(bytes.to_vec())
}

/// A string attribute of the runs table's item `key` (strongly consistent), if it has one.
async fn text_attribute(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
    attribute: &str,
) -> Result<Option<String>, SmokeError> {
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("run_id", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| SmokeError::Runs {
            table: table.to_owned(),
            key: key.to_owned(),
            reason: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
        })?;
    Ok(item
        .item()
        .and_then(|item| item.get(attribute))
        .and_then(|value| value.as_s().ok())
        .cloned())
}

/// The objects the clean-up deletes: the seeded one, its copy and, under the default
/// ReportUrl, the run's failure report (there is none when nothing failed; deleting a missing
/// key is no error).
pub fn objects_to_delete(target: &CopyTarget, run: &CopyRun) -> Vec<(String, String)> {
    let mut objects = vec![
        (target.source_bucket.clone(), run.key.clone()),
        (target.destination_bucket.clone(), run.key.clone()),
    ];
    if target.reports_in_destination {
        objects.push((target.destination_bucket.clone(), run.report_key()));
    }
    objects
}

/// Deletes the run's objects, only keys under the reserved prefixes; the URLs deleted, and the
/// failures.
pub async fn clean_up(
    s3: &aws_sdk_s3::Client,
    target: &CopyTarget,
    run: &CopyRun,
) -> (Vec<String>, Vec<SmokeError>) {
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for (bucket, key) in objects_to_delete(target, run) {
        let url = format!("s3://{bucket}/{key}");
        if !is_reserved_key(&key) {
            failures.push(SmokeError::NotReserved {
                what: url,
                prefix: COPY_PREFIX,
            });
            continue;
        }
        match s3.delete_object().bucket(&bucket).key(&key).send().await {
            Ok(_) => deleted.push(url),
            Err(e) => failures.push(SmokeError::Cleanup {
                what: url.clone(),
                reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                hint: format!(
                    "the smoke test's role needs s3:DeleteObject under {COPY_PREFIX} of both buckets; delete it by hand: aws s3 rm {url}"
                ),
            }),
        }
    }
    (deleted, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(parameters: &[(&str, &str)], outputs: &[(&str, &str)]) -> StackFacts {
        let pairs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        StackFacts {
            name: "fanout-test".into(),
            outputs: pairs(outputs),
            parameters: pairs(parameters),
        }
    }

    #[test]
    fn the_target_comes_from_the_buckets_parameters_and_the_functions_output() {
        let stack = facts(
            &[
                ("SourceBucket", "src"),
                ("DestinationBucket", "dst"),
                ("ReportUrl", ""),
            ],
            &[
                ("S3FanoutFunctionName", "fanout-test-S3Fanout"),
                ("RunsTableName", "runs"),
            ],
        );
        assert_eq!(
            CopyTarget::from_stack(&stack).unwrap(),
            Some(CopyTarget {
                function: "fanout-test-S3Fanout".into(),
                source_bucket: "src".into(),
                destination_bucket: "dst".into(),
                runs_table: Some("runs".into()),
                reports_in_destination: true,
            })
        );
        let elsewhere = facts(
            &[
                ("SourceBucket", "src"),
                ("DestinationBucket", "dst"),
                ("ReportUrl", "s3://reports/fanout"),
            ],
            &[("S3FanoutFunctionName", "f")],
        );
        let target = CopyTarget::from_stack(&elsewhere).unwrap().unwrap();
        assert!(!target.reports_in_destination && target.runs_table.is_none());
        assert_eq!(CopyTarget::from_stack(&facts(&[], &[])).unwrap(), None);
        let no_function = facts(&[("SourceBucket", "s"), ("DestinationBucket", "d")], &[]);
        let err = CopyTarget::from_stack(&no_function)
            .unwrap_err()
            .to_string();
        assert!(err.contains("S3FanoutFunctionName"), "{err}");
    }

    #[test]
    fn a_run_is_limited_to_its_own_reserved_prefix() {
        let run = CopyRun::new("abc");
        assert_eq!(run.run_id, "fanout-smoke-abc");
        assert_eq!(run.key, "fanout-smoke/fanout-smoke-abc/object.txt");
        assert_eq!(run.prefix(), "fanout-smoke/fanout-smoke-abc/");
        assert!(run.key.starts_with(&run.prefix()));
        let target = CopyTarget {
            function: "f".into(),
            source_bucket: "src".into(),
            destination_bucket: "dst".into(),
            runs_table: None,
            reports_in_destination: true,
        };
        assert_eq!(
            run.event(&target),
            serde_json::json!({
                "source": "s3://src/fanout-smoke/fanout-smoke-abc/",
                "destination": "s3://dst/fanout-smoke/fanout-smoke-abc/",
                "run_id": "fanout-smoke-abc",
            })
        );
        assert_eq!(
            run.object_item(),
            "object#fanout-smoke-abc#fanout-smoke/fanout-smoke-abc/object.txt"
        );
        assert_ne!(CopyRun::unique(), CopyRun::unique());
        let deleted = objects_to_delete(&target, &run);
        assert_eq!(deleted.len(), 3);
        assert!(
            deleted.iter().all(|(_, key)| is_reserved_key(key)),
            "{deleted:?}"
        );
    }

    #[test]
    fn only_reserved_keys_may_be_deleted() {
        for key in [
            "fanout-smoke/x",
            "fanout-smoke/fanout-smoke-1/object.txt",
            "fanout-reports/fanout-smoke-1/failures.jsonl",
        ] {
            assert!(is_reserved_key(key), "{key}");
        }
        for key in [
            "",
            "fanout-smoke/",
            "fanout-smoke",
            "photos/fanout-smoke/x",
            "fanout-reports/scheduled-2024/failures.jsonl",
            "fanout-reports/fanout-smoke-",
            "Fanout-smoke/x",
        ] {
            assert!(!is_reserved_key(key), "{key}");
        }
    }

    #[test]
    fn a_copy_matches_by_etag_or_else_by_its_bytes() {
        let source = ObjectFacts {
            size: 10,
            etag: "\"abc\"".into(),
        };
        assert_eq!(compare(&source, &source.clone()), Comparison::Same);
        let encrypted = ObjectFacts {
            size: 10,
            etag: "\"f00\"".into(),
        };
        assert_eq!(compare(&source, &encrypted), Comparison::CompareBytes);
        let other = ObjectFacts {
            size: 11,
            etag: "\"abc\"".into(),
        };
        assert_eq!(compare(&source, &other), Comparison::WrongSize);
    }
}
