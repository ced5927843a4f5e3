//! Publishing to SNS, for both products: [`WordsPublisher`] sends one message per counted Slack
//! message, [`JobPublisher`] sends copy jobs ten per PublishBatch call, [`RunEventsTopic`]
//! each finished copy run's completion event.

mod jobs;
mod runs;
mod words;

pub use jobs::{JobPublisher, BATCH_SIZE, PUBLISH_CONCURRENCY};
pub use runs::{announcer, RunEventsTopic};
pub use words::WordsPublisher;
