//! fanout-smoke: the post-deploy smoke test. See docs/deploy.md.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Parser};
use fanout_smoke::copy::{self, CopyClients, CopyRun, CopyTarget};
use fanout_smoke::{
    check_word, delete_word, describe_stack, output, reply_count, reply_text, send, slack_request,
    status_hint, table_count, unique_word, Credentials, SecretParameter, SmokeError, StackFacts,
    WordCleanup,
};

/// The smoke test of a fanout stack. The word count: sends a Slack request with a new word,
/// checks that the reply counts it once and (with a words table) waits until sns-multiplier
/// has added its share, then deletes the word. The copy (with --stack): copies one seeded
/// object through s3-fanout's alias live and s3-copier, then deletes both objects.
#[derive(Debug, Parser)]
#[command(name = "fanout-smoke", version)]
#[command(group(ArgGroup::new("target").required(true).args(["stack", "slack_url"])))]
struct Args {
    /// Read the stack's Outputs (SlackUrl, WordsTableName, S3FanoutFunctionName, RunsTableName)
    /// and Parameters (Multiplier, SlackSigningSecretParameter, SourceBucket, DestinationBucket);
    /// honours AWS_ENDPOINT_URL, AWS_REGION/AWS_PROFILE and the usual credential chain.
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,

    /// The counter's URL: the stack's SlackUrl output, or a local stack's.
    #[arg(long, value_name = "URL")]
    slack_url: Option<String>,

    /// Sign the request as a Slack app does with this secret (default: $SLACK_SIGNING_SECRET,
    /// else the SSM parameter --signing-secret-param or the stack's SlackSigningSecretParameter).
    #[arg(long, value_name = "SECRET", conflicts_with = "signing_secret_param")]
    signing_secret: Option<String>,

    /// Read the signing secret from this SSM SecureString parameter (decrypted), instead of the
    /// one the stack's SlackSigningSecretParameter names.
    #[arg(long, value_name = "NAME")]
    signing_secret_param: Option<String>,

    /// Send a legacy outgoing webhook with this token (default: $SLACK_VERIFICATION_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    verification_token: Option<String>,

    /// The words table: wait there until sns-multiplier has added its share, then delete the
    /// word (with --stack, the stack's WordsTableName output).
    #[arg(long, value_name = "NAME")]
    words_table: Option<String>,

    /// Check only the HTTP reply, not the multiplier (the word is still deleted).
    #[arg(long)]
    skip_multiplier: bool,

    /// What sns-multiplier adds per occurrence (default: the stack's Multiplier parameter, or
    /// 10 without --stack).
    #[arg(long, value_name = "N")]
    multiplier: Option<i64>,

    /// How long to wait for the multiplier, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,

    /// The word to send (default: a new one, fanoutsmoke<time>); it must start with fanoutsmoke.
    #[arg(long, value_name = "WORD")]
    word: Option<String>,

    /// With --stack: do not run the copy check (production: it writes into the buckets).
    #[arg(long)]
    skip_copy: bool,

    /// How long to wait for the copy and its run, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    copy_timeout: u64,
}

