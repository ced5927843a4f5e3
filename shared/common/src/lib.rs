//! What every fanout function shares: typed configuration from the environment, typed SNS and
//! SQS deliveries, S3 Batch Operations invocations, telemetry, business metrics in CloudWatch's
//! embedded metric format, and reporting of init failures to the Lambda Runtime API.

pub mod batch_operations;
pub mod config;
pub mod events;
pub mod init;
pub mod metrics;
pub mod s3_events;
pub mod telemetry;

pub use config::{ConfigError, Vars};
