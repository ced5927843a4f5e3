//! Local ports, through the test tools' helper: one free to give a server, and waiting (off the
//! async runtime's threads) for a server to listen.

use std::time::Duration;

pub use fanout_tests::ports::free_port;

/// Waits until something accepts connections on `port`; false if nothing did within `limit`.
pub async fn wait_for_port(port: u16, limit: Duration) -> bool {
    tokio::task::spawn_blocking(move || fanout_tests::ports::wait_for_port(port, limit).is_ok())
        .await
        .unwrap_or(false)
}
