//! What every fanout function shares: typed configuration from the environment, typed SNS and
//! SQS deliveries, telemetry, and reporting of init failures to the Lambda Runtime API.

pub mod config;
pub mod events;
pub mod init;
pub mod telemetry;

pub use config::{ConfigError, Vars};
