//! The copy engine: list → plan → copy, server side, for s3-fanout, s3-copier and s3-copy.
//!
//! Pure code: [`location`] (s3:// URLs, key mapping), [`size`] (KiB/MiB/GiB), [`plan`] (one
//! CopyObject or a multipart layout within S3's limits), [`decide`] (skip unchanged objects by
//! content), [`job`] (the copy-job message schema), [`summary`] (a run's outcome).
//! Adapters over the AWS SDK: [`store::ObjectStore`] (S3), [`ledger::RunLedger`] (DynamoDB),
//! [`publish::JobPublisher`] (SNS). On top of them: [`planner::Planner`] (listing → jobs),
//! [`copier::Copier`] (one job → one copy) and [`engine::run`] (a whole run in one process).

pub mod copier;
pub mod decide;
pub mod engine;
pub mod job;
pub mod ledger;
pub mod location;
pub mod plan;
pub mod planner;
pub mod publish;
pub mod size;
pub mod store;
pub mod summary;

pub use copier::{Copied, Copier, CopyError, CopyOptions};
pub use job::CopyJob;
pub use location::Location;
pub use plan::Thresholds;
pub use planner::RunSpec;
pub use store::ObjectStore;
pub use summary::RunSummary;