/// The multiplier sns-multiplier uses when nothing says otherwise (the template's default).
const DEFAULT_MULTIPLIER: i64 = 10;

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Args {
    /// The credentials given directly: a secret or a token, by flag or environment.
    fn given_credentials(&self) -> Option<Credentials> {
        let secret = self
            .signing_secret
            .clone()
            .or_else(|| env_nonempty("SLACK_SIGNING_SECRET"));
        let token = self
            .verification_token
            .clone()
            .or_else(|| env_nonempty("SLACK_VERIFICATION_TOKEN"));
        match (secret, token) {
            (Some(secret), _) => Some(Credentials::SigningSecret(secret)),
            (None, Some(token)) => Some(Credentials::VerificationToken(token)),
            (None, None) => None,
        }
    }

    /// The SSM parameter to read the credentials from, when none are given directly.
    fn secret_parameter(&self, stack: Option<&StackFacts>) -> Result<SecretParameter, SmokeError> {
        if let Some(name) = &self.signing_secret_param {
            return Ok(SecretParameter::SigningSecret(name.clone()));
        }
        match stack {
            Some(stack) => stack.secret_parameter().ok_or_else(|| {
                SmokeError::Setup(format!(
                    "stack {:?} names no SSM parameter in SlackSigningSecretParameter or SlackVerificationTokenParameter; give --signing-secret-param, --signing-secret or --verification-token",
                    stack.name
                ))
            }),
            None => Err(SmokeError::Setup(
                "give --signing-secret, --signing-secret-param or --verification-token (or set SLACK_SIGNING_SECRET or SLACK_VERIFICATION_TOKEN): the counter refuses unsigned requests".into(),
            )),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let failures = match run(&args).await {
        Ok(failures) => failures,
        Err(setup) => vec![setup],
    };
    if failures.is_empty() {
        println!("smoke test passed");
        return ExitCode::SUCCESS;
    }
    for failure in &failures {
        eprintln!("smoke test FAILED: {failure}");
    }
    ExitCode::FAILURE
}

/// What the smoke test works on, read once before any check.
struct Plan {
    credentials: Credentials,
    url: String,
    word: String,
    multiplier: i64,
    /// The words table: where the word is deleted, and the multiplier checked unless skipped.
    words_table: Option<String>,
    copy: Option<CopyTarget>,
}

/// Runs every check, then the clean-up of each; the failures, all of them. An `Err` is a
/// set-up failure, before anything was written.
async fn run(args: &Args) -> Result<Vec<SmokeError>, SmokeError> {
    let word = args.word.clone().unwrap_or_else(unique_word);
    check_word(&word)?;
    if args.timeout == 0 || args.copy_timeout == 0 {
        return Err(SmokeError::Setup(
            "--timeout and --copy-timeout must be at least 1 second".into(),
        ));
    }
    let given = args.given_credentials();
    let needs_aws = args.stack.is_some()
        || args.words_table.is_some()
        || (given.is_none() && args.signing_secret_param.is_some());
    let sdk = match needs_aws {
        true => Some(aws_config::load_from_env().await),
        false => None,
    };
    let plan = plan(args, sdk.as_ref(), given, word).await?;

    let mut failures = Vec::new();
    if let Err(failed) = check_words(args, &plan, sdk.as_ref()).await {
        failures.push(failed);
    }
    match (&plan.words_table, sdk.as_ref()) {
        (Some(table), Some(sdk)) => {
            let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
            match delete_word(&dynamodb, table, &plan.word).await {
                Ok(WordCleanup::Deleted { count }) => println!(
                    "deleted {table}[{}] (count {})",
                    plan.word,
                    count.map_or("none".into(), |c| c.to_string())
                ),
                Ok(WordCleanup::Absent) => {
                    println!("{table}[{}]: no item to delete", plan.word)
                }
                Err(failed) => failures.push(failed),
            }
        }
        _ => println!(
            "{} is left in the counter's table: give --words-table to delete it",
            plan.word
        ),
    }

    if let (Some(target), Some(sdk)) = (&plan.copy, sdk.as_ref()) {
        failures.extend(check_copy(args, &CopyClients::new(sdk), target).await);
    }
    Ok(failures)
}

/// Reads the stack, when there is one, and resolves what each check needs.
async fn plan(
    args: &Args,
    sdk: Option<&aws_config::SdkConfig>,
    given: Option<Credentials>,
    word: String,
) -> Result<Plan, SmokeError> {
    let stack = match (&args.stack, sdk) {
        (Some(name), Some(sdk)) => {
            Some(describe_stack(&aws_sdk_cloudformation::Client::new(sdk), name).await?)
        }
        _ => None,
    };
    let credentials = match given {
        Some(given) => given,
        None => {
            let parameter = args.secret_parameter(stack.as_ref())?;
            let sdk = sdk.expect("loaded for an SSM parameter");
            read_secret(&aws_sdk_ssm::Client::new(sdk), &parameter).await?
        }
    };
    let Some(stack) = stack else {
        let url = args
            .slack_url
            .clone()
            .expect("clap requires --stack or --slack-url");
        return Ok(Plan {
            credentials,
            url,
            word,
            multiplier: args.multiplier.unwrap_or(DEFAULT_MULTIPLIER),
            words_table: args.words_table.clone(),
            copy: None,
        });
    };
    let url = stack.output("SlackUrl")?;
    let multiplier = match args.multiplier {
        Some(multiplier) => multiplier,
        None => stack.multiplier()?,
    };
    let words_table = match &args.words_table {
        Some(table) => table.clone(),
        None => output(&stack.outputs, &stack.name, "WordsTableName")?,
    };
    let copy = match args.skip_copy {
        true => None,
        false => CopyTarget::from_stack(&stack)?,
    };
    println!(
        "stack {}: SlackUrl {url}, Multiplier {multiplier}, words table {words_table}",
        stack.name
    );
    match (&copy, args.skip_copy) {
        (_, true) => println!("copy check skipped (--skip-copy)"),
        (None, false) => println!(
            "copy check skipped: stack {} names no SourceBucket and DestinationBucket",
            stack.name
        ),
        (Some(_), false) => {}
    }
    Ok(Plan {
        credentials,
        url,
        word,
        multiplier,
        words_table: Some(words_table),
        copy,
    })
}

/// Reads Slack's secret from its SSM SecureString parameter.
async fn read_secret(
    ssm: &aws_sdk_ssm::Client,
    parameter: &SecretParameter,
) -> Result<Credentials, SmokeError> {
    let value = fanout_ssm::Secrets::new(ssm.clone())
        .read(parameter.name())
        .await
        .map_err(|e| {
            SmokeError::Secret(format!(
                "{e} (the smoke test's role needs ssm:GetParameter on it, and kms:Decrypt on its key; or give --signing-secret)"
            ))
        })?;
    Ok(match parameter {
        SecretParameter::SigningSecret(name) => {
            println!("signing secret: SSM parameter {name}");
            Credentials::SigningSecret(value)
        }
        SecretParameter::VerificationToken(name) => {
            println!("verification token: SSM parameter {name}");
            Credentials::VerificationToken(value)
        }
    })
}

/// The word count: the reply, then the multiplier's share unless skipped.
async fn check_words(
    args: &Args,
    plan: &Plan,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<(), SmokeError> {
    count_one_word(&plan.credentials, &plan.url, &plan.word, plan.multiplier).await?;
    match (&plan.words_table, sdk, args.skip_multiplier) {
        (Some(table), Some(sdk), false) => {
            let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
            wait_for_multiplier(args, plan.multiplier, &dynamodb, table, &plan.word).await
        }
        _ => Ok(()),
    }
}

/// The copy: seed, start, wait; then the clean-up, whatever happened.
async fn check_copy(args: &Args, clients: &CopyClients, target: &CopyTarget) -> Vec<SmokeError> {
    let run = CopyRun::unique();
    let mut failures = Vec::new();
    let timeout = Duration::from_secs(args.copy_timeout);
    match copy_once(clients, target, &run, timeout).await {
        Ok(copied) => println!(
            "copy: s3://{}/{} copied in {:.1} s, {} bytes, {}{}",
            target.destination_bucket,
            run.key,
            copied.waited.as_secs_f64(),
            copied.copy.size,
            if copied.bytes_compared {
                "the same bytes (the ETags differ: an encrypted copy)"
            } else {
                "the same ETag"
            },
            copied
                .completed_at
                .map(|at| format!("; run {} complete at {at}, the object copied", run.run_id))
                .unwrap_or_default(),
        ),
        Err(failed) => failures.push(failed),
    }
    let (deleted, cleanup_failures) = copy::clean_up(&clients.s3, target, &run).await;
    if !deleted.is_empty() {
        println!("copy: deleted {}", deleted.join(", "));
    }
    failures.extend(cleanup_failures);
    failures
}

async fn copy_once(
    clients: &CopyClients,
    target: &CopyTarget,
    run: &CopyRun,
    timeout: Duration,
) -> Result<copy::Copied, SmokeError> {
    let source = copy::seed(&clients.s3, target, run).await?;
    println!(
        "copy: seeded s3://{}/{} ({} bytes, ETag {})",
        target.source_bucket, run.key, source.size, source.etag
    );
    copy::start(&clients.lambda, target, run).await?;
    println!(
        "copy: run {} started by {}:live",
        run.run_id, target.function
    );
    copy::wait_for_copy(clients, target, run, &source, timeout).await
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
    multiplier: i64,
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    word: &str,
) -> Result<(), SmokeError> {
    let expected = 1 + multiplier;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let started = Instant::now();
    loop {
        let count = table_count(dynamodb, table, word).await?;
        if count == expected {
            println!(
                "{table}[{word}] = {count} after {:.1} s: sns-multiplier added {}",
                started.elapsed().as_secs_f64(),
                multiplier
            );
            return Ok(());
        }
        if count > expected {
            return Err(SmokeError::AppliedTwice {
                table: table.to_owned(),
                word: word.to_owned(),
                count,
                expected,
            });
        }
        if Instant::now() >= deadline {
            return Err(SmokeError::MultiplierTimeout {
                table: table.to_owned(),
                word: word.to_owned(),
                count,
                expected,
                waited_s: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
