//! S3 Batch Operations invocations, as s3-copier reads them (docs/batch-operations.md): schema 1.0 (`s3BucketArn`, keys
//! URL-encoded, the destination from `BATCH_DESTINATION`) and 2.0 (`s3Bucket`, keys as they
//! are, `job.userArguments` with `destination` and `source_prefix`, which win over the
//! function's configuration). The copying and the result codes are fanout-copy-core's
//! [`fanout_copy_core::batch`].

use aws_lambda_events::event::s3::batch_job::{
    S3BatchJobEvent, S3BatchJobResponse, S3BatchJobResult, S3BatchJobTask,
};
use fanout_copy_core::batch::{ResultCode, Target, Task, TaskResult};
use fanout_copy_core::location::{form_decoded, Location};
use serde_json::Value;

use crate::events::Batch;

/// Every event s3-copier takes: copy jobs from SNS or SQS, and S3 Batch Operations
/// invocations.
#[derive(Debug, Clone)]
pub enum CopierEvent {
    Jobs(Batch),
    BatchOperations(S3BatchJobEvent),
}

impl<'de> serde::Deserialize<'de> for CopierEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(deserializer)?;
        if value.get("invocationSchemaVersion").is_some()
            || (value.get("tasks").is_some() && value.get("job").is_some())
        {
            serde_json::from_value(value)
                .map(CopierEvent::BatchOperations)
                .map_err(|e| {
                    D::Error::custom(format!(
                        "the S3 Batch Operations invocation cannot be read: {e}"
                    ))
                })
        } else {
            serde_json::from_value(value)
                .map(CopierEvent::Jobs)
                .map_err(D::Error::custom)
        }
    }
}

/// What S3 is told to make of a task whose key is missing.
pub const TREAT_MISSING_KEYS_AS: &str = "PermanentFailure";

/// One invocation, read: its tasks (or why each cannot be read) and where they are copied to
/// (or why nowhere).
#[derive(Debug)]
pub struct Invocation {
    pub job_id: String,
    pub target: Result<Target, String>,
    pub tasks: Vec<(String, Result<Task, TaskResult>)>,
}

impl Invocation {
    /// Reads `event`, with `configured` (`BATCH_DESTINATION`) as the destination unless the
    /// job's user arguments name one.
    pub fn read(event: &S3BatchJobEvent, configured: Option<&Location>) -> Invocation {
        let version = event.invocation_schema_version.as_deref().unwrap_or("1.0");
        let arguments = event.job.other.get("userArguments");
        let target = match version {
            "1.0" | "2.0" => target(arguments, configured),
            other => Err(format!(
                "invocation schema version {other} is not supported: fanout reads 1.0 and 2.0"
            )),
        };
        let tasks = (event.tasks.iter())
            .map(|task| {
                let id = task.task_id.clone().unwrap_or_default();
                (id.clone(), read_task(version, id, task))
            })
            .collect();
        Invocation {
            job_id: event.job.id.clone().unwrap_or_default(),
            target,
            tasks,
        }
    }
}

/// Where the job's objects go: the user arguments' `destination` (2.0), else the configured
/// one; `source_prefix` from the user arguments.
fn target(arguments: Option<&Value>, configured: Option<&Location>) -> Result<Target, String> {
    let argument = |name: &str| -> Result<Option<String>, String> {
        match arguments.and_then(|arguments| arguments.get(name)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(format!("the user argument {name} is {other}, not a string")),
        }
    };
    let destination = match argument("destination")? {
        Some(url) => {
            let destination = url.parse::<Location>().map_err(|e| {
                format!("the user argument destination is not a destination: {e}")
            })?;
            // A paused copy's upload outside it would escape the sweep of abandoned uploads.
            if let Some(configured) = configured {
                let inside = destination.bucket == configured.bucket
                    && destination.prefix.starts_with(&configured.prefix);
                if !inside {
                    return Err(format!(
                        "the user argument destination {destination} is outside BATCH_DESTINATION {configured}, the only place this function copies to"
                    ));
                }
            }
            destination
        }
        None => configured.cloned().ok_or_else(|| {
            "no destination: give the job the user argument destination (schema 2.0), or set BATCH_DESTINATION on the function".to_owned()
        })?,
    };
    Ok(Target {
        destination,
        source_prefix: argument("source_prefix")?.unwrap_or_default(),
    })
}

