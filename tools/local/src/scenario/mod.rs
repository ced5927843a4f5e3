//! The scripted demo: the original's story, Slack verification, and two backup runs, each step
//! checked against what it should produce, with a transcript a person can read.
//!
//! `steps` tells the story; `world` sends its requests and looks at what they did.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::project::RunRecord;
use crate::stack::Stack;
use crate::template::Trigger;

mod steps;
mod world;

/// How long a step may wait for asynchronous work.
const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Transcript {
    failures: Vec<String>,
}

impl Transcript {
    fn step(&self, number: usize, title: &str) {
        println!("\n{number}. {title}");
    }

    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            println!("   ✔ {what}: {detail}");
        } else {
            println!("   ✘ {what}: {detail}");
            self.failures.push(what.to_owned());
        }
    }

    fn note(&self, text: impl std::fmt::Display) {
        println!("   {text}");
    }
}

/// Plays the scenario; true when every check passed.
pub async fn play(stack: &Stack) -> bool {
    let mut t = Transcript::default();
    let started = Instant::now();
    let demo = Demo::new(stack);
    match demo {
        Ok(demo) => demo.run(&mut t).await,
        Err(err) => t.check("the stack has what the demo needs", false, err),
    }
    println!();
    if t.failures.is_empty() {
        println!(
            "demo passed: every step matched ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        true
    } else {
        println!(
            "demo FAILED: {} step(s) did not match: {}",
            t.failures.len(),
            t.failures.join("; ")
        );
        false
    }
}

/// What the demo plays with and the template lacks.
#[derive(Debug, thiserror::Error)]
enum Missing {
    #[error("the template has no scheduled function")]
    ScheduledFunction,
    #[error("the template routes no HTTP to a function")]
    HttpRoute,
    #[error("no function of the template sets {0}")]
    Variable(&'static str),
}

struct Demo<'a> {
    stack: &'a Stack,
    slack_url: String,
    words_table: String,
    runs_table: String,
    fanout: String,
    source_bucket: String,
    dest_bucket: String,
}

impl<'a> Demo<'a> {
    fn new(stack: &'a Stack) -> Result<Demo<'a>, Missing> {
        let fanout = stack
            .plan
            .functions
            .iter()
            .find(|f| {
                f.triggers
                    .iter()
                    .any(|t| matches!(t, Trigger::Schedule { .. }))
            })
            .map(|f| f.binary.clone())
            .ok_or(Missing::ScheduledFunction)?;
        Ok(Demo {
            stack,
            slack_url: stack.slack_url().ok_or(Missing::HttpRoute)?,
            words_table: env_of(stack, "WORDS_TABLE")?,
            runs_table: env_of(stack, "COPY_RUNS_TABLE")?,
            fanout,
            source_bucket: env_of(stack, "SOURCE_BUCKET")?,
            dest_bucket: env_of(stack, "DEST_BUCKET")?,
        })
    }
}

/// The value a function of the template gives `var`.
fn env_of(stack: &Stack, var: &'static str) -> Result<String, Missing> {
    stack
        .plan
        .functions
        .iter()
        .find_map(|f| f.env.get(var))
        .cloned()
        .ok_or(Missing::Variable(var))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn show(counts: &[(String, Option<i64>)]) -> String {
    counts
        .iter()
        .map(|(w, n)| {
            format!(
                "{w}={}",
                n.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn summary(run: &RunRecord) -> String {
    format!(
        "listed {}, copied {}, skipped {}, failed {}, bytes {}",
        run.listed, run.copied, run.skipped, run.failed, run.bytes_copied
    )
}
