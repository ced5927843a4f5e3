//! The local stack: moto server, the resources the template defines, the real function binaries
//! under `cargo lambda watch`, and pollers that deliver queue and topic messages to functions the
//! way Lambda's event sources do.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::invoker::Invoker;
use crate::pollers::{Wiring, WiringError};
use crate::processes::{start_moto, start_watch, MotoError, SlackWebApi, Supervisor, WatchError};
use crate::project::sign_slack_request;
use crate::resources::{create_resources, ResourceError};
use crate::settings::{BOT_TOKEN, SIGNING_SECRET, VERIFICATION_TOKEN};
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
    #[error("the stand-in Slack Web API did not start: {0}")]
    SlackStandIn(#[source] std::io::Error),
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
    /// Where replies are posted: the stand-in Slack Web API, unless `SLACK_API_URL` was set.
    pub slack: SlackWebApi,
    /// The stand-in, recording the posts (`None` with a real `SLACK_API_URL`).
    pub slack_stand_in: Option<fanout_tests::slack_api::SlackApi>,
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

        // Replies go to SLACK_API_URL with SLACK_BOT_TOKEN when they are set (a real Slack
        // workspace, say); else to a stand-in that records them.
        let (slack, slack_stand_in) = match std::env::var("SLACK_API_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(url) => {
                let bot_token = std::env::var("SLACK_BOT_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty());
                if bot_token.is_none() {
                    println!("  SLACK_API_URL is set without SLACK_BOT_TOKEN: no threaded reply is posted");
                }
                (
                    SlackWebApi {
                        url,
                        // Never the local token, which is the stand-in's: a real Slack refuses it.
                        bot_token: Some(bot_token.unwrap_or_default()),
                    },
                    None,
                )
            }
            None => {
                let stand_in = fanout_tests::slack_api::SlackApi::start(BOT_TOKEN)
                    .await
                    .map_err(StackError::SlackStandIn)?;
                println!("  stand-in Slack Web API at {}", stand_in.url());
                let bot_token = std::env::var("SLACK_BOT_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty());
                if bot_token.is_some() {
                    println!("  (SLACK_BOT_TOKEN is set without SLACK_API_URL: the stand-in takes only the local token, so it is not used)");
                }
                (
                    SlackWebApi {
                        url: stand_in.url(),
                        bot_token: None,
                    },
                    Some(stand_in),
                )
            }
        };
        let watch = start_watch(supervisor, &plan, &moto.endpoint, &slack, echo).await?;
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
            slack,
            slack_stand_in,
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

    /// Prints each post the stand-in Slack Web API receives, as it comes (for `make up`).
    pub fn echo_slack_posts(&mut self) {
        let Some(stand_in) = &self.slack_stand_in else {
            return;
        };
        let posts = stand_in.posts_handle();
        self.pollers.push(tokio::spawn(async move {
            let mut shown = 0;
            loop {
                let all = posts();
                for post in &all[shown.min(all.len())..] {
                    println!(
                        "  │ slack: posted in {} (thread {}): {}",
                        post.channel,
                        post.thread_ts.as_deref().unwrap_or("-"),
                        post.text
                    );
                }
                shown = all.len();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
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

    /// Starts the functions that have an event to start with that is valid and changes
    /// nothing, so that their first real event finds them running: slack-counter answers a
    /// signed Events API `url_verification`, s3-fanout a sweep of the destination (nothing of
    /// fanout's to abort in a new stack). The functions fed by queues and topics start with
    /// their first message: every event they take does something. Their binaries are built
    /// before the stack starts (`make up` and `make demo` build them), so none waits for a
    /// compile.
    async fn warm_up(&self) {
        println!("▸ starting the functions…");
        for function in &self.plan.functions {
            let started = Instant::now();
            let answered = if function
                .triggers
                .iter()
                .any(|t| matches!(t, Trigger::Http { .. }))
            {
                self.verify_url().await
            } else if function
                .triggers
                .iter()
                .any(|t| matches!(t, Trigger::Schedule { .. }))
            {
                let destination = (self.plan.parameters.get("DestinationBucket"))
                    .cloned()
                    .unwrap_or_default();
                let sweep =
                    json!({"sweep": format!("s3://{destination}/"), "older_than_hours": 24});
                self.invoker
                    .invoke(&function.binary, &sweep)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                continue;
            };
            match answered {
                Ok(()) => println!(
                    "  {} ready ({:.1} s)",
                    function.binary,
                    started.elapsed().as_secs_f64()
                ),
                Err(err) => println!(
                    "  {} did not answer its first event: {err}",
                    function.binary
                ),
            }
        }
    }

    /// What Slack sends when a request URL is set: a signed `url_verification`.
    async fn verify_url(&self) -> Result<(), String> {
        let url = self.slack_url().ok_or("no HTTP route")?;
        let body = json!({"type": "url_verification", "token": VERIFICATION_TOKEN,
            "challenge": "fanout-local"})
        .to_string();
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", &timestamp)
            .header(
                "x-slack-signature",
                sign_slack_request(SIGNING_SECRET, &timestamp, body.as_bytes()),
            )
            .body(body)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err(format!("HTTP {status}")),
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
