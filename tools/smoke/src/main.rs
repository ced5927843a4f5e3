//! fanout-smoke: the post-deploy smoke test. See docs/deploy.md.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Parser};
use fanout_smoke::{
    output, reply_count, reply_text, send, slack_request, stack_outputs, status_hint, table_count,
    unique_word, Credentials, SmokeError,
};

/// Sends a Slack request with a new word to a fanout stack, checks that the reply counts it
/// once, and (with a words table) waits until sns-multiplier has added its share.
#[derive(Debug, Parser)]
#[command(name = "fanout-smoke", version)]
#[command(group(ArgGroup::new("target").required(true).args(["stack", "slack_url"])))]
struct Args {
    /// Read SlackUrl and WordsTableName from this CloudFormation stack's Outputs (honours
    /// AWS_ENDPOINT_URL, AWS_REGION/AWS_PROFILE and the usual credential chain).
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,

    /// The counter's URL: the stack's SlackUrl output, or a local stack's.
    #[arg(long, value_name = "URL")]
    slack_url: Option<String>,

    /// Sign the request as a Slack app does (default: $SLACK_SIGNING_SECRET).
    #[arg(long, value_name = "SECRET")]
    signing_secret: Option<String>,

    /// Send a legacy outgoing webhook with this token (default: $SLACK_VERIFICATION_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    verification_token: Option<String>,

    /// Also wait until sns-multiplier has added its share to the word in this table (with
    /// --stack, the stack's WordsTableName output is used unless --skip-multiplier).
    #[arg(long, value_name = "NAME")]
    words_table: Option<String>,

    /// With --stack: check only the HTTP reply, not the multiplier.
    #[arg(long)]
    skip_multiplier: bool,

    /// What sns-multiplier adds per occurrence (the stack's Multiplier parameter).
    #[arg(long, default_value_t = 10, value_name = "N")]
    multiplier: i64,

    /// How long to wait for the multiplier, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,

    /// The word to send (default: a new one, smoke<time>), so that its count starts at 0.
    #[arg(long, value_name = "WORD")]
    word: Option<String>,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Args {
    fn credentials(&self) -> Result<Credentials, SmokeError> {
        let secret = self
            .signing_secret
            .clone()
            .or_else(|| env_nonempty("SLACK_SIGNING_SECRET"));
        let token = self
            .verification_token
            .clone()
            .or_else(|| env_nonempty("SLACK_VERIFICATION_TOKEN"));
        match (secret, token) {
            (Some(secret), _) => Ok(Credentials::SigningSecret(secret)),
            (None, Some(token)) => Ok(Credentials::VerificationToken(token)),
            (None, None) => Err(SmokeError::Setup(
                "give --signing-secret or --verification-token (or set SLACK_SIGNING_SECRET or SLACK_VERIFICATION_TOKEN): the counter refuses unsigned requests".into(),
            )),
        }
    }

    fn validate_word(&self) -> Result<String, SmokeError> {
        let word = self.word.clone().unwrap_or_else(unique_word);
        let tokens = fanout_words_core::tokenize(&word);
        let one_word = tokens.len() == 1 && tokens.iter().all(|(token, _)| token == word);
        if one_word {
            Ok(word)
        } else {
            Err(SmokeError::Setup(format!(
                "--word {word:?} is not one lowercase word as the counter counts it"
            )))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => {
            println!("smoke test passed");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("smoke test FAILED: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), SmokeError> {
    let credentials = args.credentials()?;
    let word = args.validate_word()?;
    if args.timeout == 0 {
        return Err(SmokeError::Setup(
            "--timeout must be at least 1 second".into(),
        ));
    }

    let sdk = if args.stack.is_some() || args.words_table.is_some() {
        Some(aws_config::load_from_env().await)
    } else {
        None
    };
    let (url, table) = target(args, sdk.as_ref()).await?;
    count_one_word(&credentials, &url, &word, args.multiplier).await?;
    if let Some(table) = table {
        let sdk = sdk.as_ref().expect("loaded when a table is given");
        wait_for_multiplier(args, &aws_sdk_dynamodb::Client::new(sdk), table, word).await?;
    }
    Ok(())
}

/// The Slack URL to post to, and the words table to watch (none: the multiplier is not checked).
async fn target(
    args: &Args,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<(String, Option<String>), SmokeError> {
    Ok(match (&args.stack, &args.slack_url) {
        (Some(stack), _) => {
            let sdk = sdk.expect("loaded for --stack");
            let outputs = stack_outputs(&aws_sdk_cloudformation::Client::new(sdk), stack).await?;
            let url = output(&outputs, stack, "SlackUrl")?;
            let table = match (&args.words_table, args.skip_multiplier) {
                (Some(table), _) => Some(table.clone()),
                (None, true) => None,
                (None, false) => Some(output(&outputs, stack, "WordsTableName")?),
            };
            println!("stack {stack}: SlackUrl {url}");
            (url, table)
        }
        (None, Some(url)) => (url.clone(), args.words_table.clone()),
        (None, None) => unreachable!("clap requires --stack or --slack-url"),
    })
}

/// Posts one Slack request for `word` and checks that the reply counts it once: 1, or already
/// `1 + multiplier` when sns-multiplier applied the message before the reply read the count
/// (docs/counting.md).
async fn count_one_word(
    credentials: &Credentials,
    url: &str,
    word: &str,
    multiplier: i64,
) -> Result<(), SmokeError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let request = slack_request(credentials, word, now, word);
    let kind = match credentials {
        Credentials::SigningSecret(_) => "signed Events API message",
        Credentials::VerificationToken(_) => "outgoing webhook (token)",
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| SmokeError::Setup(format!("cannot build an HTTP client: {e}")))?;
    let started = Instant::now();
    let (status, body) = send(&http, url, &request).await?;
    let elapsed = started.elapsed().as_millis();
    if status != 200 {
        return Err(SmokeError::Status {
            status,
            body,
            hint: status_hint(status),
        });
    }
    let counted = reply_count(&body, word)?;
    if counted != Some(1) && counted != Some(1 + multiplier) {
        return Err(SmokeError::WrongCount {
            word: word.to_owned(),
            text: reply_text(&body),
        });
    }
    println!(
        "POST {url} ({kind} {word:?}) -> 200 in {elapsed} ms: {}",
        reply_text(&body)
    );
    Ok(())
}

/// Polls the words table until the multiplier's addition shows (once), or the timeout.
async fn wait_for_multiplier(
    args: &Args,
    dynamodb: &aws_sdk_dynamodb::Client,
    table: String,
    word: String,
) -> Result<(), SmokeError> {
    let expected = 1 + args.multiplier;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let started = Instant::now();
    loop {
        let count = table_count(dynamodb, &table, &word).await?;
        if count == expected {
            println!(
                "{table}[{word}] = {count} after {:.1} s: sns-multiplier added {}",
                started.elapsed().as_secs_f64(),
                args.multiplier
            );
            return Ok(());
        }
        if count > expected {
            return Err(SmokeError::AppliedTwice {
                table,
                word,
                count,
                expected,
            });
        }
        if Instant::now() >= deadline {
            return Err(SmokeError::MultiplierTimeout {
                table,
                word,
                count,
                expected,
                waited_s: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
