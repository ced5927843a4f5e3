//! The word-count domain and its adapters.
//!
//! Pure code: [`tokenize`] (Slack markup aware), [`slack`] (request verification and parsing),
//! [`message`] (the published message schema), [`counts::WordCounts`].
//! Adapters over the AWS SDK: [`store::WordStore`] (DynamoDB) and [`publish::Publisher`] (SNS).
//! [`once`] applies a message's words exactly once on top of the store.

pub mod counts;
pub mod message;
pub mod once;
pub mod publish;
pub mod slack;
pub mod store;
pub mod tokenize;

pub use counts::WordCounts;
pub use message::{Source, WordsMessage};
pub use tokenize::tokenize;
