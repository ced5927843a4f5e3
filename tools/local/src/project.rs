//! What the local stack takes from the project's other crates, in one place: where the
//! workspace and moto server are, how Slack signs a request, and the copy runs' ledger.

pub use fanout_copy_core::ledger::{RunLedger, RunRecord};
pub use fanout_copy_dynamodb::RunTable;
pub use fanout_tests::{moto_server_path, workspace_root};
pub use fanout_words_core::slack::sign as sign_slack_request;
