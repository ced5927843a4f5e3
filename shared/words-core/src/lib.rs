//! The word-count domain, with no AWS or Lambda types.
//!
//! Pure code: [`tokenize`] (Slack markup aware), [`slack`] (request verification and parsing),
//! [`message`] (the published message schema), [`counts::WordCounts`].
//! The protocols, over the narrow traits of [`store`]: [`once`] applies a message's words
//! exactly once, [`count`] counts a Slack message and publishes it. [`memory`] implements the
//! traits in memory, for tests; the AWS implementations live in adapter crates.
//! [`failure`] names the two classes of failure; [`dead_letter`] is where a message that can
//! never be applied goes.

pub mod command;
pub mod count;
pub mod counts;
pub mod dead_letter;
pub mod failure;
pub mod memory;
pub mod message;
pub mod once;
pub mod reply;
pub mod slack;
pub mod store;
pub mod tokenize;

pub use counts::WordCounts;
pub use message::{Source, WordsMessage};
pub use tokenize::tokenize;

#[cfg(test)]
mod model_tests;
