//! Which IAM actions a function's code really needs: an SDK interceptor records every operation
//! a client sends, and [`iam_actions`] maps operations to the IAM actions that authorize them.
//! Tests compare that with the `IAM_ACTIONS` list each function declares beside its code.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Records `(service, operation)` for every request of the clients it is attached to.
#[derive(Debug, Clone, Default)]
pub struct CallRecorder {
    calls: Arc<Mutex<BTreeSet<(String, String)>>>,
    counts: Arc<Mutex<std::collections::BTreeMap<String, usize>>>,
}

impl CallRecorder {
    /// The operations recorded so far, as `Service:Operation`.
    pub fn operations(&self) -> BTreeSet<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(service, op)| format!("{service}:{op}"))
            .collect()
    }

    /// How many times `Service:Operation` was called.
    pub fn count(&self, operation: &str) -> usize {
        self.counts
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The IAM actions the recorded operations need.
    pub fn iam_actions(&self) -> BTreeSet<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(service, op)| iam_actions(service, op))
            .collect()
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            let (service, name) = (metadata.service().to_owned(), metadata.name().to_owned());
            *(self.counts.lock().unwrap())
                .entry(format!("{service}:{name}"))
                .or_default() += 1;
            self.calls.lock().unwrap().insert((service, name));
        }
        Ok(())
    }
}

/// The IAM actions that authorize one SDK operation (the service as the SDK names it).
pub fn iam_actions(service: &str, operation: &str) -> Vec<String> {
    let prefix = match service.to_ascii_lowercase().as_str() {
        "dynamodb" => "dynamodb",
        "sns" => "sns",
        "sqs" => "sqs",
        "ssm" => "ssm",
        "s3" => "s3",
        "cloudformation" => "cloudformation",
        other => panic!("no IAM prefix known for the {other} service; add it to tests/src/iam.rs"),
    };
    let actions: &[&str] = match (prefix, operation) {
        ("sns", "PublishBatch") => &["Publish"],
        // The counter's transactions hold a Put (the claim) and Updates (the adds).
        ("dynamodb", "TransactWriteItems") => &["PutItem", "UpdateItem"],
        ("s3", "ListObjectsV2" | "ListObjects" | "HeadBucket") => &["ListBucket"],
        ("s3", "HeadObject") => &["GetObject"],
        ("s3", "CopyObject" | "UploadPartCopy") => &["GetObject", "PutObject"],
        ("s3", "CreateMultipartUpload" | "CompleteMultipartUpload" | "UploadPart") => {
            &["PutObject"]
        }
        ("s3", "ListMultipartUploads") => &["ListBucketMultipartUploads"],
        ("s3", "ListParts") => &["ListMultipartUploadParts"],
        _ => return vec![format!("{prefix}:{operation}")],
    };
    actions
        .iter()
        .map(|action| format!("{prefix}:{action}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_operations_to_actions() {
        assert_eq!(
            iam_actions("DynamoDB", "UpdateItem"),
            vec!["dynamodb:UpdateItem"]
        );
        assert_eq!(iam_actions("SNS", "PublishBatch"), vec!["sns:Publish"]);
        assert_eq!(iam_actions("S3", "ListObjectsV2"), vec!["s3:ListBucket"]);
        assert_eq!(
            iam_actions("S3", "UploadPartCopy"),
            vec!["s3:GetObject", "s3:PutObject"]
        );
    }
}
