//! Creates the template's resources in the emulator: tables, topics, queues and subscriptions,
//! the SSM parameters that hold the local Slack credentials, and the backup buckets.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::update_time_to_live::UpdateTimeToLiveError;
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_sns::operation::create_topic::CreateTopicError;
use aws_sdk_sns::operation::subscribe::SubscribeError;
use aws_sdk_sqs::operation::create_queue::CreateQueueError;
use aws_sdk_ssm::operation::put_parameter::PutParameterError;

use crate::settings::{BOT_TOKEN, SIGNING_SECRET, VERIFICATION_TOKEN};
use crate::template::{Plan, Table};
use queues::{create_queues, subscribe_queues};

mod queues;

pub use queues::{create_queue, subscribe_queue};

/// The emulator refused to create a resource.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("creating table {table}: {}", DisplayErrorContext(.source))]
    Table {
        table: String,
        source: Box<SdkError<CreateTableError>>,
    },
    #[error("describing table {table}: {source}")]
    TableShape { table: String, source: BuildError },
    #[error("TTL on {table}: {}", DisplayErrorContext(.source))]
    TimeToLive {
        table: String,
        source: Box<SdkError<UpdateTimeToLiveError>>,
    },
    #[error("creating topic {topic}: {}", DisplayErrorContext(.source))]
    Topic {
        topic: String,
        source: Box<SdkError<CreateTopicError>>,
    },
    #[error("creating queue {queue}: {}", DisplayErrorContext(.source))]
    Queue {
        queue: String,
        source: Box<SdkError<CreateQueueError>>,
    },
    #[error("no URL for queue {0}")]
    QueueUrl(String),
    #[error("a subscription names {kind} {id}, which the template does not define")]
    Unknown { kind: &'static str, id: String },
    #[error("subscribing {queue} to {topic}: {}", DisplayErrorContext(.source))]
    Subscribe {
        topic: String,
        queue: String,
        source: Box<SdkError<SubscribeError>>,
    },
    #[error("SSM parameter {name}: {}", DisplayErrorContext(.source))]
    Parameter {
        name: String,
        source: Box<SdkError<PutParameterError>>,
    },
    #[error("putting the sample object s3://{bucket}/{key}: {}", DisplayErrorContext(.source))]
    SampleObject {
        bucket: String,
        key: String,
        source: Box<SdkError<aws_sdk_s3::operation::put_object::PutObjectError>>,
    },
    #[error("bucket {bucket}: {}", DisplayErrorContext(.source))]
    Bucket {
        bucket: String,
        source: Box<SdkError<CreateBucketError>>,
    },
}

/// Creates everything the plan names, printing a line for each; returns the queue URLs by
/// logical id.
pub async fn create_resources(
    plan: &Plan,
    sdk: &SdkConfig,
) -> Result<BTreeMap<String, String>, ResourceError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    for table in &plan.tables {
        create_table(&dynamodb, table).await?;
        println!("  table {} (key {})", table.name, table.key);
    }
    let sns = aws_sdk_sns::Client::new(sdk);
    for topic in &plan.topics {
        sns.create_topic()
            .name(&topic.name)
            .send()
            .await
            .map_err(|source| ResourceError::Topic {
                topic: topic.name.clone(),
                source: source.into(),
            })?;
        println!("  topic {}", topic.name);
    }
    let urls = create_queues(plan, &aws_sdk_sqs::Client::new(sdk)).await?;
    subscribe_queues(plan, &sns).await?;
    put_slack_parameters(plan, &aws_sdk_ssm::Client::new(sdk)).await?;
    create_buckets(plan, &s3_client(sdk)).await?;
    Ok(urls)
}

/// An S3 client for the emulator, which wants path-style addresses.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &Table,
) -> Result<(), ResourceError> {
    use aws_sdk_dynamodb::types::TimeToLiveSpecification;
    fanout_tests::create_table(dynamodb, &table.name, &table.key, &table.indexes)
        .await
        .map_err(|source| ResourceError::Table {
            table: table.name.clone(),
            source: source.into(),
        })?;
    let shape = |source| ResourceError::TableShape {
        table: table.name.clone(),
        source,
    };
    let Some(attribute) = &table.ttl_attribute else {
        return Ok(());
    };
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(shape)?;
    dynamodb
        .update_time_to_live()
        .table_name(&table.name)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|source| ResourceError::TimeToLive {
            table: table.name.clone(),
            source: source.into(),
        })?;
    Ok(())
}

async fn put_slack_parameters(plan: &Plan, ssm: &aws_sdk_ssm::Client) -> Result<(), ResourceError> {
    for (parameter, value) in [
        ("SlackSigningSecretParameter", SIGNING_SECRET),
        ("SlackVerificationTokenParameter", VERIFICATION_TOKEN),
        ("SlackBotTokenParameter", BOT_TOKEN),
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
            .map_err(|source| ResourceError::Parameter {
                name: name.clone(),
                source: source.into(),
            })?;
        println!("  SSM SecureString {name}");
    }
    Ok(())
}

async fn create_buckets(plan: &Plan, s3: &aws_sdk_s3::Client) -> Result<(), ResourceError> {
    for parameter in ["SourceBucket", "DestinationBucket"] {
        let Some(bucket) = plan.parameters.get(parameter).filter(|b| !b.is_empty()) else {
            continue;
        };
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|source| ResourceError::Bucket {
                bucket: bucket.clone(),
                source: source.into(),
            })?;
        println!("  bucket {bucket}");
    }
    Ok(())
}

/// Puts the sample objects (`settings::SAMPLE_OBJECTS`) in the source bucket, for `make up`: the
/// s3-fanout samples list them, the s3-copier samples copy one of them.
pub async fn put_sample_objects(plan: &Plan, sdk: &SdkConfig) -> Result<(), ResourceError> {
    let s3 = s3_client(sdk);
    let bucket = plan
        .parameters
        .get("SourceBucket")
        .cloned()
        .unwrap_or_default();
    let mut report = Vec::new();
    for (key, size) in crate::settings::SAMPLE_OBJECTS {
        let put = s3
            .put_object()
            .bucket(&bucket)
            .key(*key)
            .body(crate::settings::sample_bytes(*size).into())
            .content_type("image/jpeg")
            .send()
            .await
            .map_err(|source| ResourceError::SampleObject {
                bucket: bucket.clone(),
                key: (*key).to_owned(),
                source: source.into(),
            })?;
        let etag = put.e_tag().unwrap_or_default();
        report.push(fanout_tests::inventory::Row::current(
            key,
            *size as u64,
            etag,
        ));
    }
    println!(
        "  {} sample objects in s3://{bucket}/photos/",
        crate::settings::SAMPLE_OBJECTS.len()
    );
    // The S3 Inventory report of them that events/s3-fanout-inventory.json names.
    let backup = plan
        .parameters
        .get("DestinationBucket")
        .cloned()
        .unwrap_or_default();
    let prefix = format!("inventories/{bucket}/daily/2026-11-30T01-00Z");
    fanout_tests::inventory::put_report(&s3, &backup, &prefix, &bucket, &report, 1)
        .await
        .map_err(|(key, source)| ResourceError::SampleObject {
            bucket: backup.clone(),
            key,
            source: source.into(),
        })?;
    println!("  an S3 Inventory report of them in s3://{backup}/{prefix}/");
    Ok(())
}