fn read_task(version: &str, id: String, task: &S3BatchJobTask) -> Result<Task, TaskResult> {
    let refuse = |why: String| TaskResult {
        code: ResultCode::PermanentFailure,
        message: why,
    };
    let encoded = task.s3_key.as_deref().filter(|key| !key.is_empty());
    let encoded = encoded.ok_or_else(|| refuse("the task has no s3Key".into()))?;
    let (bucket, key) = if version == "1.0" {
        let arn = task.s3_bucket_arn.as_deref().unwrap_or_default();
        let bucket = arn
            .rsplit_once(":::")
            .map(|(_, bucket)| bucket)
            .filter(|bucket| !bucket.is_empty())
            .ok_or_else(|| refuse(format!("s3BucketArn {arn:?} is not a bucket ARN")))?;
        (bucket.to_owned(), form_decoded(encoded).map_err(refuse)?)
    } else {
        let bucket = (task.other.get("s3Bucket"))
            .and_then(Value::as_str)
            .filter(|bucket| !bucket.is_empty())
            .ok_or_else(|| refuse("the task has no s3Bucket".into()))?;
        (bucket.to_owned(), encoded.to_owned())
    };
    Ok(Task {
        id,
        bucket,
        key,
        version_id: task.s3_version_id.clone().filter(|v| !v.is_empty()),
    })
}

