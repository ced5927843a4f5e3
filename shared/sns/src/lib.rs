//! Publishing to SNS, for both products: [`WordsPublisher`] sends one message per counted Slack
//! message, [`JobPublisher`] sends copy jobs ten per PublishBatch call.

mod jobs;
mod words;

pub use jobs::{JobPublisher, BATCH_SIZE, PUBLISH_CONCURRENCY};
pub use words::WordsPublisher;
