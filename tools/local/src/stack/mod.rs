//! The local stack: moto server, the resources the template defines, the real function binaries
//! under `cargo lambda watch`, and pollers that deliver queue and topic messages to functions the
//! way Lambda's event sources do.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::invoker::Invoker;
use crate::pollers::{Wiring, WiringError};
use crate::processes::{start_moto, start_watch, MotoError, Supervisor, WatchError};
use crate::resources::{create_resources, ResourceError};
use crate::template::{Plan, Trigger};

pub use crate::processes::Logs;

mod usage;

pub use usage::describe;

/// The stack did not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("the emulator did not start: {0}")]
    Emulator(#[from] MotoError),
    #[error(transparent)]
    Resources(#[from] ResourceError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error(transparent)]
    Wiring(#[from] WiringError),
}

pub struct Stack {
    pub plan: Plan,
    pub sdk: SdkConfig,
    pub endpoint: String,
    pub invoker: Invoker,
    pub http: reqwest::Client,
    /// `cargo lambda watch`'s address.
    pub watch_url: String,
    /// The lines `cargo lambda watch` and the functions printed so far.
    pub logs: Logs,
    pollers: Vec<JoinHandle<()>>,
}

impl Stack {
    /// Starts everything, the processes under `supervisor`, which stops them. With `echo`, the
    /// functions' output is printed as it comes.
    pub async fn start(
        plan: Plan,
        echo: bool,
        supervisor: &mut Supervisor,
    ) -> Result<Stack, StackError> {
        println!("▸ starting moto server (the AWS emulator)…");
        let moto = start_moto(supervisor).await?;
        let sdk = moto.sdk_config().await;
        println!("  moto server at {}", moto.endpoint);

        println!("▸ creating the resources of infra/template.yaml…");
        let mut queue_urls = create_resources(&plan, &sdk).await?;

        let watch = start_watch(supervisor, &plan, &moto.endpoint, echo).await?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(StackError::HttpClient)?;
        let mut stack = Stack {
            plan,
            sdk,
            endpoint: moto.endpoint,
            invoker: Invoker::new(http.clone(), watch.url.clone()),
            http,
            watch_url: watch.url,
            logs: watch.logs,
            pollers: Vec::new(),
        };
        stack.warm_up().await;
        stack.pollers = Wiring {
            plan: &stack.plan,
            sdk: &stack.sdk,
            invoker: &stack.invoker,
            watch_url: &stack.watch_url,
            queue_urls: &mut queue_urls,
        }
        .start()
        .await?;
        Ok(stack)
    }

    /// The function URL of the function behind the template's HTTP route.
    pub fn slack_url(&self) -> Option<String> {
        self.plan.functions.iter().find_map(|f| {
            f.triggers
                .iter()
                .any(|t| matches!(t, Trigger::Http { .. }))
                .then(|| format!("{}/lambda-url/{}/", self.watch_url, f.binary))
        })
    }

    /// Starts every function once, so that compiling it (cargo lambda watch builds a function on
    /// its first invocation) happens before any real event arrives. The warm-up event is empty;
    /// the functions refuse it, which is all this needs.
    async fn warm_up(&self) {
        println!("▸ building and starting the functions (the first time takes a few minutes)…");
        for function in &self.plan.functions {
            let started = Instant::now();
            let _ = self.invoker.invoke(&function.binary, &json!({})).await;
            println!(
                "  {} ready ({:.1} s)",
                function.binary,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Drop for Stack {
    /// The pollers stop with the stack, however it goes away: a dropped task handle would let
    /// them run on.
    fn drop(&mut self) {
        for poller in &self.pollers {
            poller.abort();
        }
    }
}
