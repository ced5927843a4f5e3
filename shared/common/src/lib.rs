//! What every fanout function shares: typed configuration from the environment, AWS client
//! construction, telemetry, and reporting of init failures to the Lambda Runtime API.

pub mod aws;
pub mod config;
pub mod events;
pub mod init;
pub mod telemetry;

pub use config::{ConfigError, Vars};
