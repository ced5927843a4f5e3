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
    item_writes: Arc<Mutex<std::collections::BTreeMap<String, usize>>>,
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

    /// How many writes each DynamoDB item was sent (UpdateItem, PutItem, and each item of a
    /// TransactWriteItems), by its partition key's string value.
    pub fn item_writes(&self) -> std::collections::BTreeMap<String, usize> {
        self.item_writes.lock().unwrap().clone()
    }

    fn count_writes(&self, input: &aws_smithy_runtime_api::client::interceptors::context::Input) {
        use aws_sdk_dynamodb::operation::{
            put_item::PutItemInput, transact_write_items::TransactWriteItemsInput,
            update_item::UpdateItemInput,
        };
        use aws_sdk_dynamodb::types::AttributeValue;
        type Item = std::collections::HashMap<String, AttributeValue>;
        let mut keys: Vec<&Item> = Vec::new();
        if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
            keys.extend(update.key());
        } else if let Some(put) = input.downcast_ref::<PutItemInput>() {
            keys.extend(put.item());
        } else if let Some(transaction) = input.downcast_ref::<TransactWriteItemsInput>() {
            for item in transaction.transact_items() {
                keys.extend(item.update().map(|u| u.key()));
                keys.extend(item.put().map(|p| p.item()));
                keys.extend(item.delete().map(|d| d.key()));
            }
        }
        let mut writes = self.item_writes.lock().unwrap();
        for key in keys {
            // The partition key: the one string attribute of a key, or `run_id`/`key` of an item.
            let id = ["run_id", "key", "word"]
                .iter()
                .find_map(|name| key.get(*name).and_then(|v| v.as_s().ok()))
                .or_else(|| key.values().find_map(|v| v.as_s().ok()));
            if let Some(id) = id {
                *writes.entry(id.clone()).or_default() += 1;
            }
        }
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
        context: &BeforeSerializationInterceptorContextRef<'_>,
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
        self.count_writes(context.input());
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