/// The answer S3 expects: the invocation's schema version and id, and a result per task.
pub fn response(event: &S3BatchJobEvent, results: Vec<(String, TaskResult)>) -> S3BatchJobResponse {
    let mut response = S3BatchJobResponse::default();
    response.invocation_schema_version = event.invocation_schema_version.clone();
    response.treat_missing_keys_as = Some(TREAT_MISSING_KEYS_AS.into());
    response.invocation_id = event.invocation_id.clone();
    response.results = (results.into_iter())
        .map(|(task_id, result)| {
            let mut answer = S3BatchJobResult::default();
            answer.task_id = Some(task_id);
            answer.result_code = Some(result.code.as_str().into());
            answer.result_string = Some(result.message);
            answer
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> S3BatchJobEvent {
        serde_json::from_value(value).unwrap()
    }

    fn v1(key: &str) -> S3BatchJobEvent {
        event(json!({
            "invocationSchemaVersion": "1.0",
            "invocationId": "inv-1",
            "job": {"id": "job-1"},
            "tasks": [{"taskId": "t1", "s3Key": key, "s3VersionId": null,
                       "s3BucketArn": "arn:aws:s3:::source-bucket"}]
        }))
    }

    #[test]
    fn schema_1_0_keys_are_url_decoded_and_the_destination_is_configured() {
        let configured: Location = "s3://backup/b/".parse().unwrap();
        let read = Invocation::read(&v1("photos/a+b%2Bc%C3%A9.jpg"), Some(&configured));
        assert_eq!(read.job_id, "job-1");
        let target = read.target.unwrap();
        assert_eq!(
            (target.destination, target.source_prefix),
            (configured, String::new())
        );
        let task = read.tasks[0].1.as_ref().unwrap();
        assert_eq!(
            (task.bucket.as_str(), task.key.as_str()),
            ("source-bucket", "photos/a b+cé.jpg")
        );
        let unset = Invocation::read(&v1("k"), None);
        assert!(unset.target.unwrap_err().contains("BATCH_DESTINATION"));
    }

    #[test]
    fn schema_2_0_takes_its_bucket_key_and_user_arguments_as_they_are() {
        let configured: Location = "s3://backup/".parse().unwrap();
        let read = Invocation::read(
            &event(json!({
                "invocationSchemaVersion": "2.0",
                "invocationId": "inv-2",
                "job": {"id": "job-2", "userArguments": {
                    "destination": "s3://backup/nightly/", "source_prefix": "photos/"}},
                "tasks": [{"taskId": "t1", "s3Key": "photos/a+b c.jpg", "s3VersionId": "v1",
                           "s3Bucket": "source-bucket"}]
            })),
            Some(&configured),
        );
        let target = read.target.unwrap();
        assert_eq!(target.destination, "s3://backup/nightly/".parse().unwrap());
        assert_eq!(target.source_prefix, "photos/");
        let task = read.tasks[0].1.as_ref().unwrap();
        assert_eq!(task.key, "photos/a+b c.jpg");
        assert_eq!(task.version_id.as_deref(), Some("v1"));
    }

    #[test]
    fn a_destination_outside_batch_destination_is_refused() {
        let configured: Location = "s3://backup/fanout/".parse().unwrap();
        for destination in [
            "s3://elsewhere/fanout/",
            "s3://backup/other/",
            "s3://backup/",
        ] {
            let read = Invocation::read(
                &event(json!({
                    "invocationSchemaVersion": "2.0", "job": {"id": "j",
                        "userArguments": {"destination": destination}}, "tasks": []
                })),
                Some(&configured),
            );
            assert!(
                read.target
                    .unwrap_err()
                    .contains("outside BATCH_DESTINATION"),
                "{destination}"
            );
        }
    }

    #[test]
    fn what_cannot_be_read_is_refused_with_its_reason() {
        let refusals = [
            (
                json!({"invocationSchemaVersion": "3.0", "job": {"id": "j"}, "tasks": []}),
                "not supported",
            ),
            (
                json!({"invocationSchemaVersion": "2.0", "job": {"id": "j", "userArguments": {"destination": "backup"}}, "tasks": []}),
                "not an S3 URL",
            ),
            (
                json!({"invocationSchemaVersion": "2.0", "job": {"id": "j", "userArguments": {"destination": 7}}, "tasks": []}),
                "not a string",
            ),
        ];
        for (value, why) in refusals {
            let read = Invocation::read(&event(value.clone()), None);
            let error = read.target.unwrap_err();
            assert!(error.contains(why), "{value}: {error}");
        }
        let tasks = event(json!({
            "invocationSchemaVersion": "1.0", "job": {"id": "j"},
            "tasks": [
                {"taskId": "no-key", "s3BucketArn": "arn:aws:s3:::b"},
                {"taskId": "bad-arn", "s3Key": "k", "s3BucketArn": "b"},
                {"taskId": "bad-utf8", "s3Key": "%FF", "s3BucketArn": "arn:aws:s3:::b"}
            ]
        }));
        let read = Invocation::read(&tasks, None);
        for (id, task) in &read.tasks {
            let refused = task.as_ref().unwrap_err();
            assert_eq!(refused.code, ResultCode::PermanentFailure, "{id}");
        }
        let no_bucket = event(json!({"invocationSchemaVersion": "2.0", "job": {"id": "j"},
            "tasks": [{"taskId": "t", "s3Key": "k"}]}));
        let read = Invocation::read(&no_bucket, None);
        assert!(read.tasks[0]
            .1
            .as_ref()
            .unwrap_err()
            .message
            .contains("s3Bucket"));
    }

    #[test]
    fn the_response_is_in_s3s_shape() {
        let answer = response(
            &v1("k"),
            vec![(
                "t1".into(),
                TaskResult {
                    code: ResultCode::TemporaryFailure,
                    message: "later".into(),
                },
            )],
        );
        assert_eq!(
            serde_json::to_value(answer).unwrap(),
            json!({
                "invocationSchemaVersion": "1.0",
                "treatMissingKeysAs": "PermanentFailure",
                "invocationId": "inv-1",
                "results": [{"taskId": "t1", "resultCode": "TemporaryFailure", "resultString": "later"}]
            })
        );
    }
}
