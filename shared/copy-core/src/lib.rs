//! The copy domain, with no AWS or Lambda types: list → plan → copy, server side, for
//! s3-fanout, s3-copier and s3-copy.
//!
//! Pure code: [`location`] (s3:// URLs, key mapping), [`size`] (KiB/MiB/GiB), [`plan`] (one
//! CopyObject or a multipart layout within S3's limits), [`decide`] (skip unchanged objects by
//! content), [`job`] (the copy-job message schema), [`summary`] (a run's outcome).
//! The protocols, over the narrow traits of [`store`], [`ledger`] and [`fanout`]:
//! [`planner::Planner`] (listing → jobs), [`copier::Copier`] (one job → one copy),
//! [`work::copy_and_record`] (a delivered job, counted in its run), [`fanout`] (a listing run
//! fanned out page by page, with continuations), [`engine::run`] (a whole run in one
//! process) and [`uploads::sweep`] (no orphaned multipart uploads). [`memory`] implements every trait in memory, for tests; the AWS implementations
//! live in adapter crates.

pub mod batch;
pub mod completion;
pub mod copier;
pub mod decide;
pub mod engine;
pub mod fanout;
pub mod inventory;
pub mod job;
pub mod layout;
pub mod ledger;
pub mod location;
pub mod memory;
pub mod mirror;
pub mod pace;
pub mod plan;
pub mod planner;
pub mod size;
pub mod store;
pub mod summary;
pub mod uploads;
pub mod work;

pub use copier::{Copied, Copier, CopyError, CopyOptions};
pub use job::CopyJob;
pub use location::Location;
pub use plan::Thresholds;
pub use planner::RunSpec;
pub use summary::RunSummary;
