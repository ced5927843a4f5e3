//! moto server, the AWS emulator the stack runs against.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::process::Command;

use super::{free_port, wait_for_port, ProcessError, Supervisor};
use crate::project::moto_server_path;

/// How long moto server may take to listen.
const START_LIMIT: Duration = Duration::from_secs(60);

/// moto server did not start.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("moto server not found at {}: run `make dev-tools` (it installs the pinned moto[server] into .venv), or set MOTO_SERVER to a moto_server executable", .0.display())]
    Missing(PathBuf),
    #[error("no free port for moto server: {0}")]
    NoPort(#[source] std::io::Error),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("moto server did not listen on port {port} within {START_LIMIT:?}")]
    NotListening { port: u16 },
}

/// A moto server the supervisor runs.
pub struct Moto {
    pub endpoint: String,
}

impl Moto {
    /// SDK configuration for the emulator: fixed test credentials, the local region (the
    /// test tools' one, us-east-1).
    pub async fn sdk_config(&self) -> SdkConfig {
        fanout_tests::sdk_config(&self.endpoint).await
    }
}

/// Starts moto server on a free port and waits until it listens.
pub async fn start_moto(supervisor: &mut Supervisor) -> Result<Moto, MotoError> {
    let moto = moto_server_path();
    if !moto.exists() {
        return Err(MotoError::Missing(moto));
    }
    let port = free_port().map_err(MotoError::NoPort)?;
    let mut command = Command::new(&moto);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    supervisor.spawn("moto server", &mut command)?;
    if !wait_for_port(port, START_LIMIT).await {
        return Err(MotoError::NotListening { port });
    }
    Ok(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}
